//! Telegram login confirmation against a loopback server speaking the Bot API's wire
//! format; gatehouse's real teloxide client talks to it through `telegram.api_url`.
//! Linking by deep link, two accounts, number matching (right, wrong, "wasn't me"),
//! first decision wins, foreign chats ignored, expiry, Telegram down, restart, limits.

mod common;

use common::telegram::{attempt_of, FakeTelegram, TgUser, BOT_USERNAME};
use common::{field, start_upstream, Browser, Gatehouse, Page, PASSWORD};
use gatehouse::portal::routes;

const PANEL: &str = "panel.example.test";

const ANN_PHONE: TgUser = TgUser {
    id: 1001,
    first_name: "Ann",
    username: "ann_phone",
};
const ANN_LAPTOP: TgUser = TgUser {
    id: 1002,
    first_name: "Ann L",
    username: "ann_laptop",
};
const STRANGER: TgUser = TgUser {
    id: 2002,
    first_name: "Eve",
    username: "eve",
};

struct Setup {
    gate: Gatehouse,
    fake: FakeTelegram,
    browser: Browser,
}

impl Setup {
    async fn with(telegram: &str, extra: &str) -> Self {
        let (addr, _) = start_upstream().await;
        let fake = FakeTelegram::start().await;
        let gate = Gatehouse::start(&format!(
            r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{addr}"
[session]
secure = false
[access_control]
default_policy = "one_factor"
{extra}
{}
"#,
            fake.config(telegram)
        ));
        Setup {
            gate,
            fake,
            browser: Browser::new(&[PANEL]),
        }
    }

    async fn new() -> Self {
        Self::with("", "").await
    }

    fn portal(&self, path: &str) -> String {
        format!("http://{PANEL}:{}/.gatehouse{path}", self.gate.proxy)
    }

    async fn log_in(&self, browser: &mut Browser, user: &str) -> Page {
        browser
            .log_in(
                &self.portal(&format!("{}?rd=%2Fhome", routes::LOGIN_PAGE)),
                user,
                PASSWORD,
            )
            .await
    }

    /// Starts linking for the signed-in browser; returns the deep link's token.
    async fn link_token(&self, browser: &mut Browser) -> String {
        let settings = browser.get(&self.portal(routes::SETTINGS)).await;
        assert!(
            settings.body.contains("Link a Telegram account"),
            "{}",
            settings.body
        );
        let page = browser
            .post(
                &self.portal(routes::SETTINGS_TELEGRAM_LINK),
                &[("csrf", &field(&settings.body, "csrf"))],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let prefix = format!("https://t.me/{BOT_USERNAME}?start=");
        let token = page
            .body
            .split(&prefix)
            .nth(1)
            .expect("a deep link to the bot")
            .split('"')
            .next()
            .unwrap()
            .to_string();
        assert!(
            page.body.contains("data:image/svg+xml;base64,"),
            "a QR code"
        );
        token
    }

    /// Links `who` to the signed-in user of `browser`.
    async fn link(&self, browser: &mut Browser, who: &TgUser) {
        let token = self.link_token(browser).await;
        self.fake.push_start(who, &token);
        self.fake.message_to(who.id, "linked to").await;
    }

    /// Signs ann in with a password and links her phone (Telegram turns on).
    async fn ann_linked(&mut self) {
        let mut b = std::mem::replace(&mut self.browser, Browser::new(&[]));
        self.log_in(&mut b, "ann").await;
        self.link(&mut b, &ANN_PHONE).await;
        self.browser = b;
    }

    /// A fresh login of ann up to the number on the page; returns the browser, the page
    /// and the number.
    async fn ann_waiting(&self) -> (Browser, Page, String) {
        let mut b = Browser::new(&[PANEL]);
        let after = self.log_in(&mut b, "ann").await;
        assert!(after.location.as_deref().unwrap_or("").contains("/2fa"));
        let step = b
            .get(&self.portal(&format!("{}?rd=%2Fhome", routes::SECOND_STEP)))
            .await;
        assert!(
            step.body.contains("data-telegram-autostart"),
            "{}",
            step.body
        );
        let sent = b
            .post(
                &self.portal(routes::SECOND_STEP_TELEGRAM_START),
                &[("csrf", &field(&step.body, "csrf")), ("rd", "/home")],
            )
            .await;
        assert_eq!(sent.status, 303);
        let page = b
            .get(
                &self.portal(
                    sent.location
                        .as_deref()
                        .unwrap()
                        .trim_start_matches("/.gatehouse"),
                ),
            )
            .await;
        let number = common::telegram::number_on(&page);
        (b, page, number)
    }
}

/// The callback data of the button labelled `label`.
fn button<'a>(sent: &'a common::telegram::Sent, label: &str) -> &'a str {
    sent.buttons
        .iter()
        .flatten()
        .find(|(l, _)| l == label)
        .map(|(_, d)| d.as_str())
        .unwrap_or_else(|| panic!("no button {label:?} in {:?}", sent.buttons))
}

async fn finish(s: &Setup, b: &mut Browser, page: &Page) -> Page {
    b.post(
        &s.portal(routes::SECOND_STEP),
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("rd", "/home"),
            ("method", "telegram"),
            ("code", &attempt_of(page)),
        ],
    )
    .await
}

#[tokio::test]
async fn linking_by_deep_link_turns_telegram_on_and_the_page_learns_of_it() {
    let s = Setup::new().await;
    let mut other = Browser::new(&[PANEL]);
    s.log_in(&mut other, "ann").await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let token = s.link_token(&mut b).await;

    // The settings page long-polls; the answer comes when the bot sees /start.
    let status_url = s.portal(&format!("{}?before=0", routes::SETTINGS_TELEGRAM_STATUS));
    let cookies = b.cookies.clone();
    let waiting = tokio::spawn(async move {
        let mut poller = Browser::new(&[PANEL]);
        poller.cookies = cookies;
        poller.get(&status_url).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.fake.push_start(&ANN_PHONE, &token);
    let status = waiting.await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(value["count"], 1, "{}", status.body);
    assert_eq!(value["accounts"][0], "Ann (@ann_phone)");
    let reply = s.fake.message_to(ANN_PHONE.id, "linked to ann").await;
    assert!(reply.buttons.is_empty());

    let codes = b.get(&s.portal(routes::SETTINGS_TELEGRAM_LINKED)).await;
    assert_eq!(codes.status, 200);
    assert!(codes.body.contains("backup"), "{}", codes.body);
    assert!(
        other.get(&s.portal(routes::SETTINGS)).await.status >= 300,
        "other sessions ended"
    );

    // The token worked once; the account cannot be linked to bob too.
    s.fake.push_start(&ANN_PHONE, &token);
    s.fake
        .message_to(ANN_PHONE.id, "invalid or has expired")
        .await;
    let mut bob = Browser::new(&[PANEL]);
    s.log_in(&mut bob, "bob").await;
    let bob_token = s.link_token(&mut bob).await;
    s.fake.push_start(&ANN_PHONE, &bob_token);
    s.fake
        .message_to(ANN_PHONE.id, "linked to another account")
        .await;

    let (_, shown, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(shown.contains("second factors: telegram"), "{shown}");
    assert!(
        shown.contains("telegram: Ann (@ann_phone) (id 1001"),
        "{shown}"
    );
    let log = s.gate.log();
    assert!(log.contains("telegram_linked"), "{log}");
}

#[tokio::test]
async fn every_linked_account_is_asked_and_the_right_number_signs_in() {
    let mut s = Setup::new().await;
    s.ann_linked().await;
    let mut b = std::mem::replace(&mut s.browser, Browser::new(&[]));
    s.link(&mut b, &ANN_LAPTOP).await;

    let (mut b, page, number) = s.ann_waiting().await;
    let to_phone = s.fake.message_to(ANN_PHONE.id, "Sign-in to").await;
    let to_laptop = s.fake.message_to(ANN_LAPTOP.id, "Sign-in to").await;
    for m in [&to_phone, &to_laptop] {
        assert!(m.text.contains(PANEL), "the site: {}", m.text);
        assert!(m.text.contains("127.0.0.1"), "the IP: {}", m.text);
        assert!(m.text.contains("UTC"), "the time: {}", m.text);
        let labels: Vec<&str> = m
            .buttons
            .iter()
            .flatten()
            .map(|(l, _)| l.as_str())
            .collect();
        assert_eq!(labels.len(), 5, "{labels:?}");
        assert!(labels.contains(&number.as_str()) && labels.contains(&"This wasn't me"));
        for (_, data) in m.buttons.iter().flatten() {
            let (attempt, token) = data.split_once(':').unwrap();
            assert_eq!(attempt, attempt_of(&page));
            assert_ne!(token, number, "the answer is never in the callback data");
        }
    }

    // The browser long-polls; the tap on the laptop decides.
    let wait_url = s.portal(&format!(
        "{}?attempt={}",
        routes::SECOND_STEP_TELEGRAM_WAIT,
        attempt_of(&page)
    ));
    let cookies = b.cookies.clone();
    let waiting = tokio::spawn(async move {
        let mut poller = Browser::new(&[PANEL]);
        poller.cookies = cookies;
        poller.get(&wait_url).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.fake
        .push_tap(&ANN_LAPTOP, &to_laptop, button(&to_laptop, &number));
    let told = waiting.await.unwrap();
    assert!(told.body.contains("\"confirmed\""), "{}", told.body);

    let done = finish(&s, &mut b, &page).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/home"));
    assert_eq!(
        b.get(&format!("http://{PANEL}:{}/home", s.gate.proxy))
            .await
            .status,
        200
    );

    // The other chat hears it was confirmed elsewhere; a second decision changes nothing.
    s.fake
        .wait_for("the edits", |f| {
            let e = f.edits();
            (e.iter().any(|(c, m, t)| {
                *c == ANN_LAPTOP.id
                    && *m == to_laptop.message_id
                    && t.contains("Sign-in confirmed.")
            }) && e.iter().any(|(c, m, t)| {
                *c == ANN_PHONE.id
                    && *m == to_phone.message_id
                    && t.contains("confirmed in another chat")
            }))
            .then_some(())
        })
        .await;
    let other_number = to_phone.buttons[0]
        .iter()
        .find(|(l, _)| *l != number)
        .unwrap()
        .1
        .clone();
    s.fake.push_tap(&ANN_PHONE, &to_phone, &other_number);
    s.fake
        .wait_for("the stale answer", |f| {
            f.answers()
                .iter()
                .any(|(_, t)| t.contains("no longer valid"))
                .then_some(())
        })
        .await;
    let log = s.gate.log();
    assert!(log.contains("telegram_confirmed"));
    assert!(!log.contains("telegram_refused"), "{log}");
}

#[tokio::test]
async fn a_wrong_number_refuses_and_this_wasnt_me_refuses_and_counts() {
    let mut s = Setup::with("", "[regulation]\nmax_retries = 3").await;
    s.ann_linked().await;

    let (mut b, page, number) = s.ann_waiting().await;
    // "Continue" before any tap is not a wrong answer: it says to tap, and counts nothing.
    let early = finish(&s, &mut b, &page).await;
    assert_eq!(early.status, 202);
    assert!(early.body.contains("Not confirmed yet"), "{}", early.body);
    let msg = s.fake.message_to(ANN_PHONE.id, "Sign-in to").await;
    let wrong = msg.buttons[0]
        .iter()
        .find(|(l, _)| *l != number)
        .unwrap()
        .1
        .clone();
    s.fake.push_tap(&ANN_PHONE, &msg, &wrong);
    let told = b
        .get(&s.portal(&format!(
            "{}?attempt={}",
            routes::SECOND_STEP_TELEGRAM_WAIT,
            attempt_of(&page)
        )))
        .await;
    assert!(told.body.contains("wrong_number"), "{}", told.body);
    let refused = finish(&s, &mut b, &page).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.contains("different number was tapped"),
        "{}",
        refused.body
    );
    s.fake
        .wait_for("the refusal edit", |f| {
            f.edits()
                .iter()
                .any(|(_, m, t)| *m == msg.message_id && t.contains("different number"))
                .then_some(())
        })
        .await;

    for round in 0..2 {
        let (mut b, page, _) = s.ann_waiting().await;
        let msg = s.fake.message_to(ANN_PHONE.id, "Sign-in to").await;
        s.fake
            .push_tap(&ANN_PHONE, &msg, button(&msg, "This wasn't me"));
        let told = b
            .get(&s.portal(&format!(
                "{}?attempt={}",
                routes::SECOND_STEP_TELEGRAM_WAIT,
                attempt_of(&page)
            )))
            .await;
        assert!(told.body.contains("not_me"), "round {round}: {}", told.body);
    }
    assert!(s.gate.log().contains("telegram_refused_not_me"));
    // The refused answer above and two "wasn't me" within the window ban the account.
    let mut late = Browser::new(&[PANEL]);
    let banned = s.log_in(&mut late, "ann").await;
    assert_eq!(banned.status, 429, "{}", banned.body);
}

#[tokio::test]
async fn taps_from_foreign_chats_are_ignored_and_unanswered_attempts_expire() {
    let mut s = Setup::with("confirm_timeout = \"5s\"", "").await;
    s.ann_linked().await;
    let (mut b, page, number) = s.ann_waiting().await;
    let msg = s.fake.message_to(ANN_PHONE.id, "Sign-in to").await;
    s.fake.push_tap(&STRANGER, &msg, button(&msg, &number));
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(s.fake.edits().is_empty(), "nothing decided by a stranger");

    let told = b
        .get(&s.portal(&format!(
            "{}?attempt={}",
            routes::SECOND_STEP_TELEGRAM_WAIT,
            attempt_of(&page)
        )))
        .await;
    assert!(told.body.contains("\"expired\""), "{}", told.body);
    s.fake
        .wait_for("the expiry edit", |f| {
            f.edits()
                .iter()
                .any(|(_, m, t)| *m == msg.message_id && t.contains("expired"))
                .then_some(())
        })
        .await;
    s.fake.push_tap(&ANN_PHONE, &msg, button(&msg, &number));
    let late = finish(&s, &mut b, &page).await;
    assert_eq!(late.status, 401, "a late tap does not count");
    assert!(s.gate.log().contains("telegram_expired"));
}

#[tokio::test]
async fn telegram_down_at_login_offers_the_other_methods_and_the_bot_reconnects() {
    let mut s = Setup::new().await;
    s.ann_linked().await;
    s.fake.set_down(true);
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let step = b
        .get(&s.portal(&format!("{}?rd=%2Fhome", routes::SECOND_STEP)))
        .await;
    let sent = b
        .post(
            &s.portal(routes::SECOND_STEP_TELEGRAM_START),
            &[("csrf", &field(&step.body, "csrf")), ("rd", "/home")],
        )
        .await;
    let location = sent.location.unwrap();
    assert!(location.contains("telegram=unreachable"), "{location}");
    let page = b
        .get(&s.portal(location.trim_start_matches("/.gatehouse")))
        .await;
    assert!(
        page.body.contains("Telegram cannot be reached right now"),
        "{}",
        page.body
    );
    assert!(page.body.contains("method=backup"), "other methods offered");
    assert!(
        !page.body.contains("data-telegram-autostart"),
        "no retry loop"
    );

    // Back up: the bot picks up updates again by itself.
    s.fake.set_down(false);
    let mut bob = Browser::new(&[PANEL]);
    s.log_in(&mut bob, "bob").await;
    s.link(
        &mut bob,
        &TgUser {
            id: 3003,
            first_name: "Bob",
            username: "bob",
        },
    )
    .await;
}

#[tokio::test]
async fn links_survive_a_restart_and_sending_is_rate_limited() {
    let mut s = Setup::with("confirmations_per_hour = 3", "").await;
    s.ann_linked().await;

    // A restart while a confirmation waits: the tap afterwards still signs in.
    let (before, page, number) = s.ann_waiting().await;
    let msg = s.fake.message_to(ANN_PHONE.id, "Sign-in to").await;
    s.gate.kill9();
    s.gate.spawn();
    let mut b = Browser::new(&[PANEL]);
    b.cookies = before.cookies.clone();
    let (_, shown, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(shown.contains("telegram: Ann (@ann_phone)"), "{shown}");
    s.fake.push_tap(&ANN_PHONE, &msg, button(&msg, &number));
    let told = b
        .get(&s.portal(&format!(
            "{}?attempt={}",
            routes::SECOND_STEP_TELEGRAM_WAIT,
            attempt_of(&page)
        )))
        .await;
    assert!(told.body.contains("\"confirmed\""), "{}", told.body);
    assert_eq!(finish(&s, &mut b, &page).await.status, 303);

    // The hourly cap is counted in the store, so the restart did not reset it: one
    // confirmation before it, two after, and the next is refused.
    let (_b, _, _) = s.ann_waiting().await;
    let (mut b, page, _) = s.ann_waiting().await;
    let capped = b
        .post(
            &s.portal(routes::SECOND_STEP_TELEGRAM_START),
            &[("csrf", &field(&page.body, "csrf")), ("rd", "/home")],
        )
        .await;
    let location = capped.location.unwrap();
    assert!(location.contains("telegram=cap"), "{location}");
    let sends = s
        .fake
        .sent()
        .iter()
        .filter(|m| m.text.contains("Sign-in to"))
        .count();
    assert_eq!(sends, 3, "one before the restart, two after");
}

#[tokio::test]
async fn confirmation_can_be_turned_off_and_on_with_accounts_kept() {
    let mut s = Setup::new().await;
    s.ann_linked().await;
    let mut b = std::mem::replace(&mut s.browser, Browser::new(&[]));
    let settings = b.get(&s.portal(routes::SETTINGS)).await;
    let off = b
        .post(
            &s.portal(routes::SETTINGS_TELEGRAM_DISABLE),
            &[
                ("csrf", &field(&settings.body, "csrf")),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        off.location.as_deref(),
        Some("/.gatehouse/settings?done=2fa_off")
    );
    // Security notices reach the linked Telegram accounts too.
    s.fake.message_to(ANN_PHONE.id, "turned off").await;
    let settings = b.get(&s.portal(routes::SETTINGS)).await;
    assert!(
        settings.body.contains("Ann (@ann_phone)"),
        "the account stays linked"
    );
    let on = b
        .post(
            &s.portal(routes::SETTINGS_TELEGRAM_ENABLE),
            &[("csrf", &field(&settings.body, "csrf"))],
        )
        .await;
    assert_eq!(on.status, 200, "first factor again: backup codes shown");
    let settings = b.get(&s.portal(routes::SETTINGS)).await;
    let removed = b
        .post(
            &s.portal(routes::SETTINGS_TELEGRAM_REMOVE),
            &[
                ("csrf", &field(&settings.body, "csrf")),
                ("account", "1001"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        removed.location.as_deref(),
        Some("/.gatehouse/settings?done=2fa_off")
    );
    let (_, shown, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(
        shown.contains("telegram: none") && shown.contains("second factors: none"),
        "{shown}"
    );
    assert!(s.gate.log().contains("telegram_unlinked"));
}

#[tokio::test]
async fn webhook_mode_registers_and_accepts_only_telegrams_secret() {
    let s = Setup::with(
        "mode = \"webhook\"\nwebhook_url = \"https://auth.example.test/telegram/webhook\"\nwebhook_secret = \"s3cret-token-of-the-hook\"",
        "",
    )
    .await;
    s.fake
        .wait_for("setWebhook", |f| {
            f.calls().into_iter().find(|(m, _)| m == "setwebhook")
        })
        .await
        .1
        .get("secret_token")
        .map(|v| assert_eq!(v, "s3cret-token-of-the-hook"))
        .expect("the secret is registered");
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let token = s.link_token(&mut b).await;
    let update = serde_json::json!({
        "update_id": 1,
        "message": {
            "message_id": 5, "date": 1_700_000_000,
            "chat": {"id": 1001, "type": "private", "first_name": "Ann"},
            "from": {"id": 1001, "is_bot": false, "first_name": "Ann", "username": "ann_phone"},
            "text": format!("/start {token}")
        }
    });
    let client = reqwest::Client::new();
    let hook = format!("http://127.0.0.1:{}/telegram/webhook", s.gate.portal);
    let forged = client
        .post(&hook)
        .header("x-telegram-bot-api-secret-token", "wrong")
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let real = client
        .post(&hook)
        .header(
            "x-telegram-bot-api-secret-token",
            "s3cret-token-of-the-hook",
        )
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(real.status(), 200);
    s.fake.message_to(1001, "linked to ann").await;
    assert!(
        s.fake.calls().iter().all(|(m, _)| m != "getupdates"),
        "no polling in webhook mode"
    );
}

#[tokio::test]
async fn without_the_bot_configured_the_second_step_offers_the_backup_codes() {
    let mut s = Setup::new().await;
    s.ann_linked().await;
    s.gate.kill9();
    let text = std::fs::read_to_string(&s.gate.config_path).unwrap();
    let without = text.split("[telegram]").next().unwrap().to_string();
    std::fs::write(&s.gate.config_path, without).unwrap();
    s.gate.spawn();
    let mut b = Browser::new(&[PANEL]);
    let after = s.log_in(&mut b, "ann").await;
    assert!(
        after.location.as_deref().unwrap_or("").contains("/2fa"),
        "2FA stays on"
    );
    let step = b
        .get(&s.portal(&format!("{}?rd=%2Fhome", routes::SECOND_STEP)))
        .await;
    assert!(
        step.body.contains("name=\"method\" value=\"backup\""),
        "{}",
        step.body
    );
    assert!(!step.body.contains("method=telegram"), "{}", step.body);
    let forced = b
        .post(
            &s.portal(routes::SECOND_STEP),
            &[
                ("csrf", &field(&step.body, "csrf")),
                ("method", "telegram"),
                ("code", "anything"),
            ],
        )
        .await;
    assert_eq!(
        forced.status, 400,
        "a method that is not offered is refused"
    );
}

#[tokio::test]
async fn a_sign_in_from_a_new_browser_is_told_to_telegram_and_this_was_not_me_ends_it() {
    let mut s = Setup::new().await;
    s.ann_linked().await;
    // The linking browser was ann's first: no alert for it.
    let (mut b, page, number) = s.ann_waiting().await;
    let asked = s.fake.message_to(ANN_PHONE.id, "Sign-in to").await;
    s.fake.push_tap(&ANN_PHONE, &asked, button(&asked, &number));
    s.fake
        .wait_for("the confirmation", |f| {
            f.edits().into_iter().find(|e| e.2.contains("confirmed"))
        })
        .await;
    let done = finish(&s, &mut b, &page).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let home = format!("http://{PANEL}:{}/home", s.gate.proxy);
    assert_eq!(b.get(&home).await.status, 200);

    let alert = s.fake.message_to(ANN_PHONE.id, "Someone signed in").await;
    assert!(
        alert.text.contains("127.0.0.1") && alert.text.contains("UTC"),
        "{}",
        alert.text
    );
    let not_me = button(&alert, "This was not me: sign out everywhere").to_string();
    // A tap from an account not linked to ann ends nothing.
    s.fake.push_tap(&STRANGER, &alert, &not_me);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(b.get(&home).await.status, 200);

    s.fake.push_tap(&ANN_PHONE, &alert, &not_me);
    s.fake
        .wait_for("the answer to the tap", |f| {
            f.answers()
                .into_iter()
                .find(|(_, text)| text.contains("signed out everywhere"))
        })
        .await;
    assert_eq!(b.get(&home).await.status, 302, "every session is over");
    assert!(s.gate.log().contains("telegram_not_me"), "{}", s.gate.log());
}
