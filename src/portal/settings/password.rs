//! Passwords on the settings pages: checking the one typed in a form (counted by the
//! brute-force limiter), what makes a new one unacceptable, and changing it.

use super::*;

pub(super) static COMMON_PASSWORDS: &str = include_str!("../../../assets/common-passwords.txt");

/// What is wrong with a new password (typed twice), if anything: the two differ, it is
/// shorter than `password.min_length`, common, or the user name.
pub fn new_password_problem(
    state: &AppState,
    t: &'static Texts,
    new: &str,
    repeat: &str,
    username: &str,
) -> Option<String> {
    let min = state.config.password.min_length;
    if new != repeat {
        Some(t.password_mismatch.to_string())
    } else if new.chars().count() < min {
        Some(t.password_too_short(min as u64))
    } else if is_common_password(new) || new.eq_ignore_ascii_case(username) {
        Some(t.password_common.to_string())
    } else {
        None
    }
}

/// Whether a password is on the built-in list of the most common ones.
pub fn is_common_password(password: &str) -> bool {
    let lower = password.to_lowercase();
    COMMON_PASSWORDS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l == lower)
}

/// The outcome of a signed-in user's password check.
pub(crate) enum PasswordCheck {
    Right,
    /// Wrong: the message to show (which says so, or that the user is now banned).
    Wrong(StatusCode, String),
}

/// Checks a signed-in user's password, counted against the same bans as the login (a
/// stolen session must not become a way to guess the password); audits `event` when it
/// is wrong.
pub(crate) async fn check_password(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    password: String,
    event: &str,
) -> Result<PasswordCheck> {
    let username = &identity.user.username;
    let ip = req.ip_text();
    let keys = login_keys(username, req.client_ip);
    let attempt = match begin_attempt(state, &keys).await? {
        Ok(attempt) => attempt,
        Err(left) => {
            audit!(event, user = username, ip = ip, reason = "banned");
            return Ok(PasswordCheck::Wrong(
                StatusCode::TOO_MANY_REQUESTS,
                banned_message(t, left),
            ));
        }
    };
    if state
        .passwords
        .verify(password, Some(identity.user.password_hash.clone()))
        .await?
    {
        return Ok(
            match attempt.succeeded(&[user_key(username)], now()).await? {
                Ok(()) => PasswordCheck::Right,
                Err(left) => {
                    PasswordCheck::Wrong(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left))
                }
            },
        );
    }
    audit!(event, user = username, ip = ip);
    Ok(match attempt_failed(state, attempt, &keys, &ip).await {
        Some(left) => PasswordCheck::Wrong(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left)),
        None => PasswordCheck::Wrong(StatusCode::UNAUTHORIZED, t.password_wrong.into()),
    })
}

/// Checks the user's password for a change; when it is wrong, audits `event` and
/// returns the settings page saying so.
pub(crate) async fn wrong_password(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    password: String,
    event: &str,
) -> Result<Option<Response>> {
    match check_password(state, req, t, identity, password, event).await? {
        PasswordCheck::Right => Ok(None),
        PasswordCheck::Wrong(status, message) => {
            settings_page(state, req, t, identity, status, Some(message))
                .await
                .map(Some)
        }
    }
}

/// For a change that ends 2FA: checks the password typed into the form itself; returns
/// the page to show when it is wrong.
pub(crate) async fn password_in_form(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
) -> Result<Option<Response>> {
    let password = req.form().get("password").unwrap_or("").to_string();
    wrong_password(
        state,
        req,
        t,
        identity,
        password,
        "password_confirmation_failed",
    )
    .await
}

/// `POST /settings/password`: current password, new one twice.
pub async fn password_change(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
) -> Result<Response> {
    let identity = match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    check_csrf(state, req)?;
    let form = req.form();
    let current = form.get("current_password").unwrap_or("").to_string();
    let new = form.get("new_password").unwrap_or("").to_string();
    let repeat = form.get("repeat_password").unwrap_or("");
    let problem = new_password_problem(state, t, &new, repeat, &identity.user.username);
    if let Some(problem) = problem {
        return settings_page(
            state,
            req,
            t,
            &identity,
            StatusCode::BAD_REQUEST,
            Some(problem),
        )
        .await;
    }
    if let Some(wrong) =
        wrong_password(state, req, t, &identity, current, "password_change_failed").await?
    {
        return Ok(wrong);
    }
    let hash = state.passwords.hash(new).await?;
    // Only the password, atomically, on the record as it is now (never a stale copy),
    // and in the same write every other session ends.
    let (user, kept, ended) = end_sessions(
        state.store.as_ref(),
        &identity.user.username,
        Some(&identity.session),
        // Trusted devices are revoked in the same write.
        &mut |u| {
            u.password_hash = hash.clone();
            u.trust_generation += 1;
        },
    )
    .await?
    .ok_or(Error::SessionEnded)?;
    crate::crash::point("password-changed");
    let kept = kept.ok_or(Error::SessionEnded)?;
    state.sessions.password_confirmed(&kept, now()).await?;
    audit!(
        "password_changed",
        user = user.username,
        by = "user",
        sessions_ended = ended
    );
    Ok(done(req, "password"))
}
