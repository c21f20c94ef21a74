//! Proxy mode in front of a panel that misbehaves: one that never answers gets the
//! client a 504 page after `proxy.read_timeout`, one that cannot be reached a 502 page,
//! in the portal's look, never a hung connection or an empty answer.

mod common;

use std::time::{Duration, Instant};

use common::{free_port, Browser, Gatehouse};

const PANEL: &str = "panel.example.test";

fn config(panel: &str) -> String {
    format!(
        r#"
[proxy]
listen = "127.0.0.1:{{proxy}}"
connect_timeout = "1s"
read_timeout = "1s"
[[proxy.upstreams]]
hosts = ["{PANEL}"]
address = "{panel}"
[session]
secure = false
[access_control]
default_policy = "one_factor"
[[access_control.rules]]
domain = ["{PANEL}"]
resources = ["^/public/"]
policy = "bypass"
"#
    )
}

#[tokio::test]
async fn a_panel_that_never_answers_gets_the_client_a_504_page_after_the_read_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let panel = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s); // accepted, read nothing, answer nothing
        }
    });
    let gate = Gatehouse::start(&config(&panel.to_string()));
    let mut b = Browser::new(&[PANEL]);
    let start = Instant::now();
    let page = b
        .get(&format!("http://{PANEL}:{}/public/report", gate.proxy))
        .await;
    assert_eq!(page.status, 504, "{}", page.body);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        page.body.contains("took too long to answer"),
        "{}",
        page.body
    );
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"),);
}

#[tokio::test]
async fn a_panel_that_cannot_be_reached_gets_the_client_a_502_page() {
    let gate = Gatehouse::start(&config(&format!("127.0.0.1:{}", free_port())));
    let mut b = Browser::new(&[PANEL]);
    let page = b
        .get(&format!("http://{PANEL}:{}/public/report", gate.proxy))
        .await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(page.body.contains("could not be reached"), "{}", page.body);
}

#[tokio::test]
async fn a_panel_that_resets_connections_sees_a_request_at_most_twice_and_the_client_a_502_page() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let panel = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            if s.read(&mut buf).await.is_ok_and(|n| n > 0) {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            // A reset (RST) rather than a clean close: what a crashing panel does.
            #[allow(deprecated)]
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s); // reset, no answer
        }
    });
    let gate = Gatehouse::start(&config(&panel.to_string()));
    let mut b = Browser::new(&[PANEL]);
    let page = b
        .get(&format!("http://{PANEL}:{}/public/report", gate.proxy))
        .await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(page.body.contains("could not be reached"), "{}", page.body);
    assert!(
        page.headers.get("server").is_none(),
        "no Server header naming the proxy: {:?}",
        page.headers.get("server")
    );
    let tries = seen.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&tries),
        "the panel saw the GET {tries} times"
    );
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_refuses_new_ones_and_exits_0() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A slow panel: answers 0.8 s after each request (inside the 1 s read timeout).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let panel = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(Duration::from_millis(800)).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow",
                    )
                    .await;
            });
        }
    });
    let mut gate = Gatehouse::start(&format!(
        "[server]\nshutdown_grace = \"3s\"\n{}",
        config(&panel.to_string())
    ));
    let b = Browser::new(&[PANEL]);
    let url = format!("http://{PANEL}:{}/public/report", gate.proxy);
    let client = b.client.clone();
    let in_flight = tokio::spawn(async move {
        let r = client.get(url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = gate.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", gate.proxy)).await;
    assert!(refused.is_err(), "no new connections once SIGTERM arrived");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "slow"),
        "the request in flight finished"
    );
    let exit = gate
        .wait_exit(Duration::from_secs(10))
        .expect("the server exits");
    assert!(exit.success(), "exit status {exit:?}");
}
