//! The browser's own device cookie, and what the store keeps per user about devices:
//! the ones trusted at the second step ("don't ask again on this device for N days")
//! and the ones signed in from before (for new-device alerts).
//!
//! The cookie holds a random id signed with the session key; the store keeps only the
//! id's SHA-256, under the user's name. A cookie is therefore worth nothing for another
//! user, and a copy of the store names no cookie.
//!
//! A trusted device is valid while the user's `trust_generation` is the one it was made
//! under. Raising it (a password change or reset, two-step verification turned on or
//! off, `reset-2fa`, "forget all" in settings) revokes every trusted device in one
//! atomic write, and a trust granted concurrently is made under the old generation, so
//! it is void from the start: a revocation wins over anything in flight.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::session::{cookie_value, Sessions};
use crate::basics::{random_token, Timestamp};
use crate::error::Result;
use crate::store::{Store, User};

/// How long the device cookie lasts (browsers cap cookies at 400 days).
pub const DEVICE_COOKIE_DAYS: u64 = 400;
/// How long a device stays "seen" for a user without signing in again.
const SEEN_DAYS: u64 = 400;
const TRUSTED: &str = "trusted\0";
const SEEN: &str = "seen\0";

/// This browser's device id, from its signed cookie (`None` when it has none, or one
/// that is not ours).
pub fn device_id(sessions: &Sessions, cookie_header: Option<&str>) -> Option<String> {
    let value = cookie_value(cookie_header?, sessions.device_cookie_name())?;
    sessions.verify_device(value).map(str::to_string)
}

/// The browser's device id, or a new one; with the `Set-Cookie` to send when it is new.
pub fn device_id_or_new(
    sessions: &Sessions,
    cookie_header: Option<&str>,
) -> (String, Option<String>) {
    match device_id(sessions, cookie_header) {
        Some(id) => (id, None),
        None => new_device_id(sessions),
    }
}

/// A new device id, with its `Set-Cookie`. Trust is always granted to a new one: a
/// device id someone planted in the browser beforehand (the panel can set cookies on
/// its host in proxy mode) is then worth nothing.
pub fn new_device_id(sessions: &Sessions) -> (String, Option<String>) {
    let id = random_token(32);
    let cookie = sessions.device_cookie(&id);
    (id, Some(cookie))
}

fn digest(device_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(device_id.as_bytes()))
}

fn trusted_key(username: &str, device_id: &str) -> String {
    format!("{TRUSTED}{username}\0{}", digest(device_id))
}

fn seen_key(username: &str, device_id: &str) -> String {
    format!("{SEEN}{username}\0{}", digest(device_id))
}

/// A device the user chose to trust at the second step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrustedDevice {
    /// The user's `trust_generation` when it was trusted.
    pub generation: u64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub ip: String,
    pub user_agent: String,
    /// Which device, for revoking this one: the digest of its id (not stored).
    #[serde(skip)]
    pub id: String,
}

/// Trusts this device for `days` for the user, under the user's current generation.
pub async fn trust(
    store: &dyn Store,
    user: &User,
    device_id: &str,
    days: u64,
    ip: &str,
    user_agent: &str,
    now: Timestamp,
) -> Result<()> {
    let expires_at = now + days * 86_400;
    let record = TrustedDevice {
        generation: user.trust_generation,
        created_at: now,
        expires_at,
        ip: ip.to_string(),
        user_agent: user_agent.chars().take(256).collect(),
        id: String::new(),
    };
    store
        .put_token(
            &trusted_key(&user.username, device_id),
            &serde_json::to_vec(&record)?,
            Some(expires_at),
        )
        .await
}

/// Whether this device is trusted for the user now, judged against the user's record
/// as it is now (not a copy read before a password check: a revocation meanwhile wins).
pub async fn is_trusted(
    store: &dyn Store,
    username: &str,
    device_id: &str,
    now: Timestamp,
) -> Result<bool> {
    let Some(raw) = store.get_token(&trusted_key(username, device_id)).await? else {
        return Ok(false);
    };
    let Ok(device) = serde_json::from_slice::<TrustedDevice>(&raw) else {
        return Ok(false);
    };
    let generation = store.get_user(username).await?.map(|u| u.trust_generation);
    Ok(generation == Some(device.generation) && device.expires_at > now)
}

/// The user's trusted devices that are still valid, newest first.
pub async fn trusted_devices(
    store: &dyn Store,
    user: &User,
    now: Timestamp,
) -> Result<Vec<TrustedDevice>> {
    let mut devices: Vec<TrustedDevice> = store
        .tokens_with_prefix(&format!("{TRUSTED}{}\0", user.username))
        .await?
        .into_iter()
        .filter_map(|(key, raw)| {
            let mut d: TrustedDevice = serde_json::from_slice(&raw).ok()?;
            d.id = key.rsplit('\0').next()?.to_string();
            Some(d)
        })
        .filter(|d| d.generation == user.trust_generation && d.expires_at > now)
        .collect();
    devices.sort_by_key(|d| std::cmp::Reverse(d.created_at));
    Ok(devices)
}

impl TrustedDevice {
    /// Whether this is the browser with the device id `device_id`.
    pub fn is(&self, device_id: &str) -> bool {
        self.id == digest(device_id)
    }
}

/// Revokes one trusted device of the user, by its [`TrustedDevice::id`]; whether the
/// user had it.
pub async fn forget(store: &dyn Store, username: &str, id: &str) -> Result<bool> {
    if id.is_empty() || id.contains('\0') {
        return Ok(false);
    }
    store
        .delete_token(&format!("{TRUSTED}{username}\0{id}"))
        .await
}

/// Revokes every trusted device of the user: the generation first (atomic, and it
/// voids a trust being granted meanwhile), then the records. Returns how many were
/// valid; `None` when the user does not exist.
pub async fn forget_all(store: &dyn Store, username: &str) -> Result<Option<usize>> {
    let Some(user) = store
        .update_user(username, &mut |u| u.trust_generation += 1)
        .await?
    else {
        return Ok(None);
    };
    let mut valid = 0;
    for (key, raw) in store
        .tokens_with_prefix(&format!("{TRUSTED}{username}\0"))
        .await?
    {
        if serde_json::from_slice::<TrustedDevice>(&raw)
            .is_ok_and(|d| d.generation + 1 == user.trust_generation)
        {
            valid += 1;
        }
        store.delete_token(&key).await?;
    }
    Ok(Some(valid))
}

/// [`forget_all`] for a change that calls for it (`why`: "two_factor_off", …), with
/// an audit line when there was a device to forget.
pub async fn revoke_all(store: &dyn Store, username: &str, why: &str) -> Result<()> {
    if let Some(count) = forget_all(store, username).await?.filter(|n| *n > 0) {
        crate::audit!(
            "trusted_devices_revoked",
            user = username,
            count = count,
            reason = why
        );
    }
    Ok(())
}

/// How long an account counts as new: its first device within this is no news.
const NEW_ACCOUNT_DAYS: u64 = 14;

/// Notes that the user signed in from this device; returns whether it had been seen
/// before, and whether this is a new account's first device (no news). An older
/// account with no device on record (as every account right after the upgrade that
/// brought these records) is told of its first one: an intruder who signs in first
/// must not go unnoticed.
pub async fn note_seen(
    store: &dyn Store,
    user: &User,
    device_id: &str,
    now: Timestamp,
) -> Result<Seen> {
    let username = &user.username;
    let key = seen_key(username, device_id);
    let known = store.get_token(&key).await?.is_some();
    let first = !known
        && now.saturating_sub(user.created_at) < NEW_ACCOUNT_DAYS * 86_400
        && store
            .tokens_with_ends(&format!("{SEEN}{username}\0"))
            .await?
            .is_empty();
    store
        .put_token(&key, &now.to_be_bytes(), Some(now + SEEN_DAYS * 86_400))
        .await?;
    Ok(if known {
        Seen::Known
    } else if first {
        Seen::FirstEver
    } else {
        Seen::New
    })
}

/// What [`note_seen`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Signed in from this device before.
    Known,
    /// A device not seen before for this user.
    New,
    /// The user's first sign-in from any device.
    FirstEver,
}

/// Telegram callback data of "This was not me": `end:<token>`.
pub const NOT_ME_PREFIX: &str = "end";

fn not_me_key(token: &str) -> String {
    format!("not-me\0{token}")
}

#[derive(Serialize, Deserialize)]
struct NotMe {
    user: String,
    session: String,
    /// The digest of the device the alert was about.
    #[serde(default)]
    device: String,
}

/// A token that ends the session a new-device alert was about, for "This was not me"
/// in Telegram (valid `days`).
pub async fn not_me_token(
    store: &dyn Store,
    username: &str,
    session_id: &str,
    device_id: &str,
    days: u64,
    now: Timestamp,
) -> Result<String> {
    let token = random_token(16);
    let record = NotMe {
        user: username.to_string(),
        session: session_id.to_string(),
        device: digest(device_id),
    };
    store
        .put_token(
            &not_me_key(&token),
            &serde_json::to_vec(&record)?,
            Some(now + days * 86_400),
        )
        .await?;
    Ok(token)
}

/// "This was not me", tapped by an account linked to the token's user (the caller
/// checks that): the intruder may have upgraded or added sessions since the alert, and
/// trusted their device, so every session of the user ends and every trusted device is
/// forgotten, in one write; the device is forgotten as seen, so it alerts again.
/// Returns the user and how many sessions ended; `None` for a token unknown or too old.
pub async fn not_me(store: &dyn Store, token: &str) -> Result<Option<(String, usize)>> {
    let Some(raw) = store.take_token(&not_me_key(token)).await? else {
        return Ok(None);
    };
    let record: NotMe = serde_json::from_slice(&raw)?;
    let ended = crate::auth::session::end_sessions(store, &record.user, None, &mut |u| {
        u.trust_generation += 1
    })
    .await?
    .map_or(0, |(_, _, ended)| ended);
    if !record.device.is_empty() {
        store
            .delete_token(&format!("{SEEN}{}\0{}", record.user, record.device))
            .await?;
    }
    Ok(Some((record.user, ended)))
}

/// Whether a "This was not me" token is one of `username`'s alerts.
pub async fn not_me_is_for(store: &dyn Store, token: &str, username: &str) -> bool {
    match store.get_token(&not_me_key(token)).await {
        Ok(Some(raw)) => serde_json::from_slice::<NotMe>(&raw).is_ok_and(|r| r.user == username),
        _ => false,
    }
}

/// Everything kept about a user's devices, for an account being deleted (a later
/// account of the same name starts with none of it).
pub async fn forget_user(store: &dyn Store, username: &str) -> Result<()> {
    for prefix in [TRUSTED, SEEN] {
        for (key, _) in store
            .tokens_with_prefix(&format!("{prefix}{username}\0"))
            .await?
        {
            store.delete_token(&key).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryEngine, Users as _};

    fn ann() -> User {
        User::for_tests("ann")
    }

    #[tokio::test]
    async fn a_trust_granted_from_a_copy_read_before_a_revocation_is_void() {
        let store = MemoryEngine::store();
        let t0 = crate::basics::now();
        store.put_user(&ann()).await.unwrap();
        let before = store.get_user("ann").await.unwrap().unwrap();
        trust(&store, &before, "phone", 30, "", "", t0)
            .await
            .unwrap();
        assert!(is_trusted(&store, &before.username, "phone", t0 + 1)
            .await
            .unwrap());
        assert!(!is_trusted(&store, &before.username, "laptop", t0 + 1)
            .await
            .unwrap());
        assert!(
            !is_trusted(&store, &before.username, "phone", t0 + 30 * 86_400)
                .await
                .unwrap()
        );

        // A revocation that raised the generation but has not yet removed the record:
        // the record counts for nothing already.
        store
            .update_user("ann", &mut |u| u.trust_generation += 1)
            .await
            .unwrap();
        assert!(!is_trusted(&store, "ann", "phone", t0 + 1).await.unwrap());
        store
            .update_user("ann", &mut |u| u.trust_generation -= 1)
            .await
            .unwrap();
        assert_eq!(forget_all(&store, "ann").await.unwrap(), Some(1));
        // A second step that read the user before the revocation trusts its device
        // after it: under the old generation, so it counts for nothing.
        trust(&store, &before, "laptop", 30, "", "", t0 + 2)
            .await
            .unwrap();
        let now_ann = store.get_user("ann").await.unwrap().unwrap();
        assert!(!is_trusted(&store, &now_ann.username, "laptop", t0 + 3)
            .await
            .unwrap());
        assert!(trusted_devices(&store, &now_ann, t0 + 3)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn a_new_accounts_first_device_is_no_news_but_an_old_accounts_is() {
        let store = MemoryEngine::store();
        let t0 = crate::basics::now();
        let ann = User {
            created_at: t0,
            ..ann()
        };
        assert_eq!(
            note_seen(&store, &ann, "phone", t0).await.unwrap(),
            Seen::FirstEver
        );
        assert_eq!(
            note_seen(&store, &ann, "phone", t0 + 2).await.unwrap(),
            Seen::Known
        );
        assert_eq!(
            note_seen(&store, &ann, "laptop", t0 + 3).await.unwrap(),
            Seen::New
        );
        // An account from before these records: its first device on record is news.
        let bob = User {
            username: "bob".into(),
            created_at: t0 - 400 * 86_400,
            ..ann.clone()
        };
        assert_eq!(
            note_seen(&store, &bob, "laptop", t0).await.unwrap(),
            Seen::New
        );
    }
}
