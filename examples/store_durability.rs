//! What a durable write costs: sled's own `flush` (pwrite + sync_file_range) against
//! the same plus an `fdatasync` of the log (what gatehouse does), one writer and eight
//! at once, and gatehouse's store as the server uses it.
//!
//! `cargo run --release --example store_durability [DIR]` (DIR: a directory on the disk
//! to measure; a temporary one under the current directory by default).

use std::time::{Duration, Instant};

use gatehouse::store::{AuthLevel, KvStore, SessionRecord, Sessions, SledStore};

const WRITES: usize = 400;

fn record(i: usize, t: usize) -> Vec<u8> {
    format!("{{\"id\":\"{t}-{i}\",\"pad\":\"{}\"}}", "x".repeat(300)).into_bytes()
}

/// Median and 99th percentile of per-write times.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    format!(
        "median {:>7.3} ms, p99 {:>7.3} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    )
}

/// Runs `WRITES` writes spread over `writers` threads (`write(thread, i)`); the
/// per-write summary and the writes per second.
fn timed(writers: usize, write: impl Fn(usize, usize) + Sync) -> (String, f64) {
    let started = Instant::now();
    let times: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|t| {
                let write = &write;
                scope.spawn(move || {
                    (0..WRITES / writers)
                        .map(|i| {
                            let begun = Instant::now();
                            write(t, i);
                            begun.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let rate = WRITES as f64 / started.elapsed().as_secs_f64();
    (summary(times), rate)
}

fn raw_sled(dir: &std::path::Path, fdatasync: bool, writers: usize) -> (String, f64) {
    let path = dir.join(format!("raw-{fdatasync}-{writers}"));
    let db = sled::Config::new().path(&path).open().unwrap();
    let log = std::fs::File::open(path.join("db")).unwrap();
    timed(writers, |t, i| {
        db.insert(format!("{t}-{i}"), record(i, t)).unwrap();
        db.flush().unwrap();
        if fdatasync {
            log.sync_data().unwrap();
        }
    })
}

fn gatehouse_store(dir: &std::path::Path, writers: usize) -> (String, f64) {
    let store =
        KvStore::new(SledStore::open(&dir.join(format!("store-{writers}"))).unwrap()).unwrap();
    // The store's calls complete without yielding on sled: a runtime only drives them.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    timed(writers, |t, i| {
        runtime
            .block_on(store.put_session(&SessionRecord {
                id: format!("{t}-{i}"),
                username: "ann".into(),
                level: AuthLevel::OneFactor,
                created_at: 1,
                last_seen: 1,
                expires_at: 2,
                remember_me: false,
                ip: "127.0.0.1".into(),
                user_agent: "x".repeat(200),
                password_at: 1,
                identity_at: 0,
                generation: 0,
                method: String::new(),
            }))
            .unwrap();
    })
}

fn main() {
    let base = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    println!(
        "{WRITES} durable writes of ~350 bytes in {}",
        dir.path().display()
    );
    for writers in [1, 8] {
        for fdatasync in [false, true] {
            let (times, rate) = raw_sled(dir.path(), fdatasync, writers);
            let what = if fdatasync {
                "sled flush + fdatasync"
            } else {
                "sled flush alone      "
            };
            println!("{what}  {writers} writer(s): {times}, {rate:>7.0} writes/s");
        }
        let (times, rate) = gatehouse_store(dir.path(), writers);
        println!("gatehouse put_session   {writers} writer(s): {times}, {rate:>7.0} writes/s");
    }
}
