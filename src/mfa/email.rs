//! Email codes as a second factor (and to confirm the address before it is used).
//!
//! Same shape as the other factors: `enroll_start` (send a confirmation code) /
//! `enroll_finish` / `send_login_code` + `verify` / `disable`. A code is 6 digits,
//! valid `email_code_lifetime`, dead after `email_code_tries` wrong tries, stored only
//! as a keyed hash and compared in constant time; it is consumed atomically. Sending is
//! limited by a cooldown while a code is outstanding and an hourly cap per user (mail
//! costs and annoys).

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::error::Result;
use crate::notify::email::{mask, Delivery, Letter};
use crate::store::{user_key, Store, Timestamp, User};
use crate::texts::Texts;

/// Why a code is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The second login step.
    Login,
    /// Proving the address before the method turns on.
    Confirm,
    /// Proving a new address before it replaces the account's.
    NewAddress,
    /// Proving control of the account's address before a first second factor is added.
    Identity,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingCode {
    hash: String,
    purpose: Purpose,
    expires_at: Timestamp,
    tries_left: u32,
    /// For [`Purpose::NewAddress`]: the address being proved.
    #[serde(default)]
    address: Option<String>,
}

/// What is stored for a user's email factor.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct EmailRecord {
    pub enabled: bool,
    pending: Option<PendingCode>,
    /// When codes were sent within the last hour.
    sends: Vec<Timestamp>,
}

/// What happened to a request for a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Queued; the address shown masked.
    Sent { delivery: Delivery, to: String },
    /// Too soon after the last one; seconds to wait.
    Cooldown(u64),
    /// The hourly cap is reached.
    HourlyCap,
    /// The account has no email address.
    NoAddress,
}

pub use super::CodeResult;

pub(crate) fn record_key(username: &str) -> String {
    user_key(username, "email")
}

fn context(username: &str) -> String {
    format!("email-code:{username}")
}

/// Whether the user has email codes on.
pub async fn is_enabled(store: &dyn Store, username: &str) -> Result<bool> {
    enabled_in(store.get_factor(&record_key(username)).await?.as_deref())
}

/// Whether a stored record (`None`: none) has email codes on.
pub(crate) fn enabled_in(raw: Option<&[u8]>) -> Result<bool> {
    Ok(raw
        .map(serde_json::from_slice::<EmailRecord>)
        .transpose()?
        .is_some_and(|r| r.enabled))
}

/// Seconds until the user may ask for another code (0 = now).
pub async fn cooldown_left(state: &dyn Services, username: &str, now: Timestamp) -> Result<u64> {
    let record: EmailRecord =
        crate::store::get_factor(state.store().as_ref(), &record_key(username))
            .await?
            .unwrap_or_default();
    let cooldown = state.config().second_factor.email_resend_cooldown.as_secs();
    Ok(match (&record.pending, record.sends.last()) {
        (Some(_), Some(last)) => (last + cooldown).saturating_sub(now),
        _ => 0,
    })
}

/// Makes a code, stores its hash and mails it, within the sending limits.
pub async fn send_code(
    state: &dyn Services,
    user: &User,
    purpose: Purpose,
    t: &'static Texts,
    now: Timestamp,
) -> Result<SendOutcome> {
    let address = user.email.clone();
    send_code_to(state, user, &address, purpose, t, now).await
}

/// Like [`send_code`], to another address (a new one being proved).
pub async fn send_code_to(
    state: &dyn Services,
    user: &User,
    address: &str,
    purpose: Purpose,
    t: &'static Texts,
    now: Timestamp,
) -> Result<SendOutcome> {
    if address.is_empty() {
        return Ok(SendOutcome::NoAddress);
    }
    let sf = &state.config().second_factor;
    let key = record_key(&user.username);
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
    let pending = PendingCode {
        hash: state.code_hasher().hash(&code, &context(&user.username)),
        purpose,
        expires_at: now + sf.email_code_lifetime.as_secs(),
        tries_left: sf.email_code_tries,
        address: (purpose == Purpose::NewAddress).then(|| address.to_string()),
    };
    // The cooldown and the hourly cap are checked and the send counted in one atomic
    // update of the record: parallel requests cannot both pass the last place.
    let refused =
        crate::store::update_factor(state.store().as_ref(), &key, |record: &mut EmailRecord| {
            record.sends.retain(|t| now.saturating_sub(*t) < 3600);
            // The cooldown guards an outstanding code; once used it no longer applies.
            if let (Some(_), Some(last)) = (&record.pending, record.sends.last()) {
                let wait = (last + sf.email_resend_cooldown.as_secs()).saturating_sub(now);
                if wait > 0 {
                    return Some(SendOutcome::Cooldown(wait));
                }
            }
            if record.sends.len() as u32 >= sf.email_codes_per_hour {
                return Some(SendOutcome::HourlyCap);
            }
            record.sends.push(now);
            record.pending = Some(pending.clone());
            None
        })
        .await?;
    if let Some(outcome) = refused {
        if outcome == SendOutcome::HourlyCap {
            crate::audit!("email_code_cap_reached", user = user.username);
        }
        return Ok(outcome);
    }
    let minutes = sf.email_code_lifetime.as_secs().div_ceil(60);
    let letter = match purpose {
        Purpose::Login => Letter {
            t,
            subject: t.email_code_subject.into(),
            lines: vec![t.email_code_line(minutes), t.email_code_not_you.into()],
            code: Some(&code),
            link: None,
        },
        Purpose::Identity => Letter {
            t,
            subject: t.email_identity_subject.into(),
            lines: vec![t.email_identity_line(minutes), t.email_code_not_you.into()],
            code: Some(&code),
            link: None,
        },
        Purpose::Confirm | Purpose::NewAddress => Letter {
            t,
            subject: t.email_confirm_subject.into(),
            lines: vec![t.email_confirm_line(minutes)],
            code: Some(&code),
            link: None,
        },
    };
    let delivery = state
        .mailer()
        .send(address, letter, std::time::Duration::from_secs(3))
        .await;
    crate::audit!(
        "email_code_sent",
        user = user.username,
        purpose = format!("{purpose:?}"),
        delivery = format!("{delivery:?}")
    );
    Ok(SendOutcome::Sent {
        delivery,
        to: mask(address),
    })
}

/// The new address a pending [`Purpose::NewAddress`] code proves, if any.
pub async fn pending_new_address(store: &dyn Store, username: &str) -> Result<Option<String>> {
    Ok(
        crate::store::get_factor::<EmailRecord>(store, &record_key(username))
            .await?
            .and_then(|r| r.pending)
            .filter(|p| p.purpose == Purpose::NewAddress)
            .and_then(|p| p.address),
    )
}

/// Checks a code for `purpose`, consuming it on success and a try on failure.
pub async fn check(
    state: &dyn Services,
    username: &str,
    code: &str,
    purpose: Purpose,
    now: Timestamp,
) -> Result<CodeResult> {
    let code: String = code.chars().filter(|c| c.is_ascii_digit()).collect();
    let outcome = crate::store::modify_factor(
        state.store().as_ref(),
        &record_key(username),
        |record: &mut EmailRecord| {
            let pending = record
                .pending
                .clone()
                .filter(|p| p.purpose == purpose && p.expires_at > now && p.tries_left > 0)?;
            let right = code.len() == 6
                && state
                    .code_hasher()
                    .matches(&code, &context(username), &pending.hash);
            if right {
                record.pending = None;
                if purpose == Purpose::Confirm {
                    record.enabled = true;
                }
            } else {
                record.pending = Some(PendingCode {
                    tries_left: pending.tries_left - 1,
                    ..pending
                });
            }
            Some(if right {
                CodeResult::Accepted
            } else {
                CodeResult::Wrong
            })
        },
    )
    .await?;
    Ok(outcome.unwrap_or(CodeResult::Dead))
}

/// Turns email codes off (the address stays on the account).
pub async fn disable(store: &dyn Store, username: &str) -> Result<bool> {
    let turned_off =
        crate::store::modify_factor(store, &record_key(username), |record: &mut EmailRecord| {
            record.enabled.then(|| {
                record.enabled = false;
                record.pending = None;
            })
        })
        .await?;
    Ok(turned_off.is_some())
}
