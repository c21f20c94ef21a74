//! Forward-auth endpoints, in the shape operators know from Authelia:
//! - `GET /api/authz/auth-request` for nginx `auth_request`: 200 / 401 + `Location` / 403;
//! - `GET /api/authz/forward-auth` for Traefik ForwardAuth and Caddy forward_auth:
//!   200 / 302 (GET, HEAD) or 303 (other methods) to the portal / 401 for non-browsers / 403.
//!
//! On 200 the identity headers `Remote-User`, `Remote-Groups`, `Remote-Email` and
//! `Remote-Name` are set for the proxy to copy to the panel.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, LOCATION};
use http::StatusCode;

use crate::auth::gate::{decide, Decision};
use crate::auth::now;
use crate::auth::session::Identity;
use crate::http::redirect::safe_redirect;
use crate::http::{accepts_html, bare_host, Request, Response};
use crate::policy::RequestFacts;
use crate::state::AppState;

/// Which proxy is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// nginx `auth_request`.
    AuthRequest,
    /// Traefik / Caddy.
    ForwardAuth,
}

/// The original request as the proxy describes it.
struct Target {
    url: String,
    host: String,
    path: String,
    method: String,
}

fn target_of(req: &Request, kind: Kind) -> Option<Target> {
    let method = match kind {
        Kind::AuthRequest => req
            .header("x-original-method")
            .or_else(|| req.header("x-forwarded-method")),
        Kind::ForwardAuth => req.header("x-forwarded-method"),
    }
    .unwrap_or("GET")
    .to_ascii_uppercase();
    if kind == Kind::AuthRequest {
        if let Some(original) = req.header("x-original-url") {
            let url = url::Url::parse(original).ok()?;
            let host = url.host_str()?.to_ascii_lowercase();
            let path = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_string(),
            };
            return Some(Target {
                url: url.to_string(),
                host,
                path,
                method,
            });
        }
    }
    let proto = req.header("x-forwarded-proto").unwrap_or("https");
    if proto != "http" && proto != "https" {
        return None;
    }
    let authority = req.header("x-forwarded-host")?;
    let uri = req.header("x-forwarded-uri").unwrap_or("/");
    let uri = if uri.starts_with('/') {
        uri.to_string()
    } else {
        format!("/{uri}")
    };
    Some(Target {
        url: format!("{proto}://{authority}{uri}"),
        host: bare_host(authority),
        path: uri,
        method,
    })
}

fn empty(status: StatusCode) -> Response {
    let mut r = http::Response::new(Vec::new());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Sets every identity header, empty when nobody is signed in (a bypass): a front proxy
/// that copies them then never forwards a client's own or a literal placeholder
/// (Caddy 2.6 copies `{http.reverse_proxy.header.Remote-User}` as text when it is absent).
fn with_identity(mut r: Response, identity: Option<&Identity>) -> Response {
    let (user, groups, email, name) = match identity {
        Some(i) => (
            i.user.username.as_str(),
            i.user.groups.join(","),
            i.user.email.as_str(),
            i.user.display_name.as_str(),
        ),
        None => ("", String::new(), "", ""),
    };
    let h = r.headers_mut();
    for (header, value) in [
        ("remote-user", user),
        ("remote-groups", groups.as_str()),
        ("remote-email", email),
        ("remote-name", name),
    ] {
        let value = HeaderValue::from_bytes(value.as_bytes())
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        h.insert(header, value);
    }
    r
}

/// A portal page (`""` = login, `"settings"`) with `rd` when the target is one we protect.
fn portal_url(state: &AppState, page: &str, target: &str) -> String {
    let mut url = state
        .config
        .portal_url
        .clone()
        .expect("the portal listener always has a URL");
    if !page.is_empty() {
        url = url.join(page).unwrap_or(url);
    }
    if let Some(rd) = safe_redirect(target, &state.config.protected_domains) {
        url.query_pairs_mut().append_pair("rd", &rd);
    }
    url.to_string()
}

/// Answers one authorization request.
pub fn answer(state: &AppState, req: &Request, kind: Kind) -> Response {
    let Some(target) = target_of(req, kind) else {
        tracing::warn!(?kind, "forward-auth request without a usable target (X-Original-URL or X-Forwarded-Proto/Host/Uri)");
        return empty(StatusCode::BAD_REQUEST);
    };
    let facts = RequestFacts {
        host: &target.host,
        path: &target.path,
        method: &target.method,
        client_ip: req.client_ip,
    };
    let decision = match decide(
        &state.sessions,
        &state.config.access,
        &facts,
        req.header("cookie"),
        state.config.second_factor.enrollment_redirect,
        now(),
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "forward-auth decision failed");
            return empty(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    state.metrics.decision(&decision);
    match decision {
        Decision::Allow(identity) => with_identity(empty(StatusCode::OK), identity.as_deref()),
        Decision::Deny => empty(StatusCode::FORBIDDEN),
        Decision::Login | Decision::Enroll => {
            let page = if matches!(decision, Decision::Enroll) {
                "settings"
            } else {
                ""
            };
            let location = portal_url(state, page, &target.url);
            let status = match kind {
                Kind::AuthRequest => StatusCode::UNAUTHORIZED,
                Kind::ForwardAuth if !accepts_html(&req.headers) => StatusCode::UNAUTHORIZED,
                Kind::ForwardAuth if matches!(target.method.as_str(), "GET" | "HEAD") => {
                    StatusCode::FOUND
                }
                Kind::ForwardAuth => StatusCode::SEE_OTHER,
            };
            let mut r = empty(status);
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(LOCATION, v);
            }
            r
        }
    }
}
