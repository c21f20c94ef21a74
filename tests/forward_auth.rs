//! The forward-auth endpoints, asked directly the way nginx, Traefik and Caddy ask.

mod common;

use common::{forward_auth_config, Browser, Gatehouse, PASSWORD};
use gatehouse::portal::routes;

const FRONT: u16 = 8443;

struct Setup {
    gate: Gatehouse,
    browser: Browser,
}

impl Setup {
    async fn new() -> Self {
        Setup {
            gate: Gatehouse::start(&forward_auth_config(FRONT)),
            browser: Browser::new(&[]),
        }
    }

    async fn logged_in() -> Self {
        let mut s = Self::new().await;
        let done = s
            .browser
            .log_in(&s.gate.portal_url(routes::LOGIN_PAGE), "ann", PASSWORD)
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        s
    }

    async fn auth_request(&mut self, url: &str, method: &str) -> common::Page {
        let endpoint = self.gate.portal_url(routes::API_AUTHZ_AUTH_REQUEST);
        self.browser
            .get_with(
                &endpoint,
                &[("X-Original-URL", url), ("X-Original-Method", method)],
            )
            .await
    }

    async fn forward_auth(&mut self, path: &str, method: &str) -> common::Page {
        let endpoint = self.gate.portal_url(routes::API_AUTHZ_FORWARD_AUTH);
        let headers = [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "panel.example.test"),
            ("X-Forwarded-Uri", path),
            ("X-Forwarded-Method", method),
        ];
        self.browser.get_with(&endpoint, &headers).await
    }
}

fn login_location(target: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    format!("http://auth.example.test:{FRONT}/?rd={encoded}")
}

#[tokio::test]
async fn auth_request_without_session_answers_401_with_the_portal_login() {
    let mut s = Setup::new().await;
    let page = s
        .auth_request("https://panel.example.test/a?b=1", "GET")
        .await;
    assert_eq!(page.status, 401);
    assert_eq!(
        page.location.as_deref(),
        Some(login_location("https://panel.example.test/a?b=1").as_str())
    );
}

#[tokio::test]
async fn auth_request_with_session_answers_200_with_identity_headers() {
    let mut s = Setup::logged_in().await;
    let page = s.auth_request("https://panel.example.test/a", "POST").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["remote-user"], "ann");
    assert_eq!(page.headers["remote-groups"], "admins,staff");
    assert_eq!(page.headers["remote-email"], "ann@example.test");
    assert_eq!(page.headers["remote-name"], "Ann Admin");
}

#[tokio::test]
async fn auth_request_reads_forwarded_headers_without_original_url() {
    let mut s = Setup::new().await;
    let endpoint = s.gate.portal_url(routes::API_AUTHZ_AUTH_REQUEST);
    let headers = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "panel.example.test"),
        ("X-Forwarded-Uri", "/static/x.js"),
    ];
    assert_eq!(
        s.browser.get_with(&endpoint, &headers).await.status,
        200,
        "bypass rule matched on the forwarded target"
    );
}

#[tokio::test]
async fn deny_rule_answers_403_and_bypass_answers_200_with_empty_identity_headers() {
    let mut s = Setup::logged_in().await;
    let refused = s
        .auth_request("https://panel.example.test/forbidden", "GET")
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .location
            .as_deref()
            .is_some_and(|l| l.ends_with("/denied?rd=https%3A%2F%2Fpanel.example.test%2Fforbidden")),
        "the 403 names the portal's page for nginx's error_page: {:?}",
        refused.location
    );
    let mut anonymous = Setup::new().await;
    let page = anonymous
        .auth_request("https://panel.example.test/static/a.css", "GET")
        .await;
    assert_eq!(page.status, 200);
    // Present and empty: a front proxy that copies it never forwards a client's own
    // (or, with Caddy 2.6, a literal placeholder).
    for header in [
        "remote-user",
        "remote-groups",
        "remote-email",
        "remote-name",
    ] {
        assert_eq!(
            page.headers.get(header).map(|v| v.to_str().unwrap()),
            Some(""),
            "{header}"
        );
    }
}

#[tokio::test]
async fn forward_auth_redirects_get_with_302_and_post_with_303() {
    let mut s = Setup::new().await;
    let get = s.forward_auth("/x", "GET").await;
    assert_eq!(get.status, 302);
    assert_eq!(
        get.location.as_deref(),
        Some(login_location("https://panel.example.test/x").as_str())
    );
    assert_eq!(s.forward_auth("/x", "HEAD").await.status, 302);
    assert_eq!(s.forward_auth("/x", "POST").await.status, 303);
}

#[tokio::test]
async fn forward_auth_answers_401_to_clients_that_do_not_accept_html() {
    let mut s = Setup::new().await;
    s.browser.accept = "application/json";
    assert_eq!(s.forward_auth("/api", "GET").await.status, 401);
}

#[tokio::test]
async fn forward_auth_with_session_answers_200_with_identity() {
    let mut s = Setup::logged_in().await;
    let page = s.forward_auth("/x", "GET").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["remote-user"], "ann");
}

#[tokio::test]
async fn target_outside_protected_domains_gets_login_without_rd() {
    let mut s = Setup::new().await;
    let page = s.auth_request("https://evil.example.org/", "GET").await;
    assert_eq!(page.status, 401);
    assert_eq!(
        page.location.as_deref(),
        Some(format!("http://auth.example.test:{FRONT}/").as_str())
    );
}

#[tokio::test]
async fn request_without_target_is_a_bad_request() {
    let mut s = Setup::new().await;
    let page = s
        .browser
        .get(&s.gate.portal_url(routes::API_AUTHZ_FORWARD_AUTH))
        .await;
    assert_eq!(page.status, 400);
}

#[tokio::test]
async fn portal_login_returns_to_protected_rd_and_ignores_hostile_rd() {
    let mut s = Setup::new().await;
    let rd = "https://panel.example.test/after";
    let url = s.gate.portal_url(&format!(
        "{}?rd={}",
        routes::LOGIN_PAGE,
        url::form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
    ));
    let done = s.browser.log_in(&url, "ann", PASSWORD).await;
    assert_eq!(done.location.as_deref(), Some(rd));

    let signed_in = s
        .browser
        .get(&s.gate.portal_url(&format!(
            "{}?rd=https%3A%2F%2Fevil.example.org%2F",
            routes::LOGIN_PAGE
        )))
        .await;
    assert_eq!(
        signed_in.status, 200,
        "a hostile rd shows the signed-in page instead of redirecting"
    );
    assert!(signed_in.body.contains("Ann Admin"));
    let again = s
        .browser
        .get(&s.gate.portal_url(&format!(
            "{}?rd=https%3A%2F%2Fpanel.example.test%2Fnext",
            routes::LOGIN_PAGE
        )))
        .await;
    assert_eq!(
        again.location.as_deref(),
        Some("https://panel.example.test/next"),
        "already signed in: straight back"
    );
}

#[tokio::test]
async fn session_cookie_is_set_on_the_parent_domain() {
    let mut s = Setup::new().await;
    let done = s
        .browser
        .log_in(&s.gate.portal_url(routes::LOGIN_PAGE), "ann", PASSWORD)
        .await;
    let cookie = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("gatehouse_session="))
        .unwrap()
        .to_string();
    assert!(cookie.contains("Domain=example.test"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn health_endpoint_answers_ok() {
    let mut s = Setup::new().await;
    let page = s.browser.get(&s.gate.portal_url(routes::API_HEALTH)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("\"ok\""), "{}", page.body);
}

#[tokio::test]
async fn metrics_listener_counts_decisions_and_logins() {
    let metrics_port = common::free_port();
    let mut g = Gatehouse::configure(&forward_auth_config(FRONT));
    // The harness writes [server]; the metrics listener belongs there.
    let text = std::fs::read_to_string(&g.config_path).unwrap().replacen(
        "[server]\n",
        &format!("[server]\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n"),
        1,
    );
    std::fs::write(&g.config_path, text).unwrap();
    g.add_user("ann", &["--email", "ann@example.test"]);
    g.spawn();
    let mut s = Setup {
        gate: g,
        browser: Browser::new(&[]),
    };
    s.browser
        .log_in(
            &s.gate.portal_url(routes::LOGIN_PAGE),
            "ann",
            "wrong password",
        )
        .await;
    s.browser
        .log_in(&s.gate.portal_url(routes::LOGIN_PAGE), "ann", PASSWORD)
        .await;
    s.auth_request("https://panel.example.test/x", "GET").await;
    s.auth_request("https://panel.example.test/forbidden", "GET")
        .await;
    let body = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "gatehouse_password_logins_total{result=\"failure\"} 1",
        "gatehouse_password_logins_total{result=\"success\"} 1",
        "gatehouse_authz_decisions_total{decision=\"allow\"} 1",
        "gatehouse_authz_decisions_total{decision=\"deny\"} 1",
    ] {
        assert!(body.contains(line), "{line} missing from:\n{body}");
    }
}

/// A check nginx and Traefik send (no body, the route spelled exactly) is answered
/// straight from the request's header; any other spelling goes the portal's way. Both
/// must judge alike.
#[tokio::test]
async fn a_check_with_a_body_or_a_query_is_judged_like_a_plain_one() {
    let s = Setup::logged_in().await;
    let session = format!(
        "Cookie: gatehouse_session={}\r\n",
        s.browser.cookies["gatehouse_session"]
    );
    let ask = |line: &str, cookie: &str, body: &str| {
        format!(
            "{line} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-Host: panel.example.test\r\nX-Forwarded-Uri: /x\r\n{cookie}\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let route = routes::API_AUTHZ_FORWARD_AUTH;
    for (line, body) in [
        (format!("GET {route}"), ""),
        (format!("POST {route}"), "a body the check ignores"),
        (format!("GET {route}?x=1"), ""),
    ] {
        let (status, text) =
            common::fronts::raw_request(s.gate.portal, &ask(&line, &session, body)).await;
        assert_eq!(status, 200, "{line}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("remote-user: ann\r\n"),
            "{line}: {text}"
        );
        // Without the session, every spelling is refused alike.
        let (status, text) =
            common::fronts::raw_request(s.gate.portal, &ask(&line, "", body)).await;
        assert_eq!(status, 401, "{line}: {text}");
    }
}

/// The client a network rule judges is the one a trusted front proxy names, on the
/// direct path as on the portal's: never an address a client wrote itself.
#[tokio::test]
async fn a_network_rule_sees_the_client_a_trusted_proxy_names_and_no_other() {
    let rule = r#"
[[access_control.rules]]
domain = ["panel.example.test"]
resources = ["^/lan/"]
networks = ["10.0.0.0/8"]
policy = "bypass"
"#;
    let ask = |gate: &Gatehouse, forwarded_for: &'static str| {
        let endpoint = gate.portal_url(routes::API_AUTHZ_AUTH_REQUEST);
        async move {
            reqwest::Client::new()
                .get(endpoint)
                .header("X-Original-URL", "https://panel.example.test/lan/x")
                .header("X-Forwarded-For", forwarded_for)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Loopback is a trusted proxy by default: the address it names is the client.
    let gate = Gatehouse::start(&format!("{}{rule}", forward_auth_config(FRONT)));
    assert_eq!(ask(&gate, "10.1.2.3").await, 200);
    assert_eq!(ask(&gate, "192.0.2.1").await, 401);
    // From a peer that is not trusted, the header is the client's own word.
    let untrusted = Gatehouse::start(&format!(
        "[server]\ntrusted_proxies = []\n{}{rule}",
        forward_auth_config(FRONT)
    ));
    assert_eq!(ask(&untrusted, "10.1.2.3").await, 401);
}
