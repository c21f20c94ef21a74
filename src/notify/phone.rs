//! Telephony: a [`PhoneProvider`] places dictated voice calls, flash calls and SMS.
//!
//! Two providers, chosen by `phone.provider`:
//! - `webhook`: gatehouse POSTs `{"kind": "voice"|"flash"|"sms", "to", "code" | "text",
//!   "lang"}` to a URL with a bearer token; for a flash call it names the code, the
//!   provider calls from a number of its pool that ends in those 4 digits and answers
//!   `{"from": "+..."}`, which must end in the code.
//! - `twilio`: Twilio's REST API (`/2010-04-01/Accounts/{Sid}/Calls.json` with TwiML
//!   `<Say>` for the dictated code, `Messages.json` for SMS; basic auth). Flash calls
//!   come from the number of `phone.twilio.flash_from` that ends in the code, so that
//!   pool must cover all 10,000 endings (checked at start); without one, codes are
//!   dictated to every number.
//!
//! Either way gatehouse draws the code itself, 4 random digits: a flash-call code is
//! never something an attacker can predict from the numbers calls come from.
//!
//! Both are the production clients; tests point them at loopback servers speaking the
//! same wire format.

use std::time::Duration;

use async_trait::async_trait;
use rand::seq::SliceRandom;
use serde::Deserialize;

use crate::config::PhoneProviderConfig;
use crate::error::{Error, Result};
use crate::phone_number::{last_four, normalise};

/// What a provider can do.
#[async_trait]
pub trait PhoneProvider: Send + Sync {
    /// A call in which a robot dictates `code` digit by digit, twice.
    async fn voice(&self, to: &str, code: &str, lang: &str) -> Result<()>;
    /// Whether flash calls can carry an unguessable code (see the module header).
    fn can_flash(&self) -> bool;
    /// A call that rings once, from a number whose last 4 digits are `code`.
    async fn flash(&self, to: &str, code: &str) -> Result<()>;
    /// A text message.
    async fn sms(&self, to: &str, text: &str) -> Result<()>;
}

/// Builds the configured provider.
pub fn provider(config: &PhoneProviderConfig) -> Box<dyn PhoneProvider> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap_or_default();
    match config.clone() {
        PhoneProviderConfig::Webhook { url, token } => Box::new(Webhook { client, url, token }),
        PhoneProviderConfig::Twilio {
            api_url,
            account_sid,
            auth_token,
            from,
            flash_from,
        } => Box::new(Twilio {
            client,
            api_url,
            account_sid,
            auth_token,
            from,
            flash_from,
        }),
    }
}

fn provider_error(what: &str, e: impl std::fmt::Display) -> Error {
    tracing::error!(error = %e, "telephony provider: {what} failed");
    Error::Internal(format!("telephony provider: {what} failed"))
}

struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    token: Option<crate::config::Secret>,
}

#[derive(Deserialize)]
struct FlashAnswer {
    from: String,
}

impl Webhook {
    async fn post(&self, body: serde_json::Value) -> Result<reqwest::Response> {
        let mut request = self.client.post(self.url.clone()).json(&body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request
            .send()
            .await
            .map_err(|e| provider_error("request", e))?;
        if !response.status().is_success() {
            return Err(provider_error(
                "request",
                format!("status {}", response.status()),
            ));
        }
        Ok(response)
    }
}

#[async_trait]
impl PhoneProvider for Webhook {
    async fn voice(&self, to: &str, code: &str, lang: &str) -> Result<()> {
        self.post(serde_json::json!({"kind": "voice", "to": to, "code": code, "lang": lang}))
            .await
            .map(|_| ())
    }

    fn can_flash(&self) -> bool {
        true
    }

    async fn flash(&self, to: &str, code: &str) -> Result<()> {
        let answer: FlashAnswer = self
            .post(serde_json::json!({"kind": "flash", "to": to, "code": code}))
            .await?
            .json()
            .await
            .map_err(|e| provider_error("flash answer", e))?;
        let from = normalise(&answer.from)
            .ok_or_else(|| provider_error("flash answer", "no valid caller number"))?;
        if last_four(&from) != code {
            return Err(provider_error(
                "flash answer",
                "the provider called from a number that does not end in the requested code",
            ));
        }
        Ok(())
    }

    async fn sms(&self, to: &str, text: &str) -> Result<()> {
        self.post(serde_json::json!({"kind": "sms", "to": to, "text": text}))
            .await
            .map(|_| ())
    }
}

struct Twilio {
    client: reqwest::Client,
    api_url: url::Url,
    account_sid: String,
    auth_token: crate::config::Secret,
    from: String,
    flash_from: Vec<String>,
}

#[derive(Deserialize)]
struct TwilioCall {
    from: String,
}

/// TwiML that reads `code` digit by digit with pauses, twice, in `lang`.
pub fn dictation_twiml(code: &str, lang: &str) -> String {
    let t = crate::texts::for_lang(lang);
    let (voice_lang, intro, again) = (t.call_voice_language, t.call_intro, t.call_again);
    let digits = code
        .chars()
        .map(String::from)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "<Response><Say language=\"{voice_lang}\">{intro}: {digits}.</Say><Pause length=\"1\"/><Say language=\"{voice_lang}\">{again}: {digits}.</Say></Response>"
    )
}

impl Twilio {
    async fn post(&self, resource: &str, form: &[(&str, &str)]) -> Result<reqwest::Response> {
        let url = self
            .api_url
            .join(&format!(
                "2010-04-01/Accounts/{}/{resource}",
                self.account_sid
            ))
            .map_err(|e| provider_error("url", e))?;
        let response = self
            .client
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .form(form)
            .send()
            .await
            .map_err(|e| provider_error(resource, e))?;
        if !response.status().is_success() {
            return Err(provider_error(
                resource,
                format!("status {}", response.status()),
            ));
        }
        Ok(response)
    }
}

#[async_trait]
impl PhoneProvider for Twilio {
    async fn voice(&self, to: &str, code: &str, lang: &str) -> Result<()> {
        let twiml = dictation_twiml(code, lang);
        self.post(
            "Calls.json",
            &[("To", to), ("From", &self.from), ("Twiml", &twiml)],
        )
        .await
        .map(|_| ())
    }

    fn can_flash(&self) -> bool {
        !self.flash_from.is_empty()
    }

    async fn flash(&self, to: &str, code: &str) -> Result<()> {
        let callers: Vec<&String> = self
            .flash_from
            .iter()
            .filter(|n| last_four(n) == code)
            .collect();
        let from = callers
            .choose(&mut rand::rngs::OsRng)
            .ok_or_else(|| {
                provider_error(
                    "flash call",
                    "no number of phone.twilio.flash_from ends in the code",
                )
            })?
            .to_string();
        let call: TwilioCall = self
            .post(
                "Calls.json",
                &[
                    ("To", to),
                    ("From", &from),
                    ("Timeout", "5"),
                    ("Twiml", "<Response><Hangup/></Response>"),
                ],
            )
            .await?
            .json()
            .await
            .map_err(|e| provider_error("flash answer", e))?;
        match normalise(&call.from) {
            Some(used) if last_four(&used) != code => Err(provider_error(
                "flash answer",
                "Twilio called from another number than the one asked for",
            )),
            _ => Ok(()),
        }
    }

    async fn sms(&self, to: &str, text: &str) -> Result<()> {
        self.post(
            "Messages.json",
            &[("To", to), ("From", &self.from), ("Body", text)],
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_to_e164() {
        assert_eq!(
            normalise("+380 (50) 123-45-67").as_deref(),
            Some("+380501234567")
        );
        assert_eq!(
            normalise("+1 415 555 2671").as_deref(),
            Some("+14155552671")
        );
        assert_eq!(normalise("0501234567"), None, "a country code is required");
        assert_eq!(normalise("+380 12"), None);
        assert_eq!(normalise("call me"), None);
    }

    #[test]
    fn flash_code_is_the_last_four_digits() {
        assert_eq!(last_four("+14155552671"), "2671");
    }

    #[test]
    fn dictation_reads_digits_twice() {
        let twiml = dictation_twiml("4821", "uk");
        assert_eq!(twiml.matches("4, 8, 2, 1").count(), 2, "{twiml}");
        assert!(twiml.contains("uk-UA") && twiml.contains("<Pause"));
    }
}
