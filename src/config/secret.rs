//! A secret from the configuration (a token, a password, a key) that masks itself:
//! shown, serialised or debug-printed it is `********`; only [`Secret::expose`] and
//! [`Secret::into_inner`] give the value.

use serde::{Deserialize, Serialize, Serializer};

/// What a secret looks like wherever it is shown.
pub const MASK: &str = "********";

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }

    /// Its length in bytes (for the minimum-length checks).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_itself_but_gives_its_value_when_asked() {
        let secret: Secret = serde_json::from_str("\"hunter2-but-longer\"").unwrap();
        assert_eq!(secret.expose(), "hunter2-but-longer");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"********\"");
        assert_eq!(format!("{secret:?}"), "Secret(********)");
    }
}
