//! Email codes and "forgot password", against a real SMTP server on loopback
//! (Debian's python3-aiosmtpd), driving the real binary in proxy mode.

mod common;

use common::{start_upstream, Browser, Gatehouse, SmtpServer, PASSWORD};
use gatehouse::portal::routes;

const PANEL: &str = "panel.example.test";

struct Setup {
    gate: Gatehouse,
    smtp: SmtpServer,
    browser: Browser,
}

impl Setup {
    async fn with(smtp: SmtpServer, extra: &str) -> Self {
        let (addr, _) = start_upstream().await;
        let config = format!(
            r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{addr}"
public_url = "http://{PANEL}:{{proxy}}"
[session]
secure = false
[smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
from = "gatehouse@example.test"
{extra}
"#,
            port = smtp.port
        );
        Setup {
            gate: Gatehouse::start(&config),
            smtp,
            browser: Browser::new(&[PANEL]),
        }
    }

    async fn new() -> Self {
        Self::with(SmtpServer::start(), "").await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{PANEL}:{}{path}", self.gate.proxy)
    }

    async fn log_in(&self, browser: &mut Browser, user: &str, password: &str) -> common::Page {
        browser
            .log_in(
                &self.url(&format!("/.gatehouse{}?rd=%2Fhome", routes::LOGIN_PAGE)),
                user,
                password,
            )
            .await
    }

    /// Ann signs in with her password and asks for an emailed code at the second step;
    /// returns her browser, the second step's URL path and the page's CSRF token.
    async fn ann_requests_an_email_code(&self) -> (Browser, String, String) {
        let mut b = Browser::new(&[PANEL]);
        let step = self.log_in(&mut b, "ann", PASSWORD).await.location.unwrap();
        let page = b.get(&self.url(&step)).await;
        let csrf = common::field(&page.body, "csrf");
        b.post(
            &self.url(&format!("/.gatehouse{}", routes::SECOND_STEP_EMAIL)),
            &[("csrf", &csrf), ("rd", "")],
        )
        .await;
        (b, step, csrf)
    }

    /// Proves control of the account's address (asked before a first second factor):
    /// asks to start an authenticator app, is asked for the emailed code, enters message
    /// `mail_index`'s code, and lands on the enrolment it asked for.
    async fn prove_identity(&self, b: &mut Browser, mail_index: usize) {
        let asked = b
            .post_with_csrf(
                &self.url(&format!("/.gatehouse{}", routes::SETTINGS)),
                &self.url(&format!("/.gatehouse{}", routes::SETTINGS_TOTP_START)),
                &[("rd", "")],
            )
            .await;
        let proved = self
            .pass_identity_check(b, &asked, routes::SETTINGS_TOTP_START, mail_index)
            .await;
        assert_eq!(proved.status, 307, "{}", proved.body);
        assert_eq!(
            proved.location.as_deref(),
            Some("/.gatehouse/settings/totp/start")
        );
    }

    /// From the "confirm it is you" page `gated` (in front of `next`): asks for the
    /// code, reads it from message `mail_index` and enters it; returns the answer.
    async fn pass_identity_check(
        &self,
        b: &mut Browser,
        gated: &common::Page,
        next: &str,
        mail_index: usize,
    ) -> common::Page {
        assert_eq!(gated.status, 200, "{}", gated.body);
        assert!(gated.body.contains("Confirm it is you"), "{}", gated.body);
        let csrf = common::field(&gated.body, "csrf");
        let sent = b
            .post(
                &self.url(&format!("/.gatehouse{}", routes::SETTINGS_IDENTITY_SEND)),
                &[("csrf", csrf.as_str()), ("next", next), ("rd", "")],
            )
            .await;
        assert!(sent.body.contains("We sent a code to "), "{}", sent.body);
        let mail = self.smtp.wait_for(mail_index, 10).await;
        assert_eq!(mail.subject, "Confirm it is you");
        let csrf = common::field(&sent.body, "csrf");
        let code = mail.code();
        b.post(
            &self.url(&format!("/.gatehouse{}", routes::SETTINGS_IDENTITY_VERIFY)),
            &[
                ("csrf", csrf.as_str()),
                ("next", next),
                ("rd", ""),
                ("identity_code", code.as_str()),
            ],
        )
        .await
    }

    /// Ann signs in and asks to turn email codes on while the mail server is down: the
    /// page says the mail could not be sent yet (it waits in the queue).
    async fn ann_asks_for_an_email_code_while_the_mail_server_is_down(&self, b: &mut Browser) {
        self.log_in(b, "ann", PASSWORD).await;
        let asked = b
            .post_with_csrf(
                &self.url(&format!("/.gatehouse{}", routes::SETTINGS)),
                &self.url(&format!("/.gatehouse{}", routes::SETTINGS_EMAIL_START)),
                &[("rd", "")],
            )
            .await;
        assert!(
            asked.body.contains("could not send the email right now"),
            "{}",
            asked.body
        );
    }

    /// Ann turns on email codes from the settings page; returns the backup codes page.
    async fn ann_with_email_codes(&mut self) -> common::Page {
        let mut b = std::mem::replace(&mut self.browser, Browser::new(&[]));
        self.log_in(&mut b, "ann", PASSWORD).await;
        let settings = self.url(&format!("/.gatehouse{}", routes::SETTINGS));
        let asked = b
            .post_with_csrf(
                &settings,
                &self.url(&format!("/.gatehouse{}", routes::SETTINGS_EMAIL_START)),
                &[("rd", "")],
            )
            .await;
        assert_eq!(asked.status, 200, "{}", asked.body);
        assert!(
            asked.body.contains("We sent a code to a***@example.test"),
            "{}",
            asked.body
        );
        let mail = self.smtp.wait_for(1, 10).await;
        assert_eq!(mail.subject, "Confirm your email address");
        assert!(mail.to.contains("ann@example.test"));
        assert!(mail.html.contains(&mail.code()), "an HTML part too");
        let csrf = common::field(&asked.body, "csrf");
        let done = b
            .post(
                &self.url(&format!("/.gatehouse{}", routes::SETTINGS_EMAIL_CONFIRM)),
                &[("csrf", &csrf), ("code", &mail.code()), ("rd", "")],
            )
            .await;
        assert_eq!(done.status, 200, "{}", done.body);
        self.browser = b;
        done
    }
}

#[tokio::test]
async fn email_codes_are_confirmed_then_used_at_login() {
    let mut s = Setup::new().await;
    let enabled = s.ann_with_email_codes().await;
    assert_eq!(
        common::backup_codes(&enabled.body).len(),
        5,
        "first factor: backup codes shown once"
    );
    let notice = s.smtp.wait_for(2, 10).await;
    assert!(
        notice.text.contains("Two-step verification was turned on"),
        "{}",
        notice.text
    );

    let mut b = Browser::new(&[PANEL]);
    let step = s.log_in(&mut b, "ann", PASSWORD).await.location.unwrap();
    let page = b.get(&s.url(&step)).await;
    assert!(
        page.body.contains("Email me a code"),
        "email preselected as the only method: {}",
        page.body
    );
    let csrf = common::field(&page.body, "csrf");
    let sent = b
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SECOND_STEP_EMAIL)),
            &[("csrf", &csrf), ("rd", "/home")],
        )
        .await;
    assert_eq!(sent.status, 303);
    let after = b.get(&s.url(sent.location.as_deref().unwrap())).await;
    assert!(
        after.body.contains("We sent a code to a***@example.test"),
        "{}",
        after.body
    );
    let mail = s.smtp.wait_for(3, 10).await;
    assert_eq!(mail.subject, "Your sign-in code");
    let done = b.second_step(&s.url(&step), "email", &mail.code()).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(b.get(&s.url("/home")).await.status, 200);
}

#[tokio::test]
async fn a_code_tried_wrongly_five_times_is_dead() {
    let mut s = Setup::with(SmtpServer::start(), "[regulation]\nmax_retries = 20").await;
    s.ann_with_email_codes().await;
    let (mut b, step, _) = s.ann_requests_an_email_code().await;
    let code = s.smtp.wait_for(3, 10).await.code();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(
            b.second_step(&s.url(&step), "email", wrong).await.status,
            401
        );
    }
    let dead = b.second_step(&s.url(&step), "email", &code).await;
    assert_eq!(dead.status, 401);
    assert!(
        dead.body.contains("expired or was tried too often"),
        "{}",
        dead.body
    );
}

#[tokio::test]
async fn sending_again_waits_for_the_cooldown() {
    let mut s = Setup::new().await;
    s.ann_with_email_codes().await;
    let (mut b, _, csrf) = s.ann_requests_an_email_code().await;
    let again = b
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SECOND_STEP_EMAIL)),
            &[("csrf", &csrf), ("rd", "")],
        )
        .await;
    let page = b.get(&s.url(again.location.as_deref().unwrap())).await;
    assert!(page.body.contains("Please wait"), "{}", page.body);
    s.smtp.wait_for(3, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(s.smtp.messages().len(), 3, "no second code went out");
}

#[tokio::test]
async fn forgot_password_end_to_end_switches_two_factor_off() {
    let s = Setup::new().await;
    let mut old = Browser::new(&[PANEL]);
    s.log_in(&mut old, "ann", PASSWORD).await;
    let base = s.url("/.gatehouse");
    let mut b = Browser::window_of(&[PANEL], &old);
    s.log_in(&mut b, "ann", PASSWORD).await;
    s.prove_identity(&mut b, 1).await;
    b.enable_totp(&base).await;
    assert_eq!(
        old.get(&s.url("/home")).await.status,
        302,
        "turning 2FA on ended the old session"
    );
    let mut other = Browser::new(&[PANEL]);
    let step = s
        .log_in(&mut other, "ann", PASSWORD)
        .await
        .location
        .unwrap();
    assert!(step.contains("/2fa"));

    let mut lost = Browser::new(&[PANEL]);
    let login = lost
        .get(&s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)))
        .await;
    assert!(login.body.contains("Forgot your password?"));
    let asked = lost
        .post_with_csrf(
            &s.url(&format!("/.gatehouse{}", routes::FORGOT)),
            &s.url(&format!("/.gatehouse{}", routes::FORGOT)),
            &[("who", "ann@example.test")],
        )
        .await;
    assert!(
        asked.body.contains("If an account matches"),
        "{}",
        asked.body
    );
    let mail = s.smtp.wait_for(3, 10).await;
    assert_eq!(mail.subject, "Reset your password");
    assert!(
        mail.text.contains("switches two-step verification off"),
        "{}",
        mail.text
    );
    let link = mail.link();
    assert!(
        link.starts_with(&s.url(&format!("/.gatehouse{}?token=", routes::RESET))),
        "{link}"
    );

    let form = lost.get(&link).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = common::field(&form.body, "csrf");
    let token = common::field(&form.body, "token");
    let fields = [
        ("csrf", csrf.as_str()),
        ("token", token.as_str()),
        ("new_password", "brand new secret"),
        ("repeat_password", "brand new secret"),
    ];
    let done = lost
        .post(&s.url(&format!("/.gatehouse{}", routes::RESET)), &fields)
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("Two-step verification is now off"),
        "{}",
        done.body
    );
    let notice = s.smtp.wait_for(4, 10).await;
    assert!(
        notice.text.contains("Your password was reset"),
        "{}",
        notice.text
    );

    assert_eq!(
        b.get(&s.url("/home")).await.status,
        302,
        "every session ended"
    );
    let (_, out, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(
        out.contains("second factors: none") && out.contains("backup codes left: 0"),
        "{out}"
    );
    let again = lost
        .post(&s.url(&format!("/.gatehouse{}", routes::RESET)), &fields)
        .await;
    assert_eq!(again.status, 410, "a link works once");
    let mut fresh = Browser::new(&[PANEL]);
    assert_eq!(
        s.log_in(&mut fresh, "ann", "brand new secret")
            .await
            .location
            .as_deref(),
        Some("/home"),
        "no second step any more"
    );
    assert!(s.gate.log().contains("password_reset_used"));
}

#[tokio::test]
async fn unknown_accounts_get_the_same_answer_and_no_mail() {
    let s = Setup::new().await;
    let mut b = Browser::new(&[PANEL]);
    let forgot = s.url(&format!("/.gatehouse{}", routes::FORGOT));
    let known = b.post_with_csrf(&forgot, &forgot, &[("who", "bob")]).await;
    let unknown = b
        .post_with_csrf(&forgot, &forgot, &[("who", "nobody@nowhere.test")])
        .await;
    assert_eq!(known.status, unknown.status);
    assert_eq!(
        known.body.replace(&common::field(&known.body, "csrf"), ""),
        unknown
            .body
            .replace(&common::field(&unknown.body, "csrf"), "")
    );
    s.smtp.wait_for(1, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(s.smtp.messages().len(), 1, "only bob got a link");
}

#[tokio::test]
async fn reset_requests_are_rate_limited() {
    let s = Setup::with(
        SmtpServer::start(),
        "[password_reset]\nrequests_per_hour = 2",
    )
    .await;
    let mut b = Browser::new(&[PANEL]);
    let forgot = s.url(&format!("/.gatehouse{}", routes::FORGOT));
    for _ in 0..4 {
        let page = b.post_with_csrf(&forgot, &forgot, &[("who", "bob")]).await;
        assert!(page.body.contains("If an account matches"));
    }
    s.smtp.wait_for(2, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(
        s.smtp.messages().len(),
        2,
        "the same answer, but only two links went out"
    );
}

#[tokio::test]
async fn mail_server_down_is_told_and_the_queue_retries() {
    // The configured port has no server yet.
    let mut s = Setup::with(SmtpServer::reserve(), "").await;
    let login = s
        .browser
        .get(&s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)))
        .await;
    assert_eq!(login.status, 200, "the login page works without mail");
    let mut b = Browser::new(&[PANEL]);
    s.ann_asks_for_an_email_code_while_the_mail_server_is_down(&mut b)
        .await;
    s.smtp.run();
    let mail = s.smtp.wait_for(1, 20).await;
    assert_eq!(
        mail.subject, "Confirm your email address",
        "the queue delivered it once the server was up"
    );
    assert!(s.gate.log().contains("will retry"), "{}", s.gate.log());
}

#[tokio::test]
async fn changing_the_address_needs_the_password_and_a_code_and_tells_the_old_one() {
    let s = Setup::new().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "bob", PASSWORD).await;
    let settings = s.url(&format!("/.gatehouse{}", routes::SETTINGS));
    let start = s.url(&format!("/.gatehouse{}", routes::SETTINGS_ADDRESS_START));
    let bad = b
        .post_with_csrf(
            &settings,
            &start,
            &[("new_address", "not an address"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("does not look like an email address"));
    // Bob has no second factor: moving the address first needs a code mailed to the
    // current one (else a password thief would move it to their own mailbox).
    let gated = b
        .post_with_csrf(
            &settings,
            &start,
            &[
                ("new_address", "bobby@example.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(
        !gated.body.contains(PASSWORD),
        "the password is never put back into a page"
    );
    let proved = s
        .pass_identity_check(&mut b, &gated, routes::SETTINGS_ADDRESS_START, 1)
        .await;
    assert_eq!(proved.status, 303, "{}", proved.body);
    let identity_mail = s.smtp.wait_for(1, 10).await;
    assert!(
        identity_mail.to.contains("bob@example.test"),
        "{}",
        identity_mail.to
    );
    let wrong = b
        .post_with_csrf(
            &settings,
            &start,
            &[("new_address", "bobby@example.test"), ("password", "wrong")],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let asked = b
        .post_with_csrf(
            &settings,
            &start,
            &[
                ("new_address", "bobby@example.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(
        asked.body.contains("We sent a code to b***@example.test"),
        "{}",
        asked.body
    );
    let mail = s.smtp.wait_for(2, 10).await;
    assert!(mail.to.contains("bobby@example.test"), "{}", mail.to);
    let csrf = common::field(&asked.body, "csrf");
    let done = b
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_ADDRESS_CONFIRM)),
            &[("csrf", &csrf), ("code", &mail.code())],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let notice = s.smtp.wait_for(3, 10).await;
    assert!(
        notice.to.contains("bob@example.test"),
        "the old address is told: {}",
        notice.to
    );
    assert!(
        notice.text.contains("was changed to b***@example.test"),
        "{}",
        notice.text
    );
    let page = b.get(&settings).await;
    assert_eq!(
        common::element_text(&page.body, "email-address"),
        "bobby@example.test"
    );
}

#[tokio::test]
async fn the_password_alone_cannot_enrol_a_first_second_factor_when_the_account_has_an_address() {
    let s = Setup::new().await;
    let base = s.url("/.gatehouse");
    // A password thief signs in and tries to add their own authenticator app.
    let mut thief = Browser::new(&[PANEL]);
    s.log_in(&mut thief, "ann", PASSWORD).await;
    let asked = thief
        .post_with_csrf(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS)),
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_TOTP_START)),
            &[("rd", "")],
        )
        .await;
    assert_eq!(asked.status, 200);
    assert!(asked.body.contains("Confirm it is you"), "{}", asked.body);
    let pending = thief
        .get(&s.url(&format!("/.gatehouse{}", routes::SETTINGS_TOTP)))
        .await;
    assert!(
        !pending.body.contains("totp-secret"),
        "no enrolment was started: {}",
        pending.body
    );
    // Going straight to the confirmation is asked the same.
    let confirm = thief
        .post_with_csrf(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS)),
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_TOTP_CONFIRM)),
            &[("code", "123456"), ("rd", "")],
        )
        .await;
    assert!(
        confirm.body.contains("Confirm it is you"),
        "{}",
        confirm.body
    );
    // Without the mailbox, guesses fail.
    let csrf = common::field(&asked.body, "csrf");
    let sent = thief
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_IDENTITY_SEND)),
            &[
                ("csrf", csrf.as_str()),
                ("next", routes::SETTINGS_TOTP_START),
                ("rd", ""),
            ],
        )
        .await;
    let csrf = common::field(&sent.body, "csrf");
    let guess = thief
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_IDENTITY_VERIFY)),
            &[
                ("csrf", csrf.as_str()),
                ("next", routes::SETTINGS_TOTP_START),
                ("rd", ""),
                ("identity_code", "000000"),
            ],
        )
        .await;
    assert_eq!(guess.status, 401, "{}", guess.body);
    let mail = s.smtp.wait_for(1, 10).await;
    assert!(
        mail.text.contains("Someone who knows your password"),
        "the owner is told: {}",
        mail.text
    );

    // The owner, who reads the mail, gets through and enrols; a second factor after
    // the first needs no new check.
    let mut owner = Browser::new(&[PANEL]);
    s.log_in(&mut owner, "ann", PASSWORD).await;
    s.prove_identity(&mut owner, 1).await;
    owner.enable_totp(&base).await;
    let again = owner
        .post_with_csrf(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS)),
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_TOTP_START)),
            &[("rd", "")],
        )
        .await;
    assert!(!again.body.contains("Confirm it is you"), "{}", again.body);
}

#[tokio::test]
async fn reset_links_point_where_the_configuration_says_whatever_host_the_request_names() {
    let s = Setup::new().await;
    // The attacker asks for the victim's reset link with a Host naming their own port.
    let mut attacker = Browser::new(&[PANEL]);
    let forgot = s.url(&format!("/.gatehouse{}", routes::FORGOT));
    let page = attacker.get(&forgot).await;
    let csrf = common::field(&page.body, "csrf");
    let cookie = attacker
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let asked = attacker
        .client
        .post(&forgot)
        .header("host", format!("{PANEL}:6666"))
        .header("cookie", cookie)
        .form(&[("csrf", csrf.as_str()), ("who", "ann")])
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status().as_u16(), 200);
    let mail = s.smtp.wait_for(1, 10).await;
    let link = mail.link();
    assert!(
        link.starts_with(&format!(
            "http://{PANEL}:{}/.gatehouse{}?token=",
            s.gate.proxy,
            routes::RESET
        )),
        "the configured public_url, not the request's Host: {link}"
    );
}

#[tokio::test]
async fn a_catch_all_proxy_without_public_url_mails_no_reset_link_at_all() {
    let smtp = SmtpServer::start();
    let (addr, _) = start_upstream().await;
    let gate = Gatehouse::start(&format!(
        "[proxy]\nlisten = \"127.0.0.1:{{proxy}}\"\n[[proxy.upstreams]]\nhosts = [\"*\"]\naddress = \"{addr}\"\n[session]\nsecure = false\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"gatehouse@example.test\"\n",
        smtp.port
    ));
    let mut attacker = Browser::new(&["evil.example.test"]);
    let forgot = format!(
        "http://evil.example.test:{}/.gatehouse{}",
        gate.proxy,
        routes::FORGOT
    );
    let asked = attacker
        .post_with_csrf(&forgot, &forgot, &[("who", "ann")])
        .await;
    assert!(
        asked.body.contains("If an account matches"),
        "{}",
        asked.body
    );
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        smtp.messages().is_empty(),
        "no link built from a Host header"
    );
    assert!(
        gate.log().contains("proxy.upstreams[0].public_url"),
        "the operator is told at start"
    );
}

#[tokio::test]
async fn mail_queued_while_the_mail_server_was_down_is_sent_after_a_restart() {
    let mut s = Setup::with(SmtpServer::reserve(), "").await;
    let mut b = Browser::new(&[PANEL]);
    s.ann_asks_for_an_email_code_while_the_mail_server_is_down(&mut b)
        .await;
    // Killed while the message waits for its next try; the mail server comes up.
    s.gate.kill9();
    s.smtp.run();
    s.gate.spawn();
    let mail = s.smtp.wait_for(1, 20).await;
    assert_eq!(mail.subject, "Confirm your email address");
    assert!(
        s.gate.log().contains("mail queued before the restart"),
        "{}",
        s.gate.log()
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(s.smtp.messages().len(), 1, "sent once");
}

/// Drops the session cookie, as a browser closed and opened again would; the device
/// cookie stays.
fn session_dropped(b: &mut Browser) {
    b.cookies.retain(|name, _| name.ends_with("_device"));
}

#[tokio::test]
async fn a_sign_in_from_a_new_browser_is_mailed_but_not_the_first_nor_a_known_one() {
    let s = Setup::new().await;
    let mut first = Browser::new(&[PANEL]);
    assert_eq!(s.log_in(&mut first, "ann", PASSWORD).await.status, 303);
    session_dropped(&mut first);
    assert_eq!(s.log_in(&mut first, "ann", PASSWORD).await.status, 303);

    let mut stranger = Browser::with_agent(
        &[PANEL],
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    );
    assert_eq!(s.log_in(&mut stranger, "ann", PASSWORD).await.status, 303);

    let mail = s.smtp.wait_for(1, 10).await;
    assert_eq!(mail.subject, "New sign-in to gatehouse");
    assert!(
        mail.text.contains("Firefox 128 on Linux") && mail.text.contains("127.0.0.1"),
        "the browser, the system and the address: {}",
        mail.text
    );
    assert!(mail.text.contains("UTC"), "the time: {}", mail.text);
    assert_eq!(
        mail.link(),
        s.url(&format!("/.gatehouse{}#sessions-title", routes::SETTINGS)),
        "'this was not me' leads to the sessions list"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        s.smtp.messages().len(),
        1,
        "neither the account's first browser nor that browser again was news"
    );

    // A flood of new browsers: at most six alerts an hour.
    for _ in 0..8 {
        let mut b = Browser::new(&[PANEL]);
        assert_eq!(s.log_in(&mut b, "ann", PASSWORD).await.status, 303);
    }
    s.smtp.wait_for(6, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(s.smtp.messages().len(), 6);
    assert!(s.gate.log().contains("new_device_alert_limited"));
}

#[tokio::test]
async fn new_device_alerts_can_be_turned_off() {
    let s = Setup::with(
        SmtpServer::start(),
        "[second_factor]\nnew_device_alerts = false\n",
    )
    .await;
    for _ in 0..2 {
        let mut b = Browser::new(&[PANEL]);
        assert_eq!(s.log_in(&mut b, "ann", PASSWORD).await.status, 303);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(s.smtp.messages().is_empty());
}
