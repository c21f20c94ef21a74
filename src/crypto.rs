//! Secrets at rest and one-time codes.
//!
//! - [`Sealer`]: AES-256-GCM with a random 96-bit nonce per message; the additional data
//!   names the owner and purpose, so a ciphertext moved to another user's record does
//!   not open. Stored as base64url(`nonce || ciphertext`).
//! - [`CodeHasher`]: one-time codes (backup codes, later email and SMS codes) are kept
//!   only as HMAC-SHA256 under a key that lives outside the store, and compared in
//!   constant time.
//!
//! The key comes from `storage.encryption_key(_file)`, or is generated once into
//! `DATA_DIR/encryption.key` (mode 0600).

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::basics::write_private;
use crate::error::{Error, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Loads the configured key material or the generated key file, creating it once.
pub fn load_or_create_key(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>> {
    if let Some(k) = configured {
        return Ok(k.as_bytes().to_vec());
    }
    let path = data_dir.join("encryption.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)?;
        if text.trim().len() < 32 {
            return Err(Error::config(
                "storage.encryption_key",
                path.display().to_string(),
                "the generated key file is too short",
            ));
        }
        return Ok(text.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(data_dir)?;
    let key = crate::basics::random_token(48);
    write_private(&path, key.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new encryption key for secrets at rest");
    Ok(key.into_bytes())
}

/// Checks the keys against the fingerprints the store keeps of the keys it was used
/// with (recording them the first time, or when `accept` says the operator changed them
/// on purpose). A changed or missing key stops the start with the key's name: with
/// another encryption key every stored secret would fail to open (each TOTP second step
/// would answer 500), with another session secret everyone would be silently signed out.
pub async fn check_key_fingerprints(
    store: &dyn crate::store::Store,
    keys: &[(&str, &[u8])],
    accept: bool,
) -> Result<()> {
    for (name, material) in keys {
        let record = format!("fingerprint\0{name}");
        let print = hex::encode(&derive(material, "fingerprint")[..8]);
        match store.get_token(&record).await? {
            Some(stored) if stored == print.as_bytes() => {}
            Some(stored) if !accept => {
                return Err(Error::config(
                    *name,
                    format!("fingerprint {print}"),
                    format!(
                        "this is not the key the store was used with (fingerprint {}): put the original key back (restore its file from the backup), or, to change it on purpose, run `gatehouse keys accept` with the server stopped ({})",
                        String::from_utf8_lossy(&stored),
                        if *name == "storage.encryption_key" {
                            "stored second factors then need `user reset-2fa`"
                        } else {
                            "everyone is signed out"
                        }
                    ),
                ));
            }
            _ => store.put_token(&record, print.as_bytes(), None).await?,
        }
    }
    Ok(())
}

fn derive(material: &[u8], purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"gatehouse key derivation v1\0");
    h.update(purpose.as_bytes());
    h.update([0]);
    h.update(material);
    h.finalize().into()
}

/// Encrypts and decrypts small secrets (TOTP seeds, tokens).
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub fn new(material: &[u8]) -> Self {
        let key = derive(material, "seal");
        Sealer {
            cipher: Aes256Gcm::new(&key.into()),
        }
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. `"totp:ann"`).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| Error::Internal("encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(B64.encode(out))
    }

    /// Decrypts what [`Sealer::seal`] made for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>> {
        let bytes = B64
            .decode(sealed)
            .map_err(|_| Error::Internal("sealed value is not base64".into()))?;
        if bytes.len() < 12 + 16 {
            return Err(Error::Internal("sealed value too short".into()));
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                Error::Internal("a sealed secret does not open (wrong key or moved record)".into())
            })
    }
}

/// Keyed hashes of one-time codes.
#[derive(Clone)]
pub struct CodeHasher {
    key: [u8; 32],
}

impl CodeHasher {
    pub fn new(material: &[u8]) -> Self {
        CodeHasher {
            key: derive(material, "one-time codes"),
        }
    }

    /// The stored form of a code for `context` (e.g. `"backup:ann"`).
    pub fn hash(&self, code: &str, context: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(code.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// Whether `code` hashes to `stored` (constant time).
    pub fn matches(&self, code: &str, context: &str, stored: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.hash(code, context)
            .as_bytes()
            .ct_eq(stored.as_bytes())
            .into()
    }
}

/// Whether two strings are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_only_in_its_context_and_with_its_key() {
        let s = Sealer::new(b"key material that is long enough....");
        let sealed = s.seal(b"JBSWY3DPEHPK3PXP", "totp:ann").unwrap();
        assert!(!sealed.contains("JBSWY3DP"));
        assert_eq!(s.open(&sealed, "totp:ann").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert!(
            s.open(&sealed, "totp:bob").is_err(),
            "moved to another user"
        );
        let other = Sealer::new(b"another key material, long enough...");
        assert!(other.open(&sealed, "totp:ann").is_err(), "other key");
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let s = Sealer::new(b"key material that is long enough....");
        assert_ne!(s.seal(b"x", "c").unwrap(), s.seal(b"x", "c").unwrap());
    }

    #[test]
    fn code_hash_is_keyed_and_bound_to_context() {
        let h = CodeHasher::new(b"key material that is long enough....");
        let stored = h.hash("abcd-efgh", "backup:ann");
        assert!(h.matches("abcd-efgh", "backup:ann", &stored));
        assert!(!h.matches("abcd-efgi", "backup:ann", &stored));
        assert!(!h.matches("abcd-efgh", "backup:bob", &stored));
        assert_ne!(
            CodeHasher::new(b"other key material, long enough.....")
                .hash("abcd-efgh", "backup:ann"),
            stored
        );
    }
}
