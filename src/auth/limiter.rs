//! Brute-force regulation: failures are counted per key (`user:NAME`, `ip:ADDR`) in a
//! sliding window; `max_retries` failures within `find_time` ban the key for `ban_time`.
//!
//! Attempts are counted *before* they are checked: [`Limiter::begin`] reserves a place
//! for the attempt (refusing it when the key is banned, or when failures plus attempts
//! still in flight already reach `max_retries`), and the attempt is then settled as a
//! failure or forgiven as a success. So a burst of parallel guesses gets exactly
//! `max_retries` of them checked, and an attempt that is never settled (an error on the
//! way) counts as a failure: fail closed.
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
    /// Attempts reserved by [`Limiter::begin`] and not settled yet.
    in_flight: u32,
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

    /// Reserves one attempt against every key, or says for how many seconds it is refused:
    /// the ban in force, or 1 s while the attempts in flight could still use up the limit.
    pub fn begin(&self, keys: &[String], now: Timestamp) -> Result<Attempt<'_>, u64> {
        let find = self.rules.find_time.as_secs();
        let mut entries = self.lock();
        let mut refused_for = 0;
        for key in keys {
            if let Some(e) = entries.get(key) {
                let left = e.banned_until.saturating_sub(now);
                let recent = e
                    .failures
                    .iter()
                    .filter(|t| now.saturating_sub(**t) < find)
                    .count();
                if left > 0 {
                    refused_for = refused_for.max(left);
                } else if recent + e.in_flight as usize >= self.rules.max_retries as usize {
                    refused_for = refused_for.max(1);
                }
            }
        }
        if refused_for > 0 {
            return Err(refused_for);
        }
        for key in keys {
            entries.entry(key.clone()).or_default().in_flight += 1;
        }
        Ok(Attempt {
            limiter: self,
            keys: keys.to_vec(),
            settled: false,
        })
    }

    /// Forgets the failures of these keys (not their bans): what a success does for the
    /// user's key.
    pub fn forget(&self, keys: &[String]) {
        let mut entries = self.lock();
        for key in keys {
            if let Some(e) = entries.get_mut(key) {
                e.failures.clear();
            }
        }
    }

    fn release(entries: &mut HashMap<String, Entry>, keys: &[String]) {
        for key in keys {
            if let Some(e) = entries.get_mut(key) {
                e.in_flight = e.in_flight.saturating_sub(1);
            }
        }
    }

    /// Records a failure against each key; returns the keys that became banned now.
    pub fn record_failure(&self, keys: &[String], now: Timestamp) -> Vec<String> {
        let mut entries = self.lock();
        self.record_failure_locked(&mut entries, keys, now)
    }

    fn record_failure_locked(
        &self,
        entries: &mut HashMap<String, Entry>,
        keys: &[String],
        now: Timestamp,
    ) -> Vec<String> {
        let find = self.rules.find_time.as_secs();
        if entries.len() > SWEEP_AT {
            entries.retain(|_, e| {
                e.in_flight > 0
                    || e.banned_until > now
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
}

/// An attempt counted by [`Limiter::begin`]; settle it with [`Attempt::failed`] or
/// [`Attempt::succeeded`]. Dropped unsettled, it counts as a failure.
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    keys: Vec<String>,
    settled: bool,
}

impl Attempt<'_> {
    /// The attempt failed: a failure against every key; returns the keys banned now.
    pub fn failed(mut self, now: Timestamp) -> Vec<String> {
        self.settled = true;
        let mut entries = self.limiter.lock();
        Limiter::release(&mut entries, &self.keys);
        self.limiter
            .record_failure_locked(&mut entries, &self.keys, now)
    }

    /// The attempt succeeded: it is forgiven, and the failures of `forget` (the user's
    /// key, never the client IP's) are cleared. Checks the bans once more, since one may
    /// have started while this attempt was being checked: `Err(seconds)` then, and the
    /// caller must not create a session.
    pub fn succeeded(mut self, forget: &[String], now: Timestamp) -> Result<(), u64> {
        self.settled = true;
        let mut entries = self.limiter.lock();
        Limiter::release(&mut entries, &self.keys);
        let left = self
            .keys
            .iter()
            .filter_map(|k| entries.get(k))
            .map(|e| e.banned_until.saturating_sub(now))
            .max()
            .unwrap_or(0);
        if left > 0 {
            return Err(left);
        }
        for key in forget {
            if let Some(e) = entries.get_mut(key) {
                e.failures.clear();
            }
        }
        Ok(())
    }

    /// The attempt was not an answer at all (e.g. "continue" pressed too early): it
    /// neither counts nor forgives.
    pub fn withdrawn(mut self) {
        self.settled = true;
        let mut entries = self.limiter.lock();
        Limiter::release(&mut entries, &self.keys);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let mut entries = self.limiter.lock();
            Limiter::release(&mut entries, &self.keys);
            self.limiter
                .record_failure_locked(&mut entries, &self.keys, crate::basics::now());
        }
    }
}

/// The limiter key of the user alone (what a success forgets).
pub fn user_key(username: &str) -> String {
    format!("user:{}", username.to_lowercase())
}

/// The limiter keys for a login attempt.
pub fn login_keys(username: &str, ip: Option<std::net::IpAddr>) -> Vec<String> {
    let mut keys = vec![user_key(username)];
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
    fn success_clears_the_users_failures_but_not_the_ips() {
        let l = limiter();
        let keys = login_keys("ann", Some("192.0.2.1".parse().unwrap()));
        l.record_failure(&keys, 1000);
        l.record_failure(&keys, 1001);
        let attempt = l.begin(&keys, 1002).unwrap();
        assert_eq!(attempt.succeeded(&[user_key("ann")], 1002), Ok(()));
        // The user starts afresh; the address keeps its two failures and the next bans it.
        let user = vec![user_key("ann")];
        assert!(l.record_failure(&user, 1003).is_empty());
        let ip = vec!["ip:192.0.2.1".to_string()];
        assert_eq!(l.record_failure(&ip, 1003), ip);
    }

    #[test]
    fn parallel_attempts_beyond_the_limit_are_refused_before_any_is_checked() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        let held: Vec<_> = (0..3).map(|_| l.begin(&keys, 1000).unwrap()).collect();
        for _ in 0..50 {
            assert!(l.begin(&keys, 1000).is_err());
        }
        let mut banned = Vec::new();
        for a in held {
            banned.extend(a.failed(1000));
        }
        assert_eq!(banned, keys);
        assert_eq!(l.banned_for(&keys, 1000), Some(300));
    }

    #[test]
    fn a_success_is_refused_when_a_ban_started_while_it_was_checked() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        let right = l.begin(&keys, 1000).unwrap();
        let wrong: Vec<_> = (0..2).map(|_| l.begin(&keys, 1000).unwrap()).collect();
        l.record_failure(&keys, 1000); // e.g. a wrong second-step answer meanwhile
        for a in wrong {
            a.failed(1000);
        }
        assert_eq!(right.succeeded(&keys, 1000), Err(300));
    }

    #[test]
    fn an_unsettled_attempt_counts_as_a_failure() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        for _ in 0..3 {
            drop(l.begin(&keys, crate::basics::now()).unwrap());
        }
        assert!(l.banned_for(&keys, crate::basics::now()).is_some());
    }

    #[test]
    fn a_withdrawn_attempt_neither_counts_nor_forgives() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        l.record_failure(&keys, 1000);
        l.record_failure(&keys, 1000);
        l.begin(&keys, 1000).unwrap().withdrawn();
        assert_eq!(l.record_failure(&keys, 1001), keys);
    }

    #[test]
    fn user_key_ignores_case() {
        assert_eq!(login_keys("Ann", None), login_keys("ann", None));
    }
}
