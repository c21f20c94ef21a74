//! The real front proxies the tests run, each with the shipped example file (hosts and
//! ports swapped): nginx with `examples/nginx/gatehouse.conf`, Caddy with
//! `examples/caddy/Caddyfile`; and a panel that decodes and normalises paths the way
//! real frameworks do (`normalising_panel.py`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{wait_for_port, ChildGuard};

fn nginx_binary() -> String {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).exists() {
            return candidate.to_string();
        }
    }
    panic!("nginx is not installed: apt-get install nginx (.ci/run does)");
}

/// Starts nginx on `front` running the nginx example in `dir`, asking gatehouse's portal
/// listener on `portal` and proxying to `panel`.
pub fn start_nginx(dir: &Path, front: u16, portal: u16, panel: SocketAddr) -> ChildGuard {
    start_nginx_before(dir, front, &[portal], panel)
}

/// Starts nginx as [`start_nginx`] does, in front of several replicas: the example's
/// gatehouse address becomes an `upstream` of their portal listeners, taken in turn
/// (round robin), as README "Several replicas" shows.
pub fn start_nginx_before(
    dir: &Path,
    front: u16,
    portals: &[u16],
    panel: SocketAddr,
) -> ChildGuard {
    std::fs::create_dir_all(dir).unwrap();
    let (gatehouse, upstream) = match portals {
        [one] => (format!("127.0.0.1:{one}"), String::new()),
        many => (
            "gatehouse_replicas".to_string(),
            format!(
                "upstream gatehouse_replicas {{\n{}}}\n",
                many.iter()
                    .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n"))
                    .collect::<String>()
            ),
        ),
    };
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/nginx/gatehouse.conf"
    ))
    .unwrap();
    let site = example
        .replace("auth.example.com", "auth.example.test")
        .replace("panel.example.com", "panel.example.test")
        .replace("127.0.0.1:9091", &gatehouse)
        .replace("127.0.0.1:8081", &panel.to_string())
        .replace("listen 80;", &format!("listen 127.0.0.1:{front};"));
    let site = format!("{upstream}{site}");
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    let main = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .spawn()
        .expect("nginx starts");
    let guard = ChildGuard(child);
    let error_log = dir.join("error.log");
    wait_for_port(front, "nginx", || {
        std::fs::read_to_string(&error_log).unwrap_or_default()
    });
    guard
}

/// Starts Caddy on `front` running the Caddy example in `dir`.
pub fn start_caddy(dir: &Path, front: u16, portal: u16, panel: SocketAddr) -> ChildGuard {
    assert!(
        Path::new("/usr/bin/caddy").exists(),
        "caddy is not installed: apt-get install caddy (.ci/run does)"
    );
    std::fs::create_dir_all(dir).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/caddy/Caddyfile"
    ))
    .unwrap();
    let site = example
        .replace(
            "auth.example.com {",
            &format!("http://auth.example.test:{front} {{"),
        )
        .replace(
            "panel.example.com {",
            &format!("http://panel.example.test:{front} {{"),
        )
        .replace("127.0.0.1:9091", &format!("127.0.0.1:{portal}"))
        .replace("127.0.0.1:8081", &panel.to_string());
    let caddyfile = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}");
    std::fs::write(dir.join("Caddyfile"), caddyfile).unwrap();
    let log = std::fs::File::create(dir.join("caddy.log")).unwrap();
    let child = Command::new("/usr/bin/caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("caddy starts");
    let guard = ChildGuard(child);
    let log_path = dir.join("caddy.log");
    wait_for_port(front, "caddy", || {
        std::fs::read_to_string(&log_path).unwrap_or_default()
    });
    guard
}

/// How the stand-in panel reads a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelKind {
    /// Decodes, resolves dot segments, merges slashes (most frameworks).
    Normalising,
    /// Decodes only (Flask/Werkzeug routing `/admin/../x` to `/admin/<path>`).
    Literal,
}

/// Starts a stand-in panel of `kind`; returns its address and the process.
pub fn start_panel(kind: PanelKind) -> (SocketAddr, ChildGuard) {
    use std::io::BufRead;
    let mut command = Command::new("python3");
    command.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/common/normalising_panel.py"
    ));
    if kind == PanelKind::Literal {
        command.arg("--literal");
    }
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the panel prints its port");
    (SocketAddr::from(([127, 0, 0, 1], port)), ChildGuard(child))
}

/// A raw HTTP/1.1 request, written byte for byte (no client library to tidy the target
/// or the headers); returns the status and the whole response text.
pub async fn raw_request(port: u16, head: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
