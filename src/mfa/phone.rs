//! Phone numbers and the phone reserve method.
//!
//! Numbers are added in E.164 form and count only once confirmed by an SMS code; a
//! number belongs to one account (an index in the store, claimed atomically). The phone
//! is never a factor of its own: it is the way back in when the other factors are out
//! of reach, and using it switches 2FA off (see the portal's phone step).
//!
//! A login attempt escalates as the providers we model do: numbers whose prefix is in
//! `phone.domestic_prefixes` get a voice call dictating 4 digits, others a flash call
//! whose caller number ends in the 4 digits (drawn at random by gatehouse, the caller
//! chosen to match; dictated when the provider cannot); after `phone.max_calls` calls the next
//! request sends an SMS instead. Codes are single-use, expire, allow few tries, are kept
//! as keyed hashes. Calls and SMS cost money: every send passes per-user, per-number,
//! per-IP and global hourly budgets (counted in the store), and hitting one is logged.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::config::PhoneConfig;
use crate::error::Result;
use crate::phone_number::{mask, normalise};
use crate::store::{user_key, RecordKey, Store, Timestamp, User};

/// How a code reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A robot dictates the code.
    Voice,
    /// The code is the last 4 digits of the calling number.
    Flash,
    Sms,
}

impl Channel {
    pub fn id(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::Flash => "flash",
            Channel::Sms => "sms",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Number {
    pub number: String,
    pub confirmed: bool,
    pub added_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Code {
    number: String,
    hash: String,
    expires_at: Timestamp,
    tries_left: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attempt {
    code: Code,
    calls: u32,
    channel: Channel,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct PhoneRecord {
    numbers: Vec<Number>,
    confirming: Option<Code>,
    attempt: Option<Attempt>,
}

/// Why nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Invalid,
    /// The number belongs to another account.
    Taken,
    /// An hourly budget is spent.
    Limited,
    /// The provider failed.
    Failed,
}

pub use super::CodeResult;

/// Hourly send budgets, counted in the store (shared by every process on it).
pub struct Budgets {
    counters: std::sync::Arc<dyn crate::store::Counters>,
}

impl Budgets {
    pub fn new(counters: std::sync::Arc<dyn crate::store::Counters>) -> Self {
        Budgets { counters }
    }

    /// Takes one send from every `(key, limit)` budget, or none if any is spent.
    pub async fn take(&self, budgets: &[(String, u32)], now: Timestamp) -> Result<bool> {
        let keys: Vec<String> = budgets.iter().map(|(k, _)| format!("phone:{k}")).collect();
        let mut spent = None;
        let taken = self
            .counters
            .update_tallies(&keys, &mut |tallies| {
                spent = None;
                for (tally, (key, limit)) in tallies.iter_mut().zip(budgets) {
                    tally.events.retain(|t| now.saturating_sub(*t) < 3600);
                    if tally.events.len() as u32 >= *limit {
                        spent = Some((key.clone(), *limit));
                        return false;
                    }
                }
                for tally in tallies.iter_mut() {
                    tally.events.push(now);
                }
                true
            })
            .await?;
        if let Some((key, limit)) = spent {
            tracing::warn!(budget = %key, limit, "phone send budget spent; refusing a call or SMS");
        }
        Ok(taken)
    }
}

fn record_key(username: &str) -> String {
    user_key(username, "phone")
}

fn index_key(number: &str) -> String {
    format!("phone\0{number}")
}

fn context(username: &str) -> String {
    format!("phone-code:{username}")
}

async fn load(store: &dyn Store, username: &str) -> Result<PhoneRecord> {
    Ok(crate::store::get_factor(store, &record_key(username))
        .await?
        .unwrap_or_default())
}

/// The user's numbers.
pub async fn numbers(store: &dyn Store, username: &str) -> Result<Vec<Number>> {
    Ok(load(store, username).await?.numbers)
}

/// The user's confirmed numbers.
pub async fn confirmed_numbers(store: &dyn Store, username: &str) -> Result<Vec<String>> {
    Ok(numbers(store, username)
        .await?
        .into_iter()
        .filter(|n| n.confirmed)
        .map(|n| n.number)
        .collect())
}

fn budgets(config: &PhoneConfig, username: &str, number: &str, ip: &str) -> Vec<(String, u32)> {
    vec![
        ("global".into(), config.global_per_hour),
        (format!("user:{username}"), config.per_user_per_hour),
        (format!("number:{number}"), config.per_number_per_hour),
        (format!("ip:{ip}"), config.per_ip_per_hour),
    ]
}

fn new_code(
    state: &dyn Services,
    username: &str,
    number: &str,
    code: &str,
    config: &PhoneConfig,
    now: Timestamp,
) -> Code {
    Code {
        number: number.into(),
        hash: state.code_hasher().hash(code, &context(username)),
        expires_at: now + config.code_lifetime.as_secs(),
        tries_left: config.code_tries,
    }
}

/// Adds a number (unconfirmed) and texts it a code. Returns the normalised number.
pub async fn add_number(
    state: &dyn Services,
    user: &User,
    text: &str,
    sms_text: &str,
    ip: &str,
    now: Timestamp,
) -> Result<std::result::Result<String, Refusal>> {
    let (Some(config), Some(provider)) = (&state.config().phone, &state.phone()) else {
        return Ok(Err(Refusal::Failed));
    };
    let Some(number) = normalise(text) else {
        return Ok(Err(Refusal::Invalid));
    };
    if state
        .store()
        .get_token(&index_key(&number))
        .await?
        .is_some_and(|owner| owner != user.username.as_bytes())
    {
        return Ok(Err(Refusal::Taken));
    }
    if !state
        .phone_budgets()
        .take(&budgets(config, &user.username, &number, ip), now)
        .await?
    {
        state.metrics().phone_refused.inc();
        return Ok(Err(Refusal::Limited));
    }
    let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
    let confirming = new_code(state, &user.username, &number, &code, config, now);
    crate::store::update_factor(
        state.store().as_ref(),
        &record_key(&user.username),
        |record: &mut PhoneRecord| {
            if !record.numbers.iter().any(|n| n.number == number) {
                record.numbers.push(Number {
                    number: number.clone(),
                    confirmed: false,
                    added_at: now,
                });
            }
            record.confirming = Some(confirming.clone());
        },
    )
    .await?;
    if provider
        .sms(&number, &sms_text.replace("{}", &code))
        .await
        .is_err()
    {
        return Ok(Err(Refusal::Failed));
    }
    state.metrics().phone_sent.inc();
    crate::audit!(
        "phone_confirmation_sent",
        user = user.username,
        number = mask(&number)
    );
    Ok(Ok(number))
}

/// The number being confirmed, if any.
pub async fn confirming(store: &dyn Store, username: &str) -> Result<Option<String>> {
    Ok(load(store, username).await?.confirming.map(|c| c.number))
}

/// Checks a code against `pick` of the record (the confirmation or the login attempt),
/// consuming it on success and a try on failure; `apply` changes the record on success.
async fn check_code(
    state: &dyn Services,
    username: &str,
    code: &str,
    now: Timestamp,
    pick: fn(&mut PhoneRecord) -> Option<&mut Code>,
    apply: impl Fn(&mut PhoneRecord, &str) + Send + Sync,
) -> Result<CodeResult> {
    let code: String = code.chars().filter(|c| c.is_ascii_digit()).collect();
    let outcome = crate::store::modify_factor(
        state.store().as_ref(),
        &record_key(username),
        |record: &mut PhoneRecord| {
            let pending = pick(record).filter(|c| c.expires_at > now && c.tries_left > 0)?;
            let right = !code.is_empty()
                && state
                    .code_hasher()
                    .matches(&code, &context(username), &pending.hash);
            let number = pending.number.clone();
            if right {
                pending.tries_left = 0;
                apply(record, &number);
            } else {
                pending.tries_left -= 1;
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

/// Confirms the number being added; it then belongs to this account.
pub async fn confirm_number(
    state: &dyn Services,
    username: &str,
    code: &str,
    now: Timestamp,
) -> Result<std::result::Result<CodeResult, Refusal>> {
    let Some(number) = confirming(state.store().as_ref(), username).await? else {
        return Ok(Ok(CodeResult::Dead));
    };
    let claimed = state
        .store()
        .swap_token(&index_key(&number), None, Some(username.as_bytes()), None)
        .await?
        || state
            .store()
            .get_token(&index_key(&number))
            .await?
            .is_some_and(|o| o == username.as_bytes());
    if !claimed {
        return Ok(Err(Refusal::Taken));
    }
    let result = check_code(
        state,
        username,
        code,
        now,
        |r| r.confirming.as_mut(),
        |r, number| {
            r.confirming = None;
            for n in r.numbers.iter_mut().filter(|n| n.number == number) {
                n.confirmed = true;
            }
        },
    )
    .await?;
    if result != CodeResult::Accepted {
        // Do not hold the number for an account that has not proved it.
        let confirmed = numbers(state.store().as_ref(), username)
            .await?
            .iter()
            .any(|n| n.number == number && n.confirmed);
        if !confirmed {
            state
                .store()
                .swap_token(&index_key(&number), Some(username.as_bytes()), None, None)
                .await?;
        }
    } else {
        crate::audit!(
            "phone_number_added",
            user = username,
            number = mask(&number)
        );
    }
    Ok(Ok(result))
}

/// Removes a number from the account.
pub async fn remove_number(state: &dyn Services, username: &str, number: &str) -> Result<bool> {
    // The record and the number's index entry change in one transaction.
    let keys = [
        RecordKey::Factor(record_key(username)),
        RecordKey::Token(index_key(number)),
    ];
    let removed = state
        .store()
        .transact(&keys, &mut |records| {
            let Some(raw) = &records[0] else {
                return Ok(false);
            };
            let mut record: PhoneRecord = serde_json::from_slice(raw)?;
            let before = record.numbers.len();
            record.numbers.retain(|n| n.number != number);
            if record.numbers.len() == before {
                return Ok(false);
            }
            records[0] = Some(serde_json::to_vec(&record)?);
            if records[1].as_deref() == Some(username.as_bytes()) {
                records[1] = None;
            }
            Ok(true)
        })
        .await?;
    if !removed {
        return Ok(false);
    }
    crate::audit!(
        "phone_number_removed",
        user = username,
        number = mask(number)
    );
    Ok(true)
}

/// Places the next call (or, past `max_calls`, sends an SMS) for a login by phone.
pub async fn call(
    state: &dyn Services,
    user: &User,
    number: &str,
    lang: &str,
    sms_text: &str,
    ip: &str,
    now: Timestamp,
) -> Result<std::result::Result<Channel, Refusal>> {
    let (Some(config), Some(provider)) = (&state.config().phone, &state.phone()) else {
        return Ok(Err(Refusal::Failed));
    };
    if !confirmed_numbers(state.store().as_ref(), &user.username)
        .await?
        .iter()
        .any(|n| n == number)
    {
        return Ok(Err(Refusal::Invalid));
    }
    if !state
        .phone_budgets()
        .take(&budgets(config, &user.username, number, ip), now)
        .await?
    {
        crate::audit!("phone_limit_reached", user = user.username, ip = ip);
        state.metrics().phone_refused.inc();
        return Ok(Err(Refusal::Limited));
    }
    let domestic = config
        .domestic_prefixes
        .iter()
        .any(|p| number.starts_with(p.as_str()));
    // Gatehouse draws every code itself: 4 random digits for a call (a flash call's
    // caller is then chosen to end in them), 6 for an SMS.
    let call_code = format!("{:04}", rand::rngs::OsRng.gen_range(0..10_000));
    let sms_code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000));
    // The call is counted (and its code stored) before the provider is asked, in one
    // atomic change: parallel requests each get their own place in the escalation.
    let reserved = crate::store::modify_factor::<PhoneRecord, _>(
        state.store().as_ref(),
        &record_key(&user.username),
        |record| {
            let calls = record
                .attempt
                .as_ref()
                .filter(|a| {
                    a.code.number == number
                        && a.code.expires_at + config.code_lifetime.as_secs() > now
                })
                .map_or(0, |a| a.calls);
            let channel = if calls >= config.max_calls {
                Channel::Sms
            } else if domestic || !provider.can_flash() {
                Channel::Voice
            } else {
                Channel::Flash
            };
            let code = if channel == Channel::Sms {
                &sms_code
            } else {
                &call_code
            };
            record.attempt = Some(Attempt {
                code: new_code(state, &user.username, number, code, config, now),
                calls: calls + u32::from(channel != Channel::Sms),
                channel,
            });
            Some((channel, code.clone()))
        },
    )
    .await?;
    let Some((channel, code)) = reserved else {
        return Ok(Err(Refusal::Invalid));
    };
    let sent = match channel {
        Channel::Voice => provider.voice(number, &code, lang).await,
        Channel::Flash => provider.flash(number, &code).await,
        Channel::Sms => provider.sms(number, &sms_text.replace("{}", &code)).await,
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, channel = channel.id(), "phone provider refused a send");
        return Ok(Err(Refusal::Failed));
    }
    state.metrics().phone_sent.inc();
    crate::audit!(
        "phone_code_sent",
        user = user.username,
        channel = channel.id(),
        number = mask(number),
        ip = ip
    );
    Ok(Ok(channel))
}

/// The channel of the attempt in progress, if any.
pub async fn current_channel(store: &dyn Store, username: &str) -> Result<Option<Channel>> {
    Ok(load(store, username).await?.attempt.map(|a| a.channel))
}

/// Checks a login code sent by phone.
pub async fn verify(
    state: &dyn Services,
    username: &str,
    code: &str,
    now: Timestamp,
) -> Result<CodeResult> {
    check_code(
        state,
        username,
        code,
        now,
        |r| r.attempt.as_mut().map(|a| &mut a.code),
        |r, _| r.attempt = None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    #[tokio::test]
    async fn a_spent_budget_refuses_and_takes_nothing_from_the_others() {
        let b = Budgets::new(std::sync::Arc::new(crate::store::MemoryEngine::store()));
        let keys = vec![("a".to_string(), 2), ("b".to_string(), 10)];
        assert!(b.take(&keys, 100).await.unwrap());
        assert!(b.take(&keys, 101).await.unwrap());
        assert!(!b.take(&keys, 102).await.unwrap());
        assert!(
            b.take(&[("b".to_string(), 3)], 103).await.unwrap(),
            "b was charged twice, not three times"
        );
        assert!(b.take(&keys, 3700).await.unwrap(), "an hour later");
    }
}
