//! The `[telegram]` section: the bot that confirms logins by number matching.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{parse_url, resolve_secret};
use crate::error::{Error, Result};

/// How the bot receives updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    /// `getUpdates` long polling (no public URL needed).
    Polling,
    /// Telegram posts updates to `webhook_url` (served on the portal listener).
    Webhook,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTelegram {
    /// The bot token from BotFather; absent = no Telegram.
    pub token: Option<super::Secret>,
    pub token_file: Option<PathBuf>,
    /// The Bot API server (Telegram's, or a private one).
    pub api_url: String,
    pub mode: TelegramMode,
    /// Public URL Telegram posts updates to, ending in `/telegram/webhook`.
    pub webhook_url: Option<String>,
    /// Secret Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`.
    pub webhook_secret: Option<super::Secret>,
    pub webhook_secret_file: Option<PathBuf>,
    /// How long a login confirmation waits for a tap.
    #[serde(with = "humantime_serde")]
    pub confirm_timeout: Duration,
    /// How long a "link a Telegram account" token lives.
    #[serde(with = "humantime_serde")]
    pub link_lifetime: Duration,
    /// Login confirmations sent per user and hour, at most.
    pub confirmations_per_hour: u32,
}

impl Default for RawTelegram {
    fn default() -> Self {
        RawTelegram {
            token: None,
            token_file: None,
            api_url: "https://api.telegram.org".into(),
            mode: TelegramMode::Polling,
            webhook_url: None,
            webhook_secret: None,
            webhook_secret_file: None,
            confirm_timeout: Duration::from_secs(120),
            link_lifetime: Duration::from_secs(600),
            confirmations_per_hour: 10,
        }
    }
}

/// The validated Telegram settings.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    pub token: super::Secret,
    pub api_url: url::Url,
    pub mode: TelegramMode,
    pub webhook_url: Option<url::Url>,
    pub webhook_secret: Option<super::Secret>,
    pub confirm_timeout: Duration,
    pub link_lifetime: Duration,
    pub confirmations_per_hour: u32,
}

impl RawTelegram {
    pub fn validate(&self) -> Result<Option<TelegramConfig>> {
        let Some(token) = resolve_secret(
            "telegram.token",
            self.token.clone().filter(|t| !t.is_empty()),
            self.token_file.as_deref(),
        )?
        else {
            return Ok(None);
        };
        let shape_ok = token.expose().split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) && secret.len() >= 20
        });
        if !shape_ok {
            return Err(Error::config(
                "telegram.token",
                "(secret)",
                "expected a token from BotFather such as 123456789:AAE...",
            ));
        }
        let api_url = parse_url("telegram.api_url", &self.api_url)?;
        for (key, d, min, max) in [
            ("confirm_timeout", self.confirm_timeout, 5, 600),
            ("link_lifetime", self.link_lifetime, 60, 3600),
        ] {
            if d < Duration::from_secs(min) || d > Duration::from_secs(max) {
                return Err(Error::config(
                    format!("telegram.{key}"),
                    humantime::format_duration(d),
                    format!("expected between {min}s and {max}s"),
                ));
            }
        }
        if self.confirmations_per_hour == 0 {
            return Err(Error::config(
                "telegram.confirmations_per_hour",
                0,
                "must be at least 1",
            ));
        }
        let (webhook_url, webhook_secret) = match self.mode {
            TelegramMode::Polling => (None, None),
            TelegramMode::Webhook => {
                let url = self.webhook_url.as_deref().ok_or_else(|| {
                    Error::config(
                        "telegram.webhook_url",
                        "",
                        "required with mode = \"webhook\"",
                    )
                })?;
                let url = parse_url("telegram.webhook_url", url)?;
                if !url.path().ends_with("/telegram/webhook") {
                    return Err(Error::config(
                        "telegram.webhook_url",
                        url.as_str(),
                        "the path must end in /telegram/webhook (the portal serves it there)",
                    ));
                }
                let secret = resolve_secret(
                    "telegram.webhook_secret",
                    self.webhook_secret.clone(),
                    self.webhook_secret_file.as_deref(),
                )?
                .filter(|s| {
                    s.len() >= 16
                        && s.expose()
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                })
                .ok_or_else(|| {
                    Error::config(
                        "telegram.webhook_secret",
                        "(secret)",
                        "required with mode = \"webhook\": 16 to 256 of A-Z a-z 0-9 _ -",
                    )
                })?;
                (Some(url), Some(secret))
            }
        };
        Ok(Some(TelegramConfig {
            token,
            api_url,
            mode: self.mode,
            webhook_url,
            webhook_secret,
            confirm_timeout: self.confirm_timeout,
            link_lifetime: self.link_lifetime,
            confirmations_per_hour: self.confirmations_per_hour,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegram_is_off_without_a_token_and_bad_values_name_their_key() {
        assert!(RawTelegram::default().validate().unwrap().is_none());
        let bad = RawTelegram {
            token: Some("not-a-token".into()),
            ..RawTelegram::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("telegram.token"));
        let webhook = RawTelegram {
            token: Some("123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
            mode: TelegramMode::Webhook,
            ..RawTelegram::default()
        };
        let err = webhook.validate().unwrap_err().to_string();
        assert!(err.contains("telegram.webhook_url"), "{err}");
        let ok = RawTelegram {
            token: Some("123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
            ..RawTelegram::default()
        };
        assert_eq!(
            ok.validate().unwrap().unwrap().api_url.as_str(),
            "https://api.telegram.org/"
        );
    }
}
