//! A real browser: headless Chromium (Debian's package) driven over the DevTools
//! protocol, with a virtual WebAuthn authenticator. The test clicks through what a
//! user does: password login, adding a passkey in the settings, the same authenticator
//! refused a second time, password + passkey, turning on passwordless, and signing in
//! with the passkey alone. Every page visited is saved as a screenshot under
//! `test-output/browser_passkey_journey/`. A third test follows Telegram confirmation in
//! the browser: the settings page and the waiting second step learn of Telegram without a reload.

mod common;

use std::io::BufRead;
use std::process::{Command, Stdio};

use common::cdp::Chromium;
use common::telegram::{FakeTelegram, TgUser};
use common::{
    free_port, output_dir, start_upstream, wait_for_port, ChildGuard, Gatehouse, BIN, PASSWORD,
};

/// Types the user name and password into the login form on screen and submits it.
fn sign_in(b: &mut Chromium, username: &str, password: &str) {
    b.fill("#username", username);
    b.fill("#password", password);
    b.click("form[action$='/login'] button[type=submit]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_adds_a_passkey_and_signs_in_with_it_in_a_real_browser() {
    let (addr, upstream) = start_upstream().await;
    let gate = Gatehouse::start(&format!(
        r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["*"]
address = "{addr}"
[session]
secure = false
[access_control]
default_policy = "one_factor"
[[access_control.rules]]
resources = ["^/admin"]
policy = "two_factor"
"#
    ));
    let site = format!("http://localhost:{}", gate.proxy);
    let shots = output_dir("browser_passkey_journey");
    let journey = tokio::task::spawn_blocking(move || {
        let mut b = Chromium::launch(&shots);
        let authenticator = b.add_virtual_authenticator();

        // Password login.
        b.open(&format!("{site}/"));
        b.wait_for("document.querySelector('#password')", "the login page");
        b.wait_for(
            "!document.querySelector('[data-webauthn=passwordless] [data-webauthn-start]').hidden",
            "the passkey button (WebAuthn is available)",
        );
        b.screenshot("login");
        sign_in(&mut b, "ann", PASSWORD);
        b.wait_for("location.pathname === '/'", "the panel after the password");

        // Settings: add a device.
        b.open(&format!("{site}/.gatehouse/settings"));
        b.wait_for(
            "document.querySelector('#device-name')",
            "the settings page",
        );
        b.screenshot("settings");
        b.fill("#device-name", "Test laptop");
        b.click("form[action$='/settings/webauthn/add'] button[type=submit]");
        b.wait_for(
            "document.querySelector('[data-webauthn=create]')",
            "the add-device page",
        );
        b.wait_for(
            "!document.querySelector('[data-webauthn=create] [data-webauthn-start]').hidden",
            "the use-device button",
        );
        b.screenshot("add-device");
        b.presence(&authenticator, true);
        b.click("[data-webauthn-start]");
        b.wait_for(
            "document.body.innerText.includes('backup codes')",
            "the backup codes after the first factor",
        );
        b.presence(&authenticator, false);
        b.screenshot("backup-codes");
        assert_eq!(
            b.credentials(&authenticator).len(),
            1,
            "the passkey is on the authenticator"
        );

        // The same authenticator cannot be added twice.
        b.open(&format!("{site}/.gatehouse/settings"));
        b.wait_for(
            "document.querySelector('#passkey-devices')",
            "the device list",
        );
        b.click("#section-passkeys > summary");
        assert!(b.text().contains("Test laptop"));
        b.fill("#device-name", "Same laptop");
        b.click("form[action$='/settings/webauthn/add'] button[type=submit]");
        b.wait_for(
            "document.querySelector('[data-webauthn=create]')",
            "the add-device page",
        );
        b.wait_for(
            "!document.querySelector('[data-webauthn=create] [data-webauthn-start]').hidden",
            "the use-device button",
        );
        b.presence(&authenticator, true);
        b.click("[data-webauthn-start]");
        b.wait_for(
            "!document.querySelector('[data-webauthn-message]').hidden",
            "the message about the duplicate",
        );
        b.presence(&authenticator, false);
        assert!(b.text().contains("already holds a passkey"), "{}", b.text());
        b.screenshot("duplicate-refused");
        assert_eq!(b.credentials(&authenticator).len(), 1);

        // Sign out, then password + passkey.
        b.open(&format!("{site}/.gatehouse/settings"));
        b.wait_for(
            "document.querySelector('#passkey-devices')",
            "the settings page",
        );
        b.click("form[action$='/logout'] button");
        b.wait_for(
            "document.querySelector('#password')",
            "the login page after signing out",
        );
        b.open(&format!("{site}/admin"));
        b.wait_for(
            "document.querySelector('#password')",
            "the login page for /admin",
        );
        sign_in(&mut b, "ann", PASSWORD);
        b.wait_for(
            "document.querySelector('[data-webauthn=get]')",
            "the second step",
        );
        b.wait_for(
            "!document.querySelector('[data-webauthn=get] [data-webauthn-start]').hidden",
            "the passkey button",
        );
        b.screenshot("second-step");
        b.presence(&authenticator, true);
        b.click("[data-webauthn-start]");
        b.wait_for(
            "location.pathname === '/admin'",
            "the two-factor page of the panel",
        );
        b.presence(&authenticator, false);
        assert!(
            b.text().to_lowercase().contains("remote-user: ann"),
            "{}",
            b.text()
        );
        b.screenshot("panel-after-passkey");

        // Allow passwordless for the device.
        b.open(&format!("{site}/.gatehouse/settings"));
        b.wait_for(
            "document.querySelector('[data-toggle-passwordless]')",
            "the passwordless switch",
        );
        b.click("[data-toggle-passwordless]");
        b.wait_for(
            "location.search.includes('passwordless_on')",
            "the switch turned on",
        );
        b.screenshot("passwordless-on");

        // Sign out and in with the passkey alone.
        b.click("form[action$='/logout'] button");
        b.wait_for("document.querySelector('#password')", "the login page");
        b.open(&format!("{site}/admin"));
        b.wait_for(
            "!document.querySelector('[data-webauthn=passwordless] [data-webauthn-start]').hidden",
            "the passkey button",
        );
        b.screenshot("login-with-passkey");
        b.presence(&authenticator, true);
        b.click("[data-webauthn-start]");
        b.wait_for(
            "location.pathname === '/admin'",
            "the panel after the passkey alone",
        );
        assert!(
            b.text().to_lowercase().contains("remote-user: ann"),
            "{}",
            b.text()
        );
        b.screenshot("panel-passwordless");
    });
    if let Err(e) = journey.await {
        panic!("{e}\n--- gatehouse log ---\n{}", gate.log());
    }
    assert!(upstream.count() >= 2);
    let log = gate.log();
    assert!(
        log.contains("method=\"passkey\"") || log.contains("method=passkey"),
        "{log}"
    );
}

/// The issue's promise for the demo: a new user of `gatehouse demo` adds a passkey with
/// the browser's virtual authenticator, then signs in with password + passkey.
#[test]
fn a_demo_user_adds_a_passkey_and_signs_in_with_it() {
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut open, mut password) = (String::new(), String::new());
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(v) = line.trim().strip_prefix("Open:") {
            open = v.trim().to_string();
        }
        if let Some(v) = line.trim().strip_prefix("Password:") {
            password = v.trim().to_string();
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let _guard = ChildGuard(child);
    assert_eq!(
        open,
        format!("http://localhost:{port}/"),
        "the demo prints a WebAuthn-capable URL"
    );
    wait_for_port(port, "the demo", String::new);

    let mut b = Chromium::launch(&output_dir("browser_demo_passkey"));
    let authenticator = b.add_virtual_authenticator();
    b.open(&open);
    b.wait_for(
        "document.querySelector('#password')",
        "the demo's login page",
    );
    sign_in(&mut b, "demo", &password);
    b.wait_for(
        "document.body.innerText.includes('Demo User')",
        "the demo panel",
    );
    b.open(&format!("{open}.gatehouse/settings"));
    b.wait_for(
        "document.querySelector('#device-name')",
        "the settings page",
    );
    b.fill("#device-name", "My browser");
    b.click("form[action$='/settings/webauthn/add'] button[type=submit]");
    b.wait_for(
        "!document.querySelector('[data-webauthn=create] [data-webauthn-start]').hidden",
        "the use-device button",
    );
    b.presence(&authenticator, true);
    b.click("[data-webauthn-start]");
    b.wait_for(
        "document.body.innerText.includes('backup codes')",
        "the backup codes",
    );
    b.presence(&authenticator, false);
    b.screenshot("passkey-added");

    b.open(&format!("{open}.gatehouse/settings"));
    b.wait_for(
        "document.querySelector('#passkey-devices')",
        "the device list",
    );
    b.click("form[action$='/logout'] button");
    b.wait_for("document.querySelector('#password')", "the login page");
    sign_in(&mut b, "demo", &password);
    b.wait_for(
        "!document.querySelector('[data-webauthn=get] [data-webauthn-start]').hidden",
        "the passkey step",
    );
    b.presence(&authenticator, true);
    b.click("[data-webauthn-start]");
    b.wait_for(
        "document.body.innerText.includes('Demo User')",
        "the demo panel after the passkey",
    );
    b.screenshot("signed-in-with-passkey");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_pages_follow_telegram_without_a_reload() {
    let (addr, _) = start_upstream().await;
    let fake = FakeTelegram::start().await;
    let gate = Gatehouse::start(&format!(
        r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["*"]
address = "{addr}"
[session]
secure = false
{}
"#,
        fake.config("")
    ));
    let site = format!("http://localhost:{}", gate.proxy);
    let shots = output_dir("browser_telegram_journey");
    let runtime = tokio::runtime::Handle::current();
    let phone = TgUser {
        id: 1001,
        first_name: "Ann",
        username: "ann_phone",
    };
    let journey = tokio::task::spawn_blocking(move || {
        let mut b = Chromium::launch(&shots);
        b.open(&format!("{site}/"));
        b.wait_for("document.querySelector('#password')", "the login page");
        sign_in(&mut b, "ann", PASSWORD);
        b.wait_for("location.pathname === '/'", "the panel after the password");

        // Link: the page shows the deep link and updates when the bot sees /start.
        b.open(&format!("{site}/.gatehouse/settings"));
        b.wait_for(
            "document.querySelector('#telegram-link')",
            "the Telegram section",
        );
        b.click("#telegram-link");
        b.wait_for(
            "document.querySelector('#deep-link')",
            "the deep link on the settings page",
        );
        b.screenshot("link-page");
        let href = b.eval("document.querySelector('#deep-link').href");
        let token = href
            .as_str()
            .unwrap()
            .split("start=")
            .nth(1)
            .unwrap()
            .to_string();
        fake.push_start(&phone, &token);
        b.wait_for(
            "document.body.innerText.includes('Linked: Ann (@ann_phone)')",
            "the settings page to learn of the link",
        );
        b.wait_for(
            "document.querySelector('#telegram-title .badge.on')",
            "the section to say Telegram is on",
        );
        b.screenshot("linked");
        b.click("[data-link-continue] a");
        b.wait_for(
            "document.body.innerText.includes('backup codes')",
            "the backup codes",
        );

        // Sign in again: the confirmation is sent by itself, the tap signs the page in.
        b.open(&format!("{site}/.gatehouse/settings"));
        b.wait_for(
            "document.querySelector('#telegram-accounts')",
            "the settings",
        );
        b.click("form[action$='/logout'] button");
        b.wait_for("document.querySelector('#password')", "the login page");
        sign_in(&mut b, "ann", PASSWORD);
        b.wait_for(
            "document.querySelector('#telegram-number')",
            "the number to tap",
        );
        b.screenshot("waiting-for-tap");
        let number = b.eval("document.querySelector('#telegram-number').innerText");
        let number = number.as_str().unwrap().trim().to_string();
        let message = runtime.block_on(fake.message_to(1001, "Sign-in to"));
        let data = message
            .buttons
            .iter()
            .flatten()
            .find(|(label, _)| *label == number)
            .map(|(_, data)| data.clone())
            .unwrap();
        fake.push_tap(&phone, &message, &data);
        b.wait_for(
            "location.pathname === '/home' || location.pathname === '/'",
            "the panel after the tap",
        );
        assert!(
            b.text().to_lowercase().contains("remote-user: ann"),
            "{}",
            b.text()
        );
        b.screenshot("signed-in-by-telegram");
    });
    if let Err(e) = journey.await {
        panic!("{e}\n--- gatehouse log ---\n{}", gate.log());
    }
}
