//! What happened on each account, kept for its user to see on the settings page: the
//! audit events about a user's security (sign-ins and how, failed attempts, factors
//! turned on and off, sessions ended, recovery, trusted devices), stored per user for
//! `portal.activity_days`.
//!
//! `audit!` hands every event to [`note`]. The kept ones go through a bounded channel
//! to a writer in the background, so the request that caused them never waits for the
//! store; when the channel is full an event is dropped with a warning (the log line
//! stays), never waited for. Events of names no account has are not written.

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::basics::{random_token, Timestamp};
use crate::error::Result;
use crate::store::Store;

/// The audit events a user sees in their activity list.
pub const KEPT: &[&str] = &[
    "login",
    "login_failed",
    "login_refused_banned",
    "second_factor_failed",
    "second_factor_refused_banned",
    "telegram_refused_not_me",
    "factor_enabled",
    "factor_disabled",
    "two_factor_reset",
    "password_changed",
    "password_reset_used",
    "session_ended",
    "sessions_ended",
    "sessions_revoked",
    "backup_codes_generated",
    "device_trusted",
    "trusted_devices_revoked",
    "trusted_device_forgotten",
    "new_device_alert",
];

/// Events anyone can cause by naming a user (a wrong password, a refusal): kept once
/// per user, event and address a minute, and never given more than half the backlog,
/// so a flood of them neither fills the store nor crowds out the other events.
const NOISY: &[&str] = &[
    "login_failed",
    "login_refused_banned",
    "second_factor_failed",
    "second_factor_refused_banned",
];

const PREFIX: &str = "activity\0";
/// Events waiting for the writer, at most.
const BACKLOG: usize = 4096;

/// One kept event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// When, in nanoseconds since the epoch (orders the events of one second).
    pub nanos: u64,
    pub event: String,
    #[serde(default)]
    pub ip: String,
    /// The method, factor or reason the event names ("totp", "cli"), or empty.
    #[serde(default)]
    pub detail: String,
}

impl Entry {
    /// When, in seconds.
    pub fn at(&self) -> Timestamp {
        self.nanos / 1_000_000_000
    }
}

static SINK: OnceLock<mpsc::Sender<(String, Entry)>> = OnceLock::new();

/// Called by `audit!` for every event: queues the kept ones for their user's list.
pub fn note(event: &str, fields: &[(&str, String)]) {
    let Some(sink) = SINK.get() else {
        return;
    };
    if !KEPT.contains(&event) {
        return;
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(user) = field("user") else {
        return;
    };
    let detail = ["method", "factor", "reason", "by"]
        .iter()
        .find_map(|name| field(name))
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let entry = Entry {
        nanos,
        event: event.to_string(),
        ip: field("ip").unwrap_or_default(),
        detail,
    };
    if NOISY.contains(&event) && sink.capacity() < BACKLOG / 2 {
        return;
    }
    if sink.try_send((user, entry)).is_err() {
        tracing::warn!(
            event,
            "activity backlog full: this event is in the log only"
        );
    }
}

/// The user's kept events, newest first, at most `limit`.
pub async fn recent(store: &dyn Store, username: &str, limit: usize) -> Result<Vec<Entry>> {
    let mut entries: Vec<(String, Entry)> = store
        .tokens_with_prefix(&format!("{PREFIX}{username}\0"))
        .await?
        .into_iter()
        .filter_map(|(key, raw)| Some((key, serde_json::from_slice(&raw).ok()?)))
        .collect();
    entries.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(entries.into_iter().take(limit).map(|(_, e)| e).collect())
}

/// Removes a user's list (an account being deleted).
pub async fn forget_user(store: &dyn Store, username: &str) -> Result<()> {
    for (key, _) in store
        .tokens_with_prefix(&format!("{PREFIX}{username}\0"))
        .await?
    {
        store.delete_token(&key).await?;
    }
    Ok(())
}

/// Writes one event to its user's list, kept `days`.
pub async fn keep(store: &dyn Store, username: &str, entry: &Entry, days: u64) -> Result<()> {
    if store.get_user(username).await?.is_none() {
        return Ok(());
    }
    // Sortable by time: the key carries it in fixed-width hex, then a tie-breaker. A
    // noisy event's key is the same all minute for its address: one record, rewritten.
    let key = if NOISY.contains(&entry.event.as_str()) {
        let minute = entry.at() / 60 * 60 * 1_000_000_000;
        format!(
            "{PREFIX}{username}\0{minute:016x}{}-{}",
            entry.event, entry.ip
        )
    } else {
        format!(
            "{PREFIX}{username}\0{:016x}{}",
            entry.nanos,
            random_token(6)
        )
    };
    store
        .put_token(
            &key,
            &serde_json::to_vec(entry)?,
            Some(entry.at() + days * 86_400),
        )
        .await
}

/// The background writer of kept events (see the module header).
pub struct ActivityWriter {
    store: Arc<dyn Store>,
    days: u64,
    events: Mutex<Option<mpsc::Receiver<(String, Entry)>>>,
}

impl ActivityWriter {
    /// The writer for this process; from now on `audit!` queues kept events for it.
    /// `None` when activity is off or a writer exists already.
    pub fn install(store: Arc<dyn Store>, days: u64) -> Option<Self> {
        if days == 0 {
            return None;
        }
        let (sender, events) = mpsc::channel(BACKLOG);
        SINK.set(sender).ok()?;
        Some(ActivityWriter {
            store,
            days,
            events: Mutex::new(Some(events)),
        })
    }
}

#[async_trait]
impl BackgroundService for ActivityWriter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut events) = self.events.lock().ok().and_then(|mut e| e.take()) else {
            return;
        };
        loop {
            tokio::select! {
                next = events.recv() => {
                    let Some((user, entry)) = next else { return };
                    if let Err(e) = keep(self.store.as_ref(), &user, &entry, self.days).await {
                        tracing::warn!(error = %e, user, "activity event not kept");
                    }
                }
                _ = shutdown.changed() => {
                    // What is queued already is written before the process goes.
                    while let Ok((user, entry)) = events.try_recv() {
                        let _ = keep(self.store.as_ref(), &user, &entry, self.days).await;
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::basics::now;
    use crate::store::{MemoryEngine, User, Users as _};

    #[tokio::test]
    async fn kept_events_are_listed_newest_first_and_only_for_accounts_that_exist() {
        let store = MemoryEngine::store();
        store.put_user(&User::for_tests("ann")).await.unwrap();
        let t0 = now();
        for (i, event) in ["login_failed", "login", "factor_enabled"]
            .iter()
            .enumerate()
        {
            let entry = Entry {
                nanos: t0 * 1_000_000_000 + i as u64,
                event: event.to_string(),
                ip: "10.0.0.1".into(),
                detail: String::new(),
            };
            keep(&store, "ann", &entry, 30).await.unwrap();
            keep(&store, "nobody", &entry, 30).await.unwrap();
        }
        let events: Vec<String> = recent(&store, "ann", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events, ["factor_enabled", "login", "login_failed"]);
        assert_eq!(recent(&store, "ann", 2).await.unwrap().len(), 2);
        assert!(recent(&store, "nobody", 10).await.unwrap().is_empty());

        // A flood of wrong passwords from one address is one line a minute.
        for i in 0..50 {
            let entry = Entry {
                nanos: (t0 - t0 % 60) * 1_000_000_000 + i,
                event: "login_failed".into(),
                ip: "203.0.113.9".into(),
                detail: String::new(),
            };
            keep(&store, "ann", &entry, 30).await.unwrap();
        }
        assert_eq!(recent(&store, "ann", 100).await.unwrap().len(), 4);
    }
}
