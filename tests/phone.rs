//! The phone reserve method, with gatehouse's real provider clients talking to loopback
//! servers that speak Twilio's REST API and the generic webhook format, and a loopback
//! panel receiving the recovery hook.

mod common;

use common::{start_upstream, Browser, Gatehouse, Received, Recorder, PASSWORD};
use gatehouse::portal::routes;
use hmac::{Hmac, Mac};

const PANEL: &str = "panel.example.test";
const HOOK_SECRET: &str = "hook-secret-0123456789";
const DOMESTIC: &str = "+380501234567";
const FOREIGN: &str = "+14155552671";

/// A Twilio stand-in: answers Calls.json and Messages.json as Twilio does.
async fn twilio() -> Recorder {
    Recorder::start(|r: &Received| {
        let from = r.form("From").unwrap_or_default();
        let to = r.form("To").unwrap_or_default();
        if r.path.ends_with("/Calls.json") {
            (201, serde_json::json!({"sid": "CA0123456789abcdef", "from": from, "to": to, "status": "queued"}).to_string())
        } else if r.path.ends_with("/Messages.json") {
            (201, serde_json::json!({"sid": "SM0123456789abcdef", "from": from, "to": to, "status": "queued", "body": r.form("Body")}).to_string())
        } else {
            (404, "{}".into())
        }
    })
    .await
}

struct Setup {
    gate: Gatehouse,
    provider: Recorder,
    panel_hook: Recorder,
}

impl Setup {
    async fn with(extra: &str) -> Self {
        Self::with_phone("", extra).await
    }

    async fn with_phone(phone_extra: &str, extra: &str) -> Self {
        let (addr, _) = start_upstream().await;
        let provider = twilio().await;
        let panel_hook = Recorder::start(|_| (200, "{}".into())).await;
        let config = format!(
            r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{addr}"
[session]
secure = false
[phone]
provider = "twilio"
domestic_prefixes = ["+380"]
{phone_extra}
[phone.twilio]
api_url = "http://{twilio}/"
account_sid = "ACtest"
auth_token = "twilio-token"
from = "+14155550000"
flash_from = {flash_pool}
[recovery_hook]
url = "http://{hook}/gatehouse-hook"
secret = "{HOOK_SECRET}"
{extra}
"#,
            twilio = provider.addr,
            hook = panel_hook.addr,
            flash_pool = flash_pool()
        );
        Setup {
            gate: Gatehouse::start(&config),
            provider,
            panel_hook,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{PANEL}:{}{path}", self.gate.proxy)
    }

    async fn log_in(&self, user: &str) -> Browser {
        let mut b = Browser::new(&[PANEL]);
        b.log_in(
            &self.url(&format!("/.gatehouse{}?rd=%2Fhome", routes::LOGIN_PAGE)),
            user,
            PASSWORD,
        )
        .await;
        b
    }

    /// Adds and confirms a number from the settings page (one SMS).
    async fn add_number(&self, b: &mut Browser, number: &str) {
        let sent_before = self.provider.received().len();
        let settings = self.url(&format!("/.gatehouse{}", routes::SETTINGS));
        let asked = b
            .post_with_csrf(
                &settings,
                &self.url(&format!("/.gatehouse{}", routes::SETTINGS_PHONE_ADD)),
                &[("number", number)],
            )
            .await;
        assert_eq!(asked.status, 200, "{}", asked.body);
        let sms = self
            .provider
            .wait_for(sent_before + 1, 5)
            .await
            .last()
            .unwrap()
            .clone();
        assert!(
            sms.path
                .ends_with("/2010-04-01/Accounts/ACtest/Messages.json"),
            "{}",
            sms.path
        );
        let code: String = sms
            .form("Body")
            .unwrap()
            .chars()
            .filter(|c| c.is_ascii_digit())
            .collect();
        let csrf = common::field(&asked.body, "csrf");
        let done = b
            .post(
                &self.url(&format!("/.gatehouse{}", routes::SETTINGS_PHONE_CONFIRM)),
                &[("csrf", &csrf), ("code", &code)],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
    }

    /// Ann with an authenticator app and a confirmed number, then signed in again up to
    /// the second step; returns that browser.
    async fn ann_at_second_step(&self, number: &str) -> Browser {
        let mut b = self.log_in("ann").await;
        b.enable_totp(&self.url("/.gatehouse")).await;
        self.add_number(&mut b, number).await;
        self.log_in("ann").await
    }

    /// Asks for a call with consent; returns the provider's last request.
    async fn call(&self, b: &mut Browser) -> Received {
        let before = self.provider.received().len();
        let page = b
            .get(&self.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE)))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = common::field(&page.body, "csrf");
        let sent = b
            .post(
                &self.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE_CALL)),
                &[
                    ("csrf", &csrf),
                    ("rd", ""),
                    ("number", "0"),
                    ("consent", "1"),
                ],
            )
            .await;
        assert_eq!(sent.status, 303, "{}", sent.body);
        self.provider
            .wait_for(before + 1, 5)
            .await
            .last()
            .unwrap()
            .clone()
    }

    async fn verify(&self, b: &mut Browser, code: &str) -> common::Page {
        let page = b
            .get(&self.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE)))
            .await;
        let csrf = common::field(&page.body, "csrf");
        b.post(
            &self.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE_VERIFY)),
            &[("csrf", &csrf), ("rd", ""), ("code", code)],
        )
        .await
    }
}

/// A flash-call pool with a number for each of the 10,000 endings, as an operator's
/// must have.
fn flash_pool() -> String {
    let numbers: Vec<String> = (0..10_000).map(|i| format!("\"+1415555{i:04}\"")).collect();
    format!("[{}]", numbers.join(", "))
}

/// The code a flash call carries: its caller's last four digits.
fn flash_code(call: &Received) -> String {
    let from = call.form("From").unwrap();
    from[from.len() - 4..].to_string()
}

fn digits_in(text: &str) -> String {
    text.chars().filter(|c| c.is_ascii_digit()).collect()
}

fn valid_signature(r: &Received) -> bool {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(r.body.as_bytes());
    r.header("x-gatehouse-signature")
        == Some(format!("sha256={}", hex::encode(mac.finalize().into_bytes())).as_str())
}

#[tokio::test]
async fn phone_is_offered_only_when_another_factor_is_on_and_a_number_is_confirmed() {
    let s = Setup::with("").await;
    let mut b = s.log_in("ann").await;
    s.add_number(&mut b, "+380 (50) 123-45-67").await;
    let settings = b
        .get(&s.url(&format!("/.gatehouse{}", routes::SETTINGS)))
        .await;
    assert!(
        settings.body.contains(DOMESTIC),
        "stored normalised: {}",
        settings.body
    );
    let mut again = s.log_in("ann").await;
    let step = again
        .get(&s.url(&format!("/.gatehouse{}", routes::SECOND_STEP)))
        .await;
    assert_eq!(
        step.status, 302,
        "no second factor yet: no second step, so no phone either"
    );

    b.enable_totp(&s.url("/.gatehouse")).await;
    let mut next = s.log_in("ann").await;
    let step = next
        .get(&s.url(&format!("/.gatehouse{}", routes::SECOND_STEP)))
        .await;
    assert!(step.body.contains("Use your phone"), "{}", step.body);

    let mut bob = s.log_in("bob").await;
    bob.enable_totp(&s.url("/.gatehouse")).await;
    let mut bob_again = s.log_in("bob").await;
    let step = bob_again
        .get(&s.url(&format!("/.gatehouse{}", routes::SECOND_STEP)))
        .await;
    assert!(!step.body.contains("Use your phone"), "bob has no number");
    let taken = bob
        .post_with_csrf(
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS)),
            &s.url(&format!("/.gatehouse{}", routes::SETTINGS_PHONE_ADD)),
            &[("number", DOMESTIC)],
        )
        .await;
    assert!(
        taken.body.contains("belongs to another account"),
        "{}",
        taken.body
    );
}

/// The code a call's TwiML dictates.
fn dictated_code(call: &Received) -> String {
    let twiml = call.form("Twiml").unwrap();
    let first_say = twiml.split("<Say").nth(1).unwrap();
    digits_in(
        first_say
            .split('>')
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap(),
    )
}

#[tokio::test]
async fn with_three_replicas_delivering_the_hook_reaches_the_panel_once() {
    if !common::on_postgres() {
        println!("SKIPPED on sled (one process): tests/on_postgres.rs runs it");
        return;
    }
    let s = Setup::with("").await;
    // Two more replicas on the same database, whose hook workers claim from the same
    // queue as the first's.
    let _others = [s.gate.replica(), s.gate.replica()];
    let mut b = s.ann_at_second_step(DOMESTIC).await;
    let call = s.call(&mut b).await;
    let done = s.verify(&mut b, &dictated_code(&call)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    s.panel_hook.wait_for(1, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(s.panel_hook.received().len(), 1, "delivered once");
}

#[tokio::test]
async fn domestic_number_gets_a_dictated_code_and_success_switches_2fa_off_and_fires_the_hook() {
    let s = Setup::with("").await;
    let mut b = s.ann_at_second_step(DOMESTIC).await;
    let page = b
        .get(&s.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE)))
        .await;
    assert!(
        page.body.contains("switches two-step verification off"),
        "the consequence is shown first: {}",
        page.body
    );
    let csrf = common::field(&page.body, "csrf");
    let before = s.provider.received().len();
    let refused = b
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE_CALL)),
            &[("csrf", &csrf), ("rd", ""), ("number", "0")],
        )
        .await;
    assert_eq!(refused.status, 400, "no consent, no call");
    assert_eq!(s.provider.received().len(), before);

    let call = s.call(&mut b).await;
    assert!(
        call.path
            .ends_with("/2010-04-01/Accounts/ACtest/Calls.json"),
        "{}",
        call.path
    );
    assert!(
        call.header("authorization").unwrap().starts_with("Basic "),
        "basic auth"
    );
    assert_eq!(call.form("To").as_deref(), Some(DOMESTIC));
    let twiml = call.form("Twiml").unwrap();
    assert!(twiml.contains("<Say"), "{twiml}");
    let first_say = twiml.split("<Say").nth(1).unwrap();
    let code: String = digits_in(
        first_say
            .split('>')
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap(),
    );
    assert_eq!(code.len(), 4, "{twiml}");
    let spoken = code
        .chars()
        .map(String::from)
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(
        twiml.matches(&spoken).count(),
        2,
        "dictated digit by digit, twice: {twiml}"
    );

    let done = s.verify(&mut b, &code).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("Two-step verification is off"),
        "{}",
        done.body
    );
    assert_eq!(b.get(&s.url("/home")).await.status, 200, "signed in");
    let (_, out, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(
        out.contains("second factors: none") && out.contains("backup codes left: 0"),
        "{out}"
    );

    let hooks = s.panel_hook.wait_for(1, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(s.panel_hook.received().len(), 1, "delivered once");
    let hook = &hooks[0];
    assert!(
        valid_signature(hook),
        "signed with the configured secret: {hook:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(body["user"], "ann");
    assert!(body["event"].as_str().unwrap().contains("phone"));
    assert!(body["time"].as_u64().is_some() && body["ip"].as_str().is_some());
}

#[tokio::test]
async fn foreign_number_gets_a_flash_call_and_the_callers_last_four_digits_log_in() {
    let s = Setup::with("").await;
    let mut b = s.ann_at_second_step(FOREIGN).await;
    let call = s.call(&mut b).await;
    assert!(call.path.ends_with("/Calls.json"));
    let page = b
        .get(&s.url(&format!(
            "/.gatehouse{}?sent=flash&n=0",
            routes::SECOND_STEP_PHONE
        )))
        .await;
    assert!(
        page.body
            .contains("last 4 digits of the number that called"),
        "{}",
        page.body
    );
    assert_eq!(s.verify(&mut b, &flash_code(&call)).await.status, 200);
}

#[tokio::test]
async fn flash_call_codes_cannot_be_guessed_from_the_callers_numbers() {
    // The attack this closes: with a few configured callers, an attacker holding only
    // the password tried each caller's last four digits within the three tries.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = {:?}\n[phone]\nprovider = \"twilio\"\n[phone.twilio]\napi_url = \"http://127.0.0.1:9/\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\nfrom = \"+14155550000\"\nflash_from = [\"+14155554821\", \"+14155557314\"]\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let (ok, out, err) = common::cli(&config, &["config", "check"], None);
    assert!(!ok, "a small pool is refused: {out}");
    assert!(err.contains("phone.twilio.flash_from"), "{err}");
    assert!(err.contains("10,000 endings"), "{err}");

    // With a full pool, gatehouse draws the code and calls from the matching number:
    // successive calls carry unrelated codes.
    let s = Setup::with("[regulation]\nmax_retries = 50").await;
    let mut b = s.ann_at_second_step(FOREIGN).await;
    let mut codes = std::collections::HashSet::new();
    for _ in 0..3 {
        let call = s.call(&mut b).await;
        assert!(call.path.ends_with("/Calls.json"));
        codes.insert(flash_code(&call));
    }
    assert!(codes.len() >= 2, "three calls, one code: {codes:?}");
}

#[tokio::test]
async fn parallel_call_requests_never_place_more_calls_than_max_calls() {
    let s = Setup::with_phone("per_user_per_hour = 50\nper_number_per_hour = 50\nper_ip_per_hour = 50\nglobal_per_hour = 500", "").await;
    let mut b = s.ann_at_second_step(DOMESTIC).await;
    let page = b
        .get(&s.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE)))
        .await;
    let csrf = common::field(&page.body, "csrf");
    let cookie = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let before = s.provider.received().len();
    let mut requests = Vec::new();
    for _ in 0..20 {
        let client = b.client.clone();
        let url = s.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE_CALL));
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        requests.push(tokio::spawn(async move {
            client
                .post(url)
                .header("cookie", cookie)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("rd", ""),
                    ("number", "0"),
                    ("consent", "1"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for r in requests {
        r.await.unwrap();
    }
    // Each request answers after its send: all are in by now.
    let sent_now = s.provider.received()[before..].to_vec();
    assert_eq!(sent_now.len(), 20, "every request placed exactly one send");
    let calls = sent_now
        .iter()
        .filter(|r| r.path.ends_with("/Calls.json"))
        .count();
    assert_eq!(
        calls,
        3,
        "max_calls voice calls, then SMS: {} sends",
        sent_now.len()
    );
}

#[tokio::test]
async fn after_max_calls_the_next_request_sends_an_sms() {
    let s = Setup::with("").await;
    let mut b = s.ann_at_second_step(DOMESTIC).await;
    for _ in 0..3 {
        assert!(s.call(&mut b).await.path.ends_with("/Calls.json"));
    }
    let fourth = s.call(&mut b).await;
    assert!(fourth.path.ends_with("/Messages.json"), "{}", fourth.path);
    let code = digits_in(&fourth.form("Body").unwrap());
    assert_eq!(code.len(), 6);
    assert_eq!(s.verify(&mut b, &code).await.status, 200);
}

#[tokio::test]
async fn wrong_codes_use_up_the_code() {
    let s = Setup::with("[regulation]\nmax_retries = 20").await;
    let mut b = s.ann_at_second_step(FOREIGN).await;
    let right = flash_code(&s.call(&mut b).await);
    let wrong = if right == "0000" { "1111" } else { "0000" };
    for _ in 0..3 {
        assert_eq!(s.verify(&mut b, wrong).await.status, 401);
    }
    let dead = s.verify(&mut b, &right).await;
    assert_eq!(dead.status, 401, "three tries by default");
    assert!(
        dead.body.contains("expired or was tried too often"),
        "{}",
        dead.body
    );
}

#[tokio::test]
async fn call_budgets_hold() {
    let s = Setup::with_phone("per_number_per_hour = 3", "").await;
    let mut b = s.ann_at_second_step(FOREIGN).await;
    s.call(&mut b).await;
    s.call(&mut b).await;
    let page = b
        .get(&s.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE)))
        .await;
    let csrf = common::field(&page.body, "csrf");
    let before = s.provider.received().len();
    let refused = b
        .post(
            &s.url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE_CALL)),
            &[
                ("csrf", &csrf),
                ("rd", ""),
                ("number", "0"),
                ("consent", "1"),
            ],
        )
        .await;
    let shown = b.get(&s.url(refused.location.as_deref().unwrap())).await;
    assert!(shown.body.contains("Too many calls"), "{}", shown.body);
    assert_eq!(s.provider.received().len(), before, "nothing placed");
    assert!(s.gate.log().contains("phone send budget spent"), "logged");
}

#[tokio::test]
async fn the_hook_reaches_a_panel_that_was_down_even_across_a_restart() {
    let mut s = Setup::with("").await;
    s.panel_hook
        .status_override
        .store(503, std::sync::atomic::Ordering::SeqCst);
    let mut b = s.ann_at_second_step(FOREIGN).await;
    let code = flash_code(&s.call(&mut b).await);
    assert_eq!(s.verify(&mut b, &code).await.status, 200);
    s.panel_hook.wait_for(1, 10).await;
    s.gate.kill9();
    s.panel_hook
        .status_override
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let failed_so_far = s.panel_hook.received().len();
    s.gate.spawn();
    let all = s.panel_hook.wait_for(failed_so_far + 1, 20).await;
    let delivered = all.last().unwrap();
    assert!(valid_signature(delivered));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        s.panel_hook.received().len(),
        failed_so_far + 1,
        "delivered once after it came back"
    );
}

#[tokio::test]
async fn the_generic_webhook_provider_speaks_json_with_a_bearer_token() {
    let provider = Recorder::start(|r: &Received| {
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        match body["kind"].as_str() {
            Some("flash") => (
                200,
                serde_json::json!({"from": format!("+1415555{}", body["code"].as_str().unwrap_or(""))})
                    .to_string(),
            ),
            _ => (200, "{}".into()),
        }
    })
    .await;
    let (addr, _) = start_upstream().await;
    let config = format!(
        "[proxy]\nlisten = \"127.0.0.1:{{proxy}}\"\n[[proxy.upstreams]]\nhosts = [\"{PANEL}\"]\naddress = \"{addr}\"\n[session]\nsecure = false\n[phone]\nprovider = \"webhook\"\n[phone.webhook]\nurl = \"http://{}/calls\"\ntoken = \"provider-token\"\n",
        provider.addr
    );
    let gate = Gatehouse::start(&config);
    let url = |p: &str| format!("http://{PANEL}:{}{p}", gate.proxy);
    let mut b = Browser::new(&[PANEL]);
    b.log_in(
        &url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)),
        "ann",
        PASSWORD,
    )
    .await;
    let asked = b
        .post_with_csrf(
            &url(&format!("/.gatehouse{}", routes::SETTINGS)),
            &url(&format!("/.gatehouse{}", routes::SETTINGS_PHONE_ADD)),
            &[("number", FOREIGN)],
        )
        .await;
    let sms = provider.wait_for(1, 5).await[0].clone();
    assert_eq!(sms.header("authorization"), Some("Bearer provider-token"));
    let body: serde_json::Value = serde_json::from_str(&sms.body).unwrap();
    assert_eq!(body["kind"], "sms");
    assert_eq!(body["to"], FOREIGN);
    let code = digits_in(body["text"].as_str().unwrap());
    let csrf = common::field(&asked.body, "csrf");
    assert_eq!(
        b.post(
            &url(&format!("/.gatehouse{}", routes::SETTINGS_PHONE_CONFIRM)),
            &[("csrf", &csrf), ("code", &code)]
        )
        .await
        .status,
        303
    );
    b.enable_totp(&url("/.gatehouse")).await;
    let mut again = Browser::new(&[PANEL]);
    again
        .log_in(
            &url(&format!("/.gatehouse{}", routes::LOGIN_PAGE)),
            "ann",
            PASSWORD,
        )
        .await;
    let page = again
        .get(&url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE)))
        .await;
    let csrf = common::field(&page.body, "csrf");
    again
        .post(
            &url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE_CALL)),
            &[
                ("csrf", &csrf),
                ("rd", ""),
                ("number", "0"),
                ("consent", "1"),
            ],
        )
        .await;
    let flash: serde_json::Value =
        serde_json::from_str(&provider.wait_for(2, 5).await[1].body).unwrap();
    assert_eq!(flash["kind"], "flash");
    let code = flash["code"].as_str().unwrap().to_string();
    assert_eq!(
        code.len(),
        4,
        "gatehouse names the code the caller must end in"
    );
    let page = again
        .get(&url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE)))
        .await;
    let csrf = common::field(&page.body, "csrf");
    let done = again
        .post(
            &url(&format!("/.gatehouse{}", routes::SECOND_STEP_PHONE_VERIFY)),
            &[("csrf", &csrf), ("rd", ""), ("code", &code)],
        )
        .await;
    assert_eq!(
        done.status, 200,
        "the provider's caller number gives the code: {}",
        done.body
    );
}
