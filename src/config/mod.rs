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

mod secret;
mod telegram;
mod webauthn;

pub use secret::Secret;
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServer {
    /// The portal and forward-auth listener; empty to run only the proxy.
    pub listen: Option<String>,
    pub data_dir: PathBuf,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Worker threads per listener (0 = one per core).
    pub threads: usize,
    /// Prometheus metrics listener (`GET /metrics`); absent = none.
    pub metrics_listen: Option<String>,
    /// Both listeners: from a request's first byte to the end of its headers.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Both listeners: how long a connection may wait for its next request.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Both listeners: open connections at most, each.
    pub max_connections: usize,
    /// Both listeners: open connections from one client address (trusted proxies are
    /// not limited: all their clients share their address).
    pub max_connections_per_ip: usize,
    /// On SIGTERM: stop accepting, then give requests in flight this long to finish
    /// before the process exits (it waits the whole time; 0 = exit at once).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How often a real write proves that the store still writes (`/api/health`
    /// answers 503 with the reason when it does not).
    #[serde(with = "humantime_serde")]
    pub health_write_interval: Duration,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: Some("127.0.0.1:9091".into()),
            data_dir: PathBuf::from("data"),
            trusted_proxies: vec!["127.0.0.0/8".into(), "::1/128".into()],
            log_format: LogFormat::Text,
            log_level: "info".into(),
            threads: 0,
            metrics_listen: None,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: 128,
            shutdown_grace: Duration::from_secs(5),
            health_write_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

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

/// argon2id parameters; the defaults are OWASP's (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Shortest password a user may choose.
    pub min_length: usize,
    /// Low-priority threads that hash passwords (0 = one fewer than the cores, at least 1).
    pub hashing_threads: usize,
}

impl Default for PasswordParams {
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            min_length: 8,
            hashing_threads: 0,
        }
    }
}

/// Second-factor settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecondFactor {
    /// The issuer shown in authenticator apps.
    pub totp_issuer: String,
    /// TOTP steps accepted either side of now (clock drift); 1 = ±30 s.
    pub totp_skew: u64,
    /// How many backup codes a set has.
    pub backup_codes: usize,
    /// Send a user without 2FA who opens a two_factor resource to the settings page to
    /// turn one on (otherwise: 403).
    pub enrollment_redirect: bool,
    /// Changes on the settings page ask for the password again when it was last entered
    /// longer ago than this.
    #[serde(with = "humantime_serde")]
    pub reauthentication_window: Duration,
    /// How long an emailed code is valid.
    #[serde(with = "humantime_serde")]
    pub email_code_lifetime: Duration,
    /// Wrong tries after which an emailed code is dead.
    pub email_code_tries: u32,
    /// Wait between two emailed codes.
    #[serde(with = "humantime_serde")]
    pub email_resend_cooldown: Duration,
    /// Emailed codes per user per hour.
    pub email_codes_per_hour: u32,
    /// Before the first second factor is added to an account that has an email address
    /// (with `[smtp]` configured), ask for a code mailed there: the password alone must
    /// not let a thief enrol their own authenticator.
    pub verify_identity_by_email: bool,
}

impl Default for SecondFactor {
    fn default() -> Self {
        SecondFactor {
            totp_issuer: "gatehouse".into(),
            totp_skew: 1,
            backup_codes: 5,
            enrollment_redirect: true,
            reauthentication_window: Duration::from_secs(10 * 60),
            email_code_lifetime: Duration::from_secs(10 * 60),
            email_code_tries: 5,
            email_resend_cooldown: Duration::from_secs(60),
            email_codes_per_hour: 6,
            verify_identity_by_email: true,
        }
    }
}

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
            from_name: "gatehouse".into(),
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
    pub password: Option<String>,
    pub from: String,
    pub from_name: String,
}

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
        token: Option<String>,
    },
    Twilio {
        api_url: url::Url,
        account_sid: String,
        auth_token: String,
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
    pub secret: String,
}

/// "Forgot password" by email.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordReset {
    /// Offer the link on the login page (needs `[smtp]`).
    pub enabled: bool,
    /// Switch off every second factor of the account when a reset link is used.
    pub disables_second_factors: bool,
    #[serde(with = "humantime_serde")]
    pub link_lifetime: Duration,
    /// Reset requests allowed per account and per client IP in an hour.
    pub requests_per_hour: u32,
}

impl Default for PasswordReset {
    fn default() -> Self {
        PasswordReset {
            enabled: true,
            disables_second_factors: true,
            link_lifetime: Duration::from_secs(30 * 60),
            requests_per_hour: 5,
        }
    }
}

/// The store's encryption key for secrets at rest.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RawStorage {
    /// Key material (at least 32 characters); absent = generated once in data_dir.
    pub encryption_key: Option<Secret>,
    pub encryption_key_file: Option<PathBuf>,
}

/// Brute-force regulation, per user and per client IP (Authelia's defaults).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Regulation {
    pub max_retries: u32,
    #[serde(with = "humantime_serde")]
    pub find_time: Duration,
    #[serde(with = "humantime_serde")]
    pub ban_time: Duration,
}

impl Default for Regulation {
    fn default() -> Self {
        Regulation {
            max_retries: 3,
            find_time: Duration::from_secs(120),
            ban_time: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAccessControl {
    pub default_policy: Policy,
    pub rules: Vec<RawRule>,
}

impl Default for RawAccessControl {
    fn default() -> Self {
        RawAccessControl {
            default_policy: Policy::OneFactor,
            rules: Vec::new(),
        }
    }
}

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

/// The validated configuration the program runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub portal_listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
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
    pub encryption_key: Option<String>,
    pub smtp: Option<SmtpConfig>,
    pub password_reset: PasswordReset,
    pub proxy_public_scheme: String,
    pub phone: Option<PhoneConfig>,
    pub recovery_hook: Option<RecoveryHook>,
    /// Passkeys and security keys; `None` = not offered.
    pub webauthn: Option<WebauthnConfig>,
    /// The Telegram bot; `None` = no Telegram.
    pub telegram: Option<TelegramConfig>,
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
    pub secret: Option<String>,
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
) -> Result<Option<String>> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(Error::config(
            key,
            "(secret)",
            format!("give either `{key}` or `{key}_file`, not both"),
        )),
        (Some(value), None) => Ok(Some(value.into_inner())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
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

impl RawPhone {
    fn validate(&self) -> Result<Option<PhoneConfig>> {
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
                    auth_token: need("auth_token", &auth_token)?,
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
fn check_e164(key: &str, number: &str) -> Result<()> {
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

        let p = &self.password;
        argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, None).map_err(|e| {
            Error::config(
                "password",
                format!("{p:?}"),
                format!("invalid argon2 parameters: {e}"),
            )
        })?;
        if p.memory_kib < 8 * 1024 || p.iterations < 1 {
            return Err(Error::config(
                "password.memory_kib",
                p.memory_kib,
                "at least 8192 KiB (OWASP's minimum is 19456 with 2 iterations)",
            ));
        }
        if self.regulation.max_retries == 0 {
            return Err(Error::config(
                "regulation.max_retries",
                0,
                "must be at least 1",
            ));
        }

        let sf = &self.second_factor;
        if sf.totp_skew > 2 {
            return Err(Error::config(
                "second_factor.totp_skew",
                sf.totp_skew,
                "at most 2 steps (±60 s); fix clocks instead",
            ));
        }
        if !(1..=20).contains(&sf.backup_codes) {
            return Err(Error::config(
                "second_factor.backup_codes",
                sf.backup_codes,
                "between 1 and 20",
            ));
        }
        if sf.totp_issuer.is_empty() || sf.totp_issuer.contains(':') {
            return Err(Error::config(
                "second_factor.totp_issuer",
                &sf.totp_issuer,
                "must be non-empty and contain no `:`",
            ));
        }
        if self.password.min_length < 8 {
            return Err(Error::config(
                "password.min_length",
                self.password.min_length,
                "at least 8 (NIST SP 800-63B)",
            ));
        }
        let encryption_key = resolve_secret(
            "storage.encryption_key",
            self.storage.encryption_key.clone(),
            self.storage.encryption_key_file.as_deref(),
        )?;
        if encryption_key.as_ref().is_some_and(|k| k.len() < 32) {
            return Err(Error::config(
                "storage.encryption_key",
                "(secret)",
                "must be at least 32 characters long",
            ));
        }

        let smtp = match self.smtp.host.as_deref().filter(|h| !h.is_empty()) {
            None => None,
            Some(host) => {
                let s = &self.smtp;
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
        };
        if !matches!(self.proxy.public_scheme.as_str(), "http" | "https") {
            return Err(Error::config(
                "proxy.public_scheme",
                &self.proxy.public_scheme,
                "expected http or https",
            ));
        }
        if self.second_factor.email_code_tries == 0 || self.second_factor.email_codes_per_hour == 0
        {
            return Err(Error::config(
                "second_factor.email_code_tries",
                self.second_factor.email_code_tries,
                "tries and codes per hour must be at least 1",
            ));
        }

        let phone = self.phone.validate()?;
        let recovery_hook = match self.recovery_hook.url.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => {
                let url = parse_url("recovery_hook.url", u)?;
                let secret = resolve_secret(
                    "recovery_hook.secret",
                    self.recovery_hook.secret.clone(),
                    self.recovery_hook.secret_file.as_deref(),
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
        };

        let access = AccessRules::compile(
            self.access_control.default_policy,
            &self.access_control.rules,
        )?;

        let upstreams = self
            .proxy
            .upstreams
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
                            Some(format!("{}://{only}", self.proxy.public_scheme))
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
            .collect::<Result<Vec<_>>>()?;

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
        let webauthn = self.webauthn.validate(
            domain.as_deref(),
            portal_url.as_ref(),
            &proxy_hosts,
            &self.proxy.public_scheme,
        )?;
        Ok(Config {
            portal_listen,
            metrics_listen,
            data_dir: self.server.data_dir,
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
            second_factor: self.second_factor,
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
            config.session.secret.as_deref(),
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
