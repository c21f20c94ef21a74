//! `[server]`: listeners, the data directory, trusted proxies, logging, threads, connection limits, shutdown and health.

use super::*;

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
