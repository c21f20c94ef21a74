//! The few helpers every layer needs: the clock, random tokens, and files only their
//! owner can read. Nothing here knows about users, sessions or HTTP.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;

/// Seconds since the Unix epoch.
pub type Timestamp = u64;

/// The current time in seconds since the epoch (the only place the clock is read;
/// everything below takes `now` as an argument).
pub fn now() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `n` random bytes, base64url without padding.
pub fn random_token(n: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Runs a serving process's setup on the runtime that lives as long as the process
/// (one worker thread, `gatehouse-store`): what the setup opens keeps working after
/// it, such as the PostgreSQL pool's connections and the task listening for the other
/// replicas' events. A throwaway runtime would take them down with it when pingora's
/// own runtimes take over.
pub fn block_on_lasting<F: std::future::Future>(future: F) -> F::Output {
    static LASTING: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    LASTING
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("gatehouse-store")
                .enable_all()
                .build()
                .expect("a tokio runtime can be built")
        })
        .block_on(future)
}

/// Runs a future to completion on a runtime of its own (the CLI's commands).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime can be built")
        .block_on(future)
}
