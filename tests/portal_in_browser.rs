//! The portal as users meet it, in a real browser (Debian's headless Chromium over the
//! DevTools protocol), in proxy mode in front of a panel, with a real SMTP server:
//!
//! - a journey: turning on an app, the sign-out flow, the strongest method preselected
//!   after a backup-code sign-in, the codes-left page, a trusted device skipping the
//!   second step until a password change, the new-device alert by mail (and none for a
//!   known device), the activity list, "Back to the panel", the 403 page, the language
//!   switcher;
//! - axe-core (tests/axe, installed from the npm registry by `.ci/run`) on every page,
//!   in English and Ukrainian, light and dark, at 1280 px and 390 px: no violations, and
//!   nothing wider than a phone's screen.
//!
//! Screenshots of each page land in `test-output/portal_in_browser_*`.

mod common;

use std::path::{Path, PathBuf};

use common::cdp::Chromium;
use common::{
    output_dir, start_upstream, totp_code, wait_for_port, Gatehouse, SmtpServer, PASSWORD,
};

/// axe-core's script, installed by `.ci/run` (`npm install --prefix tests/axe`).
fn axe_source() -> Option<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(path).ok()
}

/// A panel that accepts connections and never answers (for the 504 page).
fn silent_panel() -> (u16, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (listener.local_addr().unwrap().port(), listener)
}

struct Site {
    gate: Gatehouse,
    smtp: SmtpServer,
    _silent: std::net::TcpListener,
}

impl Site {
    async fn start() -> Self {
        let (panel, _) = start_upstream().await;
        let smtp = SmtpServer::start();
        let (silent_port, silent) = silent_panel();
        let closed = common::free_port();
        let gate = Gatehouse::start(&format!(
            r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
read_timeout = "1s"
[[proxy.upstreams]]
hosts = ["localhost"]
address = "{panel}"
public_url = "http://localhost:{{proxy}}"
[[proxy.upstreams]]
hosts = ["down.localhost"]
address = "127.0.0.1:{closed}"
[[proxy.upstreams]]
hosts = ["slow.localhost"]
address = "127.0.0.1:{silent_port}"
[portal]
name = "Acme Admin"
[session]
secure = false
[regulation]
max_retries = 50
[second_factor]
backup_codes = 10
verify_identity_by_email = false
[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "gatehouse@example.test"
[access_control]
default_policy = "one_factor"
[[access_control.rules]]
resources = ["^/admin"]
policy = "deny"
"#,
            port = smtp.port
        ));
        wait_for_port(gate.proxy, "the proxy", || gate.log());
        Site {
            gate,
            smtp,
            _silent: silent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.gate.proxy)
    }

    fn on(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.gate.proxy)
    }
}

fn sign_in(b: &mut Chromium, user: &str, password: &str) {
    b.wait_for("document.querySelector('#password')", "the login form");
    b.fill("#username", user);
    b.fill("#password", password);
    submit(b, "form[action$='/login'] button[type=submit]");
}

/// Clicks a button that sends a form, marking the page it leaves: [`arrived`] then
/// waits for the next one, not for something still on this one.
fn submit(b: &mut Chromium, button: &str) {
    b.eval("document.documentElement.dataset.left = '1'; true");
    b.click(button);
}

/// A condition on the page a form led to.
fn arrived(condition: &str) -> String {
    format!("!document.documentElement.dataset.left && ({condition})")
}

/// Turns on the authenticator app from the settings page; returns its secret and the
/// backup codes shown once.
fn turn_on_app(b: &mut Chromium, site: &Site) -> (String, Vec<String>) {
    b.open(&site.url("/.gatehouse/settings"));
    b.wait_for(
        "document.querySelector('#two-step-summary')",
        "the settings page",
    );
    b.click("form[action$='/settings/totp/start'] button[type=submit]");
    b.wait_for(
        "document.querySelector('#totp-secret')",
        "the app's QR code page",
    );
    b.screenshot("totp-enrol");
    let secret = b
        .eval("document.querySelector('#totp-secret').innerText")
        .as_str()
        .unwrap()
        .replace(' ', "");
    b.fill("#code", &totp_code(&secret, 0));
    b.click("form[action$='/settings/totp/confirm'] button[type=submit]");
    b.wait_for(
        "document.querySelector('#backup-codes')",
        "the backup codes",
    );
    (secret, codes_on_page(b))
}

/// Turns on email codes from the settings page, with the code from the real mail.
fn turn_on_email_codes(b: &mut Chromium, site: &Site) {
    b.open(&site.url("/.gatehouse/settings"));
    b.wait_for(
        "document.querySelector('#two-step-summary')",
        "the settings page",
    );
    b.eval("document.querySelector('form[action$=\"/settings/email/start\"]').submit(); true");
    b.wait_for(
        "document.querySelector('#code')",
        "the email confirmation page",
    );
    b.screenshot("email-confirm");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let code = loop {
        let mail = site
            .smtp
            .messages()
            .into_iter()
            .rev()
            .find(|m| m.text.contains("confirm this address"));
        if let Some(mail) = mail {
            break mail.code();
        }
        assert!(std::time::Instant::now() < deadline, "no confirmation mail");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    b.fill("#code", &code);
    b.click("form[action$='/settings/email/confirm'] button[type=submit]");
    b.wait_for(
        "location.search.includes('done=email_on')",
        "email codes on",
    );
}

fn codes_on_page(b: &mut Chromium) -> Vec<String> {
    b.eval("[...document.querySelectorAll('#backup-codes code')].map(c => c.innerText)")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn text_has(b: &mut Chromium, needle: &str) -> bool {
    b.text().contains(needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_goes_through_sign_out_backup_codes_trusted_devices_and_alerts_in_a_real_browser() {
    let site = Site::start().await;
    let shots = output_dir("portal_in_browser_journey");
    let other_shots = output_dir("portal_in_browser_new_device");
    let site = std::sync::Arc::new(site);
    let s = site.clone();
    let second_browser_mail_count = tokio::task::spawn_blocking(move || {
        let site = s;
        let mut b = Chromium::launch(&shots);
        b.open(&site.url("/dashboard"));
        sign_in(&mut b, "ann", PASSWORD);
        b.wait_for("location.pathname === '/dashboard'", "the panel");
        let (_, codes) = turn_on_app(&mut b, &site);
        b.screenshot("backup-codes");

        // Settings: the summary, and the way back to the panel.
        b.open(&site.url("/.gatehouse/settings"));
        b.wait_for("document.querySelector('#two-step-summary')", "settings");
        assert!(
            text_has(&mut b, "Two-step verification: on (Authenticator app)"),
            "{}",
            b.text()
        );
        assert!(text_has(&mut b, "Back to Acme Admin"), "{}", b.text());
        b.click("#back-to-panel");
        b.wait_for("location.pathname === '/'", "the panel, from settings");

        // A panel's "Sign out" link asks first, then says it is done.
        b.open(&site.url("/.gatehouse/logout?rd=%2Fdashboard"));
        b.wait_for(
            "document.querySelector('#stay-signed-in')",
            "the sign-out question",
        );
        assert!(text_has(&mut b, "Sign out?"), "{}", b.text());
        b.screenshot("sign-out");
        b.click("form[action$='/logout'] button[type=submit]");
        b.wait_for("document.querySelector('#password')", "the signed-out page");
        assert!(text_has(&mut b, "You have signed out"), "{}", b.text());
        b.screenshot("signed-out");

        // A backup code, trusting the device: the app was preselected.
        sign_in(&mut b, "ann", PASSWORD);
        b.wait_for("document.querySelector('.methods')", "the second step");
        let current = b.eval("document.querySelector('.methods [aria-current]').innerText");
        assert_eq!(current.as_str(), Some("Authenticator app"));
        b.click(".methods a[href*='method=backup']");
        b.wait_for(
            "location.search.includes('method=backup')",
            "the backup code form",
        );
        b.fill("#code", &codes[0]);
        b.click("[data-trust-device]");
        b.screenshot("second-step-backup");
        b.click("form[action$='/2fa'] button[type=submit]");
        b.wait_for(
            "document.querySelector('#backup-used-left')",
            "the codes-left page",
        );
        assert!(text_has(&mut b, "Backup codes left: 9"), "{}", b.text());
        b.screenshot("backup-used");
        b.click("a[href$='/dashboard']");
        b.wait_for(
            "location.pathname === '/dashboard'",
            "the panel after the backup code",
        );

        // Preselection stays on the app after a backup-code sign-in; this device is
        // trusted, so the next sign-in needs the password only.
        b.delete_cookie("gatehouse_session", &site.url("/"));
        b.open(&site.url("/dashboard"));
        sign_in(&mut b, "ann", PASSWORD);
        b.wait_for(
            "location.pathname === '/dashboard'",
            "the panel without a second step",
        );

        // Settings: the trusted device, the activity (its times in the browser's own
        // time zone), then a password change.
        b.call(
            "Emulation.setTimezoneOverride",
            serde_json::json!({"timezoneId": "Europe/Kyiv"}),
        );
        b.open(&site.url("/.gatehouse/settings"));
        b.wait_for(
            "document.querySelector('#trusted-devices li')",
            "the trusted device",
        );
        // Each section is one line until opened.
        assert!(!text_has(&mut b, "This device"), "{}", b.text());
        b.click("#section-trusted > summary");
        assert!(text_has(&mut b, "This device"), "{}", b.text());
        b.wait_for(
            "document.querySelectorAll('#activity li').length >= 4",
            "the activity list",
        );
        b.click("#section-activity > summary");
        let shown = b.eval("document.querySelector('#activity time').innerText");
        let title = b.eval("document.querySelector('#activity time').title");
        assert!(
            !shown.as_str().unwrap().contains("UTC") && title.as_str().unwrap().ends_with("UTC"),
            "local time shown, UTC kept in the title: {shown} / {title}"
        );
        b.click("#section-password > summary");
        assert!(
            text_has(&mut b, "Signed in: Password + Trusted device"),
            "{}",
            b.text()
        );
        assert!(
            text_has(&mut b, "Turned on: Authenticator app"),
            "{}",
            b.text()
        );
        b.screenshot("settings-activity");
        b.fill("#current_password", PASSWORD);
        b.fill("#new_password", "a brand new secret");
        b.fill("#repeat_password", "a brand new secret");
        b.click("form[action$='/settings/password'] button[type=submit]");
        b.wait_for(
            "location.search.includes('done=password')",
            "the password changed",
        );
        b.delete_cookie("gatehouse_session", &site.url("/"));
        b.open(&site.url("/dashboard"));
        sign_in(&mut b, "ann", "a brand new secret");
        b.wait_for(
            "document.querySelector('.methods')",
            "the second step again: the password change forgot the device",
        );
        let current = b.eval("document.querySelector('.methods [aria-current]').innerText");
        assert_eq!(
            current.as_str(),
            Some("Authenticator app"),
            "after a backup-code sign-in the app is still preselected"
        );
        b.click(".methods a[href*='method=backup']");
        b.wait_for(
            "location.search.includes('method=backup')",
            "the backup code form",
        );
        b.fill("#code", &codes[1]);
        b.click("form[action$='/2fa'] button[type=submit]");
        b.wait_for(
            "document.querySelector('#backup-used-left')",
            "the codes-left page",
        );

        // The 403 page says who is signed in and offers a way out.
        b.open(&site.url("/admin/users"));
        b.wait_for("document.querySelector('#switch-account')", "the 403 page");
        assert!(text_has(&mut b, "ann"), "{}", b.text());
        b.screenshot("denied");

        // The language switcher.
        b.open(&site.url("/.gatehouse/settings"));
        b.wait_for("document.querySelector('.languages a')", "the switcher");
        b.click(".languages a[lang=uk]");
        b.wait_for(
            "document.documentElement.lang === 'uk'",
            "the page in Ukrainian",
        );
        assert!(text_has(&mut b, "Двоетапна перевірка"), "{}", b.text());
        b.screenshot("settings-uk");
        let mails_before = site.smtp.messages().len();

        // A second browser (a new device) signs in: the alert is mailed.
        let mut other = Chromium::launch(&other_shots);
        other.open(&site.url("/dashboard"));
        sign_in(&mut other, "ann", "a brand new secret");
        other.wait_for("document.querySelector('.methods')", "the second step");
        other.click(".methods a[href*='method=backup']");
        other.wait_for(
            "location.search.includes('method=backup')",
            "the backup form",
        );
        other.fill("#code", &codes[2]);
        other.click("form[action$='/2fa'] button[type=submit]");
        other.wait_for("document.querySelector('#backup-used-left')", "codes left");
        mails_before
    })
    .await
    .unwrap();
    let _ = second_browser_mail_count;
    let mut alert = None;
    for _ in 0..100 {
        alert = site
            .smtp
            .messages()
            .into_iter()
            .find(|m| m.subject.starts_with("New sign-in"));
        if alert.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let alert = alert.expect("the new-device alert by mail");
    assert_eq!(alert.subject, "New sign-in to Acme Admin");
    assert!(alert.text.contains("Chrome"), "{}", alert.text);
    let all = site.smtp.messages();
    assert_eq!(
        all.iter()
            .filter(|m| m.subject.starts_with("New sign-in"))
            .count(),
        1,
        "one alert: the first browser was the account's first, and then a known one"
    );
}

/// The pages to check, each opened by a step in the browser.
fn pages(site: &Site, reset_link: &str) -> Vec<(&'static str, String)> {
    vec![
        ("login", site.url("/.gatehouse/?rd=%2Fdashboard")),
        ("forgot", site.url("/.gatehouse/forgot")),
        ("reset", reset_link.to_string()),
        ("not-found", site.url("/.gatehouse/nothing-here")),
        ("bad-gateway", site.on("down.localhost", "/")),
        ("gateway-timeout", site.on("slow.localhost", "/")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_in_both_languages_and_schemes_at_desktop_and_phone_width() {
    let Some(axe) = axe_source() else {
        eprintln!("SKIPPED: axe-core is not installed (npm install --prefix tests/axe)");
        return;
    };
    let site = std::sync::Arc::new(Site::start().await);
    // A reset link, for the reset page (opening it does not use it).
    let mut http = common::Browser::new(&[]);
    let forgot = site.url("/.gatehouse/forgot");
    http.post_with_csrf(&forgot, &forgot, &[("who", "bob@example.test")])
        .await;
    let reset_link = site.smtp.wait_for(1, 10).await.link();
    let s = site.clone();
    let shots: PathBuf = output_dir("portal_in_browser_pages");
    let found = tokio::task::spawn_blocking(move || {
        let site = s;
        let mut b = Chromium::launch(&shots);
        b.open(&site.url("/dashboard"));
        sign_in(&mut b, "ann", PASSWORD);
        b.wait_for("location.pathname === '/dashboard'", "the panel");
        turn_on_app(&mut b, &site);
        turn_on_email_codes(&mut b, &site);
        let mut codes;
        let mut problems = Vec::new();
        for language in ["en", "uk"] {
            for dark in [false, true] {
                for width in [1280, 390] {
                    b.emulate(width, dark, language);
                    let mode = format!(
                        "{language}-{}-{width}",
                        if dark { "dark" } else { "light" }
                    );
                    let mut check = |b: &mut Chromium, page: &str| {
                        let name = format!("{page}-{mode}");
                        b.screenshot(&name);
                        for v in b.axe(&axe) {
                            problems.push(format!("{name}: {v}"));
                        }
                        if b.overflows() {
                            problems.push(format!("{name}: wider than the screen"));
                        }
                    };
                    // Signed in: settings, new backup codes, sign-out, 403.
                    b.open(&site.url("/.gatehouse/settings"));
                    b.wait_for("document.querySelector('#two-step-summary')", "settings");
                    check(&mut b, "settings");
                    b.eval("document.querySelectorAll('details').forEach(d => d.open = true); true");
                    check(&mut b, "settings-opened");
                    b.eval("document.querySelector('form[action$=\"/settings/backup/regenerate\"]').submit(); true");
                    b.wait_for("document.querySelector('#backup-codes')", "new codes");
                    check(&mut b, "backup-codes");
                    codes = codes_on_page(&mut b);
                    b.open(&site.url("/.gatehouse/"));
                    b.wait_for("document.querySelector('h1')", "the signed-in page");
                    check(&mut b, "signed-in");
                    b.open(&site.url("/admin"));
                    b.wait_for("document.querySelector('#switch-account')", "403");
                    check(&mut b, "denied");
                    b.open(&site.url("/.gatehouse/logout"));
                    b.wait_for("document.querySelector('#stay-signed-in')", "sign out?");
                    check(&mut b, "sign-out");
                    b.click("form[action$='/logout'] button[type=submit]");
                    b.wait_for("document.querySelector('#password')", "signed out");
                    check(&mut b, "signed-out");
                    // Signed out: the public pages and the panels' error pages.
                    for (page, url) in pages(&site, &reset_link) {
                        b.open(&url);
                        b.wait_for("document.querySelector('h1')", page);
                        check(&mut b, page);
                    }
                    // A wrong password, a form that lost its CSRF token.
                    b.open(&site.url("/.gatehouse/"));
                    sign_in(&mut b, "ann", "not the password");
                    b.wait_for(&arrived("document.querySelector('.alert')"), "the error");
                    check(&mut b, "login-error");
                    b.eval("document.querySelector('input[name=csrf]').value = 'forged'; true");
                    sign_in(&mut b, "ann", PASSWORD);
                    b.wait_for(&arrived("document.querySelector('.alert')"), "the CSRF refusal");
                    check(&mut b, "csrf-error");
                    // The second step, each method, then the codes-left page.
                    b.open(&site.url("/.gatehouse/"));
                    sign_in(&mut b, "ann", PASSWORD);
                    b.wait_for("document.querySelector('.methods')", "the second step");
                    check(&mut b, "second-step-app");
                    b.click(".methods a[href*='method=backup']");
                    b.wait_for("location.search.includes('method=backup')", "backup");
                    check(&mut b, "second-step-backup");
                    b.click(".methods a[href*='method=email']");
                    b.wait_for("location.search.includes('method=email')", "email codes");
                    check(&mut b, "second-step-email");
                    submit(&mut b, "form[action$='/2fa/email'] button[type=submit]");
                    b.wait_for(&arrived("document.querySelector('.info')"), "the code sent");
                    check(&mut b, "second-step-email-sent");
                    b.click(".methods a[href*='method=backup']");
                    b.wait_for("location.search.includes('method=backup')", "backup");
                    b.fill("#code", &codes[0]);
                    b.click("form[action$='/2fa'] button[type=submit]");
                    b.wait_for("document.querySelector('#backup-used-left')", "codes left");
                    check(&mut b, "backup-used");
                }
            }
        }
        problems
    })
    .await
    .unwrap();
    assert!(
        found.is_empty(),
        "axe-core and the phone check found:\n{}",
        found.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_sent_after_the_session_ended_comes_back_with_what_was_typed() {
    let site = std::sync::Arc::new(Site::start().await);
    let shots = output_dir("portal_in_browser_lost_session");
    let s = site.clone();
    tokio::task::spawn_blocking(move || {
        let site = s;
        let mut b = Chromium::launch(&shots);
        b.open(&site.url("/.gatehouse/settings"));
        sign_in(&mut b, "bob", PASSWORD);
        b.wait_for("document.querySelector('#two-step-summary')", "settings");
        b.click("#section-address > summary");
        b.fill("#new_address", "bob.new@example.test");
        b.fill("#address-password", PASSWORD);
        // The session ends (revoked, or it expired) before the send.
        let (ok, out, err) = site.gate.cli(&["sessions", "revoke", "--user", "bob"]);
        assert!(ok, "{out}{err}");
        b.click("form[action$='/settings/address/start'] button[type=submit]");
        b.wait_for("document.querySelector('#password')", "the sign-in page");
        assert!(b.text().contains("Your session expired"), "{}", b.text());
        b.screenshot("session-expired");
        sign_in(&mut b, "bob", PASSWORD);
        b.wait_for(
            "document.querySelector('#two-step-summary')",
            "settings again",
        );
        let kept = b.eval("document.querySelector('#new_address').value");
        assert_eq!(
            kept.as_str(),
            Some("bob.new@example.test"),
            "the typed address is back"
        );
        let password = b.eval("document.querySelector('#address-password').value");
        assert_eq!(password.as_str(), Some(""), "a password is never kept");
        let open = b.eval("document.querySelector('#section-address').open");
        assert_eq!(open.as_bool(), Some(true), "its section is open");
        b.screenshot("typed-input-back");
    })
    .await
    .unwrap();
}
