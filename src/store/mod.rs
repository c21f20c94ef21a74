//! Persistent state, as narrow async parts that callers depend on one by one:
//! [`Users`], [`Sessions`] (with a per-user index), [`Factors`], [`Tokens`] (one-time
//! tokens and challenges with a time-to-live the store enforces), [`Counters`] (sliding
//! windows for bans, send budgets and rate limits, updated atomically), a durable
//! [`Queue`] with claim/ack (the recovery hook, mail) and [`Events`] (publish/subscribe:
//! a session ended, a user changed, a Telegram attempt decided). [`Store`] is all of
//! them; [`Transactions`] changes several records in one atomic step.
//!
//! One implementation of the parts ([`KvStore`], in `kv`) runs on any ordered key-value
//! [`Engine`]: sled on disk (the default) or memory (fast unit tests of the login and
//! factor logic, with deterministic races). [`PgStore`] implements them on PostgreSQL
//! for several replicas, with a per-replica cache that NOTIFY keeps honest, and
//! [`Leadership`] for the work one replica does. [`copy`] moves a store between them. Every update of a record is one atomic
//! operation (a compare-and-set or a closure run inside it), never read-then-write
//! across an await. The fast path of a forward-auth check reads through `peek_*`, which
//! answers at once when the record is at hand (always, for these engines), with no
//! allocation or await added.
//!
//! Records are plain serde structs stored as JSON. Every write that a user would call
//! "done" (a new account, a login, a revocation) is flushed and fdatasync'ed before the
//! call returns, so a crash, `kill -9` or a power cut loses nothing committed. The one
//! exception is the `last_seen` touch of a session, which is advisory and throttled.
//! A store that cannot write answers [`crate::error::Error::StoreUnavailable`] and
//! reports why through [`Store::health`].

mod copy;
mod decoded;
mod kv;
mod memory;
mod parts;
mod postgres;
mod sled_store;

use serde::{Deserialize, Serialize};

pub use copy::{copy, Copied};
pub use kv::{Engine, KvStore, Tree, Write};
pub use memory::MemoryEngine;
pub use parts::*;
pub use postgres::PgStore;
pub use sled_store::SledStore;

use crate::error::Result;

pub use crate::basics::Timestamp;

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// argon2id PHC string.
    pub password_hash: String,
    #[serde(default)]
    pub disabled: bool,
    pub created_at: Timestamp,
    /// The second-step method used last, preselected next time.
    #[serde(default)]
    pub last_method: Option<String>,
    /// Only sessions of this generation are valid: raising it ends every session of
    /// the user in the same atomic write as the change that calls for it (a password
    /// change), so no crash can leave one behind.
    #[serde(default)]
    pub session_generation: u64,
    /// Only trusted devices of this generation skip the second step: raising it
    /// revokes them all at once (see [`crate::auth::devices`]).
    #[serde(default)]
    pub trust_generation: u64,
}

impl User {
    /// A plain active user named `username`, for tests.
    #[cfg(test)]
    pub fn for_tests(username: &str) -> User {
        User {
            username: username.to_string(),
            display_name: String::new(),
            email: String::new(),
            groups: vec![],
            password_hash: String::new(),
            disabled: false,
            created_at: 0,
            last_method: None,
            session_generation: 0,
            trust_generation: 0,
        }
    }
}

/// How far a session got through the login (ordered: more is stronger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthLevel {
    /// Password checked, second factor still owed: grants nothing but the second step.
    SecondFactorPending,
    /// Password checked, and the user has no second factor.
    OneFactor,
    /// Password and a second factor checked.
    TwoFactor,
}

/// A server-side session; the cookie only carries its signed id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: String,
    pub username: String,
    pub level: AuthLevel,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
    /// Absolute end of the session.
    pub expires_at: Timestamp,
    pub remember_me: bool,
    pub ip: String,
    pub user_agent: String,
    /// When the password was last entered in this session (for "confirm your password").
    #[serde(default)]
    pub password_at: Timestamp,
    /// When this session proved control of the account's email address (before a first
    /// second factor is added).
    #[serde(default)]
    pub identity_at: Timestamp,
    /// The user's [`User::session_generation`] when this session was made valid.
    #[serde(default)]
    pub generation: u64,
    /// How it signed in: method ids joined by `+` ("password+totp", "webauthn");
    /// empty for sessions from before it was recorded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub method: String,
}

impl User {
    /// The name to show: the display name, else the username.
    pub fn shown_name(&self) -> &str {
        if self.display_name.is_empty() {
            &self.username
        } else {
            &self.display_name
        }
    }
}

impl SessionRecord {
    /// Whether the second step is open to this session: it owes it, or a trusted device
    /// stood in for it and a rule that asks every time wants it proved now.
    pub fn second_step_open(&self) -> bool {
        self.level == AuthLevel::SecondFactorPending
            || (self.level == AuthLevel::TwoFactor && self.by_trusted_device())
    }

    /// Whether a trusted device stood in for this session's second factor.
    pub fn by_trusted_device(&self) -> bool {
        self.method.split('+').any(|m| m == TRUSTED_DEVICE)
    }

    /// How this session signed in, with `method` after it ("password" then "totp":
    /// "password+totp").
    pub fn method_then(&self, method: &str) -> String {
        if self.method.split('+').any(|m| m == method) {
            self.method.clone()
        } else if self.method.is_empty() {
            method.to_string()
        } else {
            format!("{}+{method}", self.method)
        }
    }
}

/// The sign-in method of a second factor a trusted device stood in for.
pub const TRUSTED_DEVICE: &str = "trusted_device";

/// The key of a user's record among [`Factors`]: `username \0 name`, so everything of a
/// user can be found and removed together.
pub fn user_key(username: &str, name: &str) -> String {
    format!("{username}\0{name}")
}

/// Factors or tokens: the two parts of keyed raw records, for the JSON helpers below.
#[derive(Clone, Copy)]
enum Records<'a> {
    Factors(&'a dyn Factors),
    Tokens(&'a dyn Tokens, Option<Timestamp>),
}

impl Records<'_> {
    async fn get(self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Records::Factors(f) => f.get_factor(key).await,
            Records::Tokens(t, _) => t.get_token(key).await,
        }
    }

    async fn swap(self, key: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        match self {
            Records::Factors(f) => f.swap_factor(key, old, new).await,
            Records::Tokens(t, expires_at) => t.swap_token(key, old, new, expires_at).await,
        }
    }
}

/// The compare-and-swap loop under the `update_*` and `modify_*` helpers: reads the
/// record (or `absent()` when there is none; `None` = leave it absent), lets `change`
/// edit it, and writes it back only if nobody else wrote meanwhile, retrying otherwise.
/// Nothing is written when `change` returns `None`.
async fn swap_loop<T, R>(
    records: Records<'_>,
    key: &str,
    absent: impl Fn() -> Option<T> + Send,
    mut change: impl FnMut(&mut T) -> Option<R> + Send,
) -> Result<Option<R>>
where
    T: Serialize + serde::de::DeserializeOwned + Send,
    R: Send,
{
    for _ in 0..16 {
        let raw = records.get(key).await?;
        let mut value: T = match &raw {
            Some(bytes) => serde_json::from_slice(bytes)?,
            None => match absent() {
                Some(value) => value,
                None => return Ok(None),
            },
        };
        let Some(out) = change(&mut value) else {
            return Ok(None);
        };
        let new = serde_json::to_vec(&value)?;
        if records.swap(key, raw.as_deref(), Some(&new)).await? {
            return Ok(Some(out));
        }
    }
    Err(crate::error::Error::Busy)
}

/// Reads a second-factor record.
pub async fn get_factor<T: serde::de::DeserializeOwned>(
    factors: &dyn Factors,
    key: &str,
) -> Result<Option<T>> {
    factors
        .get_factor(key)
        .await?
        .map(|v| Ok(serde_json::from_slice(&v)?))
        .transpose()
}

/// Writes a second-factor record durably.
pub async fn put_factor<T: Serialize>(factors: &dyn Factors, key: &str, value: &T) -> Result<()> {
    factors.put_factor(key, &serde_json::to_vec(value)?).await
}

/// Atomically replaces a second-factor record if it still equals `old` (its raw
/// bytes); returns whether it did. Used where a thing may succeed only once (a TOTP
/// step, a backup code).
pub async fn swap_factor<T: Serialize>(
    factors: &dyn Factors,
    key: &str,
    old: &[u8],
    new: Option<&T>,
) -> Result<bool> {
    let new = new.map(serde_json::to_vec).transpose()?;
    factors.swap_factor(key, Some(old), new.as_deref()).await
}

/// Reads a second-factor record (its default when absent), lets `change` edit it, and
/// writes it back atomically. Returns what `change` returned.
pub async fn update_factor<T, R>(
    factors: &dyn Factors,
    key: &str,
    mut change: impl FnMut(&mut T) -> R + Send,
) -> Result<R>
where
    T: Serialize + serde::de::DeserializeOwned + Default + Send,
    R: Send,
{
    swap_loop(
        Records::Factors(factors),
        key,
        || Some(T::default()),
        |v| Some(change(v)),
    )
    .await?
    .ok_or_else(|| crate::error::Error::Internal("update_factor wrote nothing".into()))
}

/// Changes an existing second-factor record atomically when `change` returns `Some`
/// (a code consumed); an absent record or `None` writes nothing.
pub async fn modify_factor<T, R>(
    factors: &dyn Factors,
    key: &str,
    change: impl FnMut(&mut T) -> Option<R> + Send,
) -> Result<Option<R>>
where
    T: Serialize + serde::de::DeserializeOwned + Send,
    R: Send,
{
    swap_loop(Records::Factors(factors), key, || None, change).await
}

/// Reads a token's JSON value (`None` when absent or expired).
pub async fn get_token<T: serde::de::DeserializeOwned>(
    tokens: &dyn Tokens,
    key: &str,
) -> Result<Option<T>> {
    tokens
        .get_token(key)
        .await?
        .map(|v| Ok(serde_json::from_slice(&v)?))
        .transpose()
}

/// Writes a token's JSON value durably, valid until `expires_at` (`None` = for good).
pub async fn put_token<T: Serialize>(
    tokens: &dyn Tokens,
    key: &str,
    value: &T,
    expires_at: Option<Timestamp>,
) -> Result<()> {
    tokens
        .put_token(key, &serde_json::to_vec(value)?, expires_at)
        .await
}

/// Changes a live token atomically when `change` returns `Some` (an attempt decided);
/// it stays valid until `expires_at`.
pub async fn modify_token<T, R>(
    tokens: &dyn Tokens,
    key: &str,
    expires_at: Option<Timestamp>,
    change: impl FnMut(&mut T) -> Option<R> + Send,
) -> Result<Option<R>>
where
    T: Serialize + serde::de::DeserializeOwned + Send,
    R: Send,
{
    swap_loop(Records::Tokens(tokens, expires_at), key, || None, change).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_methods_are_listed_once_each_in_order() {
        let mut session: SessionRecord = serde_json::from_str(
            r#"{"id":"s","username":"ann","level":"one_factor","created_at":1,"last_seen":1,
                "expires_at":9,"remember_me":false,"ip":"","user_agent":""}"#,
        )
        .unwrap();
        assert_eq!(session.method, "", "records from before it was kept");
        assert_eq!(session.method_then("password"), "password");
        session.method = "password".into();
        assert_eq!(session.method_then("totp"), "password+totp");
        session.method = "password+telegram".into();
        assert_eq!(session.method_then("telegram"), "password+telegram");
    }
}
