//! Brute-force regulation: failures are counted per key (`user:NAME`, `ip:ADDR`) in a
//! sliding window; `max_retries` failures within `find_time` ban the key for `ban_time`.
//!
//! Attempts are counted *before* they are checked: [`Limiter::begin`] reserves a place
//! for the attempt (refusing it when the key is banned, or when failures plus attempts
//! still in flight already reach `max_retries`), and the attempt is then settled as a
//! failure or forgiven as a success. So a burst of parallel guesses gets exactly
//! `max_retries` of them checked. An attempt that is never settled (an error on the way,
//! a replica that died mid-check) stays reserved and counts as a failure once it is
//! [`PENDING_LIFETIME`] old: fail closed.
//!
//! The counts live in the store's [`Counters`] (one atomic step per change, for all the
//! keys of an attempt together), so every process sharing the store shares the bans;
//! accounts themselves are never locked.

use std::sync::Arc;

use crate::config::Regulation;
use crate::error::Result;
use crate::store::{Counters, Tally, Timestamp};

/// After this many seconds an attempt that was never settled counts as a failure.
pub const PENDING_LIFETIME: u64 = 300;

/// Counts failures and bans under one name (`login`, `reset`, ...).
#[derive(Clone)]
pub struct Limiter {
    rules: Regulation,
    counters: Arc<dyn Counters>,
    name: &'static str,
}

impl Limiter {
    pub fn new(rules: Regulation, counters: Arc<dyn Counters>, name: &'static str) -> Self {
        Limiter {
            rules,
            counters,
            name,
        }
    }

    fn stored_keys(&self, keys: &[String]) -> Vec<String> {
        keys.iter().map(|k| format!("{}:{k}", self.name)).collect()
    }

    /// Brings a tally up to `now`: stale reservations become failures, failures out of
    /// the window are dropped. Returns whether the key became banned now.
    fn age(&self, tally: &mut Tally, now: Timestamp) -> bool {
        let stale: Vec<Timestamp> = tally
            .pending
            .iter()
            .filter(|t| now.saturating_sub(**t) >= PENDING_LIFETIME)
            .map(|t| t + PENDING_LIFETIME)
            .collect();
        tally
            .pending
            .retain(|t| now.saturating_sub(*t) < PENDING_LIFETIME);
        // Each counts as a failure at the moment it became stale, and ages out of the
        // window from there like any other.
        let mut banned = false;
        for at in stale {
            banned |= self.fail(tally, at, now);
        }
        let find = self.rules.find_time.as_secs();
        tally.events.retain(|t| now.saturating_sub(*t) < find);
        banned
    }

    /// Adds a failure at `at` (not after `now`); returns whether it banned the key.
    fn fail(&self, tally: &mut Tally, at: Timestamp, now: Timestamp) -> bool {
        let find = self.rules.find_time.as_secs();
        tally.events.push(at);
        tally.events.retain(|t| now.saturating_sub(*t) < find);
        if tally.events.len() >= self.rules.max_retries as usize && tally.held_until <= now {
            tally.held_until = now + self.rules.ban_time.as_secs();
            tally.events.clear();
            return true;
        }
        false
    }

    /// Seconds left on the longest ban among `keys`, if any is banned.
    pub async fn banned_for(&self, keys: &[String], now: Timestamp) -> Result<Option<u64>> {
        let tallies = self.counters.read_tallies(&self.stored_keys(keys)).await?;
        Ok(tallies
            .iter()
            .map(|t| t.held_until.saturating_sub(now))
            .filter(|left| *left > 0)
            .max())
    }

    /// Reserves one attempt against every key, or says for how many seconds it is refused:
    /// the ban in force, or 1 s while the attempts in flight could still use up the limit.
    pub async fn begin(
        &self,
        keys: &[String],
        now: Timestamp,
    ) -> Result<std::result::Result<Attempt<'_>, u64>> {
        let mut refused_for = 0;
        self.counters
            .update_tallies(&self.stored_keys(keys), &mut |tallies| {
                refused_for = 0;
                for tally in tallies.iter_mut() {
                    self.age(tally, now);
                    let left = tally.held_until.saturating_sub(now);
                    if left > 0 {
                        refused_for = refused_for.max(left);
                    } else if tally.events.len() + tally.pending.len()
                        >= self.rules.max_retries as usize
                    {
                        refused_for = refused_for.max(1);
                    }
                }
                if refused_for > 0 {
                    // The aging is worth keeping either way.
                    return true;
                }
                for tally in tallies.iter_mut() {
                    tally.pending.push(now);
                }
                true
            })
            .await?;
        if refused_for > 0 {
            return Ok(Err(refused_for));
        }
        Ok(Ok(Attempt {
            limiter: self,
            keys: keys.to_vec(),
            began: now,
            settled: false,
        }))
    }

    /// Forgets the failures of these keys (not their bans): what a success does for the
    /// user's key.
    pub async fn forget(&self, keys: &[String]) -> Result<()> {
        self.counters
            .update_tallies(&self.stored_keys(keys), &mut |tallies| {
                for tally in tallies.iter_mut() {
                    tally.events.clear();
                }
                true
            })
            .await
            .map(drop)
    }

    /// Records a failure against each key; returns the keys that became banned now.
    pub async fn record_failure(&self, keys: &[String], now: Timestamp) -> Result<Vec<String>> {
        self.settle(keys, None, now, true).await
    }

    /// Releases the reservation made at `began` (if any) and, when `failed`, records a
    /// failure against each key. Returns the keys banned now.
    async fn settle(
        &self,
        keys: &[String],
        began: Option<Timestamp>,
        now: Timestamp,
        failed: bool,
    ) -> Result<Vec<String>> {
        let mut newly_banned = Vec::new();
        self.counters
            .update_tallies(&self.stored_keys(keys), &mut |tallies| {
                newly_banned.clear();
                for (key, tally) in keys.iter().zip(tallies.iter_mut()) {
                    if let Some(began) = began {
                        if let Some(at) = tally.pending.iter().position(|t| *t == began) {
                            tally.pending.swap_remove(at);
                        }
                    }
                    let mut banned = self.age(tally, now);
                    if failed {
                        banned |= self.fail(tally, now, now);
                    }
                    if banned {
                        newly_banned.push(key.clone());
                    }
                }
                true
            })
            .await?;
        Ok(newly_banned)
    }
}

/// An attempt counted by [`Limiter::begin`]; settle it with [`Attempt::failed`] or
/// [`Attempt::succeeded`]. Dropped unsettled, its reservation stays and becomes a
/// failure after [`PENDING_LIFETIME`].
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    keys: Vec<String>,
    began: Timestamp,
    settled: bool,
}

impl Attempt<'_> {
    /// The attempt failed: a failure against every key; returns the keys banned now.
    pub async fn failed(mut self, now: Timestamp) -> Result<Vec<String>> {
        self.settled = true;
        self.limiter
            .settle(&self.keys, Some(self.began), now, true)
            .await
    }

    /// The attempt succeeded: it is forgiven, and the failures of `forget` (the user's
    /// key, never the client IP's) are cleared. Checks the bans once more, since one may
    /// have started while this attempt was being checked: `Err(seconds)` then, and the
    /// caller must not create a session.
    pub async fn succeeded(
        mut self,
        forget: &[String],
        now: Timestamp,
    ) -> Result<std::result::Result<(), u64>> {
        self.settled = true;
        // One step: release the reservation, look at the bans, and forget the failures
        // of `forget` only when none is in force.
        let limiter = self.limiter;
        let mut keys = self.keys.clone();
        keys.extend(forget.iter().filter(|k| !self.keys.contains(k)).cloned());
        let ours = self.keys.len();
        let mut left = 0;
        limiter
            .counters
            .update_tallies(&limiter.stored_keys(&keys), &mut |tallies| {
                left = 0;
                for tally in tallies[..ours].iter_mut() {
                    if let Some(at) = tally.pending.iter().position(|t| *t == self.began) {
                        tally.pending.swap_remove(at);
                    }
                    limiter.age(tally, now);
                    left = left.max(tally.held_until.saturating_sub(now));
                }
                if left == 0 {
                    for (key, tally) in keys.iter().zip(tallies.iter_mut()) {
                        if forget.contains(key) {
                            tally.events.clear();
                        }
                    }
                }
                true
            })
            .await?;
        Ok(if left > 0 { Err(left) } else { Ok(()) })
    }

    /// The attempt was not an answer at all (e.g. "continue" pressed too early): it
    /// neither counts nor forgives.
    pub async fn withdrawn(mut self) -> Result<()> {
        self.settled = true;
        self.limiter
            .settle(&self.keys, Some(self.began), self.began, false)
            .await
            .map(drop)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            tracing::debug!(keys = ?self.keys, "an attempt was not settled; it counts as a failure once it is old");
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
    use crate::store::MemoryEngine;
    use std::time::Duration;

    fn limiter() -> Limiter {
        Limiter::new(
            Regulation {
                max_retries: 3,
                find_time: Duration::from_secs(120),
                ban_time: Duration::from_secs(300),
            },
            Arc::new(MemoryEngine::store()),
            "login",
        )
    }

    #[tokio::test]
    async fn third_failure_in_window_bans_for_ban_time() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        assert!(l.record_failure(&keys, 1000).await.unwrap().is_empty());
        assert!(l.record_failure(&keys, 1010).await.unwrap().is_empty());
        assert_eq!(l.record_failure(&keys, 1020).await.unwrap(), keys);
        assert_eq!(l.banned_for(&keys, 1020).await.unwrap(), Some(300));
        assert_eq!(l.banned_for(&keys, 1319).await.unwrap(), Some(1));
        assert_eq!(l.banned_for(&keys, 1320).await.unwrap(), None);
    }

    #[tokio::test]
    async fn failures_outside_window_do_not_count() {
        let l = limiter();
        let keys = vec!["ip:192.0.2.1".to_string()];
        l.record_failure(&keys, 1000).await.unwrap();
        l.record_failure(&keys, 1010).await.unwrap();
        assert!(l.record_failure(&keys, 1200).await.unwrap().is_empty());
        assert_eq!(l.banned_for(&keys, 1200).await.unwrap(), None);
    }

    #[tokio::test]
    async fn success_clears_the_users_failures_but_not_the_ips() {
        let l = limiter();
        let keys = login_keys("ann", Some("192.0.2.1".parse().unwrap()));
        l.record_failure(&keys, 1000).await.unwrap();
        l.record_failure(&keys, 1001).await.unwrap();
        let attempt = l.begin(&keys, 1002).await.unwrap().unwrap();
        assert_eq!(
            attempt.succeeded(&[user_key("ann")], 1002).await.unwrap(),
            Ok(())
        );
        // The user starts afresh; the address keeps its two failures and the next bans it.
        let user = vec![user_key("ann")];
        assert!(l.record_failure(&user, 1003).await.unwrap().is_empty());
        let ip = vec!["ip:192.0.2.1".to_string()];
        assert_eq!(l.record_failure(&ip, 1003).await.unwrap(), ip);
    }

    #[tokio::test]
    async fn parallel_attempts_beyond_the_limit_are_refused_before_any_is_checked() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(l.begin(&keys, 1000).await.unwrap().unwrap());
        }
        for _ in 0..50 {
            assert!(l.begin(&keys, 1000).await.unwrap().is_err());
        }
        let mut banned = Vec::new();
        for a in held {
            banned.extend(a.failed(1000).await.unwrap());
        }
        assert_eq!(banned, keys);
        assert_eq!(l.banned_for(&keys, 1000).await.unwrap(), Some(300));
    }

    #[tokio::test]
    async fn a_success_is_refused_when_a_ban_started_while_it_was_checked() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        let right = l.begin(&keys, 1000).await.unwrap().unwrap();
        let mut wrong = Vec::new();
        for _ in 0..2 {
            wrong.push(l.begin(&keys, 1000).await.unwrap().unwrap());
        }
        l.record_failure(&keys, 1000).await.unwrap(); // e.g. a wrong second-step answer meanwhile
        for a in wrong {
            a.failed(1000).await.unwrap();
        }
        assert_eq!(right.succeeded(&keys, 1000).await.unwrap(), Err(300));
    }

    #[tokio::test]
    async fn an_unsettled_attempt_holds_its_place_and_then_counts_as_a_failure() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        for _ in 0..3 {
            drop(l.begin(&keys, 1000).await.unwrap().unwrap());
        }
        // Refused while the three are in flight, banned once they are stale.
        assert_eq!(l.begin(&keys, 1001).await.unwrap().err(), Some(1));
        let later = 1000 + PENDING_LIFETIME;
        assert!(l.begin(&keys, later).await.unwrap().is_err());
        assert!(l.banned_for(&keys, later).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn attempts_left_unsettled_long_ago_do_not_ban_a_later_visit() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        for _ in 0..3 {
            drop(l.begin(&keys, 1000).await.unwrap().unwrap());
        }
        // They counted as failures when they went stale, and have aged out since.
        let week_later = 1000 + 7 * 86_400;
        assert!(l.begin(&keys, week_later).await.unwrap().is_ok());
        assert_eq!(l.banned_for(&keys, week_later).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_withdrawn_attempt_neither_counts_nor_forgives() {
        let l = limiter();
        let keys = vec!["user:ann".to_string()];
        l.record_failure(&keys, 1000).await.unwrap();
        l.record_failure(&keys, 1000).await.unwrap();
        l.begin(&keys, 1000)
            .await
            .unwrap()
            .unwrap()
            .withdrawn()
            .await
            .unwrap();
        assert_eq!(l.record_failure(&keys, 1001).await.unwrap(), keys);
    }

    #[tokio::test]
    async fn limiters_sharing_a_store_share_their_bans() {
        // Two processes on one store (the replicas of #15): guesses spread over both
        // ban as if they had hit one.
        let store: Arc<dyn Counters> = Arc::new(MemoryEngine::store());
        let rules = Regulation {
            max_retries: 3,
            find_time: Duration::from_secs(120),
            ban_time: Duration::from_secs(300),
        };
        let a = Limiter::new(rules.clone(), store.clone(), "login");
        let b = Limiter::new(rules, store, "login");
        let keys = vec!["user:ann".to_string()];
        a.begin(&keys, 1000)
            .await
            .unwrap()
            .unwrap()
            .failed(1000)
            .await
            .unwrap();
        b.begin(&keys, 1000)
            .await
            .unwrap()
            .unwrap()
            .failed(1000)
            .await
            .unwrap();
        let third = a.begin(&keys, 1000).await.unwrap().unwrap();
        assert!(b.begin(&keys, 1000).await.unwrap().is_err());
        assert_eq!(third.failed(1000).await.unwrap(), keys);
        assert!(b.banned_for(&keys, 1000).await.unwrap().is_some());
    }

    #[test]
    fn user_key_ignores_case() {
        assert_eq!(login_keys("Ann", None), login_keys("ann", None));
    }
}
