//! Authenticator apps (TOTP, RFC 6238: SHA-1, 6 digits, 30 s; what Google Authenticator,
//! Aegis, andOTP and FreeOTP use).
//!
//! Same shape as every factor: `enroll_start` / `enroll_finish` / `verify`, plus
//! `disable`. The seed is sealed at rest ([`crate::crypto::Sealer`]). The last accepted
//! time step is stored and swapped atomically, so a step is never accepted twice. A code
//! that misses the allowed window but matches within ±10 minutes is reported as a clock
//! problem, never accepted; when it matched a future step, that step is burned (never
//! accepted later), so the hint does not widen what one guess can win: each guess can
//! only ever log in within the ±`totp_skew` window.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Secret};

use super::Services;
use crate::error::{Error, Result};
use crate::store::{user_key, Store, Timestamp};

/// Seconds per TOTP step.
pub const STEP: u64 = 30;
/// How far (in steps) a code is searched to diagnose a wrong clock: ±10 minutes.
pub const DRIFT_SEARCH_STEPS: u64 = 20;

/// What is stored for a user's authenticator app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TotpRecord {
    /// The sealed raw seed.
    pub secret: String,
    /// False while enrolment waits for the first correct code.
    pub enabled: bool,
    /// Last accepted time step (0 = none).
    pub last_step: u64,
    pub created_at: Timestamp,
    /// Future steps whose codes a "your clock is off" hint confirmed: never accepted
    /// later, so a hint never turns a guess into a code that works minutes from now.
    #[serde(default)]
    pub burned_steps: Vec<u64>,
}

/// The result of checking a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Correct, at this step.
    Valid { step: u64 },
    /// Correct, but this step was already used.
    Replayed,
    /// Matches a step this far from now (positive: the device is ahead).
    ClockOff { steps: i64 },
    /// Wrong.
    Invalid,
}

/// What an enrolment page shows.
pub struct Enrollment {
    pub secret_base32: String,
    pub uri: String,
}

pub(crate) fn record_key(username: &str) -> String {
    user_key(username, "totp")
}

fn context(username: &str) -> String {
    format!("totp:{username}")
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<totp_rs::Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(STEP)
        .with_skew(0)
        .with_secret(Secret::from(secret.to_vec()))
        .with_issuer(Some(issuer.replace(':', "")))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(|e| Error::Internal(format!("totp: {e:?}")))
}

/// The 6-digit code of `secret` at time step `step`.
pub fn code_at(secret: &[u8], step: u64) -> Result<String> {
    Ok(totp(secret, "x", "x")?.generate(step * STEP).to_string())
}

/// Checks `code` against `secret` at `now`: ±`skew` steps accepted, steps up to
/// `last_step` refused as replays, ±10 minutes diagnosed as a clock problem.
pub fn check_code(
    secret: &[u8],
    code: &str,
    now: Timestamp,
    skew: u64,
    last_step: u64,
) -> Result<CodeCheck> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Ok(CodeCheck::Invalid);
    }
    let current = now / STEP;
    let matches = |step: u64| -> Result<bool> {
        Ok(code_at(secret, step)?
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into())
    };
    let mut replayed = false;
    for step in current.saturating_sub(skew)..=current + skew {
        if matches(step)? {
            if step > last_step {
                return Ok(CodeCheck::Valid { step });
            }
            replayed = true;
        }
    }
    if replayed {
        return Ok(CodeCheck::Replayed);
    }
    for distance in skew + 1..=DRIFT_SEARCH_STEPS {
        if matches(current + distance)? {
            return Ok(CodeCheck::ClockOff {
                steps: distance as i64,
            });
        }
        if current >= distance && matches(current - distance)? {
            return Ok(CodeCheck::ClockOff {
                steps: -(distance as i64),
            });
        }
    }
    Ok(CodeCheck::Invalid)
}

async fn load(state: &dyn Services, username: &str) -> Result<Option<(Vec<u8>, TotpRecord)>> {
    let key = record_key(username);
    let Some(raw) = state.store().get_factor(&key).await? else {
        return Ok(None);
    };
    let record: TotpRecord = serde_json::from_slice(&raw)?;
    Ok(Some((raw, record)))
}

/// Whether the user's authenticator app is on.
pub async fn is_enabled(store: &dyn Store, username: &str) -> Result<bool> {
    enabled_in(store.get_factor(&record_key(username)).await?.as_deref())
}

/// Whether a stored record (`None`: none) has the app on.
pub(crate) fn enabled_in(raw: Option<&[u8]>) -> Result<bool> {
    Ok(raw
        .map(serde_json::from_slice::<TotpRecord>)
        .transpose()?
        .is_some_and(|r| r.enabled))
}

fn enrollment(state: &dyn Services, username: &str, record: &TotpRecord) -> Result<Enrollment> {
    let secret = state.sealer().open(&record.secret, &context(username))?;
    let t = totp(&secret, &state.config().second_factor.totp_issuer, username)?;
    Ok(Enrollment {
        secret_base32: Secret::from(secret).to_base32(),
        uri: t
            .to_url()
            .map_err(|e| Error::Internal(format!("totp url: {e:?}")))?,
    })
}

/// Starts (or restarts) enrolment with a new secret; the method stays off until
/// [`enroll_finish`] sees a correct code.
pub async fn enroll_start(
    state: &dyn Services,
    username: &str,
    now: Timestamp,
) -> Result<Enrollment> {
    use rand::RngCore;
    let mut secret = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let record = TotpRecord {
        secret: state.sealer().seal(&secret, &context(username))?,
        enabled: false,
        last_step: 0,
        created_at: now,
        burned_steps: Vec::new(),
    };
    crate::store::put_factor(state.store().as_ref(), &record_key(username), &record).await?;
    enrollment(state, username, &record)
}

/// The pending enrolment, if one was started and not finished.
pub async fn pending_enrollment(
    state: &dyn Services,
    username: &str,
) -> Result<Option<Enrollment>> {
    match load(state, username).await? {
        Some((_, record)) if !record.enabled => enrollment(state, username, &record).map(Some),
        _ => Ok(None),
    }
}

/// What a check changes in the record, if anything: a valid code's step becomes the
/// last one used; a future step revealed by the clock hint is burned. `None` for a valid
/// code whose step was burned (refused as used) and for checks that change nothing.
fn settle(record: &TotpRecord, check: CodeCheck, now: Timestamp) -> Option<TotpRecord> {
    match check {
        CodeCheck::Valid { step } if record.burned_steps.contains(&step) => None,
        CodeCheck::Valid { step } => Some(TotpRecord {
            enabled: true,
            last_step: step,
            ..record.clone()
        }),
        CodeCheck::ClockOff { steps } if steps > 0 => {
            let revealed = now / STEP + steps as u64;
            let oldest = (now / STEP).saturating_sub(DRIFT_SEARCH_STEPS);
            let mut burned = record.burned_steps.clone();
            burned.retain(|s| *s >= oldest);
            if burned.contains(&revealed) {
                return None;
            }
            burned.push(revealed);
            Some(TotpRecord {
                burned_steps: burned,
                ..record.clone()
            })
        }
        _ => None,
    }
}

/// Checks a code and records its step; shared by login and enrolment.
async fn check_and_consume(
    state: &dyn Services,
    username: &str,
    code: &str,
    now: Timestamp,
    want_enabled: bool,
) -> Result<CodeCheck> {
    for _ in 0..3 {
        let Some((raw, record)) = load(state, username).await? else {
            return Ok(CodeCheck::Invalid);
        };
        if record.enabled != want_enabled {
            return Ok(CodeCheck::Invalid);
        }
        let secret = state.sealer().open(&record.secret, &context(username))?;
        let check = check_code(
            &secret,
            code,
            now,
            state.config().second_factor.totp_skew,
            record.last_step,
        )?;
        let Some(updated) = settle(&record, check, now) else {
            return Ok(match check {
                CodeCheck::Valid { .. } => CodeCheck::Replayed,
                other => other,
            });
        };
        if crate::store::swap_factor(
            state.store().as_ref(),
            &record_key(username),
            &raw,
            Some(&updated),
        )
        .await?
        {
            return Ok(check);
        }
        // Someone else changed the record between read and swap: look again.
    }
    Ok(CodeCheck::Replayed)
}

/// Finishes enrolment: a correct code turns the method on.
pub async fn enroll_finish(
    state: &dyn Services,
    username: &str,
    code: &str,
    now: Timestamp,
) -> Result<CodeCheck> {
    check_and_consume(state, username, code, now, false).await
}

/// Verifies a login code.
pub async fn verify(
    state: &dyn Services,
    username: &str,
    code: &str,
    now: Timestamp,
) -> Result<CodeCheck> {
    check_and_consume(state, username, code, now, true).await
}

/// Turns the method off and forgets the secret.
pub async fn disable(store: &dyn Store, username: &str) -> Result<bool> {
    store.delete_factor(&record_key(username)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B's SHA-1 seed.
    const SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn matches_rfc6238_test_vectors() {
        assert_eq!(code_at(SEED, 59 / STEP).unwrap(), "287082");
        assert_eq!(code_at(SEED, 1111111109 / STEP).unwrap(), "081804");
        assert_eq!(code_at(SEED, 2000000000 / STEP).unwrap(), "279037");
    }

    #[test]
    fn code_is_accepted_within_one_step_either_side() {
        let now = 1_700_000_000;
        let step = now / STEP;
        for s in [step - 1, step, step + 1] {
            let code = code_at(SEED, s).unwrap();
            assert_eq!(
                check_code(SEED, &code, now, 1, 0).unwrap(),
                CodeCheck::Valid { step: s }
            );
        }
    }

    #[test]
    fn code_with_spaces_is_accepted() {
        let now = 1_700_000_000;
        let code = code_at(SEED, now / STEP).unwrap();
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(matches!(
            check_code(SEED, &spaced, now, 1, 0).unwrap(),
            CodeCheck::Valid { .. }
        ));
    }

    #[test]
    fn used_step_is_refused_as_replay() {
        let now = 1_700_000_000;
        let step = now / STEP;
        let code = code_at(SEED, step).unwrap();
        assert_eq!(
            check_code(SEED, &code, now, 1, step).unwrap(),
            CodeCheck::Replayed
        );
        let earlier = code_at(SEED, step - 1).unwrap();
        assert_eq!(
            check_code(SEED, &earlier, now, 1, step).unwrap(),
            CodeCheck::Replayed,
            "an older step after a newer one"
        );
    }

    #[test]
    fn code_from_a_fast_or_slow_clock_is_diagnosed_not_accepted() {
        let now = 1_700_000_000;
        let step = now / STEP;
        let ahead = code_at(SEED, step + 6).unwrap();
        assert_eq!(
            check_code(SEED, &ahead, now, 1, 0).unwrap(),
            CodeCheck::ClockOff { steps: 6 }
        );
        let behind = code_at(SEED, step - 20).unwrap();
        assert_eq!(
            check_code(SEED, &behind, now, 1, 0).unwrap(),
            CodeCheck::ClockOff { steps: -20 }
        );
        let far = code_at(SEED, step + 40).unwrap();
        assert_eq!(
            check_code(SEED, &far, now, 1, 0).unwrap(),
            CodeCheck::Invalid,
            "beyond 10 minutes is simply wrong"
        );
    }

    #[test]
    fn a_future_code_revealed_by_the_clock_hint_is_never_accepted_later() {
        let now = 1_700_000_000;
        let step = now / STEP;
        let record = TotpRecord {
            secret: String::new(),
            enabled: true,
            last_step: 0,
            created_at: 0,
            burned_steps: vec![],
        };
        // A guess matches the code of 5 steps from now: the hint, and that step burned.
        let ahead = code_at(SEED, step + 5).unwrap();
        let check = check_code(SEED, &ahead, now, 1, 0).unwrap();
        assert_eq!(check, CodeCheck::ClockOff { steps: 5 });
        let record = settle(&record, check, now).expect("the revealed step is burned");
        assert_eq!(record.burned_steps, vec![step + 5]);
        // Two and a half minutes later the same code is inside the window, and refused.
        let later = now + 5 * STEP;
        let check = check_code(SEED, &ahead, later, 1, record.last_step).unwrap();
        assert_eq!(check, CodeCheck::Valid { step: step + 5 });
        assert!(settle(&record, check, later).is_none(), "refused as used");
        // The next step's code is fine.
        let next = check_code(SEED, &code_at(SEED, step + 6).unwrap(), later + STEP, 1, 0).unwrap();
        assert!(settle(&record, next, later + STEP).is_some());
    }

    #[test]
    fn wider_skew_accepts_more_steps() {
        let now = 1_700_000_000;
        let code = code_at(SEED, now / STEP + 2).unwrap();
        assert!(matches!(
            check_code(SEED, &code, now, 2, 0).unwrap(),
            CodeCheck::Valid { .. }
        ));
        assert_eq!(
            check_code(SEED, &code, now, 1, 0).unwrap(),
            CodeCheck::ClockOff { steps: 2 }
        );
    }

    #[test]
    fn malformed_codes_are_invalid() {
        for bad in ["", "12345", "1234567", "abcdef", "12 34 5"] {
            assert_eq!(
                check_code(SEED, bad, 1_700_000_000, 1, 0).unwrap(),
                CodeCheck::Invalid,
                "{bad:?}"
            );
        }
    }
}
