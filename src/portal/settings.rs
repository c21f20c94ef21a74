//! The Security settings page, for the signed-in user's own account: authenticator app,
//! backup codes, sessions, password.
//!
//! Every change is a POST behind CSRF protection. Changes also need the password to
//! have been entered within `second_factor.reauthentication_window`; when it was not,
//! the user gets a "confirm your password" page that, once answered, replays the same
//! form (HTTP 307 keeps the method and body). Turning off the last factor always asks
//! for the password in the form itself.

use base64::Engine;
use http::StatusCode;

use crate::audit;
use crate::auth::limiter::{login_keys, user_key};
use crate::auth::session::Identity;
use crate::auth::session::{end_sessions, Sessions};
use crate::basics::now;
use crate::error::{Error, Result};
use crate::http::{add_cookie, html, redirect, Request, Response};
use crate::mfa::{self, backup, email, totp, webauthn, Factor};
use crate::notify::email::{Delivery, Letter};
use crate::portal::common::{
    attempt_failed, begin_attempt, check_csrf, csrf_for, established, onwards, rd_query, Gate,
};
use crate::portal::pages::{
    render, BackupCodesPage, ConfirmIdentityPage, ConfirmPasswordPage, DeviceRow, EmailConfirmPage,
    SessionRow, SettingsPage, TelegramLink, TelegramRow, TotpEnrollPage,
};
use crate::state::AppState;
use crate::store::AuthLevel;
use crate::texts::{banned_message, fill, Texts};
use crate::texts::{describe_device, format_time};

/// The setting changes that may be replayed after a password confirmation.
const REPLAYABLE: &[&str] = &[
    "/settings/phone/add",
    "/settings/phone/confirm",
    "/settings/phone/remove",
    "/settings/email/start",
    "/settings/email/confirm",
    "/settings/email/disable",
    "/settings/totp/start",
    "/settings/totp/confirm",
    "/settings/backup/regenerate",
    "/settings/sessions/end",
    "/settings/sessions/end-others",
    "/settings/totp/disable",
    "/settings/webauthn/add",
    "/settings/webauthn/finish",
    "/settings/webauthn/passwordless",
    "/settings/webauthn/delete",
    "/settings/telegram/link",
    "/settings/telegram/enable",
    "/settings/telegram/disable",
    "/settings/telegram/remove",
];

static COMMON_PASSWORDS: &str = include_str!("../../assets/common-passwords.txt");

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
        Some(fill(t.password_too_short, min))
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

fn notice_text(t: &'static Texts, key: &str) -> Option<&'static str> {
    Some(match key {
        "password" => t.done_password,
        "totp_on" => t.done_totp_on,
        "totp_off" => t.done_totp_off,
        "email_on" => t.done_email_on,
        "email_off" => t.done_email_off,
        "address" => t.done_address,
        "number_added" => t.done_number_added,
        "number_removed" => t.done_number_removed,
        "2fa_off" => t.done_2fa_off,
        "session_ended" => t.done_session_ended,
        "others_ended" => t.done_others_ended,
        "two_factor_needed" => t.two_factor_needed,
        "webauthn_added" => t.passkeys.done_added,
        "webauthn_deleted" => t.passkeys.done_deleted,
        "passwordless_on" => t.passkeys.done_passwordless_on,
        "passwordless_off" => t.passkeys.done_passwordless_off,
        "telegram_on" => t.telegram.done_on,
        "telegram_off" => t.telegram.done_off,
        "telegram_linked" => t.telegram.done_linked,
        "telegram_removed" => t.telegram.done_removed,
        "identity" => t.identity_done,
        _ => return None,
    })
}

pub(crate) fn settings_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    status: StatusCode,
    error: Option<String>,
) -> Result<Response> {
    settings_page_with(state, req, t, identity, status, error, None)
}

/// The settings page, with the Telegram section showing a fresh deep link when given.
pub(crate) fn settings_page_with(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    status: StatusCode,
    error: Option<String>,
    telegram_link: Option<TelegramLink>,
) -> Result<Response> {
    let username = &identity.user.username;
    let rd = req.query_param("rd").unwrap_or_default();
    let factors = mfa::enabled_factors(state.store.as_ref(), username)?;
    let totp_on = factors.contains(&Factor::Totp);
    let email_on = factors.contains(&Factor::Email);
    let mut notice = req.query_param("done").and_then(|k| notice_text(t, &k));
    if notice.is_none() && !rd.is_empty() && factors.is_empty() {
        notice = Some(t.two_factor_needed);
    }
    let mut sessions = state.store.sessions_of(username)?;
    sessions.sort_by_key(|s| std::cmp::Reverse(s.last_seen));
    let rows = sessions
        .iter()
        .filter(|s| s.level >= AuthLevel::OneFactor || s.id == identity.session.id)
        .map(|s| SessionRow {
            id: s.id.clone(),
            device: describe_device(&s.user_agent),
            ip: s.ip.clone(),
            created: format_time(s.created_at),
            last_seen: format_time(s.last_seen),
            current: s.id == identity.session.id,
        })
        .collect();
    let continue_to = (!rd.is_empty() && !factors.is_empty()).then(|| onwards(state, &rd));
    let devices = webauthn::devices(state.store.as_ref(), username)?;
    let telegram_accounts = crate::mfa::telegram::accounts(state.store.as_ref(), username)?;
    let device_is_last = devices.len() == 1 && factors == [Factor::Webauthn];
    let device_rows = devices
        .into_iter()
        .map(|d| DeviceRow {
            key: d.key,
            added: format_time(d.added_at),
            last_used: d.last_used.map(format_time),
            passwordless: d.passwordless,
            not_discoverable: d.discoverable == Some(false),
            delete_confirm: fill(t.passkeys.delete_confirm, &d.name),
            name: d.name,
        })
        .collect();
    let form = req.form();
    let device_name = if req.path == "/settings/webauthn/add" {
        form.get("name").unwrap_or("")
    } else {
        ""
    };
    let csrf = csrf_for(state, req);
    let page = SettingsPage {
        t,
        title: t.settings_title,
        mount: req.mount,
        csrf: &csrf.token,
        rd: &rd,
        username,
        notice,
        error,
        continue_to,
        telegram_available: state.telegram.is_some(),
        telegram_link,
        telegram_on: factors.contains(&Factor::Telegram),
        telegram_is_last: factors == [Factor::Telegram] && telegram_accounts.len() == 1,
        telegram_only: factors == [Factor::Telegram],
        telegram_accounts: telegram_accounts
            .into_iter()
            .map(|a| TelegramRow {
                id: a.telegram_id,
                linked: format_time(a.linked_at),
                remove_confirm: fill(t.telegram.remove_confirm, a.label()),
                label: a.label(),
            })
            .collect(),
        passkeys_available: state.webauthn.is_some(),
        devices: device_rows,
        device_is_last,
        device_name,
        device_name_max: webauthn::NAME_MAX,
        totp_on,
        totp_is_last: totp_on && factors.len() == 1,
        email_on,
        email_is_last: email_on && factors.len() == 1,
        has_email: !identity.user.email.is_empty(),
        email_address: &identity.user.email,
        phone_enabled: state.phone.is_some(),
        phone_numbers: crate::mfa::phone::numbers(state.store.as_ref(), username)?
            .into_iter()
            .map(|n| (n.number, n.confirmed))
            .collect(),
        mail_enabled: state.mailer.enabled(),
        two_factor_on: !factors.is_empty(),
        backup_left: backup::remaining(state.store.as_ref(), username)?,
        sessions: rows,
        min_length: state.config.password.min_length,
    };
    Ok(csrf.attach(html(status, render(&page))))
}

pub(crate) fn done(req: &Request, key: &str) -> Response {
    redirect(
        StatusCode::SEE_OTHER,
        &format!("{}/settings?done={key}", req.mount),
    )
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
    let attempt = match begin_attempt(state, &keys) {
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
        return Ok(match attempt.succeeded(&[user_key(username)], now()) {
            Ok(()) => PasswordCheck::Right,
            Err(left) => {
                PasswordCheck::Wrong(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left))
            }
        });
    }
    audit!(event, user = username, ip = ip);
    Ok(match attempt_failed(state, attempt, &keys, &ip) {
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
            settings_page(state, req, t, identity, status, Some(message)).map(Some)
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

/// `GET /settings`.
pub fn page(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    match established(state, req, "/settings")? {
        Gate::Elsewhere(response) => Ok(response),
        Gate::Established(identity) => {
            settings_page(state, req, t, &identity, StatusCode::OK, None)
        }
    }
}

/// The "confirm your password" page that replays `req`'s form afterwards.
fn confirm_page(
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
fn replay_fields(req: &Request) -> Vec<(String, String)> {
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
    let identity = match established(state, req, "/settings")? {
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
        .password_confirmed(&identity.session, now())?;
    Ok(redirect(
        StatusCode::TEMPORARY_REDIRECT,
        &format!("{}{next}", req.mount),
    ))
}

/// The changes that add a second factor, or a way back into the account: before the
/// account's first second factor, the user proves control of its email address (the
/// password alone must not be enough to enrol a thief's own authenticator, to move the
/// address to the thief's mailbox first, or to plant a recovery phone number).
const ENROLMENTS: &[&str] = &[
    "/settings/totp/start",
    "/settings/totp/confirm",
    "/settings/webauthn/add",
    "/settings/webauthn/finish",
    "/settings/telegram/link",
    "/settings/telegram/enable",
    "/settings/phone/add",
    "/settings/phone/confirm",
    "/settings/address/start",
    "/settings/address/confirm",
];

/// Of [`ENROLMENTS`], the forms that carry a password: not replayed after the identity
/// check (the password is never put back into a page); the user submits them again.
const NOT_REPLAYED: &[&str] = &["/settings/address/start"];

/// Whether `action` must wait for the emailed identity check.
fn identity_check_needed(state: &AppState, identity: &Identity, action: &str) -> Result<bool> {
    let window = state.config.second_factor.reauthentication_window.as_secs();
    let proved = identity.session.identity_at > 0
        && now().saturating_sub(identity.session.identity_at) < window;
    Ok(ENROLMENTS.contains(&action)
        && state.config.second_factor.verify_identity_by_email
        && state.mailer.enabled()
        && !identity.user.email.is_empty()
        && !proved
        && !mfa::has_second_factor(state.store.as_ref(), &identity.user.username)?)
}

/// The "confirm it is you" page, which replays `req`'s form once the code is right.
/// Where the identity check stands.
enum IdentityStep {
    /// Nothing sent (yet, or now: the note says why).
    Ask(Option<String>),
    /// A code was sent (or one is outstanding); a note to show, if any.
    Sent(Option<String>),
    /// The code entered was wrong, expired or used up.
    Wrong,
}

fn identity_page(
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
fn identity_step(
    state: &AppState,
    req: &Request,
) -> Result<Result<(Box<Identity>, String), Response>> {
    let identity = match established(state, req, "/settings")? {
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
fn ask_identity(
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
    let (identity, next) = match identity_step(state, req)? {
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
pub fn identity_verify(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let (identity, next) = match identity_step(state, req)? {
        Ok(found) => found,
        Err(response) => return Ok(response),
    };
    let form = req.form();
    let code = form.get("identity_code").unwrap_or("");
    let username = &identity.user.username;
    match email::check(state, username, code, email::Purpose::Identity, now())? {
        mfa::CodeResult::Accepted => {
            state.sessions.identity_proved(&identity.session, now())?;
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

/// For a change: the signed-in identity with a valid CSRF token and a fresh password,
/// or the response to send instead.
pub(crate) fn authorise_change(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    action: &str,
) -> Result<Result<Box<Identity>, Response>> {
    let identity = match established(state, req, "/settings")? {
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
    if identity_check_needed(state, &identity, action)? {
        return Ok(Err(ask_identity(state, req, t, &identity, action)));
    }
    Ok(Ok(identity))
}

/// The identity for a settings change, or an early return with the response to send.
macro_rules! change {
    ($state:expr, $req:expr, $t:expr, $action:expr) => {
        match authorise_change($state, $req, $t, $action)? {
            Ok(identity) => identity,
            Err(response) => return Ok(response),
        }
    };
}
pub(crate) use change;

/// A QR code of `text` as an SVG `data:` URI.
pub(crate) fn qr_data_uri(text: &str) -> String {
    let svg = qrcode::QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default();
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

fn enroll_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    enrollment: &totp::Enrollment,
    status: StatusCode,
    error: Option<String>,
    hint: Option<&'static str>,
) -> Response {
    let rd = req
        .form()
        .get("rd")
        .map(str::to_string)
        .or_else(|| req.query_param("rd"))
        .unwrap_or_default();
    let csrf = csrf_for(state, req);
    let grouped = enrollment
        .secret_base32
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let page = TotpEnrollPage {
        t,
        title: t.totp_enroll_title,
        mount: req.mount,
        csrf: &csrf.token,
        rd: &rd,
        uri: &enrollment.uri,
        qr: qr_data_uri(&enrollment.uri),
        secret: grouped,
        error,
        hint,
    };
    csrf.attach(html(status, render(&page)))
}

/// `POST /settings/totp/start`: a new secret, then (by redirect) the enrolment page.
pub fn totp_start(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/totp/start");
    if totp::is_enabled(state.store.as_ref(), &identity.user.username)? {
        return Ok(done(req, "totp_on"));
    }
    totp::enroll_start(state, &identity.user.username, now())?;
    let rd = req.form().get("rd").unwrap_or("").to_string();
    Ok(redirect(
        StatusCode::SEE_OTHER,
        &format!("{}/settings/totp{}", req.mount, rd_query(&rd)),
    ))
}

/// `GET /settings/totp`: the pending enrolment (same secret), if any.
pub fn totp_page(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = match established(state, req, "/settings")? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    match totp::pending_enrollment(state, &identity.user.username)? {
        Some(enrollment) => Ok(enroll_page(
            state,
            req,
            t,
            &enrollment,
            StatusCode::OK,
            None,
            None,
        )),
        None => Ok(done(req, "")),
    }
}

/// Shows freshly made backup codes once.
pub(crate) fn show_codes(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    codes: &[String],
    notice: Option<&'static str>,
    next: String,
) -> Response {
    let text = codes.join("\n") + "\n";
    let download = format!(
        "data:text/plain;charset=utf-8;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(text)
    );
    let page = BackupCodesPage {
        t,
        title: t.backup_show_title,
        mount: req.mount,
        codes: codes.to_vec(),
        download,
        next,
        notice,
    };
    csrf_for(state, req).attach(html(StatusCode::OK, render(&page)))
}

/// `POST /settings/totp/confirm`: a correct code turns the app on.
pub fn totp_confirm(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/totp/confirm");
    let username = identity.user.username.clone();
    let was_first = !mfa::has_second_factor(state.store.as_ref(), &username)?;
    let code = req.form().get("code").unwrap_or("").to_string();
    let Some(enrollment) = totp::pending_enrollment(state, &username)? else {
        return Ok(done(req, ""));
    };
    let (error, hint) = match totp::enroll_finish(state, &username, &code, now())? {
        totp::CodeCheck::Valid { .. } => {
            return enabled(state, req, t, &identity, Factor::Totp, was_first, "totp_on")
        }
        totp::CodeCheck::ClockOff { steps } => {
            let minutes = (steps.unsigned_abs() * totp::STEP).div_ceil(60).max(1);
            (
                fill(
                    if steps > 0 {
                        t.clock_ahead
                    } else {
                        t.clock_behind
                    },
                    minutes,
                ),
                Some(t.clock_fix),
            )
        }
        totp::CodeCheck::Replayed => (t.replayed_code.to_string(), None),
        totp::CodeCheck::Invalid => (t.wrong_code.to_string(), None),
    };
    audit!(
        "totp_enrollment_code_wrong",
        user = username,
        ip = req.ip_text()
    );
    Ok(enroll_page(
        state,
        req,
        t,
        &enrollment,
        StatusCode::BAD_REQUEST,
        Some(error),
        hint,
    ))
}

/// `POST /settings/<factor>/disable`: when it is the last factor, the password is
/// required in the form whatever the reauthentication window.
pub async fn factor_disable(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    factor: Factor,
) -> Result<Response> {
    let action = format!("/settings/{}/disable", factor.id());
    let identity = change!(state, req, t, &action);
    let username = identity.user.username.clone();
    let factors = mfa::enabled_factors(state.store.as_ref(), &username)?;
    let off_key = format!("{}_off", factor.id());
    if !factors.contains(&factor) {
        return Ok(done(req, &off_key));
    }
    let last = factors.len() == 1;
    if last {
        if let Some(wrong) = password_in_form(state, req, t, &identity).await? {
            return Ok(wrong);
        }
    }
    mfa::disable_factor(state, &username, factor, "user")?;
    if last {
        notice(state, &identity.user, t, t.notice_2fa_off);
    }
    Ok(done(req, if last { "2fa_off" } else { &off_key }))
}

/// `POST /settings/email/start`: mails a code to the account's address.
pub async fn email_start(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/email/start");
    if email::is_enabled(state.store.as_ref(), &identity.user.username)? {
        return Ok(done(req, "email_on"));
    }
    let (info, error) =
        match email::send_code(state, &identity.user, email::Purpose::Confirm, t, now()).await? {
            email::SendOutcome::NoAddress => {
                return settings_page(
                    state,
                    req,
                    t,
                    &identity,
                    StatusCode::BAD_REQUEST,
                    Some(t.email_no_address.into()),
                )
            }
            email::SendOutcome::Sent {
                delivery: Delivery::Failed | Delivery::Disabled,
                ..
            } => (None, Some(t.email_not_sent.to_string())),
            email::SendOutcome::Sent { to, .. } => (Some(fill(t.email_sent_to, to)), None),
            email::SendOutcome::Cooldown(secs) => (None, Some(fill(t.email_cooldown, secs))),
            email::SendOutcome::HourlyCap => (None, Some(t.email_hourly_cap.to_string())),
        };
    Ok(code_page(
        state,
        req,
        t,
        CodeFor::EnableEmail,
        StatusCode::OK,
        info,
        error,
    ))
}

/// What an emailed code on the settings pages is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CodeFor {
    EnableEmail,
    NewAddress,
    Phone,
}

/// The code page again after a wrong or dead code.
fn code_retry(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    purpose: CodeFor,
    result: mfa::CodeResult,
) -> Response {
    let text = if result == mfa::CodeResult::Dead {
        t.email_code_dead
    } else {
        t.wrong_code
    };
    code_page(
        state,
        req,
        t,
        purpose,
        StatusCode::BAD_REQUEST,
        None,
        Some(text.into()),
    )
}

fn code_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    purpose: CodeFor,
    status: StatusCode,
    info: Option<String>,
    error: Option<String>,
) -> Response {
    let rd = req.form().get("rd").unwrap_or("").to_string();
    let csrf = csrf_for(state, req);
    let (title, action, resend) = match purpose {
        CodeFor::EnableEmail => (t.email_confirm_title, "/settings/email/confirm", true),
        CodeFor::NewAddress => (t.address_code_title, "/settings/address/confirm", false),
        CodeFor::Phone => (t.number_code_title, "/settings/phone/confirm", false),
    };
    let page = EmailConfirmPage {
        t,
        title,
        mount: req.mount,
        csrf: &csrf.token,
        rd: &rd,
        action,
        resend,
        info,
        error,
    };
    csrf.attach(html(status, render(&page)))
}

/// `POST /settings/email/confirm`: the right code turns email codes on.
pub fn email_confirm(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/email/confirm");
    let username = identity.user.username.clone();
    let was_first = !mfa::has_second_factor(state.store.as_ref(), &username)?;
    let code = req.form().get("code").unwrap_or("").to_string();
    match email::check(state, &username, &code, email::Purpose::Confirm, now())? {
        email::CodeResult::Accepted => enabled(
            state,
            req,
            t,
            &identity,
            Factor::Email,
            was_first,
            "email_on",
        ),
        other => Ok(code_retry(state, req, t, CodeFor::EnableEmail, other)),
    }
}

/// `POST /settings/address/start`: the password and a new address; a code goes to it.
pub async fn address_start(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = match established(state, req, "/settings")? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    check_csrf(state, req)?;
    let form = req.form();
    let new = form.get("new_address").unwrap_or("").trim().to_string();
    if !crate::notify::email::valid_address(&new) || new.chars().any(|c| c.is_control() || c == ',')
    {
        return settings_page(
            state,
            req,
            t,
            &identity,
            StatusCode::BAD_REQUEST,
            Some(t.address_invalid.into()),
        );
    }
    if identity_check_needed(state, &identity, "/settings/address/start")? {
        return Ok(ask_identity(
            state,
            req,
            t,
            &identity,
            "/settings/address/start",
        ));
    }
    let password = form.get("password").unwrap_or("").to_string();
    if let Some(wrong) = wrong_password(
        state,
        req,
        t,
        &identity,
        password,
        "password_confirmation_failed",
    )
    .await?
    {
        return Ok(wrong);
    }
    state
        .sessions
        .password_confirmed(&identity.session, now())?;
    let (info, error) = match email::send_code_to(
        state,
        &identity.user,
        &new,
        email::Purpose::NewAddress,
        t,
        now(),
    )
    .await?
    {
        email::SendOutcome::Sent {
            delivery: Delivery::Failed | Delivery::Disabled,
            ..
        }
        | email::SendOutcome::NoAddress => (None, Some(t.email_not_sent.to_string())),
        email::SendOutcome::Sent { to, .. } => (Some(fill(t.email_sent_to, to)), None),
        email::SendOutcome::Cooldown(secs) => (None, Some(fill(t.email_cooldown, secs))),
        email::SendOutcome::HourlyCap => (None, Some(t.email_hourly_cap.to_string())),
    };
    Ok(code_page(
        state,
        req,
        t,
        CodeFor::NewAddress,
        StatusCode::OK,
        info,
        error,
    ))
}

/// `POST /settings/address/confirm`: the right code makes the new address the account's;
/// the old one is told.
pub fn address_confirm(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = match established(state, req, "/settings")? {
        Gate::Elsewhere(response) => return Ok(response),
        Gate::Established(identity) => identity,
    };
    check_csrf(state, req)?;
    if identity_check_needed(state, &identity, "/settings/address/confirm")? {
        return Ok(ask_identity(
            state,
            req,
            t,
            &identity,
            "/settings/address/confirm",
        ));
    }
    let username = identity.user.username.clone();
    let Some(new) = email::pending_new_address(state.store.as_ref(), &username)? else {
        return Ok(done(req, ""));
    };
    let code = req.form().get("code").unwrap_or("").to_string();
    match email::check(state, &username, &code, email::Purpose::NewAddress, now())? {
        email::CodeResult::Accepted => {
            let old = identity.user.email.clone();
            if state
                .store
                .update_user(&username, &mut |u| u.email = new.clone())?
                .is_none()
            {
                return Err(Error::SessionEnded);
            }
            audit!("email_address_changed", user = username, ip = req.ip_text());
            state.mailer.send_later(
                &old,
                Letter {
                    t,
                    subject: t.notice_subject.into(),
                    lines: vec![
                        fill(t.notice_address_changed, crate::notify::email::mask(&new)),
                        t.notice_not_you.into(),
                    ],
                    code: None,
                    link: None,
                },
            );
            Ok(done(req, "address"))
        }
        other => Ok(code_retry(state, req, t, CodeFor::NewAddress, other)),
    }
}

/// `POST /settings/phone/add`: texts a code to a new number.
pub async fn phone_add(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/phone/add");
    let text = req.form().get("number").unwrap_or("").to_string();
    match crate::mfa::phone::add_number(
        state,
        &identity.user,
        &text,
        t.number_sms_text,
        &req.ip_text(),
        now(),
    )
    .await?
    {
        Ok(number) => Ok(code_page(
            state,
            req,
            t,
            CodeFor::Phone,
            StatusCode::OK,
            Some(fill(t.number_code_sent, crate::phone_number::mask(&number))),
            None,
        )),
        Err(refusal) => {
            let text = match refusal {
                crate::mfa::phone::Refusal::Invalid => t.number_invalid,
                crate::mfa::phone::Refusal::Taken => t.number_taken,
                crate::mfa::phone::Refusal::Limited => t.phone_limited,
                crate::mfa::phone::Refusal::Failed => t.phone_failed,
            };
            settings_page(
                state,
                req,
                t,
                &identity,
                StatusCode::BAD_REQUEST,
                Some(text.into()),
            )
        }
    }
}

/// `POST /settings/phone/confirm`: the SMS code makes the number count.
pub fn phone_confirm(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/phone/confirm");
    let code = req.form().get("code").unwrap_or("").to_string();
    match crate::mfa::phone::confirm_number(state, &identity.user.username, &code, now())? {
        Ok(crate::mfa::phone::CodeResult::Accepted) => Ok(done(req, "number_added")),
        Ok(other) => Ok(code_retry(state, req, t, CodeFor::Phone, other)),
        Err(_) => settings_page(
            state,
            req,
            t,
            &identity,
            StatusCode::CONFLICT,
            Some(t.number_taken.into()),
        ),
    }
}

/// `POST /settings/phone/remove`.
pub fn phone_remove(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/phone/remove");
    let number = req.form().get("number").unwrap_or("").to_string();
    crate::mfa::phone::remove_number(state, &identity.user.username, &number)?;
    Ok(done(req, "number_removed"))
}

/// After a factor was turned on from this session: raise the session, apply the
/// first-factor rules, show the backup codes once when they are new.
pub(crate) fn enabled(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    identity: &Identity,
    factor: Factor,
    was_first: bool,
    done_key: &str,
) -> Result<Response> {
    crate::crash::point("factor-saved");
    let session = state
        .sessions
        .upgrade(&identity.session, AuthLevel::TwoFactor, now())?;
    let codes = mfa::factor_enabled(
        state,
        &identity.user.username,
        factor,
        Some(&session),
        was_first,
        now(),
    )?;
    let rd = req.form().get("rd").unwrap_or("").to_string();
    let next = if rd.is_empty() {
        format!("{}/settings?done={done_key}", req.mount)
    } else {
        onwards(state, &rd)
    };
    let done_text = notice_text(t, done_key);
    let mut response = match codes {
        Some(codes) => {
            notice(state, &identity.user, t, t.notice_2fa_on);
            show_codes(state, req, t, &codes, done_text, next)
        }
        None => redirect(StatusCode::SEE_OTHER, &next),
    };
    add_cookie(&mut response, &state.sessions.set_cookie(&session));
    Ok(response)
}

/// Sends the user a security notice (see [`mfa::security_notice`]).
pub fn notice(state: &AppState, user: &crate::store::User, t: &'static Texts, line: &str) {
    mfa::security_notice(
        state.store.as_ref(),
        &state.mailer,
        state.telegram.as_ref(),
        user,
        t,
        line,
    );
}

/// `POST /settings/backup/regenerate`: a new set; the old codes stop working.
pub fn backup_regenerate(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/backup/regenerate");
    let username = &identity.user.username;
    if !mfa::has_second_factor(state.store.as_ref(), username)? {
        return Ok(done(req, ""));
    }
    let codes = backup::generate(state, username, now())?;
    notice(state, &identity.user, t, t.notice_backup);
    audit!(
        "backup_codes_generated",
        user = username,
        count = codes.len(),
        by = "user"
    );
    Ok(show_codes(
        state,
        req,
        t,
        &codes,
        None,
        format!("{}/settings", req.mount),
    ))
}

/// `POST /settings/sessions/end`: ends one of the user's other sessions.
pub fn session_end(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/sessions/end");
    let id = req.form().get("id").unwrap_or("").to_string();
    let owned = state
        .store
        .sessions_of(&identity.user.username)?
        .iter()
        .any(|s| s.id == id);
    if owned && id != identity.session.id {
        state.store.delete_session(&id)?;
        audit!(
            "session_ended",
            user = identity.user.username,
            session = id.get(..8).unwrap_or(""),
            by = "user"
        );
    }
    Ok(done(req, "session_ended"))
}

/// `POST /settings/sessions/end-others`.
pub fn sessions_end_others(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, "/settings/sessions/end-others");
    let (_, _, ended) = end_sessions(
        state.store.as_ref(),
        &identity.user.username,
        Some(&identity.session),
        &mut |_| {},
    )?
    .ok_or(Error::SessionEnded)?;
    audit!(
        "sessions_ended",
        user = identity.user.username,
        count = ended,
        by = "user"
    );
    Ok(done(req, "others_ended"))
}

/// `POST /settings/password`: current password, new one twice.
pub async fn password_change(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
) -> Result<Response> {
    let identity = match established(state, req, "/settings")? {
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
        );
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
        &mut |u| u.password_hash = hash.clone(),
    )?
    .ok_or(Error::SessionEnded)?;
    crate::crash::point("password-changed");
    let kept = kept.ok_or(Error::SessionEnded)?;
    state.sessions.password_confirmed(&kept, now())?;
    audit!(
        "password_changed",
        user = user.username,
        by = "user",
        sessions_ended = ended
    );
    Ok(done(req, "password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_recognised_in_any_case() {
        assert!(is_common_password("Password123"));
        assert!(is_common_password("qwerty"));
        assert!(!is_common_password("correct horse battery"));
    }

    #[test]
    fn devices_are_described_from_user_agents() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
        assert_eq!(describe_device(firefox), "Firefox 120 on Linux");
        assert_eq!(describe_device(""), "Unknown device");
    }

    #[test]
    fn times_are_shown_to_the_minute_in_utc() {
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}
