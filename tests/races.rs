//! A revocation wins over anything in flight. Each test holds a request in its slow
//! part (an argon2 check made deliberately slow, ~1 s here) while the operator disables
//! the user or revokes the session from the CLI, then lets it finish: what the operator
//! did must stand, also after a restart.

mod common;

use std::time::Duration;

use common::{start_upstream, Browser, Gatehouse, PASSWORD};
use gatehouse::portal::routes;

const PANEL: &str = "panel.example.test";

/// Proxy mode with password checks slow enough to act during one.
async fn setup() -> Gatehouse {
    let (addr, _) = start_upstream().await;
    Gatehouse::start(&format!(
        "[password]\nmemory_kib = 8192\niterations = 3\nparallelism = 1\n[proxy]\nlisten = \"127.0.0.1:{{proxy}}\"\n[[proxy.upstreams]]\nhosts = [\"{PANEL}\"]\naddress = \"{addr}\"\n[session]\nsecure = false\n"
    ))
}

fn url(gate: &Gatehouse, path: &str) -> String {
    format!("http://{PANEL}:{}{path}", gate.proxy)
}

/// Starts a settings form post in the background; returns its status when done.
fn post_in_background(
    b: &Browser,
    gate: &Gatehouse,
    path: &str,
    csrf: &str,
    fields: &[(&str, &str)],
) -> tokio::task::JoinHandle<u16> {
    let cookie = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut form: Vec<(String, String)> = vec![("csrf".into(), csrf.into())];
    form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let request = b
        .client
        .post(url(gate, path))
        .header("cookie", cookie)
        .form(&form);
    tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
}

#[tokio::test]
async fn a_user_disabled_during_their_password_change_stays_disabled() {
    let mut gate = setup().await;
    let mut bob = Browser::new(&[PANEL]);
    bob.log_in(
        &url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)),
        "bob",
        PASSWORD,
    )
    .await;
    let settings = bob
        .get(&url(&gate, &format!("/.gatehouse{}", routes::SETTINGS)))
        .await;
    let csrf = common::field(&settings.body, "csrf");
    let change = post_in_background(
        &bob,
        &gate,
        &format!("/.gatehouse{}", routes::SETTINGS_PASSWORD),
        &csrf,
        &[
            ("current_password", PASSWORD),
            ("new_password", "another long password"),
            ("repeat_password", "another long password"),
        ],
    );
    // While the password is being checked and hashed, the operator disables bob.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (ok, out, err) = gate.cli(&["user", "disable", "bob"]);
    assert!(ok, "{out}{err}");
    change.await.unwrap();
    let (_, list, _) = gate.cli(&["user", "list"]);
    assert!(
        list.lines().any(|l| l.starts_with("bob\tdisabled")),
        "the disable stands: {list}"
    );
    assert_eq!(bob.get(&url(&gate, "/home")).await.status, 302);
    gate.kill9();
    gate.spawn();
    let (_, list, _) = gate.cli(&["user", "list"]);
    assert!(
        list.lines().any(|l| l.starts_with("bob\tdisabled")),
        "also after a restart: {list}"
    );
}

#[tokio::test]
async fn a_session_revoked_during_a_password_confirmation_stays_revoked() {
    let gate = setup().await;
    let mut bob = Browser::new(&[PANEL]);
    bob.log_in(
        &url(&gate, &format!("/.gatehouse{}", routes::LOGIN_PAGE)),
        "bob",
        PASSWORD,
    )
    .await;
    assert_eq!(bob.get(&url(&gate, "/home")).await.status, 200);
    let settings = bob
        .get(&url(&gate, &format!("/.gatehouse{}", routes::SETTINGS)))
        .await;
    let csrf = common::field(&settings.body, "csrf");
    let confirm = post_in_background(
        &bob,
        &gate,
        &format!("/.gatehouse{}", routes::SETTINGS_CONFIRM),
        &csrf,
        &[
            ("next", routes::SETTINGS_SESSIONS_END_OTHERS),
            ("confirm_password", PASSWORD),
        ],
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (ok, out, err) = gate.cli(&["sessions", "revoke", "--user", "bob"]);
    assert!(ok && out.contains("1 session"), "{out}{err}");
    confirm.await.unwrap();
    assert_eq!(
        bob.get(&url(&gate, "/home")).await.status,
        302,
        "the revoked session did not come back"
    );
}
