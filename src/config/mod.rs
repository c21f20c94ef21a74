//! Configuration: figment layers (embedded defaults < TOML file < `GATEHOUSE_*` environment,
//! `__` for nesting) are read into [`RawConfig`], then checked once into [`Config`].
//!
//! Every check happens here, at start-up; a bad value stops the program with the key,
//! the value and the reason. Secrets may be given inline (`secret`) or as a file
//! (`secret_file`); the rest of the program only sees the resolved value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::host_pattern::{check_host_pattern, host_matches};
use crate::policy::{AccessRules, Policy, RawRule};

mod access_control;
mod password;
mod phone;
mod portal;
mod proxy;
mod recovery_hook;
mod second_factor;
mod secret;
mod server;
mod session;
mod smtp;
mod storage;
mod telegram;
mod webauthn;

pub use access_control::*;
pub use password::*;
pub use phone::*;
pub use portal::*;
pub use proxy::*;
pub use recovery_hook::*;
pub use second_factor::*;
pub use secret::Secret;
pub use server::*;
pub use session::*;
pub use smtp::*;
pub use storage::*;
pub use telegram::{RawTelegram, TelegramConfig, TelegramMode};
pub use webauthn::{RawWebauthn, WebauthnConfig};

/// Where `gatehouse` looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/gatehouse.toml";

/// The configuration as written by the operator, before validation.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    pub portal: RawPortal,
    pub session: RawSession,
    pub password: PasswordParams,
    pub regulation: Regulation,
    pub access_control: RawAccessControl,
    pub proxy: RawProxy,
    pub second_factor: SecondFactor,
    pub storage: RawStorage,
    pub smtp: RawSmtp,
    pub password_reset: PasswordReset,
    pub phone: RawPhone,
    pub recovery_hook: RawRecoveryHook,
    pub webauthn: RawWebauthn,
    pub telegram: RawTelegram,
}

/// The validated configuration the program runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub portal_listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// Where the store lives.
    pub storage: StorageBackend,
    pub trusted_proxies: Vec<IpNet>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub threads: usize,
    /// Deadlines and connection limits of both listeners.
    pub limits: crate::http::guard::Limits,
    /// How long requests in flight may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// How often the store's health is proven by a real write.
    pub health_write_interval: Duration,
    /// Connect and read timeouts towards the panels.
    pub upstream_connect_timeout: Duration,
    pub upstream_read_timeout: Duration,
    pub portal_url: Option<url::Url>,
    pub default_redirect: Option<url::Url>,
    pub protected_domains: Vec<String>,
    pub session: SessionConfig,
    pub password: PasswordParams,
    pub regulation: Regulation,
    pub access: AccessRules,
    pub proxy_listen: Option<SocketAddr>,
    pub upstreams: Vec<Upstream>,
    pub second_factor: SecondFactor,
    /// Inline or file key for secrets at rest; `None` = generated in the data directory.
    pub encryption_key: Option<Secret>,
    pub smtp: Option<SmtpConfig>,
    pub password_reset: PasswordReset,
    pub proxy_public_scheme: String,
    pub phone: Option<PhoneConfig>,
    pub recovery_hook: Option<RecoveryHook>,
    /// Passkeys and security keys; `None` = not offered.
    pub webauthn: Option<WebauthnConfig>,
    /// The operator's brand (`[portal] name`, `logo`, `accent`, `support`).
    pub brand: crate::texts::brand::Brand,
    /// Days each user's recent activity is kept (`[portal] activity_days`; 0: not kept).
    pub activity_days: u64,
    /// The Telegram bot; `None` = no Telegram.
    pub telegram: Option<TelegramConfig>,
}

/// Reads the layers: embedded defaults, then the TOML file (if it exists or was named),
/// then `GATEHOUSE_*` variables.
pub fn figment(path: Option<&Path>) -> Figment {
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    match path {
        Some(path) => figment = figment.merge(Toml::file_exact(path)),
        None => figment = figment.merge(Toml::file(DEFAULT_CONFIG_PATH)),
    }
    // GATEHOUSE_CONFIG names the file (see the CLI); it is not a key.
    figment.merge(Env::prefixed("GATEHOUSE_").ignore(&["config"]).split("__"))
}

/// Extracts the raw configuration, turning figment's error into one with the key.
pub fn extract(figment: &Figment) -> Result<RawConfig> {
    figment.extract::<RawConfig>().map_err(|e| {
        let key = e.path.join(".");
        Error::Config {
            key: if key.is_empty() { "(file)".into() } else { key },
            value: match e.metadata.as_ref() {
                Some(m) => match &m.source {
                    Some(source) => format!(" (from {} {source})", m.name),
                    None => format!(" (from {})", m.name),
                },
                None => String::new(),
            },
            reason: e.kind.to_string(),
        }
    })
}

/// Loads and validates in one go.
pub fn load(path: Option<&Path>) -> Result<Config> {
    if let Some(path) = path {
        if !path.exists() {
            return Err(Error::config(
                "--config",
                path.display().to_string(),
                "no such file",
            ));
        }
    }
    extract(&figment(path))?.validate()
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr> {
    value
        .parse()
        .map_err(|_| Error::config(key, value, "expected an address such as 127.0.0.1:9091"))
}

pub(crate) fn parse_url(key: &str, value: &str) -> Result<url::Url> {
    let parsed =
        url::Url::parse(value).map_err(|e| Error::config(key, value, format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::config(
            key,
            value,
            "expected an absolute http:// or https:// URL",
        ));
    }
    Ok(parsed)
}

/// A public base URL: `http(s)://host[:port]` with nothing after it but an optional `/`.
fn check_public_url(key: &str, value: &str) -> Result<String> {
    let reason = "expected http(s)://host[:port] with no path, query or credentials";
    let url =
        url::Url::parse(value).map_err(|e| Error::config(key, value, format!("{reason}: {e}")))?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return Err(Error::config(key, value, reason));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Reads a secret given inline or as a file; both at once is an error.
pub fn resolve_secret(
    key: &str,
    inline: Option<Secret>,
    file: Option<&Path>,
) -> Result<Option<Secret>> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(Error::config(
            key,
            "(secret)",
            format!("give either `{key}` or `{key}_file`, not both"),
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(Secret::from(s.trim_end_matches(['\n', '\r']))))
            .map_err(|e| {
                Error::config(
                    format!("{key}_file"),
                    path.display().to_string(),
                    e.to_string(),
                )
            }),
        (None, None) => Ok(None),
    }
}

impl RawConfig {
    /// Checks every value and builds the runtime [`Config`].
    pub fn validate(self) -> Result<Config> {
        for (key, value) in [
            ("server.header_timeout", self.server.header_timeout),
            ("server.keepalive_timeout", self.server.keepalive_timeout),
            (
                "server.health_write_interval",
                self.server.health_write_interval,
            ),
            ("proxy.connect_timeout", self.proxy.connect_timeout),
            ("proxy.read_timeout", self.proxy.read_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::config(key, "0s", "must be longer than zero"));
            }
        }
        for (key, value) in [
            ("server.max_connections", self.server.max_connections),
            (
                "server.max_connections_per_ip",
                self.server.max_connections_per_ip,
            ),
        ] {
            if value == 0 {
                return Err(Error::config(key, "0", "must be at least 1"));
            }
        }
        let portal_listen = self
            .server
            .listen
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_addr("server.listen", s))
            .transpose()?;
        let proxy_listen = self
            .proxy
            .listen
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_addr("proxy.listen", s))
            .transpose()?;
        let metrics_listen = self
            .server
            .metrics_listen
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_addr("server.metrics_listen", s))
            .transpose()?;
        // Two listeners on one address would share the port (SO_REUSEPORT) and split
        // the requests between them.
        for (key, a, other_key, b) in [
            ("proxy.listen", proxy_listen, "server.listen", portal_listen),
            (
                "server.metrics_listen",
                metrics_listen,
                "server.listen",
                portal_listen,
            ),
            (
                "server.metrics_listen",
                metrics_listen,
                "proxy.listen",
                proxy_listen,
            ),
        ] {
            if let (Some(a), Some(b)) = (a, b) {
                if a == b {
                    return Err(Error::config(
                        key,
                        a.to_string(),
                        format!("the same address as {other_key}: each listener needs its own"),
                    ));
                }
            }
        }
        if portal_listen.is_none() && proxy_listen.is_none() {
            return Err(Error::config(
                "server.listen",
                "",
                "set server.listen, proxy.listen or both",
            ));
        }
        if proxy_listen.is_some() && self.proxy.upstreams.is_empty() {
            return Err(Error::config(
                "proxy.upstreams",
                "[]",
                "proxy.listen is set but no upstream panel is configured",
            ));
        }
        let trusted_proxies = self
            .server
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        Error::config(
                            format!("server.trusted_proxies[{i}]"),
                            s,
                            "expected a CIDR such as 10.0.0.0/8",
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        if self
            .server
            .log_level
            .parse::<tracing_subscriber::filter::EnvFilter>()
            .is_err()
        {
            return Err(Error::config(
                "server.log_level",
                &self.server.log_level,
                "expected a level such as info or debug",
            ));
        }
        let threads = if self.server.threads == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            self.server.threads
        };

        let portal_url = match self.portal.url.as_deref() {
            Some(url) => Some(parse_url("portal.url", url)?),
            None => portal_listen.map(|addr| {
                url::Url::parse(&format!("http://{addr}/")).expect("a socket address makes a URL")
            }),
        };
        let default_redirect = self
            .portal
            .default_redirect
            .as_deref()
            .map(|u| parse_url("portal.default_redirect", u))
            .transpose()?;

        let session = self.session;
        if session.cookie_name.is_empty()
            || !session
                .cookie_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::config(
                "session.cookie_name",
                &session.cookie_name,
                "use letters, digits, `_` and `-` only",
            ));
        }
        let domain = session
            .domain
            .as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| check_host_pattern("session.domain", d.trim_start_matches('.')))
            .transpose()?;
        if let Some(d) = &domain {
            if d.contains('*') {
                return Err(Error::config(
                    "session.domain",
                    d,
                    "a cookie domain cannot contain `*`",
                ));
            }
        }
        // The portal sets the session cookie for the domain; a portal outside it could
        // never set a cookie the panels see: every login would loop.
        if let (Some(d), Some(url)) = (&domain, self.portal.url.as_ref().and(portal_url.as_ref())) {
            let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
            if host != *d && !host.ends_with(&format!(".{d}")) {
                return Err(Error::config(
                    "portal.url",
                    url.as_str(),
                    format!("its host is outside session.domain ({d}): the portal could not set a cookie the panels receive, and every login would loop"),
                ));
            }
        }
        if session.same_site == SameSite::None && !session.secure {
            return Err(Error::config(
                "session.same_site",
                "none",
                "SameSite=None needs session.secure = true",
            ));
        }
        if session.inactivity.is_zero() {
            return Err(Error::config(
                "session.inactivity",
                "0s",
                "must be longer than zero",
            ));
        }
        if session.expiration < session.inactivity {
            return Err(Error::config(
                "session.expiration",
                humantime::format_duration(session.expiration).to_string(),
                "must not be shorter than session.inactivity",
            ));
        }
        let secret = resolve_secret(
            "session.secret",
            session.secret,
            session.secret_file.as_deref(),
        )?;
        if let Some(s) = &secret {
            if s.len() < 32 {
                return Err(Error::config(
                    "session.secret",
                    "(secret)",
                    "must be at least 32 characters long",
                ));
            }
        }

        // The checks run in the order they always have, so a configuration with
        // several mistakes names the same key first.
        self.password.check()?;
        self.regulation.check()?;
        self.second_factor.check()?;
        let brand = self.portal.brand()?;
        if self.portal.activity_days > 365 {
            return Err(Error::config(
                "portal.activity_days",
                self.portal.activity_days,
                "at most 365 (0 keeps no activity)",
            ));
        }
        // Unless set on their own, the apps' issuer and the passkeys' relying party
        // carry the panel's name.
        let mut second_factor = self.second_factor.clone();
        if second_factor.totp_issuer.is_empty() {
            second_factor.totp_issuer = brand.name.replace(':', " ");
        }
        let mut raw_webauthn = self.webauthn.clone();
        if raw_webauthn.rp_name.is_empty() {
            raw_webauthn.rp_name = brand.name.clone();
        }
        self.password.check_min_length()?;
        let encryption_key = self.storage.encryption_key()?;
        let storage = self
            .storage
            .backend(secret.is_some(), encryption_key.is_some())?;
        let mut smtp = self.smtp.validate()?;
        if let Some(smtp) = smtp.as_mut().filter(|s| s.from_name.is_empty()) {
            smtp.from_name = brand.name.clone();
        }
        self.proxy.check()?;
        self.second_factor.check_email_limits()?;
        let phone = self.phone.validate()?;
        let recovery_hook = self.recovery_hook.validate()?;

        let access = AccessRules::compile(
            self.access_control.default_policy,
            &self.access_control.rules,
        )?;

        let upstreams = self.proxy.upstreams()?;

        let mut protected_domains = Vec::new();
        for (i, d) in self.portal.protected_domains.iter().enumerate() {
            protected_domains.push(check_host_pattern(
                &format!("portal.protected_domains[{i}]"),
                d,
            )?);
        }
        if let Some(d) = &domain {
            protected_domains.push(d.clone());
            protected_domains.push(format!("*.{d}"));
        }
        for u in &upstreams {
            protected_domains.extend(u.hosts.iter().filter(|h| *h != "*").cloned());
        }
        protected_domains.extend(access.domains().filter(|h| *h != "*").map(str::to_string));
        if let Some(host) = portal_url.as_ref().and_then(|u| u.host_str()) {
            protected_domains.push(host.to_ascii_lowercase());
        }
        protected_domains.sort();
        protected_domains.dedup();

        let proxy_hosts: Vec<String> = upstreams
            .iter()
            .flat_map(|u| u.hosts.iter().cloned())
            .collect();
        let webauthn = raw_webauthn.validate(
            domain.as_deref(),
            portal_url.as_ref(),
            &proxy_hosts,
            &self.proxy.public_scheme,
        )?;
        Ok(Config {
            portal_listen,
            metrics_listen,
            data_dir: self.server.data_dir,
            storage,
            trusted_proxies: trusted_proxies.clone(),
            log_format: self.server.log_format,
            log_level: self.server.log_level,
            threads,
            limits: crate::http::guard::Limits {
                header_timeout: self.server.header_timeout,
                keepalive_timeout: self.server.keepalive_timeout,
                max_connections: self.server.max_connections,
                max_connections_per_ip: self.server.max_connections_per_ip,
                trusted_proxies: trusted_proxies.clone(),
            },
            shutdown_grace: self.server.shutdown_grace,
            health_write_interval: self.server.health_write_interval,
            upstream_connect_timeout: self.proxy.connect_timeout,
            upstream_read_timeout: self.proxy.read_timeout,
            portal_url,
            default_redirect,
            protected_domains,
            session: SessionConfig {
                cookie_name: session.cookie_name,
                domain,
                secure: session.secure,
                same_site: session.same_site,
                inactivity: session.inactivity,
                expiration: session.expiration,
                remember_me: session.remember_me.filter(|d| !d.is_zero()),
                secret,
            },
            password: self.password,
            regulation: self.regulation,
            access,
            proxy_listen,
            upstreams,
            second_factor,
            brand,
            activity_days: self.portal.activity_days,
            encryption_key,
            smtp,
            password_reset: self.password_reset,
            proxy_public_scheme: self.proxy.public_scheme,
            phone,
            recovery_hook,
            webauthn,
            telegram: self.telegram.validate()?,
        })
    }
}

/// The effective configuration as TOML, secrets masked (for `gatehouse config check`).
pub fn render_masked(raw: &RawConfig) -> String {
    // Every secret is a [`Secret`], which serialises as its mask.
    toml_string(raw)
}

fn toml_string(raw: &RawConfig) -> String {
    // figment re-serialises through its own value type; TOML output is via serde_json's
    // structure printed as dotted keys, which keeps us free of a second TOML crate.
    let value = serde_json::to_value(raw).unwrap_or_default();
    let mut out = String::new();
    print_toml_table(&mut out, "", &value);
    out
}

fn print_toml_table(out: &mut String, prefix: &str, value: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(map) = value else { return };
    let mut tables = Vec::new();
    if !prefix.is_empty() {
        out.push_str(&format!("\n[{prefix}]\n"));
    }
    for (key, v) in map {
        match v {
            Value::Null => {}
            Value::Object(_) => tables.push((key, v)),
            Value::Array(items) if items.iter().any(Value::is_object) => {
                for item in items {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    out.push_str(&format!("\n[[{name}]]\n"));
                    if let Value::Object(fields) = item {
                        for (k, fv) in fields {
                            if !fv.is_null() {
                                out.push_str(&format!("{k} = {fv}\n"));
                            }
                        }
                    }
                }
            }
            other => out.push_str(&format!("{key} = {other}\n")),
        }
    }
    for (key, v) in tables {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        print_toml_table(out, &name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Config> {
        let figment =
            Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(text));
        extract(&figment)?.validate()
    }

    fn error_text(text: &str) -> String {
        from_toml(text)
            .expect_err("config should be refused")
            .to_string()
    }

    #[test]
    fn the_panels_name_is_the_default_issuer_relying_party_and_sender() {
        let config = from_toml(
            "[portal]\nname = \"Acme: Admin\"\n[webauthn]\nrp_id = \"example.com\"\n\
             [smtp]\nhost = \"mail.example.com\"\nfrom = \"a@example.com\"\n",
        )
        .unwrap();
        assert_eq!(config.brand.name, "Acme: Admin");
        assert_eq!(config.second_factor.totp_issuer, "Acme  Admin");
        assert_eq!(config.webauthn.unwrap().rp_name, "Acme: Admin");
        assert_eq!(config.smtp.unwrap().from_name, "Acme: Admin");
        // Set on their own, they stay.
        let config =
            from_toml("[portal]\nname = \"Acme\"\n[second_factor]\ntotp_issuer = \"Acme Ops\"\n")
                .unwrap();
        assert_eq!(config.second_factor.totp_issuer, "Acme Ops");
        // Nothing named: gatehouse.
        assert_eq!(
            from_toml("").unwrap().second_factor.totp_issuer,
            "gatehouse"
        );
    }

    #[test]
    fn bad_brand_settings_name_their_key_and_reason() {
        let e = error_text("[portal]\naccent = \"blue\"\n");
        assert!(e.contains("portal.accent") && e.contains("#0b5fff"), "{e}");
        let e = error_text("[portal]\nlogo = \"/nonexistent/logo.png\"\n");
        assert!(
            e.contains("portal.logo") && e.contains("cannot be read"),
            "{e}"
        );
        let e = error_text("[portal]\nlogo = \"/etc/hostname\"\n");
        assert!(e.contains("portal.logo") && e.contains(".png"), "{e}");
        let e = error_text("[portal]\nname = \"  \"\n");
        assert!(e.contains("portal.name"), "{e}");
        let e = error_text("[portal]\nsupport = \"https://\"\n");
        assert!(e.contains("portal.support"), "{e}");
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let config = from_toml("").unwrap();
        assert_eq!(config.portal_listen.unwrap().port(), 9091);
        assert_eq!(config.regulation.max_retries, 3);
        assert!(config.session.secure);
    }

    #[test]
    fn bad_listen_address_names_the_key_and_value() {
        let text = error_text("[server]\nlisten = \"not-an-address\"");
        assert!(
            text.contains("server.listen") && text.contains("not-an-address"),
            "{text}"
        );
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let text = error_text("[session]\ncookie_nmae = \"x\"");
        assert!(text.contains("cookie_nmae"), "{text}");
    }

    #[test]
    fn bad_duration_names_the_key() {
        let text = error_text("[session]\ninactivity = \"soon\"");
        assert!(text.contains("session.inactivity"), "{text}");
    }

    #[test]
    fn bad_rule_regex_names_the_rule() {
        let text = error_text("[[access_control.rules]]\ndomain = [\"a.example.com\"]\nresources = [\"([\"]\npolicy = \"bypass\"");
        assert!(
            text.contains("access_control.rules[0].resources[0]"),
            "{text}"
        );
    }

    #[test]
    fn bad_network_names_the_rule() {
        let text =
            error_text("[[access_control.rules]]\nnetworks = [\"10.0.0.0/99\"]\npolicy = \"deny\"");
        assert!(
            text.contains("access_control.rules[0].networks[0]"),
            "{text}"
        );
    }

    #[test]
    fn short_session_secret_is_refused() {
        let text = error_text("[session]\nsecret = \"short\"");
        assert!(
            text.contains("session.secret") && text.contains("32"),
            "{text}"
        );
        assert!(
            !text.contains("short\""),
            "the secret itself must not be printed: {text}"
        );
    }

    #[test]
    fn secret_inline_and_file_together_is_refused() {
        let text = error_text("[session]\nsecret = \"0123456789012345678901234567890123\"\nsecret_file = \"/nonexistent\"");
        assert!(text.contains("not both"), "{text}");
    }

    #[test]
    fn no_secret_shows_in_the_runtime_configuration() {
        let config = from_toml(
            "[session]\nsecret = \"session-secret-0123456789abcdefghij\"\n\
             [storage]\nencryption_key = \"encryption-key-0123456789abcdefghij\"\n\
             [smtp]\nhost = \"mail.example.test\"\nusername = \"u\"\npassword = \"smtp-password-1\"\nfrom = \"g@example.test\"\n",
        )
        .unwrap();
        let shown = format!("{config:?}");
        for secret in ["session-secret", "encryption-key", "smtp-password"] {
            assert!(!shown.contains(secret), "{secret} shows: {shown}");
        }
        assert!(shown.contains("********"));
    }

    #[test]
    fn secret_is_read_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "abcdefghijabcdefghijabcdefghij1234\n").unwrap();
        let config = from_toml(&format!(
            "[session]\nsecret_file = {:?}",
            path.display().to_string()
        ))
        .unwrap();
        assert_eq!(
            config.session.secret.as_ref().map(|s| s.expose()),
            Some("abcdefghijabcdefghijabcdefghij1234")
        );
    }

    #[test]
    fn proxy_without_upstream_is_refused() {
        let text = error_text("[proxy]\nlisten = \"127.0.0.1:8080\"");
        assert!(text.contains("proxy.upstreams"), "{text}");
    }

    #[test]
    fn samesite_none_requires_secure() {
        let text = error_text("[session]\nsame_site = \"none\"\nsecure = false");
        assert!(text.contains("session.same_site"), "{text}");
    }

    #[test]
    fn protected_domains_include_cookie_domain_and_upstreams() {
        let config = from_toml(
            "[session]\ndomain = \"example.com\"\n[proxy]\nlisten = \"127.0.0.1:0\"\n[[proxy.upstreams]]\nhosts = [\"panel.other.org\"]\naddress = \"127.0.0.1:1\"",
        )
        .unwrap();
        assert!(config
            .protected_domains
            .contains(&"*.example.com".to_string()));
        assert!(config
            .protected_domains
            .contains(&"panel.other.org".to_string()));
    }

    #[test]
    fn host_pattern_matching() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "evilexample.com"));
        assert!(host_matches("Panel.example.com", "panel.example.com"));
        assert!(host_matches("*", "anything"));
    }
}
