//! `[phone]`: telephony providers, numbers and budgets.

use super::*;

/// The phone reserve method: a telephony provider, and limits (calls and SMS cost money).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPhone {
    /// `"webhook"` or `"twilio"`; absent = no phone method.
    pub provider: Option<String>,
    /// Country prefixes whose numbers get a dictated voice call; others get a flash call.
    pub domestic_prefixes: Vec<String>,
    /// Calls per login attempt before an SMS is sent instead.
    pub max_calls: u32,
    #[serde(with = "humantime_serde")]
    pub code_lifetime: Duration,
    pub code_tries: u32,
    /// Calls and SMS allowed per hour: per user, per number, per client IP, in all.
    pub per_user_per_hour: u32,
    pub per_number_per_hour: u32,
    pub per_ip_per_hour: u32,
    pub global_per_hour: u32,
    pub webhook: RawPhoneWebhook,
    pub twilio: RawTwilio,
}

impl Default for RawPhone {
    fn default() -> Self {
        RawPhone {
            provider: None,
            domestic_prefixes: Vec::new(),
            max_calls: 3,
            code_lifetime: Duration::from_secs(5 * 60),
            code_tries: 3,
            per_user_per_hour: 6,
            per_number_per_hour: 6,
            per_ip_per_hour: 10,
            global_per_hour: 200,
            webhook: RawPhoneWebhook::default(),
            twilio: RawTwilio::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RawPhoneWebhook {
    pub url: Option<String>,
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTwilio {
    pub api_url: String,
    pub account_sid: Option<String>,
    pub auth_token: Option<Secret>,
    pub auth_token_file: Option<PathBuf>,
    /// Caller number for voice calls and SMS.
    pub from: Option<String>,
    /// Numbers flash calls come from; the code is the last 4 digits of the one used.
    pub flash_from: Vec<String>,
}

impl Default for RawTwilio {
    fn default() -> Self {
        RawTwilio {
            api_url: "https://api.twilio.com".into(),
            account_sid: None,
            auth_token: None,
            auth_token_file: None,
            from: None,
            flash_from: Vec::new(),
        }
    }
}

/// Which telephony provider, configured.
#[derive(Debug, Clone)]
pub enum PhoneProviderConfig {
    Webhook {
        url: url::Url,
        token: Option<Secret>,
    },
    Twilio {
        api_url: url::Url,
        account_sid: String,
        auth_token: Secret,
        from: String,
        flash_from: Vec<String>,
    },
}

/// The validated phone settings.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    pub provider: PhoneProviderConfig,
    pub domestic_prefixes: Vec<String>,
    pub max_calls: u32,
    pub code_lifetime: Duration,
    pub code_tries: u32,
    pub per_user_per_hour: u32,
    pub per_number_per_hour: u32,
    pub per_ip_per_hour: u32,
    pub global_per_hour: u32,
}

impl RawPhone {
    pub(super) fn validate(&self) -> Result<Option<PhoneConfig>> {
        let provider = match self.provider.as_deref() {
            None | Some("") => return Ok(None),
            Some("webhook") => {
                let url = self.webhook.url.as_deref().ok_or_else(|| {
                    Error::config(
                        "phone.webhook.url",
                        "",
                        "required with provider = \"webhook\"",
                    )
                })?;
                let token = resolve_secret(
                    "phone.webhook.token",
                    self.webhook.token.clone(),
                    self.webhook.token_file.as_deref(),
                )?;
                PhoneProviderConfig::Webhook {
                    url: parse_url("phone.webhook.url", url)?,
                    token,
                }
            }
            Some("twilio") => {
                let t = &self.twilio;
                let need = |key: &str, v: &Option<String>| {
                    v.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                        Error::config(
                            format!("phone.twilio.{key}"),
                            "",
                            "required with provider = \"twilio\"",
                        )
                    })
                };
                let auth_token = resolve_secret(
                    "phone.twilio.auth_token",
                    t.auth_token.clone(),
                    t.auth_token_file.as_deref(),
                )?;
                let from = need("from", &t.from)?;
                check_e164("phone.twilio.from", &from)?;
                // A pool holds 10,000 numbers or more: their form is checked here (the
                // full numbering-plan check costs too much at every start), Twilio
                // checks that they are the account's.
                for (i, n) in t.flash_from.iter().enumerate() {
                    let digits = n.strip_prefix('+').unwrap_or("");
                    if !(8..=15).contains(&digits.len())
                        || !digits.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(Error::config(
                            format!("phone.twilio.flash_from[{i}]"),
                            n,
                            "expected a number in E.164 form such as +15551234567",
                        ));
                    }
                }
                // A flash call's code is its caller's last 4 digits: unguessable only when
                // every ending can occur, i.e. the pool has a number for each of them.
                let endings: std::collections::HashSet<String> = t
                    .flash_from
                    .iter()
                    .map(|n| crate::phone_number::last_four(n))
                    .collect();
                if !t.flash_from.is_empty() && endings.len() < 10_000 {
                    return Err(Error::config(
                        "phone.twilio.flash_from",
                        format!("{} numbers, {} distinct last-4-digit endings", t.flash_from.len(), endings.len()),
                        "a flash call's code is its caller's last 4 digits, so the pool needs a number for each of the 10,000 endings (0000-9999) or the code can be guessed from the pool; leave it empty to dictate codes by voice to every number",
                    ));
                }
                PhoneProviderConfig::Twilio {
                    api_url: parse_url("phone.twilio.api_url", &t.api_url)?,
                    account_sid: need("account_sid", &t.account_sid)?,
                    auth_token: Secret::from(need(
                        "auth_token",
                        &auth_token.map(Secret::into_inner),
                    )?),
                    from,
                    flash_from: t.flash_from.clone(),
                }
            }
            Some(other) => {
                return Err(Error::config(
                    "phone.provider",
                    other,
                    "expected \"webhook\" or \"twilio\"",
                ))
            }
        };
        for (i, p) in self.domestic_prefixes.iter().enumerate() {
            if !(p.starts_with('+') && p.len() > 1 && p[1..].chars().all(|c| c.is_ascii_digit())) {
                return Err(Error::config(
                    format!("phone.domestic_prefixes[{i}]"),
                    p,
                    "expected a prefix such as +380",
                ));
            }
        }
        for (key, v) in [
            ("max_calls", self.max_calls),
            ("code_tries", self.code_tries),
            ("per_user_per_hour", self.per_user_per_hour),
            ("per_number_per_hour", self.per_number_per_hour),
            ("per_ip_per_hour", self.per_ip_per_hour),
            ("global_per_hour", self.global_per_hour),
        ] {
            if v == 0 {
                return Err(Error::config(
                    format!("phone.{key}"),
                    0,
                    "must be at least 1",
                ));
            }
        }
        Ok(Some(PhoneConfig {
            provider,
            domestic_prefixes: self.domestic_prefixes.clone(),
            max_calls: self.max_calls,
            code_lifetime: self.code_lifetime,
            code_tries: self.code_tries,
            per_user_per_hour: self.per_user_per_hour,
            per_number_per_hour: self.per_number_per_hour,
            per_ip_per_hour: self.per_ip_per_hour,
            global_per_hour: self.global_per_hour,
        }))
    }
}

/// A phone number in E.164 form, or an error naming the key.
pub(super) fn check_e164(key: &str, number: &str) -> Result<()> {
    crate::phone_number::normalise(number)
        .map(|_| ())
        .ok_or_else(|| {
            Error::config(
                key,
                number,
                "expected a number in E.164 form such as +15551234567",
            )
        })
}
