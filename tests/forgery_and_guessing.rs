//! Forged forms and guessing, against the real binary in proxy mode: CSRF tokens bound
//! to the session, the browser's own word on where a form came from, attempts counted
//! before they are checked (also in parallel), bans no success of the attacker's own can
//! reset, a stolen session that cannot guess the password, and the client address read
//! from the right end of `X-Forwarded-For`.

mod common;

use common::{field, start_upstream, Browser, Gatehouse, PASSWORD};
use gatehouse::portal::routes;

const PANEL: &str = "panel.example.test";

async fn setup(extra: &str) -> Gatehouse {
    let (addr, _) = start_upstream().await;
    Gatehouse::start(&format!(
        r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{addr}"
[session]
secure = false
[regulation]
max_retries = 3
find_time = "5m"
ban_time = "5m"
[access_control]
default_policy = "one_factor"
[[access_control.rules]]
domain = ["{PANEL}"]
resources = ["^/lan/"]
networks = ["10.0.0.0/8"]
policy = "bypass"
{extra}
"#
    ))
}

fn url(gate: &Gatehouse, path: &str) -> String {
    format!("http://{PANEL}:{}{path}", gate.proxy)
}

#[tokio::test]
async fn a_csrf_cookie_planted_from_a_sibling_subdomain_cannot_forge_a_signed_in_users_form() {
    let gate = setup("").await;
    // The attacker gets a token for a CSRF cookie value of their choosing...
    let mut attacker = Browser::new(&[PANEL]);
    let page = attacker
        .get(&url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)))
        .await;
    let planted_cookie = attacker.cookies["gatehouse_session_csrf"].clone();
    let planted_token = field(&page.body, "csrf");
    // ...and plants that cookie in the victim's browser (a sibling subdomain can).
    let mut victim = Browser::new(&[PANEL]);
    victim
        .log_in(
            &url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            "ann",
            PASSWORD,
        )
        .await;
    victim
        .cookies
        .insert("gatehouse_session_csrf".into(), planted_cookie);
    let forged = victim
        .post(
            &url(&gate, &format!("/.gatehouse{}", routes::LOGOUT)),
            &[("csrf", planted_token.as_str())],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(
        victim.get(&url(&gate, "/home")).await.status,
        200,
        "still signed in"
    );
    // The victim's own form, bound to the session, works.
    let own = victim
        .post_with_csrf(
            &url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            &url(&gate, &format!("/.gatehouse{}", routes::LOGOUT)),
            &[],
        )
        .await;
    assert_eq!(own.status, 303, "{}", own.body);
}

#[tokio::test]
async fn forms_posted_from_another_origin_are_refused_even_with_a_valid_token() {
    let gate = setup("").await;
    let mut b = Browser::new(&[PANEL]);
    b.log_in(
        &url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)),
        "ann",
        PASSWORD,
    )
    .await;
    let page = b
        .get(&url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)))
        .await;
    let csrf = field(&page.body, "csrf");
    let own_origin = format!("http://{PANEL}:{}", gate.proxy);
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "http://evil.example.test"),
        ("origin", "http://panel.example.test:1"),
        ("origin", "null"),
    ] {
        let r = b
            .client
            .post(url(&gate, &format!("/.gatehouse{}", routes::LOGOUT)))
            .header(
                "cookie",
                format!("gatehouse_session={}", b.cookies["gatehouse_session"]),
            )
            .header(name, value)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{name}: {value}");
    }
    let r = b
        .client
        .post(url(&gate, &format!("/.gatehouse{}", routes::LOGOUT)))
        .header(
            "cookie",
            format!("gatehouse_session={}", b.cookies["gatehouse_session"]),
        )
        .header("origin", own_origin)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "the page's own origin");
}

/// One password login from a fresh browser at `base` (`http://host:port`); its status.
async fn login_status(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    password: &str,
    xff: &[&str],
) -> u16 {
    let login = format!("{base}/.gatehouse{}", routes::LOGIN_PAGE);
    let page = client
        .get(&login)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    let body = page.text().await.unwrap();
    let csrf = field(&body, "csrf");
    let mut request = client
        .post(format!("{base}/.gatehouse{}", routes::LOGIN))
        .header("cookie", cookie);
    for line in xff {
        request = request.header("x-forwarded-for", *line);
    }
    request
        .form(&[
            ("csrf", csrf.as_str()),
            ("rd", ""),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sixty_parallel_guesses_get_no_more_than_max_retries_checked_and_then_the_ban_holds() {
    let gate = setup("").await;
    let client = Browser::new(&[PANEL]).client;
    let mut guesses = Vec::new();
    for i in 0..60 {
        let client = client.clone();
        let base = url(&gate, "");
        guesses.push(tokio::spawn(async move {
            login_status(&client, &base, "ann", &format!("guess {i}"), &[]).await
        }));
    }
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(checked <= 3, "{checked} guesses were checked: {statuses:?}");
    assert_eq!(checked + refused, 60, "{statuses:?}");
    assert_eq!(
        login_status(&client, &url(&gate, ""), "ann", PASSWORD, &[]).await,
        429,
        "the right password after the burst is refused: banned"
    );
}

#[tokio::test]
async fn signing_in_to_an_account_of_ones_own_does_not_reset_the_addresses_failures() {
    let gate = setup("").await;
    let client = Browser::new(&[PANEL]).client;
    // A password sprayer fails on two accounts, signs in to bob (its own), fails again.
    assert_eq!(
        login_status(&client, &url(&gate, ""), "ann", "spray-1", &[]).await,
        401
    );
    assert_eq!(
        login_status(&client, &url(&gate, ""), "carol", "spray-1", &[]).await,
        401
    );
    assert_eq!(
        login_status(&client, &url(&gate, ""), "bob", PASSWORD, &[]).await,
        303
    );
    let third = login_status(&client, &url(&gate, ""), "dave", "spray-1", &[]).await;
    assert_eq!(third, 429, "the third failure from the address bans it");
    assert_eq!(
        login_status(&client, &url(&gate, ""), "bob", PASSWORD, &[]).await,
        429
    );
}

#[tokio::test]
async fn a_stolen_session_cannot_guess_the_password_through_the_settings_page() {
    let gate = setup("").await;
    let mut thief = Browser::new(&[PANEL]);
    thief
        .log_in(
            &url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            "ann",
            PASSWORD,
        )
        .await;
    // The password change form checks the current password.
    async fn change_password(thief: &mut Browser, gate: &Gatehouse, current: &str) -> u16 {
        thief
            .post_with_csrf(
                &url(gate, &format!("/.gatehouse{}", routes::SETTINGS)),
                &url(gate, &format!("/.gatehouse{}", routes::SETTINGS_PASSWORD)),
                &[
                    ("current_password", current),
                    ("new_password", "a much longer new password"),
                    ("repeat_password", "a much longer new password"),
                ],
            )
            .await
            .status
    }
    let mut last = 0;
    for i in 0..4 {
        last = change_password(&mut thief, &gate, &format!("guess {i}")).await;
    }
    assert_eq!(last, 429, "banned after max_retries wrong passwords");
    let right = change_password(&mut thief, &gate, PASSWORD).await;
    assert_eq!(right, 429, "the ban holds for the right one too");
    // The same ban covers the login page.
    let client = Browser::new(&[PANEL]).client;
    assert_eq!(
        login_status(&client, &url(&gate, ""), "ann", PASSWORD, &[]).await,
        429
    );
}

#[tokio::test]
async fn the_client_address_comes_from_the_newest_forwarded_for_line() {
    let gate = setup("").await;
    let client = Browser::new(&[PANEL]).client;
    // The client wrote the first line itself; the trusted proxy appended the second.
    let r = client
        .get(url(&gate, "/lan/status"))
        .header("accept", "text/html")
        .header("x-forwarded-for", "10.9.9.9")
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302, "not a LAN client: login first");
    let r = client
        .get(url(&gate, "/lan/status"))
        .header("x-forwarded-for", "203.0.113.5")
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the newest hop is on the LAN");
    // And bans follow the real address, not the one the client wrote.
    for i in 0..3 {
        let xff = [format!("198.51.100.{i}"), "203.0.113.5".to_string()];
        let lines: Vec<&str> = xff.iter().map(String::as_str).collect();
        login_status(&client, &url(&gate, ""), &format!("nobody{i}"), "x", &lines).await;
    }
    assert_eq!(
        login_status(
            &client,
            &url(&gate, ""),
            "bob",
            PASSWORD,
            &["198.51.100.77", "203.0.113.5"]
        )
        .await,
        429
    );
    assert_eq!(
        login_status(&client, &url(&gate, ""), "bob", PASSWORD, &["203.0.113.6"]).await,
        303,
        "another address is not banned"
    );
}
