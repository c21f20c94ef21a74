//! The per-request access decision, shared by proxy mode and forward-auth: resolve the
//! session from the cookie, match the access rules, compare the level reached.
//!
//! This is the hot path: no argon2, no network, no lock held across an await (it has
//! no await at all); one HMAC check and two store reads.

use crate::auth::session::{cookie_value, Identity, Sessions};
use crate::error::Result;
use crate::policy::{AccessRules, Policy, RequestFacts, SubjectFacts, Verdict};
use crate::store::{AuthLevel, Timestamp};

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Let it through; with the identity to announce when someone is logged in.
    Allow(Option<Box<Identity>>),
    /// Send the browser to log in (no session, or not enough factors).
    Login,
    /// Refuse it.
    Deny,
}

/// The level a policy asks for; `None` for bypass and deny.
fn required_level(policy: Policy) -> Option<AuthLevel> {
    match policy {
        Policy::Bypass | Policy::Deny => None,
        Policy::OneFactor => Some(AuthLevel::OneFactor),
        // No second factor exists yet: two_factor behaves as one_factor (logged at start-up).
        Policy::TwoFactor => Some(AuthLevel::OneFactor),
    }
}

/// Decides for one request. `cookie_header` is the raw `Cookie` header.
pub fn decide(
    sessions: &Sessions,
    rules: &AccessRules,
    request: &RequestFacts<'_>,
    cookie_header: Option<&str>,
    now: Timestamp,
) -> Result<Decision> {
    let identity = match cookie_header.and_then(|h| cookie_value(h, &sessions.config().cookie_name))
    {
        Some(value) => sessions.resolve(value, now)?,
        None => None,
    };
    let subject = identity.as_ref().map(|i| SubjectFacts {
        username: &i.user.username,
        groups: &i.user.groups,
    });
    let policy = match rules.evaluate(request, subject) {
        Verdict::NeedsIdentity => return Ok(Decision::Login),
        Verdict::Apply(policy) => policy,
    };
    Ok(match (policy, required_level(policy)) {
        (Policy::Deny, _) => Decision::Deny,
        (_, None) => Decision::Allow(identity.map(Box::new)),
        (_, Some(level)) => match identity {
            Some(i) if i.session.level >= level => Decision::Allow(Some(Box::new(i))),
            _ => Decision::Login,
        },
    })
}
