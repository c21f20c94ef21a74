//! The recovery hook: when someone logs in by phone (which switches 2FA off), the
//! panel is told so it can do what the providers we model do (unlink saved bank
//! cards, say). An HTTP POST with a JSON body `{"event", "user", "time", "ip"}` and
//! the header `X-Gatehouse-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! Events wait in a persistent outbox in the store until the panel answers 2xx, retried
//! with backoff (at most every 5 minutes), so a panel that is down, even across a
//! gatehouse restart, still receives them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::basics::now;
use crate::config::RecoveryHook;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::{Space, Timestamp};

#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    body: String,
    attempts: u32,
    next_at: Timestamp,
}

/// The signature header value for a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Puts an event in the outbox (durably); the hook service delivers it.
pub fn enqueue(
    store: &dyn Store,
    hook: Option<&RecoveryHook>,
    event: &str,
    user: &str,
    ip: &str,
) -> Result<()> {
    if hook.is_none() {
        return Ok(());
    }
    let t = now();
    let body = serde_json::json!({"event": event, "user": user, "time": t, "ip": ip}).to_string();
    let key = format!("{t:012}-{}", crate::basics::random_token(8));
    store.put_raw(
        Space::Outbox,
        &key,
        &serde_json::to_vec(&Pending {
            body,
            attempts: 0,
            next_at: t,
        })?,
    )?;
    crate::audit!("recovery_hook_queued", event = event, user = user);
    Ok(())
}

fn backoff(attempts: u32) -> u64 {
    2u64.saturating_pow(attempts.min(9)).min(300)
}

async fn deliver_due(
    store: &dyn Store,
    metrics: &Metrics,
    hook: &RecoveryHook,
    client: &reqwest::Client,
) -> Result<()> {
    for (key, raw) in store.scan_raw(Space::Outbox)? {
        // The mail queue shares the outbox.
        if key.starts_with(crate::notify::email::MAIL_PREFIX) {
            continue;
        }
        let mut pending: Pending = serde_json::from_slice(&raw)?;
        if pending.next_at > now() {
            continue;
        }
        let result = client
            .post(hook.url.clone())
            .header("content-type", "application/json")
            .header(
                "x-gatehouse-signature",
                signature(hook.secret.expose(), pending.body.as_bytes()),
            )
            .body(pending.body.clone())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => {
                store.delete_raw(Space::Outbox, &key)?;
                metrics.hook_delivered.inc();
                crate::audit!("recovery_hook_delivered", attempts = pending.attempts + 1);
            }
            outcome => {
                let why = match outcome {
                    Ok(response) => format!("status {}", response.status()),
                    Err(e) => e.to_string(),
                };
                metrics.hook_failed.inc();
                pending.attempts += 1;
                pending.next_at = now() + backoff(pending.attempts);
                tracing::warn!(url = %hook.url, error = %why, attempts = pending.attempts, retry_in_s = backoff(pending.attempts), "recovery hook not delivered; will retry");
                store.put_raw(Space::Outbox, &key, &serde_json::to_vec(&pending)?)?;
            }
        }
    }
    Ok(())
}

/// Delivers the outbox, checking every second.
pub struct HookService {
    pub store: Arc<dyn Store>,
    pub hook: Option<RecoveryHook>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl BackgroundService for HookService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(hook) = self.hook.clone() else {
            return;
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {
                    if let Err(e) = deliver_due(self.store.as_ref(), &self.metrics, &hook, &client).await {
                        tracing::error!(error = %e, "recovery hook outbox failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let sig = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), 2);
        assert_eq!(backoff(5), 32);
        assert_eq!(backoff(20), 300);
    }
}
