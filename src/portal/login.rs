//! The password login, the signed-in page and logout, with CSRF protection and
//! brute-force regulation. A user with a second factor leaves the password step with a
//! session that grants nothing yet and is sent to the second step.

use http::StatusCode;

use crate::audit;
use crate::auth::limiter::{login_keys, user_key};
use crate::basics::now;
use crate::error::{Error, Result};
use crate::http::redirect::safe_redirect;
use crate::http::{add_cookie, html, redirect, Request, Response};
use crate::mfa;
use crate::portal::common::{
    attempt_failed, begin_attempt, check_csrf, csrf_for, current_session, onwards, rd_query,
};
use crate::portal::pages::{render, LoginPage, SignedInPage};
use crate::portal::routes;
use crate::state::AppState;
use crate::store::AuthLevel;
use crate::texts::{banned_message, fill, Texts};

/// Longest username read from a login form.
const MAX_USERNAME: usize = 128;

/// What the login form shows besides its fields.
pub(crate) struct LoginView<'a> {
    pub rd: &'a str,
    pub username: &'a str,
    pub error: Option<String>,
    pub info: Option<&'a str>,
}

/// The login form (with the passkey button when passkeys are on).
pub(crate) fn login_page(
    state: &AppState,
    req: &Request,
    t: &'static Texts,
    status: StatusCode,
    view: LoginView<'_>,
) -> Response {
    let csrf = csrf_for(state, req);
    let page = LoginPage {
        t,
        title: t.sign_in_title,
        mount: req.mount,
        csrf: &csrf.token,
        rd: view.rd,
        username: view.username,
        remember_me: state.config.session.remember_me.is_some(),
        forgot: crate::portal::reset::offered(state),
        error: view.error,
        info: view.info,
        passkeys: state.webauthn.is_some(),
    };
    let response = html(status, render(&page));
    csrf.attach(response)
}

/// `GET /`: the login form; for a pending session the second step; for a signed-in
/// user the way onwards.
pub async fn page(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let rd = req.query_param("rd").unwrap_or_default();
    let target = safe_redirect(&rd, &state.config.protected_domains);
    match current_session(state, req).await? {
        Some(identity) if identity.session.level == AuthLevel::SecondFactorPending => Ok(redirect(
            StatusCode::FOUND,
            &format!(
                "{}{}{}",
                req.mount,
                routes::SECOND_STEP,
                rd_query(target.as_deref().unwrap_or(""))
            ),
        )),
        Some(identity) => {
            if let Some(target) = &target {
                // Sent back here with a session whose second factor a trusted device
                // stood in for: the target asks every time, so the second step again.
                let next = if identity.session.by_trusted_device() {
                    format!("{}{}{}", req.mount, routes::SECOND_STEP, rd_query(target))
                } else {
                    target.clone()
                };
                return Ok(redirect(StatusCode::FOUND, &next));
            }
            let csrf = csrf_for(state, req);
            let user = &identity.user;
            let name = user.shown_name();
            let default = state
                .config
                .default_redirect
                .as_ref()
                .map(|u| u.to_string());
            let response = html(
                StatusCode::OK,
                render(&SignedInPage {
                    t,
                    title: t.signed_in_title,
                    mount: req.mount,
                    csrf: &csrf.token,
                    name,
                    username: &user.username,
                    continue_to: default.as_deref(),
                    back: (default.is_none() && !req.mount.is_empty())
                        .then(|| fill(t.back_to_panel, &crate::texts::brand().name)),
                }),
            );
            Ok(csrf.attach(response))
        }
        None => {
            let info = if req.query_param("signed_out").is_some() {
                Some(t.signed_out)
            } else {
                req.query_param("expired").map(|_| t.session_expired)
            };
            Ok(login_page(
                state,
                req,
                t,
                StatusCode::OK,
                LoginView {
                    rd: target.as_deref().unwrap_or(""),
                    username: "",
                    error: None,
                    info,
                },
            ))
        }
    }
}

/// `POST /login`: checks the password and starts a session.
pub async fn submit(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let form = req.form();
    let rd = form.get("rd").unwrap_or("");
    // No account name is this long (`user add` refuses them): a longer one is cut, so
    // it can neither fill the log nor the limiter's memory.
    let username: String = form
        .get("username")
        .unwrap_or("")
        .trim()
        .chars()
        .take(MAX_USERNAME)
        .collect::<String>()
        .to_lowercase();
    let password = form.get("password").unwrap_or("");
    let again = |status, error: String| {
        login_page(
            state,
            req,
            t,
            status,
            LoginView {
                rd,
                username: &username,
                error: Some(error),
                info: None,
            },
        )
    };
    if check_csrf(state, req).is_err() {
        return Ok(again(StatusCode::FORBIDDEN, t.csrf_failed.into()));
    }
    if username.is_empty() || password.is_empty() {
        return Ok(again(StatusCode::BAD_REQUEST, t.missing_fields.into()));
    }
    let ip = req.ip_text();
    let keys = login_keys(&username, req.client_ip);
    let refused = |left| {
        audit!("login_refused_banned", user = username, ip = ip);
        state.metrics.login_banned.inc();
        Ok(again(
            StatusCode::TOO_MANY_REQUESTS,
            banned_message(t, left),
        ))
    };
    // Counted before the password is checked, so parallel guesses cannot outrun the ban.
    let attempt = match begin_attempt(state, &keys).await? {
        Ok(attempt) => attempt,
        Err(left) => return refused(left),
    };
    let user = state
        .store
        .get_user(&username)
        .await?
        .filter(|u| !u.disabled);
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !state.passwords.verify(password.to_string(), hash).await? {
        audit!("login_failed", user = username, ip = ip);
        state.metrics.login_failure.inc();
        if let Some(left) = attempt_failed(state, attempt, &keys, &ip).await {
            return Ok(again(
                StatusCode::TOO_MANY_REQUESTS,
                banned_message(t, left),
            ));
        }
        return Ok(again(StatusCode::UNAUTHORIZED, t.bad_credentials.into()));
    }
    let user = user.ok_or_else(|| Error::Internal("verified a password without a user".into()))?;
    let remember = form.get("remember").is_some();
    let has_second_factor = mfa::has_second_factor(state.store.as_ref(), &user.username).await?;
    // A device the user trusts stands in for the second step.
    let trusted =
        has_second_factor && crate::portal::devices::is_trusted(state, req, &user).await?;
    let second_step = has_second_factor && !trusted;
    // Failures are forgiven only when the login is complete: a right password must not
    // wipe the count of wrong second-step answers (or signing in again would reset it).
    // A success forgets the user's failures, never the address's (a sprayer would clear
    // its count by signing in to an account of its own).
    let forget = if second_step {
        vec![]
    } else {
        vec![user_key(&username)]
    };
    if let Err(left) = attempt.succeeded(&forget, now()).await? {
        return refused(left);
    }
    state.metrics.login_success.inc();
    let level = if second_step {
        AuthLevel::SecondFactorPending
    } else {
        AuthLevel::OneFactor
    };
    let user_agent = req.header("user-agent").unwrap_or("");
    let session = if trusted {
        state
            .sessions
            .create_on_trusted_device(&user, remember, &ip, user_agent, now())
            .await?
    } else {
        state
            .sessions
            .create(&user, level, remember, &ip, user_agent, now())
            .await?
    };
    let target = if second_step {
        audit!(
            "login_password_ok",
            user = user.username,
            ip = ip,
            session = &session.id[..8]
        );
        let rd = safe_redirect(rd, &state.config.protected_domains).unwrap_or_default();
        format!("{}{}{}", req.mount, routes::SECOND_STEP, rd_query(&rd))
    } else if trusted {
        audit!(
            "login",
            user = user.username,
            ip = ip,
            level = "two_factor",
            method = crate::store::TRUSTED_DEVICE,
            session = &session.id[..8]
        );
        onwards(state, rd)
    } else {
        audit!(
            "login",
            user = user.username,
            ip = ip,
            level = "one_factor",
            session = &session.id[..8]
        );
        onwards(state, rd)
    };
    let mut response = redirect(StatusCode::SEE_OTHER, &target);
    add_cookie(&mut response, &state.sessions.set_cookie(&session));
    if !second_step {
        let browser = crate::portal::devices::browser(state, req);
        crate::portal::devices::signed_in(state, req, t, &user, &session, browser, &mut response)
            .await;
    }
    Ok(response)
}

/// `GET /logout` (what a panel's "Sign out" link opens): asks "Sign out?" with the
/// button (a POST, so that no page can sign anyone out by linking here) and a way
/// back; without a session, says so on the sign-in page.
pub async fn logout_page(state: &AppState, req: &Request, t: &'static Texts) -> Result<Response> {
    let rd = req.query_param("rd").unwrap_or_default();
    let rd = safe_redirect(&rd, &state.config.protected_domains).unwrap_or_default();
    let Some(identity) = current_session(state, req).await? else {
        // Nobody to sign out: the sign-in page, without claiming a sign-out.
        return Ok(redirect(
            StatusCode::FOUND,
            &format!("{}/{}", req.mount, rd_query(&rd)),
        ));
    };
    let csrf = csrf_for(state, req);
    let user = &identity.user;
    let name = user.shown_name();
    let stay = onwards(state, &rd);
    let response = html(
        StatusCode::OK,
        render(&crate::portal::pages::SignOutPage {
            t,
            title: t.sign_out_title,
            mount: req.mount,
            csrf: &csrf.token,
            name,
            username: &user.username,
            rd: &rd,
            stay: &stay,
        }),
    );
    Ok(csrf.attach(response))
}

/// Where a sign-out ends: the sign-in page saying so, keeping where to go after the
/// next sign-in.
fn signed_out_target(req: &Request, rd: &str) -> String {
    format!(
        "{}/?signed_out=1{}",
        req.mount,
        rd_query(rd).replacen('?', "&", 1)
    )
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(state: &AppState, req: &Request, _t: &'static Texts) -> Result<Response> {
    check_csrf(state, req)?;
    if let Some(identity) = current_session(state, req).await? {
        state.store.delete_session(&identity.session.id).await?;
        audit!("logout", user = identity.user.username, ip = req.ip_text());
    }
    let rd = req.form().get("rd").unwrap_or("").to_string();
    let rd = safe_redirect(&rd, &state.config.protected_domains).unwrap_or_default();
    let mut response = redirect(StatusCode::SEE_OTHER, &signed_out_target(req, &rd));
    add_cookie(&mut response, &state.sessions.clear_cookie());
    Ok(response)
}
