//! Second factors.
//!
//! Every factor is a module of its own (`totp`, `email`, `webauthn`, `telegram`), each
//! with `is_enabled` and `disable` and its own way to enrol and verify (a code, a
//! WebAuthn ceremony, a tap in Telegram). [`Factor`] is the closed set a user can turn on; [`Method`] is
//! the closed set of ways through the second login step (the factors plus backup codes).
//! Both are dispatched by exhaustive `match`, so adding a factor makes the compiler list
//! every place that must handle it.
//!
//! The rules shared by all factors live here: turning on the first factor ends every
//! other session of the user and creates backup codes; turning off the last one deletes
//! the backup codes.

pub mod backup;
pub mod email;
pub mod phone;
pub mod telegram;
pub mod totp;
pub mod webauthn;

use serde::{Deserialize, Serialize};

use crate::audit;
use crate::error::Result;
use crate::store::{Factors, Peek, SessionRecord, Store, Timestamp};

/// What the factor logic needs of the running gateway: the store, the configuration,
/// the keys for secrets and codes, the counters, and the services that carry codes
/// (telephony, Telegram, the WebAuthn relying party). The state implements it; the
/// factor modules never see more of it.
pub trait Services: Send + Sync {
    fn store(&self) -> &std::sync::Arc<dyn Store>;
    fn config(&self) -> &crate::config::Config;
    fn sealer(&self) -> &crate::crypto::Sealer;
    fn code_hasher(&self) -> &crate::crypto::CodeHasher;
    fn metrics(&self) -> &crate::metrics::Metrics;
    fn phone(&self) -> &Option<Box<dyn crate::notify::phone::PhoneProvider>>;
    fn telegram(&self) -> &Option<crate::notify::telegram::TelegramBot>;
    fn webauthn(&self) -> &Option<webauthn::RelyingParty>;
    fn mailer(&self) -> &crate::notify::email::Mailer;
    fn phone_budgets(&self) -> &phone::Budgets;
}

/// A second factor a user can turn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    /// An authenticator app.
    Totp,
    /// A code sent to the account's email address.
    Email,
    /// A passkey or security key.
    Webauthn,
    /// Confirmation in Telegram by number matching.
    Telegram,
}

impl Factor {
    /// Every factor, in the order pages list them.
    pub const ALL: &'static [Factor] = &[
        Factor::Webauthn,
        Factor::Telegram,
        Factor::Totp,
        Factor::Email,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::Email => "email",
            Factor::Webauthn => "webauthn",
            Factor::Telegram => "telegram",
        }
    }

    /// The key of the record that says whether the user has this factor on.
    pub fn record_key(self, username: &str) -> String {
        match self {
            Factor::Totp => totp::record_key(username),
            Factor::Email => email::record_key(username),
            Factor::Webauthn => webauthn::set_key(username),
            Factor::Telegram => telegram::set_key(username),
        }
    }

    /// Whether that record (`None`: absent) has the factor on.
    pub fn enabled_in(self, raw: Option<&[u8]>) -> Result<bool> {
        match self {
            Factor::Totp => totp::enabled_in(raw),
            Factor::Email => email::enabled_in(raw),
            Factor::Webauthn => webauthn::enabled_in(raw),
            Factor::Telegram => telegram::enabled_in(raw),
        }
    }

    /// Whether the user has this factor on.
    pub async fn is_enabled(self, factors: &dyn Factors, username: &str) -> Result<bool> {
        let raw = factors.get_factor(&self.record_key(username)).await?;
        self.enabled_in(raw.as_deref())
    }

    /// Turns this factor off for the user (keeping nothing that would turn it back on).
    pub async fn disable(self, store: &dyn Store, username: &str) -> Result<bool> {
        match self {
            Factor::Totp => totp::disable(store, username).await,
            Factor::Email => email::disable(store, username).await,
            Factor::Webauthn => webauthn::disable(store, username).await,
            Factor::Telegram => telegram::disable(store, username).await,
        }
    }

    /// The login method this factor provides.
    pub fn method(self) -> Method {
        match self {
            Factor::Totp => Method::Totp,
            Factor::Email => Method::Email,
            Factor::Webauthn => Method::Webauthn,
            Factor::Telegram => Method::Telegram,
        }
    }
}

/// A way through the second login step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Totp,
    Email,
    Webauthn,
    Telegram,
    BackupCode,
}

impl Method {
    pub fn id(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Email => "email",
            Method::Webauthn => "webauthn",
            Method::Telegram => "telegram",
            Method::BackupCode => "backup",
        }
    }

    pub fn parse(id: &str) -> Option<Method> {
        match id {
            "totp" => Some(Method::Totp),
            "email" => Some(Method::Email),
            "webauthn" => Some(Method::Webauthn),
            "telegram" => Some(Method::Telegram),
            "backup" => Some(Method::BackupCode),
            _ => None,
        }
    }
}

/// How a typed one-time code (emailed, texted, dictated) fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeResult {
    Accepted,
    Wrong,
    /// Expired, used up, or none was sent: a new one is needed.
    Dead,
}

/// Why a second-step code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Wrong,
    Replayed,
    /// The emailed code expired or was tried too often: a new one is needed.
    Dead,
    /// The device's clock is this many seconds ahead (negative: behind).
    ClockOff {
        seconds: i64,
    },
    /// A passkey or security key answer that was refused.
    Webauthn(webauthn::Refusal),
    /// The Telegram confirmation is not (or no longer) confirmed.
    Telegram(telegram::Status),
}

/// The factors the user has on.
pub async fn enabled_factors(store: &dyn Factors, username: &str) -> Result<Vec<Factor>> {
    let mut on = Vec::new();
    for factor in Factor::ALL {
        if factor.is_enabled(store, username).await? {
            on.push(*factor);
        }
    }
    Ok(on)
}

/// Whether the user must pass a second step at login.
pub async fn has_second_factor(factors: &dyn Factors, username: &str) -> Result<bool> {
    for factor in Factor::ALL {
        if factor.is_enabled(factors, username).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// [`has_second_factor`] when the records are at hand (`None`: await it instead). Asked
/// on every request of a one-factor session: a few point reads, most of them finding
/// nothing for a user without a second factor.
pub fn has_second_factor_now(factors: &dyn Factors, username: &str) -> Peek<bool> {
    for factor in Factor::ALL {
        let raw = match factors.peek_factor(&factor.record_key(username))? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        match factor.enabled_in(raw.as_deref()) {
            Ok(false) => {}
            on_or_failed => return Some(on_or_failed),
        }
    }
    Some(Ok(false))
}

/// The check sessions run on one-factor sessions.
pub const SECOND_FACTOR_CHECK: crate::auth::session::SecondFactorCheck =
    crate::auth::session::SecondFactorCheck {
        now: has_second_factor_now,
        later: |factors, username| Box::pin(has_second_factor(factors, username)),
    };

/// The method the second step opens on: the strongest the user has on (a passkey, then
/// Telegram, then the app, then email). Backup codes only when nothing else is left:
/// one emergency use must not make them the default for every later sign-in.
pub fn strongest(methods: &[Method]) -> Option<Method> {
    [
        Method::Webauthn,
        Method::Telegram,
        Method::Totp,
        Method::Email,
        Method::BackupCode,
    ]
    .into_iter()
    .find(|m| methods.contains(m))
}

/// The methods offered at the second step: each enabled factor's whose service is
/// configured (a factor whose bot or relying party was removed from the config is not
/// offered), then backup codes while any are left.
pub async fn methods_for(state: &dyn Services, username: &str) -> Result<Vec<Method>> {
    let store = state.store().as_ref();
    let enabled = enabled_factors(store, username).await?;
    let mut methods: Vec<Method> = enabled
        .iter()
        .copied()
        .filter(|f| match f {
            Factor::Telegram => state.telegram().is_some(),
            Factor::Webauthn => state.webauthn().is_some(),
            Factor::Totp | Factor::Email => true,
        })
        .map(Factor::method)
        .collect();
    if !enabled.is_empty() && backup::remaining(store, username).await? > 0 {
        methods.push(Method::BackupCode);
    }
    Ok(methods)
}

/// The session a second-step answer comes from, and the ceremony id its page carried.
#[derive(Debug, Clone, Copy)]
pub struct StepSession<'a> {
    pub id: &'a str,
    pub ceremony: &'a str,
}

/// Checks a code for a method, consuming it (a TOTP step, a backup code) on success.
/// For WebAuthn the "code" is the browser's answer (JSON) to the ceremony `ceremony`
/// started for this session.
pub async fn verify(
    state: &dyn Services,
    username: &str,
    session: StepSession<'_>,
    method: Method,
    code: &str,
    now: Timestamp,
) -> Result<Result<(), Rejection>> {
    match method {
        Method::Telegram => Ok(
            match telegram::consume(state.store().as_ref(), username, session.id, code, now).await?
            {
                telegram::Status::Confirmed => Ok(()),
                status => Err(Rejection::Telegram(status)),
            },
        ),
        Method::Webauthn => Ok(
            match webauthn::second_step_finish(
                state,
                username,
                session.id,
                session.ceremony,
                code,
                now,
            )
            .await?
            {
                Ok(_) => Ok(()),
                Err(refusal) => Err(Rejection::Webauthn(refusal)),
            },
        ),
        Method::Totp => Ok(match totp::verify(state, username, code, now).await? {
            totp::CodeCheck::Valid { .. } => Ok(()),
            totp::CodeCheck::Replayed => Err(Rejection::Replayed),
            totp::CodeCheck::ClockOff { steps } => Err(Rejection::ClockOff {
                seconds: steps * totp::STEP as i64,
            }),
            totp::CodeCheck::Invalid => Err(Rejection::Wrong),
        }),
        Method::Email => Ok(
            match email::check(state, username, code, email::Purpose::Login, now).await? {
                email::CodeResult::Accepted => Ok(()),
                email::CodeResult::Wrong => Err(Rejection::Wrong),
                email::CodeResult::Dead => Err(Rejection::Dead),
            },
        ),
        Method::BackupCode => {
            if backup::verify(state, username, code).await? {
                let remaining = backup::remaining(state.store().as_ref(), username).await?;
                audit!("backup_code_used", user = username, remaining = remaining);
                Ok(Ok(()))
            } else {
                Ok(Err(Rejection::Wrong))
            }
        }
    }
}

/// After a factor was turned on. When it is the user's first: ends every other session
/// (the current one is kept) and returns fresh backup codes to show once.
pub async fn factor_enabled(
    state: &dyn Services,
    username: &str,
    factor: Factor,
    keep_session: Option<&SessionRecord>,
    was_first: bool,
    now: Timestamp,
) -> Result<Option<Vec<String>>> {
    audit!("factor_enabled", user = username, factor = factor.id());
    if !was_first {
        return Ok(None);
    }
    crate::auth::devices::revoke_all(state.store().as_ref(), username, "two_factor_on").await?;
    // Other sessions were made with one factor. They are refused from the moment the
    // factor was saved (see `Sessions::with_second_factor_check`); this ends them for
    // good, in one write.
    let ended = crate::auth::session::end_sessions(
        state.store().as_ref(),
        username,
        keep_session,
        &mut |_| {},
    )
    .await?
    .map_or(0, |(_, _, ended)| ended);
    audit!(
        "two_factor_on",
        user = username,
        other_sessions_ended = ended
    );
    let codes = backup::generate(state, username, now).await?;
    audit!(
        "backup_codes_generated",
        user = username,
        count = codes.len()
    );
    Ok(Some(codes))
}

/// Sends the user a security notice: by mail (when they have an address and mail is
/// set up) and to their linked Telegram accounts (when the bot is set up).
pub async fn security_notice(
    store: &dyn Store,
    mailer: &crate::notify::email::Mailer,
    telegram: Option<&crate::notify::telegram::TelegramBot>,
    user: &crate::store::User,
    t: &'static crate::texts::Texts,
    line: &str,
) {
    if let Some(bot) = telegram {
        for account in telegram::accounts(store, &user.username)
            .await
            .unwrap_or_default()
        {
            bot.notice_later(account.chat_id, format!("{line}\n\n{}", t.notice_not_you))
                .await;
        }
    }
    mailer
        .send_later(
            &user.email,
            crate::notify::email::Letter {
                t,
                subject: t.notice_subject.into(),
                lines: vec![line.to_string(), t.notice_not_you.into()],
                code: None,
                link: None,
            },
        )
        .await;
}

/// Turns a factor off; when it was the last, the backup codes go too.
pub async fn disable_factor(
    state: &dyn Services,
    username: &str,
    factor: Factor,
    by: &str,
) -> Result<()> {
    let store = state.store().as_ref();
    factor.disable(store, username).await?;
    audit!(
        "factor_disabled",
        user = username,
        factor = factor.id(),
        by = by
    );
    if !has_second_factor(store, username).await? {
        backup::delete(store, username).await?;
        audit!("two_factor_off", user = username, by = by);
        crate::auth::devices::revoke_all(store, username, "two_factor_off").await?;
    }
    Ok(())
}

/// Switches every factor off and deletes the backup codes (support desk reset).
pub async fn reset(store: &dyn Store, username: &str, by: &str) -> Result<()> {
    for factor in Factor::ALL {
        factor.disable(store, username).await?;
    }
    backup::delete(store, username).await?;
    audit!("two_factor_reset", user = username, by = by);
    crate::auth::devices::revoke_all(store, username, "two_factor_reset").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{strongest, Method::*};

    #[test]
    fn the_second_step_opens_on_the_strongest_method_and_on_backup_codes_only_when_alone() {
        assert_eq!(strongest(&[BackupCode, Email, Totp]), Some(Totp));
        assert_eq!(strongest(&[Totp, Telegram, BackupCode]), Some(Telegram));
        assert_eq!(strongest(&[Email, Telegram, Webauthn]), Some(Webauthn));
        assert_eq!(strongest(&[BackupCode, Email]), Some(Email));
        assert_eq!(strongest(&[BackupCode]), Some(BackupCode));
        assert_eq!(strongest(&[]), None);
    }
}
