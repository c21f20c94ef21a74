//! Slow and greedy clients on both listeners: a request's headers must arrive within
//! `server.header_timeout`, an idle keep-alive connection ends after
//! `server.keepalive_timeout`, and one address cannot hold more than
//! `server.max_connections_per_ip` connections, while other clients are served.

mod common;

use std::time::{Duration, Instant};

use common::{start_upstream, Gatehouse};
use gatehouse::portal::routes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const PANEL: &str = "panel.example.test";

async fn setup() -> Gatehouse {
    let (addr, _) = start_upstream().await;
    Gatehouse::start(&format!(
        r#"
[server]
trusted_proxies = []
header_timeout = "2s"
keepalive_timeout = "3s"
max_connections_per_ip = 10
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

async fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket
        .connect(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap()
}

/// Seconds until the server closes `stream` (reading whatever it sends), at most `limit`.
async fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<f64> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed().as_secs_f64()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// The login page: under `/.gatehouse/` on the proxy listener, at `/` on the portal's.
fn login_path(gate: &Gatehouse, port: u16) -> String {
    if port == gate.proxy {
        format!("/.gatehouse{}", routes::LOGIN_PAGE)
    } else {
        routes::LOGIN_PAGE.to_string()
    }
}

/// A connection on `port` that has had one request answered and is kept alive; and the
/// login page's path there.
async fn kept_alive_after_one_request(gate: &Gatehouse, port: u16) -> (TcpStream, String) {
    let mut s = connect_from("127.0.0.1", port).await;
    let path = login_path(gate, port);
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {PANEL}:{port}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    (s, path)
}

async fn served(source: &str, port: u16, path: &str) -> bool {
    let mut s = connect_from(source, port).await;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {PANEL}:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200")
}

#[tokio::test]
async fn slow_headers_are_cut_at_the_deadline_while_others_are_served_on_both_listeners() {
    let gate = setup().await;
    for port in [gate.proxy, gate.portal] {
        // Eight slowloris clients: a request line, then a header byte every 400 ms.
        let mut slow = Vec::new();
        for _ in 0..8 {
            let mut s = connect_from("127.0.0.1", port).await;
            s.write_all(format!("GET / HTTP/1.1\r\nHost: {PANEL}\r\n").as_bytes())
                .await
                .unwrap();
            slow.push(tokio::spawn(async move {
                let start = Instant::now();
                for _ in 0..30 {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    if s.write_all(b"X").await.is_err() {
                        break;
                    }
                    let mut probe = [0u8; 1];
                    if let Ok(Ok(0) | Err(_)) =
                        tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
                    {
                        break;
                    }
                }
                start.elapsed().as_secs_f64()
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            served("127.0.0.2", port, &login_path(&gate, port)).await,
            "another client is served"
        );
        for s in slow {
            let held = s.await.unwrap();
            assert!(
                (1.5..6.0).contains(&held),
                "a slow client on {port} was cut after {held:.1} s, not at the 2 s deadline"
            );
        }
    }
}

#[tokio::test]
async fn idle_keepalive_connections_are_closed_after_the_keepalive_timeout() {
    let gate = setup().await;
    for port in [gate.proxy, gate.portal] {
        let (mut s, _) = kept_alive_after_one_request(&gate, port).await;
        let closed = closed_after(&mut s, Duration::from_secs(10)).await;
        let closed = closed.expect("the idle connection is closed");
        assert!(
            (2.0..6.0).contains(&closed),
            "closed after {closed:.1} s on {port}"
        );
        // An idle connection that never sends a byte is closed too.
        let mut silent = connect_from("127.0.0.1", port).await;
        assert!(closed_after(&mut silent, Duration::from_secs(10))
            .await
            .is_some());
    }
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let gate = setup().await;
    for port in [gate.proxy, gate.portal] {
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(connect_from("127.0.0.1", port).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut over = connect_from("127.0.0.1", port).await;
        let closed = closed_after(&mut over, Duration::from_secs(1)).await;
        assert!(
            closed.is_some(),
            "the 11th connection from one address is refused"
        );
        assert!(
            served("127.0.0.2", port, &login_path(&gate, port)).await,
            "another address is served"
        );
        drop(held);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            served("127.0.0.1", port, &login_path(&gate, port)).await,
            "once they close, it is served again"
        );
    }
}

#[tokio::test]
async fn a_slow_second_request_on_a_kept_alive_connection_is_cut_at_the_deadline_too() {
    let gate = setup().await;
    for port in [gate.proxy, gate.portal] {
        let (mut s, path) = kept_alive_after_one_request(&gate, port).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {PANEL}\r\n").as_bytes())
            .await
            .unwrap();
        let mut cut = None;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            if s.write_all(b"X").await.is_err() {
                cut = Some(start.elapsed().as_secs_f64());
                break;
            }
        }
        let cut = cut.expect("the dripping request was cut");
        assert!((1.5..6.0).contains(&cut), "cut after {cut:.1} s on {port}");
    }
}

#[tokio::test]
async fn empty_lines_before_a_request_start_its_deadline() {
    let gate = setup().await;
    let mut s = connect_from("127.0.0.1", gate.proxy).await;
    let start = Instant::now();
    let mut cut = None;
    for _ in 0..30 {
        if s.write_all(b"\r\n").await.is_err() {
            cut = Some(start.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let cut = cut.expect("a client sending only empty lines was cut");
    assert!((1.5..6.0).contains(&cut), "cut after {cut:.1} s");
}

#[tokio::test]
async fn a_post_with_a_body_leaves_the_kept_alive_connection_usable_after_a_pause() {
    let gate = setup().await;
    let port = gate.portal;
    let mut s = connect_from("127.0.0.1", port).await;
    let body = format!("csrf=x&username=ann&password={}", "x".repeat(3000));
    s.write_all(
        format!(
            "POST /login HTTP/1.1\r\nHost: {PANEL}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 16384];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 403"));
    // Drain the rest of that answer.
    while tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf))
        .await
        .is_ok_and(|r| r.is_ok_and(|n| n > 0))
    {}
    // A pause longer than the header deadline, then the next request on the same
    // connection is served: the body was followed by its length, not mistaken for a
    // slow head.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {PANEL}:{port}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
