//! `[proxy]`: proxy mode's listener and the panels behind it.

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawProxy {
    /// The proxy-mode listener; absent = no proxy mode.
    pub listen: Option<String>,
    /// The scheme browsers use to reach the proxy (`https` behind a TLS terminator);
    /// used in links sent by email.
    pub public_scheme: String,
    /// How long connecting to a panel may take before the client gets a 502 page.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long a panel may stay silent while answering before the client gets a 504
    /// page (between reads, not in total: long downloads keep going).
    #[serde(with = "humantime_serde")]
    pub read_timeout: Duration,
    pub upstreams: Vec<RawUpstream>,
}

impl Default for RawProxy {
    fn default() -> Self {
        RawProxy {
            listen: None,
            public_scheme: "http".into(),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            upstreams: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Host names served by this panel (`panel.example.com`, `*.example.com`, or `*`).
    pub hosts: Vec<String>,
    /// `host:port` of the panel.
    pub address: String,
    #[serde(default)]
    pub tls: bool,
    /// SNI and certificate name when `tls` is on (default: the host part of `address`).
    #[serde(default)]
    pub sni: Option<String>,
    /// Where browsers reach this panel through gatehouse (`https://panel.example.com`):
    /// the base of every link gatehouse mails for it (password reset). Default: the one
    /// host in `hosts` with `proxy.public_scheme`, when `hosts` names exactly one exact
    /// host; otherwise no link is ever built from a request's `Host`.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// One panel behind the proxy.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub hosts: Vec<String>,
    pub address: SocketAddr,
    pub tls: bool,
    pub sni: String,
    /// The configured (or derived) public base URL, without a trailing `/`; `None` when
    /// it cannot be known from the configuration alone.
    pub public_url: Option<String>,
}

impl Upstream {
    /// Whether this panel serves `host` (no port, lower case).
    pub fn serves(&self, host: &str) -> bool {
        self.hosts.iter().any(|pattern| host_matches(pattern, host))
    }
}

impl RawProxy {
    pub(super) fn check(&self) -> Result<()> {
        if !matches!(self.public_scheme.as_str(), "http" | "https") {
            return Err(Error::config(
                "proxy.public_scheme",
                &self.public_scheme,
                "expected http or https",
            ));
        }
        Ok(())
    }

    /// The panels, each checked: hosts, address, TLS name and public URL.
    pub(super) fn upstreams(&self) -> Result<Vec<Upstream>> {
        self.upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let key = format!("proxy.upstreams[{i}]");
                if u.hosts.is_empty() {
                    return Err(Error::config(
                        format!("{key}.hosts"),
                        "[]",
                        "name at least one host (or `*`)",
                    ));
                }
                let hosts = u
                    .hosts
                    .iter()
                    .enumerate()
                    .map(|(j, h)| check_host_pattern(&format!("{key}.hosts[{j}]"), h))
                    .collect::<Result<Vec<_>>>()?;
                let address = std::net::ToSocketAddrs::to_socket_addrs(&u.address)
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        Error::config(
                            format!("{key}.address"),
                            &u.address,
                            "expected host:port of the panel",
                        )
                    })?;
                let sni = u.sni.clone().unwrap_or_else(|| {
                    u.address
                        .rsplit_once(':')
                        .map(|(h, _)| h.to_string())
                        .unwrap_or_default()
                });
                let public_url = match u.public_url.as_deref().filter(|s| !s.is_empty()) {
                    Some(raw) => Some(check_public_url(&format!("{key}.public_url"), raw)?),
                    None => match hosts.as_slice() {
                        [only] if !only.contains('*') => {
                            Some(format!("{}://{only}", self.public_scheme))
                        }
                        _ => None,
                    },
                };
                Ok(Upstream {
                    hosts,
                    address,
                    tls: u.tls,
                    sni,
                    public_url,
                })
            })
            .collect::<Result<Vec<_>>>()
    }
}
