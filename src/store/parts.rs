//! The store's parts: one async trait per kind of state, so a caller depends only on
//! what it uses, and the next backend implements these traits and nothing else.
//!
//! Conventions shared by every part:
//! - A write returns once it is durable, unless its documentation says otherwise.
//! - An update runs its closure inside the atomic operation, on the record as it is
//!   now; the closure may run more than once and must not have other effects.
//! - `peek_*` is the synchronous fast path: `Some(answer)` when the backend can answer
//!   without waiting (a local engine, a cache hit), `None` when the caller must await
//!   the matching `get_*`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{SessionRecord, Timestamp, User};
use crate::error::Result;

/// An answer the backend had at hand, or `None`: await the async read instead.
pub type Peek<T> = Option<Result<T>>;

/// Accounts.
#[async_trait]
pub trait Users: Send + Sync {
    fn peek_user(&self, username: &str) -> Peek<Option<User>>;
    async fn get_user(&self, username: &str) -> Result<Option<User>>;
    /// Inserts or replaces. For a new user; changes to an existing one go through
    /// [`Users::update_user`].
    async fn put_user(&self, user: &User) -> Result<()>;
    /// Changes an existing user atomically; `None` when the user does not exist
    /// (nothing is written then). Publishes [`Event::UserChanged`].
    async fn update_user(
        &self,
        username: &str,
        change: &mut (dyn for<'u> FnMut(&'u mut User) + Send),
    ) -> Result<Option<User>>;
    /// Removes the user, their sessions and their second-factor records in one atomic
    /// step. Returns whether the user existed.
    async fn delete_user(&self, username: &str) -> Result<bool>;
    async fn list_users(&self) -> Result<Vec<User>>;
}

/// Server-side sessions, with an index of each user's sessions.
#[async_trait]
pub trait Sessions: Send + Sync {
    fn peek_session(&self, id: &str) -> Peek<Option<SessionRecord>>;
    async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>>;
    /// Inserts or replaces (with its index entry, atomically).
    async fn put_session(&self, session: &SessionRecord) -> Result<()>;
    /// Inserts many sessions with one sync at the end (bulk loading).
    async fn put_sessions(&self, sessions: &[SessionRecord]) -> Result<()>;
    /// Changes a stored session atomically when `change` returns true; durably unless
    /// `durable` is false (the advisory `last_seen`). Returns the new record, or `None`
    /// when the session does not exist or `change` declined: a change racing a
    /// revocation never brings the session back.
    async fn modify_session(
        &self,
        id: &str,
        durable: bool,
        change: &mut (dyn for<'s> FnMut(&'s mut SessionRecord) -> bool + Send),
    ) -> Result<Option<SessionRecord>>;
    /// Removes one session. Returns whether it existed. Publishes [`Event::SessionEnded`].
    async fn delete_session(&self, id: &str) -> Result<bool>;
    async fn sessions_of(&self, username: &str) -> Result<Vec<SessionRecord>>;
    async fn all_sessions(&self) -> Result<Vec<SessionRecord>>;
    /// Removes every session of the user except `keep`, atomically; returns how many.
    async fn delete_sessions_of(&self, username: &str, keep: Option<&str>) -> Result<usize>;
    /// Removes the sessions whose absolute end (`expires_at`) is past; returns how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<usize>;
    /// Removes the sessions not remembered ("remember me" off) and not seen for `idle`
    /// seconds; returns how many. Each is judged as it is when removed: a session a
    /// request touched meanwhile stays.
    async fn delete_idle_sessions(&self, now: Timestamp, idle: u64) -> Result<usize>;
}

/// Second-factor records, keyed `username \0 factor` (see [`super::user_key`]).
#[async_trait]
pub trait Factors: Send + Sync {
    fn peek_factor(&self, key: &str) -> Peek<Option<Vec<u8>>>;
    async fn get_factor(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put_factor(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Compare-and-swap (`None` = absent); returns whether it swapped.
    async fn swap_factor(&self, key: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool>;
    async fn delete_factor(&self, key: &str) -> Result<bool>;
    /// Every record of a user: `(factor name, value)`.
    async fn factors_of(&self, username: &str) -> Result<Vec<(String, Vec<u8>)>>;
}

/// A live token: its key, value and the end the store enforces (`None`: none).
pub type TokenWithEnd = (String, Vec<u8>, Option<Timestamp>);

/// One-time tokens, challenges and unique-value indexes (`phone \0 +380…` → user),
/// each with an optional end (`expires_at`, seconds since the epoch) after which the
/// store no longer returns it, and sweeps it.
#[async_trait]
pub trait Tokens: Send + Sync {
    async fn get_token(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn put_token(&self, key: &str, value: &[u8], expires_at: Option<Timestamp>)
        -> Result<()>;
    /// Compare-and-swap on the value (`None` = absent or expired); the new value gets
    /// `expires_at`. Returns whether it swapped.
    async fn swap_token(
        &self,
        key: &str,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        expires_at: Option<Timestamp>,
    ) -> Result<bool>;
    /// Removes and returns the token in one atomic step: of two takers, one gets it.
    async fn take_token(&self, key: &str) -> Result<Option<Vec<u8>>>;
    async fn delete_token(&self, key: &str) -> Result<bool>;
    /// The live tokens whose key starts with `prefix`, in key order, with the end the
    /// store keeps for each (what `gatehouse storage copy` carries over).
    async fn tokens_with_ends(&self, prefix: &str) -> Result<Vec<TokenWithEnd>>;
    /// [`Tokens::tokens_with_ends`] without the ends.
    async fn tokens_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(self
            .tokens_with_ends(prefix)
            .await?
            .into_iter()
            .map(|(key, value, _)| (key, value))
            .collect())
    }
    /// Removes expired tokens; returns how many.
    async fn sweep_tokens(&self, now: Timestamp) -> Result<usize>;
}

/// A sliding-window counter: the times of recent events, attempts begun and not
/// settled yet, and a hold (a ban) until some time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    #[serde(default)]
    pub events: Vec<Timestamp>,
    #[serde(default)]
    pub pending: Vec<Timestamp>,
    #[serde(default)]
    pub held_until: Timestamp,
}

impl Tally {
    /// Nothing in it can matter any more at `now` for a user whose windows are at most
    /// `window` long: no hold, and every event and reservation older than that.
    pub fn is_spent(&self, now: Timestamp, window: u64) -> bool {
        self.held_until <= now
            && self
                .events
                .iter()
                .chain(&self.pending)
                .all(|t| now.saturating_sub(*t) >= window)
    }
}

/// Counters for bans, send budgets and rate limits. Not fsync'ed on every change (they
/// guard, they are not data); kept across restarts where the engine persists.
#[async_trait]
pub trait Counters: Send + Sync {
    /// Runs `change` on the tallies of `keys` (in that order, empty when new) as one
    /// atomic step for all of them, and writes them back when it returns true. Returns
    /// what it returned.
    async fn update_tallies(
        &self,
        keys: &[String],
        change: &mut (dyn for<'t> FnMut(&'t mut [Tally]) -> bool + Send),
    ) -> Result<bool>;
    async fn read_tallies(&self, keys: &[String]) -> Result<Vec<Tally>>;
    /// Removes tallies with nothing left in them at `now` for events older than
    /// `window`; returns how many.
    async fn sweep_tallies(&self, now: Timestamp, window: u64) -> Result<usize>;
}

/// An item claimed from a [`Queue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub payload: Vec<u8>,
    /// Claims before this one (0 on the first).
    pub attempts: u32,
    /// This claim's lease (a put-back by a worker whose lease ran out changes nothing).
    pub holder: u64,
}

/// Durable queues (`hook`, `mail`): an item is claimed for a lease and then
/// acknowledged (done) or put back for later; an item whose lease ran out (its worker
/// died) is claimed again.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Adds an item, durably; returns its id.
    async fn enqueue(&self, queue: &str, payload: &[u8]) -> Result<String>;
    /// Claims up to `max` items that are due and not leased, oldest first, for `lease`
    /// seconds.
    async fn claim(&self, queue: &str, max: usize, lease: u64) -> Result<Vec<Claimed>>;
    /// The item is done with: removed.
    async fn ack(&self, queue: &str, id: &str) -> Result<()>;
    /// The item is put back, due again in `after` seconds, if this claim still holds it.
    async fn retry(&self, queue: &str, claimed: &Claimed, after: u64) -> Result<()>;
    /// How many items wait in the queue.
    async fn queued(&self, queue: &str) -> Result<usize>;
}

/// What happened, for whoever listens (today's in-process waiters; the other replicas'
/// caches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A session was removed.
    SessionEnded { id: String },
    /// Every session of the user but perhaps one was removed.
    SessionsEnded { username: String },
    /// The user's record changed or was removed.
    UserChanged { username: String },
    /// A Telegram login attempt was decided (allowed, denied, expired).
    AttemptDecided { id: String },
    /// The first delivery attempt of a queued mail finished.
    MailAttempted { id: String, sent: bool },
}

/// Publish/subscribe of [`Event`]s.
pub trait Events: Send + Sync {
    /// Publishes to every subscriber (none may be listening).
    fn publish(&self, event: Event);
    /// Events from now on. A slow subscriber that falls behind is told so (it must then
    /// assume anything changed).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event>;
}

/// A record addressed across parts, for [`Transactions::transact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    User(String),
    Session(String),
    Factor(String),
    Token(String),
}

/// Changes several records in one atomic, durable step.
#[async_trait]
pub trait Transactions: Send + Sync {
    /// Reads `keys` (raw JSON / bytes; `None` = absent), lets `change` edit them in place
    /// (`None` = remove), and writes them all at once when it returns true; nobody
    /// else's write lands between the read and the write. Returns what `change` returned.
    /// Session index entries and events follow the sessions and users written.
    async fn transact(
        &self,
        keys: &[RecordKey],
        change: &mut (dyn for<'r> FnMut(&'r mut [Option<Vec<u8>>]) -> Result<bool> + Send),
    ) -> Result<bool>;
}

/// While a process is the one that runs a role (see [`Leadership`]).
pub trait LeaderLease: Send + Sync {
    /// Still the leader: stop the role's work at once when this turns false.
    fn held(&self) -> bool;
}

/// One process per role among those sharing the store: the session sweeper, Telegram
/// long polling (Telegram answers a second poller with 409 Conflict).
#[async_trait]
pub trait Leadership: Send + Sync {
    /// Becomes the leader of `role` if nobody is; `None` when another process is.
    async fn try_lead(&self, role: &str) -> Result<Option<std::sync::Arc<dyn LeaderLease>>>;
}

/// Health of the store, for `/api/health`.
pub trait Health: Send + Sync {
    /// Why the store is not healthy, if it is not.
    fn health(&self) -> std::result::Result<(), String>;
}

/// Every part together: what a backend provides.
pub trait Store:
    Users + Sessions + Factors + Tokens + Counters + Queue + Events + Transactions + Leadership + Health
{
}

impl<T> Store for T where
    T: Users
        + Sessions
        + Factors
        + Tokens
        + Counters
        + Queue
        + Events
        + Transactions
        + Leadership
        + Health
{
}
