//! The `[webauthn]` section: who the relying party is and which pages may run the
//! ceremonies.
//!
//! By default the relying party id is the session cookie's domain (so a passkey works on
//! every host the cookie covers), else the portal URL's host, else the one host name the
//! proxy serves, else `localhost` when the proxy serves any host (the demo). With several
//! proxy hosts and no cookie domain there is no single right answer: passkeys stay off
//! until `webauthn.rp_id` is set.
//! The allowed origins default to that domain and its subdomains on any port, with the
//! portal's and the proxy's scheme; listing `origins` replaces that with exact origins.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWebauthn {
    /// Offer passkeys and security keys at all.
    pub enabled: bool,
    /// The relying party id (a domain); credentials are bound to it for good.
    pub rp_id: Option<String>,
    /// The name authenticators show (empty: the panel's name, `portal.name`).
    pub rp_name: String,
    /// Exact origins (`https://auth.example.com`) allowed to run ceremonies.
    pub origins: Vec<String>,
    /// How long a started ceremony stays valid.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RawWebauthn {
    fn default() -> Self {
        RawWebauthn {
            enabled: true,
            rp_id: None,
            rp_name: String::new(),
            origins: Vec::new(),
            timeout: Duration::from_secs(300),
        }
    }
}

/// The validated WebAuthn settings.
#[derive(Debug, Clone)]
pub struct WebauthnConfig {
    pub rp_id: String,
    pub rp_name: String,
    pub origins: Vec<url::Url>,
    /// Derived origins cover the domain's subdomains on any port; listed ones are exact.
    pub allow_subdomains: bool,
    pub timeout: Duration,
}

fn is_domain(value: &str) -> bool {
    !value.is_empty()
        && value.parse::<std::net::IpAddr>().is_err()
        && value.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl RawWebauthn {
    /// Builds the settings. `cookie_domain`, `portal_url`, `proxy_hosts` (the host
    /// patterns of every upstream) and `proxy_scheme` supply the defaults. `None` when
    /// WebAuthn is off, or when no domain can be derived.
    pub fn validate(
        &self,
        cookie_domain: Option<&str>,
        portal_url: Option<&url::Url>,
        proxy_hosts: &[String],
        proxy_scheme: &str,
    ) -> Result<Option<WebauthnConfig>> {
        if !self.enabled {
            return Ok(None);
        }
        if self.timeout < Duration::from_secs(30) || self.timeout > Duration::from_secs(3600) {
            return Err(Error::config(
                "webauthn.timeout",
                humantime::format_duration(self.timeout),
                "expected between 30s and 1h",
            ));
        }
        let rp_id = match self.rp_id.as_deref().filter(|s| !s.is_empty()) {
            Some(id) => {
                let id = id.to_ascii_lowercase();
                if !is_domain(&id) {
                    return Err(Error::config(
                        "webauthn.rp_id",
                        id,
                        "expected a domain name such as example.com (WebAuthn does not allow IP addresses)",
                    ));
                }
                id
            }
            None => {
                let named_portal = portal_url
                    .and_then(|u| u.host_str())
                    .map(str::to_ascii_lowercase)
                    .filter(|h| is_domain(h));
                let mut named_hosts: Vec<&String> =
                    proxy_hosts.iter().filter(|h| is_domain(h)).collect();
                named_hosts.dedup();
                let derived = cookie_domain
                    .map(|d| d.trim_start_matches('.').to_ascii_lowercase())
                    .or(named_portal)
                    .or_else(|| match named_hosts.as_slice() {
                        [one] => Some(one.to_string()),
                        [] if proxy_hosts.iter().any(|h| h == "*") || portal_url.is_none() => {
                            Some("localhost".into())
                        }
                        _ => None,
                    });
                match derived.filter(|d| is_domain(d)) {
                    Some(d) => d,
                    None => {
                        tracing::warn!(
                            "passkeys are off: no single domain for WebAuthn; set webauthn.rp_id (or session.domain)"
                        );
                        return Ok(None);
                    }
                }
            }
        };
        let (origins, allow_subdomains) = if self.origins.is_empty() {
            let mut schemes: Vec<&str> = Vec::new();
            if let Some(u) = portal_url {
                schemes.push(u.scheme());
            }
            schemes.push(proxy_scheme);
            if rp_id == "localhost" || rp_id.ends_with(".localhost") {
                schemes.push("http");
            }
            schemes.sort();
            schemes.dedup();
            let origins = schemes
                .into_iter()
                .map(|scheme| {
                    url::Url::parse(&format!("{scheme}://{rp_id}")).map_err(|e| {
                        Error::config(
                            "webauthn.rp_id",
                            &rp_id,
                            format!("not usable in a URL: {e}"),
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (origins, true)
        } else {
            let mut origins = Vec::new();
            for (i, o) in self.origins.iter().enumerate() {
                let key = format!("webauthn.origins[{i}]");
                let url = url::Url::parse(o)
                    .map_err(|e| Error::config(&key, o, format!("not a URL: {e}")))?;
                let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
                if !matches!(url.scheme(), "http" | "https") || !is_domain(&host) {
                    return Err(Error::config(
                        &key,
                        o,
                        "expected an origin such as https://auth.example.com",
                    ));
                }
                if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                    return Err(Error::config(
                        &key,
                        o,
                        format!("the host must be {rp_id} or a subdomain of it (webauthn.rp_id)"),
                    ));
                }
                origins.push(url);
            }
            (origins, false)
        };
        Ok(Some(WebauthnConfig {
            rp_id,
            rp_name: self.rp_name.clone(),
            origins,
            allow_subdomains,
            timeout: self.timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(domain: Option<&str>, portal: Option<&str>) -> Option<WebauthnConfig> {
        let portal = portal.map(|p| url::Url::parse(p).unwrap());
        RawWebauthn::default()
            .validate(domain, portal.as_ref(), &[], "https")
            .unwrap()
    }

    #[test]
    fn relying_party_defaults_to_the_cookie_domain_then_the_portal_host() {
        let c = derived(Some("example.com"), Some("https://auth.example.com")).unwrap();
        assert_eq!(c.rp_id, "example.com");
        assert!(c.allow_subdomains);
        assert_eq!(c.origins[0].as_str(), "https://example.com/");
        let c = derived(None, Some("https://auth.example.com")).unwrap();
        assert_eq!(c.rp_id, "auth.example.com");
        assert_eq!(derived(None, None).unwrap().rp_id, "localhost");
    }

    #[test]
    fn a_portal_reached_by_ip_address_turns_passkeys_off() {
        assert!(derived(None, Some("http://127.0.0.1:9091")).is_none());
    }

    #[test]
    fn one_proxied_host_is_the_relying_party_several_need_a_setting() {
        let raw = RawWebauthn::default();
        let portal = url::Url::parse("http://127.0.0.1:9091").unwrap();
        let one = raw
            .validate(None, Some(&portal), &["panel.example.com".into()], "https")
            .unwrap()
            .unwrap();
        assert_eq!(one.rp_id, "panel.example.com");
        let two = raw
            .validate(
                None,
                None,
                &["a.example.com".into(), "b.example.com".into()],
                "https",
            )
            .unwrap();
        assert!(two.is_none());
        let any = raw
            .validate(None, None, &["*".into()], "http")
            .unwrap()
            .unwrap();
        assert_eq!(any.rp_id, "localhost");
    }

    #[test]
    fn bad_relying_party_settings_name_the_key() {
        let raw = RawWebauthn {
            rp_id: Some("10.0.0.1".into()),
            ..RawWebauthn::default()
        };
        let err = raw
            .validate(None, None, &[], "https")
            .unwrap_err()
            .to_string();
        assert!(err.contains("webauthn.rp_id"), "{err}");
        let raw = RawWebauthn {
            rp_id: Some("example.com".into()),
            origins: vec!["https://evil.test".into()],
            ..RawWebauthn::default()
        };
        let err = raw
            .validate(None, None, &[], "https")
            .unwrap_err()
            .to_string();
        assert!(err.contains("webauthn.origins[0]"), "{err}");
    }
}
