//! Authentication: password hashing, the session cookie and records, brute-force
//! regulation, and [`gate`], the per-request decision shared by proxy and forward-auth.

pub mod gate;
pub mod limiter;
pub mod password;
pub mod session;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::store::Timestamp;

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
