//! The store's parts on PostgreSQL, shared by several replicas (`[storage] backend =
//! "postgres"`), through sqlx's pool.
//!
//! - **Schema.** Migrations are embedded here and applied at start inside one
//!   transaction holding an advisory lock, so replicas starting together do not race.
//!   Keys that may hold a NUL byte (`user \0 factor`) are `bytea`.
//! - **Atomicity.** A record update is one statement (a compare-and-set) or a
//!   transaction that locks the rows it reads (`SELECT … FOR UPDATE`, several rows always
//!   in key order, so two transactions cannot deadlock). Queues are claimed with
//!   `FOR UPDATE SKIP LOCKED`.
//! - **Events** are `NOTIFY gatehouse` in the transaction of the change (delivered at
//!   commit, to every replica); each replica listens on a connection of its own and hands
//!   them to its local subscribers.
//! - **The cache.** Each replica keeps the sessions and users it read (bounded in
//!   entries and by `storage.cache_ttl`), so the forward-auth check answers from memory
//!   through `peek_*`. Every change that ends or weakens access is a NOTIFY that evicts
//!   on every replica; the replica's own writes update or evict its cache at once. While
//!   the listening connection is down, and until it is back and the cache flushed, the
//!   cache is not trusted (every read goes to the database).
//! - **Not yet:** leader election for the background services.
//!
//! The pool connects lazily, so the first query runs on the runtime that serves (the
//! start-up runtime only applies the migrations, on a connection of its own).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, Row};
use tokio::sync::broadcast;

use super::parts::*;
use super::{SessionRecord, Timestamp, User};
use crate::basics::now;
use crate::error::{Error, Result};

/// The NOTIFY channel.
const CHANNEL: &str = "gatehouse";

/// The schema, one step per version; never edit a step that shipped, add one.
const MIGRATIONS: &[&str] = &[
    // 1: every part.
    "CREATE TABLE gh_users (username text PRIMARY KEY, record bytea NOT NULL);
     CREATE TABLE gh_sessions (id text PRIMARY KEY, username text NOT NULL,
         expires_at bigint NOT NULL, record bytea NOT NULL);
     CREATE INDEX gh_sessions_by_user ON gh_sessions (username);
     CREATE INDEX gh_sessions_by_end ON gh_sessions (expires_at);
     CREATE TABLE gh_factors (key bytea PRIMARY KEY, username text NOT NULL, value bytea NOT NULL);
     CREATE INDEX gh_factors_by_user ON gh_factors (username);
     CREATE TABLE gh_tokens (key bytea PRIMARY KEY, value bytea NOT NULL, expires_at bigint);
     CREATE TABLE gh_counters (key bytea PRIMARY KEY, tally bytea NOT NULL);
     CREATE TABLE gh_queue (queue text NOT NULL, id text NOT NULL, payload bytea NOT NULL,
         attempts integer NOT NULL DEFAULT 0, due bigint NOT NULL DEFAULT 0,
         leased_until bigint NOT NULL DEFAULT 0, holder bigint NOT NULL DEFAULT 0,
         PRIMARY KEY (queue, id));",
];

/// An arbitrary number naming gatehouse's migration lock.
const MIGRATION_LOCK: i64 = 0x6761_7465_686f_7573;

/// What a replica keeps of sessions and users between their changes.
struct Cache {
    sessions: moka::sync::Cache<String, SessionRecord>,
    users: moka::sync::Cache<String, User>,
    /// Second-factor records by key, absence included (what a one-factor session's
    /// check reads on every request); evicted with their user.
    factors: moka::sync::Cache<String, Option<Vec<u8>>>,
    /// The listening connection is up and the cache was flushed since it last was not.
    trusted: AtomicBool,
    /// Raised by every eviction: a record read before it may be stale, and is not kept.
    epoch: std::sync::atomic::AtomicU64,
    /// When the listening connection was lost (0: it is up, or never was).
    lost_at: std::sync::atomic::AtomicU64,
    /// How long after that the cache may still answer (the database being unreachable).
    grace: std::sync::atomic::AtomicU64,
}

impl Cache {
    fn new(ttl: Duration) -> Self {
        Cache {
            sessions: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(ttl)
                .build(),
            users: moka::sync::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(ttl)
                .build(),
            factors: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(ttl)
                .build(),
            trusted: AtomicBool::new(false),
            epoch: Default::default(),
            lost_at: Default::default(),
            grace: Default::default(),
        }
    }

    /// Whether peeks may answer from the cache: it is trusted, or the events connection
    /// was lost less than the grace ago (an outage: nothing can be revoked through this
    /// replica's database meanwhile either).
    fn usable(&self) -> bool {
        match self.lost_at.load(Ordering::Acquire) {
            0 => self.trusted(),
            lost => now().saturating_sub(lost) < self.grace.load(Ordering::Acquire),
        }
    }

    /// The database failed to answer: the grace runs from the first such moment.
    fn unreachable(&self) {
        let _ = self
            .lost_at
            .compare_exchange(0, now(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// The database answered: with the events connection up, the outage is over.
    fn reachable(&self) {
        if self.trusted() {
            self.lost_at.store(0, Ordering::Release);
        }
    }

    /// The events connection is gone: stop trusting, remember since when.
    fn suspend(&self) {
        self.trusted.store(false, Ordering::Release);
        self.unreachable();
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Keeps a session read at `epoch`, unless something was evicted since. The epoch
    /// is looked at again after keeping: an eviction that ran between the first look
    /// and the insert would otherwise leave the stale record behind (an eviction
    /// raises the epoch before it removes).
    fn keep_session(&self, epoch: u64, session: &SessionRecord) {
        if self.trusted() && self.epoch() == epoch {
            self.sessions.insert(session.id.clone(), session.clone());
            if self.epoch() != epoch {
                self.sessions.invalidate(&session.id);
            }
        }
    }

    fn keep_factor(&self, epoch: u64, key: &str, value: &Option<Vec<u8>>) {
        if self.trusted() && self.epoch() == epoch {
            self.factors.insert(key.to_string(), value.clone());
            if self.epoch() != epoch {
                self.factors.invalidate(key);
            }
        }
    }

    /// Forgets the cached factor records of a user.
    fn evict_factors_of(&self, username: &str) {
        let prefix = format!("{username}\0");
        let stale: Vec<String> = self
            .factors
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| (*k).clone())
            .collect();
        for key in stale {
            self.factors.invalidate(&key);
        }
    }

    fn keep_user(&self, epoch: u64, user: &User) {
        if self.trusted() && self.epoch() == epoch {
            self.users.insert(user.username.clone(), user.clone());
            if self.epoch() != epoch {
                self.users.invalidate(&user.username);
            }
        }
    }

    fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    fn trust(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.sessions.invalidate_all();
        self.users.invalidate_all();
        self.factors.invalidate_all();
        self.lost_at.store(0, Ordering::Release);
        self.trusted.store(true, Ordering::Release);
    }

    /// What an event makes stale.
    fn evict(&self, event: &Event) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match event {
            Event::SessionEnded { id } => self.sessions.invalidate(id),
            Event::SessionsEnded { username } => {
                self.evict_factors_of(username);
                let username = username.clone();
                // Rare (a password change, a revocation of a user): scan the cache.
                let stale: Vec<String> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| s.username == username)
                    .map(|(id, _)| (*id).clone())
                    .collect();
                for id in stale {
                    self.sessions.invalidate(&id);
                }
            }
            Event::UserChanged { username } => {
                self.users.invalidate(username);
                self.evict_factors_of(username);
            }
            Event::AttemptDecided { .. } | Event::MailAttempted { .. } => {}
        }
    }
}

/// The store on PostgreSQL.
pub struct PgStore {
    pool: PgPool,
    cache: Arc<Cache>,
    events: broadcast::Sender<Event>,
    /// The listening task, started on first use (on the serving runtime).
    listening: OnceLock<()>,
    /// The last failure of the database, for health; cleared by the next success.
    problem: Arc<Mutex<Option<String>>>,
}

fn db(e: sqlx::Error) -> Error {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => {
            Error::StoreUnavailable(format!("the database cannot be reached: {e}"))
        }
        other => Error::Internal(format!("database: {other}")),
    }
}

/// The JSON records in the first column of `rows`.
fn records<T: serde::de::DeserializeOwned>(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<T>> {
    rows.iter()
        .map(|r| decode(&r.get::<Vec<u8>, _>(0)))
        .collect()
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

/// The user a factor key belongs to (`user \0 name`).
fn factor_owner(key: &str) -> &str {
    key.split('\0').next().unwrap_or(key)
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Postgres>;

impl PgStore {
    /// Applies the migrations (on a connection of its own) and sets up the pool.
    pub async fn connect(url: &str, pool_size: u32, cache_ttl: Duration) -> Result<Self> {
        let options: PgConnectOptions = url.parse().map_err(|e| {
            Error::config(
                "storage.url",
                "(secret)",
                format!("is not a valid URL: {e}"),
            )
        })?;
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(|e| {
                Error::Invalid(format!(
                    "cannot connect to the database of storage.url: {e}"
                ))
            })?;
        migrate(&mut conn).await?;
        conn.close().await.map_err(db)?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(options);
        Ok(PgStore {
            pool,
            cache: Arc::new(Cache::new(cache_ttl)),
            events: broadcast::channel(4096).0,
            listening: OnceLock::new(),
            problem: Arc::new(Mutex::new(None)),
        })
    }

    /// This replica changed a factor record: no cached copy of it stays (a read that
    /// raced the write is not kept either).
    fn forget_factor(&self, key: &str) {
        self.cache.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.factors.invalidate(key);
    }

    /// Lets the cache answer forward-auth for `grace` after the database was lost.
    pub fn with_outage_grace(self, grace: Duration) -> Self {
        self.cache.grace.store(grace.as_secs(), Ordering::Release);
        self
    }

    /// Remembers whether the database answered, for health.
    fn noted<T>(&self, result: std::result::Result<T, sqlx::Error>) -> Result<T> {
        let mut problem = self.problem.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(value) => {
                *problem = None;
                self.cache.reachable();
                Ok(value)
            }
            Err(e) => {
                let e = db(e);
                if matches!(e, Error::StoreUnavailable(_)) {
                    *problem = Some(e.to_string());
                    self.cache.unreachable();
                }
                Err(e)
            }
        }
    }

    async fn begin(&self) -> Result<Tx<'static>> {
        let tx = self.pool.begin().await;
        self.noted(tx)
    }

    async fn commit(&self, tx: Tx<'static>) -> Result<()> {
        let done = tx.commit().await;
        self.noted(done)
    }

    /// Starts listening for other replicas' events, once, on the runtime that asks.
    /// A serving replica calls it at start ([`PgStore::listen_now`]); subscribers and
    /// health start it on first use. The synchronous peeks (the forward-auth path) do
    /// not: until a listener is up the cache is not trusted and they answer `None`.
    fn listen(&self) {
        self.listening.get_or_init(|| {
            let (pool, events, cache) = (self.pool.clone(), self.events.clone(), self.cache.clone());
            cache.suspend();
            let problem = self.problem.clone();
            tokio::spawn(async move {
                loop {
                    cache.suspend();
                    let listener = async {
                        let mut l = PgListener::connect_with(&pool).await?;
                        l.listen(CHANNEL).await?;
                        Ok::<_, sqlx::Error>(l)
                    };
                    let mut listener = match listener.await {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot listen for the other replicas' events; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    };
                    // Whatever changed while nobody listened is unknown: start afresh.
                    cache.trust();
                    // The database answers again.
                    *problem.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(n)) => match serde_json::from_str::<Event>(n.payload()) {
                                Ok(event) => {
                                    cache.evict(&event);
                                    let _ = events.send(event);
                                }
                                Err(e) => tracing::warn!(error = %e, "an event in an unknown format"),
                            },
                            // The connection dropped: notifications may be lost until
                            // a new one listens.
                            Ok(None) => {
                                tracing::warn!("lost the events connection; reconnecting");
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "lost the events connection; reconnecting");
                                break;
                            }
                        }
                    }
                }
            });
        });
    }

    /// Starts listening for the other replicas' events now, rather than on first use:
    /// what a serving replica does at start.
    pub fn listen_now(self) -> Self {
        self.listen();
        self
    }

    /// The first (bytes) column of the row `sql` finds for `key` (text or bytes, as the
    /// table's key column is), if any.
    async fn fetch_bytes<K>(&self, sql: &str, key: K) -> Result<Option<Vec<u8>>>
    where
        K: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
    {
        let row = sqlx::query(sql).bind(key).fetch_optional(&self.pool).await;
        Ok(self.noted(row)?.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    async fn notify(tx: &mut Tx<'static>, event: &Event) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(serde_json::to_string(event)?)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn locked_session(tx: &mut Tx<'static>, id: &str) -> Result<Option<SessionRecord>> {
        let row = sqlx::query("SELECT record FROM gh_sessions WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?;
        row.map(|r| decode(&r.get::<Vec<u8>, _>(0))).transpose()
    }

    async fn write_session(tx: &mut Tx<'static>, session: &SessionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO gh_sessions (id, username, expires_at, record) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET username = $2, expires_at = $3, record = $4",
        )
        .bind(&session.id)
        .bind(&session.username)
        .bind(session.expires_at as i64)
        .bind(encode(session)?)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }
}

/// Applies the migrations not applied yet, under the migration lock.
async fn migrate(conn: &mut sqlx::PgConnection) -> Result<()> {
    let mut tx = conn.begin().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    sqlx::query("CREATE TABLE IF NOT EXISTS gh_schema (version integer PRIMARY KEY)")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let applied: i64 = sqlx::query("SELECT count(*) FROM gh_schema")
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?
        .get(0);
    for (version, step) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        sqlx::raw_sql(step).execute(&mut *tx).await.map_err(db)?;
        sqlx::query("INSERT INTO gh_schema (version) VALUES ($1)")
            .bind(version as i32 + 1)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tracing::info!(version = version + 1, "database schema migrated");
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}

#[async_trait]
impl Users for PgStore {
    fn peek_user(&self, username: &str) -> Peek<Option<User>> {
        if !self.cache.usable() {
            return None;
        }
        self.cache.users.get(username).map(|u| Ok(Some(u)))
    }

    async fn get_user(&self, username: &str) -> Result<Option<User>> {
        let epoch = self.cache.epoch();
        let user: Option<User> = self
            .fetch_bytes("SELECT record FROM gh_users WHERE username = $1", username)
            .await?
            .map(|record| decode(&record))
            .transpose()?;
        if let Some(user) = &user {
            self.cache.keep_user(epoch, user);
        }
        Ok(user)
    }

    async fn put_user(&self, user: &User) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO gh_users (username, record) VALUES ($1, $2)
             ON CONFLICT (username) DO UPDATE SET record = $2",
        )
        .bind(&user.username)
        .bind(encode(user)?)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        Self::notify(
            &mut tx,
            &Event::UserChanged {
                username: user.username.clone(),
            },
        )
        .await?;
        self.commit(tx).await?;
        self.cache.evict(&Event::UserChanged {
            username: user.username.clone(),
        });
        Ok(())
    }

    async fn update_user(
        &self,
        username: &str,
        change: &mut (dyn for<'u> FnMut(&'u mut User) + Send),
    ) -> Result<Option<User>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT record FROM gh_users WHERE username = $1 FOR UPDATE")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut user: User = decode(&row.get::<Vec<u8>, _>(0))?;
        change(&mut user);
        sqlx::query("UPDATE gh_users SET record = $2 WHERE username = $1")
            .bind(username)
            .bind(encode(&user)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        Self::notify(
            &mut tx,
            &Event::UserChanged {
                username: username.into(),
            },
        )
        .await?;
        self.commit(tx).await?;
        self.cache.evict(&Event::UserChanged {
            username: username.into(),
        });
        Ok(Some(user))
    }

    async fn delete_user(&self, username: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let existed = sqlx::query("DELETE FROM gh_users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected()
            > 0;
        for table in ["gh_sessions", "gh_factors"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE username = $1"))
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let events = [
            Event::UserChanged {
                username: username.into(),
            },
            Event::SessionsEnded {
                username: username.into(),
            },
        ];
        for event in &events {
            Self::notify(&mut tx, event).await?;
        }
        self.commit(tx).await?;
        events.iter().for_each(|e| self.cache.evict(e));
        Ok(existed)
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT record FROM gh_users ORDER BY username")
            .fetch_all(&self.pool)
            .await;
        records(&self.noted(rows)?)
    }
}

#[async_trait]
impl Sessions for PgStore {
    fn peek_session(&self, id: &str) -> Peek<Option<SessionRecord>> {
        if !self.cache.usable() {
            return None;
        }
        self.cache.sessions.get(id).map(|s| Ok(Some(s)))
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>> {
        let epoch = self.cache.epoch();
        let session: Option<SessionRecord> = self
            .fetch_bytes("SELECT record FROM gh_sessions WHERE id = $1", id)
            .await?
            .map(|record| decode(&record))
            .transpose()?;
        if let Some(session) = &session {
            self.cache.keep_session(epoch, session);
        }
        Ok(session)
    }

    async fn put_session(&self, session: &SessionRecord) -> Result<()> {
        self.put_sessions(std::slice::from_ref(session)).await
    }

    async fn put_sessions(&self, sessions: &[SessionRecord]) -> Result<()> {
        let mut tx = self.begin().await?;
        for session in sessions {
            Self::write_session(&mut tx, session).await?;
        }
        self.commit(tx).await
    }

    async fn modify_session(
        &self,
        id: &str,
        _durable: bool,
        change: &mut (dyn for<'s> FnMut(&'s mut SessionRecord) -> bool + Send),
    ) -> Result<Option<SessionRecord>> {
        let mut tx = self.begin().await?;
        let Some(mut session) = Self::locked_session(&mut tx, id).await? else {
            return Ok(None);
        };
        if !change(&mut session) {
            return Ok(None);
        }
        Self::write_session(&mut tx, &session).await?;
        let epoch = self.cache.epoch();
        self.commit(tx).await?;
        self.cache.sessions.invalidate(id);
        self.cache.keep_session(epoch, &session);
        Ok(Some(session))
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let existed = sqlx::query("DELETE FROM gh_sessions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected()
            > 0;
        if existed {
            Self::notify(&mut tx, &Event::SessionEnded { id: id.into() }).await?;
        }
        self.commit(tx).await?;
        self.cache.evict(&Event::SessionEnded { id: id.into() });
        Ok(existed)
    }

    async fn sessions_of(&self, username: &str) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query("SELECT record FROM gh_sessions WHERE username = $1 ORDER BY id")
            .bind(username)
            .fetch_all(&self.pool)
            .await;
        records(&self.noted(rows)?)
    }

    async fn all_sessions(&self) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query("SELECT record FROM gh_sessions ORDER BY id")
            .fetch_all(&self.pool)
            .await;
        records(&self.noted(rows)?)
    }

    async fn delete_idle_sessions(&self, now: Timestamp, idle: u64) -> Result<usize> {
        let rows = sqlx::query("SELECT id, record FROM gh_sessions WHERE expires_at > $1")
            .bind(now as i64)
            .fetch_all(&self.pool)
            .await;
        let mut removed = 0;
        for row in self.noted(rows)? {
            let (id, record): (String, Vec<u8>) = (row.get(0), row.get(1));
            let idle_now = decode::<SessionRecord>(&record)
                .is_ok_and(|s| !s.remember_me && now.saturating_sub(s.last_seen) >= idle);
            if !idle_now {
                continue;
            }
            // Removed only as it was read: a request that touched it since keeps it.
            let mut tx = self.begin().await?;
            let gone = sqlx::query("DELETE FROM gh_sessions WHERE id = $1 AND record = $2")
                .bind(&id)
                .bind(&record)
                .execute(&mut *tx)
                .await
                .map_err(db)?
                .rows_affected()
                > 0;
            let event = Event::SessionEnded { id };
            if gone {
                Self::notify(&mut tx, &event).await?;
            }
            self.commit(tx).await?;
            if gone {
                self.cache.evict(&event);
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn delete_sessions_of(&self, username: &str, keep: Option<&str>) -> Result<usize> {
        let mut tx = self.begin().await?;
        let removed = sqlx::query(
            "DELETE FROM gh_sessions WHERE username = $1 AND ($2::text IS NULL OR id <> $2)",
        )
        .bind(username)
        .bind(keep)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        let event = Event::SessionsEnded {
            username: username.into(),
        };
        Self::notify(&mut tx, &event).await?;
        self.commit(tx).await?;
        self.cache.evict(&event);
        Ok(removed as usize)
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<usize> {
        let mut tx = self.begin().await?;
        let ended = sqlx::query("DELETE FROM gh_sessions WHERE expires_at <= $1 RETURNING id")
            .bind(now as i64)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let mut events = Vec::with_capacity(ended.len());
        for row in &ended {
            let event = Event::SessionEnded { id: row.get(0) };
            Self::notify(&mut tx, &event).await?;
            events.push(event);
        }
        self.commit(tx).await?;
        events.iter().for_each(|e| self.cache.evict(e));
        Ok(ended.len())
    }
}

#[async_trait]
impl Factors for PgStore {
    fn peek_factor(&self, key: &str) -> Peek<Option<Vec<u8>>> {
        if !self.cache.usable() {
            return None;
        }
        self.cache.factors.get(key).map(Ok)
    }

    async fn get_factor(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let epoch = self.cache.epoch();
        let value = self
            .fetch_bytes(
                "SELECT value FROM gh_factors WHERE key = $1",
                key.as_bytes(),
            )
            .await?;
        self.cache.keep_factor(epoch, key, &value);
        Ok(value)
    }

    async fn put_factor(&self, key: &str, value: &[u8]) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO gh_factors (key, username, value) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = $3",
        )
        .bind(key.as_bytes())
        .bind(factor_owner(key))
        .bind(value)
        .execute(&self.pool)
        .await;
        self.forget_factor(key);
        self.noted(done).map(drop)
    }

    async fn swap_factor(&self, key: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        let query = match (old, new) {
            (None, None) => {
                return Ok(self.get_factor(key).await?.is_none());
            }
            (None, Some(new)) => sqlx::query(
                "INSERT INTO gh_factors (key, username, value) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key.as_bytes())
            .bind(factor_owner(key))
            .bind(new),
            (Some(old), Some(new)) => {
                sqlx::query("UPDATE gh_factors SET value = $3 WHERE key = $1 AND value = $2")
                    .bind(key.as_bytes())
                    .bind(old)
                    .bind(new)
            }
            (Some(old), None) => {
                sqlx::query("DELETE FROM gh_factors WHERE key = $1 AND value = $2")
                    .bind(key.as_bytes())
                    .bind(old)
            }
        };
        let done = query.execute(&self.pool).await;
        self.forget_factor(key);
        Ok(self.noted(done)?.rows_affected() == 1)
    }

    async fn delete_factor(&self, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM gh_factors WHERE key = $1")
            .bind(key.as_bytes())
            .execute(&self.pool)
            .await;
        self.forget_factor(key);
        Ok(self.noted(done)?.rows_affected() > 0)
    }

    async fn factors_of(&self, username: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let rows =
            sqlx::query("SELECT key, value FROM gh_factors WHERE username = $1 ORDER BY key")
                .bind(username)
                .fetch_all(&self.pool)
                .await;
        let prefix = username.len() + 1;
        Ok(self
            .noted(rows)?
            .iter()
            .map(|r| {
                let key: Vec<u8> = r.get(0);
                (
                    String::from_utf8_lossy(key.get(prefix..).unwrap_or_default()).into_owned(),
                    r.get(1),
                )
            })
            .collect())
    }
}

#[async_trait]
impl Tokens for PgStore {
    async fn get_token(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT value FROM gh_tokens WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(key.as_bytes())
        .bind(now() as i64)
        .fetch_optional(&self.pool)
        .await;
        Ok(self.noted(row)?.map(|r| r.get::<Vec<u8>, _>(0)))
    }

    async fn put_token(
        &self,
        key: &str,
        value: &[u8],
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO gh_tokens (key, value, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = $2, expires_at = $3",
        )
        .bind(key.as_bytes())
        .bind(value)
        .bind(expires_at.map(|t| t as i64))
        .execute(&self.pool)
        .await;
        self.noted(done).map(drop)
    }

    async fn swap_token(
        &self,
        key: &str,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        let now = now() as i64;
        if old.is_none() {
            // Nothing to lock when the token is absent (a row lock only holds a row that
            // exists): the insert itself decides, replacing at most an expired token,
            // so of two first writers only one succeeds.
            let Some(new) = new else {
                return Ok(self.get_token(key).await?.is_none());
            };
            let done = sqlx::query(
                "INSERT INTO gh_tokens (key, value, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = $2, expires_at = $3
                 WHERE gh_tokens.expires_at IS NOT NULL AND gh_tokens.expires_at <= $4",
            )
            .bind(key.as_bytes())
            .bind(new)
            .bind(expires_at.map(|t| t as i64))
            .bind(now)
            .execute(&self.pool)
            .await;
            return Ok(self.noted(done)?.rows_affected() == 1);
        }
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT value, expires_at FROM gh_tokens WHERE key = $1 FOR UPDATE")
            .bind(key.as_bytes())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let live = row.and_then(|r| {
            let end: Option<i64> = r.get(1);
            end.is_none_or(|e| e > now).then(|| r.get::<Vec<u8>, _>(0))
        });
        if live.as_deref() != old {
            return Ok(false);
        }
        match new {
            Some(new) => sqlx::query(
                "INSERT INTO gh_tokens (key, value, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = $2, expires_at = $3",
            )
            .bind(key.as_bytes())
            .bind(new)
            .bind(expires_at.map(|t| t as i64)),
            None => sqlx::query("DELETE FROM gh_tokens WHERE key = $1").bind(key.as_bytes()),
        }
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        self.commit(tx).await?;
        Ok(true)
    }

    async fn take_token(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("DELETE FROM gh_tokens WHERE key = $1 RETURNING value, expires_at")
            .bind(key.as_bytes())
            .fetch_optional(&self.pool)
            .await;
        let now = now() as i64;
        Ok(self.noted(row)?.and_then(|r| {
            let end: Option<i64> = r.get(1);
            end.is_none_or(|e| e > now).then(|| r.get::<Vec<u8>, _>(0))
        }))
    }

    async fn delete_token(&self, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM gh_tokens WHERE key = $1")
            .bind(key.as_bytes())
            .execute(&self.pool)
            .await;
        Ok(self.noted(done)?.rows_affected() > 0)
    }

    async fn tokens_with_ends(&self, prefix: &str) -> Result<Vec<TokenWithEnd>> {
        let rows = sqlx::query(
            "SELECT key, value, expires_at FROM gh_tokens
             WHERE substring(key FROM 1 FOR length($1)) = $1
               AND (expires_at IS NULL OR expires_at > $2) ORDER BY key",
        )
        .bind(prefix.as_bytes())
        .bind(now() as i64)
        .fetch_all(&self.pool)
        .await;
        Ok(self
            .noted(rows)?
            .iter()
            .map(|r| {
                let key: Vec<u8> = r.get(0);
                let end: Option<i64> = r.get(2);
                (
                    String::from_utf8_lossy(&key).into_owned(),
                    r.get(1),
                    end.map(|e| e as Timestamp),
                )
            })
            .collect())
    }

    async fn sweep_tokens(&self, now: Timestamp) -> Result<usize> {
        let done = sqlx::query("DELETE FROM gh_tokens WHERE expires_at <= $1")
            .bind(now as i64)
            .execute(&self.pool)
            .await;
        Ok(self.noted(done)?.rows_affected() as usize)
    }
}

#[async_trait]
impl Counters for PgStore {
    async fn update_tallies(
        &self,
        keys: &[String],
        change: &mut (dyn for<'t> FnMut(&'t mut [Tally]) -> bool + Send),
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Rows first (so there is something to lock), then locked in key order.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
        let empty = encode(&Tally::default())?;
        let mut tallies = vec![Tally::default(); keys.len()];
        for &i in &order {
            sqlx::query(
                "INSERT INTO gh_counters (key, tally) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(keys[i].as_bytes())
            .bind(&empty)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            let row = sqlx::query("SELECT tally FROM gh_counters WHERE key = $1 FOR UPDATE")
                .bind(keys[i].as_bytes())
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            tallies[i] = decode(&row.get::<Vec<u8>, _>(0))?;
        }
        if !change(&mut tallies) {
            self.commit(tx).await?;
            return Ok(false);
        }
        for (key, tally) in keys.iter().zip(&tallies) {
            if *tally == Tally::default() {
                sqlx::query("DELETE FROM gh_counters WHERE key = $1").bind(key.as_bytes())
            } else {
                sqlx::query("UPDATE gh_counters SET tally = $2 WHERE key = $1")
                    .bind(key.as_bytes())
                    .bind(encode(tally)?)
            }
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        self.commit(tx).await?;
        Ok(true)
    }

    async fn read_tallies(&self, keys: &[String]) -> Result<Vec<Tally>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let row = sqlx::query("SELECT tally FROM gh_counters WHERE key = $1")
                .bind(key.as_bytes())
                .fetch_optional(&self.pool)
                .await;
            out.push(match self.noted(row)? {
                Some(r) => decode(&r.get::<Vec<u8>, _>(0))?,
                None => Tally::default(),
            });
        }
        Ok(out)
    }

    async fn sweep_tallies(&self, now: Timestamp, window: u64) -> Result<usize> {
        let rows = sqlx::query("SELECT key, tally FROM gh_counters")
            .fetch_all(&self.pool)
            .await;
        let mut removed = 0;
        for row in self.noted(rows)? {
            let key: Vec<u8> = row.get(0);
            let tally: Vec<u8> = row.get(1);
            let spent = decode::<Tally>(&tally).map_or(true, |t| t.is_spent(now, window));
            if spent {
                // Only if nobody changed it since.
                let done = sqlx::query("DELETE FROM gh_counters WHERE key = $1 AND tally = $2")
                    .bind(&key)
                    .bind(&tally)
                    .execute(&self.pool)
                    .await;
                removed += self.noted(done)?.rows_affected() as usize;
            }
        }
        Ok(removed)
    }
}

#[async_trait]
impl Queue for PgStore {
    async fn enqueue(&self, queue: &str, payload: &[u8]) -> Result<String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let id = format!("{nanos:020}-{}", crate::basics::random_token(8));
        let done = sqlx::query("INSERT INTO gh_queue (queue, id, payload) VALUES ($1, $2, $3)")
            .bind(queue)
            .bind(&id)
            .bind(payload)
            .execute(&self.pool)
            .await;
        self.noted(done)?;
        Ok(id)
    }

    async fn claim(&self, queue: &str, max: usize, lease: u64) -> Result<Vec<Claimed>> {
        let now = now() as i64;
        let rows = sqlx::query(
            "UPDATE gh_queue SET attempts = attempts + 1, leased_until = $3,
                 holder = 1 + floor(random() * 9.0e18)::bigint
             WHERE (queue, id) IN (
                 SELECT queue, id FROM gh_queue
                 WHERE queue = $1 AND due <= $2 AND leased_until <= $2
                 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING id, payload, attempts - 1, holder",
        )
        .bind(queue)
        .bind(now)
        .bind(now + lease as i64)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await;
        let mut claimed: Vec<Claimed> = self
            .noted(rows)?
            .iter()
            .map(|r| Claimed {
                id: r.get(0),
                payload: r.get(1),
                attempts: r.get::<i32, _>(2) as u32,
                holder: r.get::<i64, _>(3) as u64,
            })
            .collect();
        claimed.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(claimed)
    }

    async fn ack(&self, queue: &str, id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM gh_queue WHERE queue = $1 AND id = $2")
            .bind(queue)
            .bind(id)
            .execute(&self.pool)
            .await;
        self.noted(done).map(drop)
    }

    async fn retry(&self, queue: &str, claimed: &Claimed, after: u64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE gh_queue SET due = $4, leased_until = 0, holder = 0
             WHERE queue = $1 AND id = $2 AND holder = $3",
        )
        .bind(queue)
        .bind(&claimed.id)
        .bind(claimed.holder as i64)
        .bind((now() + after) as i64)
        .execute(&self.pool)
        .await;
        self.noted(done).map(drop)
    }

    async fn queued(&self, queue: &str) -> Result<usize> {
        let row = sqlx::query("SELECT count(*) FROM gh_queue WHERE queue = $1")
            .bind(queue)
            .fetch_one(&self.pool)
            .await;
        Ok(self.noted(row)?.get::<i64, _>(0) as usize)
    }
}

impl Events for PgStore {
    fn publish(&self, event: Event) {
        self.listen();
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let payload = serde_json::to_string(&event).unwrap_or_default();
            if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %e, "an event could not be published");
            }
        });
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.listen();
        self.events.subscribe()
    }
}

impl RecordKey {
    /// The table, its key column and the key's bytes, in a total order (for locking).
    fn row(&self) -> (&'static str, &'static str, Vec<u8>) {
        match self {
            RecordKey::User(k) => ("gh_users", "username", k.as_bytes().to_vec()),
            RecordKey::Session(k) => ("gh_sessions", "id", k.as_bytes().to_vec()),
            RecordKey::Factor(k) => ("gh_factors", "key", k.as_bytes().to_vec()),
            RecordKey::Token(k) => ("gh_tokens", "key", k.as_bytes().to_vec()),
        }
    }
}

#[async_trait]
impl Transactions for PgStore {
    async fn transact(
        &self,
        keys: &[RecordKey],
        change: &mut (dyn for<'r> FnMut(&'r mut [Option<Vec<u8>>]) -> Result<bool> + Send),
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let now = now() as i64;
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by_key(|i| keys[*i].row());
        let mut before: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut ends: Vec<Option<i64>> = vec![None; keys.len()];
        for &i in &order {
            let (table, column, key) = keys[i].row();
            let value = match &keys[i] {
                RecordKey::User(_) => "record",
                RecordKey::Session(_) => "record",
                _ => "value",
            };
            let sql = match &keys[i] {
                RecordKey::Token(_) => format!(
                    "SELECT {value}, expires_at FROM {table} WHERE {column} = $1 FOR UPDATE"
                ),
                _ => format!(
                    "SELECT {value}, NULL::bigint FROM {table} WHERE {column} = $1 FOR UPDATE"
                ),
            };
            let q = sqlx::query(&sql);
            let q = match &keys[i] {
                RecordKey::User(k) | RecordKey::Session(k) => q.bind(k.clone()),
                _ => q.bind(key),
            };
            let row = q.fetch_optional(&mut *tx).await.map_err(db)?;
            if let Some(row) = row {
                let end: Option<i64> = row.get(1);
                if end.is_none_or(|e| e > now) {
                    before[i] = Some(row.get(0));
                    ends[i] = end;
                }
            }
        }
        let mut after = before.clone();
        if !change(&mut after)? {
            return Ok(false);
        }
        let mut evictions = Vec::new();
        for i in 0..keys.len() {
            if before[i] == after[i] {
                continue;
            }
            match &keys[i] {
                RecordKey::User(name) => evictions.push(Event::UserChanged {
                    username: name.clone(),
                }),
                RecordKey::Session(id) => evictions.push(Event::SessionEnded { id: id.clone() }),
                RecordKey::Factor(k) => self.forget_factor(k),
                RecordKey::Token(_) => {}
            }
            match (&keys[i], &after[i]) {
                (RecordKey::User(name), value) => {
                    match value {
                        Some(v) => sqlx::query(
                            "INSERT INTO gh_users (username, record) VALUES ($1, $2)
                             ON CONFLICT (username) DO UPDATE SET record = $2",
                        )
                        .bind(name)
                        .bind(v.clone()),
                        None => sqlx::query("DELETE FROM gh_users WHERE username = $1").bind(name),
                    }
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                    Self::notify(
                        &mut tx,
                        &Event::UserChanged {
                            username: name.clone(),
                        },
                    )
                    .await?;
                }
                (RecordKey::Session(_), Some(v)) => {
                    Self::write_session(&mut tx, &decode(v)?).await?;
                }
                (RecordKey::Session(id), None) => {
                    sqlx::query("DELETE FROM gh_sessions WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                    Self::notify(&mut tx, &Event::SessionEnded { id: id.clone() }).await?;
                }
                (RecordKey::Factor(k), Some(v)) => {
                    sqlx::query(
                        "INSERT INTO gh_factors (key, username, value) VALUES ($1, $2, $3)
                         ON CONFLICT (key) DO UPDATE SET value = $3",
                    )
                    .bind(k.as_bytes())
                    .bind(factor_owner(k))
                    .bind(v.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                (RecordKey::Factor(k), None) => {
                    sqlx::query("DELETE FROM gh_factors WHERE key = $1")
                        .bind(k.as_bytes())
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
                (RecordKey::Token(k), Some(v)) => {
                    sqlx::query(
                        "INSERT INTO gh_tokens (key, value, expires_at) VALUES ($1, $2, $3)
                         ON CONFLICT (key) DO UPDATE SET value = $2, expires_at = $3",
                    )
                    .bind(k.as_bytes())
                    .bind(v.clone())
                    .bind(ends[i])
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                }
                (RecordKey::Token(k), None) => {
                    sqlx::query("DELETE FROM gh_tokens WHERE key = $1")
                        .bind(k.as_bytes())
                        .execute(&mut *tx)
                        .await
                        .map_err(db)?;
                }
            }
        }
        self.commit(tx).await?;
        evictions.iter().for_each(|e| self.cache.evict(e));
        Ok(true)
    }
}

/// Leadership held through a session advisory lock on a connection of its own (a
/// pooled one would keep the lock after going back to the pool). A keeper pings it
/// every second; when the connection fails the lock is gone with it, and so is the
/// lease.
struct PgLease {
    held: Arc<AtomicBool>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl LeaderLease for PgLease {
    fn held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}

#[async_trait]
impl Leadership for PgStore {
    async fn try_lead(&self, role: &str) -> Result<Option<Arc<dyn LeaderLease>>> {
        let options = self.pool.connect_options();
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(db)?;
        // A stable number per role (FNV-1a).
        let key = role.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }) as i64;
        let got: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(db)?
            .get(0);
        if !got {
            let _ = conn.close().await;
            return Ok(None);
        }
        tracing::info!(role, "this replica leads");
        let held = Arc::new(AtomicBool::new(true));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let keeper = held.clone();
        let role = role.to_string();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                let alive = tokio::time::timeout(
                    Duration::from_secs(2),
                    sqlx::query("SELECT 1").execute(&mut conn),
                )
                .await;
                if !matches!(alive, Ok(Ok(_))) {
                    tracing::warn!(role, "lost the database connection that held leadership");
                    break;
                }
            }
            keeper.store(false, Ordering::Release);
            let _ = conn.close().await;
        });
        Ok(Some(Arc::new(PgLease { held, _stop: stop })))
    }
}

impl Health for PgStore {
    fn health(&self) -> std::result::Result<(), String> {
        self.listen();
        match self
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            Some(why) => Err(if self.cache.usable() {
                format!("{why}; serving cached sessions for a while")
            } else {
                why
            }),
            None if self.cache.lost_at.load(Ordering::Acquire) != 0 => {
                Err("the database's events connection is down; reconnecting".into())
            }
            None => Ok(()),
        }
    }
}
