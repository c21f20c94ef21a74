//! "Confirm your password" before a change: which changes may be replayed after it, the
//! page, and the check every change goes through ([`authorise_change`], [`change!`]).

use super::*;

/// The setting changes that may be replayed after a password confirmation.
pub(super) const REPLAYABLE: &[&str] = &[
    routes::SETTINGS_PHONE_ADD,
    routes::SETTINGS_PHONE_CONFIRM,
    routes::SETTINGS_PHONE_REMOVE,
    routes::SETTINGS_EMAIL_START,
    routes::SETTINGS_EMAIL_CONFIRM,
    routes::SETTINGS_EMAIL_DISABLE,
    routes::SETTINGS_TOTP_START,
    routes::SETTINGS_TOTP_CONFIRM,
    routes::SETTINGS_BACKUP_REGENERATE,
    routes::SETTINGS_SESSIONS_END,
    routes::SETTINGS_SESSIONS_END_OTHERS,
    routes::SETTINGS_DEVICES_FORGET,
    routes::SETTINGS_DEVICES_FORGET_ALL,
    routes::SETTINGS_TOTP_DISABLE,
    routes::SETTINGS_WEBAUTHN_ADD,
    routes::SETTINGS_WEBAUTHN_FINISH,
    routes::SETTINGS_WEBAUTHN_PASSWORDLESS,
    routes::SETTINGS_WEBAUTHN_DELETE,
    routes::SETTINGS_TELEGRAM_LINK,
    routes::SETTINGS_TELEGRAM_ENABLE,
    routes::SETTINGS_TELEGRAM_DISABLE,
    routes::SETTINGS_TELEGRAM_REMOVE,
];

/// The "confirm your password" page that replays `req`'s form afterwards.
pub(super) fn confirm_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    error: Option<String>,
    next: &str,
) -> Response {
    let replay = replay_fields(req);
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let csrf = csrf_for(state, req);
    let page = ConfirmPasswordPage {
        t,
        title: t.confirm_title,
        mount: req.mount,
        csrf: &csrf.token,
        next,
        replay,
        error,
    };
    csrf.attach(html(status, render(&page)))
}

/// The fields of the change a confirmation page carries on to replay it: never the
/// page's own fields, and never a password (it is not put back into a page).
pub(super) fn replay_fields(req: &Request) -> Vec<(String, String)> {
    req.form()
        .fields()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "csrf" | "next" | "identity_code" | "password" | "confirm_password"
            )
        })
        .cloned()
        .collect()
}

/// `POST /settings/confirm`: checks the password, then sends the browser back to
/// re-submit the change it wanted (307 keeps method and body).
pub async fn confirm(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    check_csrf(state, req)?;
    let form = req.form();
    let Some(next) = form
        .get("next")
        .filter(|n| REPLAYABLE.contains(n))
        .map(str::to_string)
    else {
        return Ok(done(req, ""));
    };
    let password = form.get("confirm_password").unwrap_or("").to_string();
    if let PasswordCheck::Wrong(_, message) = check_password(
        state,
        req,
        t,
        &identity,
        password,
        "password_confirmation_failed",
    )
    .await?
    {
        return Ok(confirm_page(state, req, t, Some(message), &next));
    }
    state
        .sessions
        .password_confirmed(&identity.session, now())
        .await?;
    Ok(redirect(
        StatusCode::TEMPORARY_REDIRECT,
        &format!("{}{next}", req.mount),
    ))
}

/// For a change: the signed-in identity with a valid CSRF token and a fresh password,
/// or the response to send instead.
pub(crate) async fn authorise_change(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    action: &str,
) -> Result<Result<Box<Identity>, Response>> {
    let identity = match established(state, req, routes::SETTINGS).await? {
        Gate::Elsewhere(response) => return Ok(Err(response)),
        Gate::Established(identity) => identity,
    };
    check_csrf(state, req)?;
    if !Sessions::password_is_fresh(
        &identity.session,
        state.config.second_factor.reauthentication_window,
        now(),
    ) {
        return Ok(Err(confirm_page(state, req, t, None, action)));
    }
    if identity_check_needed(state, &identity, action).await? {
        return Ok(Err(ask_identity(state, req, t, &identity, action)));
    }
    Ok(Ok(identity))
}
