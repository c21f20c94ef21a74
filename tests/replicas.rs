//! Several replicas on one PostgreSQL database: a session made on one is honoured by
//! the others, a revocation on any is refused by all at once, and guesses spread over
//! replicas ban as if they had hit one. Runs a throwaway cluster (Debian's
//! `postgresql`); prints SKIPPED where PostgreSQL is not installed.

mod common;

use common::postgres::{cluster, forward_auth, shared};
use common::{forward_auth_config, Browser, Gatehouse, PASSWORD};
use gatehouse::portal::routes;
use std::time::{Duration, Instant};

/// Two replicas on a fresh database, with the standard users; `None` when skipped.
fn replicas() -> Option<(Gatehouse, Gatehouse)> {
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return None;
    };
    let config = shared(&cluster.database());
    let a = Gatehouse::start(&config);
    let mut b = Gatehouse::configure(&config);
    b.spawn();
    Some((a, b))
}

/// How long until `gate` refuses the browser's session, polling; `None` past `limit`.
async fn refused_within(
    browser: &mut Browser,
    gate: &Gatehouse,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if forward_auth(browser, gate).await != 200 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

#[tokio::test]
async fn a_revocation_on_one_replica_is_refused_by_the_other_within_100_ms() {
    let Some((a, b)) = replicas() else { return };
    let mut delays = Vec::new();
    for _ in 0..20 {
        let mut browser = Browser::new(&[]);
        let done = browser
            .log_in(&a.portal_url(routes::LOGIN_PAGE), "ann", PASSWORD)
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        // Cached on b.
        assert_eq!(forward_auth(&mut browser, &b).await, 200);
        assert_eq!(forward_auth(&mut browser, &b).await, 200);
        // Signed out on a (the logout form), then asked at b.
        let page = browser.get(&a.portal_url(routes::LOGOUT)).await;
        let csrf = common::field(&page.body, "csrf");
        let start = Instant::now();
        let out = browser
            .post(&a.portal_url(routes::LOGOUT), &[("csrf", &csrf)])
            .await;
        assert!(out.status < 400, "{}", out.status);
        let waited = refused_within(&mut browser, &b, Duration::from_secs(5))
            .await
            .expect("the other replica refuses the ended session");
        delays.push(start.elapsed().max(waited));
    }
    delays.sort();
    let p50 = delays[delays.len() / 2];
    let worst = delays[delays.len() - 1];
    println!("revocation seen by the other replica: p50 {p50:?}, max of 20 {worst:?}");
    // The target is 100 ms at p99 (README, "Several replicas", has the measured figures);
    // asserted with room for a loaded CI machine, and far inside the cache's 10 s.
    assert!(p50 < Duration::from_millis(100), "{delays:?}");
    assert!(worst < Duration::from_secs(2), "{delays:?}");
}

#[tokio::test]
async fn a_session_made_on_one_replica_is_honoured_and_revoked_on_every_one() {
    let Some((a, b)) = replicas() else { return };
    let mut browser = Browser::new(&[]);
    assert_eq!(forward_auth(&mut browser, &b).await, 302, "nobody yet");
    let done = browser
        .log_in(&a.portal_url(routes::LOGIN_PAGE), "ann", PASSWORD)
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(forward_auth(&mut browser, &a).await, 200);
    assert_eq!(
        forward_auth(&mut browser, &b).await,
        200,
        "the other replica"
    );
    // Both replicas now answer from their caches.
    assert_eq!(forward_auth(&mut browser, &b).await, 200);
    // The CLI talks to the database directly; its NOTIFY evicts on every replica.
    let (ok, out, err) = a.cli(&["sessions", "revoke", "--user", "ann"]);
    assert!(ok, "{out} {err}");
    // Signed out (sent to log in) on both, within moments.
    for gate in [&a, &b] {
        let waited = refused_within(&mut browser, gate, Duration::from_secs(2)).await;
        assert!(waited.is_some(), "still signed in after the revocation");
    }
    let (_, shown, _) = b.cli(&["user", "list"]);
    assert!(shown.contains("ann") && shown.contains("bob"), "{shown}");
}

#[tokio::test]
async fn guesses_spread_over_replicas_ban_as_one() {
    let Some((a, b)) = replicas() else { return };
    // max_retries is 3: wrong passwords on a, b, a.
    for gate in [&a, &b, &a] {
        let mut browser = Browser::new(&[]);
        let page = browser
            .log_in(
                &gate.portal_url(routes::LOGIN_PAGE),
                "bob",
                "wrong password",
            )
            .await;
        assert_ne!(page.status, 303);
    }
    let mut browser = Browser::new(&[]);
    let right = browser
        .log_in(&b.portal_url(routes::LOGIN_PAGE), "bob", PASSWORD)
        .await;
    assert_eq!(
        right.status, 429,
        "banned on the replica that saw one guess"
    );
}

#[tokio::test]
async fn replicas_reach_the_database_over_verified_tls_and_refuse_a_certificate_they_cannot_verify()
{
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return;
    };
    let Some(root) = cluster.tls_root() else {
        println!("SKIPPED: no openssl to make the test certificates");
        return;
    };
    let url = cluster.database();
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", root.display());
    let gate = Gatehouse::start(&shared(&verified));
    let mut browser = Browser::new(&[]);
    let done = browser
        .log_in(&gate.portal_url(routes::LOGIN_PAGE), "ann", PASSWORD)
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(forward_auth(&mut browser, &gate).await, 200);
    assert!(
        cluster.tls_connections_to(&url) > 0,
        "the replica's connections use TLS"
    );

    // A certificate no configured authority signed: start is refused, and says why.
    let other = format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        cluster.other_root().display()
    );
    let refused = Gatehouse::configure(&shared(&other));
    let err = common::refused_serve(&refused.config_path);
    assert!(
        err.to_lowercase().contains("certificate") || err.to_lowercase().contains("tls"),
        "{err}"
    );
}

#[tokio::test]
async fn the_database_must_come_with_shared_keys() {
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return;
    };
    let url = cluster.database();
    let gate = Gatehouse::configure(&format!(
        "[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n"
    ));
    let (ok, out, err) = gate.cli(&["config", "check"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("session.secret") && err.contains("every replica"),
        "{err}"
    );
}

#[tokio::test]
async fn a_single_node_grows_into_postgres_and_back() {
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return;
    };
    // A single node on sled with its users and a signed-in session...
    let single_config = format!(
        "{}[storage]\nencryption_key = \"replicas-share-this-encryption-key-0123\"\n",
        forward_auth_config(common::postgres::FRONT).replace(
            "[session]\n",
            "[session]\nsecret = \"replicas-share-this-session-secret-0123\"\n",
        )
    );
    let mut single = Gatehouse::start(&single_config);
    let mut browser = Browser::new(&[]);
    let done = browser
        .log_in(&single.portal_url(routes::LOGIN_PAGE), "ann", PASSWORD)
        .await;
    assert_eq!(done.status, 303);
    single.kill9();
    // ...copied into PostgreSQL...
    let url = cluster.database();
    let data = single.dir.path().join("data");
    let (ok, out, err) = single.cli(&[
        "storage",
        "copy",
        "--from",
        &format!("sled:{}", data.display()),
        "--to",
        &format!("postgres:{url}"),
    ]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("copied 2 users"), "{out}");
    // ...where a replica honours the same session.
    let mut replica = Gatehouse::configure(&shared(&url));
    replica.spawn();
    assert_eq!(forward_auth(&mut browser, &replica).await, 200);
    replica.kill9();
    // And back into a fresh sled directory.
    let back = single.dir.path().join("back");
    let (ok, out, err) = single.cli(&[
        "storage",
        "copy",
        "--from",
        &format!("postgres:{url}"),
        "--to",
        &format!("sled:{}", back.display()),
    ]);
    assert!(ok, "{out} {err}");
    assert!(
        out.contains("copied 2 users") && out.contains("1 sessions"),
        "{out}"
    );
}

#[tokio::test]
async fn one_replica_leads_a_role_and_another_takes_over_when_it_goes() {
    use gatehouse::store::{Leadership, PgStore};
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return;
    };
    let url = cluster.database();
    // Two replicas starting together migrate the schema once between them.
    let (a, b) = tokio::join!(
        PgStore::connect(&url, 2, Duration::from_secs(1)),
        PgStore::connect(&url, 2, Duration::from_secs(1))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let lease = a
        .try_lead("sweeper")
        .await
        .unwrap()
        .expect("the first leads");
    assert!(lease.held());
    assert!(b.try_lead("sweeper").await.unwrap().is_none(), "one leader");
    assert!(
        b.try_lead("telegram-polling").await.unwrap().is_some(),
        "roles are separate"
    );
    drop(lease);
    let start = Instant::now();
    loop {
        if let Some(taken) = b.try_lead("sweeper").await.unwrap() {
            assert!(taken.held());
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "nobody took over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("took over after {:?}", start.elapsed());
}

#[tokio::test]
async fn queue_items_are_claimed_once_and_counters_are_exact_across_replicas() {
    use gatehouse::store::{Counters, PgStore, Queue};
    use std::sync::Arc;
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return;
    };
    let url = cluster.database();
    let a = Arc::new(
        PgStore::connect(&url, 4, Duration::from_secs(1))
            .await
            .unwrap(),
    );
    let b = Arc::new(
        PgStore::connect(&url, 4, Duration::from_secs(1))
            .await
            .unwrap(),
    );
    for i in 0..60 {
        a.enqueue("mail", format!("{i}").as_bytes()).await.unwrap();
    }
    // Four workers on two replicas claim at once.
    let workers: Vec<_> = [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .map(|store| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store.claim("mail", 4, 60).await.unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(batch.into_iter().map(|c| c.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        (claimed, all.len()),
        (60, 60),
        "each item claimed exactly once"
    );
    // Eight tasks on two replicas count into the same two keys.
    let keys = vec!["x".to_string(), "y".to_string()];
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let keys = keys.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    store
                        .update_tallies(&keys, &mut |t| {
                            t[0].events.push(1);
                            t[1].events.push(2);
                            true
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let tallies = a.read_tallies(&keys).await.unwrap();
    assert_eq!((tallies[0].events.len(), tallies[1].events.len()), (80, 80));
}

#[tokio::test]
async fn an_event_published_on_one_replica_reaches_the_subscribers_of_another() {
    // What wakes a page long-polling for a Telegram decision on another replica.
    use gatehouse::store::{Event, Events, PgStore};
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return;
    };
    let url = cluster.database();
    let a = PgStore::connect(&url, 2, Duration::from_secs(1))
        .await
        .unwrap();
    let b = PgStore::connect(&url, 2, Duration::from_secs(1))
        .await
        .unwrap();
    let mut heard = b.subscribe();
    let decided = Event::AttemptDecided {
        id: "attempt-1".into(),
    };
    // b's listening connection comes up in the background: publish until it hears.
    let start = Instant::now();
    loop {
        a.publish(decided.clone());
        match tokio::time::timeout(Duration::from_millis(300), heard.recv()).await {
            Ok(Ok(event)) => {
                assert_eq!(event, decided);
                break;
            }
            _ => assert!(start.elapsed() < Duration::from_secs(10), "never heard"),
        }
    }
}

#[tokio::test]
async fn of_many_first_claims_of_one_token_across_replicas_exactly_one_wins() {
    // A phone number claimed for two accounts on two replicas at once.
    use gatehouse::store::{PgStore, Tokens};
    use std::sync::Arc;
    let Some(cluster) = cluster() else {
        println!("SKIPPED: no PostgreSQL installed (Debian package postgresql)");
        return;
    };
    let url = cluster.database();
    let a = Arc::new(
        PgStore::connect(&url, 8, Duration::from_secs(1))
            .await
            .unwrap(),
    );
    let b = Arc::new(
        PgStore::connect(&url, 8, Duration::from_secs(1))
            .await
            .unwrap(),
    );
    for round in 0..5 {
        let key = format!("phone\0+38050000000{round}");
        let claims: Vec<_> = (0..16)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let key = key.clone();
                tokio::spawn(async move {
                    let owner = format!("user{i}");
                    store
                        .swap_token(&key, None, Some(owner.as_bytes()), None)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for c in claims {
            won += usize::from(c.await.unwrap());
        }
        assert_eq!(won, 1, "round {round}");
    }
}
