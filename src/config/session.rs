//! `[session]`: the session cookie and lifetimes.

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSession {
    pub cookie_name: String,
    pub domain: Option<String>,
    pub secure: bool,
    pub same_site: SameSite,
    #[serde(with = "humantime_serde")]
    pub inactivity: Duration,
    #[serde(with = "humantime_serde")]
    pub expiration: Duration,
    /// Lifetime of a "remember me" session; absent = the checkbox is not offered.
    #[serde(with = "humantime_serde")]
    pub remember_me: Option<Duration>,
    pub secret: Option<Secret>,
    pub secret_file: Option<PathBuf>,
}

impl Default for RawSession {
    fn default() -> Self {
        RawSession {
            cookie_name: "gatehouse_session".into(),
            domain: None,
            secure: true,
            same_site: SameSite::Lax,
            inactivity: Duration::from_secs(60 * 60),
            expiration: Duration::from_secs(12 * 60 * 60),
            remember_me: Some(Duration::from_secs(30 * 24 * 60 * 60)),
            secret: None,
            secret_file: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// Session cookie and lifetime settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub cookie_name: String,
    pub domain: Option<String>,
    pub secure: bool,
    pub same_site: SameSite,
    pub inactivity: Duration,
    pub expiration: Duration,
    pub remember_me: Option<Duration>,
    /// Inline or file secret; `None` = use (or create) the one in the data directory.
    pub secret: Option<Secret>,
}
