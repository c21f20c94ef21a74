//! The store's parts on any ordered key-value [`Engine`] (sled on disk, or memory):
//! [`KvStore`] holds the layout, the indexes, time-to-lives, counters, queues and
//! events, so every engine gets the same behaviour and the in-memory one tests the code
//! that runs on disk.
//!
//! Atomicity: every write goes through one writer lock, held only for the in-memory
//! part of the change (reading what it depends on, then applying every record it
//! touches as one engine batch, which a crash keeps whole or not at all). Durability
//! (the fsync) happens after the lock is released, so concurrent writers share syncs.
//! Reads take no lock.
//!
//! Key layout (one tree each):
//! - `users`:         `username` → JSON [`User`]
//! - `sessions`:      `session id` → JSON [`SessionRecord`]
//! - `user_sessions`: `username \0 session id` → empty (the per-user index)
//! - `factors`:       `username \0 factor` → JSON factor record (see `mfa`)
//! - `tokens`:        key → `0x00, expires_at (u64 BE, 0 = never), value`; values
//!   written before time-to-lives existed have no header and never expire
//! - `outbox`:        `q \0 queue \0 time-random` → `0x01, attempts (u32 BE),
//!   due (u64 BE), leased until (u64 BE), payload`
//! - `counters`:      key → JSON [`Tally`]

use std::sync::Mutex;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::broadcast;

use super::decoded::Decoded;
use super::parts::*;
use super::{SessionRecord, Timestamp, User};
use crate::basics::now;
use crate::error::{Error, Result};

/// The trees (keyspaces) of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    Users,
    Sessions,
    UserSessions,
    Factors,
    Tokens,
    Outbox,
    Counters,
}

impl Tree {
    pub const ALL: [Tree; 7] = [
        Tree::Users,
        Tree::Sessions,
        Tree::UserSessions,
        Tree::Factors,
        Tree::Tokens,
        Tree::Outbox,
        Tree::Counters,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tree::Users => "users",
            Tree::Sessions => "sessions",
            Tree::UserSessions => "user_sessions",
            Tree::Factors => "factors",
            Tree::Tokens => "tokens",
            Tree::Outbox => "outbox",
            Tree::Counters => "counters",
        }
    }
}

/// One record written (`Some`) or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub tree: Tree,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl Write {
    fn put(tree: Tree, key: impl Into<Vec<u8>>, value: Vec<u8>) -> Self {
        Write {
            tree,
            key: key.into(),
            value: Some(value),
        }
    }

    fn remove(tree: Tree, key: impl Into<Vec<u8>>) -> Self {
        Write {
            tree,
            key: key.into(),
            value: None,
        }
    }
}

/// An ordered key-value engine: what [`KvStore`] needs underneath.
pub trait Engine: Send + Sync + 'static {
    /// Reads a record and hands it to `f` without copying it.
    fn read<R>(
        &self,
        tree: Tree,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Result<R>,
    ) -> Result<R>;
    /// Every record whose key starts with `prefix`, in key order.
    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// The keys of the records of `tree` whose value `pick` picks, judged one by one as
    /// they are read (the sweeps: nothing else of the tree is copied).
    fn keys_where(&self, tree: Tree, pick: impl Fn(&[u8]) -> bool) -> Result<Vec<Vec<u8>>> {
        Ok(self
            .scan(tree, b"")?
            .into_iter()
            .filter(|(_, v)| pick(v))
            .map(|(k, _)| k)
            .collect())
    }
    /// Applies the writes as one step: after a crash, all of them or none.
    fn apply(&self, writes: &[Write]) -> Result<()>;
    /// Makes everything applied so far durable.
    fn sync(&self) -> Result<()>;
    /// Why the engine is not healthy, if it is not.
    fn health(&self) -> std::result::Result<(), String>;
}

/// The store's parts on an [`Engine`].
pub struct KvStore<E: Engine> {
    engine: E,
    /// Serialises the read-check-apply of writers (see the module header).
    writer: Mutex<()>,
    events: broadcast::Sender<Event>,
    /// Users and sessions as decoded, forgotten by the write that changes them.
    users: Decoded<User>,
    sessions: Decoded<SessionRecord>,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

fn index_key(username: &str, session_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(username.len() + 1 + session_id.len());
    key.extend_from_slice(username.as_bytes());
    key.push(0);
    key.extend_from_slice(session_id.as_bytes());
    key
}

fn user_prefix(username: &str) -> Vec<u8> {
    let mut key = username.as_bytes().to_vec();
    key.push(0);
    key
}

/// A token's stored form: header with its end, then the value.
fn seal_token(value: &[u8], expires_at: Option<Timestamp>) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    out.push(0);
    out.extend_from_slice(&expires_at.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// A token's value and end (`None` = never) from its stored form.
fn open_token(stored: &[u8]) -> (&[u8], Option<Timestamp>) {
    match stored {
        [0, rest @ ..] if rest.len() >= 8 => {
            let end = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
            (&rest[8..], (end != 0).then_some(end))
        }
        legacy => (legacy, None),
    }
}

/// The live value of a stored token at `now`.
fn live_token(stored: &[u8], now: Timestamp) -> Option<&[u8]> {
    let (value, end) = open_token(stored);
    match end {
        Some(end) if end <= now => None,
        _ => Some(value),
    }
}

/// A queue item's stored form.
struct Item {
    attempts: u32,
    due: Timestamp,
    leased_until: Timestamp,
    /// Who holds the lease (a random number per claim; 0 = nobody).
    holder: u64,
    payload: Vec<u8>,
}

impl Item {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(29 + self.payload.len());
        out.push(2);
        out.extend_from_slice(&self.attempts.to_be_bytes());
        out.extend_from_slice(&self.due.to_be_bytes());
        out.extend_from_slice(&self.leased_until.to_be_bytes());
        out.extend_from_slice(&self.holder.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Item> {
        let u32_at = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().expect("4"));
        let u64_at = |b: &[u8], at: usize| u64::from_be_bytes(b[at..at + 8].try_into().expect("8"));
        match bytes {
            [2, rest @ ..] if rest.len() >= 28 => Ok(Item {
                attempts: u32_at(rest, 0),
                due: u64_at(rest, 4),
                leased_until: u64_at(rest, 12),
                holder: u64_at(rest, 20),
                payload: rest[28..].to_vec(),
            }),
            [1, rest @ ..] if rest.len() >= 20 => Ok(Item {
                attempts: u32_at(rest, 0),
                due: u64_at(rest, 4),
                leased_until: u64_at(rest, 12),
                holder: 0,
                payload: rest[20..].to_vec(),
            }),
            _ => Err(Error::Internal("a queue item in an unknown format".into())),
        }
    }
}

fn queue_prefix(queue: &str) -> String {
    format!("q\0{queue}\0")
}

impl<E: Engine> KvStore<E> {
    /// The parts on `engine`; moves records an older version left in the outbox into
    /// the queues.
    pub fn new(engine: E) -> Result<Self> {
        let store = KvStore {
            engine,
            writer: Mutex::new(()),
            events: broadcast::channel(4096).0,
            users: Decoded::new(10_000),
            sessions: Decoded::new(20_000),
        };
        store.adopt_old_outbox()?;
        Ok(store)
    }

    /// The engine underneath (the sled store's watcher, tests).
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Runs a read-check-write step under the writer lock: `f` reads what it needs and
    /// returns the writes and its answer. Synced afterwards when `durable` and
    /// something was written.
    fn write<R>(&self, durable: bool, f: impl FnOnce(&E) -> Result<(Vec<Write>, R)>) -> Result<R> {
        self.write_and_tell(durable, |engine| {
            let (writes, out) = f(engine)?;
            Ok((writes, out, Vec::new()))
        })
    }

    /// [`KvStore::write`] whose step also names the events it causes: they are published
    /// as soon as the change is applied (readers see it from then on), before the sync,
    /// so a sync that fails cannot hide a change others can already read.
    fn write_and_tell<R>(
        &self,
        durable: bool,
        f: impl FnOnce(&E) -> Result<(Vec<Write>, R, Vec<Event>)>,
    ) -> Result<R> {
        let (wrote, out) = {
            let _only_writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let (writes, out, events) = f(&self.engine)?;
            if !writes.is_empty() {
                let applied = self.engine.apply(&writes);
                // Forgotten whatever the outcome: a failed apply may still have changed
                // what the engine holds, and a forgotten record is only read again.
                for write in &writes {
                    match write.tree {
                        Tree::Users => self.users.changed(&write.key),
                        Tree::Sessions => self.sessions.changed(&write.key),
                        _ => {}
                    }
                }
                applied?;
            }
            for event in events {
                self.announce(event);
            }
            (!writes.is_empty(), out)
        };
        if durable && wrote {
            self.engine.sync()?;
        }
        Ok(out)
    }

    /// Removes, in batches, the records of `tree` that `dead` picks. The scan runs
    /// without the writer lock; each batch re-reads its records under it, so a record
    /// changed meanwhile is judged as it is now. `removals` gives the writes and events
    /// for one dead record (its key and value).
    fn sweep(
        &self,
        tree: Tree,
        dead: impl Fn(&[u8]) -> bool,
        removals: impl Fn(&[u8], &[u8]) -> Result<(Vec<Write>, Vec<Event>)>,
    ) -> Result<usize> {
        let candidates = self.engine.keys_where(tree, &dead)?;
        let mut removed = 0;
        for batch in candidates.chunks(256) {
            removed += self.write_and_tell(true, |engine| {
                let mut writes = Vec::new();
                let mut events = Vec::new();
                for key in batch {
                    let still_dead = engine
                        .read(tree, key, |v| Ok(v.filter(|v| dead(v)).map(<[u8]>::to_vec)))?;
                    if let Some(value) = still_dead {
                        let (w, e) = removals(key, &value)?;
                        writes.extend(w);
                        events.extend(e);
                    }
                }
                let count = writes.iter().filter(|w| w.tree == tree).count();
                Ok((writes, count, events))
            })?;
        }
        Ok(removed)
    }

    fn get_json<T: DeserializeOwned>(&self, tree: Tree, key: &str) -> Result<Option<T>> {
        self.engine
            .read(tree, key.as_bytes(), |v| v.map(decode).transpose())
    }

    fn get_bytes(&self, tree: Tree, key: &str) -> Result<Option<Vec<u8>>> {
        self.engine
            .read(tree, key.as_bytes(), |v| Ok(v.map(<[u8]>::to_vec)))
    }

    /// The writes and the event that end the session stored as `value`.
    fn session_ended(&self, value: &[u8]) -> Result<(Vec<Write>, Vec<Event>)> {
        let session: SessionRecord = decode(value)?;
        let event = Event::SessionEnded {
            id: session.id.clone(),
        };
        Ok((self.session_removals(&[session]), vec![event]))
    }

    /// Writes for removing the given sessions (and their index entries).
    fn session_removals(&self, sessions: &[SessionRecord]) -> Vec<Write> {
        sessions
            .iter()
            .flat_map(|s| {
                [
                    Write::remove(Tree::Sessions, s.id.as_bytes()),
                    Write::remove(Tree::UserSessions, index_key(&s.username, &s.id)),
                ]
            })
            .collect()
    }

    fn sessions_of_now(&self, engine: &E, username: &str) -> Result<Vec<SessionRecord>> {
        let prefix = user_prefix(username);
        let mut out = Vec::new();
        for (key, _) in engine.scan(Tree::UserSessions, &prefix)? {
            let id = &key[prefix.len()..];
            if let Some(session) = engine.read(Tree::Sessions, id, |v| {
                v.map(decode::<SessionRecord>).transpose()
            })? {
                out.push(session);
            }
        }
        Ok(out)
    }

    fn announce(&self, event: Event) {
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// Records of the outbox an older version wrote (the recovery hook's
    /// `time-random` → `{body, attempts, next_at}`, mail's `mail \0 time-random` →
    /// JSON letter) become queue items, in one step.
    fn adopt_old_outbox(&self) -> Result<()> {
        #[derive(serde::Deserialize)]
        struct OldHook {
            body: String,
            attempts: u32,
            next_at: Timestamp,
        }
        self.write(true, |engine| {
            let mut writes = Vec::new();
            for (key, value) in engine.scan(Tree::Outbox, b"")? {
                if key.starts_with(b"q\0") {
                    continue;
                }
                let text = String::from_utf8_lossy(&key).into_owned();
                let item = if let Some(rest) = text.strip_prefix("mail\0") {
                    Some((
                        "mail",
                        rest.to_string(),
                        Item {
                            attempts: 0,
                            due: 0,
                            leased_until: 0,
                            holder: 0,
                            payload: value.clone(),
                        },
                    ))
                } else {
                    serde_json::from_slice::<OldHook>(&value).ok().map(|old| {
                        (
                            "hook",
                            text.clone(),
                            Item {
                                attempts: old.attempts,
                                due: old.next_at,
                                leased_until: 0,
                                holder: 0,
                                payload: old.body.into_bytes(),
                            },
                        )
                    })
                };
                if let Some((queue, id, item)) = item {
                    writes.push(Write::put(
                        Tree::Outbox,
                        format!("{}{id}", queue_prefix(queue)),
                        item.encode(),
                    ));
                    writes.push(Write::remove(Tree::Outbox, key));
                } else {
                    tracing::error!(key = %text.replace('\0', "/"), "unreadable record in the outbox; left there");
                }
            }
            Ok((writes, ()))
        })
    }
}

#[async_trait]
impl<E: Engine> Users for KvStore<E> {
    fn peek_user(&self, username: &str) -> Peek<Option<User>> {
        Some(
            self.users
                .get(username, || self.get_json(Tree::Users, username)),
        )
    }

    async fn get_user(&self, username: &str) -> Result<Option<User>> {
        self.users
            .get(username, || self.get_json(Tree::Users, username))
    }

    async fn put_user(&self, user: &User) -> Result<()> {
        let value = encode(user)?;
        self.write_and_tell(true, |_| {
            Ok((
                vec![Write::put(Tree::Users, user.username.as_bytes(), value)],
                (),
                vec![Event::UserChanged {
                    username: user.username.clone(),
                }],
            ))
        })
    }

    async fn update_user(
        &self,
        username: &str,
        change: &mut (dyn for<'u> FnMut(&'u mut User) + Send),
    ) -> Result<Option<User>> {
        self.write_and_tell(true, |engine| {
            let Some(mut user) = engine.read(Tree::Users, username.as_bytes(), |v| {
                v.map(decode::<User>).transpose()
            })?
            else {
                return Ok((Vec::new(), None, Vec::new()));
            };
            change(&mut user);
            Ok((
                vec![Write::put(Tree::Users, username.as_bytes(), encode(&user)?)],
                Some(user),
                vec![Event::UserChanged {
                    username: username.into(),
                }],
            ))
        })
    }

    async fn delete_user(&self, username: &str) -> Result<bool> {
        self.write_and_tell(true, |engine| {
            let existed = engine.read(Tree::Users, username.as_bytes(), |v| Ok(v.is_some()))?;
            let mut writes = vec![Write::remove(Tree::Users, username.as_bytes())];
            writes.extend(self.session_removals(&self.sessions_of_now(engine, username)?));
            for (key, _) in engine.scan(Tree::Factors, &user_prefix(username))? {
                writes.push(Write::remove(Tree::Factors, key));
            }
            let events = vec![
                Event::UserChanged {
                    username: username.into(),
                },
                Event::SessionsEnded {
                    username: username.into(),
                },
            ];
            Ok((writes, existed, events))
        })
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        self.engine
            .scan(Tree::Users, b"")?
            .iter()
            .map(|(_, v)| decode(v))
            .collect()
    }
}

#[async_trait]
impl<E: Engine> Sessions for KvStore<E> {
    fn peek_session(&self, id: &str) -> Peek<Option<SessionRecord>> {
        Some(self.sessions.get(id, || self.get_json(Tree::Sessions, id)))
    }

    async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>> {
        self.sessions.get(id, || self.get_json(Tree::Sessions, id))
    }

    async fn put_session(&self, session: &SessionRecord) -> Result<()> {
        self.put_sessions(std::slice::from_ref(session)).await
    }

    async fn put_sessions(&self, sessions: &[SessionRecord]) -> Result<()> {
        let mut writes = Vec::with_capacity(sessions.len() * 2);
        for session in sessions {
            writes.push(Write::put(
                Tree::Sessions,
                session.id.as_bytes(),
                encode(session)?,
            ));
            writes.push(Write::put(
                Tree::UserSessions,
                index_key(&session.username, &session.id),
                Vec::new(),
            ));
        }
        self.write(true, |_| Ok((writes, ())))
    }

    async fn modify_session(
        &self,
        id: &str,
        durable: bool,
        change: &mut (dyn for<'s> FnMut(&'s mut SessionRecord) -> bool + Send),
    ) -> Result<Option<SessionRecord>> {
        self.write(durable, |engine| {
            let Some(mut session) = engine.read(Tree::Sessions, id.as_bytes(), |v| {
                v.map(decode::<SessionRecord>).transpose()
            })?
            else {
                return Ok((Vec::new(), None));
            };
            if !change(&mut session) {
                return Ok((Vec::new(), None));
            }
            Ok((
                vec![Write::put(Tree::Sessions, id.as_bytes(), encode(&session)?)],
                Some(session),
            ))
        })
    }

    async fn delete_session(&self, id: &str) -> Result<bool> {
        self.write_and_tell(true, |engine| {
            let Some(session) = engine.read(Tree::Sessions, id.as_bytes(), |v| {
                v.map(decode::<SessionRecord>).transpose()
            })?
            else {
                return Ok((Vec::new(), false, Vec::new()));
            };
            Ok((
                self.session_removals(&[session]),
                true,
                vec![Event::SessionEnded { id: id.into() }],
            ))
        })
    }

    async fn sessions_of(&self, username: &str) -> Result<Vec<SessionRecord>> {
        self.sessions_of_now(&self.engine, username)
    }

    async fn all_sessions(&self) -> Result<Vec<SessionRecord>> {
        self.engine
            .scan(Tree::Sessions, b"")?
            .iter()
            .map(|(_, v)| decode(v))
            .collect()
    }

    async fn delete_sessions_of(&self, username: &str, keep: Option<&str>) -> Result<usize> {
        self.write_and_tell(true, |engine| {
            let ended: Vec<_> = self
                .sessions_of_now(engine, username)?
                .into_iter()
                .filter(|s| keep != Some(s.id.as_str()))
                .collect();
            // Index entries whose session is gone already go too.
            let prefix = user_prefix(username);
            let mut writes = self.session_removals(&ended);
            for (key, _) in engine.scan(Tree::UserSessions, &prefix)? {
                let id = &key[prefix.len()..];
                if keep.is_some_and(|k| k.as_bytes() == id) {
                    continue;
                }
                writes.push(Write::remove(Tree::UserSessions, key.clone()));
            }
            let events = vec![Event::SessionsEnded {
                username: username.into(),
            }];
            Ok((writes, ended.len(), events))
        })
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<usize> {
        #[derive(serde::Deserialize)]
        struct End {
            expires_at: Timestamp,
        }
        let expired =
            |v: &[u8]| serde_json::from_slice::<End>(v).is_ok_and(|s| s.expires_at <= now);
        self.sweep(Tree::Sessions, expired, |_, value| {
            self.session_ended(value)
        })
    }

    /// One session at a time, reading only the three fields it needs: the sweeper
    /// neither holds every session in memory nor decodes them whole (with 100,000
    /// sessions that was a 100 MiB, half-second burst every minute beside the checks).
    async fn delete_idle_sessions(&self, now: Timestamp, idle: u64) -> Result<usize> {
        #[derive(serde::Deserialize)]
        struct Idleness {
            remember_me: bool,
            last_seen: Timestamp,
        }
        let idle_now = |v: &[u8]| {
            serde_json::from_slice::<Idleness>(v)
                .is_ok_and(|s| !s.remember_me && now.saturating_sub(s.last_seen) >= idle)
        };
        self.sweep(Tree::Sessions, idle_now, |_, value| {
            self.session_ended(value)
        })
    }
}

#[async_trait]
impl<E: Engine> Factors for KvStore<E> {
    fn peek_factor(&self, key: &str) -> Peek<Option<Vec<u8>>> {
        Some(self.get_bytes(Tree::Factors, key))
    }

    async fn get_factor(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.get_bytes(Tree::Factors, key)
    }

    async fn put_factor(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(true, |_| {
            Ok((vec![Write::put(Tree::Factors, key, value.to_vec())], ()))
        })
    }

    async fn swap_factor(&self, key: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        self.write(true, |engine| {
            if !engine.read(Tree::Factors, key.as_bytes(), |v| Ok(v == old))? {
                return Ok((Vec::new(), false));
            }
            let write = match new {
                Some(new) => Write::put(Tree::Factors, key, new.to_vec()),
                None => Write::remove(Tree::Factors, key),
            };
            Ok((vec![write], true))
        })
    }

    async fn delete_factor(&self, key: &str) -> Result<bool> {
        self.write(true, |engine| {
            let existed = engine.read(Tree::Factors, key.as_bytes(), |v| Ok(v.is_some()))?;
            let writes = if existed {
                vec![Write::remove(Tree::Factors, key)]
            } else {
                Vec::new()
            };
            Ok((writes, existed))
        })
    }

    async fn factors_of(&self, username: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let prefix = user_prefix(username);
        Ok(self
            .engine
            .scan(Tree::Factors, &prefix)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k[prefix.len()..]).into_owned(), v))
            .collect())
    }
}

#[async_trait]
impl<E: Engine> Tokens for KvStore<E> {
    async fn get_token(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let now = now();
        self.engine.read(Tree::Tokens, key.as_bytes(), |v| {
            Ok(v.and_then(|v| live_token(v, now)).map(<[u8]>::to_vec))
        })
    }

    async fn put_token(
        &self,
        key: &str,
        value: &[u8],
        expires_at: Option<Timestamp>,
    ) -> Result<()> {
        let sealed = seal_token(value, expires_at);
        self.write(true, |_| {
            Ok((vec![Write::put(Tree::Tokens, key, sealed)], ()))
        })
    }

    async fn swap_token(
        &self,
        key: &str,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        let now = now();
        self.write(true, |engine| {
            let matches = engine.read(Tree::Tokens, key.as_bytes(), |v| {
                Ok(v.and_then(|v| live_token(v, now)) == old)
            })?;
            if !matches {
                return Ok((Vec::new(), false));
            }
            let write = match new {
                Some(new) => Write::put(Tree::Tokens, key, seal_token(new, expires_at)),
                None => Write::remove(Tree::Tokens, key),
            };
            Ok((vec![write], true))
        })
    }

    async fn take_token(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let now = now();
        self.write(true, |engine| {
            let Some(stored) =
                engine.read(Tree::Tokens, key.as_bytes(), |v| Ok(v.map(<[u8]>::to_vec)))?
            else {
                return Ok((Vec::new(), None));
            };
            let live = live_token(&stored, now).map(<[u8]>::to_vec);
            Ok((vec![Write::remove(Tree::Tokens, key)], live))
        })
    }

    async fn delete_token(&self, key: &str) -> Result<bool> {
        self.write(true, |engine| {
            let existed = engine.read(Tree::Tokens, key.as_bytes(), |v| Ok(v.is_some()))?;
            let writes = if existed {
                vec![Write::remove(Tree::Tokens, key)]
            } else {
                Vec::new()
            };
            Ok((writes, existed))
        })
    }

    async fn tokens_with_ends(&self, prefix: &str) -> Result<Vec<TokenWithEnd>> {
        let now = now();
        Ok(self
            .engine
            .scan(Tree::Tokens, prefix.as_bytes())?
            .into_iter()
            .filter_map(|(k, v)| {
                let live = live_token(&v, now)?.to_vec();
                let (_, end) = open_token(&v);
                Some((String::from_utf8_lossy(&k).into_owned(), live, end))
            })
            .collect())
    }

    async fn sweep_tokens(&self, now: Timestamp) -> Result<usize> {
        self.sweep(
            Tree::Tokens,
            |v| live_token(v, now).is_none(),
            |key, _| Ok((vec![Write::remove(Tree::Tokens, key)], Vec::new())),
        )
    }
}

#[async_trait]
impl<E: Engine> Counters for KvStore<E> {
    async fn update_tallies(
        &self,
        keys: &[String],
        change: &mut (dyn for<'t> FnMut(&'t mut [Tally]) -> bool + Send),
    ) -> Result<bool> {
        self.write(false, |engine| {
            let mut tallies = keys
                .iter()
                .map(|k| {
                    engine.read(Tree::Counters, k.as_bytes(), |v| {
                        Ok(v.map(decode::<Tally>).transpose()?.unwrap_or_default())
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if !change(&mut tallies) {
                return Ok((Vec::new(), false));
            }
            let writes = keys
                .iter()
                .zip(&tallies)
                .map(|(k, t)| {
                    Ok(if *t == Tally::default() {
                        Write::remove(Tree::Counters, k.as_bytes())
                    } else {
                        Write::put(Tree::Counters, k.as_bytes(), encode(t)?)
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((writes, true))
        })
    }

    async fn read_tallies(&self, keys: &[String]) -> Result<Vec<Tally>> {
        keys.iter()
            .map(|k| {
                self.engine.read(Tree::Counters, k.as_bytes(), |v| {
                    Ok(v.map(decode::<Tally>).transpose()?.unwrap_or_default())
                })
            })
            .collect()
    }

    async fn sweep_tallies(&self, now: Timestamp, window: u64) -> Result<usize> {
        self.sweep(
            Tree::Counters,
            |v| decode::<Tally>(v).map_or(true, |t| t.is_spent(now, window)),
            |key, _| Ok((vec![Write::remove(Tree::Counters, key)], Vec::new())),
        )
    }
}

#[async_trait]
impl<E: Engine> Queue for KvStore<E> {
    async fn enqueue(&self, queue: &str, payload: &[u8]) -> Result<String> {
        // Ordered by when it was queued (to the nanosecond), unique by the random part.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let id = format!("{nanos:020}-{}", crate::basics::random_token(8));
        let item = Item {
            attempts: 0,
            due: 0,
            leased_until: 0,
            holder: 0,
            payload: payload.to_vec(),
        };
        let key = format!("{}{id}", queue_prefix(queue));
        self.write(true, |_| {
            Ok((vec![Write::put(Tree::Outbox, key, item.encode())], ()))
        })?;
        Ok(id)
    }

    async fn claim(&self, queue: &str, max: usize, lease: u64) -> Result<Vec<Claimed>> {
        let now = now();
        let prefix = queue_prefix(queue);
        self.write(true, |engine| {
            let mut writes = Vec::new();
            let mut claimed = Vec::new();
            for (key, value) in engine.scan(Tree::Outbox, prefix.as_bytes())? {
                if claimed.len() >= max {
                    break;
                }
                let Ok(mut item) = Item::decode(&value) else {
                    continue;
                };
                if item.due > now || item.leased_until > now {
                    continue;
                }
                let holder = rand::random::<u64>().max(1);
                claimed.push(Claimed {
                    id: String::from_utf8_lossy(&key[prefix.len()..]).into_owned(),
                    payload: item.payload.clone(),
                    attempts: item.attempts,
                    holder,
                });
                item.attempts += 1;
                item.leased_until = now + lease;
                item.holder = holder;
                writes.push(Write::put(Tree::Outbox, key, item.encode()));
            }
            Ok((writes, claimed))
        })
    }

    async fn ack(&self, queue: &str, id: &str) -> Result<()> {
        let key = format!("{}{id}", queue_prefix(queue));
        self.write(true, |_| Ok((vec![Write::remove(Tree::Outbox, key)], ())))
    }

    async fn retry(&self, queue: &str, claimed: &Claimed, after: u64) -> Result<()> {
        let key = format!("{}{}", queue_prefix(queue), claimed.id);
        let due = now() + after;
        self.write(true, |engine| {
            let Some(mut item) = engine.read(Tree::Outbox, key.as_bytes(), |v| {
                v.map(Item::decode).transpose()
            })?
            else {
                return Ok((Vec::new(), ()));
            };
            // Another worker claimed it after this one's lease ran out: it is theirs.
            if item.holder != claimed.holder {
                return Ok((Vec::new(), ()));
            }
            item.due = due;
            item.leased_until = 0;
            item.holder = 0;
            Ok((
                vec![Write::put(Tree::Outbox, key.clone(), item.encode())],
                (),
            ))
        })
    }

    async fn queued(&self, queue: &str) -> Result<usize> {
        Ok(self
            .engine
            .scan(Tree::Outbox, queue_prefix(queue).as_bytes())?
            .len())
    }
}

impl<E: Engine> Events for KvStore<E> {
    fn publish(&self, event: Event) {
        self.announce(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }
}

impl RecordKey {
    fn place(&self) -> (Tree, &str) {
        match self {
            RecordKey::User(k) => (Tree::Users, k),
            RecordKey::Session(k) => (Tree::Sessions, k),
            RecordKey::Factor(k) => (Tree::Factors, k),
            RecordKey::Token(k) => (Tree::Tokens, k),
        }
    }
}

#[async_trait]
impl<E: Engine> Transactions for KvStore<E> {
    async fn transact(
        &self,
        keys: &[RecordKey],
        change: &mut (dyn for<'r> FnMut(&'r mut [Option<Vec<u8>>]) -> Result<bool> + Send),
    ) -> Result<bool> {
        let now = now();
        self.write_and_tell(true, |engine| {
            let mut events = Vec::new();
            let mut before = Vec::with_capacity(keys.len());
            let mut ends = Vec::with_capacity(keys.len());
            for key in keys {
                let (tree, k) = key.place();
                let stored = engine.read(tree, k.as_bytes(), |v| Ok(v.map(<[u8]>::to_vec)))?;
                let (value, end) = match (key, stored) {
                    // A live token keeps its end when rewritten; an expired one is
                    // absent, and one written here has none.
                    (RecordKey::Token(_), Some(stored)) => match live_token(&stored, now) {
                        Some(live) => (Some(live.to_vec()), open_token(&stored).1),
                        None => (None, None),
                    },
                    (_, stored) => (stored, None),
                };
                before.push(value);
                ends.push(end);
            }
            let mut after = before.clone();
            if !change(&mut after)? {
                return Ok((Vec::new(), false, Vec::new()));
            }
            let mut writes = Vec::new();
            for ((key, old), (new, end)) in
                keys.iter().zip(&before).zip(after.into_iter().zip(ends))
            {
                if *old == new {
                    continue;
                }
                let (tree, k) = key.place();
                match (key, new) {
                    (RecordKey::Token(_), Some(v)) => {
                        writes.push(Write::put(tree, k, seal_token(&v, end)))
                    }
                    (RecordKey::Session(_), new) => {
                        if let Some(old) = old {
                            let old: SessionRecord = decode(old)?;
                            writes.push(Write::remove(
                                Tree::UserSessions,
                                index_key(&old.username, &old.id),
                            ));
                        }
                        match new {
                            Some(v) => {
                                let session: SessionRecord = decode(&v)?;
                                writes.push(Write::put(
                                    Tree::UserSessions,
                                    index_key(&session.username, &session.id),
                                    Vec::new(),
                                ));
                                writes.push(Write::put(tree, k, v));
                            }
                            None => {
                                events.push(Event::SessionEnded { id: k.into() });
                                writes.push(Write::remove(tree, k));
                            }
                        }
                    }
                    (key, new) => {
                        if let RecordKey::User(name) = key {
                            events.push(Event::UserChanged {
                                username: name.clone(),
                            });
                        }
                        writes.push(Write {
                            tree,
                            key: k.as_bytes().to_vec(),
                            value: new,
                        });
                    }
                }
            }
            Ok((writes, true, events))
        })
    }
}

/// The lease of a store only one process can open: held for good.
struct OnlyProcess;

impl LeaderLease for OnlyProcess {
    fn held(&self) -> bool {
        true
    }
}

#[async_trait]
impl<E: Engine> Leadership for KvStore<E> {
    async fn try_lead(&self, _role: &str) -> Result<Option<std::sync::Arc<dyn LeaderLease>>> {
        Ok(Some(std::sync::Arc::new(OnlyProcess)))
    }
}

impl<E: Engine> Health for KvStore<E> {
    fn health(&self) -> std::result::Result<(), String> {
        self.engine.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuthLevel, MemoryEngine};

    fn session(id: &str, user: &str) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            username: user.into(),
            level: AuthLevel::OneFactor,
            created_at: 1,
            last_seen: 1,
            expires_at: 100,
            remember_me: false,
            ip: "ip".into(),
            user_agent: "ua".into(),
            password_at: 1,
            identity_at: 0,
            generation: 0,
            method: String::new(),
        }
    }

    #[tokio::test]
    async fn a_token_past_its_end_is_gone_for_readers_and_the_sweep() {
        let store = MemoryEngine::store();
        let now = now();
        store.put_token("live", b"a", Some(now + 60)).await.unwrap();
        store.put_token("dead", b"b", Some(now - 1)).await.unwrap();
        store.put_token("kept", b"c", None).await.unwrap();
        assert_eq!(store.get_token("live").await.unwrap(), Some(b"a".to_vec()));
        assert_eq!(store.get_token("dead").await.unwrap(), None);
        assert!(!store
            .swap_token("dead", Some(b"b"), Some(b"x"), None)
            .await
            .unwrap());
        assert_eq!(store.tokens_with_prefix("").await.unwrap().len(), 2);
        assert_eq!(store.sweep_tokens(now).await.unwrap(), 1);
        assert_eq!(store.take_token("live").await.unwrap(), Some(b"a".to_vec()));
        assert_eq!(store.take_token("live").await.unwrap(), None, "taken once");
    }

    #[tokio::test]
    async fn a_value_written_before_time_to_lives_still_reads() {
        let store = MemoryEngine::store();
        store
            .engine()
            .apply(&[Write::put(Tree::Tokens, "phone\0+1", b"ann".to_vec())])
            .unwrap();
        assert_eq!(
            store.get_token("phone\0+1").await.unwrap(),
            Some(b"ann".to_vec())
        );
    }

    #[tokio::test]
    async fn a_claimed_item_is_not_claimed_again_until_its_lease_ends_or_it_is_put_back() {
        let store = MemoryEngine::store();
        let first = store.enqueue("mail", b"one").await.unwrap();
        store.enqueue("mail", b"two").await.unwrap();
        store.enqueue("hook", b"other queue").await.unwrap();
        let claimed = store.claim("mail", 1, 60).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            (claimed[0].id.as_str(), claimed[0].attempts),
            (first.as_str(), 0)
        );
        let rest = store.claim("mail", 10, 60).await.unwrap();
        assert_eq!(rest.len(), 1, "only the unleased one");
        assert!(store.claim("mail", 10, 60).await.unwrap().is_empty());
        store.retry("mail", &claimed[0], 0).await.unwrap();
        let again = store.claim("mail", 10, 60).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 1));
        store.ack("mail", &first).await.unwrap();
        assert_eq!(store.queued("mail").await.unwrap(), 1);
        // A lease that ran out (its worker died) gives the item back.
        let lapsed = store.claim("hook", 10, 0).await.unwrap();
        assert_eq!(lapsed.len(), 1);
        let taken_over = store.claim("hook", 10, 60).await.unwrap();
        assert_eq!(taken_over.len(), 1);
        // The first worker, whose lease ran out, cannot put back what another holds.
        store.retry("hook", &lapsed[0], 0).await.unwrap();
        assert!(store.claim("hook", 10, 60).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_older_outbox_becomes_queue_items() {
        let engine = MemoryEngine::default();
        engine
            .apply(&[
                Write::put(
                    Tree::Outbox,
                    "000000000001-abc",
                    br#"{"body":"{\"event\":\"x\"}","attempts":2,"next_at":5}"#.to_vec(),
                ),
                Write::put(Tree::Outbox, "mail\x00000000000002-def", b"{}".to_vec()),
            ])
            .unwrap();
        let store = KvStore::new(engine).unwrap();
        let hook = store.claim("hook", 10, 60).await.unwrap();
        assert_eq!(hook.len(), 1);
        assert_eq!(
            (hook[0].payload.as_slice(), hook[0].attempts),
            (&br#"{"event":"x"}"#[..], 2)
        );
        assert_eq!(store.claim("mail", 10, 60).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_transaction_writes_all_or_nothing() {
        let store = MemoryEngine::store();
        store.put_factor("ann\0a", b"1").await.unwrap();
        let keys = [
            RecordKey::Factor("ann\0a".into()),
            RecordKey::Token("t".into()),
            RecordKey::Session("s".into()),
        ];
        let declined = store
            .transact(&keys, &mut |records| {
                records[0] = None;
                Ok(false)
            })
            .await
            .unwrap();
        assert!(!declined);
        assert!(store.get_factor("ann\0a").await.unwrap().is_some());
        let failed = store
            .transact(&keys, &mut |records| {
                records[1] = Some(b"x".to_vec());
                Err(Error::Busy)
            })
            .await;
        assert!(failed.is_err());
        assert!(store.get_token("t").await.unwrap().is_none());
        let session = serde_json::to_vec(&session("s", "ann")).unwrap();
        store
            .transact(&keys, &mut |records| {
                records[0] = None;
                records[1] = Some(b"x".to_vec());
                records[2] = Some(session.clone());
                Ok(true)
            })
            .await
            .unwrap();
        assert!(store.get_factor("ann\0a").await.unwrap().is_none());
        assert_eq!(store.get_token("t").await.unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.sessions_of("ann").await.unwrap().len(), 1, "indexed");
    }

    #[tokio::test]
    async fn ending_sessions_is_announced_to_subscribers() {
        let store = MemoryEngine::store();
        let mut events = store.subscribe();
        store.put_session(&session("s1", "ann")).await.unwrap();
        store.put_session(&session("s2", "ann")).await.unwrap();
        store.delete_session("s1").await.unwrap();
        store.delete_sessions_of("ann", None).await.unwrap();
        assert_eq!(
            events.recv().await.unwrap(),
            Event::SessionEnded { id: "s1".into() }
        );
        assert_eq!(
            events.recv().await.unwrap(),
            Event::SessionsEnded {
                username: "ann".into()
            }
        );
        assert!(store.sessions_of("ann").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn tallies_of_several_keys_change_together() {
        let store = MemoryEngine::store();
        let keys = vec!["a".to_string(), "b".to_string()];
        store
            .update_tallies(&keys, &mut |t| {
                t[0].events.push(5);
                t[1].held_until = 10;
                true
            })
            .await
            .unwrap();
        let declined = store
            .update_tallies(&keys, &mut |t| {
                t[0].events.clear();
                false
            })
            .await
            .unwrap();
        assert!(!declined);
        let read = store.read_tallies(&keys).await.unwrap();
        assert_eq!(
            (read[0].events.as_slice(), read[1].held_until),
            (&[5][..], 10)
        );
        assert_eq!(store.sweep_tallies(100, 60).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn deleting_a_user_removes_their_sessions_and_factors_in_one_step() {
        let store = MemoryEngine::store();
        store.put_session(&session("s1", "ann")).await.unwrap();
        store.put_session(&session("s2", "ann2")).await.unwrap();
        store.put_factor("ann\0totp", b"{}").await.unwrap();
        store.put_factor("ann2\0totp", b"{}").await.unwrap();
        store.delete_user("ann").await.unwrap();
        assert!(store.get_session("s1").await.unwrap().is_none());
        assert!(store.factors_of("ann").await.unwrap().is_empty());
        assert_eq!(store.factors_of("ann2").await.unwrap().len(), 1);
        assert!(store.get_session("s2").await.unwrap().is_some());
    }
}
