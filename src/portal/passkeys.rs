//! Passkey and security key pages: adding, switching and deleting devices in the
//! settings, and "sign in with a passkey" on the login page. (The second step's passkey
//! method goes through the ordinary `POST /2fa`.)
//!
//! Every ceremony is started by the server, stored with a short lifetime and bound to the
//! session (settings) or, before login, to the browser's CSRF cookie plus a one-time id;
//! the browser's answer is posted back as JSON in a form field.

use http::StatusCode;

use crate::audit;
use crate::auth::limiter::{login_keys, user_key};
use crate::auth::session::cookie_value;
use crate::basics::now;
use crate::error::{Error, Result};
use crate::http::{add_cookie, html, json, redirect, Request, Response};
use crate::mfa::webauthn::{self, NameProblem, Refusal};
use crate::mfa::{self, Factor};
use crate::portal::common::{check_csrf, count_failure, csrf_for, onwards};
use crate::portal::login::{login_page, LoginView};
use crate::portal::pages::{render, WebauthnRegisterPage};
use crate::portal::routes;
use crate::portal::settings::{
    authorise_change, change, done, enabled, notice, password_in_form, settings_page,
};
use crate::state::AppState;
use crate::store::AuthLevel;
use crate::texts::{banned_message, fill, Texts};

/// The message for a refused ceremony answer.
pub fn refusal_text(t: &'static Texts, refusal: Refusal) -> &'static str {
    let p = t.passkeys;
    match refusal {
        Refusal::Expired => p.err_expired,
        Refusal::Malformed | Refusal::Invalid => p.err_invalid,
        Refusal::UnknownCredential => p.err_unknown,
        Refusal::NotPasswordless => p.err_not_passwordless,
        Refusal::NotVerified => p.err_not_verified,
        Refusal::ClonedKey => p.err_cloned,
        Refusal::AlreadyRegistered => p.err_exists,
        Refusal::TakenByAnother => p.err_taken,
    }
}

/// The options JSON as one attribute value.
fn options_text<T: serde::Serialize>(options: &T) -> Result<String> {
    Ok(serde_json::to_string(options)?)
}

/// `POST /settings/webauthn/add`: checks the name, then the page that runs the
/// browser's registration.
pub async fn add(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_WEBAUTHN_ADD);
    if state.webauthn.is_none() {
        return Ok(done(req, ""));
    }
    let form = req.form();
    let username = &identity.user.username;
    let name = match webauthn::check_name(
        state.store.as_ref(),
        username,
        form.get("name").unwrap_or(""),
    )
    .await?
    {
        Ok(name) => name,
        Err(problem) => {
            let text = match problem {
                NameProblem::Empty => t.passkeys.name_empty.to_string(),
                NameProblem::TooLong => t.passkeys.name_too_long(webauthn::NAME_MAX as u64),
                NameProblem::Taken => t.passkeys.name_taken.to_string(),
            };
            return settings_page(
                state,
                req,
                t,
                &identity,
                StatusCode::BAD_REQUEST,
                Some(text),
            )
            .await;
        }
    };
    let (options, ceremony) =
        webauthn::register_start(state, &identity.user, &identity.session.id, &name, now()).await?;
    let csrf = csrf_for(state, req);
    let page = WebauthnRegisterPage {
        t,
        title: t.passkeys.register_title,
        mount: req.mount,
        csrf: &csrf.token,
        rd: form.get("rd").unwrap_or(""),
        name: &name,
        options: options_text(&options)?,
        ceremony,
    };
    Ok(csrf.attach(html(StatusCode::OK, render(&page))))
}

/// `POST /settings/webauthn/finish`: saves the device from the browser's answer; the
/// first device turns two-step verification on.
pub async fn finish(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_WEBAUTHN_FINISH);
    let username = identity.user.username.clone();
    let was_first = !mfa::has_second_factor(state.store.as_ref(), &username).await?;
    let form = req.form();
    let answer = form.get("credential").unwrap_or("");
    let ceremony = form.get("ceremony").unwrap_or("");
    match webauthn::register_finish(
        state,
        &username,
        &identity.session.id,
        ceremony,
        answer,
        now(),
    )
    .await?
    {
        Ok(device) => {
            notice(
                state,
                &identity.user,
                t,
                &fill(t.passkeys.notice_added, &device.name),
            )
            .await;
            enabled(
                state,
                req,
                t,
                &identity,
                Factor::Webauthn,
                was_first,
                "webauthn_added",
            )
            .await
        }
        Err(refusal) => {
            audit!(
                "webauthn_registration_refused",
                user = username,
                ip = req.ip_text(),
                reason = refusal.id()
            );
            settings_page(
                state,
                req,
                t,
                &identity,
                StatusCode::BAD_REQUEST,
                Some(refusal_text(t, refusal).to_string()),
            )
            .await
        }
    }
}

/// `POST /settings/webauthn/passwordless`: allows or stops one device's passwordless
/// login.
pub async fn passwordless(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_WEBAUTHN_PASSWORDLESS);
    let form = req.form();
    let on = form.get("on") == Some("1");
    let key = form.get("key").unwrap_or("");
    match webauthn::set_passwordless(state.store.as_ref(), &identity.user.username, key, on).await?
    {
        Some(name) => {
            audit!(
                "webauthn_passwordless_changed",
                user = identity.user.username,
                device = name,
                on = on
            );
            Ok(done(
                req,
                if on {
                    "passwordless_on"
                } else {
                    "passwordless_off"
                },
            ))
        }
        None => Ok(done(req, "")),
    }
}

/// `POST /settings/webauthn/delete`: removes a device; when it is the last device of
/// the only factor, the password is required and two-step verification goes off.
pub async fn delete(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let identity = change!(state, req, t, routes::SETTINGS_WEBAUTHN_DELETE);
    let username = identity.user.username.clone();
    let store = state.store.as_ref();
    let key = req.form().get("key").unwrap_or("").to_string();
    let devices = webauthn::devices(store, &username).await?;
    if !devices.iter().any(|d| d.key == key) {
        return Ok(done(req, ""));
    }
    let ends_2fa =
        devices.len() == 1 && mfa::enabled_factors(store, &username).await? == [Factor::Webauthn];
    if ends_2fa {
        if let Some(wrong) = password_in_form(state, req, t, &identity).await? {
            return Ok(wrong);
        }
    }
    let Some((device, left)) = webauthn::delete(store, &username, &key).await? else {
        return Ok(done(req, ""));
    };
    audit!(
        "webauthn_device_deleted",
        user = username,
        device = device.name
    );
    notice(
        state,
        &identity.user,
        t,
        &fill(t.passkeys.notice_deleted, &device.name),
    )
    .await;
    if left == 0 {
        mfa::disable_factor(state, &username, Factor::Webauthn, "user").await?;
        if ends_2fa {
            notice(state, &identity.user, t, t.notice_2fa_off).await;
            return Ok(done(req, "2fa_off"));
        }
    }
    Ok(done(req, "webauthn_deleted"))
}

/// Who owns a pre-login ceremony: this browser, by its CSRF cookie.
fn browser_owner<'r>(state: &AppState, req: &'r Request) -> Result<&'r str> {
    let name = state.sessions.csrf_cookie_name();
    req.header("cookie")
        .and_then(|h| cookie_value(h, name))
        .ok_or(Error::Csrf)
}

/// The brute-force keys of the client's IP alone (no user is known yet).
fn ip_keys(req: &Request) -> Vec<String> {
    login_keys("", req.client_ip)
        .into_iter()
        .filter(|k| k.starts_with("ip:"))
        .collect()
}

/// `POST /login/passkey/options`: starts a passwordless login for this browser and
/// answers with the options for `navigator.credentials.get` plus the ceremony id.
pub async fn login_options(
    state: &AppState,
    req: &Request,
    _t: &'static Texts,
) -> Result<Response> {
    if state.webauthn.is_none() {
        return Err(Error::NotFound("passkeys are off".into()));
    }
    check_csrf(state, req)?;
    let keys = ip_keys(req);
    if crate::portal::common::banned_for(&state.ceremony_limiter, &keys)
        .await
        .is_some()
    {
        return Ok(json(
            StatusCode::TOO_MANY_REQUESTS,
            &serde_json::json!({"error": "too many passkey sign-in attempts; wait a minute"}),
        ));
    }
    state.ceremony_limiter.record_failure(&keys, now()).await?;
    let (options, ceremony) =
        webauthn::passwordless_start(state, browser_owner(state, req)?, now()).await?;
    let mut value = serde_json::to_value(&options)?;
    value["ceremony"] = serde_json::Value::String(ceremony);
    Ok(json(StatusCode::OK, &value))
}

/// `POST /login/passkey`: signs in with a passkey allowed for passwordless login, with
/// user verification; that counts as two factors.
pub async fn login(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let form = req.form();
    let rd = form.get("rd").unwrap_or("");
    let again = |status: StatusCode, error: String| {
        Ok(login_page(
            state,
            req,
            t,
            status,
            LoginView {
                rd,
                username: "",
                error: Some(error),
                info: None,
            },
        ))
    };
    if state.webauthn.is_none() {
        return Ok(redirect(StatusCode::SEE_OTHER, &format!("{}/", req.mount)));
    }
    if check_csrf(state, req).is_err() {
        return again(StatusCode::FORBIDDEN, t.csrf_failed.into());
    }
    let ip = req.ip_text();
    let ip_keys = ip_keys(req);
    if let Some(left) = crate::portal::common::banned_for(&state.limiter, &ip_keys).await {
        audit!("passkey_login_refused_banned", ip = ip);
        return again(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left));
    }
    let outcome = webauthn::passwordless_finish(
        state,
        browser_owner(state, req)?,
        form.get("ceremony").unwrap_or(""),
        form.get("credential").unwrap_or(""),
        now(),
    )
    .await?;
    let (username, device) = match outcome {
        Ok(found) => found,
        Err((refusal, owner)) => {
            state.metrics.login_failure.inc();
            audit!(
                "passkey_login_failed",
                user = owner.as_deref().unwrap_or(""),
                ip = ip,
                reason = refusal.id()
            );
            let keys = match &owner {
                Some(user) => login_keys(user, req.client_ip),
                None => ip_keys,
            };
            if let Some(left) = count_failure(state, &keys, &ip).await {
                return again(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left));
            }
            return again(
                StatusCode::UNAUTHORIZED,
                refusal_text(t, refusal).to_string(),
            );
        }
    };
    let keys = login_keys(&username, req.client_ip);
    if let Some(left) = crate::portal::common::banned_for(&state.limiter, &keys).await {
        audit!("passkey_login_refused_banned", user = username, ip = ip);
        return again(StatusCode::TOO_MANY_REQUESTS, banned_message(t, left));
    }
    let Some(user) = state
        .store
        .get_user(&username)
        .await?
        .filter(|u| !u.disabled)
    else {
        return again(StatusCode::UNAUTHORIZED, t.bad_credentials.into());
    };
    state.limiter.forget(&[user_key(&username)]).await?;
    state.metrics.login_success.inc();
    let session = state
        .sessions
        .create_passwordless(&user, &ip, req.header("user-agent").unwrap_or(""), now())
        .await?;
    debug_assert_eq!(session.level, AuthLevel::TwoFactor);
    audit!(
        "login",
        user = username,
        ip = ip,
        level = "two_factor",
        method = "passkey",
        device = device.name,
        session = &session.id[..8]
    );
    let mut response = redirect(StatusCode::SEE_OTHER, &onwards(state, rd));
    add_cookie(&mut response, &state.sessions.set_cookie(&session));
    let browser = crate::portal::devices::browser(state, req);
    crate::portal::devices::signed_in(state, req, t, &user, &session, browser, &mut response).await;
    Ok(response)
}
