//! A database outage under a replica: forward-auth keeps answering for the sessions it
//! has cached for `storage.outage_grace`, logins fail with 503, health says why, and the
//! replica reconnects by itself. A test binary of its own: it stops its cluster.

mod common;

use std::time::{Duration, Instant};

use common::postgres::{cluster, forward_auth, shared};
use common::{Browser, Gatehouse, PASSWORD};
use gatehouse::portal::routes;

async fn health(gate: &Gatehouse) -> (u16, String) {
    let page = Browser::new(&[])
        .get(&gate.portal_url(routes::API_HEALTH))
        .await;
    (page.status, page.body)
}

#[tokio::test]
async fn cached_sessions_pass_for_the_grace_of_an_outage_and_everything_comes_back() {
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return;
    };
    let url = cluster.database();
    let config = format!("{}outage_grace = \"3s\"\n", shared(&url));
    let gate = Gatehouse::start(&config);
    let mut ann = Browser::new(&[]);
    let done = ann
        .log_in(&gate.portal_url(routes::LOGIN_PAGE), "ann", PASSWORD)
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(forward_auth(&mut ann, &gate).await, 200);
    assert_eq!(forward_auth(&mut ann, &gate).await, 200);

    cluster.pause();
    let lost = Instant::now();
    assert_eq!(
        forward_auth(&mut ann, &gate).await,
        200,
        "a cached session passes during the grace"
    );
    let mut bob = Browser::new(&[]);
    let login = bob
        .log_in(&gate.portal_url(routes::LOGIN_PAGE), "bob", PASSWORD)
        .await;
    assert_eq!(login.status, 503, "a login fails clearly: {}", login.body);
    let (status, body) = health(&gate).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database"), "{body}");

    // Past the grace (counted from the first failure, known after the pool's 2 s
    // timeout), nothing passes.
    let refused = loop {
        if forward_auth(&mut ann, &gate).await != 200 {
            break lost.elapsed();
        }
        assert!(lost.elapsed() < Duration::from_secs(10), "{}", gate.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        refused >= Duration::from_secs(3),
        "refused after {refused:?}"
    );

    cluster.resume();
    // The replica reconnects by itself: health and the session come back.
    let back = Instant::now();
    while health(&gate).await.0 != 200 || forward_auth(&mut ann, &gate).await != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "did not come back: {}",
            gate.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("back after {:?}", back.elapsed());
    let login = bob
        .log_in(&gate.portal_url(routes::LOGIN_PAGE), "bob", PASSWORD)
        .await;
    assert_eq!(login.status, 303);
}
