//! Telegram login confirmation with number matching: linked accounts, one-time link
//! tokens, and login attempts. The talking to Telegram is in [`crate::notify::telegram`].
//!
//! Records:
//! - `Factors / user \0 telegram`: on/off and the linked accounts (several per user);
//! - `Tokens / tg-account \0 <telegram user id>` → user (one Telegram account, one user);
//! - `Tokens / tg-link \0 <keyed hash of token>`: a link token (10 minutes, one use);
//! - `Tokens / tg-codes \0 <keyed hash of session id>`: backup codes made when linking
//!   turned 2FA on, sealed, waiting for that browser to show them once;
//! - `Tokens / tg-attempt \0 <id>`: a login attempt with its number, its buttons' opaque
//!   tokens, its status and the messages sent; `tg-session \0 <hash>` → the session's
//!   latest attempt.
//!
//! A decision is a compare-and-swap from `Pending`, so the first tap wins.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::error::Result;
use crate::store::{user_key, Store, Timestamp};

/// A Telegram account linked to a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    /// Telegram's user id (also the private chat id with the bot).
    pub telegram_id: i64,
    pub chat_id: i64,
    /// First and last name as Telegram gave them.
    pub name: String,
    /// `@username`, when the account has one.
    #[serde(default)]
    pub handle: Option<String>,
    pub linked_at: Timestamp,
}

impl Account {
    /// "Ann Smith (@ann)".
    pub fn label(&self) -> String {
        match &self.handle {
            Some(h) => format!("{} (@{h})", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LinkedSet {
    enabled: bool,
    accounts: Vec<Account>,
}

pub(crate) fn set_key(username: &str) -> String {
    user_key(username, "telegram")
}

fn account_key(telegram_id: i64) -> String {
    format!("tg-account\0{telegram_id}")
}

async fn load(store: &dyn Store, username: &str) -> Result<Option<LinkedSet>> {
    crate::store::get_factor(store, &set_key(username)).await
}

/// Applies `change` to the user's linked set atomically.
async fn update<T: Send>(
    store: &dyn Store,
    username: &str,
    change: impl FnMut(&mut LinkedSet) -> T + Send,
) -> Result<T> {
    crate::store::update_factor(store, &set_key(username), change).await
}

/// The user's linked accounts, oldest first.
pub async fn accounts(store: &dyn Store, username: &str) -> Result<Vec<Account>> {
    Ok(load(store, username)
        .await?
        .map(|s| s.accounts)
        .unwrap_or_default())
}

/// Whether Telegram confirmation is on (switched on, with an account to ask).
pub async fn is_enabled(store: &dyn Store, username: &str) -> Result<bool> {
    enabled_in(store.get_factor(&set_key(username)).await?.as_deref())
}

/// Whether a stored set (`None`: none) has confirmation on.
pub(crate) fn enabled_in(raw: Option<&[u8]>) -> Result<bool> {
    Ok(raw
        .map(serde_json::from_slice::<LinkedSet>)
        .transpose()?
        .is_some_and(|s| s.enabled && !s.accounts.is_empty()))
}

/// Switches confirmation off; the linked accounts stay. Returns whether it was on.
pub async fn disable(store: &dyn Store, username: &str) -> Result<bool> {
    if load(store, username).await?.is_none() {
        return Ok(false);
    }
    update(store, username, |set| {
        let was = set.enabled && !set.accounts.is_empty();
        set.enabled = false;
        was
    })
    .await
}

/// Switches confirmation on again; false when no account is linked.
pub async fn enable(store: &dyn Store, username: &str) -> Result<bool> {
    update(store, username, |set| {
        set.enabled = !set.accounts.is_empty();
        set.enabled
    })
    .await
}

/// Unlinks one account; returns it and how many are left.
pub async fn remove(
    store: &dyn Store,
    username: &str,
    telegram_id: i64,
) -> Result<Option<(Account, usize)>> {
    let removed = update(store, username, |set| {
        let at = set
            .accounts
            .iter()
            .position(|a| a.telegram_id == telegram_id)?;
        let account = set.accounts.remove(at);
        Some((account, set.accounts.len()))
    })
    .await?;
    if removed.is_some() {
        store.delete_token(&account_key(telegram_id)).await?;
    }
    Ok(removed)
}

/// The user a Telegram account is linked to.
pub async fn owner_of(store: &dyn Store, telegram_id: i64) -> Result<Option<String>> {
    Ok(store
        .get_token(&account_key(telegram_id))
        .await?
        .and_then(|raw| String::from_utf8(raw).ok()))
}

#[derive(Debug, Serialize, Deserialize)]
struct LinkToken {
    username: String,
    /// The session that asked (kept when linking turns 2FA on; sees the backup codes).
    session_id: String,
    expires_at: Timestamp,
}

fn link_key(state: &dyn Services, token: &str) -> String {
    format!(
        "tg-link\0{}",
        state.code_hasher().hash(token, "telegram link")
    )
}

fn codes_key(state: &dyn Services, session_id: &str) -> String {
    format!(
        "tg-codes\0{}",
        state.code_hasher().hash(session_id, "telegram codes")
    )
}

/// A new one-time link token for the user (the `start` parameter of the deep link).
pub async fn link_start(
    state: &dyn Services,
    username: &str,
    session_id: &str,
    now: Timestamp,
) -> Result<String> {
    let lifetime = state
        .config()
        .telegram
        .as_ref()
        .map_or(600, |t| t.link_lifetime.as_secs());
    let token = crate::basics::random_token(24);
    crate::store::put_token(
        state.store().as_ref(),
        &link_key(state, &token),
        &LinkToken {
            username: username.to_string(),
            session_id: session_id.to_string(),
            expires_at: now + lifetime,
        },
        Some(now + lifetime),
    )
    .await?;
    Ok(token)
}

/// What `/start <token>` came to.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Linked; `turned_on` when this first account switched Telegram on.
    Linked { username: String, turned_on: bool },
    /// This Telegram account is already linked to that same user.
    AlreadyYours,
    /// This Telegram account belongs to another user: unlink it there first.
    OtherUser,
    /// Unknown, used or expired token.
    BadToken,
}

/// Links the Telegram account that sent `/start <token>`.
pub async fn link_finish(
    state: &dyn Services,
    token: &str,
    account: Account,
    now: Timestamp,
) -> Result<LinkOutcome> {
    let store = state.store().as_ref();
    let key = link_key(state, token);
    let Some(raw) = store.get_token(&key).await? else {
        return Ok(LinkOutcome::BadToken);
    };
    let link: LinkToken = serde_json::from_slice(&raw)?;
    if link.expires_at <= now {
        store.delete_token(&key).await?;
        return Ok(LinkOutcome::BadToken);
    }
    match owner_of(store, account.telegram_id).await? {
        Some(owner) if owner == link.username => return Ok(LinkOutcome::AlreadyYours),
        Some(_) => return Ok(LinkOutcome::OtherUser),
        None => {}
    }
    if !store.swap_token(&key, Some(&raw), None, None).await? {
        return Ok(LinkOutcome::BadToken);
    }
    let username = link.username;
    if !store
        .swap_token(
            &account_key(account.telegram_id),
            None,
            Some(username.as_bytes()),
            None,
        )
        .await?
    {
        return Ok(LinkOutcome::OtherUser);
    }
    let was_first_factor = !crate::mfa::has_second_factor(store, &username).await?;
    let turned_on = update(store, &username, |set| {
        set.accounts
            .retain(|a| a.telegram_id != account.telegram_id);
        set.accounts.push(account.clone());
        let first = set.accounts.len() == 1;
        if first {
            set.enabled = true;
        }
        first
    })
    .await?;
    crate::audit!(
        "telegram_linked",
        user = username,
        telegram = account.label(),
        telegram_id = account.telegram_id
    );
    if turned_on {
        // The session that asked for the link proved the password and now the
        // Telegram account: it is raised in place (its cookie is in the browser, which
        // renews the id when it picks up the codes), so it keeps working once the
        // factor counts; every other session ends.
        let linking_session =
            store
                .get_session(&link.session_id)
                .await?
                .map(|session| crate::store::SessionRecord {
                    level: crate::store::AuthLevel::TwoFactor,
                    method: session.method_then("telegram"),
                    ..session
                });
        let codes = crate::mfa::factor_enabled(
            state,
            &username,
            crate::mfa::Factor::Telegram,
            linking_session.as_ref(),
            was_first_factor,
            now,
        )
        .await?;
        if let Some(codes) = codes {
            let sealed = state
                .sealer()
                .seal(codes.join("\n").as_bytes(), &link.session_id)?;
            crate::store::put_token(
                store,
                &codes_key(state, &link.session_id),
                &StashedCodes {
                    sealed,
                    expires_at: now + 3600,
                },
                Some(now + 3600),
            )
            .await?;
        }
    }
    Ok(LinkOutcome::Linked {
        username,
        turned_on,
    })
}

#[derive(Debug, Serialize, Deserialize)]
struct StashedCodes {
    sealed: String,
    expires_at: Timestamp,
}

/// The backup codes made when linking from this session turned 2FA on, once.
pub async fn take_codes(
    state: &dyn Services,
    session_id: &str,
    now: Timestamp,
) -> Result<Option<Vec<String>>> {
    let store = state.store().as_ref();
    let key = codes_key(state, session_id);
    let Some(raw) = store.get_token(&key).await? else {
        return Ok(None);
    };
    if !store.swap_token(&key, Some(&raw), None, None).await? {
        return Ok(None);
    }
    let stash: StashedCodes = serde_json::from_slice(&raw)?;
    if stash.expires_at <= now {
        return Ok(None);
    }
    let plain = state.sealer().open(&stash.sealed, session_id)?;
    Ok(Some(
        String::from_utf8_lossy(&plain)
            .lines()
            .map(str::to_string)
            .collect(),
    ))
}

/// What a button does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Number(u8),
    NotMe,
}

/// One inline button: its label and the opaque token in its callback data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Button {
    pub token: String,
    pub action: Action,
}

/// Why an attempt was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refused {
    WrongNumber,
    NotMe,
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Confirmed,
    Refused(Refused),
    Expired,
    /// Confirmed and then used by the browser to finish the login.
    Used,
}

impl Status {
    pub fn id(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed | Status::Used => "confirmed",
            Status::Refused(_) => "refused",
            Status::Expired => "expired",
        }
    }
}

/// A message sent for an attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sent {
    pub chat_id: i64,
    pub message_id: i32,
}

/// A login waiting for a tap in Telegram.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub id: String,
    pub username: String,
    pub session_id: String,
    /// The number the login page shows.
    pub number: u8,
    pub buttons: Vec<Button>,
    pub status: Status,
    pub messages: Vec<Sent>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub ip: String,
    pub user_agent: String,
    pub site: String,
    pub lang: String,
}

pub(crate) const ATTEMPT_PREFIX: &str = "tg-attempt\0";

fn attempt_key(id: &str) -> String {
    format!("{ATTEMPT_PREFIX}{id}")
}

fn session_key(state: &dyn Services, session_id: &str) -> String {
    format!(
        "tg-session\0{}",
        state.code_hasher().hash(session_id, "telegram session")
    )
}

/// Reads an attempt (with its raw bytes for a swap).
pub async fn attempt(store: &dyn Store, id: &str) -> Result<Option<(Vec<u8>, Attempt)>> {
    match store.get_token(&attempt_key(id)).await? {
        Some(raw) => {
            let a = serde_json::from_slice(&raw)?;
            Ok(Some((raw, a)))
        }
        None => Ok(None),
    }
}

/// The session's latest attempt, if any.
pub async fn attempt_of_session(state: &dyn Services, session_id: &str) -> Result<Option<Attempt>> {
    let store = state.store().as_ref();
    let Some(id) =
        crate::store::get_token::<String>(store, &session_key(state, session_id)).await?
    else {
        return Ok(None);
    };
    Ok(attempt(store, &id).await?.map(|(_, a)| a))
}

/// Where the attempt was made from, for the message.
pub struct Origin {
    pub ip: String,
    pub user_agent: String,
    pub site: String,
    pub lang: String,
}

/// Makes a new attempt for the session (the number, three decoys in random order and
/// "this wasn't me") and stores it; the caller sends the messages.
pub async fn new_attempt(
    state: &dyn Services,
    username: &str,
    session_id: &str,
    origin: Origin,
    now: Timestamp,
) -> Result<Attempt> {
    let timeout = state
        .config()
        .telegram
        .as_ref()
        .map_or(120, |t| t.confirm_timeout.as_secs());
    let mut rng = rand::rngs::OsRng;
    let number: u8 = rng.gen_range(10..=99);
    let mut numbers = vec![number];
    while numbers.len() < 4 {
        let n: u8 = rng.gen_range(10..=99);
        if !numbers.contains(&n) {
            numbers.push(n);
        }
    }
    numbers.shuffle(&mut rng);
    let mut buttons: Vec<Button> = numbers
        .into_iter()
        .map(|n| Button {
            token: crate::basics::random_token(6),
            action: Action::Number(n),
        })
        .collect();
    buttons.push(Button {
        token: crate::basics::random_token(6),
        action: Action::NotMe,
    });
    let attempt = Attempt {
        id: crate::basics::random_token(12),
        username: username.to_string(),
        session_id: session_id.to_string(),
        number,
        buttons,
        status: Status::Pending,
        messages: Vec::new(),
        created_at: now,
        expires_at: now + timeout,
        ip: origin.ip,
        user_agent: origin.user_agent,
        site: origin.site,
        lang: origin.lang,
    };
    let store = state.store().as_ref();
    // Kept a day after it is decided, for the sweep's audit of overdue attempts.
    let keep_until = Some(now + ATTEMPT_RECORD_LIFETIME);
    crate::store::put_token(store, &attempt_key(&attempt.id), &attempt, keep_until).await?;
    crate::store::put_token(
        store,
        &session_key(state, session_id),
        &attempt.id,
        keep_until,
    )
    .await?;
    Ok(attempt)
}

/// Changes an attempt atomically when `change` returns true; returns the new attempt.
async fn swap_attempt(
    store: &dyn Store,
    id: &str,
    mut change: impl FnMut(&mut Attempt) -> bool + Send,
) -> Result<Option<Attempt>> {
    let keep_until = Some(crate::basics::now() + ATTEMPT_RECORD_LIFETIME);
    crate::store::modify_token(store, &attempt_key(id), keep_until, |a: &mut Attempt| {
        change(a).then(|| a.clone())
    })
    .await
}

/// How long an attempt's record is kept after it was made or last changed.
const ATTEMPT_RECORD_LIFETIME: u64 = 86_400;

/// Records the messages sent for an attempt.
pub async fn record_sent(store: &dyn Store, id: &str, sent: &[Sent]) -> Result<()> {
    swap_attempt(store, id, |a| {
        a.messages.extend(sent.iter().cloned());
        true
    })
    .await?;
    Ok(())
}

/// What a tap came to.
#[derive(Debug)]
pub enum Decision {
    /// The first decision: the attempt as it now stands.
    Decided(Box<Attempt>),
    /// Already decided, expired, or unknown: nothing changes.
    Stale,
    /// The tap came from a Telegram account not linked to the attempt's user.
    Foreign,
}

/// A tap on a button (`callback data` = attempt id and button token) by a Telegram
/// account.
pub async fn decide(
    state: &dyn Services,
    attempt_id: &str,
    button: &str,
    telegram_id: i64,
    now: Timestamp,
) -> Result<Decision> {
    let store = state.store().as_ref();
    let Some((_, current)) = attempt(store, attempt_id).await? else {
        return Ok(Decision::Stale);
    };
    if owner_of(store, telegram_id).await?.as_deref() != Some(current.username.as_str()) {
        return Ok(Decision::Foreign);
    }
    let Some(action) = current
        .buttons
        .iter()
        .find(|b| crate::crypto::constant_time_eq(&b.token, button))
        .map(|b| b.action)
    else {
        return Ok(Decision::Stale);
    };
    let decided = swap_attempt(store, attempt_id, |a| {
        if a.status != Status::Pending || a.expires_at <= now {
            return false;
        }
        a.status = match action {
            Action::Number(n) if n == a.number => Status::Confirmed,
            Action::Number(_) => Status::Refused(Refused::WrongNumber),
            Action::NotMe => Status::Refused(Refused::NotMe),
        };
        true
    })
    .await?;
    Ok(decided.map_or(Decision::Stale, |a| Decision::Decided(Box::new(a))))
}

/// Expires a pending attempt; returns it when it was still pending.
pub async fn expire(store: &dyn Store, id: &str) -> Result<Option<Attempt>> {
    swap_attempt(store, id, |a| {
        if a.status == Status::Pending {
            a.status = Status::Expired;
            true
        } else {
            false
        }
    })
    .await
}

/// Pending attempts past their time, and decided ones older than a day (to delete).
pub async fn overdue(store: &dyn Store, now: Timestamp) -> Result<(Vec<String>, Vec<String>)> {
    let mut due = Vec::new();
    let mut old = Vec::new();
    for (key, raw) in store
        .tokens_with_prefix("")
        .await?
        .into_iter()
        .filter(|(k, _)| k.starts_with(ATTEMPT_PREFIX))
    {
        let Ok(a) = serde_json::from_slice::<Attempt>(&raw) else {
            old.push(key);
            continue;
        };
        if a.status == Status::Pending && a.expires_at <= now {
            due.push(a.id);
        } else if a.created_at + 86_400 <= now {
            old.push(key);
        }
    }
    Ok((due, old))
}

/// Removes expired link tokens and code stashes, and day-old attempts.
pub async fn sweep(state: &dyn Services, now: Timestamp) {
    let store = state.store().as_ref();
    let Ok(entries) = store.tokens_with_prefix("").await else {
        return;
    };
    for (key, raw) in entries {
        let expired = if key.starts_with("tg-link\0") {
            serde_json::from_slice::<LinkToken>(&raw).map_or(true, |l| l.expires_at <= now)
        } else if key.starts_with("tg-codes\0") {
            serde_json::from_slice::<StashedCodes>(&raw).map_or(true, |c| c.expires_at <= now)
        } else {
            false
        };
        if expired {
            let _ = store.delete_token(&key).await;
        }
    }
    if let Ok((_, old)) = overdue(store, now).await {
        for key in old {
            let _ = store.delete_token(&key).await;
        }
    }
}

/// Uses a confirmed attempt to finish the second step of `session_id`.
pub async fn consume(
    store: &dyn Store,
    username: &str,
    session_id: &str,
    attempt_id: &str,
    now: Timestamp,
) -> Result<Status> {
    let Some((_, a)) = attempt(store, attempt_id).await? else {
        return Ok(Status::Expired);
    };
    if a.username != username || a.session_id != session_id {
        return Ok(Status::Expired);
    }
    if a.status == Status::Pending && a.expires_at <= now {
        return Ok(Status::Expired);
    }
    if a.status != Status::Confirmed {
        return Ok(a.status);
    }
    let used = swap_attempt(store, attempt_id, |a| {
        if a.status == Status::Confirmed {
            a.status = Status::Used;
            true
        } else {
            false
        }
    })
    .await?;
    Ok(if used.is_some() {
        Status::Confirmed
    } else {
        Status::Expired
    })
}
