//! What every portal page needs: the CSRF token of this browser, the current session,
//! and safe redirects onwards.

use http::StatusCode;

use crate::auth::limiter::Attempt;
use crate::auth::session::{cookie_value, Identity};
use crate::basics::{now, random_token};
use crate::error::{Error, Result};
use crate::http::redirect::safe_redirect;
use crate::http::target::parse_authority;
use crate::http::{add_cookie, redirect, Request, Response};
use crate::portal::routes;
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

/// What a CSRF token is bound to: the session, when the browser has one (a cookie
/// planted from a sibling subdomain cannot match it), else the browser's own host-only
/// CSRF cookie (`__Host-` with secure cookies), which is all there is before login.
fn csrf_binding(session_id: &str) -> String {
    format!("session\0{session_id}")
}

/// What a form's CSRF token is bound to: the session id of a correctly signed session
/// cookie (checking the signature only, no store read: the page's own check of the
/// session already read it), else the browser's CSRF cookie. A token is worth nothing
/// without the cookie it is bound to, which another site cannot read.
fn signed_session_id<'a>(state: &AppState, req: &'a Request) -> Option<&'a str> {
    req.header("cookie")
        .and_then(|h| cookie_value(h, &state.sessions.config().cookie_name))
        .and_then(|value| state.sessions.verify(value))
}

fn browser_binding(cookie: &str) -> String {
    format!("browser\0{cookie}")
}

fn csrf_cookie(state: &AppState, req: &Request) -> Option<String> {
    let name = state.sessions.csrf_cookie_name();
    req.header("cookie")
        .and_then(|h| cookie_value(h, name))
        .filter(|v| v.len() >= 32)
        .map(str::to_string)
}

/// The CSRF token for this browser's forms (creating its CSRF cookie when missing).
pub fn csrf_for(state: &AppState, req: &Request) -> Csrf {
    let cookie = csrf_cookie(state, req);
    let set_cookie = match &cookie {
        Some(_) => None,
        None => Some(random_token(32)),
    };
    let token = match signed_session_id(state, req) {
        Some(id) => state.sessions.csrf_token(&csrf_binding(id)),
        None => {
            let value = cookie
                .as_deref()
                .or(set_cookie.as_deref())
                .unwrap_or_default();
            state.sessions.csrf_token(&browser_binding(value))
        }
    };
    Csrf {
        token,
        set_cookie: set_cookie.map(|v| state.sessions.csrf_cookie(&v)),
    }
}

/// Refuses a form whose CSRF token does not match this browser's session (or, before
/// login, its CSRF cookie), or that the browser says came from another origin.
pub fn check_csrf(state: &AppState, req: &Request) -> Result<()> {
    if !same_origin(state, req) {
        return Err(Error::Csrf);
    }
    let form = req.form();
    let token = form.get("csrf").ok_or(Error::Csrf)?;
    let binding = match signed_session_id(state, req) {
        Some(id) => csrf_binding(id),
        None => browser_binding(&csrf_cookie(state, req).ok_or(Error::Csrf)?),
    };
    if state.sessions.csrf_valid(&binding, token) {
        Ok(())
    } else {
        Err(Error::Csrf)
    }
}

/// Whether the browser's own word on where a form came from (`Sec-Fetch-Site`,
/// `Origin`), when it says anything, is this very origin: the configured portal URL on
/// the portal host, the request's host in proxy mode (a cross-site page cannot choose
/// the `Host` a victim's browser sends). Clients that send neither (curl, old
/// browsers) rely on the token alone.
fn same_origin(state: &AppState, req: &Request) -> bool {
    let fetch_site = req.header("sec-fetch-site");
    if fetch_site.is_some_and(|site| !matches!(site, "same-origin" | "none")) {
        return false;
    }
    let Some(origin) = req.header("origin") else {
        return true;
    };
    if origin == "null" {
        // Sent for a page with `no-referrer` (a forger can choose that): only the
        // browser's fetch metadata, which a page cannot forge, vouches for it then.
        return fetch_site.is_some();
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return false,
    };
    let Ok(from) = parse_authority(rest) else {
        return false;
    };
    let from = (from.host().to_string(), from.port().unwrap_or(default_port));
    let expected = if req.mount.is_empty() {
        state.config.portal_url.as_ref().and_then(|u| {
            Some((
                u.host_str()?.to_ascii_lowercase(),
                u.port_or_known_default()?,
            ))
        })
    } else {
        req.header("host")
            .and_then(|h| parse_authority(h).ok())
            .map(|a| (a.host().to_string(), a.port().unwrap_or(default_port)))
    };
    expected.is_some_and(|e| e == from)
}

/// The session of this browser, at whatever level (including a pending second step).
pub async fn current_session(state: &AppState, req: &Request) -> Result<Option<Identity>> {
    match req
        .header("cookie")
        .and_then(|h| cookie_value(h, &state.sessions.config().cookie_name))
    {
        Some(value) => state.sessions.resolve(value, now()).await,
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
pub async fn established(state: &AppState, req: &Request, back: &str) -> Result<Gate> {
    let back = format!("{}{back}", req.mount);
    Ok(match current_session(state, req).await? {
        Some(i) if i.session.level >= AuthLevel::OneFactor => Gate::Established(Box::new(i)),
        Some(_) => Gate::Elsewhere(redirect(
            StatusCode::SEE_OTHER,
            &format!("{}{}{}", req.mount, routes::SECOND_STEP, rd_query(&back)),
        )),
        // The browser still carries a session cookie that no longer works: the session
        // expired (or was ended) while a page was open; say so on the sign-in page.
        None => {
            let expired = req
                .header("cookie")
                .and_then(|h| cookie_value(h, &state.sessions.config().cookie_name))
                .is_some();
            let query = rd_query(&back);
            let query = if expired {
                format!("?expired=1{}", query.replacen('?', "&", 1))
            } else {
                query
            };
            Gate::Elsewhere(redirect(
                StatusCode::SEE_OTHER,
                &format!("{}/{query}", req.mount),
            ))
        }
    })
}

/// Counts a login, second-step or password-confirmation attempt against `keys` before it
/// is checked; `Err(seconds)` when it is refused (banned, or the limit is in flight).
/// A store that cannot count is an error (503 when it is unreachable): fail closed,
/// and the user is told the service is unavailable rather than that they are banned.
pub async fn begin_attempt<'a>(
    state: &'a AppState,
    keys: &[String],
) -> Result<std::result::Result<Attempt<'a>, u64>> {
    state.limiter.begin(keys, now()).await
}

/// Settles a failed attempt, auditing any ban it starts; returns the seconds of ban in
/// force, if any.
pub async fn attempt_failed(
    state: &AppState,
    attempt: Attempt<'_>,
    keys: &[String],
    ip: &str,
) -> Option<u64> {
    match attempt.failed(now()).await {
        Ok(banned) => banned.iter().for_each(|key| audit_ban(state, key, ip)),
        Err(e) => tracing::warn!(error = %e, "could not count a failed attempt"),
    }
    banned_for(&state.limiter, keys).await
}

/// Seconds of ban in force on `keys`; a limiter that cannot be read says 1 s (fail
/// closed, and the user is asked to try again).
pub async fn banned_for(limiter: &crate::auth::limiter::Limiter, keys: &[String]) -> Option<u64> {
    limiter.banned_for(keys, now()).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not read the limiter; refused");
        Some(1)
    })
}

/// Counts a failure that was not reserved beforehand (a refused Telegram request),
/// auditing any ban it starts; returns the seconds of ban in force, if any.
pub async fn count_failure(state: &AppState, keys: &[String], ip: &str) -> Option<u64> {
    match state.limiter.record_failure(keys, now()).await {
        Ok(banned) => banned.iter().for_each(|key| audit_ban(state, key, ip)),
        Err(e) => tracing::warn!(error = %e, "could not count a failure"),
    }
    banned_for(&state.limiter, keys).await
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

/// The texts for a request: the language picked with the portal's switcher, else the
/// browser's (`Accept-Language`).
pub fn texts_of(state: &AppState, headers: &http::HeaderMap) -> &'static crate::texts::Texts {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let picked = header("cookie")
        .and_then(|h| crate::auth::session::cookie_value(h, state.sessions.language_cookie_name()));
    crate::texts::texts_chosen(picked, header("accept-language"))
}
