//! A real browser: headless Chromium (Debian's package) driven over the DevTools
//! protocol, with a virtual WebAuthn authenticator. The test clicks through what a
//! user does: password login, adding a passkey in the settings, the same authenticator
//! refused a second time, password + passkey, turning on passwordless, and signing in
//! with the passkey alone. Every page visited is saved as a screenshot under
//! `test-output/browser_passkey_journey/`.

mod common;

use common::cdp::Chromium;
use common::{output_dir, start_upstream, Gatehouse, PASSWORD};

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
            "!document.querySelector('[data-webauthn-start]').hidden",
            "the passkey button (WebAuthn is available)",
        );
        b.screenshot("login");
        b.fill("#username", "ann");
        b.fill("#password", PASSWORD);
        b.click("form[action$='/login'] button[type=submit]");
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
            "!document.querySelector('[data-webauthn-start]').hidden",
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
        assert!(b.text().contains("Test laptop"));
        b.fill("#device-name", "Same laptop");
        b.click("form[action$='/settings/webauthn/add'] button[type=submit]");
        b.wait_for(
            "document.querySelector('[data-webauthn=create]')",
            "the add-device page",
        );
        b.wait_for(
            "!document.querySelector('[data-webauthn-start]').hidden",
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
        b.fill("#username", "ann");
        b.fill("#password", PASSWORD);
        b.click("form[action$='/login'] button[type=submit]");
        b.wait_for(
            "document.querySelector('[data-webauthn=get]')",
            "the second step",
        );
        b.wait_for(
            "!document.querySelector('[data-webauthn-start]').hidden",
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
            "!document.querySelector('[data-webauthn-start]').hidden",
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
