//! `[recovery_hook]`: the signed webhook told about recoveries.

use super::*;

/// The panel's webhook called when someone logs in by phone (2FA is then off).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RawRecoveryHook {
    pub url: Option<String>,
    /// HMAC-SHA256 key for the `X-Gatehouse-Signature` header.
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
}

/// The validated recovery hook.
#[derive(Debug, Clone)]
pub struct RecoveryHook {
    pub url: url::Url,
    pub secret: Secret,
}

impl RawRecoveryHook {
    /// The hook, or `None` when no URL is set.
    pub(super) fn validate(&self) -> Result<Option<RecoveryHook>> {
        Ok(match self.url.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => {
                let url = parse_url("recovery_hook.url", u)?;
                let secret = resolve_secret(
                    "recovery_hook.secret",
                    self.secret.clone(),
                    self.secret_file.as_deref(),
                )?
                .ok_or_else(|| {
                    Error::config(
                        "recovery_hook.secret",
                        "",
                        "a signing secret is required with recovery_hook.url",
                    )
                })?;
                if secret.len() < 16 {
                    return Err(Error::config(
                        "recovery_hook.secret",
                        "(secret)",
                        "must be at least 16 characters long",
                    ));
                }
                Some(RecoveryHook { url, secret })
            }
        })
    }
}
