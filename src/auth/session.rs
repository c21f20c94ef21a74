//! Sessions: a random id in a signed cookie (`<id>.<HMAC-SHA256>`), pointing at a
//! server-side [`SessionRecord`]. Revoking the record ends the session on the very next
//! request. The signature lets us refuse forged cookies before touching the store.
//!
//! Keys: one secret (configured, or generated once into the data directory) from which
//! separate HMAC keys for cookies and CSRF tokens are derived.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::basics::{random_token, write_private};
use crate::config::{SameSite, SessionConfig};
use crate::error::{Error, Result};
use crate::store::{AuthLevel, Factors, Peek, RecordKey, SessionRecord, Store, Timestamp, User};

type HmacSha256 = Hmac<Sha256>;

/// `password_at` of a session whose password was never entered (a passwordless login).
pub const PASSWORD_NEVER_ENTERED: Timestamp = 1;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How often (seconds) `last_seen` is written back; the inactivity clock has this grain.
pub const TOUCH_EVERY: u64 = 30;

/// Loads the secret from config, or from `data_dir/session.key`, creating it once.
pub fn load_or_create_secret(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>> {
    if let Some(s) = configured {
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("session.key");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) | Err(_) if path.exists() => {
            return Err(crate::error::Error::config(
                "session.secret",
                path.display().to_string(),
                "the generated key file is unreadable or too short",
            ));
        }
        _ => {}
    }
    std::fs::create_dir_all(data_dir)?;
    let secret = random_token(48);
    write_private(&path, secret.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new session secret");
    Ok(secret.into_bytes())
}

fn keyed(key: &[u8; 32]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes any key length")
}

fn derive(secret: &[u8], purpose: &str) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The user behind a valid session.
#[derive(Debug, Clone)]
pub struct Identity {
    pub session: SessionRecord,
    pub user: User,
}

/// Creates, checks and ends sessions.
/// Ends every session of a user but `keep`, together with `change` to the user, in one
/// atomic write: the user's session generation is raised with the change, so no other
/// session is valid from that moment, crash or not. `keep` is then carried over to the
/// new generation (if it was valid until then), at least at the level it is given with
/// (the Telegram bot raises the session that linked a first factor), and the ended
/// records are removed. Returns the
/// user, `keep` as it is now valid (or `None`), and how many sessions were removed;
/// `None` when the user no longer exists.
pub async fn end_sessions(
    store: &dyn Store,
    username: &str,
    keep: Option<&SessionRecord>,
    change: &mut (dyn FnMut(&mut User) + Send),
) -> Result<Option<(User, Option<SessionRecord>, usize)>> {
    // The user's change, the new generation and the kept session's carry-over are one
    // transaction. Only a session that was valid right before this change is carried
    // over: one an earlier, concurrent end (a reset, `user disable`) already ended stays
    // ended, and so does one revoked meanwhile.
    let mut keys = vec![RecordKey::User(username.to_string())];
    if let Some(session) = keep {
        keys.push(RecordKey::Session(session.id.clone()));
    }
    let mut outcome: Option<(User, Option<SessionRecord>)> = None;
    store
        .transact(&keys, &mut |records| {
            outcome = None;
            let Some(raw) = &records[0] else {
                return Ok(false);
            };
            let mut user: User = serde_json::from_slice(raw)?;
            change(&mut user);
            let before = user.session_generation;
            user.session_generation += 1;
            records[0] = Some(serde_json::to_vec(&user)?);
            let mut kept = None;
            if let (Some(wanted), Some(Some(raw))) = (keep, records.get(1)) {
                let mut session: SessionRecord = serde_json::from_slice(raw)?;
                if session.generation == before && session.username == user.username {
                    session.generation = user.session_generation;
                    session.level = session.level.max(wanted.level);
                    records[1] = Some(serde_json::to_vec(&session)?);
                    kept = Some(session);
                }
            }
            outcome = Some((user, kept));
            Ok(true)
        })
        .await?;
    let Some((user, kept)) = outcome else {
        return Ok(None);
    };
    let ended = store
        .delete_sessions_of(username, kept.as_ref().map(|s| s.id.as_str()))
        .await?;
    Ok(Some((user, kept, ended)))
}

/// Whether a user has a second factor on (the `mfa` layer's answer): at once when the
/// records are at hand, else by awaiting the store.
#[derive(Clone, Copy)]
pub struct SecondFactorCheck {
    pub now: fn(&dyn Factors, &str) -> Peek<bool>,
    pub later: for<'a> fn(&'a dyn Factors, &'a str) -> SecondFactorFuture<'a>,
}

/// The answer of [`SecondFactorCheck::later`].
pub type SecondFactorFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool>> + Send + 'a>>;

#[derive(Clone)]
pub struct Sessions {
    /// HMAC states keyed once (the key's two blocks hashed at start, not per check).
    cookie_key: HmacSha256,
    csrf_key: HmacSha256,
    config: Arc<SessionConfig>,
    store: Arc<dyn Store>,
    /// Checks that a one-factor session's user still has no second factor.
    second_factor_check: Option<SecondFactorCheck>,
    /// Every cookie name gatehouse sets (session, CSRF, device, language), worked out
    /// once: the proxy strips them from each request.
    cookie_names: Arc<[String; 4]>,
}

impl Sessions {
    pub fn new(secret: &[u8], config: SessionConfig, store: Arc<dyn Store>) -> Self {
        Sessions {
            cookie_key: keyed(&derive(secret, "gatehouse session cookie v1")),
            csrf_key: keyed(&derive(secret, "gatehouse csrf v1")),
            store,
            second_factor_check: None,
            cookie_names: Arc::new(cookie_names(&config.cookie_name, config.secure)),
            config: Arc::new(config),
        }
    }

    /// A one-factor session grants something only while its user has no second factor:
    /// whatever a crash during a first factor's enrolment left behind, such a session
    /// is refused once the factor is saved.
    pub fn with_second_factor_check(mut self, check: SecondFactorCheck) -> Self {
        self.second_factor_check = Some(check);
        self
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    fn mac(&self, key: &HmacSha256, data: &[u8]) -> HmacSha256 {
        let mut mac = key.clone();
        mac.update(data);
        mac
    }

    /// The cookie value for a session id.
    pub fn sign(&self, id: &str) -> String {
        let tag = self
            .mac(&self.cookie_key, id.as_bytes())
            .finalize()
            .into_bytes();
        format!("{id}.{}", B64.encode(tag))
    }

    /// The session id inside a cookie value, if the signature is ours (constant time).
    pub fn verify<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (id, tag) = value.rsplit_once('.')?;
        let tag = B64.decode(tag).ok()?;
        self.mac(&self.cookie_key, id.as_bytes())
            .verify_slice(&tag)
            .ok()?;
        Some(id)
    }

    /// The CSRF form token bound to a browser's CSRF cookie value.
    pub fn csrf_token(&self, cookie_value: &str) -> String {
        B64.encode(
            self.mac(&self.csrf_key, cookie_value.as_bytes())
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether a submitted CSRF token matches the browser's CSRF cookie (constant time).
    pub fn csrf_valid(&self, cookie_value: &str, token: &str) -> bool {
        match B64.decode(token) {
            Ok(tag) => self
                .mac(&self.csrf_key, cookie_value.as_bytes())
                .verify_slice(&tag)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Starts a session and stores it durably.
    pub async fn create(
        &self,
        user: &User,
        level: AuthLevel,
        remember_me: bool,
        ip: &str,
        user_agent: &str,
        now: Timestamp,
    ) -> Result<SessionRecord> {
        let record = self.new_record(user, level, remember_me, ip, user_agent, now);
        self.store.put_session(&record).await?;
        Ok(record)
    }

    /// Starts a two-factor session from a passwordless passkey login: the password
    /// counts as never entered, so settings changes ask for it.
    pub async fn create_passwordless(
        &self,
        user: &User,
        ip: &str,
        user_agent: &str,
        now: Timestamp,
    ) -> Result<SessionRecord> {
        let record = SessionRecord {
            password_at: PASSWORD_NEVER_ENTERED,
            method: "webauthn".into(),
            ..self.new_record(user, AuthLevel::TwoFactor, false, ip, user_agent, now)
        };
        self.store.put_session(&record).await?;
        Ok(record)
    }

    /// Starts a two-factor session on a device the user trusts: the password was
    /// entered, and the trusted device stood in for the second step.
    pub async fn create_on_trusted_device(
        &self,
        user: &User,
        remember_me: bool,
        ip: &str,
        user_agent: &str,
        now: Timestamp,
    ) -> Result<SessionRecord> {
        let record = SessionRecord {
            method: format!("password+{}", crate::store::TRUSTED_DEVICE),
            ..self.new_record(user, AuthLevel::TwoFactor, remember_me, ip, user_agent, now)
        };
        self.store.put_session(&record).await?;
        Ok(record)
    }

    fn new_record(
        &self,
        user: &User,
        level: AuthLevel,
        remember_me: bool,
        ip: &str,
        user_agent: &str,
        now: Timestamp,
    ) -> SessionRecord {
        let remember = remember_me && self.config.remember_me.is_some();
        let lifetime = if remember {
            self.config.remember_me.unwrap_or(self.config.expiration)
        } else {
            self.config.expiration
        };
        SessionRecord {
            id: random_token(32),
            username: user.username.clone(),
            level,
            created_at: now,
            last_seen: now,
            expires_at: now + lifetime.as_secs(),
            remember_me: remember,
            ip: ip.to_string(),
            user_agent: user_agent.chars().take(256).collect(),
            method: "password".into(),
            password_at: now,
            identity_at: 0,
            generation: user.session_generation,
        }
    }

    /// Raises a session's level under a new id (the old id stops working), keeping its
    /// lifetime; returns the new record, whose cookie must replace the old one.
    ///
    /// A revocation wins over an upgrade in flight: in one transaction, the old session
    /// must still exist and its user be active with its sessions not ended meanwhile;
    /// [`Error::SessionEnded`] otherwise.
    pub async fn upgrade(
        &self,
        old: &SessionRecord,
        level: AuthLevel,
        method: &str,
        now: Timestamp,
    ) -> Result<SessionRecord> {
        self.upgrade_with(old, level, method, false, now).await
    }

    /// [`Sessions::upgrade`] for a second step passed now (the sign-in's, or asked again
    /// by a rule that asks every time): the factor proved replaces a trusted device's
    /// stand-in. Only here: turning on a factor proves none of the existing ones.
    pub async fn second_step_passed(
        &self,
        old: &SessionRecord,
        method: &str,
        now: Timestamp,
    ) -> Result<SessionRecord> {
        self.upgrade_with(old, AuthLevel::TwoFactor, method, true, now)
            .await
    }

    async fn upgrade_with(
        &self,
        old: &SessionRecord,
        level: AuthLevel,
        method: &str,
        proved_now: bool,
        now: Timestamp,
    ) -> Result<SessionRecord> {
        let record = SessionRecord {
            id: random_token(32),
            level,
            last_seen: now,
            // A session that already has two factors keeps how it signed in (turning
            // on another factor is not signing in with it).
            method: if proved_now && old.by_trusted_device() {
                // The second step asked again (a rule that asks every time): the factor
                // proved now replaces the device's stand-in.
                SessionRecord {
                    method: old
                        .method
                        .split('+')
                        .filter(|m| *m != crate::store::TRUSTED_DEVICE)
                        .collect::<Vec<_>>()
                        .join("+"),
                    ..old.clone()
                }
                .method_then(method)
            } else if old.level >= AuthLevel::TwoFactor {
                old.method.clone()
            } else {
                old.method_then(method)
            },
            ..old.clone()
        };
        // One transaction: the old session must still exist and the user be active, of
        // the same session generation; then the old id goes and the new one comes.
        let new = serde_json::to_vec(&record)?;
        let keys = [
            RecordKey::Session(old.id.clone()),
            RecordKey::Session(record.id.clone()),
            RecordKey::User(record.username.clone()),
        ];
        let upgraded = self
            .store
            .transact(&keys, &mut |records| {
                let (Some(stored), Some(user)) = (&records[0], &records[2]) else {
                    return Ok(false);
                };
                let stored: SessionRecord = serde_json::from_slice(stored)?;
                let user: User = serde_json::from_slice(user)?;
                if user.disabled
                    || user.session_generation != record.generation
                    || stored.generation != record.generation
                    || stored.username != record.username
                {
                    return Ok(false);
                }
                records[0] = None;
                records[1] = Some(new.clone());
                Ok(true)
            })
            .await?;
        if !upgraded {
            return Err(Error::SessionEnded);
        }
        Ok(record)
    }

    /// Records that this session just proved control of the account's email address.
    pub async fn identity_proved(&self, session: &SessionRecord, now: Timestamp) -> Result<()> {
        self.store
            .modify_session(&session.id, true, &mut |s| {
                s.identity_at = now;
                s.last_seen = now;
                true
            })
            .await
            .map(drop)
    }

    /// Records that the password was just entered again in this session.
    pub async fn password_confirmed(&self, session: &SessionRecord, now: Timestamp) -> Result<()> {
        // Only a session that still exists: a revocation during the password check wins.
        self.store
            .modify_session(&session.id, true, &mut |s| {
                s.password_at = now;
                s.last_seen = now;
                true
            })
            .await
            .map(drop)
    }

    /// Whether the password was entered within `window` in this session.
    pub fn password_is_fresh(
        session: &SessionRecord,
        window: std::time::Duration,
        now: Timestamp,
    ) -> bool {
        let at = if session.password_at == 0 {
            session.created_at
        } else {
            session.password_at
        };
        now.saturating_sub(at) < window.as_secs()
    }

    /// Whether a stored session is still within its lifetime and inactivity limit.
    fn alive(&self, session: &SessionRecord, now: Timestamp) -> bool {
        let idle_limit = if session.remember_me {
            u64::MAX
        } else {
            self.config.inactivity.as_secs()
        };
        now < session.expires_at && now.saturating_sub(session.last_seen) < idle_limit
    }

    /// The session's user, if the session still speaks for them: active, and of the
    /// user's current session generation.
    fn owner(session: &SessionRecord, user: Option<User>) -> Option<User> {
        user.filter(|u| !u.disabled && u.session_generation == session.generation)
    }

    /// The identity behind a cookie value when the store has the records at hand (the
    /// forward-auth fast path: no await, no allocation beyond the records); `None` when
    /// it must be awaited ([`Sessions::resolve`]). Touches nothing.
    pub fn resolve_now(&self, cookie_value: &str, now: Timestamp) -> Peek<Option<Identity>> {
        let Some(id) = self.verify(cookie_value) else {
            return Some(Ok(None));
        };
        let session = match self.store.peek_session(id)? {
            Ok(Some(session)) if self.alive(&session, now) => session,
            Ok(_) => return Some(Ok(None)),
            Err(e) => return Some(Err(e)),
        };
        let user = match self.store.peek_user(&session.username)? {
            Ok(user) => match Self::owner(&session, user) {
                Some(user) => user,
                None => return Some(Ok(None)),
            },
            Err(e) => return Some(Err(e)),
        };
        if session.level == AuthLevel::OneFactor {
            if let Some(check) = self.second_factor_check {
                match (check.now)(self.store.as_ref(), &user.username)? {
                    Ok(false) => {}
                    Ok(true) => return Some(Ok(None)),
                    Err(e) => return Some(Err(e)),
                }
            }
        }
        Some(Ok(Some(Identity { session, user })))
    }

    /// The identity behind a cookie value, if the session is valid now; `last_seen` is
    /// refreshed at most every [`TOUCH_EVERY`] s. (Expired sessions are removed by the
    /// sweeper.)
    pub async fn resolve(&self, cookie_value: &str, now: Timestamp) -> Result<Option<Identity>> {
        let mut found = match self.resolve_now(cookie_value, now) {
            Some(found) => found?,
            None => self.resolve_later(cookie_value, now).await?,
        };
        if let Some(identity) = &mut found {
            if self.touch_if_due(&identity.session, now).await {
                identity.session.last_seen = now;
            }
        }
        Ok(found)
    }

    /// [`Sessions::resolve_now`] for a store that must be awaited.
    async fn resolve_later(&self, cookie_value: &str, now: Timestamp) -> Result<Option<Identity>> {
        let Some(id) = self.verify(cookie_value) else {
            return Ok(None);
        };
        let session = match self.store.get_session(id).await? {
            Some(session) if self.alive(&session, now) => session,
            _ => return Ok(None),
        };
        let user = self.store.get_user(&session.username).await?;
        let Some(user) = Self::owner(&session, user) else {
            return Ok(None);
        };
        if session.level == AuthLevel::OneFactor {
            if let Some(check) = self.second_factor_check {
                if (check.later)(self.store.as_ref(), &user.username).await? {
                    return Ok(None);
                }
            }
        }
        Ok(Some(Identity { session, user }))
    }

    /// Writes `last_seen` back when it is [`TOUCH_EVERY`] s old. Advisory: a store that
    /// cannot write (a full disk) must not turn away sessions it can still read. Only
    /// `last_seen` changes, on the record as stored.
    /// Returns whether it was due.
    pub async fn touch_if_due(&self, session: &SessionRecord, now: Timestamp) -> bool {
        if now.saturating_sub(session.last_seen) < TOUCH_EVERY {
            return false;
        }
        let touched = self
            .store
            .modify_session(&session.id, false, &mut |s| {
                s.last_seen = s.last_seen.max(now);
                true
            })
            .await;
        if let Err(e) = touched {
            tracing::debug!(error = %e, "last_seen not updated");
        }
        true
    }

    /// `Set-Cookie` for a session (persistent only when remembered).
    pub fn set_cookie(&self, record: &SessionRecord) -> String {
        let max_age = record
            .remember_me
            .then(|| record.expires_at.saturating_sub(record.created_at));
        self.cookie(
            &self.config.cookie_name,
            &self.sign(&record.id),
            max_age,
            self.config.same_site,
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_cookie(&self) -> String {
        self.cookie(&self.config.cookie_name, "", Some(0), self.config.same_site)
    }

    /// Name of the CSRF cookie (host-only, SameSite=Strict). With secure cookies it
    /// carries the `__Host-` prefix, so a sibling subdomain cannot plant one.
    pub fn csrf_cookie_name(&self) -> &str {
        &self.cookie_names[1]
    }

    /// `Set-Cookie` for a new CSRF cookie value.
    pub fn csrf_cookie(&self, value: &str) -> String {
        let mut c = cookie::Cookie::build((self.csrf_cookie_name(), value.to_string()))
            .path("/")
            .http_only(true)
            .secure(self.config.secure)
            .same_site(cookie::SameSite::Strict)
            .build();
        c.set_max_age(None);
        c.to_string()
    }

    /// Name of this browser's device cookie (see [`crate::auth::devices`]): host-only,
    /// with the `__Host-` prefix under secure cookies, like the CSRF cookie.
    pub fn device_cookie_name(&self) -> &str {
        &self.cookie_names[2]
    }

    /// The device id in a device cookie's value, if the signature is ours and made
    /// for a device.
    pub fn verify_device<'a>(&self, value: &'a str) -> Option<&'a str> {
        self.verify(value)?.strip_prefix(DEVICE_CONTEXT)
    }

    /// Every cookie gatehouse sets: never passed to a panel, and never set by one.
    pub fn our_cookie_names(&self) -> &[String; 4] {
        &self.cookie_names
    }

    /// Name of the cookie that keeps the language picked on the portal.
    pub fn language_cookie_name(&self) -> &str {
        &self.cookie_names[3]
    }

    /// `Set-Cookie` for the language picked on the portal (a year; not secret).
    pub fn language_cookie(&self, lang: &str) -> String {
        cookie::Cookie::build((self.language_cookie_name(), lang.to_string()))
            .path("/")
            .http_only(true)
            .secure(self.config.secure)
            .same_site(cookie::SameSite::Lax)
            .max_age(cookie::time::Duration::days(365))
            .build()
            .to_string()
    }

    /// `Set-Cookie` for a device id (signed in its own context: no session cookie
    /// value passes for a device's), lasting as long as browsers allow.
    pub fn device_cookie(&self, device_id: &str) -> String {
        let signed = self.sign(&format!("{DEVICE_CONTEXT}{device_id}"));
        cookie::Cookie::build((self.device_cookie_name(), signed))
            .path("/")
            .http_only(true)
            .secure(self.config.secure)
            .same_site(cookie::SameSite::Lax)
            .max_age(cookie::time::Duration::days(
                crate::auth::devices::DEVICE_COOKIE_DAYS as i64,
            ))
            .build()
            .to_string()
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>, same_site: SameSite) -> String {
        let mut builder = cookie::Cookie::build((name.to_string(), value.to_string()))
            .path("/")
            .http_only(true)
            .secure(self.config.secure)
            .same_site(match same_site {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            });
        if let Some(domain) = &self.config.domain {
            builder = builder.domain(domain.clone());
        }
        if let Some(secs) = max_age {
            builder = builder.max_age(cookie::time::Duration::seconds(
                secs.min(i64::MAX as u64) as i64
            ));
        }
        builder.build().to_string()
    }
}

/// The names of gatehouse's cookies for a configuration: session, CSRF, device, language.
/// The CSRF and device cookies are host-only, with the `__Host-` prefix under secure
/// cookies.
fn cookie_names(name: &str, secure: bool) -> [String; 4] {
    let host_only = if secure { "__Host-" } else { "" };
    [
        name.to_string(),
        format!("{host_only}{name}_csrf"),
        format!("{host_only}{name}_device"),
        format!("{name}_lang"),
    ]
}

/// What a device id is signed with, before it (see [`Sessions::device_cookie`]).
const DEVICE_CONTEXT: &str = "device:";

/// The value of cookie `name` in a `Cookie` request header, if present.
/// The value of the cookie `name`, when the header holds exactly one of that name: two
/// (cookie tossing from a sibling subdomain, with another path) are ambiguous, and
/// neither is believed. (A front proxy that strips the first one would otherwise pass
/// the other to the panel.)
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let mut found = header.split(';').filter_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then_some(v.trim().trim_matches('"'))
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Factors, KvStore, MemoryEngine, Sessions as _, Users as _};
    use std::time::Duration;

    /// Sessions on the in-memory store (the same store code as on disk).
    fn sessions(_dir: &Path) -> (Sessions, Arc<KvStore<MemoryEngine>>) {
        let store = Arc::new(MemoryEngine::store());
        let config = SessionConfig {
            cookie_name: "gh".into(),
            domain: Some("example.com".into()),
            secure: true,
            same_site: SameSite::Lax,
            inactivity: Duration::from_secs(600),
            expiration: Duration::from_secs(3600),
            remember_me: Some(Duration::from_secs(86400)),
            secret: None,
        };
        (
            Sessions::new(b"0123456789abcdef0123456789abcdef", config, store.clone()),
            store,
        )
    }

    fn user() -> User {
        User {
            display_name: "Ann".into(),
            ..User::for_tests("ann")
        }
    }

    #[tokio::test]
    async fn only_a_second_step_passed_now_replaces_a_trusted_devices_stand_in() {
        let dir = tempfile::tempdir().unwrap();
        let (s, store) = sessions(dir.path());
        store.put_user(&user()).await.unwrap();
        let trusted = s
            .create_on_trusted_device(&user(), false, "ip", "ua", 10)
            .await
            .unwrap();
        assert!(trusted.by_trusted_device() && trusted.second_step_open());
        // Turning on a factor proves none: the stand-in stays, and rules that ask every
        // time still ask.
        let enrolled = s
            .upgrade(&trusted, AuthLevel::TwoFactor, "webauthn", 11)
            .await
            .unwrap();
        assert!(enrolled.by_trusted_device(), "{}", enrolled.method);
        let proved = s.second_step_passed(&enrolled, "totp", 12).await.unwrap();
        assert_eq!(proved.method, "password+totp");
        assert!(!proved.by_trusted_device() && !proved.second_step_open());
    }

    #[test]
    fn a_session_cookie_value_is_no_device_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = sessions(dir.path());
        let session_cookie = s.sign("some-session-id");
        assert_eq!(s.verify_device(&session_cookie), None);
        let device = s.device_cookie("some-device-id");
        let value = device.split(';').next().unwrap().split_once('=').unwrap().1;
        assert_eq!(s.verify_device(value), Some("some-device-id"));
    }

    #[tokio::test]
    async fn ending_sessions_refuses_every_older_one_at_once_and_carries_the_kept_one_over() {
        let dir = tempfile::tempdir().unwrap();
        let (s, store) = sessions(dir.path());
        store.put_user(&user()).await.unwrap();
        let kept = s
            .create(&user(), AuthLevel::OneFactor, false, "ip", "ua", 10)
            .await
            .unwrap();
        let other = s
            .create(&user(), AuthLevel::OneFactor, false, "ip", "ua", 10)
            .await
            .unwrap();
        // A second step in flight, from before the change.
        let pending = s
            .create(
                &user(),
                AuthLevel::SecondFactorPending,
                false,
                "ip",
                "ua",
                10,
            )
            .await
            .unwrap();
        // As a crash right after the user's write would leave it: the records of the
        // other sessions are still there.
        store
            .update_user("ann", &mut |u| u.session_generation += 1)
            .await
            .unwrap();
        assert!(s.resolve(&s.sign(&other.id), 11).await.unwrap().is_none());
        assert!(s.resolve(&s.sign(&kept.id), 11).await.unwrap().is_none());
        assert!(matches!(
            s.upgrade(&pending, AuthLevel::TwoFactor, "totp", 11).await,
            Err(Error::SessionEnded)
        ));

        let current = store.get_user("ann").await.unwrap().unwrap();
        let kept = store
            .modify_session(&kept.id, true, &mut |s| {
                s.generation = current.session_generation;
                true
            })
            .await
            .unwrap()
            .unwrap();
        let (_, carried, _) = end_sessions(store.as_ref(), "ann", Some(&kept), &mut |_| {})
            .await
            .unwrap()
            .unwrap();
        let carried = carried.unwrap();
        assert!(s.resolve(&s.sign(&carried.id), 11).await.unwrap().is_some());
        assert_eq!(store.sessions_of("ann").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_session_ended_by_an_earlier_change_is_not_carried_over_by_a_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let (s, store) = sessions(dir.path());
        store.put_user(&user()).await.unwrap();
        let mine = s
            .create(&user(), AuthLevel::OneFactor, false, "ip", "ua", 10)
            .await
            .unwrap();
        // A reset ended every session, and stopped (a crash, a full disk) before the
        // records were removed...
        store
            .update_user("ann", &mut |u| u.session_generation += 1)
            .await
            .unwrap();
        assert!(store.get_session(&mine.id).await.unwrap().is_some());
        // ...while "sign out other sessions" from `mine`, read before, was on its way.
        let (_, kept, _) = end_sessions(store.as_ref(), "ann", Some(&mine), &mut |_| {})
            .await
            .unwrap()
            .unwrap();
        assert!(kept.is_none());
        assert!(s.resolve(&s.sign(&mine.id), 11).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_one_factor_session_grants_nothing_once_its_user_has_a_second_factor() {
        let dir = tempfile::tempdir().unwrap();
        let (s, store) = sessions(dir.path());
        fn totp_on_now(factors: &dyn Factors, user: &str) -> Peek<bool> {
            Some(
                factors
                    .peek_factor(&format!("{user}\0totp"))?
                    .map(|r| r.is_some()),
            )
        }
        let s = s.with_second_factor_check(SecondFactorCheck {
            now: totp_on_now,
            later: |factors, user| {
                Box::pin(async move {
                    Ok(factors
                        .get_factor(&format!("{user}\0totp"))
                        .await?
                        .is_some())
                })
            },
        });
        store.put_user(&user()).await.unwrap();
        let one = s
            .create(&user(), AuthLevel::OneFactor, false, "ip", "ua", 10)
            .await
            .unwrap();
        let two = s
            .create(&user(), AuthLevel::TwoFactor, false, "ip", "ua", 10)
            .await
            .unwrap();
        assert!(s.resolve(&s.sign(&one.id), 11).await.unwrap().is_some());
        store.put_factor("ann\0totp", b"{}").await.unwrap();
        assert!(s.resolve(&s.sign(&one.id), 11).await.unwrap().is_none());
        assert!(s.resolve(&s.sign(&two.id), 11).await.unwrap().is_some());
    }

    #[test]
    fn signed_cookie_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = sessions(dir.path());
        assert_eq!(s.verify(&s.sign("abc")), Some("abc"));
    }

    #[test]
    fn tampered_cookie_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = sessions(dir.path());
        let good = s.sign("abc");
        let (_, tag) = good.rsplit_once('.').unwrap();
        assert_eq!(s.verify(&format!("abd.{tag}")), None, "other id, same tag");
        assert_eq!(s.verify("abc"), None, "no tag");
        assert_eq!(s.verify("abc.AAAA"), None, "wrong tag");
        let mut flipped = good.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            s.verify(std::str::from_utf8(&flipped).unwrap()),
            None,
            "flipped bit"
        );
    }

    #[test]
    fn cookie_signed_with_another_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (s, store) = sessions(dir.path());
        let other = Sessions::new(
            b"another secret that is long enough!!",
            s.config().clone(),
            store,
        );
        assert_eq!(s.verify(&other.sign("abc")), None);
    }

    #[tokio::test]
    async fn session_expires_after_inactivity_and_absolute_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let (s, store) = sessions(dir.path());
        store.put_user(&user()).await.unwrap();
        let rec = s
            .create(
                &user(),
                AuthLevel::OneFactor,
                false,
                "127.0.0.1",
                "ua",
                1000,
            )
            .await
            .unwrap();
        let cookie = s.sign(&rec.id);
        assert!(s.resolve(&cookie, 1500).await.unwrap().is_some());
        assert!(
            s.resolve(&cookie, 2099).await.unwrap().is_some(),
            "touched at 1500, idle 599 s"
        );
        assert!(
            s.resolve(&cookie, 2699).await.unwrap().is_none(),
            "idle 600 s"
        );
        let rec = s
            .create(
                &user(),
                AuthLevel::OneFactor,
                false,
                "127.0.0.1",
                "ua",
                1000,
            )
            .await
            .unwrap();
        let cookie = s.sign(&rec.id);
        for t in (1000..4600).step_by(300) {
            assert!(s.resolve(&cookie, t).await.unwrap().is_some());
        }
        assert!(
            s.resolve(&cookie, 4600).await.unwrap().is_none(),
            "absolute expiry"
        );
    }

    #[tokio::test]
    async fn revoked_session_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (s, store) = sessions(dir.path());
        store.put_user(&user()).await.unwrap();
        let rec = s
            .create(
                &user(),
                AuthLevel::OneFactor,
                false,
                "127.0.0.1",
                "ua",
                1000,
            )
            .await
            .unwrap();
        store.delete_session(&rec.id).await.unwrap();
        assert!(s.resolve(&s.sign(&rec.id), 1001).await.unwrap().is_none());
    }

    #[test]
    fn csrf_token_is_bound_to_its_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = sessions(dir.path());
        let token = s.csrf_token("cookie-a");
        assert!(s.csrf_valid("cookie-a", &token));
        assert!(!s.csrf_valid("cookie-b", &token));
        assert!(!s.csrf_valid("cookie-a", ""));
    }

    #[tokio::test]
    async fn session_cookie_has_safe_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let (s, store) = sessions(dir.path());
        store.put_user(&user()).await.unwrap();
        let rec = s
            .create(
                &user(),
                AuthLevel::OneFactor,
                false,
                "127.0.0.1",
                "ua",
                1000,
            )
            .await
            .unwrap();
        let c = s.set_cookie(&rec);
        for part in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Domain=example.com",
            "Path=/",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        assert!(
            !c.contains("Max-Age"),
            "not remembered: a browser-session cookie"
        );
    }

    #[test]
    fn cookie_value_finds_the_named_cookie() {
        assert_eq!(cookie_value("a=1; gh=xyz; b=2", "gh"), Some("xyz"));
        assert_eq!(cookie_value("agh=1", "gh"), None);
        assert_eq!(
            cookie_value("gh=a; x=1; gh=b", "gh"),
            None,
            "two are ambiguous"
        );
        assert_eq!(cookie_value("x=1;\tgh=t", "gh"), Some("t"));
    }
}
