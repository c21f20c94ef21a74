//! What every portal page needs: the CSRF token of this browser, the current session,
//! and safe redirects onwards.

use http::StatusCode;

use crate::auth::limiter::Attempt;
use crate::auth::session::{cookie_value, Identity};
use crate::auth::{now, random_token};
use crate::error::{Error, Result};
use crate::http::redirect::safe_redirect;
use crate::http::{add_cookie, redirect, Request, Response};
use crate::state::AppState;
use crate::store::AuthLevel;

/// The browser's CSRF token, and the cookie to set when it had none.
pub struct Csrf {
    pub token: String,
    set_cookie: Option<String>,
}

impl Csrf {
    /// Adds the CSRF cookie to a response that shows a form, if the browser lacks one.
    pub fn attach(&self, mut response: Response) -> Response {
        if let Some(c) = &self.set_cookie {
            add_cookie(&mut response, c);
        }
        response
    }
}

/// The CSRF token for this browser (creating its cookie when missing).
pub fn csrf_for(state: &AppState, req: &Request) -> Csrf {
    let name = state.sessions.csrf_cookie_name();
    match req
        .header("cookie")
        .and_then(|h| cookie_value(h, &name))
        .filter(|v| v.len() >= 32)
    {
        Some(value) => Csrf {
            token: state.sessions.csrf_token(value),
            set_cookie: None,
        },
        None => {
            let value = random_token(32);
            Csrf {
                token: state.sessions.csrf_token(&value),
                set_cookie: Some(state.sessions.csrf_cookie(&value)),
            }
        }
    }
}

/// Refuses a form whose CSRF token does not match the browser's CSRF cookie.
pub fn check_csrf(state: &AppState, req: &Request) -> Result<()> {
    let name = state.sessions.csrf_cookie_name();
    let cookie = req
        .header("cookie")
        .and_then(|h| cookie_value(h, &name))
        .ok_or(Error::Csrf)?;
    let form = req.form();
    let token = form.get("csrf").ok_or(Error::Csrf)?;
    if state.sessions.csrf_valid(cookie, token) {
        Ok(())
    } else {
        Err(Error::Csrf)
    }
}

/// The session of this browser, at whatever level (including a pending second step).
pub fn current_session(state: &AppState, req: &Request) -> Result<Option<Identity>> {
    match req
        .header("cookie")
        .and_then(|h| cookie_value(h, &state.sessions.config().cookie_name))
    {
        Some(value) => state.sessions.resolve(value, now()),
        None => Ok(None),
    }
}

/// Where a signed-in user goes when they have nowhere else to be: the configured
/// default, else "/" (the panel in proxy mode, the signed-in page on the portal host).
pub fn default_target(state: &AppState) -> String {
    state
        .config
        .default_redirect
        .as_ref()
        .map_or_else(|| "/".to_string(), |u| u.to_string())
}

/// `rd` if it is safe, else the default target.
pub fn onwards(state: &AppState, rd: &str) -> String {
    safe_redirect(rd, &state.config.protected_domains).unwrap_or_else(|| default_target(state))
}

/// `?rd=...` for a link, empty when there is no `rd`.
pub fn rd_query(rd: &str) -> String {
    if rd.is_empty() {
        String::new()
    } else {
        format!(
            "?rd={}",
            url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        )
    }
}

/// What a page that needs someone fully signed in should do with this request.
pub enum Gate {
    /// Signed in (one factor without 2FA, or two factors).
    Established(Box<Identity>),
    /// Send the browser here first.
    Elsewhere(Response),
}

/// Lets through an established session; sends a pending one to the second step and
/// nobody to the login page, both returning to `back` afterwards.
pub fn established(state: &AppState, req: &Request, back: &str) -> Result<Gate> {
    let back = format!("{}{back}", req.mount);
    Ok(match current_session(state, req)? {
        Some(i) if i.session.level >= AuthLevel::OneFactor => Gate::Established(Box::new(i)),
        Some(_) => Gate::Elsewhere(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}/2fa{}", req.mount, rd_query(&back)),
        )),
        None => Gate::Elsewhere(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}/{}", req.mount, rd_query(&back)),
        )),
    })
}

/// Counts a login, second-step or password-confirmation attempt against `keys` before it
/// is checked; `Err(seconds)` when it is refused (banned, or the limit is in flight).
pub fn begin_attempt<'a>(
    state: &'a AppState,
    keys: &[String],
) -> std::result::Result<Attempt<'a>, u64> {
    state.limiter.begin(keys, now())
}

/// Settles a failed attempt, auditing any ban it starts; returns the seconds of ban in
/// force, if any.
pub fn attempt_failed(
    state: &AppState,
    attempt: Attempt<'_>,
    keys: &[String],
    ip: &str,
) -> Option<u64> {
    for key in attempt.failed(now()) {
        audit_ban(state, &key, ip);
    }
    state.limiter.banned_for(keys, now())
}

/// Counts a failure that was not reserved beforehand (a refused Telegram request),
/// auditing any ban it starts; returns the seconds of ban in force, if any.
pub fn count_failure(state: &AppState, keys: &[String], ip: &str) -> Option<u64> {
    for key in state.limiter.record_failure(keys, now()) {
        audit_ban(state, &key, ip);
    }
    state.limiter.banned_for(keys, now())
}

fn audit_ban(state: &AppState, key: &str, ip: &str) {
    {
        crate::audit!(
            "ban",
            key = key,
            ip = ip,
            seconds = state.config.regulation.ban_time.as_secs()
        );
    }
}
