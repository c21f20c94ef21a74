//! Brute-force regulation: failures are counted per key (`user:NAME`, `ip:ADDR`) in a
//! sliding window; `max_retries` failures within `find_time` ban the key for `ban_time`.
//!
//! State is in memory behind a std mutex that is never held across an await. A restart
//! clears bans (as Authelia's memory provider does); accounts themselves are never locked.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::config::Regulation;
use crate::store::Timestamp;

#[derive(Default)]
struct Entry {
    failures: VecDeque<Timestamp>,
    banned_until: Timestamp,
}

/// Counts failures and bans.
pub struct Limiter {
    rules: Regulation,
    entries: Mutex<HashMap<String, Entry>>,
}

/// Past this many tracked keys, stale ones are swept on the next failure.
const SWEEP_AT: usize = 100_000;

impl Limiter {
    pub fn new(rules: Regulation) -> Self {
        Limiter {
            rules,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds left on the longest ban among `keys`, if any is banned.
    pub fn banned_for(&self, keys: &[String], now: Timestamp) -> Option<u64> {
        let entries = self.lock();
        keys.iter()
            .filter_map(|k| entries.get(k))
            .map(|e| e.banned_until.saturating_sub(now))
            .filter(|left| *left > 0)
            .max()
    }

    /// Records a failure against each key; returns the keys that became banned now.
    pub fn record_failure(&self, keys: &[String], now: Timestamp) -> Vec<String> {
        let find = self.rules.find_time.as_secs();
        let mut entries = self.lock();
        if entries.len() > SWEEP_AT {
            entries.retain(|_, e| {
                e.banned_until > now
                    || e.failures
                        .back()
                        .is_some_and(|t| now.saturating_sub(*t) < find)
            });
        }
        let mut newly_banned = Vec::new();
        for key in keys {
            let entry = entries.entry(key.clone()).or_default();
            while entry
                .failures
                .front()
                .is_some_and(|t| now.saturating_sub(*t) >= find)
            {
                entry.failures.pop_front();
            }
            entry.failures.push_back(now);
            if entry.failures.len() >= self.rules.max_retries as usize && entry.banned_until <= now
            {
                entry.banned_until = now + self.rules.ban_time.as_secs();
                entry.failures.clear();
                newly_banned.push(key.clone());
            }
        }
        newly_banned
    }

    /// A success forgets the failures of these keys (not their bans).
    pub fn record_success(&self, keys: &[String]) {
        let mut entries = self.lock();
        for key in keys {
            if let Some(e) = entries.get_mut(key) {
                e.failures.clear();
            }
        }
    }
}

/// The limiter keys for a login attempt.
pub fn login_keys(username: &str, ip: Option<std::net::IpAddr>) -> Vec<String> {
    let mut keys = vec![format!("user:{}", username.to_lowercase())];
    if let Some(ip) = ip {
        keys.push(format!("ip:{ip}"));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter() -> Limiter {
        Limiter::new(Regulation {
            max_retries: 3,
            find_time: Duration::from_secs(120),
            ban_time: Duration::from_secs(300),
        })
    }

    #[test]
    fn third_failure_in_window_bans_for_ban_time() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        assert!(l.record_failure(&keys, 1000).is_empty());
        assert!(l.record_failure(&keys, 1010).is_empty());
        assert_eq!(l.record_failure(&keys, 1020), keys);
        assert_eq!(l.banned_for(&keys, 1020), Some(300));
        assert_eq!(l.banned_for(&keys, 1319), Some(1));
        assert_eq!(l.banned_for(&keys, 1320), None);
    }

    #[test]
    fn failures_outside_window_do_not_count() {
        let l = limiter();
        let keys = vec!["ip:192.0.2.1".to_string()];
        l.record_failure(&keys, 1000);
        l.record_failure(&keys, 1010);
        assert!(l.record_failure(&keys, 1200).is_empty());
        assert_eq!(l.banned_for(&keys, 1200), None);
    }

    #[test]
    fn success_clears_failures() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        l.record_failure(&keys, 1000);
        l.record_failure(&keys, 1001);
        l.record_success(&keys);
        assert!(l.record_failure(&keys, 1002).is_empty());
    }

    #[test]
    fn user_key_ignores_case() {
        assert_eq!(login_keys("Ann", None), login_keys("ann", None));
    }
}
