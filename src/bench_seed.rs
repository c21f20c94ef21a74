//! `gatehouse bench-seed` (hidden): fills a store with users and real signed two-factor
//! sessions for `bench/run.sh`, and writes the cookie values one per line. Runs on the
//! store directly, so the server must not be running.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use crate::basics::{now, random_token};
use crate::config::Config;
use crate::error::Result;
use crate::state::AppState;
use crate::store::{AuthLevel, SessionRecord, User};

/// Creates `users` users (`bench-0`, …) and `sessions` sessions spread over them.
pub async fn run(config: Config, users: usize, sessions: usize, out: &Path) -> Result<()> {
    let (_state, cookies) = seed_state(config, users, sessions).await?;
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    for cookie in &cookies {
        writeln!(file, "{cookie}")?;
    }
    file.flush()?;
    println!(
        "{users} users and {sessions} sessions written; cookies in {}",
        out.display()
    );
    Ok(())
}

/// The configuration of the benchmarks: a sled store in `dir`, every panel two-factor.
pub fn bench_config(dir: &Path) -> Config {
    let file = dir.join("gatehouse.toml");
    let text = format!(
        "[server]\ndata_dir = \"{}\"\nlog_level = \"warn\"\n\
         [portal]\nurl = \"http://auth.bench.test/\"\n\
         [session]\ndomain = \"bench.test\"\nsecure = false\n\
         [access_control]\ndefault_policy = \"two_factor\"\n",
        dir.join("data").display()
    );
    std::fs::write(&file, text).expect("the benchmark's configuration is written");
    crate::config::load(Some(&file)).expect("the benchmark's configuration is valid")
}

/// Opens the store of `config`, fills it as [`run`] does, and returns the state with
/// the signed cookie values.
pub async fn seed_state(
    config: Config,
    users: usize,
    sessions: usize,
) -> Result<(Arc<AppState>, Vec<String>)> {
    let state = AppState::open(config).await?;
    let hash = state
        .passwords
        .hash_now("bench password, not for real use")?;
    let t = now();
    for i in 0..users {
        state
            .store
            .put_user(&User {
                username: format!("bench-{i}"),
                display_name: format!("Bench User {i}"),
                email: format!("bench-{i}@example.test"),
                groups: vec!["bench".into()],
                password_hash: hash.clone(),
                disabled: false,
                created_at: t,
                last_method: None,
                session_generation: 0,
                trust_generation: 0,
            })
            .await?;
    }
    let mut cookies = Vec::with_capacity(sessions);
    let lifetime = state.config.session.expiration.as_secs();
    for chunk_start in (0..sessions).step_by(10_000) {
        let chunk: Vec<SessionRecord> = (chunk_start..(chunk_start + 10_000).min(sessions))
            .map(|i| SessionRecord {
                id: random_token(32),
                username: format!("bench-{}", i % users.max(1)),
                level: AuthLevel::TwoFactor,
                created_at: t,
                last_seen: t,
                expires_at: t + lifetime,
                remember_me: true,
                ip: "127.0.0.1".into(),
                user_agent: "bench".into(),
                password_at: t,
                identity_at: 0,
                generation: 0,
                method: "password+totp".into(),
            })
            .collect();
        state.store.put_sessions(&chunk).await?;
        cookies.extend(chunk.iter().map(|s| state.sessions.sign(&s.id)));
    }
    Ok((state, cookies))
}
