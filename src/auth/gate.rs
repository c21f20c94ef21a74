//! The per-request access decision, shared by proxy mode and forward-auth: resolve the
//! session from the cookie, match the access rules, compare the level reached.
//!
//! This is the hot path: no argon2, no network, no lock held across an await; one HMAC
//! check and two store reads, which a local store (or a replica's cache) answers at
//! once through the `peek` reads, so the awaits here complete without yielding or
//! allocating (only the throttled `last_seen` write awaits the store).

use crate::auth::session::{cookie_value, Identity, Sessions};
use crate::error::Result;
use crate::policy::{AccessRules, Policy, RequestFacts, SubjectFacts, Verdict};
use crate::store::{AuthLevel, Timestamp};

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Let it through; with the identity to announce when someone is logged in.
    Allow(Option<Box<Identity>>),
    /// Send the browser to log in (no session, or the second step still owed).
    Login,
    /// The user has no second factor but the resource asks for two: send them to the
    /// settings page to turn one on.
    Enroll,
    /// Refuse it.
    Deny,
}

/// The level a policy asks for; `None` for bypass and deny.
fn required_level(policy: Policy) -> Option<AuthLevel> {
    match policy {
        Policy::Bypass | Policy::Deny => None,
        Policy::OneFactor => Some(AuthLevel::OneFactor),
        Policy::TwoFactor | Policy::TwoFactorEveryTime => Some(AuthLevel::TwoFactor),
    }
}

/// Decides for one request. `cookie_header` is the raw `Cookie` header;
/// `enrollment_redirect` picks [`Decision::Enroll`] over [`Decision::Deny`] for a user
/// without 2FA on a two_factor resource.
pub async fn decide(
    sessions: &Sessions,
    rules: &AccessRules,
    request: &RequestFacts<'_>,
    cookie_header: Option<&str>,
    enrollment_redirect: bool,
    now: Timestamp,
) -> Result<Decision> {
    let session = match cookie_header.and_then(|h| cookie_value(h, &sessions.config().cookie_name))
    {
        Some(value) => sessions.resolve(value, now).await?,
        None => None,
    };
    // A session still owing its second step is nobody yet: it grants nothing.
    let identity = session.filter(|i| i.session.level >= AuthLevel::OneFactor);
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
            // A second factor a trusted device stood in for does not count where the
            // rule asks every time: the second step again (see `devices`).
            Some(i) if policy == Policy::TwoFactorEveryTime && i.session.by_trusted_device() => {
                Decision::Login
            }
            Some(i) if i.session.level >= level => Decision::Allow(Some(Box::new(i))),
            // One factor reached by a user who has no second factor at all (turning one
            // on ends every other session, so a user with 2FA has no such session).
            Some(_) if enrollment_redirect => Decision::Enroll,
            Some(_) => Decision::Deny,
            None => Decision::Login,
        },
    })
}
