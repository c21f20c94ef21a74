//! `[smtp]`: the mail server.

use super::*;

/// The SMTP server mail goes out through; no `host` = no email.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSmtp {
    pub host: Option<String>,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub from_name: String,
}

impl Default for RawSmtp {
    fn default() -> Self {
        RawSmtp {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            password_file: None,
            from: "gatehouse@localhost".into(),
            // Empty: the panel's name (`portal.name`).
            from_name: String::new(),
        }
    }
}

/// How to talk TLS to the SMTP server.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on localhost).
    None,
    /// STARTTLS, usually port 587.
    Starttls,
    /// Implicit TLS, usually port 465.
    Tls,
}

/// The validated SMTP settings.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub from_name: String,
}

impl RawSmtp {
    /// The mail settings, or `None` when no SMTP host is set.
    pub(super) fn validate(&self) -> Result<Option<SmtpConfig>> {
        Ok(match self.host.as_deref().filter(|h| !h.is_empty()) {
            None => None,
            Some(host) => {
                let s = self;
                if s.from.parse::<lettre::Address>().is_err() {
                    return Err(Error::config(
                        "smtp.from",
                        &s.from,
                        "expected an email address such as gatehouse@example.com",
                    ));
                }
                let password = resolve_secret(
                    "smtp.password",
                    s.password.clone(),
                    s.password_file.as_deref(),
                )?;
                if password.is_some() && s.username.is_none() {
                    return Err(Error::config(
                        "smtp.username",
                        "",
                        "a password is set but no username",
                    ));
                }
                Some(SmtpConfig {
                    host: host.to_string(),
                    port: s.port,
                    tls: s.tls,
                    username: s.username.clone(),
                    password,
                    from: s.from.clone(),
                    from_name: s.from_name.clone(),
                })
            }
        })
    }
}
