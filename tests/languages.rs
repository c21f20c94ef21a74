//! The portal's languages over HTTP against the real binary: the switcher on every
//! page, the choice kept in a cookie over the browser's `Accept-Language`, the way back
//! to the page it was picked on (and nowhere else), and texts from the Fluent files.

mod common;

use common::{start_upstream, Browser, Gatehouse};
use gatehouse::portal::routes;

const PANEL: &str = "panel.example.test";

async fn gate() -> Gatehouse {
    let (addr, _) = start_upstream().await;
    Gatehouse::start(&format!(
        r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{addr}"
[session]
secure = false
"#
    ))
}

#[tokio::test]
async fn the_language_picked_on_the_portal_is_kept_over_the_browsers_and_returns_to_the_page() {
    let gate = gate().await;
    let url = |path: &str| format!("http://{PANEL}:{}{path}", gate.proxy);
    let login = url("/.gatehouse/?rd=%2Fhome");
    let mut b = Browser::new(&[PANEL]);
    let english = [("accept-language", "en-GB,en;q=0.9")];

    let page = b.get_with(&login, &english).await;
    assert!(page.body.contains("<html lang=\"en\">"), "{}", page.body);
    assert!(
        page.body.contains(&format!(
            "href=\"/.gatehouse{}?to=uk\" lang=\"uk\" hreflang=\"uk\">Українська</a>",
            routes::LANGUAGE
        )),
        "the switcher offers Ukrainian, named in Ukrainian: {}",
        page.body
    );
    assert!(page
        .body
        .contains("<span aria-current=\"true\" lang=\"en\">English</span>"));

    let switched = b
        .get_with(
            &url(&format!("/.gatehouse{}?to=uk", routes::LANGUAGE)),
            &[("referer", login.as_str())],
        )
        .await;
    assert_eq!(switched.status, 303);
    assert_eq!(
        switched.location.as_deref(),
        Some("/.gatehouse/?rd=%2Fhome"),
        "back to the page, rd and all"
    );
    let page = b.get_with(&login, &english).await;
    assert!(page.body.contains("<html lang=\"uk\">"), "{}", page.body);
    assert!(page.body.contains("Увійти"), "{}", page.body);

    // Back to English the same way.
    b.get_with(
        &url(&format!("/.gatehouse{}?to=en", routes::LANGUAGE)),
        &[("referer", login.as_str())],
    )
    .await;
    let page = b.get_with(&login, &[("accept-language", "uk")]).await;
    assert!(page.body.contains("<html lang=\"en\">"), "{}", page.body);
}

#[tokio::test]
async fn the_switcher_sends_nobody_off_the_portal_and_ignores_unknown_languages() {
    let gate = gate().await;
    let url = |path: &str| format!("http://{PANEL}:{}{path}", gate.proxy);
    let switch = url(&format!("/.gatehouse{}?to=uk", routes::LANGUAGE));
    for referer in [
        "https://evil.example/steal",
        "http://panel.example.test//evil.example/x",
        "http://panel.example.test/dashboard",
        "not a url",
    ] {
        let mut b = Browser::new(&[PANEL]);
        let answer = b.get_with(&switch, &[("referer", referer)]).await;
        assert_eq!(
            answer.location.as_deref(),
            Some("/.gatehouse/"),
            "{referer} is no portal page"
        );
    }
    let mut b = Browser::new(&[PANEL]);
    let answer = b
        .get(&url(&format!("/.gatehouse{}?to=xx", routes::LANGUAGE)))
        .await;
    assert_eq!(answer.status, 303);
    assert!(
        !b.cookies.keys().any(|k| k.ends_with("_lang")),
        "no cookie for a language the portal does not have"
    );
}
