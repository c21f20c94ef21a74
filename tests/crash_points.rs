//! A crash in the middle of a change that touches several records never leaves access
//! wider than before or after it. Each test stops the server (abort, like kill -9) at a
//! named point inside the change (`GH_TEST_CRASH_POINT`, honoured by debug builds
//! only), restarts it, and checks what the gate grants.

mod common;

use common::{start_upstream, totp_code, Browser, Gatehouse, PASSWORD};
use gatehouse::portal::routes;

const PANEL: &str = "panel.example.test";

async fn setup() -> Gatehouse {
    let (addr, _) = start_upstream().await;
    Gatehouse::start(&format!(
        "[proxy]\nlisten = \"127.0.0.1:{{proxy}}\"\n[[proxy.upstreams]]\nhosts = [\"{PANEL}\"]\naddress = \"{addr}\"\n[session]\nsecure = false\n"
    ))
}

fn url(gate: &Gatehouse, path: &str) -> String {
    format!("http://{PANEL}:{}{path}", gate.proxy)
}

async fn logged_in(gate: &Gatehouse, name: &str) -> Browser {
    let mut b = Browser::new(&[PANEL]);
    let page = b
        .log_in(
            &url(gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            name,
            PASSWORD,
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(b.get(&url(gate, "/")).await.status, 200);
    b
}

/// Restarts the server with `point` armed, runs `act` (which the crash cuts short),
/// then restarts it normally.
async fn crash_during<F: std::future::Future>(gate: &mut Gatehouse, point: &str, act: F) {
    gate.kill9();
    gate.env = vec![("GH_TEST_CRASH_POINT".into(), point.into())];
    gate.spawn();
    act.await;
    assert!(
        gate.wait_exit(std::time::Duration::from_secs(10)).is_some(),
        "the server stopped at {point}: {}",
        gate.log()
    );
    gate.env.clear();
    gate.spawn();
}

/// Posts a form, expecting no answer (the server stops on the way).
async fn post_cut_short(b: &Browser, action: &str, form: &[(&str, &str)]) {
    let cookie = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    // A new connection: the browser's pooled ones died with the restart.
    let fresh = Browser::new(&[PANEL]);
    let _ = fresh
        .client
        .post(action)
        .header("cookie", cookie)
        .form(form)
        .send()
        .await;
}

/// What a browser with these cookies gets for the panel's front page now (a new
/// connection: the old ones died with the process).
async fn status_of(gate: &Gatehouse, b: &Browser) -> u16 {
    let mut again = Browser::new(&[PANEL]);
    again.cookies = b.cookies.clone();
    again.get(&url(gate, "/")).await.status
}

#[tokio::test]
async fn a_crash_right_after_a_password_change_leaves_no_other_session_valid() {
    let mut gate = setup().await;
    let mut changer = logged_in(&gate, "bob").await;
    let other = logged_in(&gate, "bob").await;
    let settings = url(&gate, &format!("/.gatehouse{}", routes::SETTINGS));
    let action = url(&gate, &format!("/.gatehouse{}", routes::SETTINGS_PASSWORD));
    let page = changer.get(&settings).await;
    let csrf = common::field(&page.body, "csrf");
    let form = [
        ("csrf", csrf.as_str()),
        ("current_password", PASSWORD),
        ("new_password", "a brand new secret"),
        ("repeat_password", "a brand new secret"),
    ];
    crash_during(
        &mut gate,
        "password-changed",
        post_cut_short(&changer, &action, &form),
    )
    .await;
    assert_ne!(
        status_of(&gate, &other).await,
        200,
        "another session ends with the password change, crash or not"
    );
    let mut fresh = Browser::new(&[PANEL]);
    let page = fresh
        .log_in(
            &url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            "bob",
            "a brand new secret",
        )
        .await;
    assert_eq!(page.status, 303, "the new password was committed");
}

#[tokio::test]
async fn a_crash_right_after_a_first_factor_is_saved_leaves_no_one_factor_session() {
    let mut gate = setup().await;
    let mut enroller = logged_in(&gate, "ann").await;
    let other = logged_in(&gate, "ann").await;
    let base = url(&gate, "/.gatehouse");
    let started = enroller
        .post_with_csrf(
            &format!("{base}{}", routes::SETTINGS),
            &format!("{base}{}", routes::SETTINGS_TOTP_START),
            &[],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    let enroll = enroller
        .get(&format!("{base}{}", routes::SETTINGS_TOTP))
        .await;
    let secret = common::element_text(&enroll.body, "totp-secret").replace(' ', "");
    let csrf = common::field(&enroll.body, "csrf");
    let code = totp_code(&secret, 0);
    let confirm = format!("{base}{}", routes::SETTINGS_TOTP_CONFIRM);
    let form = [("csrf", csrf.as_str()), ("code", &code), ("rd", "")];
    crash_during(
        &mut gate,
        "factor-saved",
        post_cut_short(&enroller, &confirm, &form),
    )
    .await;
    assert_ne!(
        status_of(&gate, &other).await,
        200,
        "a one-factor session of a user who now has a second factor grants nothing"
    );
    assert_ne!(status_of(&gate, &enroller).await, 200);
    // Signing in now asks for the app: the factor was committed.
    let mut fresh = Browser::new(&[PANEL]);
    let page = fresh
        .log_in(
            &url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            "ann",
            PASSWORD,
        )
        .await;
    let step = page.location.unwrap_or_default();
    assert!(step.contains("/2fa"), "the second step is asked: {step}");
}
