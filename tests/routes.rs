//! The portal's route table is the one place its paths are written: every route in it
//! is served, and no template spells a portal path out instead of using the table.

mod common;

use common::Gatehouse;
use gatehouse::portal::routes;

#[tokio::test]
async fn every_route_of_the_table_is_served() {
    // Every optional part on (mail, passkeys, Telegram; their servers are closed
    // ports: nothing is sent here; a logo and colour), so every page is offered.
    let logo = tempfile::Builder::new().suffix(".svg").tempfile().unwrap();
    std::fs::write(logo.path(), "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
    let gate = Gatehouse::start(&format!(
        "[portal]\nlogo = {:?}\naccent = \"#123456\"\n\
         [session]\nsecure = false\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"gatehouse@example.test\"\n\
         [webauthn]\nrp_id = \"localhost\"\n\
         [telegram]\ntoken = \"123456789:TEST-token-abcdefghijklmnopqrstuv\"\napi_url = \"http://127.0.0.1:{}\"\n",
        logo.path().display().to_string(),
        common::free_port(),
        common::free_port()
    ));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for route in routes::ALL {
        let url = gate.portal_url(route);
        let mut statuses = Vec::new();
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let response = client.request(method, &url).send().await.unwrap();
            statuses.push(response.status().as_u16());
        }
        // The Telegram webhook exists only when a bot is configured in webhook mode.
        if *route == routes::TELEGRAM_WEBHOOK {
            continue;
        }
        assert!(
            statuses.iter().any(|s| *s != 404 && *s != 405),
            "{route} is in the table but not served: GET/POST answered {statuses:?}"
        );
    }
    // And a path outside the table is not.
    let response = client
        .get(gate.portal_url("/settings/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[test]
fn templates_link_to_portal_paths_only_through_the_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/templates");
    let mut stack = vec![dir];
    let mut spelled_out = Vec::new();
    let mut checked = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        checked += 1;
        // `{{ mount }}` then a path written out; `{{ mount }}{{ … }}` takes it from
        // the table (directly, or through a page's field set from it).
        for (at, _) in text.match_indices("{{ mount }}") {
            let after = &text[at + "{{ mount }}".len()..];
            if after.starts_with('/') {
                spelled_out.push(format!(
                    "{}: {}",
                    path.display(),
                    after.chars().take(40).collect::<String>()
                ));
            }
        }
    }
    assert!(checked > 10, "read the templates");
    assert!(
        spelled_out.is_empty(),
        "portal paths written out in templates (use crate::portal::routes):\n{}",
        spelled_out.join("\n")
    );
}
