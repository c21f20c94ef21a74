//! A database outage under a replica: forward-auth keeps answering for the sessions it
//! has cached for `storage.outage_grace`, logins fail with 503, health says why, and the
//! replica reconnects by itself; a database restart under load refuses no session. A
//! test binary of its own: it stops its cluster (one test at a time, [`OUTAGE`]).

mod common;

use std::time::{Duration, Instant};

use common::postgres::{cluster, forward_auth, shared};
use common::{Browser, Gatehouse, PASSWORD};
use gatehouse::portal::routes;

/// Held by a test while it stops the cluster that the others share.
static OUTAGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _alone = OUTAGE.lock().await;
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

    let paused = cluster.pause();
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

    paused.resume();
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

#[tokio::test]
async fn a_database_restart_under_load_refuses_no_session_and_every_replica_comes_back() {
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return;
    };
    let _alone = OUTAGE.lock().await;
    let config = shared(&cluster.database());
    let mut gates = vec![Gatehouse::start(&config)];
    let mut b = Gatehouse::configure(&config);
    b.spawn();
    gates.push(b);
    let ports: Vec<u16> = gates.iter().map(|g| g.portal).collect();

    // Checks of two sessions against both replicas, without pause, through the restart.
    let mut tasks = Vec::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for user in ["ann", "bob"] {
        let mut browser = Browser::new(&[]);
        let done = browser
            .log_in(&gates[0].portal_url(routes::LOGIN_PAGE), user, PASSWORD)
            .await;
        assert_eq!(done.status, 303);
        let (cookies, ports, stop) = (browser.cookies.clone(), ports.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut browser = Browser::new(&[]);
            browser.cookies = cookies;
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for port in &ports {
                    let url = format!("http://127.0.0.1:{port}{}", routes::API_AUTHZ_FORWARD_AUTH);
                    let headers = [
                        ("X-Forwarded-Proto", "https"),
                        ("X-Forwarded-Host", "panel.example.test"),
                        ("X-Forwarded-Uri", "/"),
                        ("X-Forwarded-Method", "GET"),
                    ];
                    statuses.push(browser.get_with(&url, &headers).await.status);
                }
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restart = Instant::now();
    cluster.pause().resume();
    println!("the database restarted in {:?}", restart.elapsed());

    // Both replicas reconnect by themselves, and sign people in again.
    for gate in &gates {
        let back = Instant::now();
        while health(gate).await.0 != 200 {
            assert!(back.elapsed() < Duration::from_secs(30), "{}", gate.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut again = Browser::new(&[]);
        let login = again
            .log_in(&gate.portal_url(routes::LOGIN_PAGE), "ann", PASSWORD)
            .await;
        assert_eq!(login.status, 303, "{}", login.body);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.extend(t.await.unwrap());
    }
    let refused = statuses.iter().filter(|s| **s != 200).count();
    println!(
        "{} checks through the restart, {refused} not 200",
        statuses.len()
    );
    assert!(statuses.len() > 50, "the load ran");
    assert_eq!(refused, 0, "no session refused: {statuses:?}");
}
