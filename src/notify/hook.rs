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
use sha2::Sha256;

use crate::basics::now;
use crate::config::RecoveryHook;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::store::Queue;

/// The store queue that holds the events.
pub const QUEUE: &str = "hook";

/// How long a claimed event is left to one delivery before another may try it.
const LEASE: u64 = 300;

/// The signature header value for a body.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Puts an event in the outbox (durably); the hook service delivers it.
pub async fn enqueue(
    queue: &dyn Queue,
    hook: Option<&RecoveryHook>,
    event: &str,
    user: &str,
    ip: &str,
) -> Result<()> {
    if hook.is_none() {
        return Ok(());
    }
    let body =
        serde_json::json!({"event": event, "user": user, "time": now(), "ip": ip}).to_string();
    queue.enqueue(QUEUE, body.as_bytes()).await?;
    crate::audit!("recovery_hook_queued", event = event, user = user);
    Ok(())
}

fn backoff(attempts: u32) -> u64 {
    2u64.saturating_pow(attempts.min(9)).min(300)
}

/// Claims the events that are due and delivers them; each is acknowledged on a 2xx or
/// put back with backoff.
async fn deliver_due(
    queue: &dyn Queue,
    metrics: &Metrics,
    hook: &RecoveryHook,
    client: &reqwest::Client,
) -> Result<()> {
    for item in queue.claim(QUEUE, 16, LEASE).await? {
        let body = String::from_utf8_lossy(&item.payload).into_owned();
        let result = client
            .post(hook.url.clone())
            .header("content-type", "application/json")
            .header(
                "x-gatehouse-signature",
                signature(hook.secret.expose(), body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        let attempts = item.attempts + 1;
        match result {
            Ok(response) if response.status().is_success() => {
                queue.ack(QUEUE, &item.id).await?;
                metrics.hook_delivered.inc();
                crate::audit!("recovery_hook_delivered", attempts = attempts);
            }
            outcome => {
                let why = match outcome {
                    Ok(response) => format!("status {}", response.status()),
                    Err(e) => e.to_string(),
                };
                metrics.hook_failed.inc();
                tracing::warn!(url = %hook.url, error = %why, attempts, retry_in_s = backoff(attempts), "recovery hook not delivered; will retry");
                queue.retry(QUEUE, &item, backoff(attempts)).await?;
            }
        }
    }
    Ok(())
}

/// Delivers the outbox, checking every second.
pub struct HookService {
    pub queue: Arc<dyn Queue>,
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
                    if let Err(e) = deliver_due(self.queue.as_ref(), &self.metrics, &hook, &client).await {
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
