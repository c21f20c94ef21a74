//! argon2id password hashing, run on the blocking pool and bounded by a semaphore so a
//! flood of logins cannot starve the async workers or exhaust memory.
//!
//! An unknown or disabled user is checked against a dummy hash made with the same
//! parameters, so both cases take the same time as a wrong password.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::config::PasswordParams;
use crate::error::{Error, Result};

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    dummy_hash: Arc<str>,
    permits: Arc<Semaphore>,
}

impl Passwords {
    /// Builds the hasher; the dummy hash costs one hash at start-up.
    pub fn new(params: &PasswordParams) -> Result<Self> {
        let p = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| Error::config("password", format!("{params:?}"), e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, p);
        let dummy_hash = argon
            .hash_password(crate::auth::random_token(16).as_bytes())
            .map_err(|e| Error::Internal(format!("argon2: {e}")))?
            .to_string();
        let lanes = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(Passwords {
            argon,
            dummy_hash: dummy_hash.into(),
            permits: Arc::new(Semaphore::new(lanes)),
        })
    }

    /// Hashes synchronously (CLI use).
    pub fn hash_now(&self, password: &str) -> Result<String> {
        self.argon
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("argon2: {e}")))
    }

    /// Hashes off the async workers.
    pub async fn hash(&self, password: String) -> Result<String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.hash_now(&password))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// Verifies off the async workers; `None` (no such user) checks the dummy hash and fails.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.verify_now(&password, hash.as_deref()))
            .await
            .unwrap_or(false)
    }

    /// Verifies synchronously.
    pub fn verify_now(&self, password: &str, hash: Option<&str>) -> bool {
        let known = hash.is_some();
        let hash = hash.unwrap_or(&self.dummy_hash);
        let ok = match PasswordHash::new(hash) {
            Ok(parsed) => self
                .argon
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => {
                tracing::error!("a stored password hash cannot be parsed");
                false
            }
        };
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Passwords {
        Passwords::new(&PasswordParams {
            memory_kib: 8192,
            iterations: 1,
            parallelism: 1,
            min_length: 8,
        })
        .unwrap()
    }

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let p = fast();
        let h = p.hash_now("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(p.verify_now("correct horse", Some(&h)));
        assert!(!p.verify_now("wrong horse", Some(&h)));
    }

    #[test]
    fn unknown_user_never_verifies() {
        let p = fast();
        assert!(!p.verify_now("anything", None));
    }
}
