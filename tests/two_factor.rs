//! The second factor, driven over HTTP against the real binary in proxy mode: enabling
//! an authenticator app from the settings page, logging in with it, replays, backup
//! codes, the seeds' "turning 2FA on ends other sessions" rule, two_factor rules,
//! settings changes, and the support desk's reset.

mod common;

use common::{start_upstream, Browser, Gatehouse, PASSWORD};
use gatehouse::portal::routes;

const PANEL: &str = "panel.example.test";

fn config(upstream: std::net::SocketAddr, extra: &str) -> String {
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
resources = ["^/admin"]
policy = "two_factor"
{extra}
"#
    )
}

struct Setup {
    gate: Gatehouse,
    upstream: common::Recorded,
    browser: Browser,
}

impl Setup {
    async fn with(extra: &str) -> Self {
        let (addr, upstream) = start_upstream().await;
        Setup {
            gate: Gatehouse::start(&config(addr, extra)),
            upstream,
            browser: Browser::new(&[PANEL]),
        }
    }

    async fn new() -> Self {
        Self::with("").await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{PANEL}:{}{path}", self.gate.proxy)
    }

    fn base(&self) -> String {
        self.url("/.gatehouse")
    }

    async fn settings(&self, b: &mut Browser) -> common::Page {
        b.get(&self.url(&format!("/.gatehouse{}", routes::SETTINGS)))
            .await
    }

    fn step(&self) -> String {
        self.url(&format!("/.gatehouse{}", routes::SECOND_STEP))
    }

    async fn log_in(&self, browser: &mut Browser, user: &str) -> common::Page {
        browser
            .log_in(
                &self.url(&format!("/.gatehouse{}?rd=%2Fhome", routes::LOGIN_PAGE)),
                user,
                PASSWORD,
            )
            .await
    }

    /// Logs ann in and turns on her authenticator app.
    async fn ann_with_totp(&mut self) -> common::Enrolled {
        let mut b = std::mem::replace(&mut self.browser, Browser::new(&[]));
        self.log_in(&mut b, "ann").await;
        let enrolled = b.enable_totp(&self.base()).await;
        self.browser = b;
        enrolled
    }
}

#[tokio::test]
async fn after_enabling_totp_login_needs_password_and_code() {
    let mut s = Setup::new().await;
    let enrolled = s.ann_with_totp().await;
    assert_eq!(
        enrolled.backup_codes.len(),
        5,
        "five backup codes shown once: {}",
        enrolled.final_page.body
    );

    let mut b = Browser::new(&[PANEL]);
    let after_password = s.log_in(&mut b, "ann").await;
    assert_eq!(after_password.status, 303);
    assert_eq!(
        after_password.location.as_deref(),
        Some("/.gatehouse/2fa?rd=%2Fhome")
    );
    assert_eq!(
        b.get(&s.url("/home")).await.status,
        302,
        "a password alone grants nothing once 2FA is on"
    );
    assert_eq!(s.upstream.count(), 0);

    let step_url = s.url(after_password.location.as_deref().unwrap());
    let done = b
        .second_step(&step_url, "totp", &common::totp_code(&enrolled.secret, 1))
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/home"));
    assert_eq!(b.get(&s.url("/home")).await.status, 200);
    assert!(s
        .upstream
        .last()
        .to_ascii_lowercase()
        .contains("remote-user: ann"));
    assert_eq!(
        b.get(&s.url("/admin")).await.status,
        200,
        "two factors open two_factor resources"
    );
    let settings = s.settings(&mut b).await;
    assert!(
        settings
            .body
            .contains("Signed in with: Password + Authenticator app"),
        "the sessions list says how each signed in: {}",
        settings.body
    );
    assert!(
        s.gate.log().contains("level=\"two_factor\"") || s.gate.log().contains("level=two_factor"),
        "{}",
        s.gate.log()
    );
}

#[tokio::test]
async fn totp_code_is_refused_when_replayed() {
    let mut s = Setup::new().await;
    let enrolled = s.ann_with_totp().await;
    let code = common::totp_code(&enrolled.secret, 1);
    let mut first = Browser::new(&[PANEL]);
    s.log_in(&mut first, "ann").await;
    assert_eq!(
        first.second_step(&s.step(), "totp", &code).await.status,
        303
    );

    let mut second = Browser::new(&[PANEL]);
    s.log_in(&mut second, "ann").await;
    let refused = second.second_step(&s.step(), "totp", &code).await;
    assert_eq!(refused.status, 401);
    assert!(refused.body.contains("already used"), "{}", refused.body);
}

#[tokio::test]
async fn code_from_a_wrong_clock_is_explained_not_accepted() {
    let mut s = Setup::new().await;
    let enrolled = s.ann_with_totp().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let page = b
        .second_step(&s.step(), "totp", &common::totp_code(&enrolled.secret, 10))
        .await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("about 5 minutes ahead"), "{}", page.body);
    assert!(
        page.body.contains("automatic date and time"),
        "{}",
        page.body
    );
    assert_eq!(b.get(&s.url("/home")).await.status, 302);
}

#[tokio::test]
async fn backup_code_logs_in_once_and_the_count_goes_down() {
    let mut s = Setup::new().await;
    let enrolled = s.ann_with_totp().await;
    let code = enrolled.backup_codes[2].clone();

    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let done = b
        .second_step(&s.step(), "backup", &code.to_uppercase())
        .await;
    assert_eq!(
        done.status, 303,
        "codes are accepted in any case: {}",
        done.body
    );
    let settings = s.settings(&mut b).await;
    assert_eq!(common::element_text(&settings.body, "backup-left"), "4");

    let mut again = Browser::new(&[PANEL]);
    s.log_in(&mut again, "ann").await;
    let refused = again.second_step(&s.step(), "backup", &code).await;
    assert_eq!(refused.status, 401);
    assert!(s.gate.log().contains("backup_code_used"));
}

#[tokio::test]
async fn after_a_backup_code_the_codes_left_are_told_and_the_next_sign_in_still_opens_on_the_app() {
    let mut s = Setup::new().await;
    let enrolled = s.ann_with_totp().await;
    let total = enrolled.backup_codes.len();
    for (used, code) in enrolled.backup_codes.iter().enumerate() {
        let mut b = Browser::new(&[PANEL]);
        s.log_in(&mut b, "ann").await;
        // The strongest method she has, never the backup codes she used last time.
        let step_url = format!("{}?rd=%2Fhome", s.step());
        let step = b.get(&step_url).await;
        assert_eq!(common::field(&step.body, "method"), "totp", "{}", step.body);
        let done = b.second_step(&step_url, "backup", code).await;
        assert_eq!(done.status, 303, "{}", done.body);
        let told = done.location.expect("to the codes-left page");
        assert!(
            told.starts_with(&format!("/.gatehouse{}", routes::SECOND_STEP_BACKUP_USED)),
            "{told}"
        );
        let page = b.get(&s.url(&told)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let left = total - used - 1;
        assert!(
            page.body.contains(&format!("data-left=\"{left}\"")),
            "{left} left: {}",
            page.body
        );
        let warned = page.body.contains("id=\"backup-used-warning\"");
        assert_eq!(warned, left <= 1, "a warning at one or none: {}", page.body);
        if warned {
            assert!(page.body.contains("#backup-title"), "the way to new codes");
        }
        // The way on is where she was going.
        assert!(page.body.contains("href=\"/home\""), "{}", page.body);
        assert_eq!(b.get(&s.url("/home")).await.status, 200, "signed in");
    }
}

#[tokio::test]
async fn reloading_the_address_a_form_posted_to_goes_back_to_its_page_not_to_a_404() {
    let s = Setup::new().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    for (posted, page) in [
        (routes::SETTINGS_TOTP_CONFIRM, routes::SETTINGS),
        (routes::SETTINGS_PASSWORD, routes::SETTINGS),
        (routes::SETTINGS_BACKUP_REGENERATE, routes::SETTINGS),
        (routes::SECOND_STEP_EMAIL, routes::SECOND_STEP),
    ] {
        let reloaded = b.get(&s.url(&format!("/.gatehouse{posted}"))).await;
        assert_eq!(reloaded.status, 303, "{posted}: {}", reloaded.body);
        assert_eq!(
            reloaded.location.as_deref(),
            Some(format!("/.gatehouse{page}").as_str())
        );
    }
}

#[tokio::test]
async fn generating_new_backup_codes_invalidates_the_old_ones() {
    let mut s = Setup::new().await;
    let enrolled = s.ann_with_totp().await;
    let base = s.base();
    let fresh = s
        .browser
        .post_with_csrf(
            &format!("{base}{}", routes::SETTINGS),
            &format!("{base}{}", routes::SETTINGS_BACKUP_REGENERATE),
            &[],
        )
        .await;
    let new_codes = common::backup_codes(&fresh.body);
    assert_eq!(new_codes.len(), 5);
    assert!(fresh
        .body
        .contains("download=\"gatehouse-backup-codes.txt\""));

    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    assert_eq!(
        b.second_step(&s.step(), "backup", &enrolled.backup_codes[0])
            .await
            .status,
        401,
        "old code dead"
    );
    assert_eq!(
        b.second_step(&s.step(), "backup", &new_codes[0])
            .await
            .status,
        303,
        "new code works"
    );
}

#[tokio::test]
async fn wrong_enrolment_code_keeps_the_same_secret_and_leaves_the_method_off() {
    let s = Setup::new().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let base = s.base();
    b.post_with_csrf(
        &format!("{base}{}", routes::SETTINGS),
        &format!("{base}{}", routes::SETTINGS_TOTP_START),
        &[],
    )
    .await;
    let enroll = b.get(&format!("{base}{}", routes::SETTINGS_TOTP)).await;
    let secret = common::element_text(&enroll.body, "totp-secret");
    assert!(
        enroll.body.contains("data:image/svg+xml;base64,"),
        "a server-side QR code"
    );
    assert!(
        enroll.body.contains("otpauth://totp/gatehouse:ann?"),
        "{}",
        enroll.body
    );
    let csrf = common::field(&enroll.body, "csrf");
    let wrong = b
        .post(
            &format!("{base}{}", routes::SETTINGS_TOTP_CONFIRM),
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("did not work"), "{}", wrong.body);
    assert_eq!(
        common::element_text(&wrong.body, "totp-secret"),
        secret,
        "same secret"
    );
    let settings = b.get(&format!("{base}{}", routes::SETTINGS)).await;
    assert!(settings.body.contains("badge off"), "still off");
    // A password login still needs no second step.
    let mut other = Browser::new(&[PANEL]);
    assert_eq!(
        s.log_in(&mut other, "ann").await.location.as_deref(),
        Some("/home")
    );
}

#[tokio::test]
async fn turning_two_factor_on_ends_every_other_session_at_once() {
    let mut s = Setup::new().await;
    let mut laptop = Browser::new(&[PANEL]);
    s.log_in(&mut laptop, "ann").await;
    assert_eq!(laptop.get(&s.url("/home")).await.status, 200);
    let mut bob = Browser::new(&[PANEL]);
    s.log_in(&mut bob, "bob").await;

    s.ann_with_totp().await;
    assert_eq!(
        laptop.get(&s.url("/home")).await.status,
        302,
        "ann's other session ended"
    );
    assert_eq!(
        s.browser.get(&s.url("/home")).await.status,
        200,
        "the session that turned it on goes on"
    );
    assert_eq!(
        bob.get(&s.url("/home")).await.status,
        200,
        "other users are untouched"
    );
}

#[tokio::test]
async fn user_without_2fa_on_a_two_factor_resource_is_sent_to_settings() {
    let s = Setup::new().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "bob").await;
    let page = b.get(&s.url("/admin?x=1")).await;
    assert_eq!(page.status, 302);
    assert_eq!(
        page.location.as_deref(),
        Some("/.gatehouse/settings?rd=%2Fadmin%3Fx%3D1")
    );
    let settings = b
        .get(&s.url(&format!(
            "/.gatehouse{}?rd=%2Fadmin%3Fx%3D1",
            routes::SETTINGS
        )))
        .await;
    assert!(
        settings
            .body
            .contains("<p class=\"warning\" role=\"alert\">This page needs two-step verification"),
        "asked for as a warning, not reported as a success: {}",
        settings.body
    );
    assert!(
        settings
            .body
            .contains("<strong>Two-step verification: off</strong>"),
        "{}",
        settings.body
    );
    assert!(
        settings.body.contains("id=\"two-step-next\">Recommended:"),
        "one next step: {}",
        settings.body
    );
    b.enable_totp(&s.base()).await;
    assert_eq!(b.get(&s.url("/admin?x=1")).await.status, 200);
    let settings = s.settings(&mut b).await;
    assert!(
        settings
            .body
            .contains("<strong>Two-step verification: on (Authenticator app)</strong>"),
        "{}",
        settings.body
    );
    assert!(!settings.body.contains("id=\"two-step-next\""));
}

#[tokio::test]
async fn enrollment_redirect_can_be_switched_off() {
    let s = Setup::with("[second_factor]\nenrollment_redirect = false").await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "bob").await;
    assert_eq!(b.get(&s.url("/admin")).await.status, 403);
}

#[tokio::test]
async fn second_step_attempts_are_limited_like_passwords() {
    let mut s = Setup::new().await;
    s.ann_with_totp().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    assert_eq!(b.second_step(&s.step(), "totp", "000000").await.status, 401);
    assert_eq!(b.second_step(&s.step(), "totp", "111111").await.status, 401);
    let banned = b.second_step(&s.step(), "totp", "222222").await;
    assert_eq!(banned.status, 429);
    assert!(banned.body.contains("Too many failed attempts"));
}

#[tokio::test]
async fn disabling_the_last_factor_needs_the_password_and_removes_backup_codes() {
    let mut s = Setup::new().await;
    s.ann_with_totp().await;
    let base = s.base();
    let settings = format!("{base}{}", routes::SETTINGS);
    let refused = s
        .browser
        .post_with_csrf(
            &settings,
            &format!("{base}{}", routes::SETTINGS_TOTP_DISABLE),
            &[("password", "wrong")],
        )
        .await;
    assert_eq!(refused.status, 401);
    let done = s
        .browser
        .post_with_csrf(
            &settings,
            &format!("{base}{}", routes::SETTINGS_TOTP_DISABLE),
            &[("password", PASSWORD)],
        )
        .await;
    assert_eq!(done.status, 303);
    let (ok, out, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(
        ok && out.contains("second factors: none") && out.contains("backup codes left: 0"),
        "{out}"
    );
    let mut b = Browser::new(&[PANEL]);
    assert_eq!(
        s.log_in(&mut b, "ann").await.location.as_deref(),
        Some("/home"),
        "password alone again"
    );
}

#[tokio::test]
async fn reset_2fa_from_the_cli_switches_everything_off() {
    let mut s = Setup::new().await;
    s.ann_with_totp().await;
    let (ok, out, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(
        ok && out.contains("second factors: totp") && out.contains("backup codes left: 5"),
        "{out}"
    );
    let (ok, out, err) = s.gate.cli(&["user", "reset-2fa", "ann"]);
    assert!(ok, "{out}{err}");
    let (_, out, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(
        out.contains("second factors: none") && out.contains("backup codes left: 0"),
        "{out}"
    );
    let mut b = Browser::new(&[PANEL]);
    assert_eq!(
        s.log_in(&mut b, "ann").await.location.as_deref(),
        Some("/home")
    );
    // The audit line comes from whoever made the change: the server (on sled, the CLI
    // asks it over the admin socket) or the CLI itself (on PostgreSQL).
    let by = if common::on_postgres() {
        err
    } else {
        s.gate.log()
    };
    assert!(by.contains("two_factor_reset"), "the audit line: {by}");
}

#[tokio::test]
async fn stale_password_is_confirmed_before_a_change_and_the_change_then_goes_through() {
    let s = Setup::with("[second_factor]\nreauthentication_window = \"1s\"").await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let base = s.base();
    let asked = b
        .post_with_csrf(
            &format!("{base}{}", routes::SETTINGS),
            &format!("{base}{}", routes::SETTINGS_TOTP_START),
            &[("rd", "")],
        )
        .await;
    assert_eq!(asked.status, 200);
    assert!(
        asked.body.contains("Confirm your password"),
        "{}",
        asked.body
    );
    let csrf = common::field(&asked.body, "csrf");
    let next = common::field(&asked.body, "next");
    let wrong = b
        .post(
            &format!("{base}{}", routes::SETTINGS_CONFIRM),
            &[
                ("csrf", &csrf),
                ("next", &next),
                ("rd", ""),
                ("confirm_password", "nope"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let body = [
        ("csrf", csrf.as_str()),
        ("next", next.as_str()),
        ("rd", ""),
        ("confirm_password", PASSWORD),
    ];
    let confirmed = b
        .post(&format!("{base}{}", routes::SETTINGS_CONFIRM), &body)
        .await;
    assert_eq!(confirmed.status, 307);
    assert_eq!(
        confirmed.location.as_deref(),
        Some("/.gatehouse/settings/totp/start")
    );
    // The browser re-sends the same form to the original action.
    let replayed = b
        .post(&s.url(confirmed.location.as_deref().unwrap()), &body)
        .await;
    assert_eq!(replayed.status, 303, "{}", replayed.body);
    assert_eq!(
        replayed.location.as_deref(),
        Some("/.gatehouse/settings/totp")
    );
}

#[tokio::test]
async fn password_change_checks_and_ends_other_sessions() {
    let s = Setup::new().await;
    let mut other = Browser::new(&[PANEL]);
    s.log_in(&mut other, "bob").await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "bob").await;
    let base = s.base();
    let settings = format!("{base}{}", routes::SETTINGS);
    let action = format!("{base}{}", routes::SETTINGS_PASSWORD);
    let common_pw = b
        .post_with_csrf(
            &settings,
            &action,
            &[
                ("current_password", PASSWORD),
                ("new_password", "password123"),
                ("repeat_password", "password123"),
            ],
        )
        .await;
    assert!(
        common_pw.status == 400 && common_pw.body.contains("too common"),
        "{}",
        common_pw.body
    );
    let mismatch = b
        .post_with_csrf(
            &settings,
            &action,
            &[
                ("current_password", PASSWORD),
                ("new_password", "a new long secret"),
                ("repeat_password", "another"),
            ],
        )
        .await;
    assert!(mismatch.body.contains("do not match"));
    let short = b
        .post_with_csrf(
            &settings,
            &action,
            &[
                ("current_password", PASSWORD),
                ("new_password", "short"),
                ("repeat_password", "short"),
            ],
        )
        .await;
    assert!(short.body.contains("at least 8"));
    let wrong = b
        .post_with_csrf(
            &settings,
            &action,
            &[
                ("current_password", "wrong"),
                ("new_password", "a new long secret"),
                ("repeat_password", "a new long secret"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let ok = b
        .post_with_csrf(
            &settings,
            &action,
            &[
                ("current_password", PASSWORD),
                ("new_password", "a new long secret"),
                ("repeat_password", "a new long secret"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(
        other.get(&s.url("/home")).await.status,
        302,
        "other session ended"
    );
    assert_eq!(b.get(&s.url("/home")).await.status, 200, "this one goes on");
    let mut fresh = Browser::new(&[PANEL]);
    assert_eq!(
        fresh
            .log_in(
                &s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)),
                "bob",
                "a new long secret"
            )
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn sessions_are_listed_and_can_be_ended_from_settings() {
    let s = Setup::new().await;
    let mut phone = Browser::new(&[PANEL]);
    let phone_ua = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
    let login = phone
        .get_with(
            &s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            &[("user-agent", phone_ua)],
        )
        .await;
    let csrf = common::field(&login.body, "csrf");
    let response = phone
        .client
        .post(s.url(&format!("/.gatehouse{}", routes::LOGIN)))
        .header("user-agent", phone_ua)
        .header(
            "cookie",
            format!(
                "gatehouse_session_csrf={}",
                phone.cookies["gatehouse_session_csrf"]
            ),
        )
        .form(&[
            ("csrf", csrf.as_str()),
            ("username", "bob"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let session_cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("gatehouse_session="))
        .unwrap();
    phone.cookies.insert(
        "gatehouse_session".into(),
        session_cookie.split(';').next().unwrap()["gatehouse_session=".len()..].to_string(),
    );

    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "bob").await;
    let settings = s.settings(&mut b).await;
    assert!(
        settings.body.contains("Chrome 120 on Android"),
        "{}",
        settings.body
    );
    assert!(settings.body.contains("This session"));
    let id = common::field(&settings.body, "id");
    let csrf = common::field(&settings.body, "csrf");
    let ended = b
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_SESSIONS_END)),
            &[("csrf", &csrf), ("id", &id)],
        )
        .await;
    assert_eq!(ended.status, 303);
    assert_eq!(
        phone.get(&s.url("/home")).await.status,
        302,
        "the phone's session is gone"
    );
    assert_eq!(b.get(&s.url("/home")).await.status, 200);
}

#[tokio::test]
async fn codes_from_oathtool_are_accepted() {
    let s = Setup::new().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let enrolled = b
        .enable_totp_with(&s.base(), |secret| {
            let out = std::process::Command::new("oathtool")
                .args(["--totp", "-b", secret])
                .output()
                .expect("oathtool is installed (apt-get install oathtool)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .await;
    assert!(
        enrolled.final_page.body.contains("authenticator app is on"),
        "{}",
        enrolled.final_page.body
    );
}

#[tokio::test]
async fn the_settings_page_lists_what_happened_on_the_account_newest_first() {
    let mut s = Setup::new().await;
    let mut guesser = Browser::new(&[PANEL]);
    let wrong = guesser
        .log_in(
            &s.url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            "ann",
            "not her password",
        )
        .await;
    assert_eq!(wrong.status, 401);
    let enrolled = s.ann_with_totp().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let done = b
        .second_step(&s.step(), "backup", &enrolled.backup_codes[0])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);

    // Kept in the background: the list catches up within moments.
    let mut listed = Vec::new();
    for _ in 0..40 {
        let page = s.settings(&mut b).await;
        let list = page
            .body
            .split("id=\"activity\"")
            .nth(1)
            .unwrap_or("")
            .to_string();
        listed = list
            .split("<strong>")
            .skip(1)
            .map(|item| item.split("</strong>").next().unwrap().to_string())
            .collect();
        if listed.len() >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        listed,
        [
            "Signed in: Password + Backup code",
            "New backup codes made",
            "Turned on: Authenticator app",
            "Signed in: Password",
            "Wrong password entered",
        ],
        "newest first"
    );
}
