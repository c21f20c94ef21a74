//! Proving control of the account's email address before a first second factor is added
//! (`second_factor.verify_identity_by_email`).

use super::*;

/// The changes that add a second factor, or a way back into the account: before the
/// account's first second factor, the user proves control of its email address (the
/// password alone must not be enough to enrol a thief's own authenticator, to move the
/// address to the thief's mailbox first, or to plant a recovery phone number).
pub(super) const ENROLMENTS: &[&str] = &[
    routes::SETTINGS_TOTP_START,
    routes::SETTINGS_TOTP_CONFIRM,
    routes::SETTINGS_WEBAUTHN_ADD,
    routes::SETTINGS_WEBAUTHN_FINISH,
    routes::SETTINGS_TELEGRAM_LINK,
    routes::SETTINGS_TELEGRAM_ENABLE,
    routes::SETTINGS_PHONE_ADD,
    routes::SETTINGS_PHONE_CONFIRM,
    routes::SETTINGS_ADDRESS_START,
    routes::SETTINGS_ADDRESS_CONFIRM,
];

/// Of [`ENROLMENTS`], the forms that carry a password: not replayed after the identity
/// check (the password is never put back into a page); the user submits them again.
pub(super) const NOT_REPLAYED: &[&str] = &[routes::SETTINGS_ADDRESS_START];

/// Whether `action` must wait for the emailed identity check.
pub(super) async fn identity_check_needed(
    state: &AppState,
    identity: &Identity,
    action: &str,
) -> Result<bool> {
    let window = state.config.second_factor.reauthentication_window.as_secs();
    let proved = identity.session.identity_at > 0
        && now().saturating_sub(identity.session.identity_at) < window;
    Ok(ENROLMENTS.contains(&action)
        && state.config.second_factor.verify_identity_by_email
        && state.mailer.enabled()
        && !identity.user.email.is_empty()
        && !proved
        && !mfa::has_second_factor(state.store.as_ref(), &identity.user.username).await?)
}

/// The "confirm it is you" page, which replays `req`'s form once the code is right.
/// Where the identity check stands.
pub(super) enum IdentityStep {
    /// Nothing sent (yet, or now: the note says why).
    Ask(Option<String>),
    /// A code was sent (or one is outstanding); a note to show, if any.
    Sent(Option<String>),
    /// The code entered was wrong, expired or used up.
    Wrong,
}

pub(super) fn identity_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    next: &str,
    step: IdentityStep,
) -> Response {
    let replay = replay_fields(req);
    let masked = crate::notify::email::mask(&identity.user.email);
    let (sent, error, status) = match step {
        IdentityStep::Ask(note) => (false, note, StatusCode::OK),
        IdentityStep::Sent(note) => (true, note, StatusCode::OK),
        IdentityStep::Wrong => (
            true,
            Some(t.identity_wrong.to_string()),
            StatusCode::UNAUTHORIZED,
        ),
    };
    let intro = fill(
        if sent {
            t.identity_sent
        } else {
            t.identity_intro
        },
        masked,
    );
    let csrf = csrf_for(state, req);
    let page = ConfirmIdentityPage {
        t,
        title: t.identity_title,
        mount: req.mount,
        csrf: &csrf.token,
        next,
        replay,
        intro,
        sent,
        error,
    };
    csrf.attach(html(status, render(&page)))
}

/// For the identity check's own forms: the signed-in identity (CSRF checked) and the
/// change waiting for it, or the response to send instead.
pub(super) async fn identity_step(
    state: &AppState,
    req: &Request,
) -> Result<Result<(Box<Identity>, String), Response>> {
    let identity = match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => return Ok(Err(response)),
        Gate::Established(identity) => identity,
    };
    check_csrf(state, req)?;
    Ok(req
        .form()
        .get("next")
        .filter(|n| ENROLMENTS.contains(n))
        .map(|next| (identity, next.to_string()))
        .ok_or_else(|| done(req, "")))
}

/// The "confirm it is you" page in front of `next`, before any code was sent.
pub(super) fn ask_identity(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    next: &str,
) -> Response {
    identity_page(state, req, t, identity, next, IdentityStep::Ask(None))
}

/// `POST /settings/identity/send`: mails the identity code.
pub async fn identity_send(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let (identity, next) = match identity_step(state, req).await? {
        Ok(found) => found,
        Err(response) => return Ok(response),
    };
    let step = match email::send_code(state, &identity.user, email::Purpose::Identity, t, now())
        .await?
    {
        email::SendOutcome::Sent { .. } => IdentityStep::Sent(None),
        email::SendOutcome::Cooldown(wait) => IdentityStep::Sent(Some(fill(t.identity_wait, wait))),
        email::SendOutcome::HourlyCap => IdentityStep::Ask(Some(t.email_hourly_cap.to_string())),
        email::SendOutcome::NoAddress => IdentityStep::Ask(Some(t.email_not_sent.to_string())),
    };
    audit!(
        "identity_code_requested",
        user = identity.user.username,
        ip = req.ip_text()
    );
    Ok(identity_page(state, req, t, &identity, &next, step))
}

/// `POST /settings/identity/verify`: checks the identity code, then sends the browser
/// back to re-submit the change it wanted (307 keeps method and body).
pub async fn identity_verify(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
) -> Result<Response> {
    let (identity, next) = match identity_step(state, req).await? {
        Ok(found) => found,
        Err(response) => return Ok(response),
    };
    let form = req.form();
    let code = form.get("identity_code").unwrap_or("");
    let username = &identity.user.username;
    match email::check(state, username, code, email::Purpose::Identity, now()).await? {
        mfa::CodeResult::Accepted => {
            state
                .sessions
                .identity_proved(&identity.session, now())
                .await?;
            audit!("identity_proved", user = username, ip = req.ip_text());
            if NOT_REPLAYED.contains(&next.as_str()) {
                return Ok(done(req, "identity"));
            }
            Ok(redirect(
                StatusCode::TEMPORARY_REDIRECT,
                &format!("{}{next}", req.mount),
            ))
        }
        _ => {
            audit!("identity_code_failed", user = username, ip = req.ip_text());
            Ok(identity_page(
                state,
                req,
                t,
                &identity,
                &next,
                IdentityStep::Wrong,
            ))
        }
    }
}
