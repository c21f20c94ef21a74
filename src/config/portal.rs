//! `[portal]`: the portal's public URL and where to go after login.

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RawPortal {
    /// The portal's external URL, e.g. `https://auth.example.com`.
    pub url: Option<String>,
    /// Where to go after a login that had no (valid) `rd`.
    pub default_redirect: Option<String>,
    /// Extra domains `rd` may point into (the cookie domain, proxy hosts and rule
    /// domains are always allowed).
    pub protected_domains: Vec<String>,
}
