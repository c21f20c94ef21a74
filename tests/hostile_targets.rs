//! The gate judges exactly the request the panel serves: a hostile corpus of request
//! targets and hosts, sent byte for byte through real nginx and real Caddy (running the
//! shipped examples) and through proxy mode, to a panel that decodes and normalises
//! paths as real frameworks do. Whatever the trick, the panel never serves `/admin` to
//! someone the rules keep out of it; the bypass path and ordinary pages still work.

mod common;

use common::fronts::{raw_request, start_caddy, start_nginx, start_panel, PanelKind};
use common::{free_port, Browser, Gatehouse, PASSWORD};

const RULES: &str = r#"
[access_control]
default_policy = "one_factor"
[[access_control.rules]]
domain = ["panel.example.test"]
resources = ["^/static/"]
policy = "bypass"
[[access_control.rules]]
domain = ["panel.example.test"]
resources = ["^/admin"]
subject = ["group:admins"]
policy = "two_factor"
[[access_control.rules]]
domain = ["panel.example.test"]
resources = ["^/admin"]
policy = "deny"
"#;

/// Targets a normalising panel serves as `/admin` (or tries to), sent anonymously.
const CLIMBING_OUT_OF_THE_BYPASS: &[&str] = &[
    "/static/../admin",
    "/static/%2e%2e/admin",
    "/static/%2E%2E/admin",
    "/static/.%2e/admin",
    "/static/%2e./admin",
    "/static/..%2fadmin",
    "/static/..%2Fadmin",
    "/static/%2e%2e%2fadmin",
    "/static/..%5cadmin",
    "/static/..%5Cadmin",
    "/static/..\\admin",
    "/static/..;/admin",
    "/static/%2e%2e;/admin",
    "/static/..%3b/admin",
    "/static/%252e%252e/admin",
    "/static/..%252fadmin",
    "/static/./../admin",
    "/static//../admin",
    "/static/x/../../admin",
    "/static/../admin?x=1",
    "/static/../%61dmin",
    "/static/..%00/admin",
    "/static/%2e%2e%00/admin",
    "/./static/../admin",
    "/static/../admin/",
    "/static/../../admin",
    "/static/%2e%2e/%2e%2e/admin",
    "/static/..%2f..%2fadmin",
    "/static/%c0%ae%c0%ae/admin",
    // Climbing out of /admin into the bypass: a panel that does not resolve dot
    // segments (Flask) serves /admin/<path> while a resolving gate would see /static/.
    "/admin/../static/x",
    "/admin/%2e%2e/static/x",
    "/admin/./x/../../static/y",
    "/admin/.%2e/static/x",
];

/// Spellings of `/admin` a signed-in user outside `admins` (or an admin without the
/// second factor) tries.
const SPELLINGS_OF_ADMIN: &[&str] = &[
    "/admin",
    "/%61dmin",
    "/adm%69n",
    "//admin",
    "///admin",
    "/%2fadmin",
    "/%2Fadmin",
    "/./admin",
    "/%2e/admin",
    "/admin/",
    "/admin?x.css",
    "/x/../admin",
    "/static/../admin",
    "/%5cadmin",
    "/\\admin",
    "/admin%2f",
    "/admin/.",
    // Path parameters: Tomcat strips `;...` before routing.
    "/;/admin",
    "/admin;x.css",
    "/admin;jsessionid=1",
];

fn get(target: &str, host: &str, cookie: &str) -> String {
    let cookie = if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    };
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n{cookie}Connection: close\r\n\r\n"
    )
}

/// What the panel served for a request, if it answered at all.
fn served(response: &str) -> Option<&str> {
    response.lines().find_map(|l| l.strip_prefix("served="))
}

async fn session_cookie(login_url: &str, user: &str) -> String {
    let mut browser = Browser::new(&["panel.example.test", "auth.example.test"]);
    let first = browser.get(login_url).await;
    let login = first.location.unwrap_or_else(|| login_url.to_string());
    let login = if login.starts_with('/') {
        format!(
            "{}{login}",
            login_url.split('/').take(3).collect::<Vec<_>>().join("/")
        )
    } else {
        login
    };
    let done = browser.log_in(&login, user, PASSWORD).await;
    assert_eq!(done.status, 303, "{user} logs in: {}", done.body);
    // The session cookie alone: the CSRF cookie is host-only on the portal's host, and a
    // browser would not send it to the panel's.
    format!("gatehouse_session={}", browser.cookies["gatehouse_session"])
}

/// Runs the corpus against a front on `port` serving `panel.example.test`.
async fn corpus_never_reaches_admin(port: u16, bob: &str, ann: &str, what: &str) {
    let host = format!("panel.example.test:{port}");
    // Controls: the bypass and an ordinary page work, so refusals below mean something.
    let (_, r) = raw_request(port, &get("/static/app.css", &host, "")).await;
    assert_eq!(served(&r), Some("/static/app.css"), "{what}: bypass: {r}");
    let (_, r) = raw_request(port, &get("/home", &host, bob)).await;
    assert_eq!(served(&r), Some("/home"), "{what}: bob's page: {r}");
    assert!(r.contains("remote-user=bob"), "{what}: {r}");
    // The session cookie stays between the browser and gatehouse; the panel's own pass.
    for cookies in [
        format!("theme=dark; {bob}"),
        format!("{bob}; theme=dark"),
        format!("theme=dark;\t{bob}"),
    ] {
        let (_, r) = raw_request(port, &get("/home", &host, &cookies)).await;
        assert_eq!(served(&r), Some("/home"), "{what}: {r}");
        let seen = r.lines().find(|l| l.starts_with("cookie=")).unwrap_or("");
        assert!(seen.contains("theme=dark"), "{what}: {seen}");
        assert!(!seen.contains("gatehouse_session"), "{what}: {seen}");
    }

    // The cookie twice (tossed from a sibling subdomain): neither is believed, so the
    // request is not signed in and no copy can slip past a front's cookie filter.
    let twice = format!("{bob}; theme=dark; {bob}");
    let (_, r) = raw_request(port, &get("/home", &host, &twice)).await;
    assert!(
        !r.lines()
            .any(|l| l.starts_with("cookie=") && l.contains("gatehouse_session")),
        "{what}: {r}"
    );
    assert_ne!(served(&r), Some("/home"), "{what}: not signed in: {r}");

    let mut failures = Vec::new();
    for target in CLIMBING_OUT_OF_THE_BYPASS {
        let (status, r) = raw_request(port, &get(target, &host, "")).await;
        if served(&r).is_some_and(|p| p.starts_with("/admin")) {
            failures.push(format!(
                "anonymous {target} -> {status} served {:?}",
                served(&r)
            ));
        }
    }
    for (who, cookie) in [("bob", bob), ("ann without 2FA", ann)] {
        for target in SPELLINGS_OF_ADMIN {
            let (status, r) = raw_request(port, &get(target, &host, cookie)).await;
            if served(&r).is_some_and(|p| p.starts_with("/admin")) {
                failures.push(format!(
                    "{who} {target} -> {status} served {:?}",
                    served(&r)
                ));
            }
        }
    }
    // Host tricks: the host the rules judge is the one the request goes to.
    let tricks = [
        (get("/admin", &format!("panel.example.test:{port}\\static\\x#"), ""), "backslash host"),
        (
            format!("GET http://panel.example.test:{port}/admin HTTP/1.1\r\nHost: panel.example.test:{port}\\static\\x#\r\nConnection: close\r\n\r\n"),
            "absolute-form with a backslash host",
        ),
        (
            format!("GET http://panel.example.test:{port}/admin HTTP/1.1\r\nHost: panel.example.test:{port}?/static/x\r\nConnection: close\r\n\r\n"),
            "absolute-form with a query in Host",
        ),
        (get("/admin", &format!("panel.example.test.:{port}"), bob), "trailing dot, bob"),
        (get("/admin", &format!("PANEL.Example.TEST:{port}"), bob), "upper case, bob"),
        (get("/admin", &format!("panel.example.test.:{port}"), ""), "trailing dot, anonymous"),
    ];
    for (request, name) in tricks {
        let (status, r) = raw_request(port, &request).await;
        if served(&r).is_some_and(|p| p.starts_with("/admin")) {
            failures.push(format!("{name} -> {status} served {:?}", served(&r)));
        }
    }
    assert!(
        failures.is_empty(),
        "{what}: the panel served /admin to someone the rules keep out:\n{}",
        failures.join("\n")
    );
}

fn forward_auth_config(front: u16) -> String {
    format!(
        "[portal]\nurl = \"http://auth.example.test:{front}/\"\n[session]\ndomain = \"example.test\"\nsecure = false\n{RULES}"
    )
}

#[tokio::test]
async fn hostile_targets_through_nginx_never_reach_what_the_rules_refuse() {
    for kind in [PanelKind::Normalising, PanelKind::Literal] {
        let front = free_port();
        let (panel, _panel) = start_panel(kind);
        let gate = Gatehouse::start(&forward_auth_config(front));
        let _nginx = start_nginx(&gate.dir.path().join("nginx"), front, gate.portal, panel);
        let home = format!("http://panel.example.test:{front}/home");
        let bob = session_cookie(&home, "bob").await;
        let ann = session_cookie(&home, "ann").await;
        corpus_never_reaches_admin(front, &bob, &ann, &format!("nginx, {kind:?} panel")).await;
    }
}

#[tokio::test]
async fn hostile_targets_through_caddy_never_reach_what_the_rules_refuse() {
    for kind in [PanelKind::Normalising, PanelKind::Literal] {
        let front = free_port();
        let (panel, _panel) = start_panel(kind);
        let gate = Gatehouse::start(&forward_auth_config(front));
        let _caddy = start_caddy(&gate.dir.path().join("caddy"), front, gate.portal, panel);
        let home = format!("http://panel.example.test:{front}/home");
        let bob = session_cookie(&home, "bob").await;
        let ann = session_cookie(&home, "ann").await;
        corpus_never_reaches_admin(front, &bob, &ann, &format!("caddy, {kind:?} panel")).await;
    }
}

#[tokio::test]
async fn hostile_targets_in_proxy_mode_never_reach_what_the_rules_refuse_and_the_panel_gets_the_canonical_path(
) {
    // The panel receives the canonical target, so even a literal one serves what the
    // rules judged.
    let (panel, _panel) = start_panel(PanelKind::Literal);
    let gate = Gatehouse::start(&format!(
        "[proxy]\nlisten = \"127.0.0.1:{{proxy}}\"\n[[proxy.upstreams]]\nhosts = [\"panel.example.test\"]\naddress = \"{panel}\"\n[session]\nsecure = false\n{RULES}"
    ));
    let port = gate.proxy;
    let home = format!("http://panel.example.test:{port}/home");
    let bob = session_cookie(&home, "bob").await;
    let ann = session_cookie(&home, "ann").await;
    corpus_never_reaches_admin(port, &bob, &ann, "proxy mode").await;

    let host = format!("panel.example.test:{port}");
    // The panel receives the canonical target the rules judged, never the raw bytes.
    let (_, r) = raw_request(port, &get("/static/./x/..//%61pp.css?v=1", &host, "")).await;
    assert!(r.contains("raw=/static/app.css?v=1\n"), "{r}");
    // An ambiguous target is refused, never guessed.
    for target in [
        "/static/..%2fadmin",
        "/static/..\\admin",
        "/static/../../x",
        "/a%zz",
    ] {
        let (status, r) = raw_request(port, &get(target, &host, "")).await;
        assert_eq!(status, 400, "{target}: {r}");
    }
}

/// A request framed both by `Transfer-Encoding` and by `Content-Length` is a smuggling
/// attempt (RFC 9112 §6.1): whatever is answered, the connection ends with it, on both
/// listeners; so does that of an HTTP/1.0 client that did not ask to keep it.
#[tokio::test]
async fn a_request_framed_twice_or_from_http_1_0_ends_its_connection() {
    let (panel, _panel) = start_panel(PanelKind::Literal);
    let gate = Gatehouse::start(&format!(
        "[proxy]\nlisten = \"127.0.0.1:{{proxy}}\"\n[[proxy.upstreams]]\nhosts = [\"panel.example.test\"]\naddress = \"{panel}\"\n[session]\nsecure = false\n{RULES}"
    ));
    let twice = |host: &str| {
        format!(
            "POST /static/x HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\
             Content-Length: 5\r\n\r\n0\r\n\r\n"
        )
    };
    let old = |host: &str| format!("GET /static/x HTTP/1.0\r\nHost: {host}\r\n\r\n");
    let proxy_host = format!("panel.example.test:{}", gate.proxy);
    for (port, head) in [
        (gate.portal, twice("127.0.0.1")),
        (gate.portal, old("127.0.0.1")),
        (gate.proxy, twice(&proxy_host)),
        (gate.proxy, old(&proxy_host)),
    ] {
        let started = std::time::Instant::now();
        let (status, r) = raw_request(port, &head).await;
        // raw_request reads until the server closes (or gives up after 10 s); a kept
        // connection would wait for the keep-alive timeout.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the connection was kept after {head:?}: {r}"
        );
        assert_ne!(status, 0, "{head:?}: {r}");
        assert!(
            !r.to_ascii_lowercase().contains("connection: keep-alive"),
            "{head:?}: {r}"
        );
    }
}
