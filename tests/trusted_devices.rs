//! Trusted devices ("do not ask again on this device for N days"), over HTTP against
//! the real binary in proxy mode: a trusted browser skips the second step, for its own
//! user only; the settings list it and forget it; a password change, a password reset,
//! turning two-step verification off and `reset-2fa` revoke every trusted device; a
//! rule that asks every time asks again; `trusted_device_days = 0` turns it off.

mod common;

use common::{field, start_upstream, Browser, Enrolled, Gatehouse, SmtpServer, PASSWORD};
use gatehouse::portal::routes;

const PANEL: &str = "panel.example.test";

struct Setup {
    gate: Gatehouse,
}

impl Setup {
    async fn with(extra: &str) -> Self {
        let (addr, _) = start_upstream().await;
        Setup {
            gate: Gatehouse::start(&format!(
                r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{addr}"
public_url = "http://{PANEL}:{{proxy}}"
[session]
secure = false
[access_control]
default_policy = "one_factor"
[[access_control.rules]]
resources = ["^/admin"]
policy = "two_factor"
[[access_control.rules]]
resources = ["^/vault"]
policy = "two_factor"
ask_every_time = true
{extra}
"#
            )),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{PANEL}:{}{path}", self.gate.proxy)
    }

    fn base(&self) -> String {
        self.url("/.gatehouse")
    }

    fn settings(&self) -> String {
        self.url(&format!("/.gatehouse{}", routes::SETTINGS))
    }

    async fn log_in(&self, b: &mut Browser, user: &str, password: &str) -> common::Page {
        b.log_in(
            &self.url(&format!("/.gatehouse{}?rd=%2Fhome", routes::LOGIN_PAGE)),
            user,
            password,
        )
        .await
    }

    /// `user` signs in with their password in a new browser and turns on an app.
    async fn with_app(&self, user: &str) -> (Browser, Enrolled) {
        let mut b = Browser::new(&[PANEL]);
        assert_eq!(self.log_in(&mut b, user, PASSWORD).await.status, 303);
        let enrolled = b.enable_totp(&self.base()).await;
        (b, enrolled)
    }

    /// A new browser where `user` passes the second step with a backup code and asks
    /// to be trusted; it is signed out afterwards, keeping its device cookie.
    async fn trusted_browser(&self, user: &str, code: &str) -> Browser {
        let mut b = Browser::new(&[PANEL]);
        let step = self.log_in(&mut b, user, PASSWORD).await;
        assert_eq!(step.location.as_deref(), Some("/.gatehouse/2fa?rd=%2Fhome"));
        let page = b.get(&self.url(step.location.as_deref().unwrap())).await;
        assert!(
            page.body.contains("name=\"trust\"")
                && page
                    .body
                    .contains("Do not ask again on this device for 30 days"),
            "the second step offers trust: {}",
            page.body
        );
        let done = b
            .second_step_with(
                &self.url(step.location.as_deref().unwrap()),
                "backup",
                code,
                &[("trust", "1")],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        signed_out(&mut b);
        b
    }

    /// Whether signing `user` in with `password` in `b` goes straight on (true) or to
    /// the second step (false).
    async fn skips_second_step(&self, b: &mut Browser, user: &str, password: &str) -> bool {
        signed_out(b);
        let page = self.log_in(b, user, password).await;
        assert_eq!(page.status, 303, "{}", page.body);
        match page.location.as_deref() {
            Some("/home") => true,
            Some("/.gatehouse/2fa?rd=%2Fhome") => false,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Drops the session cookie, as a browser closed and opened again would; the device
/// cookie stays.
fn signed_out(b: &mut Browser) {
    b.cookies.retain(|name, _| name.ends_with("_device"));
}

/// The server logged the revocation of ann's one trusted device, for `reason`.
fn assert_revoked(log: &str, reason: &str) {
    let reason = format!("reason=\"{reason}\"");
    assert!(
        log.lines().any(|l| l.contains("trusted_devices_revoked")
            && l.contains("user=\"ann\"")
            && l.contains("count=\"1\"")
            && l.contains(&reason)),
        "{log}"
    );
}

/// The id of the first trusted device listed on a settings page.
fn first_trusted_id(settings: &str) -> String {
    let list = settings
        .split("id=\"trusted-devices\"")
        .nth(1)
        .expect("a trusted devices list");
    field(list, "id")
}

#[tokio::test]
async fn a_trusted_browser_skips_the_second_step_for_its_user_until_forgotten() {
    let s = Setup::with("").await;
    let (_, ann) = s.with_app("ann").await;
    let mut trusted = s.trusted_browser("ann", &ann.backup_codes[0]).await;

    assert!(
        s.skips_second_step(&mut trusted, "ann", PASSWORD).await,
        "the trusted browser needs the password only"
    );
    assert_eq!(trusted.get(&s.url("/home")).await.status, 200);
    assert_eq!(
        trusted.get(&s.url("/admin")).await.status,
        200,
        "the trusted device stands in for the second factor on two_factor rules"
    );
    assert!(s.gate.log().contains("trusted_device"), "{}", s.gate.log());

    let settings = trusted.get(&s.settings()).await;
    assert!(
        settings.body.contains("Trusted devices")
            && settings.body.contains("This device")
            && settings
                .body
                .contains("Signed in with: Password + Trusted device"),
        "{}",
        settings.body
    );

    // Another browser is asked; so is another user in the trusted browser.
    let mut other = Browser::new(&[PANEL]);
    assert!(!s.skips_second_step(&mut other, "ann", PASSWORD).await);
    let (_, _bob) = s.with_app("bob").await;
    let mut shared = Browser::new(&[PANEL]);
    shared.cookies = trusted.cookies.clone();
    assert!(
        !s.skips_second_step(&mut shared, "bob", PASSWORD).await,
        "a device ann trusts is nothing to bob"
    );

    // Forgotten in the settings: asked again.
    assert!(s.skips_second_step(&mut trusted, "ann", PASSWORD).await);
    let settings = trusted.get(&s.settings()).await;
    let id = first_trusted_id(&settings.body);
    let forgot = trusted
        .post_with_csrf(
            &s.settings(),
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_DEVICES_FORGET)),
            &[("id", &id)],
        )
        .await;
    assert_eq!(forgot.status, 303, "{}", forgot.body);
    let settings = trusted.get(&s.settings()).await;
    assert!(
        settings.body.contains("id=\"trusted-none\""),
        "{}",
        settings.body
    );
    assert!(!s.skips_second_step(&mut trusted, "ann", PASSWORD).await);
}

#[tokio::test]
async fn a_password_change_revokes_every_trusted_device() {
    let s = Setup::with("").await;
    let (mut settings_browser, ann) = s.with_app("ann").await;
    let mut one = s.trusted_browser("ann", &ann.backup_codes[0]).await;
    let mut two = s.trusted_browser("ann", &ann.backup_codes[1]).await;
    assert!(s.skips_second_step(&mut one, "ann", PASSWORD).await);

    let changed = settings_browser
        .post_with_csrf(
            &s.settings(),
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_PASSWORD)),
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new secret"),
                ("repeat_password", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert!(
        !s.skips_second_step(&mut one, "ann", "a brand new secret")
            .await
    );
    assert!(
        !s.skips_second_step(&mut two, "ann", "a brand new secret")
            .await
    );
}

#[tokio::test]
async fn turning_two_step_verification_off_revokes_every_trusted_device() {
    let s = Setup::with("").await;
    let (mut settings_browser, ann) = s.with_app("ann").await;
    let mut trusted = s.trusted_browser("ann", &ann.backup_codes[0]).await;
    assert!(s.skips_second_step(&mut trusted, "ann", PASSWORD).await);

    let off = settings_browser
        .post_with_csrf(
            &s.settings(),
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_TOTP_DISABLE)),
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(off.status, 303, "{}", off.body);
    assert_revoked(&s.gate.log(), "two_factor_off");
    // On again: the device that was trusted before is asked.
    settings_browser.enable_totp(&s.base()).await;
    assert!(!s.skips_second_step(&mut trusted, "ann", PASSWORD).await);
}

#[tokio::test]
async fn reset_2fa_from_the_cli_revokes_every_trusted_device() {
    let s = Setup::with("").await;
    let (mut settings_browser, ann) = s.with_app("ann").await;
    let mut trusted = s.trusted_browser("ann", &ann.backup_codes[0]).await;
    assert!(s.skips_second_step(&mut trusted, "ann", PASSWORD).await);

    let (ok, out, err) = s.gate.cli(&["user", "reset-2fa", "ann"]);
    assert!(ok, "{out}{err}");
    assert_revoked(&s.gate.log(), "two_factor_reset");
    // The support desk's user turns an app on again: the old device is asked.
    signed_out(&mut settings_browser);
    s.log_in(&mut settings_browser, "ann", PASSWORD).await;
    settings_browser.enable_totp(&s.base()).await;
    assert!(!s.skips_second_step(&mut trusted, "ann", PASSWORD).await);
}

#[tokio::test]
async fn a_password_reset_by_email_revokes_every_trusted_device() {
    let smtp = SmtpServer::start();
    let s = Setup::with(&format!(
        r#"
[smtp]
host = "127.0.0.1"
port = {}
tls = "none"
from = "gatehouse@example.test"
[second_factor]
verify_identity_by_email = false
new_device_alerts = false
[password_reset]
disables_second_factors = false
"#,
        smtp.port
    ))
    .await;
    let (_, ann) = s.with_app("ann").await;
    let mut trusted = s.trusted_browser("ann", &ann.backup_codes[0]).await;
    assert!(s.skips_second_step(&mut trusted, "ann", PASSWORD).await);

    let mut lost = Browser::new(&[PANEL]);
    let forgot = s.url(&format!("/.gatehouse{}", routes::FORGOT));
    lost.post_with_csrf(&forgot, &forgot, &[("who", "ann@example.test")])
        .await;
    // The first mail said two-step verification was turned on.
    let mail = smtp.wait_for(2, 10).await;
    let form = lost.get(&mail.link()).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = field(&form.body, "csrf");
    let token = field(&form.body, "token");
    let done = lost
        .post(
            &s.url(&format!("/.gatehouse{}", routes::RESET)),
            &[
                ("csrf", csrf.as_str()),
                ("token", token.as_str()),
                ("new_password", "brand new secret"),
                ("repeat_password", "brand new secret"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        !s.skips_second_step(&mut trusted, "ann", "brand new secret")
            .await,
        "the reset kept two-step verification on, and the device is asked again"
    );
}

#[tokio::test]
async fn a_rule_that_asks_every_time_asks_again_on_a_trusted_device() {
    let s = Setup::with("").await;
    let (_, ann) = s.with_app("ann").await;
    let mut b = s.trusted_browser("ann", &ann.backup_codes[0]).await;
    assert!(s.skips_second_step(&mut b, "ann", PASSWORD).await);
    assert_eq!(b.get(&s.url("/admin")).await.status, 200);

    let vault = b.get(&s.url("/vault/keys")).await;
    assert_eq!(vault.status, 302, "{}", vault.body);
    let login = b.get(&s.url(vault.location.as_deref().unwrap())).await;
    assert_eq!(login.status, 302, "{}", login.body);
    let step = login.location.unwrap();
    assert_eq!(step, "/.gatehouse/2fa?rd=%2Fvault%2Fkeys");
    let page = b.get(&s.url(&step)).await;
    assert_eq!(
        page.status, 200,
        "the second step is open again: {}",
        page.body
    );
    let done = b
        .second_step(&s.url(&step), "backup", &ann.backup_codes[1])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(b.get(&s.url("/vault/keys")).await.status, 200);
    let settings = b.get(&s.settings()).await;
    assert!(
        settings
            .body
            .contains("Signed in with: Password + Backup code"),
        "the factor proved now replaces the device: {}",
        settings.body
    );
}

#[tokio::test]
async fn with_trusted_device_days_zero_nothing_is_trusted() {
    let s = Setup::with("[second_factor]\ntrusted_device_days = 0\n").await;
    let (_, ann) = s.with_app("ann").await;
    let mut b = Browser::new(&[PANEL]);
    let step = s.log_in(&mut b, "ann", PASSWORD).await;
    let step = s.url(step.location.as_deref().unwrap());
    let page = b.get(&step).await;
    assert!(!page.body.contains("name=\"trust\""), "{}", page.body);
    let done = b
        .second_step_with(&step, "backup", &ann.backup_codes[0], &[("trust", "1")])
        .await;
    assert_eq!(done.status, 303);
    assert!(!s.skips_second_step(&mut b, "ann", PASSWORD).await);
}
