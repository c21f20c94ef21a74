//! Proxy mode, driven over HTTP against the real binary: login, identity headers,
//! header stripping, bans, logout, revocation, WebSocket pass-through, rules.

mod common;

use common::{start_upstream, Browser, Gatehouse, PASSWORD};
use gatehouse::portal::routes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PANEL: &str = "panel.example.test";

fn proxy_config(upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{upstream}"

[session]
secure = false

[access_control]
default_policy = "one_factor"
[[access_control.rules]]
domain = ["{PANEL}"]
resources = ["^/public/"]
policy = "bypass"
[[access_control.rules]]
domain = ["{PANEL}"]
resources = ["^/forbidden"]
policy = "deny"
[[access_control.rules]]
domain = ["{PANEL}"]
resources = ["^/admin"]
subject = ["group:admins"]
policy = "one_factor"
[[access_control.rules]]
domain = ["{PANEL}"]
resources = ["^/admin"]
policy = "deny"
"#
    )
}

struct Setup {
    gate: Gatehouse,
    upstream: common::Recorded,
    browser: Browser,
}

impl Setup {
    async fn new() -> Self {
        let (addr, upstream) = start_upstream().await;
        let gate = Gatehouse::start(&proxy_config(addr));
        Setup {
            gate,
            upstream,
            browser: Browser::new(&[PANEL]),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{PANEL}:{}{path}", self.gate.proxy)
    }

    async fn log_in(&mut self, user: &str, password: &str) -> common::Page {
        let url = self.url(&format!(
            "/.gatehouse{}?rd=%2Fdashboard%3Ftab%3D2",
            routes::LOGIN_PAGE
        ));
        self.browser.log_in(&url, user, password).await
    }
}

#[tokio::test]
async fn unauthenticated_browser_is_sent_to_login_and_returns_to_the_page_asked_for() {
    let mut s = Setup::new().await;
    let page = s.browser.get(&s.url("/dashboard?tab=2")).await;
    assert_eq!(page.status, 302);
    assert_eq!(
        page.location.as_deref(),
        Some("/.gatehouse/?rd=%2Fdashboard%3Ftab%3D2")
    );
    assert_eq!(s.upstream.count(), 0, "nothing reached the panel");

    let done = s.log_in("ann", PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/dashboard?tab=2"));
    let set_cookie = done.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );

    let panel = s.browser.get(&s.url("/dashboard?tab=2")).await;
    assert_eq!(panel.status, 200);
    let seen = s.upstream.last().to_ascii_lowercase();
    assert!(seen.starts_with("get /dashboard?tab=2 "), "{seen}");
    assert!(seen.contains("remote-user: ann\r\n"), "{seen}");
    assert!(seen.contains("remote-groups: admins,staff\r\n"), "{seen}");
    assert!(
        seen.contains("remote-email: ann@example.test\r\n"),
        "{seen}"
    );
    assert!(seen.contains("remote-name: ann admin\r\n"), "{seen}");
}

#[tokio::test]
async fn non_browser_client_gets_401_instead_of_a_redirect() {
    let mut s = Setup::new().await;
    s.browser.accept = "application/json";
    let page = s.browser.get(&s.url("/api/data")).await;
    assert_eq!(page.status, 401);
}

#[tokio::test]
async fn session_and_csrf_cookies_never_reach_the_panel_but_its_own_cookies_do() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    s.browser.cookies.insert("panel_pref".into(), "dark".into());
    s.browser.get(&s.url("/")).await;
    let seen = s.upstream.last();
    assert!(seen.contains("panel_pref=dark"), "{seen}");
    assert!(!seen.contains("gatehouse_session"), "{seen}");
    assert!(
        s.browser.cookies.contains_key("gatehouse_session_device"),
        "the browser has a device cookie, and the panel never sees it"
    );
}

#[tokio::test]
async fn a_panel_cannot_set_gatehouses_cookies_but_sets_its_own() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    let session = s.browser.cookies["gatehouse_session"].clone();
    let page = s.browser.get(&s.url("/set-cookies")).await;
    assert_eq!(page.status, 200);
    let set: Vec<&str> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        set,
        ["panel_pref=dark; Path=/"],
        "only the panel's own cookie"
    );
    assert_eq!(s.browser.cookies["gatehouse_session"], session);
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_the_panel() {
    let mut s = Setup::new().await;
    // Anonymous, on a bypass path: no identity at all may arrive.
    let spoof = [
        ("Remote-User", "admin"),
        ("REMOTE-GROUPS", "admins"),
        ("remote_user", "admin"),
        ("Remote-Email", "x@evil"),
        ("remote-name", "Mallory"),
    ];
    let page = s.browser.get_with(&s.url("/public/info"), &spoof).await;
    assert_eq!(page.status, 200);
    let seen = s.upstream.last().to_ascii_lowercase();
    assert!(
        !seen.contains("admin") && !seen.contains("mallory") && !seen.contains("evil"),
        "{seen}"
    );

    // Logged in as bob: the panel sees bob, once, whatever the client claims.
    s.log_in("bob", PASSWORD).await;
    s.browser.get_with(&s.url("/home"), &spoof).await;
    let seen = s.upstream.last().to_ascii_lowercase();
    assert_eq!(seen.matches("remote-user:").count(), 1, "{seen}");
    assert!(seen.contains("remote-user: bob\r\n"), "{seen}");
    assert!(
        !seen.contains("remote_user") && !seen.contains("mallory"),
        "{seen}"
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let mut s = Setup::new().await;
    let wrong = s.log_in("ann", "not the password").await;
    let mut other = Browser::new(&[PANEL]);
    let unknown = other
        .log_in(
            &s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            "nobody",
            "not the password",
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert!(wrong.body.contains("Incorrect username or password."));
    assert!(unknown.body.contains("Incorrect username or password."));
    assert!(
        s.gate.log().contains("login_failed"),
        "failures are audited"
    );
}

#[tokio::test]
async fn three_failures_ban_the_user_and_the_ban_is_shown_even_for_the_right_password() {
    let mut s = Setup::new().await;
    for _ in 0..2 {
        assert_eq!(s.log_in("bob", "wrong").await.status, 401);
    }
    let third = s.log_in("bob", "wrong").await;
    assert_eq!(third.status, 429);
    assert!(
        third.body.contains("Too many failed attempts"),
        "{}",
        third.body
    );
    let right = s.log_in("bob", PASSWORD).await;
    assert_eq!(
        right.status, 429,
        "banned users cannot log in with the right password"
    );
    assert!(
        right.body.contains("try again in 5 minutes"),
        "{}",
        right.body
    );
    assert!(
        s.gate.log().contains("event=\"ban\""),
        "bans are audited: {}",
        s.gate.log()
    );
}

#[tokio::test]
async fn login_form_without_valid_csrf_token_is_refused() {
    let mut s = Setup::new().await;
    s.browser
        .get(&s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)))
        .await;
    let page = s
        .browser
        .post(
            &s.url(&format!("/.gatehouse{}", routes::LOGIN)),
            &[
                ("csrf", "forged"),
                ("username", "ann"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(!s.browser.cookies.contains_key("gatehouse_session"));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    let stolen = s.browser.cookies["gatehouse_session"].clone();
    let page = s
        .browser
        .get(&s.url(&format!("/.gatehouse{}", routes::LOGOUT)))
        .await;
    let csrf = common::field(&page.body, "csrf");
    let out = s
        .browser
        .post(
            &s.url(&format!("/.gatehouse{}", routes::LOGOUT)),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(out.status, 303);
    assert!(
        !s.browser.cookies.contains_key("gatehouse_session"),
        "cookie cleared"
    );
    s.browser.cookies.insert("gatehouse_session".into(), stolen);
    assert_eq!(
        s.browser.get(&s.url("/home")).await.status,
        302,
        "the old cookie is dead server-side"
    );
}

#[tokio::test]
async fn a_panels_sign_out_link_asks_first_then_says_so_and_a_new_sign_in_returns_to_the_page() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    let logout = s.url(&format!("/.gatehouse{}", routes::LOGOUT));
    let asked = s.browser.get(&format!("{logout}?rd=%2Fhome")).await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(asked.body.contains("Sign out?"), "{}", asked.body);
    assert!(asked.body.contains("Ann Admin"), "who is signing out");
    assert!(
        asked.body.contains("id=\"stay-signed-in\"") && asked.body.contains("href=\"/home\""),
        "a way back: {}",
        asked.body
    );
    assert_eq!(
        s.browser.get(&s.url("/home")).await.status,
        200,
        "opening the link alone signs nobody out"
    );

    let out = s
        .browser
        .post(
            &logout,
            &[
                ("csrf", &common::field(&asked.body, "csrf")),
                ("rd", "/home"),
            ],
        )
        .await;
    assert_eq!(out.status, 303);
    let told = out.location.unwrap();
    assert_eq!(told, "/.gatehouse/?signed_out=1&rd=%2Fhome");
    let page = s.browser.get(&s.url(&told)).await;
    assert!(page.body.contains("You have signed out."), "{}", page.body);
    assert_eq!(s.browser.get(&s.url("/home")).await.status, 302);
    let again = s.browser.log_in(&s.url(&told), "ann", PASSWORD).await;
    assert_eq!(again.location.as_deref(), Some("/home"), "{}", again.body);

    // Without a session the link leads to the sign-in page.
    let mut stranger = Browser::new(&[PANEL]);
    let page = stranger.get(&logout).await;
    assert_eq!(page.status, 302);
    assert_eq!(page.location.as_deref(), Some("/.gatehouse/"));
}

#[tokio::test]
async fn the_403_page_says_who_is_signed_in_and_offers_another_account_and_the_way_back() {
    let s = Setup::new().await;
    let mut bob = Browser::new(&[PANEL]);
    bob.log_in(
        &s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)),
        "bob",
        PASSWORD,
    )
    .await;
    let denied = bob.get(&s.url("/admin")).await;
    assert_eq!(denied.status, 403);
    assert!(
        denied
            .body
            .contains("id=\"denied-who\">Signed in as <strong>Bob</strong> (bob)"),
        "{}",
        denied.body
    );
    assert!(
        denied.body.contains("id=\"denied-home\""),
        "{}",
        denied.body
    );
    let switch = denied
        .body
        .split("href=\"")
        .find(|part| part.contains("id=\"switch-account\""))
        .and_then(|part| part.split('"').next())
        .expect("a link to sign in as someone else")
        .replace("&amp;", "&");
    assert_eq!(switch, "/.gatehouse/logout?rd=%2Fadmin");

    // Switching: bob signs out, ann signs in, and lands on the page bob could not open.
    let asked = bob.get(&s.url(&switch)).await;
    let out = bob
        .post(
            &s.url(&format!("/.gatehouse{}", routes::LOGOUT)),
            &[
                ("csrf", &common::field(&asked.body, "csrf")),
                ("rd", &common::field(&asked.body, "rd")),
            ],
        )
        .await;
    let ann = bob
        .log_in(&s.url(&out.location.unwrap()), "ann", PASSWORD)
        .await;
    assert_eq!(ann.location.as_deref(), Some("/admin"), "{}", ann.body);
    assert_eq!(bob.get(&s.url("/admin")).await.status, 200);
}

#[tokio::test]
async fn a_form_sent_after_the_session_ended_says_so_and_signing_in_returns_to_its_page() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    let settings = s.url(&format!("/.gatehouse{}", routes::SETTINGS));
    let page = s.browser.get(&settings).await;
    assert!(
        page.body.contains("id=\"back-to-panel\"") && page.body.contains(">Back to gatehouse<"),
        "a way back to the panel: {}",
        page.body
    );
    let (ok, _, err) = s.gate.cli(&["sessions", "revoke", "--user", "ann"]);
    assert!(ok, "{err}");
    let sent = s
        .browser
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_PASSWORD)),
            &[
                ("csrf", &common::field(&page.body, "csrf")),
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(sent.status, 303);
    let to = sent.location.unwrap();
    assert!(to.contains("expired=1"), "{to}");
    let login = s.browser.get(&s.url(&to)).await;
    assert!(
        login.body.contains("Your session expired."),
        "{}",
        login.body
    );
    let again = s.browser.log_in(&s.url(&to), "ann", PASSWORD).await;
    assert_eq!(
        again.location.as_deref(),
        Some("/.gatehouse/settings"),
        "back to the page: {}",
        again.body
    );
}

#[tokio::test]
async fn a_form_refused_for_its_token_offers_to_reload_it() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    let refused = s
        .browser
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_PASSWORD)),
            &[("csrf", "stale"), ("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(
        refused
            .body
            .contains("href=\"/.gatehouse/settings\" id=\"message-link\">Reload the form<"),
        "{}",
        refused.body
    );
}

#[tokio::test]
async fn revoking_sessions_from_the_cli_takes_effect_on_the_next_request() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    assert_eq!(s.browser.get(&s.url("/home")).await.status, 200);
    let (ok, list, err) = s.gate.cli(&["sessions", "list", "--user", "ann"]);
    assert!(ok, "{err}");
    assert_eq!(list.lines().count(), 2, "header and one session: {list}");
    let (ok, out, err) = s.gate.cli(&["sessions", "revoke", "--user", "ann"]);
    assert!(ok && out.contains("1 session"), "{out} {err}");
    let refused = s.browser.get(&s.url("/home")).await;
    assert_eq!(refused.status, 302);
    // The panel's next page says why: the session ended, sign in again.
    let to = refused.location.unwrap();
    assert_eq!(to, "/.gatehouse/?expired=1&rd=%2Fhome");
    let login = s.browser.get(&s.url(&to)).await;
    assert!(
        login.body.contains("Your session expired."),
        "{}",
        login.body
    );
    // Someone who never signed in is not told that.
    let mut stranger = Browser::new(&[PANEL]);
    let first = stranger.get(&s.url("/home")).await;
    assert_eq!(first.location.as_deref(), Some("/.gatehouse/?rd=%2Fhome"));
}

#[tokio::test]
async fn disabling_a_user_while_serving_ends_their_sessions() {
    let mut s = Setup::new().await;
    s.log_in("bob", PASSWORD).await;
    let (ok, _, err) = s.gate.cli(&["user", "disable", "bob"]);
    assert!(ok, "{err}");
    assert_eq!(s.browser.get(&s.url("/home")).await.status, 302);
    assert_eq!(
        s.log_in("bob", PASSWORD).await.status,
        401,
        "a disabled user cannot log in"
    );
}

#[tokio::test]
async fn forged_or_tampered_session_cookie_is_refused() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    let good = s.browser.cookies["gatehouse_session"].clone();
    let (id, _) = good.rsplit_once('.').unwrap();
    s.browser.cookies.insert(
        "gatehouse_session".into(),
        format!("{id}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    );
    assert_eq!(s.browser.get(&s.url("/home")).await.status, 302);
}

#[tokio::test]
async fn deny_rule_gives_403_and_bypass_needs_no_login() {
    let mut s = Setup::new().await;
    assert_eq!(s.browser.get(&s.url("/public/x")).await.status, 200);
    s.log_in("ann", PASSWORD).await;
    let denied = s.browser.get(&s.url("/forbidden")).await;
    assert_eq!(denied.status, 403);
    assert!(denied.body.contains("Access denied"));
}

#[tokio::test]
async fn group_rule_lets_admins_in_and_denies_others() {
    let mut s = Setup::new().await;
    assert_eq!(
        s.browser.get(&s.url("/admin")).await.status,
        302,
        "anonymous: log in first"
    );
    s.log_in("ann", PASSWORD).await;
    assert_eq!(s.browser.get(&s.url("/admin")).await.status, 200);
    let mut bob = Browser::new(&[PANEL]);
    bob.log_in(
        &s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)),
        "bob",
        PASSWORD,
    )
    .await;
    assert_eq!(bob.get(&s.url("/admin")).await.status, 403);
}

#[tokio::test]
async fn hostile_rd_after_login_falls_back_to_a_safe_page() {
    let mut s = Setup::new().await;
    let page = s
        .browser
        .get(&s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)))
        .await;
    let csrf = common::field(&page.body, "csrf");
    let done = s
        .browser
        .post(
            &s.url(&format!("/.gatehouse{}", routes::LOGIN)),
            &[
                ("csrf", &csrf),
                ("rd", "//evil.example/"),
                ("username", "ann"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.location.as_deref(),
        Some("/"),
        "the panel's front page, on this host"
    );
}

#[tokio::test]
async fn websocket_upgrade_passes_through_once_authorised() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    let cookie = format!(
        "gatehouse_session={}",
        s.browser.cookies["gatehouse_session"]
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", s.gate.proxy))
        .await
        .unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {PANEL}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: {cookie}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(b"ping-through-gatehouse").await.unwrap();
    let mut echoed = Vec::new();
    while !echoed.ends_with(b"ping-through-gatehouse") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed early");
        echoed.extend_from_slice(&buf[..n]);
    }
    assert!(s
        .upstream
        .last()
        .to_ascii_lowercase()
        .contains("remote-user: ann"));
}

#[tokio::test]
async fn websocket_upgrade_without_session_is_refused() {
    let s = Setup::new().await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", s.gate.proxy))
        .await
        .unwrap();
    let request = format!("GET /ws HTTP/1.1\r\nHost: {PANEL}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert_eq!(s.upstream.count(), 0);
}

#[tokio::test]
async fn committed_session_survives_kill_9() {
    let mut s = Setup::new().await;
    s.log_in("ann", PASSWORD).await;
    s.gate.kill9();
    s.gate.spawn();
    let mut fresh = Browser::new(&[PANEL]);
    fresh.cookies = s.browser.cookies.clone();
    assert_eq!(
        fresh.get(&s.url("/home")).await.status,
        200,
        "{}",
        s.gate.log()
    );
}

#[tokio::test]
async fn pages_carry_security_headers_and_ukrainian_texts_on_request() {
    let mut s = Setup::new().await;
    let page = s
        .browser
        .get_with(
            &s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            &[("accept-language", "uk-UA,uk;q=0.9")],
        )
        .await;
    assert!(page.body.contains("Увійти"), "{}", page.body);
    assert!(page.body.contains("lang=\"uk\""));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers["cache-control"], "no-store");
    let css = s
        .browser
        .get(&s.url(&format!("/.gatehouse{}", routes::ASSETS_STYLE_CSS)))
        .await;
    assert_eq!(css.status, 200);
    assert!(css.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
}

#[tokio::test]
async fn unknown_host_is_not_proxied() {
    let mut s = Setup::new().await;
    let mut other = Browser::new(&["other.example.test"]);
    let page = other
        .get(&format!("http://other.example.test:{}/", s.gate.proxy))
        .await;
    assert_eq!(page.status, 404);
    let _ = s.browser.get(&s.url("/")).await;
}
