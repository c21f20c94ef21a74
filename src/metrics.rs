//! Prometheus metrics, served on their own listener (`server.metrics_listen`) so they
//! are never published through the front proxy with the portal.
//!
//! Every counter is resolved to its label set once, at start-up: on the hot path a
//! count is one atomic increment, no label hashing, no lock.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry, TextEncoder};

/// Counters of one label set each, ready to increment.
pub struct Metrics {
    registry: Registry,
    pub authz_allow: IntCounter,
    pub authz_login: IntCounter,
    pub authz_enroll: IntCounter,
    pub authz_deny: IntCounter,
    /// Requests refused with 400 because their target or host was ambiguous.
    pub refused_targets: IntCounter,
    pub login_success: IntCounter,
    pub login_failure: IntCounter,
    pub login_banned: IntCounter,
    pub second_factor_success: IntCounter,
    pub second_factor_failure: IntCounter,
    pub mail_sent: IntCounter,
    pub mail_failed: IntCounter,
    pub phone_sent: IntCounter,
    pub phone_refused: IntCounter,
    pub hook_delivered: IntCounter,
    pub hook_failed: IntCounter,
}

fn family(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), &[label]).expect("metric names are valid");
    registry
        .register(Box::new(vec.clone()))
        .expect("each metric is registered once");
    vec
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let authz = family(
            &registry,
            "gatehouse_authz_decisions_total",
            "Access decisions for proxied and forward-auth requests.",
            "decision",
        );
        let login = family(
            &registry,
            "gatehouse_password_logins_total",
            "Password login attempts.",
            "result",
        );
        let second = family(
            &registry,
            "gatehouse_second_factor_total",
            "Second-step attempts.",
            "result",
        );
        let mail = family(
            &registry,
            "gatehouse_mail_total",
            "Delivery attempts to the SMTP server.",
            "result",
        );
        let phone = family(
            &registry,
            "gatehouse_phone_sends_total",
            "Calls and SMS requested from the telephony provider.",
            "result",
        );
        let hook = family(
            &registry,
            "gatehouse_recovery_hook_total",
            "Recovery hook delivery attempts.",
            "result",
        );
        Metrics {
            authz_allow: authz.with_label_values(&["allow"]),
            authz_login: authz.with_label_values(&["login"]),
            authz_enroll: authz.with_label_values(&["enroll"]),
            authz_deny: authz.with_label_values(&["deny"]),
            refused_targets: authz.with_label_values(&["bad_request"]),
            login_success: login.with_label_values(&["success"]),
            login_failure: login.with_label_values(&["failure"]),
            login_banned: login.with_label_values(&["banned"]),
            second_factor_success: second.with_label_values(&["success"]),
            second_factor_failure: second.with_label_values(&["failure"]),
            mail_sent: mail.with_label_values(&["sent"]),
            mail_failed: mail.with_label_values(&["failed"]),
            phone_sent: phone.with_label_values(&["sent"]),
            phone_refused: phone.with_label_values(&["refused"]),
            hook_delivered: hook.with_label_values(&["delivered"]),
            hook_failed: hook.with_label_values(&["failed"]),
            registry,
        }
    }

    /// Counts one access decision.
    pub fn decision(&self, decision: &crate::auth::gate::Decision) {
        use crate::auth::gate::Decision;
        match decision {
            Decision::Allow(_) => self.authz_allow.inc(),
            Decision::Login => self.authz_login.inc(),
            Decision::Enroll => self.authz_enroll.inc(),
            Decision::Deny => self.authz_deny.inc(),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The metrics listener's app: `GET /metrics`.
pub struct MetricsApp {
    pub metrics: std::sync::Arc<Metrics>,
}

#[async_trait::async_trait]
impl pingora::apps::http_app::ServeHttp for MetricsApp {
    async fn response(
        &self,
        session: &mut pingora::protocols::http::ServerSession,
    ) -> http::Response<Vec<u8>> {
        let (status, body) = if session.req_header().uri.path() == "/metrics" {
            (200, self.metrics.render())
        } else {
            (404, "not found\n".to_string())
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "text/plain; version=0.0.4")
            .header("content-length", body.len())
            .body(body.into_bytes())
            .unwrap_or_default()
    }
}
