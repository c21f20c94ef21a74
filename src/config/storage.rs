//! `[storage]`: where secrets at rest get their key.

use super::*;

/// The store's encryption key for secrets at rest.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RawStorage {
    /// Key material (at least 32 characters); absent = generated once in data_dir.
    pub encryption_key: Option<Secret>,
    pub encryption_key_file: Option<PathBuf>,
}

impl RawStorage {
    /// The configured encryption key (inline or from its file), at least 32 characters.
    pub(super) fn encryption_key(&self) -> Result<Option<Secret>> {
        let encryption_key = resolve_secret(
            "storage.encryption_key",
            self.encryption_key.clone(),
            self.encryption_key_file.as_deref(),
        )?;
        if encryption_key.as_ref().is_some_and(|k| k.len() < 32) {
            return Err(Error::config(
                "storage.encryption_key",
                "(secret)",
                "must be at least 32 characters long",
            ));
        }
        Ok(encryption_key)
    }
}
