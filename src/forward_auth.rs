//! Forward-auth endpoints, in the shape operators know from Authelia:
//! - `GET /api/authz/auth-request` for nginx `auth_request`: 200 / 401 + `Location` / 403;
//! - `GET /api/authz/forward-auth` for Traefik ForwardAuth and Caddy forward_auth:
//!   200 / 302 (GET, HEAD) or 303 (other methods) to the portal / 401 for non-browsers / 403.
//!
//! On 200 the identity headers `Remote-User`, `Remote-Groups`, `Remote-Email` and
//! `Remote-Name` are set for the proxy to copy to the panel.

use std::net::IpAddr;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, LOCATION};
use http::{HeaderMap, StatusCode};

use crate::auth::gate::{decide, Decision};
use crate::auth::session::Identity;
use crate::basics::now;
use crate::http::redirect::safe_redirect;
use crate::http::target::{
    canonical_target_without_dots, parse_authority, Authority, HostError,
    Target as CanonicalTarget, TargetError,
};
use crate::http::{accepts_html, Request, Response};
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

/// An authorization request as it reached us: read where it lies (pingora's request
/// header on the hot path, a portal [`Request`] elsewhere), never copied.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub headers: &'a HeaderMap,
    /// The client, after trusted-proxy resolution.
    pub client_ip: Option<IpAddr>,
}

impl<'a> From<&'a Request> for Asked<'a> {
    fn from(req: &'a Request) -> Self {
        Asked {
            headers: &req.headers,
            client_ip: req.client_ip,
        }
    }
}

/// The original request as the front proxy describes it, in canonical form.
#[derive(Debug)]
pub struct Target {
    pub scheme: &'static str,
    /// Normalised `host[:port]`.
    pub authority: Authority,
    pub target: CanonicalTarget,
    pub method: String,
}

impl Target {
    /// `scheme://host[:port]/canonical-path[?query]`: where to come back after login
    /// (built only then, not for every check).
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme,
            self.authority,
            self.target.path_and_query()
        )
    }
}

/// Why a forward-auth request cannot be judged (answered 400, never guessed).
#[derive(Debug)]
pub enum Unusable {
    Missing(&'static str),
    Repeated(&'static str),
    Scheme,
    Host(HostError),
    Target(TargetError),
    Method,
    Upgrade,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Missing(h) => write!(f, "no {h} header"),
            Unusable::Repeated(h) => write!(f, "{h} sent more than once"),
            Unusable::Scheme => write!(f, "the scheme is not http or https"),
            Unusable::Host(e) => write!(f, "the host: {e}"),
            Unusable::Target(e) => write!(f, "the path: {e}"),
            Unusable::Method => write!(f, "the method is not an HTTP token"),
            Unusable::Upgrade => write!(f, "an upgrade to something other than websocket"),
        }
    }
}

/// The one value of a header the front proxy sets; refused when sent more than once.
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, Unusable> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Unusable::Repeated(name));
    }
    first
        .map(|v| v.to_str().map_err(|_| Unusable::Missing(name)))
        .transpose()
}

fn scheme_of(raw: &str) -> Result<&'static str, Unusable> {
    match raw.to_ascii_lowercase().as_str() {
        "http" => Ok("http"),
        "https" => Ok("https"),
        _ => Err(Unusable::Scheme),
    }
}

/// The target from `X-Original-URL` (nginx) or `X-Forwarded-Proto/Host/Uri`, each of
/// which must be exact: `host[:port]` with nothing else, and an origin-form path that
/// canonicalises without ambiguity. These headers are set by the front proxy itself
/// (the examples overwrite whatever a client sent under those names).
pub fn target_of(headers: &HeaderMap, kind: Kind) -> Result<Target, Unusable> {
    let method = match kind {
        Kind::AuthRequest => match single(headers, "x-original-method")? {
            Some(m) => Some(m),
            None => single(headers, "x-forwarded-method")?,
        },
        Kind::ForwardAuth => single(headers, "x-forwarded-method")?,
    }
    .unwrap_or("GET")
    .to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(Unusable::Method);
    }
    // An upgrade the front proxy would tunnel to the panel (`h2c` smuggling): only
    // WebSocket is a protocol a panel behind a login gateway speaks.
    if let Some(upgrade) = single(headers, "upgrade")? {
        if !upgrade.trim().eq_ignore_ascii_case("websocket") {
            return Err(Unusable::Upgrade);
        }
    }
    let original = match kind {
        Kind::AuthRequest => single(headers, "x-original-url")?,
        Kind::ForwardAuth => None,
    };
    let (scheme, authority, raw_target) = match original {
        Some(url) => {
            let (scheme, rest) = url.split_once("://").ok_or(Unusable::Scheme)?;
            let scheme = scheme_of(scheme)?;
            // The authority ends at the first `/`: a `?`, `#` or `\` before it is refused
            // by the authority parser, never read as the start of a path.
            let slash = rest
                .find('/')
                .ok_or(Unusable::Target(TargetError::NotOriginForm))?;
            (scheme, &rest[..slash], &rest[slash..])
        }
        None => {
            let scheme = scheme_of(single(headers, "x-forwarded-proto")?.unwrap_or("https"))?;
            let authority = single(headers, "x-forwarded-host")?
                .ok_or(Unusable::Missing("X-Forwarded-Host"))?;
            let uri = single(headers, "x-forwarded-uri")?.unwrap_or("/");
            (scheme, authority, uri)
        }
    };
    let authority = parse_authority(authority).map_err(Unusable::Host)?;
    // The front proxy forwards the raw target: dot segments are refused, since the
    // panel might not resolve them as the rules would.
    let target = canonical_target_without_dots(raw_target).map_err(Unusable::Target)?;
    Ok(Target {
        scheme,
        authority,
        target,
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
pub async fn answer(state: &AppState, asked: Asked<'_>, kind: Kind) -> Response {
    let target = match target_of(asked.headers, kind) {
        Ok(target) => target,
        Err(why) => {
            tracing::warn!(?kind, reason = %why, "forward-auth request refused: its target is missing or ambiguous (X-Original-URL or X-Forwarded-Proto/Host/Uri)");
            state.metrics.refused_targets.inc();
            return empty(StatusCode::BAD_REQUEST);
        }
    };
    let facts = RequestFacts {
        host: target.authority.host(),
        path: target.target.path(),
        query: target.target.query(),
        method: &target.method,
        client_ip: asked.client_ip,
    };
    let decision = match decide(
        &state.sessions,
        &state.config.access,
        &facts,
        asked
            .headers
            .get(http::header::COOKIE)
            .and_then(|v| v.to_str().ok()),
        state.config.second_factor.enrollment_redirect,
        now(),
    )
    .await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "forward-auth decision failed");
            return empty(e.status());
        }
    };
    state.metrics.decision(&decision);
    match decision {
        Decision::Allow(identity) => with_identity(empty(StatusCode::OK), identity.as_deref()),
        // A browser is shown the portal's 403 page (who is signed in, how to switch):
        // Traefik and Caddy pass the redirect on; nginx's auth_request only knows 401
        // and 403, so the 403 carries the address for `error_page 403`.
        Decision::Deny => {
            let location = portal_url(state, "denied", &target.url());
            let status = match kind {
                Kind::ForwardAuth if accepts_html(asked.headers) => StatusCode::FOUND,
                _ => StatusCode::FORBIDDEN,
            };
            let mut r = empty(status);
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(LOCATION, v);
            }
            r
        }
        Decision::Login | Decision::Enroll => {
            let page = if matches!(decision, Decision::Enroll) {
                "settings"
            } else {
                ""
            };
            let location = portal_url(state, page, &target.url());
            let status = match kind {
                Kind::AuthRequest => StatusCode::UNAUTHORIZED,
                Kind::ForwardAuth if !accepts_html(asked.headers) => StatusCode::UNAUTHORIZED,
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
