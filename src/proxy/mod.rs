//! Proxy mode: a pingora [`ProxyHttp`] in front of one or more panels, chosen by `Host`.
//!
//! `request_filter` serves the portal under `/.gatehouse/`, then asks [`decide`] about
//! everything else: allowed requests go on to the panel, others get a redirect to the
//! login page (or 401/403) written here. `upstream_request_filter` removes every
//! client-sent identity header and our own cookies, then sets the identity headers.

use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};

use crate::auth::gate::{decide, Decision};
use crate::auth::session::Identity;
use crate::basics::now;
use crate::http::pingora_io::{into_pingora, limit_keepalive, peer_ip, read_request};
use crate::http::target::{canonical_target, parse_authority, Authority, Target};
use crate::http::{accepts_html, client_ip, is_identity_header, redirect, text, Response};
use crate::policy::RequestFacts;
use crate::portal::{message, Portal, PROXY_MOUNT};
use crate::state::AppState;

/// The proxy service.
pub struct Gateway {
    portal: Portal,
}

/// Per-request state carried between the phases.
#[derive(Default)]
pub struct RequestCtx {
    upstream: Option<usize>,
    identity: Option<Box<Identity>>,
    /// The canonical target the rules judged, when it differs from what the client
    /// sent: the panel receives it instead (most requests are canonical already).
    rewritten: Option<http::Uri>,
    /// The normalised `host[:port]` the rules judged: the panel's `Host`.
    authority: Option<Authority>,
}

/// The request's host and canonical target, or why it is refused: exactly one `Host`
/// (an absolute-form target must name the same authority), an exact `host[:port]`, and
/// a path that canonicalises without ambiguity.
fn host_and_target(header: &RequestHeader) -> Result<(Authority, Target), String> {
    let mut hosts = header.headers.get_all(http::header::HOST).iter();
    let host = hosts
        .next()
        .map(|v| {
            v.to_str()
                .map_err(|_| "the Host header is not text".to_string())
        })
        .transpose()?;
    if hosts.next().is_some() {
        return Err("more than one Host header".into());
    }
    let authority = match (host, header.uri.authority()) {
        (Some(h), Some(a)) if !h.eq_ignore_ascii_case(a.as_str()) => {
            return Err("the request line names another host than the Host header".into())
        }
        (Some(h), _) => h,
        (None, Some(a)) => a.as_str(),
        (None, None) => return Err("no Host header".into()),
    };
    let authority = parse_authority(authority).map_err(|e| format!("the host: {e}"))?;
    let raw = header
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = canonical_target(raw).map_err(|e| format!("the path: {e}"))?;
    Ok((authority, target))
}

impl Gateway {
    pub fn new(state: Arc<AppState>) -> Self {
        Gateway {
            portal: Portal::new(state),
        }
    }

    fn state(&self) -> &AppState {
        self.portal.state()
    }
}

/// Writes a complete response from `request_filter`.
async fn respond(session: &mut Session, response: Response) -> pingora::Result<bool> {
    let head_only = session.req_header().method == http::Method::HEAD;
    let (header, body) = into_pingora(response);
    let end = head_only || body.is_empty();
    session.write_response_header(Box::new(header), end).await?;
    if !end {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(true)
}

fn is_portal_path(path: &str) -> bool {
    path == PROXY_MOUNT
        || path
            .strip_prefix(PROXY_MOUNT)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Removes our cookies from a `Cookie` header value; `None` when nothing is left.
fn strip_cookies(value: &str, ours: &[impl AsRef<str>]) -> Option<String> {
    let kept: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            !ours
                .iter()
                .any(|name| pair.split_once('=').map_or(*pair, |(k, _)| k) == name.as_ref())
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> Self::CTX {
        RequestCtx::default()
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<bool> {
        let state = self.state();
        limit_keepalive(session, state.config.limits.keepalive_timeout);
        let (authority, target) = match host_and_target(session.req_header()) {
            Ok(found) => found,
            Err(why) => {
                tracing::info!(reason = %why, "proxy request refused: ambiguous host or target");
                state.metrics.refused_targets.inc();
                return respond(
                    session,
                    text(StatusCode::BAD_REQUEST, format!("bad request: {why}\n")),
                )
                .await;
            }
        };
        if is_portal_path(target.path()) {
            let response =
                match read_request(session, PROXY_MOUNT, &state.config.trusted_proxies).await {
                    Ok(request) => self.portal.handle(request).await,
                    Err(response) => response,
                };
            return respond(session, response).await;
        }
        let header = session.req_header();
        // Texts only for a page shown here, never for a request that passes.
        let texts = || crate::portal::common::texts_of(state, &header.headers);
        let host = authority.host();
        let Some(upstream) = state.config.upstreams.iter().position(|u| u.serves(host)) else {
            let t = texts();
            return respond(
                session,
                message(
                    StatusCode::NOT_FOUND,
                    t,
                    PROXY_MOUNT,
                    t.not_found_title,
                    t.not_found,
                ),
            )
            .await;
        };
        let facts = RequestFacts {
            host,
            path: target.path(),
            query: target.query(),
            method: header.method.as_str(),
            client_ip: client_ip(
                peer_ip(session),
                &header.headers,
                &state.config.trusted_proxies,
            ),
        };
        let cookies = header
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        let decision = decide(
            &state.sessions,
            &state.config.access,
            &facts,
            Some(&cookies),
            state.config.second_factor.enrollment_redirect,
            now(),
        )
        .await;
        if let Ok(d) = &decision {
            state.metrics.decision(d);
        }
        match decision {
            Ok(Decision::Allow(identity)) => {
                ctx.upstream = Some(upstream);
                ctx.identity = identity;
                if !target.is_spelled(header.uri.path_and_query().map_or("/", |p| p.as_str())) {
                    ctx.rewritten =
                        Some(target.path_and_query().parse().map_err(|_| {
                            pingora::Error::new_str("canonical target is not a URI")
                        })?);
                }
                ctx.authority = Some(authority);
                Ok(false)
            }
            Ok(decision @ (Decision::Login | Decision::Enroll)) => {
                let response = if accepts_html(&header.headers) {
                    let rd: String =
                        url::form_urlencoded::byte_serialize(target.path_and_query().as_bytes())
                            .collect();
                    let page = if matches!(decision, Decision::Enroll) {
                        "settings"
                    } else {
                        ""
                    };
                    // A session cookie that no longer resolves: the session expired or
                    // was ended while the panel was open; the sign-in page says so. (A
                    // lookup on this path only, never on a request that passes.)
                    let expired = matches!(decision, Decision::Login)
                        && crate::auth::session::cookie_value(
                            &cookies,
                            &state.sessions.config().cookie_name,
                        )
                        .is_some_and(|value| {
                            state
                                .sessions
                                .resolve_now(value, now())
                                .is_some_and(|found| matches!(found, Ok(None)))
                        });
                    let expired = if expired { "expired=1&" } else { "" };
                    redirect(
                        StatusCode::FOUND,
                        &format!("{PROXY_MOUNT}/{page}?{expired}rd={rd}"),
                    )
                } else {
                    text(StatusCode::UNAUTHORIZED, "login required")
                };
                respond(session, response).await
            }
            Ok(Decision::Deny) => {
                let rd: String = target.path_and_query().to_string();
                let t = texts();
                let page = if accepts_html(&header.headers) {
                    crate::portal::denied_page(state, t, PROXY_MOUNT, &cookies, &rd).await
                } else {
                    message(
                        StatusCode::FORBIDDEN,
                        t,
                        PROXY_MOUNT,
                        t.denied_title,
                        t.denied,
                    )
                };
                respond(session, page).await
            }
            Err(e) => {
                let page = crate::portal::error_page(&e, texts(), PROXY_MOUNT);
                respond(session, page).await
            }
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        let index = ctx
            .upstream
            .ok_or_else(|| pingora::Error::new_str("no upstream chosen"))?;
        let config = &self.state().config;
        let upstream = &config.upstreams[index];
        let mut peer = HttpPeer::new(upstream.address, upstream.tls, upstream.sni.clone());
        peer.options.connection_timeout = Some(config.upstream_connect_timeout);
        peer.options.total_connection_timeout = Some(config.upstream_connect_timeout);
        // A WebSocket may stay quiet for long: the read timeout is for HTTP answers.
        if !session
            .req_header()
            .headers
            .contains_key(http::header::UPGRADE)
        {
            peer.options.read_timeout = Some(config.upstream_read_timeout);
        }
        Ok(Box::new(peer))
    }

    /// A panel that cannot be reached or does not answer in time gets the client a page
    /// that says so (502 / 504), not a hung connection or an empty answer.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        _ctx: &mut Self::CTX,
    ) -> FailToProxy {
        use pingora::{ErrorSource, ErrorType};
        let t = crate::portal::common::texts_of(self.state(), &session.req_header().headers);
        let (status, title, text) = match (e.esource(), e.etype()) {
            (_, ErrorType::HTTPStatus(code)) => {
                let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_GATEWAY);
                (status, t.error_title, t.error_title)
            }
            (ErrorSource::Upstream, ErrorType::ReadTimedout | ErrorType::WriteTimedout) => (
                StatusCode::GATEWAY_TIMEOUT,
                t.gateway_timeout_title,
                t.gateway_timeout,
            ),
            (ErrorSource::Upstream, _) => {
                (StatusCode::BAD_GATEWAY, t.bad_gateway_title, t.bad_gateway)
            }
            (
                ErrorSource::Downstream,
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed,
            ) => {
                return FailToProxy {
                    error_code: 0,
                    can_reuse_downstream: false,
                }
            }
            (ErrorSource::Downstream, _) => (StatusCode::BAD_REQUEST, t.error_title, t.error_title),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                t.error_title,
                t.error_title,
            ),
        };
        tracing::warn!(status = status.as_u16(), error = %e, "proxying failed");
        let _ = respond(session, message(status, t, PROXY_MOUNT, title, text)).await;
        FailToProxy {
            error_code: status.as_u16(),
            can_reuse_downstream: false,
        }
    }

    /// A panel never sets our cookies (a planted session or device id would be fixed
    /// on the browser): its `Set-Cookie` lines that name one are dropped.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        if !response.headers.contains_key(http::header::SET_COOKIE) {
            return Ok(());
        }
        let ours = self.state().sessions.our_cookie_names();
        let all: Vec<http::HeaderValue> = response
            .headers
            .get_all(http::header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        let kept: Vec<http::HeaderValue> = all
            .iter()
            .filter(|v| {
                let name = v
                    .to_str()
                    .ok()
                    .and_then(|c| c.split_once('='))
                    .map(|(name, _)| name.trim());
                !name.is_some_and(|n| ours.iter().any(|o| o == n))
            })
            .cloned()
            .collect();
        if kept.len() != all.len() {
            tracing::warn!("a panel tried to set one of gatehouse's cookies; dropped");
            response.remove_header(&http::header::SET_COOKIE);
            for value in kept {
                response.append_header(http::header::SET_COOKIE, value)?;
            }
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        // The panel serves exactly what the rules judged: the canonical target.
        if let Some(uri) = ctx.rewritten.take() {
            request.set_uri(uri);
        } else {
            // Forward the origin form the rules judged (an absolute-form request line
            // names the same host; the panel gets only the path).
            let origin = request.uri.path_and_query().map_or("/", |p| p.as_str());
            if request.uri.authority().is_some() {
                let uri = origin
                    .parse::<http::Uri>()
                    .map_err(|_| pingora::Error::new_str("target is not a URI"))?;
                request.set_uri(uri);
            }
        }
        let spoofed: Vec<http::HeaderName> = request
            .headers
            .keys()
            .filter(|k| is_identity_header(k.as_str()))
            .cloned()
            .collect();
        for name in spoofed {
            request.remove_header(&name);
        }
        let state = self.state();
        let ours = state.sessions.our_cookie_names();
        let cookies = request
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        request.remove_header(&http::header::COOKIE);
        if let Some(kept) = strip_cookies(&cookies, ours) {
            request.insert_header(http::header::COOKIE, kept)?;
        }
        if let Some(identity) = &ctx.identity {
            let user = &identity.user;
            request.insert_header("Remote-User", user.username.as_str())?;
            request.insert_header("Remote-Groups", user.groups.join(","))?;
            request.insert_header("Remote-Email", user.email.as_str())?;
            if let Ok(name) = http::HeaderValue::from_bytes(user.display_name.as_bytes()) {
                request.insert_header("Remote-Name", name)?;
            }
        }
        // The panel's Host is the normalised one the rules matched.
        let authority = ctx
            .authority
            .as_ref()
            .ok_or_else(|| pingora::Error::new_str("no host judged"))?
            .to_string();
        request.insert_header(http::header::HOST, authority.as_str())?;
        let peer = peer_ip(session);
        let peer_trusted =
            peer.is_some_and(|ip| state.config.trusted_proxies.iter().any(|n| n.contains(&ip)));
        // All the lines a trusted proxy sent, in order, then the peer.
        let existing: Vec<String> = request
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let forwarded_for = match (existing.is_empty(), peer) {
            (false, Some(peer)) if peer_trusted => format!("{}, {peer}", existing.join(", ")),
            (_, Some(peer)) => peer.to_string(),
            (_, None) => String::new(),
        };
        request.remove_header("x-forwarded-for");
        if !forwarded_for.is_empty() {
            request.insert_header("X-Forwarded-For", forwarded_for)?;
        }
        if !peer_trusted {
            // Headers some panels route or trust by (Symfony/Zend/IIS rewrite headers,
            // RFC 7239, nginx's real-IP convention): a client never chooses them.
            for name in [
                "x-original-url",
                "x-rewrite-url",
                "forwarded",
                "x-real-ip",
                "x-forwarded-port",
                "x-forwarded-prefix",
            ] {
                request.remove_header(name);
            }
            request.insert_header("X-Forwarded-Proto", "http")?;
            request.insert_header("X-Forwarded-Host", authority)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_cookies_are_stripped_and_others_kept() {
        assert_eq!(
            strip_cookies("a=1; gh=x; gh_csrf=y; b=2", &["gh", "gh_csrf"]).as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(strip_cookies("gh=x", &["gh", "gh_csrf"]), None);
        assert_eq!(strip_cookies("ghx=1", &["gh"]).as_deref(), Some("ghx=1"));
    }

    #[test]
    fn portal_prefix_is_exact() {
        assert!(is_portal_path("/.gatehouse"));
        assert!(is_portal_path("/.gatehouse/login"));
        assert!(!is_portal_path("/.gatehousex"));
        assert!(!is_portal_path("/app/.gatehouse/"));
    }
}
