//! `[access_control]`: the rules, compiled by [`crate::policy`].

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAccessControl {
    pub default_policy: Policy,
    pub rules: Vec<RawRule>,
}

impl Default for RawAccessControl {
    fn default() -> Self {
        RawAccessControl {
            default_policy: Policy::OneFactor,
            rules: Vec::new(),
        }
    }
}
