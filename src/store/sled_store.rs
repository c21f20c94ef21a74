//! sled as the store's [`Engine`]: one sled tree per [`Tree`] (the layout is in `kv`),
//! a batch of several records as one sled transaction.
//!
//! Two things sled does not do by itself are added here:
//! - **Durability.** sled's `flush` waits for `pwrite` and `sync_file_range`, which
//!   neither flushes the drive's cache nor commits a grown file's size; its real `fsync`
//!   runs every 500 ms on a background thread. Every durable write here also
//!   `fdatasync`s the log itself, shared by writers that wait at the same moment (group
//!   commit), so an answered change survives a power cut.
//! - **Recovery from I/O errors.** After one failed write (a full disk), sled refuses
//!   every later write until the database is reopened. The store remembers the failure,
//!   keeps serving reads from what it has, reports the reason to health, and a watcher
//!   thread reopens the database once the disk has room again: no restart needed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use sled::Transactional;

use super::kv::{Engine, Tree, Write};
use crate::error::{Error, Result};

/// The most memory sled's page cache may use.
const STORE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Free space the disk needs before a store that failed to write is reopened: sled
/// takes its log in segments of 512 KiB, and may write a snapshot while opening.
const ROOM_TO_REOPEN: u64 = 4 * 1024 * 1024;

/// How often the watcher looks at a failing store.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// sled-backed store; cloning shares the same database.
#[derive(Clone)]
pub struct SledStore {
    shared: Arc<Shared>,
}

/// What every clone of a [`SledStore`] shares.
struct Shared {
    dir: PathBuf,
    /// The open database; `None` only while it is being reopened.
    open: RwLock<Option<Arc<Handles>>>,
    /// Why writes fail, from the first failure until the database is reopened.
    failure: FirstProblem,
    /// The first damage found while running (a record that cannot be decoded, a page
    /// sled finds corrupt): reported by health until the process restarts.
    damage: FirstProblem,
}

/// The first of a kind of problem, kept for health until cleared.
#[derive(Default)]
struct FirstProblem(Mutex<Option<String>>);

impl FirstProblem {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `why` unless a problem is already kept; whether it was the first.
    fn note(&self, why: &str) -> bool {
        let mut slot = self.slot();
        let first = slot.is_none();
        if first {
            *slot = Some(why.to_string());
        }
        first
    }

    fn get(&self) -> Option<String> {
        self.slot().clone()
    }

    fn clear(&self) {
        *self.slot() = None;
    }
}

/// One opened database and its trees.
struct Handles {
    db: sled::Db,
    /// One per [`Tree`], in its order.
    trees: Vec<sled::Tree>,
    log: GroupSync,
}

/// `fdatasync` of sled's log file, shared by the writers waiting at the same time: a
/// writer whose change an `fdatasync` begun after its write already covered returns at
/// once.
struct GroupSync {
    file: std::fs::File,
    /// Tickets handed out to writers (one per durable write).
    requested: std::sync::atomic::AtomicU64,
    /// The highest ticket known to be on disk.
    synced: Mutex<u64>,
    /// Set for good by a failed fdatasync: Linux reports a failed writeback once, so a
    /// later fdatasync may succeed although the pages it should have covered are lost.
    /// Only reopening the database (a new `GroupSync`) clears it.
    failed: std::sync::atomic::AtomicBool,
    /// Tests: the next sync fails as a full disk would.
    #[cfg(test)]
    fail_next: std::sync::atomic::AtomicBool,
}

impl GroupSync {
    fn open(path: &Path) -> std::io::Result<Self> {
        Ok(GroupSync {
            file: std::fs::File::open(path)?,
            requested: Default::default(),
            synced: Mutex::new(0),
            failed: Default::default(),
            #[cfg(test)]
            fail_next: Default::default(),
        })
    }

    fn sync(&self) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        #[cfg(test)]
        if self.fail_next.swap(false, SeqCst) {
            self.failed.store(true, SeqCst);
            return Err(std::io::Error::from_raw_os_error(28));
        }
        let failed = || std::io::Error::other("an earlier fdatasync of the store's log failed");
        let ticket = self.requested.fetch_add(1, SeqCst) + 1;
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if self.failed.load(SeqCst) {
            return Err(failed());
        }
        if *synced >= ticket {
            return Ok(());
        }
        // Everyone who took a ticket before this point has written already.
        let covered = self.requested.load(SeqCst);
        if let Err(e) = self.file.sync_data() {
            self.failed.store(true, SeqCst);
            return Err(e);
        }
        *synced = covered;
        Ok(())
    }
}

/// Makes the data directory and everything in it readable by its owner only: folders
/// 0700, files 0600. The store holds password hashes and session ids.
pub fn make_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.is_dir() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            make_private(&entry?.path())?;
        }
    } else if meta.is_file() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// The store's identity, kept both inside it and beside it (`store.id`): a store that
/// lost its records (sled recovers a damaged log by dropping what it cannot read, and
/// would start empty and silent) or that belongs to another data directory is refused.
fn check_identity(dir: &Path, db: &sled::Db) -> Result<()> {
    const KEY: &[u8] = b"store-id";
    let marker = dir.join("store.id");
    let outside = std::fs::read_to_string(&marker)
        .ok()
        .map(|s| s.trim().to_string());
    let inside = db
        .get(KEY)?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let refuse = |why: &str| {
        Error::Invalid(format!(
            "the store in {} {why}: stop here and restore the data directory from a backup (see README, Operating)",
            dir.join("store").display()
        ))
    };
    match (outside, inside) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (Some(_), Some(_)) => Err(refuse(
            "belongs to another data directory (its store.id differs)",
        )),
        (Some(_), None) => Err(refuse(
            "has lost its records (damaged, or replaced by an empty one)",
        )),
        (None, Some(id)) => {
            crate::basics::write_private(&marker, id.as_bytes())?;
            Ok(())
        }
        (None, None) => {
            let id = crate::basics::random_token(16);
            db.insert(KEY, id.as_bytes())?;
            db.flush()?;
            crate::basics::write_private(&marker, id.as_bytes())?;
            Ok(())
        }
    }
}

/// Removes snapshots sled began and never finished (`snap.*.generating`). A start or
/// a snapshot cut short (a full disk, kill -9) leaves one, possibly empty, and sled
/// then takes it for the latest snapshot and refuses the whole store as corrupt. A
/// finished snapshot is renamed before it counts, so these hold nothing needed.
fn remove_unfinished_snapshots(store_path: &Path) -> Result<usize> {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(store_path) else {
        return Ok(0);
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. Fails clearly when another process has it.
    pub fn open(dir: &Path) -> Result<Self> {
        let handles = Handles::open(dir)?;
        Ok(SledStore {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                open: RwLock::new(Some(Arc::new(handles))),
                failure: FirstProblem::default(),
                damage: FirstProblem::default(),
            }),
        })
    }
}

impl Handles {
    fn open(dir: &Path) -> Result<Self> {
        let unusable = |e: std::io::Error| {
            Error::config(
                "server.data_dir",
                dir.display().to_string(),
                format!("cannot use it: {e}"),
            )
        };
        std::fs::create_dir_all(dir).map_err(unusable)?;
        make_private(dir).map_err(|e| match e {
            Error::Io(e) => unusable(e),
            other => other,
        })?;
        let is_lock = |e: &sled::Error| matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock"));
        // A store closed a moment ago (a restart, a CLI command that just finished) can
        // hold its lock while sled's background flusher winds down: wait a little.
        let mut attempts = 0;
        let store_path = dir.join("store");
        let damaged = |why: String| {
            Error::Invalid(format!(
                "the store in {} is damaged ({why}): stop here and restore the data directory from a backup (see README, Operating)",
                store_path.display()
            ))
        };
        let mut cleaned = false;
        let db = loop {
            // sled's default page cache is 1 GiB; records here are small and hot. sled
            // panics on some kinds of damage: that is a message, never a crash.
            let opened = std::panic::catch_unwind(|| {
                sled::Config::new()
                    .path(&store_path)
                    .cache_capacity(STORE_CACHE_BYTES)
                    .open()
            })
            .map_err(|panic| {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "it could not be read".into());
                damaged(why)
            })?;
            match opened {
                Ok(db) => break db,
                // sled took the store's lock before reading it: nobody else is writing
                // a snapshot now.
                Err(sled::Error::Corruption { .. })
                    if !cleaned && remove_unfinished_snapshots(&store_path)? > 0 =>
                {
                    tracing::warn!(store = %store_path.display(), "removed a snapshot sled had not finished writing (a full disk or a crash cut it short)");
                    cleaned = true;
                }
                Err(e @ (sled::Error::Corruption { .. } | sled::Error::ReportableBug(_))) => {
                    return Err(damaged(e.to_string()))
                }
                Err(e) if is_lock(&e) && attempts < 40 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) if is_lock(&e) => {
                    return Err(Error::Invalid(format!(
                        "the store in {} is in use by another process (is `gatehouse serve` running? its admin socket did not answer)",
                        dir.display()
                    )))
                }
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "the store in {} cannot be opened: {e}",
                        store_path.display()
                    )))
                }
            }
        };
        // sled creates its files with the process umask: close them to others (also the
        // files of an older version's store, on upgrade).
        make_private(dir)?;
        check_identity(dir, &db)?;
        Ok(Handles {
            trees: Tree::ALL
                .iter()
                .map(|t| db.open_tree(t.name()))
                .collect::<sled::Result<_>>()?,
            log: GroupSync::open(&store_path.join("db"))?,
            db,
        })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree as usize]
    }

    /// Makes every change made so far durable: sled's flush, then the log's fdatasync.
    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        self.log.sync()?;
        Ok(())
    }
}

/// The I/O error inside a store error, if it is one (a full disk, a failing drive).
fn io_failure(e: &Error) -> Option<String> {
    match e {
        Error::Store(sled::Error::Io(io)) | Error::Io(io) => Some(io.to_string()),
        Error::StoreUnavailable(why) => Some(why.clone()),
        _ => None,
    }
}

impl SledStore {
    /// The open database, or unavailable while it is being reopened.
    fn handles(&self) -> Result<Arc<Handles>> {
        let open = self.shared.open.read().unwrap_or_else(|p| p.into_inner());
        open.clone().ok_or_else(|| {
            Error::StoreUnavailable("the store is being reopened after a write failed".into())
        })
    }

    /// Runs one operation on the open database. An I/O failure is remembered (health
    /// reports it, the watcher reopens the database once it can) and answered as
    /// "unavailable", never as a crash.
    fn with<R>(&self, op: impl FnOnce(&Handles) -> Result<R>) -> Result<R> {
        let handles = self.handles()?;
        let store = self.shared.dir.display();
        op(&handles).map_err(|e| match io_failure(&e) {
            Some(why) => {
                if self.shared.failure.note(&why) {
                    tracing::error!(%store, error = %why, "the store cannot write; health reports it until the database is reopened");
                }
                Error::StoreUnavailable(why)
            }
            None => {
                let damaged = matches!(
                    e,
                    Error::Codec(_) | Error::Store(sled::Error::Corruption { .. })
                );
                if damaged && self.shared.damage.note(&e.to_string()) {
                    tracing::error!(%store, error = %e, "the store holds damaged data; health reports it: restore the data directory from a backup (see README, Operating)");
                }
                e
            }
        })
    }

    /// A real durable write, as health's periodic proof that the store still writes.
    pub fn write_probe(&self) -> Result<()> {
        let now = crate::basics::now();
        self.with(|h| {
            h.db.insert(b"health-probe", &now.to_be_bytes())?;
            h.flush()
        })
    }

    /// Whether the data directory's disk can take a reopen: sled starts a new 512 KiB
    /// log segment and may write a snapshot as big as the last one. The free space is
    /// checked first (cheap), then proven by writing and syncing a scratch file of that
    /// size (a read-only or failing disk fails here, before the open database is given
    /// up).
    fn room_to_reopen(&self) -> bool {
        let dir = &self.shared.dir;
        let largest_snapshot = std::fs::read_dir(dir.join("store"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("snap."))
                    .filter_map(|e| e.metadata().ok().map(|m| m.len()))
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let reserve = ROOM_TO_REOPEN.max(2 * largest_snapshot + 1024 * 1024);
        if fs2::available_space(dir).unwrap_or(0) < reserve {
            return false;
        }
        let scratch = dir.join(".space-probe");
        let proven = (|| -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&scratch)?;
            let block = vec![0u8; 64 * 1024];
            let mut written = 0;
            while written < reserve {
                file.write_all(&block)?;
                written += block.len() as u64;
            }
            file.sync_all()
        })();
        let _ = std::fs::remove_file(&scratch);
        proven.is_ok()
    }

    /// After a write failed: reopens the database once the disk has room again (sled
    /// keeps refusing writes after one failure until it is reopened). The database in
    /// use keeps serving reads until the disk is proven able to take the reopen.
    /// Returns whether the store is healthy afterwards.
    pub fn recover(&self) -> bool {
        if self.shared.failure.get().is_none() {
            return true;
        }
        if !self.room_to_reopen() {
            return false;
        }
        // Take the database away from new operations, wait for those running (each is
        // short and synchronous), and close it so its lock is released.
        let old = self
            .shared
            .open
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut old) = old {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match Arc::try_unwrap(old) {
                    Ok(handles) => {
                        // sled may panic closing a log whose last sync failed.
                        let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            drop(handles)
                        }));
                        if closed.is_err() {
                            tracing::warn!("sled complained while closing the failed store");
                        }
                        break;
                    }
                    Err(still_used) if Instant::now() < deadline => {
                        old = still_used;
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(still_used) => {
                        // Not expected: put it back and try again later.
                        *self.shared.open.write().unwrap_or_else(|p| p.into_inner()) =
                            Some(still_used);
                        return false;
                    }
                }
            }
        }
        match Handles::open(&self.shared.dir) {
            Ok(handles) => {
                *self.shared.open.write().unwrap_or_else(|p| p.into_inner()) =
                    Some(Arc::new(handles));
                self.shared.failure.clear();
                match self.write_probe() {
                    Ok(()) => {
                        tracing::info!(store = %self.shared.dir.display(), "the store writes again: reopened after the failure");
                        true
                    }
                    Err(_) => false,
                }
            }
            Err(e) => {
                tracing::error!(store = %self.shared.dir.display(), error = %e, "reopening the store failed; trying again");
                false
            }
        }
    }

    /// Starts the watcher thread of a serving process: every `write_every` a real
    /// write proves the store still writes, and after a failure the database is
    /// reopened as soon as the disk has room. The thread ends with the last clone.
    pub fn watch(&self, write_every: Duration) {
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("store-watch".into())
            .spawn(move || {
                let mut last_probe = Instant::now();
                // While recovery fails, look less often: up to every 5 s.
                let mut pause = WATCH_EVERY;
                loop {
                    std::thread::sleep(pause);
                    let Some(shared) = weak.upgrade() else { return };
                    let store = SledStore { shared };
                    let recovered =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.recover()))
                            .unwrap_or_else(|_| {
                                tracing::error!("recovering the store panicked; trying again");
                                false
                            });
                    if !recovered {
                        pause = (pause * 2).min(Duration::from_secs(5));
                        continue;
                    }
                    pause = WATCH_EVERY;
                    if last_probe.elapsed() >= write_every {
                        last_probe = Instant::now();
                        let _ = store.write_probe();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the store's watcher thread");
        }
    }
}

impl Engine for SledStore {
    fn read<R>(
        &self,
        tree: Tree,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Result<R>,
    ) -> Result<R> {
        self.with(|h| f(h.tree(tree).get(key)?.as_deref()))
    }

    fn scan(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.with(|h| {
            h.tree(tree)
                .scan_prefix(prefix)
                .map(|kv| {
                    let (k, v) = kv?;
                    Ok((k.to_vec(), v.to_vec()))
                })
                .collect()
        })
    }

    fn keys_where(&self, tree: Tree, pick: impl Fn(&[u8]) -> bool) -> Result<Vec<Vec<u8>>> {
        self.with(|h| {
            let mut keys = Vec::new();
            for kv in h.tree(tree).iter() {
                let (k, v) = kv?;
                if pick(&v) {
                    keys.push(k.to_vec());
                }
            }
            Ok(keys)
        })
    }

    fn apply(&self, writes: &[Write]) -> Result<()> {
        self.with(|h| {
            if let [one] = writes {
                let tree = h.tree(one.tree);
                match &one.value {
                    Some(value) => tree.insert(&one.key, value.as_slice())?,
                    None => tree.remove(&one.key)?,
                };
                return Ok(());
            }
            // Several records: one sled transaction, which its log keeps whole.
            let trees: Vec<&sled::Tree> = Tree::ALL.iter().map(|t| h.tree(*t)).collect();
            trees
                .as_slice()
                .transaction(|views| {
                    for write in writes {
                        let view = &views[write.tree as usize];
                        match &write.value {
                            Some(value) => view.insert(write.key.as_slice(), value.as_slice())?,
                            None => view.remove(write.key.as_slice())?,
                        };
                    }
                    Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    sled::transaction::TransactionError::Storage(e) => Error::Store(e),
                    sled::transaction::TransactionError::Abort(()) => {
                        Error::Internal("a store transaction was aborted".into())
                    }
                })
        })
    }

    fn sync(&self) -> Result<()> {
        self.with(|h| h.flush())
    }

    fn health(&self) -> std::result::Result<(), String> {
        if let Some(why) = self.shared.failure.get() {
            return Err(format!("the store cannot write: {why}"));
        }
        if let Some(why) = self.shared.damage.get() {
            return Err(format!(
                "the store holds damaged data ({why}): restore the data directory from a backup"
            ));
        }
        self.with(|h| Ok(h.db.get(b"store-id").map(drop)?))
            .map_err(|e| format!("the store cannot read: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AuthLevel, Health, KvStore, SessionRecord, Sessions};

    fn kv(dir: &Path) -> KvStore<SledStore> {
        KvStore::new(SledStore::open(dir).unwrap()).unwrap()
    }

    fn session(id: &str, user: &str) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            username: user.into(),
            level: AuthLevel::OneFactor,
            created_at: 1,
            last_seen: 1,
            expires_at: 100,
            remember_me: false,
            ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            password_at: 1,
            identity_at: 0,
            generation: 0,
            method: String::new(),
        }
    }

    #[tokio::test]
    async fn the_data_directory_and_its_files_are_private_also_on_upgrade() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A file an older version left readable by everyone.
        std::fs::write(data.join("old"), "x").unwrap();
        std::fs::set_permissions(data.join("old"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = kv(&data);
        store.put_session(&session("a", "ann")).await.unwrap();
        drop(store);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("old")), 0o600);
        let mut files = 0;
        let mut stack = vec![data.join("store")];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                files += 1;
            }
        }
        assert!(files > 0);
    }

    #[tokio::test]
    async fn revoking_all_but_one_session_keeps_only_that_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = kv(dir.path());
        for id in ["a", "b", "c"] {
            store.put_session(&session(id, "ann")).await.unwrap();
        }
        store.put_session(&session("d", "ann2")).await.unwrap();
        assert_eq!(store.delete_sessions_of("ann", Some("b")).await.unwrap(), 2);
        let left: Vec<_> = store
            .sessions_of("ann")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(left, vec!["b".to_string()]);
        assert_eq!(
            store.sessions_of("ann2").await.unwrap().len(),
            1,
            "a user whose name extends another's is untouched"
        );
    }

    #[tokio::test]
    async fn touch_does_not_resurrect_a_deleted_session() {
        let dir = tempfile::tempdir().unwrap();
        let store = kv(dir.path());
        let s = session("x", "ann");
        store.put_session(&s).await.unwrap();
        store.delete_session("x").await.unwrap();
        let touched = store
            .modify_session("x", false, &mut |s| {
                s.last_seen = 50;
                true
            })
            .await
            .unwrap();
        assert!(touched.is_none());
        assert!(store.get_session("x").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn committed_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = kv(dir.path());
            store.put_session(&session("x", "ann")).await.unwrap();
        }
        let store = kv(dir.path());
        assert!(store.get_session("x").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_write_failure_is_reported_and_a_reopen_makes_writes_work_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = kv(dir.path());
        store.put_session(&session("a", "ann")).await.unwrap();
        store
            .engine()
            .handles()
            .unwrap()
            .log
            .fail_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let err = store.put_session(&session("b", "ann")).await.unwrap_err();
        assert!(matches!(err, Error::StoreUnavailable(_)), "{err}");
        assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        let health = store.health().unwrap_err();
        assert!(health.contains("No space left"), "{health}");
        // Reads keep working meanwhile; writes keep failing (a later fdatasync that
        // succeeds proves nothing about the pages the failed one lost).
        assert!(store.get_session("a").await.unwrap().is_some());
        assert!(store.engine().handles().unwrap().log.sync().is_err());
        assert!(store.engine().recover(), "reopened: the disk has room");
        assert_eq!(store.health(), Ok(()));
        store.put_session(&session("c", "ann")).await.unwrap();
        assert!(store.get_session("c").await.unwrap().is_some());
        assert!(store.get_session("a").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_damaged_record_found_while_running_is_reported_by_health() {
        let dir = tempfile::tempdir().unwrap();
        let store = kv(dir.path());
        store.put_session(&session("a", "ann")).await.unwrap();
        assert_eq!(store.health(), Ok(()));
        store
            .engine()
            .handles()
            .unwrap()
            .tree(Tree::Sessions)
            .insert("b", &b"{not json"[..])
            .unwrap();
        assert!(store.get_session("b").await.is_err());
        let health = store.health().unwrap_err();
        assert!(
            health.contains("damaged") && health.contains("backup"),
            "{health}"
        );
        assert!(
            store.get_session("a").await.unwrap().is_some(),
            "the rest still reads"
        );
    }

    #[tokio::test]
    async fn a_snapshot_sled_never_finished_does_not_make_the_store_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = kv(dir.path());
            store.put_session(&session("a", "ann")).await.unwrap();
        }
        // What a start cut short by a full disk leaves behind.
        std::fs::write(
            dir.path().join("store/snap.FFFFFFFFFFFFFFFF.generating"),
            b"",
        )
        .unwrap();
        let store = kv(dir.path());
        assert!(store.get_session("a").await.unwrap().is_some());
        assert!(!dir
            .path()
            .join("store/snap.FFFFFFFFFFFFFFFF.generating")
            .exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_durable_writes_share_syncs_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(kv(dir.path()));
        let mut writers = Vec::new();
        for t in 0..4 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .put_session(&session(&format!("{t}-{i}"), "ann"))
                        .await
                        .unwrap();
                }
            }));
        }
        for writer in writers {
            writer.await.unwrap();
        }
        assert_eq!(store.sessions_of("ann").await.unwrap().len(), 100);
    }
}
