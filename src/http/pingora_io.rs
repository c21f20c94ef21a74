//! Converting between pingora's sessions and the portal's [`Request`]/[`Response`].

use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;

use crate::http::{client_ip, Request, Response, MAX_BODY};

/// The peer's IP address of a pingora session.
pub fn peer_ip(session: &ServerSession) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        // An IPv4 client on a dual-stack listener arrives as `::ffff:a.b.c.d`.
        .map(|a| a.ip().to_canonical())
}

/// Limits how long a kept-alive connection waits for its next request (pingora's own
/// default is 60 s), where pingora keeps it alive at all: never turns keep-alive back
/// on for a connection pingora has decided to close (a request framed by both
/// `Transfer-Encoding` and `Content-Length`, an HTTP/1.0 client that did not ask for
/// it, a server shutting down).
pub fn limit_keepalive(session: &mut ServerSession, timeout: std::time::Duration) {
    if session.get_keepalive().is_some() {
        session.set_keepalive(Some(timeout.as_secs().max(1)));
    }
}

/// Reads the request (and its body, up to [`MAX_BODY`]) for the portal mounted at `mount`.
/// `Err` carries the response to send instead (body too large).
pub async fn read_request(
    session: &mut ServerSession,
    mount: &'static str,
    trusted: &[IpNet],
) -> Result<Request, Response> {
    let header = session.req_header();
    let raw = header
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target = crate::http::target::canonical_target(raw).map_err(|e| {
        crate::http::text(
            http::StatusCode::BAD_REQUEST,
            format!("bad request target: {e}"),
        )
    })?;
    let path = target
        .path()
        .strip_prefix(mount)
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/")
        .to_string();
    let mut request = Request {
        method: header.method.clone(),
        path,
        query: target.query().map(str::to_string),
        headers: header.headers.clone(),
        body: Bytes::new(),
        client_ip: None,
        mount,
    };
    request.client_ip = client_ip(peer_ip(session), &request.headers, trusted);
    let mut body = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(crate::http::text(
                        http::StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large",
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "reading request body failed");
                return Err(crate::http::text(
                    http::StatusCode::BAD_REQUEST,
                    "could not read the request body",
                ));
            }
        }
    }
    request.body = body.freeze();
    Ok(request)
}

/// Splits a complete response into pingora's header and body.
pub fn into_pingora(response: Response) -> (ResponseHeader, Bytes) {
    let (parts, body) = response.into_parts();
    (ResponseHeader::from(parts), Bytes::from(body))
}
