//! Persistent state behind a [`Store`] trait, with sled as the default implementation.
//!
//! Records are plain serde structs stored as JSON. Every write that a user would call
//! "done" (a new account, a login, a revocation) is flushed and fdatasync'ed before the
//! call returns, so a crash, `kill -9` or a power cut loses nothing committed. The one
//! exception is the `last_seen` touch of a session, which is advisory and throttled.
//! A store that cannot write answers [`crate::error::Error::StoreUnavailable`] and
//! reports why through [`Store::health`].

mod sled_store;

use serde::{Deserialize, Serialize};

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
}

/// A keyspace for records other than users and sessions. Keys inside a space start with
/// `username \0` so everything of a user can be found and removed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Second-factor records (`user \0 totp`, `user \0 backup`, ...).
    Factors,
    /// One-time tokens looked up by their hash (`reset \0 hash`), and unique-value
    /// indexes (`phone \0 +380...` → user).
    Tokens,
    /// Events waiting to be delivered (the recovery hook), oldest first.
    Outbox,
}

impl Space {
    pub fn tree_name(self) -> &'static str {
        match self {
            Space::Factors => "factors",
            Space::Tokens => "tokens",
            Space::Outbox => "outbox",
        }
    }
}

/// The key of a user's record in a [`Space`].
pub fn user_key(username: &str, name: &str) -> String {
    format!("{username}\0{name}")
}

/// Reads a JSON record.
pub fn get_json<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    space: Space,
    key: &str,
) -> Result<Option<T>> {
    store
        .get_raw(space, key)?
        .map(|v| Ok(serde_json::from_slice(&v)?))
        .transpose()
}

/// Writes a JSON record durably.
pub fn put_json<T: Serialize>(store: &dyn Store, space: Space, key: &str, value: &T) -> Result<()> {
    store.put_raw(space, key, &serde_json::to_vec(value)?)
}

/// Atomically replaces a JSON record if it still equals `old` (its raw bytes);
/// returns whether it did. Used where a thing may succeed only once (a TOTP step,
/// a backup code).
pub fn swap_json<T: Serialize>(
    store: &dyn Store,
    space: Space,
    key: &str,
    old: &[u8],
    new: Option<&T>,
) -> Result<bool> {
    let new = new.map(serde_json::to_vec).transpose()?;
    store.compare_and_swap_raw(space, key, Some(old), new.as_deref())
}

/// The compare-and-swap loop under [`update_json`] and [`modify_json`]: reads the record
/// (or `absent()` when there is none; `None` = leave it absent), lets `change` edit it,
/// and writes it back only if nobody else wrote meanwhile, retrying otherwise. Nothing
/// is written when `change` returns `None`.
fn swap_loop<T, R>(
    store: &dyn Store,
    space: Space,
    key: &str,
    absent: impl Fn() -> Option<T>,
    mut change: impl FnMut(&mut T) -> Option<R>,
) -> Result<Option<R>>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    for _ in 0..16 {
        let raw = store.get_raw(space, key)?;
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
        if store.compare_and_swap_raw(space, key, raw.as_deref(), Some(&new))? {
            return Ok(Some(out));
        }
    }
    Err(crate::error::Error::Busy)
}

/// Reads a JSON record (its default when absent), lets `change` edit it, and writes it
/// back atomically (see [`swap_loop`]). Returns what `change` returned.
pub fn update_json<T, R>(
    store: &dyn Store,
    space: Space,
    key: &str,
    mut change: impl FnMut(&mut T) -> R,
) -> Result<R>
where
    T: Serialize + serde::de::DeserializeOwned + Default,
{
    swap_loop(
        store,
        space,
        key,
        || Some(T::default()),
        |v| Some(change(v)),
    )?
    .ok_or_else(|| crate::error::Error::Internal("update_json wrote nothing".into()))
}

/// Changes an existing JSON record atomically when `change` returns `Some` (a code
/// consumed, an attempt decided); an absent record or `None` writes nothing. Returns
/// what `change` returned.
pub fn modify_json<T, R>(
    store: &dyn Store,
    space: Space,
    key: &str,
    change: impl FnMut(&mut T) -> Option<R>,
) -> Result<Option<R>>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    swap_loop(store, space, key, || None, change)
}

/// What gatehouse keeps. Implementations must be cheap to call from async code: no
/// call may block for long (sled's are in-memory with background flushing).
pub trait Store: Send + Sync {
    fn get_user(&self, username: &str) -> Result<Option<User>>;
    /// Inserts or replaces, durably. For a new user; changes to an existing one go
    /// through [`Store::update_user`].
    fn put_user(&self, user: &User) -> Result<()>;
    /// Changes an existing user atomically (compare-and-swap: a concurrent change is
    /// re-read, never overwritten with a stale copy), durably; `None` when the user no
    /// longer exists (nothing is written then).
    fn update_user(
        &self,
        username: &str,
        change: &mut dyn FnMut(&mut User),
    ) -> Result<Option<User>>;
    /// Removes the user and all their sessions, durably. Returns whether it existed.
    fn delete_user(&self, username: &str) -> Result<bool>;
    fn list_users(&self) -> Result<Vec<User>>;

    fn get_session(&self, id: &str) -> Result<Option<SessionRecord>>;
    /// Inserts or replaces, durably.
    fn put_session(&self, session: &SessionRecord) -> Result<()>;
    /// Inserts many sessions with one flush at the end (bulk loading).
    fn put_sessions(&self, sessions: &[SessionRecord]) -> Result<()>;
    /// Changes a stored session atomically (compare-and-swap on the record as it is
    /// now, never a copy read earlier) when `change` returns true; durably unless
    /// `durable` is false (the advisory `last_seen`). Returns the new record, or `None`
    /// when the session no longer exists or `change` declined: a change racing a
    /// revocation can never bring the session back.
    fn modify_session(
        &self,
        id: &str,
        durable: bool,
        change: &mut dyn FnMut(&mut SessionRecord) -> bool,
    ) -> Result<Option<SessionRecord>>;
    /// Removes one session, durably. Returns whether it existed.
    fn delete_session(&self, id: &str) -> Result<bool>;
    fn sessions_of(&self, username: &str) -> Result<Vec<SessionRecord>>;
    fn all_sessions(&self) -> Result<Vec<SessionRecord>>;
    /// Removes every session of the user except `keep`, durably; returns how many.
    fn delete_sessions_of(&self, username: &str, keep: Option<&str>) -> Result<usize>;

    fn get_raw(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>>;
    /// Inserts or replaces, durably.
    fn put_raw(&self, space: Space, key: &str, value: &[u8]) -> Result<()>;
    /// Removes, durably; returns whether it existed.
    fn delete_raw(&self, space: Space, key: &str) -> Result<bool>;
    /// Every record of a space, in key order.
    fn scan_raw(&self, space: Space) -> Result<Vec<(String, Vec<u8>)>>;
    /// Atomic compare-and-swap (`None` = absent), durable on success.
    fn compare_and_swap_raw(
        &self,
        space: Space,
        key: &str,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool>;

    /// Why the store is not healthy, if it is not (for `/api/health`): by default, a
    /// real read that fails.
    fn health(&self) -> std::result::Result<(), String> {
        self.get_user("")
            .map(drop)
            .map_err(|e| format!("the store cannot read: {e}"))
    }
}
