//! HTTP plumbing shared by the portal, forward-auth and the proxy: the framework-free
//! [`Request`] the portal handles, response builders that always add the security
//! headers, form parsing, client-IP resolution and `rd` validation.

pub mod guard;
pub mod host_pattern;
pub mod pingora_io;
pub mod redirect;
pub mod target;

use std::net::IpAddr;

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION,
};
use http::{HeaderMap, Method, StatusCode};
use ipnet::IpNet;

/// Largest request body the portal reads (forms are tiny).
pub const MAX_BODY: usize = 64 * 1024;

/// A request as the portal sees it, whichever listener it came in on.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path below the mount point, always starting with `/`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client, after trusted-proxy resolution.
    pub client_ip: Option<IpAddr>,
    /// Where the portal is mounted: `""` on its own host, `/.gatehouse` in proxy mode.
    pub mount: &'static str,
}

impl Request {
    /// `GET /api/authz/auth-request` with `headers`, as nginx's `auth_request` sends it
    /// (built by the fuzzers and the benchmarks).
    pub fn auth_request(headers: HeaderMap, client_ip: Option<IpAddr>) -> Request {
        Request {
            method: Method::GET,
            path: "/api/authz/auth-request".into(),
            query: None,
            headers,
            body: Bytes::new(),
            client_ip,
            mount: "",
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// One query parameter, decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The body as an urlencoded form.
    pub fn form(&self) -> Form {
        Form(
            url::form_urlencoded::parse(&self.body)
                .into_owned()
                .collect(),
        )
    }

    /// The IP as text for logs and records.
    pub fn ip_text(&self) -> String {
        self.client_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    /// Whether the client wants HTML (browsers) rather than an API answer.
    pub fn accepts_html(&self) -> bool {
        accepts_html(&self.headers)
    }
}

/// Browsers say `text/html`; `*/*` (curl) counts too; XHR that says so does not.
pub fn accepts_html(headers: &HeaderMap) -> bool {
    if headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"xmlhttprequest"))
    {
        return false;
    }
    match headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    {
        Some(accept) => accept.contains("text/html") || accept.contains("*/*"),
        None => false,
    }
}

/// Decoded form fields.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// Every field in order.
    pub fn fields(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A complete response: status, headers, body.
pub type Response = http::Response<Vec<u8>>;

/// Adds the headers every gatehouse page carries.
pub fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, name: &'static str, value: &'static str| {
        h.entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    // `same-origin`, not `no-referrer`: with `no-referrer` browsers send `Origin: null`
    // on our own form posts, and the CSRF check could not tell them from a forged one.
    set(h, "referrer-policy", "same-origin");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(
        h,
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    );
    set(h, "cache-control", "no-store");
    let len = response.body().len();
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    response
}

fn build(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = http::Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// An HTML page.
pub fn html(status: StatusCode, body: String) -> Response {
    secure(build(status, "text/html; charset=utf-8", body.into_bytes()))
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    secure(build(
        status,
        "text/plain; charset=utf-8",
        body.into().into_bytes(),
    ))
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    secure(build(
        status,
        "application/json",
        value.to_string().into_bytes(),
    ))
}

/// A redirect; `location` must already be validated.
pub fn redirect(status: StatusCode, location: &str) -> Response {
    let mut r = build(status, "text/plain; charset=utf-8", Vec::new());
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    secure(r)
}

/// A static asset that may be cached.
pub fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    owned_asset(content_type, body.to_vec())
}

/// [`asset`] for bytes made at start (the operator's logo and colours).
pub fn owned_asset(content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = build(StatusCode::OK, content_type, body);
    r.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    secure(r)
}

/// Adds a `Set-Cookie` line.
pub fn add_cookie(response: &mut Response, set_cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(set_cookie) {
        response.headers_mut().append(http::header::SET_COOKIE, v);
    }
}

/// The real client address: the peer, unless the peer is a trusted proxy, in which case
/// `X-Forwarded-For` is read from the right, across all its header lines together (the
/// last line is the newest: HAProxy's `option forwardfor` appends a line), skipping
/// only the hops that trusted proxies appended. Whatever the client wrote itself, on
/// the left, is never reached while a trusted proxy added the client's real address.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = peer?.to_canonical();
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut last_trusted = peer;
    let lines: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
    for value in lines.into_iter().rev() {
        let Ok(value) = value.to_str() else {
            return Some(last_trusted);
        };
        for hop in value.split(',').rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if is_trusted(&ip) => last_trusted = ip,
                Ok(ip) => return Some(ip),
                Err(_) => return Some(last_trusted),
            }
        }
    }
    Some(last_trusted)
}

/// The identity headers gatehouse sets for the panel; clients may never send these.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "remote-user",
    "remote-groups",
    "remote-email",
    "remote-name",
];

/// Identity headers other gateways and panels read (oauth2-proxy, Authentik, Apache,
/// Grafana, Gitea, ...): a client must not be able to send any of them to a panel.
pub const FOREIGN_IDENTITY_HEADERS: [&str; 20] = [
    "x-remote-user",
    "x-remote-email",
    "x-remote-groups",
    "x-remote-name",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-auth-request-access-token",
    "x-authentik-username",
    "x-authentik-email",
    "x-authentik-groups",
    "x-webauth-user",
    "x-authenticated-user",
    "x-user",
];

/// Whether a client header name would be read as an identity by some backend: ours
/// and the common ones of other gateways, in any case, and `_` for `-` (CGI maps both
/// to `HTTP_REMOTE_USER`).
pub fn is_identity_header(name: &str) -> bool {
    IDENTITY_HEADERS
        .iter()
        .chain(FOREIGN_IDENTITY_HEADERS.iter())
        .any(|known| same_header_name(name, known))
}

/// `name` spells `known` (lower case, `-`) in any case and with `_` for `-`, as some
/// servers (CGI, PHP) read them. Without allocating: it runs for every header of every
/// proxied request.
fn same_header_name(name: &str, known: &str) -> bool {
    name.len() == known.len()
        && name.bytes().zip(known.bytes()).all(|(a, b)| {
            let a = if a == b'_' {
                b'-'
            } else {
                a.to_ascii_lowercase()
            };
            a == b
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.7".parse().unwrap());
        let trusted = vec!["127.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(Some("203.0.113.9".parse().unwrap()), &h, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn trusted_peer_hands_over_to_rightmost_untrusted_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.2.3.4, 198.51.100.7, 127.0.0.2".parse().unwrap(),
        );
        let trusted = vec!["127.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(Some("127.0.0.1".parse().unwrap()), &h, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
    }

    #[test]
    fn forwarded_for_lines_are_read_newest_first() {
        let mut h = HeaderMap::new();
        // The client's own line first, the line HAProxy appended last.
        h.append("x-forwarded-for", "10.9.9.9".parse().unwrap());
        h.append("x-forwarded-for", "203.0.113.5".parse().unwrap());
        let trusted = vec!["127.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(Some("127.0.0.1".parse().unwrap()), &h, &trusted),
            Some("203.0.113.5".parse().unwrap())
        );
    }

    #[test]
    fn identity_header_names_match_any_case_and_underscores() {
        assert!(is_identity_header("Remote-User"));
        assert!(is_identity_header("REMOTE_USER"));
        assert!(is_identity_header("remote-groups"));
        assert!(is_identity_header("X-Forwarded-User"));
        assert!(is_identity_header("x_remote_user"));
        assert!(is_identity_header("X-Auth-Request-Email"));
        assert!(!is_identity_header("remote-addr"));
    }

    #[test]
    fn hosts_lose_port_and_case() {
        // What `bare_host` did, now the one parser's job (`target::parse_authority`).
        let host = |h: &str| target::parse_authority(h).unwrap().host().to_string();
        assert_eq!(host("Panel.Example.com:8443"), "panel.example.com");
        assert_eq!(host("[::1]:80"), "[::1]");
        assert_eq!(host("localhost"), "localhost");
    }

    #[test]
    fn every_response_carries_security_headers() {
        let r = html(StatusCode::OK, "<p>x</p>".into());
        for h in [
            "content-security-policy",
            "x-frame-options",
            "x-content-type-options",
            "referrer-policy",
            "cache-control",
            "content-length",
        ] {
            assert!(r.headers().contains_key(h), "missing {h}");
        }
        assert!(r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
    }
}
