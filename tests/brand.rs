//! The operator's brand (#16 item 1): the panel's name and logo on every page (the
//! brand line read by screen readers too), the accent colour, the name as the
//! authenticator apps' issuer, in mails and Telegram messages, and where to get help.

mod common;

use common::{start_upstream, Browser, Gatehouse, SmtpServer, PASSWORD};
use gatehouse::portal::routes;

const PANEL: &str = "panel.example.test";
const LOGO: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"8\" height=\"8\"/>";

#[tokio::test]
async fn the_panels_name_logo_colour_and_help_are_on_the_pages_mails_and_apps() {
    let (addr, _) = start_upstream().await;
    let smtp = SmtpServer::start();
    let logo = tempfile::Builder::new().suffix(".svg").tempfile().unwrap();
    std::fs::write(logo.path(), LOGO).unwrap();
    let gate = Gatehouse::start(&format!(
        r##"
[portal]
name = "Acme Admin"
logo = "{}"
accent = "#0B5FFF"
support = "https://help.acme.test/2fa"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{addr}"
[session]
secure = false
[smtp]
host = "127.0.0.1"
port = {}
tls = "none"
from = "gatehouse@example.test"
"##,
        logo.path().display(),
        smtp.port
    ));
    let url = |path: &str| format!("http://{PANEL}:{}/.gatehouse{path}", gate.proxy);
    let mut b = Browser::new(&[PANEL]);

    let login = b.get(&url(routes::LOGIN_PAGE)).await;
    assert!(
        login.body.contains("· Acme Admin</title>"),
        "{}",
        login.body
    );
    assert!(
        login
            .body
            .contains("<p class=\"brand\"><img src=\"/.gatehouse/assets/logo\" alt=\"\" class=\"logo\"> Acme Admin</p>"),
        "the brand line, read by screen readers: {}",
        login.body
    );
    assert!(login.body.contains(routes::ASSETS_BRAND_CSS));
    let served = reqwest::get(format!(
        "http://127.0.0.1:{}{}",
        gate.portal,
        routes::ASSETS_LOGO
    ))
    .await
    .unwrap();
    assert_eq!(served.headers()["content-type"], "image/svg+xml");
    assert!(
        served.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox"),
        "an SVG logo runs no script"
    );
    assert_eq!(served.text().await.unwrap(), LOGO);
    let css = reqwest::get(format!(
        "http://127.0.0.1:{}{}",
        gate.portal,
        routes::ASSETS_BRAND_CSS
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(css.contains("--accent: #0b5fff"), "{css}");

    // Mails come from the panel's name and carry it.
    b.log_in(&url(routes::LOGIN_PAGE), "ann", PASSWORD).await;
    let asked = b
        .post_with_csrf(
            &url(routes::SETTINGS),
            &url(routes::SETTINGS_EMAIL_START),
            &[("rd", "")],
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.body);
    let mail = smtp.wait_for(1, 20).await;
    assert!(mail.text.contains("Acme Admin"), "{}", mail.text);
    assert!(mail.html.contains("Acme Admin"), "{}", mail.html);
}

#[tokio::test]
async fn the_second_step_says_where_to_get_help_when_the_operator_says_where() {
    let (addr, _) = start_upstream().await;
    let gate = Gatehouse::start(&format!(
        r#"
[portal]
support = "Call the service desk on 1234."
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{addr}"
[session]
secure = false
"#
    ));
    let base = format!("http://{PANEL}:{}/.gatehouse", gate.proxy);
    let mut b = Browser::new(&[PANEL]);
    b.log_in(&format!("{base}{}", routes::LOGIN_PAGE), "ann", PASSWORD)
        .await;
    // The authenticator app shows the panel's name (here, with none set, gatehouse).
    let settings = b.get(&format!("{base}{}", routes::SETTINGS)).await;
    let started = b
        .post(
            &format!("{base}{}", routes::SETTINGS_TOTP_START),
            &[("csrf", &common::field(&settings.body, "csrf"))],
        )
        .await;
    let page = b
        .get(&format!(
            "http://{PANEL}:{}{}",
            gate.proxy,
            started.location.as_deref().unwrap_or_default()
        ))
        .await;
    assert!(page.body.contains("issuer=gatehouse"), "{}", page.body);
    b.enable_totp(&base).await;
    let mut again = Browser::new(&[PANEL]);
    again
        .log_in(&format!("{base}{}", routes::LOGIN_PAGE), "ann", PASSWORD)
        .await;
    let step = again.get(&format!("{base}{}", routes::SECOND_STEP)).await;
    assert!(
        step.body
            .contains("Lost access to your sign-in methods? Call the service desk on 1234."),
        "{}",
        step.body
    );
    // Without a name, the pages say gatehouse.
    assert!(step.body.contains("· gatehouse</title>"), "{}", step.body);
}
