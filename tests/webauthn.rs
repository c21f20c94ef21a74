//! Passkeys and security keys over HTTP against the real binary in proxy mode, with
//! webauthn-authenticator-rs's software authenticator playing the browser's part:
//! adding a device, using it as the second factor, passwordless login (switch and user
//! verification), exclusion of a second registration, counter regression, replays,
//! names, deletion of the last device, and the CLI.

mod common;

use common::{field, start_upstream, unescape, Browser, Gatehouse, Page, PASSWORD};
use gatehouse::portal::routes;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_rs_core::proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse,
    UserVerificationPolicy,
};

/// Plain http is a secure context only on `localhost` (for the software authenticator
/// exactly that name), so the panel is served there.
const PANEL: &str = "localhost";

struct Setup {
    gate: Gatehouse,
    browser: Browser,
    /// The credential id of ann's first device, once she has one.
    first_credential: Option<Vec<u8>>,
}

impl Setup {
    async fn new() -> Self {
        let (addr, _) = start_upstream().await;
        let gate = Gatehouse::start(&format!(
            r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{addr}"
[session]
secure = false
[regulation]
max_retries = 10
[access_control]
default_policy = "one_factor"
[[access_control.rules]]
resources = ["^/admin"]
policy = "two_factor"
"#
        ));
        Setup {
            gate,
            browser: Browser::new(&[PANEL]),
            first_credential: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{PANEL}:{}{path}", self.gate.proxy)
    }

    fn portal(&self, path: &str) -> String {
        self.url(&format!("/.gatehouse{path}"))
    }

    fn origin(&self) -> url::Url {
        url::Url::parse(&self.url("")).unwrap()
    }

    async fn log_in(&self, browser: &mut Browser, user: &str) -> Page {
        browser
            .log_in(
                &self.portal(&format!("{}?rd=%2Fadmin", routes::LOGIN_PAGE)),
                user,
                PASSWORD,
            )
            .await
    }

    async fn settings(&self, browser: &mut Browser) -> Page {
        let page = browser.get(&self.portal(routes::SETTINGS)).await;
        assert_eq!(page.status, 200, "{:?} {}", page.location, page.body);
        page
    }

    /// Asks to add a device called `name`; returns the page (the ceremony or an error).
    async fn add(&self, browser: &mut Browser, name: &str) -> Page {
        let settings = self.settings(browser).await;
        browser
            .post(
                &self.portal(routes::SETTINGS_WEBAUTHN_ADD),
                &[("csrf", &field(&settings.body, "csrf")), ("name", name)],
            )
            .await
    }

    /// Registers `authenticator` as `name` for the signed-in user; returns the finish
    /// page and the new credential's id.
    async fn register(
        &self,
        browser: &mut Browser,
        authenticator: &mut SoftPasskey,
        name: &str,
    ) -> (Page, Vec<u8>) {
        let page = self.add(browser, name).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let options: CreationChallengeResponse =
            serde_json::from_str(&data_options(&page.body)).unwrap();
        let answer = authenticator
            .do_registration(self.origin(), options)
            .expect("the software authenticator registers");
        let id = answer.raw_id.clone();
        let done = self
            .finish(browser, &page, &serde_json::to_string(&answer).unwrap())
            .await;
        (done, id)
    }

    async fn finish(&self, browser: &mut Browser, ceremony: &Page, answer: &str) -> Page {
        browser
            .post(
                &self.portal(routes::SETTINGS_WEBAUTHN_FINISH),
                &[
                    ("csrf", &field(&ceremony.body, "csrf")),
                    ("ceremony", &field(&ceremony.body, "ceremony")),
                    ("credential", answer),
                ],
            )
            .await
    }

    /// The second step's passkey options for a pending session.
    async fn step_options(&self, browser: &mut Browser) -> (Page, RequestChallengeResponse) {
        let page = browser
            .get(&self.portal(&format!("{}?method=webauthn", routes::SECOND_STEP)))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let options = serde_json::from_str(&data_options(&page.body)).unwrap();
        (page, options)
    }

    async fn step_submit(&self, browser: &mut Browser, page: &Page, answer: &str) -> Page {
        browser
            .post(
                &self.portal(routes::SECOND_STEP),
                &[
                    ("csrf", &field(&page.body, "csrf")),
                    ("rd", "/admin"),
                    ("method", "webauthn"),
                    ("ceremony", &field(&page.body, "ceremony")),
                    ("code", answer),
                ],
            )
            .await
    }

    /// Signs ann in and gives her a device "Laptop"; returns her authenticator.
    async fn ann_with_device(&mut self) -> SoftPasskey {
        let mut b = std::mem::replace(&mut self.browser, Browser::new(&[]));
        self.log_in(&mut b, "ann").await;
        let mut key = SoftPasskey::new(true);
        let (done, id) = self.register(&mut b, &mut key, "Laptop").await;
        assert_eq!(done.status, 200, "backup codes are shown: {}", done.body);
        self.first_credential = Some(id);
        self.browser = b;
        key
    }
}

/// The `data-options` attribute of the ceremony form.
fn data_options(html: &str) -> String {
    let rest = html
        .split("data-options=\"")
        .nth(1)
        .expect("the page carries ceremony options");
    unescape(rest.split('"').next().unwrap())
}

fn json_of(answer: &PublicKeyCredential) -> String {
    serde_json::to_string(answer).unwrap()
}

#[tokio::test]
async fn adding_a_passkey_turns_two_step_on_and_it_then_works_as_second_factor() {
    let mut s = Setup::new().await;
    let mut other = Browser::new(&[PANEL]);
    s.log_in(&mut other, "ann").await;
    let mut key = s.ann_with_device().await;
    assert!(
        other.get(&s.url("/")).await.status >= 300,
        "other sessions ended"
    );

    let mut b = Browser::new(&[PANEL]);
    let after_password = s.log_in(&mut b, "ann").await;
    assert!(after_password.location.unwrap().contains("/2fa"));
    let (page, options) = s.step_options(&mut b).await;
    assert!(page.body.contains("Passkey or security key"));
    assert_eq!(
        options.public_key.user_verification,
        UserVerificationPolicy::Preferred
    );
    assert_eq!(options.public_key.allow_credentials.len(), 1);
    let answer = key.do_authentication(s.origin(), options).unwrap();
    let done = s.step_submit(&mut b, &page, &json_of(&answer)).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/admin"));
    assert_eq!(
        b.get(&s.url("/admin")).await.status,
        200,
        "two factors reached the panel"
    );

    let settings = s.settings(&mut b).await;
    assert!(settings.body.contains("Laptop"));
    assert!(!settings.body.contains("never"), "last use is recorded");
    let log = std::fs::read_to_string(s.gate.dir.path().join("gatehouse.log")).unwrap();
    assert!(log.contains("webauthn_device_added"));
    assert!(
        log.contains("method=\"webauthn\"") || log.contains("method=webauthn"),
        "{log}"
    );
}

#[tokio::test]
async fn one_authenticator_holds_one_credential_per_account_and_names_are_checked() {
    let mut s = Setup::new().await;
    s.ann_with_device().await;
    let mut b = std::mem::replace(&mut s.browser, Browser::new(&[]));
    let first_id = {
        let (_, shown, _) = s.gate.cli(&["user", "show", "ann"]);
        assert!(shown.contains("Laptop"));
        s.first_credential.clone().unwrap()
    };

    for (name, problem) in [
        ("laptop", "already have a device with that name"),
        ("   ", "Give the device a name"),
        (&"x".repeat(65)[..], "at most 64 characters"),
    ] {
        let page = s.add(&mut b, name).await;
        assert_eq!(page.status, 400, "{name}");
        assert!(page.body.contains(problem), "{name}: {}", page.body);
    }

    // The browser is told to exclude the registered credential (the software
    // authenticator ignores the list; the browser test shows a real one refusing).
    let page = s.add(&mut b, "Same key again").await;
    let options: CreationChallengeResponse =
        serde_json::from_str(&data_options(&page.body)).unwrap();
    let excluded = options
        .public_key
        .exclude_credentials
        .clone()
        .unwrap_or_default();
    assert_eq!(excluded.len(), 1);
    assert_eq!(excluded[0].id, first_id);

    // A second key is fine, and its answer cannot be used twice.
    let page = s.add(&mut b, "Blue key").await;
    let options: CreationChallengeResponse =
        serde_json::from_str(&data_options(&page.body)).unwrap();
    let answer = SoftPasskey::new(true)
        .do_registration(s.origin(), options)
        .unwrap();
    let answer = serde_json::to_string(&answer).unwrap();
    let added = s.finish(&mut b, &page, &answer).await;
    assert_eq!(
        added.status, 303,
        "not the first factor: straight back to settings"
    );
    // Replayed with a fresh form token (adding the key renewed the session, and with it
    // the token bound to it), so that it is the ceremony that refuses it.
    let fresh = s.settings(&mut b).await;
    let replay = b
        .post(
            &s.portal(routes::SETTINGS_WEBAUTHN_FINISH),
            &[
                ("csrf", &field(&fresh.body, "csrf")),
                ("ceremony", &field(&page.body, "ceremony")),
                ("credential", &answer),
            ],
        )
        .await;
    assert!(
        replay.body.contains("That took too long"),
        "{}",
        replay.body
    );
    let settings = s.settings(&mut b).await;
    assert!(settings.body.contains("Blue key") && settings.body.contains("Laptop"));
    assert!(settings.body.contains("cannot be changed later"));
}

#[tokio::test]
async fn a_signature_counter_that_goes_backwards_is_refused_as_a_possible_clone() {
    let mut s = Setup::new().await;
    let mut key = s.ann_with_device().await;
    let mut first = Browser::new(&[PANEL]);
    let mut second = Browser::new(&[PANEL]);
    s.log_in(&mut first, "ann").await;
    s.log_in(&mut second, "ann").await;
    let (page1, options1) = s.step_options(&mut first).await;
    let (page2, options2) = s.step_options(&mut second).await;
    let older = key.do_authentication(s.origin(), options1).unwrap();
    let newer = key.do_authentication(s.origin(), options2).unwrap();
    assert_eq!(
        s.step_submit(&mut second, &page2, &json_of(&newer))
            .await
            .status,
        303
    );
    let refused = s.step_submit(&mut first, &page1, &json_of(&older)).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.body.contains("counter went backwards"),
        "{}",
        refused.body
    );
    assert!(s.gate.log().contains("webauthn_counter_regressed"));
}

#[tokio::test]
async fn a_ceremony_answer_cannot_be_replayed() {
    let mut s = Setup::new().await;
    let mut key = s.ann_with_device().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let (page, options) = s.step_options(&mut b).await;
    let answer = json_of(&key.do_authentication(s.origin(), options).unwrap());
    assert_eq!(s.step_submit(&mut b, &page, &answer).await.status, 303);

    // Another login: the old answer does not fit the new challenge...
    let mut thief = Browser::new(&[PANEL]);
    s.log_in(&mut thief, "ann").await;
    let (page, _) = s.step_options(&mut thief).await;
    let refused = s.step_submit(&mut thief, &page, &answer).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    // ...nor the fresh challenge the refusal page started.
    let again = s.step_submit(&mut thief, &page, &answer).await;
    assert_eq!(again.status, 401, "{}", again.body);
    assert_eq!(thief.get(&s.url("/admin")).await.status / 100, 3);
}

/// Runs a passwordless login as a resident-key authenticator would: the software key
/// needs the credential named, and returns no user handle, so both are filled in.
async fn passwordless(
    s: &Setup,
    browser: &mut Browser,
    key: &mut SoftPasskey,
    credential_id: &[u8],
    user_handle: &[u8],
    verify_user: bool,
) -> Page {
    let login = browser.get(&s.portal(routes::LOGIN_PAGE)).await;
    assert!(login.body.contains("Sign in with a passkey"));
    assert!(login.body.contains("username webauthn"), "autofill offered");
    let csrf = field(&login.body, "csrf");
    let options = browser
        .post(&s.portal(routes::LOGIN_PASSKEY_OPTIONS), &[("csrf", &csrf)])
        .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let value: serde_json::Value = serde_json::from_str(&options.body).unwrap();
    let ceremony = value["ceremony"].as_str().unwrap().to_string();
    let mut request: RequestChallengeResponse = serde_json::from_value(value).unwrap();
    assert!(
        request.public_key.allow_credentials.is_empty(),
        "discoverable"
    );
    request.public_key.allow_credentials = vec![AllowCredentials {
        type_: "public-key".into(),
        id: credential_id.to_vec(),
        transports: None,
    }];
    if verify_user {
        request.public_key.user_verification = UserVerificationPolicy::Required;
    }
    let mut answer = key.do_authentication(s.origin(), request).unwrap();
    answer.response.user_handle = Some(user_handle.to_vec());
    browser
        .post(
            &s.portal(routes::LOGIN_PASSKEY),
            &[
                ("csrf", &csrf),
                ("rd", "/admin"),
                ("ceremony", &ceremony),
                ("credential", &json_of(&answer)),
            ],
        )
        .await
}

#[tokio::test]
async fn passwordless_login_needs_the_device_switch_and_user_verification() {
    let s = Setup::new().await;
    let mut b = Browser::new(&[PANEL]);
    s.log_in(&mut b, "ann").await;
    let page = s.add(&mut b, "Phone").await;
    let options: CreationChallengeResponse =
        serde_json::from_str(&data_options(&page.body)).unwrap();
    let user_handle: Vec<u8> = options.public_key.user.id.clone();
    let mut key = SoftPasskey::new(true);
    let answer = key.do_registration(s.origin(), options).unwrap();
    let credential_id: Vec<u8> = answer.raw_id.clone();
    assert_eq!(
        s.finish(&mut b, &page, &serde_json::to_string(&answer).unwrap())
            .await
            .status,
        200
    );

    let mut stranger = Browser::new(&[PANEL]);
    let off = passwordless(
        &s,
        &mut stranger,
        &mut key,
        &credential_id,
        &user_handle,
        true,
    )
    .await;
    assert_eq!(off.status, 401);
    assert!(
        off.body.contains("may not sign in without your password"),
        "{}",
        off.body
    );

    let settings = s.settings(&mut b).await;
    let switched = b
        .post(
            &s.portal(routes::SETTINGS_WEBAUTHN_PASSWORDLESS),
            &[
                ("csrf", &field(&settings.body, "csrf")),
                ("key", &field(&settings.body, "key")),
                ("on", "1"),
            ],
        )
        .await;
    assert_eq!(
        switched.location.as_deref(),
        Some("/.gatehouse/settings?done=passwordless_on")
    );

    let unverified = passwordless(
        &s,
        &mut stranger,
        &mut key,
        &credential_id,
        &user_handle,
        false,
    )
    .await;
    assert_eq!(unverified.status, 401);
    assert!(
        unverified.body.contains("did not check that it is you"),
        "{}",
        unverified.body
    );

    let wrong_handle = passwordless(
        &s,
        &mut stranger,
        &mut key,
        &credential_id,
        b"someone else",
        true,
    )
    .await;
    assert_eq!(wrong_handle.status, 401);

    let signed_in = passwordless(
        &s,
        &mut stranger,
        &mut key,
        &credential_id,
        &user_handle,
        true,
    )
    .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    assert_eq!(signed_in.location.as_deref(), Some("/admin"));
    assert_eq!(
        stranger.get(&s.url("/admin")).await.status,
        200,
        "counts as two factors"
    );

    // No password was typed in that session, so a settings change asks for it.
    let settings = s.settings(&mut stranger).await;
    let change = stranger
        .post(
            &s.portal(routes::SETTINGS_BACKUP_REGENERATE),
            &[("csrf", &field(&settings.body, "csrf"))],
        )
        .await;
    assert!(change.body.contains("confirm_password"), "{}", change.body);

    // A disabled account cannot sign in with its passkey either.
    assert!(s.gate.cli(&["user", "disable", "ann"]).0);
    let mut late = Browser::new(&[PANEL]);
    let refused = passwordless(&s, &mut late, &mut key, &credential_id, &user_handle, true).await;
    assert_eq!(refused.status, 401);
}

#[tokio::test]
async fn deleting_the_last_device_needs_the_password_and_turns_two_step_off() {
    let mut s = Setup::new().await;
    s.ann_with_device().await;
    let (ok, shown, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(ok);
    assert!(shown.contains("second factors: webauthn"), "{shown}");
    assert!(shown.contains("passkeys: Laptop (added"), "{shown}");

    let mut b = std::mem::replace(&mut s.browser, Browser::new(&[]));
    let settings = s.settings(&mut b).await;
    assert!(settings.body.contains("This is your only second factor"));
    let csrf = field(&settings.body, "csrf");
    let key = field(&settings.body, "key");
    let refused = b
        .post(
            &s.portal(routes::SETTINGS_WEBAUTHN_DELETE),
            &[("csrf", &csrf), ("key", &key), ("password", "wrong")],
        )
        .await;
    assert_eq!(refused.status, 401);
    let deleted = b
        .post(
            &s.portal(routes::SETTINGS_WEBAUTHN_DELETE),
            &[("csrf", &csrf), ("key", &key), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        deleted.location.as_deref(),
        Some("/.gatehouse/settings?done=2fa_off")
    );
    let (_, shown, _) = s.gate.cli(&["user", "show", "ann"]);
    assert!(
        shown.contains("second factors: none") && shown.contains("passkeys: none"),
        "{shown}"
    );
    assert!(shown.contains("backup codes left: 0"), "{shown}");
}

#[tokio::test]
async fn one_address_cannot_start_passwordless_ceremonies_without_limit() {
    let s = Setup::new().await;
    let mut b = Browser::new(&[PANEL]);
    let login = b.get(&s.portal(routes::LOGIN_PAGE)).await;
    let csrf = field(&login.body, "csrf");
    let mut statuses = Vec::new();
    for _ in 0..31 {
        let r = b
            .post(&s.portal(routes::LOGIN_PASSKEY_OPTIONS), &[("csrf", &csrf)])
            .await;
        statuses.push(r.status);
    }
    assert!(statuses[..30].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses[30], 429);
    let no_csrf = b.post(&s.portal(routes::LOGIN_PASSKEY_OPTIONS), &[]).await;
    assert_eq!(no_csrf.status, 403);
}
