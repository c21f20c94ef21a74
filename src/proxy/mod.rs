//! Proxy mode: a pingora [`ProxyHttp`] in front of one or more panels, chosen by `Host`.
//!
//! `request_filter` serves the portal under `/.gatehouse/`, then asks [`decide`] about
//! everything else: allowed requests go on to the panel, others get a redirect to the
//! login page (or 401/403) written here. `upstream_request_filter` removes every
//! client-sent identity header and our own cookies, then sets the identity headers.

use std::sync::Arc;

use async_trait::async_trait;
use http::StatusCode;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};

use crate::auth::gate::{decide, Decision};
use crate::auth::now;
use crate::auth::session::Identity;
use crate::http::pingora_io::{into_pingora, peer_ip, read_request};
use crate::http::{
    accepts_html, bare_host, client_ip, is_identity_header, redirect, text, Response,
};
use crate::policy::RequestFacts;
use crate::portal::i18n::texts_for;
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
    client_ip: Option<std::net::IpAddr>,
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
fn strip_cookies(value: &str, ours: &[&str]) -> Option<String> {
    let kept: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            !ours
                .iter()
                .any(|name| pair.split_once('=').map_or(*pair, |(k, _)| k) == *name)
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
        if is_portal_path(session.req_header().uri.path()) {
            let response =
                match read_request(session, PROXY_MOUNT, &state.config.trusted_proxies).await {
                    Ok(request) => self.portal.handle(request).await,
                    Err(response) => response,
                };
            return respond(session, response).await;
        }
        let header = session.req_header();
        let t = texts_for(
            header
                .headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok()),
        );
        let authority = header
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| header.uri.authority().map(|a| a.as_str()))
            .unwrap_or("");
        let host = bare_host(authority);
        let Some(upstream) = state.config.upstreams.iter().position(|u| u.serves(&host)) else {
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
        let path = header
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        ctx.client_ip = client_ip(
            peer_ip(session),
            &header.headers,
            &state.config.trusted_proxies,
        );
        let facts = RequestFacts {
            host: &host,
            path,
            method: header.method.as_str(),
            client_ip: ctx.client_ip,
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
        );
        if let Ok(d) = &decision {
            state.metrics.decision(d);
        }
        match decision {
            Ok(Decision::Allow(identity)) => {
                ctx.upstream = Some(upstream);
                ctx.identity = identity;
                Ok(false)
            }
            Ok(decision @ (Decision::Login | Decision::Enroll)) => {
                let response = if accepts_html(&header.headers) {
                    let rd: String =
                        url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                    let page = if matches!(decision, Decision::Enroll) {
                        "settings"
                    } else {
                        ""
                    };
                    redirect(StatusCode::FOUND, &format!("{PROXY_MOUNT}/{page}?rd={rd}"))
                } else {
                    text(StatusCode::UNAUTHORIZED, "login required")
                };
                respond(session, response).await
            }
            Ok(Decision::Deny) => {
                respond(
                    session,
                    message(
                        StatusCode::FORBIDDEN,
                        t,
                        PROXY_MOUNT,
                        t.denied_title,
                        t.denied,
                    ),
                )
                .await
            }
            Err(e) => respond(session, crate::portal::error_page(&e, t, PROXY_MOUNT)).await,
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        let index = ctx
            .upstream
            .ok_or_else(|| pingora::Error::new_str("no upstream chosen"))?;
        let upstream = &self.state().config.upstreams[index];
        Ok(Box::new(HttpPeer::new(
            upstream.address,
            upstream.tls,
            upstream.sni.clone(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        let spoofed: Vec<String> = request
            .headers
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| is_identity_header(k))
            .collect();
        for name in spoofed {
            request.remove_header(&name);
        }
        let state = self.state();
        let session_cookie = state.sessions.config().cookie_name.as_str();
        let csrf_cookie = state.sessions.csrf_cookie_name();
        let cookies: Vec<String> = request
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        request.remove_header(&http::header::COOKIE);
        if let Some(kept) = strip_cookies(&cookies.join("; "), &[session_cookie, &csrf_cookie]) {
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
        let peer = peer_ip(session);
        let peer_trusted =
            peer.is_some_and(|ip| state.config.trusted_proxies.iter().any(|n| n.contains(&ip)));
        let forwarded_for = match (
            request
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
            peer,
        ) {
            (Some(existing), Some(peer)) if peer_trusted => format!("{existing}, {peer}"),
            (_, Some(peer)) => peer.to_string(),
            (_, None) => String::new(),
        };
        if !forwarded_for.is_empty() {
            request.insert_header("X-Forwarded-For", forwarded_for)?;
        }
        if !peer_trusted {
            request.insert_header("X-Forwarded-Proto", "http")?;
            if let Some(host) = session
                .req_header()
                .headers
                .get(http::header::HOST)
                .cloned()
            {
                request.insert_header("X-Forwarded-Host", host)?;
            }
        }
        let _ = ctx.client_ip;
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
