//! Backup codes: a few one-time codes made when 2FA is first turned on, shown once,
//! stored only as keyed hashes ([`crate::crypto::CodeHasher`]); each works once.
//!
//! Shape: `generate` (enrolment and "generate new codes", which invalidates the old set),
//! `verify` (consumes the code with an atomic swap), `remaining`, `delete`.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::error::Result;
use crate::store::{user_key, Store, Timestamp};

/// Letters and digits that cannot be mistaken for one another.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Characters per code (about 50 bits), shown as two groups of five.
const LENGTH: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupRecord {
    pub hashes: Vec<String>,
    pub generated_at: Timestamp,
}

fn record_key(username: &str) -> String {
    user_key(username, "backup")
}

fn context(username: &str) -> String {
    format!("backup:{username}")
}

/// Lower case, without spaces or dashes: how codes are compared.
pub fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn new_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let raw: String = (0..LENGTH)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}-{}", &raw[..LENGTH / 2], &raw[LENGTH / 2..])
}

/// Makes a new set (replacing any old one) and returns the codes to show once.
pub async fn generate(state: &dyn Services, username: &str, now: Timestamp) -> Result<Vec<String>> {
    let codes: Vec<String> = (0..state.config().second_factor.backup_codes)
        .map(|_| new_code())
        .collect();
    let hashes = codes
        .iter()
        .map(|c| state.code_hasher().hash(&normalise(c), &context(username)))
        .collect();
    crate::store::put_factor(
        state.store().as_ref(),
        &record_key(username),
        &BackupRecord {
            hashes,
            generated_at: now,
        },
    )
    .await?;
    Ok(codes)
}

/// Uses up a code if it is one of the user's; true when it was.
pub async fn verify(state: &dyn Services, username: &str, code: &str) -> Result<bool> {
    let code = normalise(code);
    if code.len() != LENGTH {
        return Ok(false);
    }
    let key = record_key(username);
    for _ in 0..3 {
        let Some(raw) = state.store().get_factor(&key).await? else {
            return Ok(false);
        };
        let record: BackupRecord = serde_json::from_slice(&raw)?;
        // Compare against every hash (constant time each) so timing says nothing of position.
        let hit = record.hashes.iter().fold(None, |found, h| {
            if state.code_hasher().matches(&code, &context(username), h) {
                Some(h.clone())
            } else {
                found
            }
        });
        let Some(hit) = hit else { return Ok(false) };
        let left = BackupRecord {
            hashes: record
                .hashes
                .iter()
                .filter(|h| **h != hit)
                .cloned()
                .collect(),
            ..record
        };
        if crate::store::swap_factor(state.store().as_ref(), &key, &raw, Some(&left)).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// How many unused codes the user has.
pub async fn remaining(store: &dyn Store, username: &str) -> Result<usize> {
    Ok(
        crate::store::get_factor::<BackupRecord>(store, &record_key(username))
            .await?
            .map_or(0, |r| r.hashes.len()),
    )
}

/// Forgets all codes.
pub async fn delete(store: &dyn Store, username: &str) -> Result<bool> {
    store.delete_factor(&record_key(username)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_readable_and_normalise() {
        let code = new_code();
        assert_eq!(code.len(), LENGTH + 1);
        assert_eq!(&code[5..6], "-");
        assert!(!code.contains(['0', 'o', '1', 'l', 'i']));
        assert_eq!(normalise(" ABCDE-fghjk "), "abcdefghjk");
    }
}
