//! Test harness: starts the real `gatehouse` binary on free loopback ports with a
//! temporary data directory, a recording upstream panel, and a cookie-keeping client.
#![allow(dead_code)]

pub mod cdp;
pub mod fronts;
pub mod postgres;
pub mod telegram;

use gatehouse::portal::routes;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
pub const PASSWORD: &str = "correct horse battery";

/// Splits the lines of a `[name]` table out of a configuration snippet.
fn split_table(extra: &str, name: &str) -> (String, String) {
    let (mut table, mut rest) = (String::new(), String::new());
    let mut inside = false;
    let header = format!("[{name}]");
    for line in extra.lines() {
        if line.trim_start().starts_with('[') {
            inside = line.trim() == header;
            if inside {
                continue;
            }
        }
        let target = if inside { &mut table } else { &mut rest };
        target.push_str(line);
        target.push('\n');
    }
    (table, rest)
}

/// A free loopback port (bound and released; good enough for tests).
///
/// Never the same port twice in one test binary: tests run in parallel, and pingora
/// listens with SO_REUSEPORT, so two servers given one port would both bind it and
/// share its requests. Drawn below the kernel's ephemeral range (32768 and up on
/// Linux), where a client connection of another test cannot take it as its local port
/// between our check and the server's bind.
pub fn free_port() -> u16 {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
    loop {
        let port = 20_000 + rand::random::<u16>() % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        // The claim is a name in the kernel's abstract socket namespace, held for the
        // life of the process: one claim per port even where a binary compiles this
        // harness more than once (`tests/on_postgres.rs`), gone when the process ends.
        let name = format!("gatehouse-test-{}-{port}", std::process::id());
        let claimed = UnixAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| UnixListener::bind_addr(&addr));
        if let Ok(claim) = claimed {
            std::mem::forget(claim);
            return port;
        }
    }
}

/// Whether the servers of this test binary keep their state in PostgreSQL rather than
/// sled: the binaries named `on_postgres*` run the existing suites again that way, and
/// `GH_TEST_STORE=postgres` (or `sled`) decides for any binary. Where PostgreSQL is not
/// installed, the servers fall back to sled and say so.
pub fn on_postgres() -> bool {
    static DECIDED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DECIDED.get_or_init(|| {
        let wanted = match std::env::var("GH_TEST_STORE").as_deref() {
            Ok("postgres") => true,
            Ok(_) => false,
            Err(_) => std::env::current_exe().is_ok_and(|exe| {
                exe.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("on_postgres"))
            }),
        };
        if wanted && postgres::cluster().is_none() {
            println!(
                "SKIPPED on PostgreSQL (Debian package postgresql not installed): runs on sled"
            );
            return false;
        }
        wanted
    })
}

/// `extra` with the `[session]` and `[storage]` tables of a server on PostgreSQL: a
/// fresh database, and the keys such a server must be given. They come first, where a
/// test that cuts a table off the end of the configuration leaves them.
fn postgres_storage(extra: &str) -> String {
    let (session, rest) = split_table(extra, "session");
    let (storage, rest) = split_table(&rest, "storage");
    let url = postgres::cluster().expect("PostgreSQL runs").database();
    let secret = if session.contains("secret") {
        String::new()
    } else {
        "secret = \"tests-on-postgres-share-this-session-secret\"\n".to_string()
    };
    let key = if storage.contains("encryption_key") {
        String::new()
    } else {
        "encryption_key = \"tests-on-postgres-share-this-encryption-key\"\n".to_string()
    };
    format!(
        "[session]\n{secret}{session}\n[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n{key}{storage}\n{rest}\n"
    )
}

/// Where a test may leave files for a reviewer (screenshots, logs).
pub fn output_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-output")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running gatehouse.
pub struct Gatehouse {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub portal: u16,
    pub proxy: u16,
    /// Whether the configuration has a proxy listener (on `proxy`).
    uses_proxy: bool,
    /// Environment variables for the next `spawn` (e.g. a crash point).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

/// What an upstream panel received.
#[derive(Clone, Default)]
pub struct Recorded(pub Arc<Mutex<Vec<String>>>);

impl Recorded {
    pub fn last(&self) -> String {
        self.0.lock().unwrap().last().cloned().unwrap_or_default()
    }
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// One HTTP/1.1 request from a loopback test server's connection: the head as text
/// (request line and headers) and the body, read by its Content-Length. `None` when the
/// peer closed the connection.
pub async fn read_http_request(stream: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let length = header_of(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.ok()?;
    Some((head, body))
}

/// A header's value in a request head (name case-insensitive).
pub fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// A panel stand-in: answers every request with 200 and the raw request head as body,
/// and echoes bytes after a WebSocket upgrade. Returns its address.
pub async fn start_upstream() -> (SocketAddr, Recorded) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = Recorded::default();
    let rec = recorded.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let rec = rec.clone();
            tokio::spawn(async move {
                loop {
                    let Some((text, _body)) = read_http_request(&mut stream).await else {
                        return;
                    };
                    let lower = text.to_ascii_lowercase();
                    rec.0.lock().unwrap().push(text.clone());
                    if lower.contains("upgrade: websocket") {
                        let _ = stream
                            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
                            .await;
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = stream.read(&mut buf).await {
                            if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                        return;
                    }
                    // `/set-cookies`: a panel that tries to set gatehouse's cookies
                    // beside its own.
                    let cookies = if lower.starts_with("get /set-cookies") {
                        "Set-Cookie: gatehouse_session=planted; Path=/\r\nSet-Cookie: panel_pref=dark; Path=/\r\nSet-Cookie: gatehouse_session_device=planted.x; Path=/\r\n"
                    } else {
                        ""
                    };
                    let response = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{cookies}Content-Length: {}\r\n\r\n{}", text.len(), text);
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, recorded)
}

/// Runs `gatehouse serve` on `config`, which must refuse to start with an error (exit
/// status 1), not a crash; returns its stderr.
pub fn refused_serve(config: &Path) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "it must not start: {err}");
    assert_eq!(out.status.code(), Some(1), "an error, not a crash: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Runs the CLI against a config; returns (success, stdout, stderr).
pub fn cli(config: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
            input.write_all(b"\n").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

impl Gatehouse {
    /// Writes a config (fast argon2, free ports, `extra` TOML appended) without starting.
    pub fn configure(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let portal = free_port();
        let proxy = free_port();
        let config_path = dir.path().join("gatehouse.toml");
        let uses_proxy = extra.contains("127.0.0.1:{proxy}");
        let extra = extra
            .replace("{proxy}", &proxy.to_string())
            .replace("{portal}", &portal.to_string());
        // `[server]` and `[password]` tables in `extra` join (and override) the
        // harness's own.
        let extra = if on_postgres() && !extra.contains("backend =") {
            postgres_storage(&extra)
        } else {
            extra
        };
        let (server_extra, extra) = split_table(&extra, "server");
        let (password_extra, extra) = split_table(&extra, "password");
        let password = if password_extra.trim().is_empty() {
            "memory_kib = 8192\niterations = 1\nparallelism = 1\n".to_string()
        } else {
            password_extra
        };
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{portal}\"\ndata_dir = {:?}\nlog_level = \"info\"\nthreads = 2\n{server_extra}\n[password]\n{password}\n{extra}\n",
            dir.path().join("data").display().to_string(),
        );
        std::fs::write(&config_path, text).unwrap();
        Gatehouse {
            dir,
            config_path,
            portal,
            proxy,
            uses_proxy,
            env: Vec::new(),
            child: None,
        }
    }

    /// Configures, adds the standard users, starts and waits until healthy.
    pub fn start(extra: &str) -> Self {
        let mut g = Self::configure(extra);
        g.add_user(
            "ann",
            &[
                "--email",
                "ann@example.test",
                "--name",
                "Ann Admin",
                "--groups",
                "admins,staff",
            ],
        );
        g.add_user("bob", &["--email", "bob@example.test", "--name", "Bob"]);
        g.spawn();
        g
    }

    pub fn add_user(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["user", "add", name, "--password-stdin"];
        args.extend_from_slice(extra);
        let (ok, out, err) = cli(&self.config_path, &args, Some(PASSWORD));
        assert!(ok, "user add failed: {out} {err}");
    }

    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        cli(&self.config_path, args, None)
    }

    /// Another replica of this server: the same configuration with listeners of its
    /// own (and a data directory of its own), started. Only meaningful where the state
    /// is shared (on PostgreSQL).
    pub fn replica(&self) -> Gatehouse {
        let dir = tempfile::tempdir().unwrap();
        let (portal, proxy) = (free_port(), free_port());
        let text = std::fs::read_to_string(&self.config_path)
            .unwrap()
            .replace(
                &format!("127.0.0.1:{}", self.portal),
                &format!("127.0.0.1:{portal}"),
            )
            .replace(
                &format!("127.0.0.1:{}", self.proxy),
                &format!("127.0.0.1:{proxy}"),
            )
            .replace(
                &format!("{:?}", self.dir.path().join("data").display().to_string()),
                &format!("{:?}", dir.path().join("data").display().to_string()),
            );
        let config_path = dir.path().join("gatehouse.toml");
        std::fs::write(&config_path, text).unwrap();
        let mut replica = Gatehouse {
            dir,
            config_path,
            portal,
            proxy,
            uses_proxy: self.uses_proxy,
            env: Vec::new(),
            child: None,
        };
        replica.spawn();
        replica
    }

    /// Whether the server was started and not killed since.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// The running server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Starts `gatehouse serve` and waits for the health endpoint.
    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("gatehouse.log")).unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config_path)
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.portal)) {
                use std::io::{Read, Write};
                let _ = s
                    .write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut text = String::new();
                let _ = s.read_to_string(&mut text);
                if text.starts_with("HTTP/1.1 200") {
                    break;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("gatehouse exited early ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse did not become healthy: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.uses_proxy {
            wait_for_port(self.proxy, "the proxy listener", || self.log());
        }
        // The proxy listener starts with the portal; make sure it accepts too.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.proxy));
    }

    /// Kills the server with SIGKILL (no chance to flush anything).
    /// Waits up to `limit` for the server to exit by itself; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gatehouse.log")).unwrap_or_default()
    }

    pub fn portal_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.portal)
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        // A failing test shows what the server said (its files go with the test).
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("--- the server's log, last lines ---\n{}", tail.join("\n"));
        }
        self.kill9();
    }
}

/// A minimal browser: keeps cookies by name, never follows redirects.
pub struct Browser {
    pub client: reqwest::Client,
    pub cookies: HashMap<String, String>,
    pub accept: &'static str,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Browser {
    /// A browser where `hosts` resolve to 127.0.0.1.
    pub fn new(hosts: &[&str]) -> Self {
        Self::with_agent(hosts, "")
    }

    /// Another window of the browser `other`: its device cookie, no session (so a
    /// sign-in here is no new device).
    pub fn window_of(hosts: &[&str], other: &Browser) -> Self {
        let mut b = Self::new(hosts);
        b.cookies = other
            .cookies
            .iter()
            .filter(|(name, _)| name.ends_with("_device"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        b
    }

    /// [`Browser::new`] that sends `user_agent` (none when empty).
    pub fn with_agent(hosts: &[&str], user_agent: &str) -> Self {
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if !user_agent.is_empty() {
            builder = builder.user_agent(user_agent.to_string());
        }
        for h in hosts {
            builder = builder.resolve(h, SocketAddr::from(([127, 0, 0, 1], 0)));
        }
        Browser {
            client: builder.build().unwrap(),
            cookies: HashMap::new(),
            accept: "text/html,application/xhtml+xml,*/*;q=0.8",
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if text.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_string()),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.get_with(url, &[]).await
    }

    pub async fn get_with(&mut self, url: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self
            .client
            .get(url)
            .header("accept", self.accept)
            .header("cookie", self.cookie_header());
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        self.finish(response).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(url)
            .header("accept", self.accept)
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    /// Opens the login page at `login_url`, submits the form with the given password.
    pub async fn log_in(&mut self, login_url: &str, username: &str, password: &str) -> Page {
        let page = self.get(login_url).await;
        assert_eq!(page.status, 200, "login page: {}", page.body);
        let csrf = field(&page.body, "csrf");
        let rd = field(&page.body, "rd");
        let action = page
            .body
            .split("action=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let base = login_url.split('/').take(3).collect::<Vec<_>>().join("/");
        self.post(
            &format!("{base}{action}"),
            &[
                ("csrf", &csrf),
                ("rd", &rd),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }
}

/// The value of a named input in an HTML page.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    html.split(&marker)
        .nth(1)
        .map(|rest| unescape(rest.split('"').next().unwrap()))
        .unwrap_or_default()
}

/// Undoes HTML escaping of attribute values.
pub fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#47;", "/")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#61;", "=")
        .replace("&amp;", "&")
}

/// Kills a helper process (nginx, Caddy) when the test ends.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts HTTP on `port`.
pub fn wait_for_port(port: u16, what: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start: {}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The gatehouse side of a forward-auth deployment: portal published as
/// `auth.example.test:FRONT`, cookie on `example.test`, rules for `panel.example.test`.
pub fn forward_auth_config(front_port: u16) -> String {
    format!(
        r#"
[portal]
url = "http://auth.example.test:{front_port}/"
[session]
domain = "example.test"
secure = false
[[access_control.rules]]
domain = ["panel.example.test"]
resources = ["^/static/"]
policy = "bypass"
[[access_control.rules]]
domain = ["panel.example.test"]
resources = ["^/forbidden"]
policy = "deny"
[[access_control.rules]]
domain = ["panel.example.test"]
resources = ["^/admin"]
policy = "two_factor"
"#
    )
}

/// The whole browser journey through a real front proxy on `front_port` that asks
/// gatehouse: redirect to login, login, back to the panel with the right identity,
/// deny, bypass, and no spoofed identity on the way.
pub async fn browser_journey_through_front_proxy(front_port: u16, upstream: &Recorded) {
    let panel = |path: &str| format!("http://panel.example.test:{front_port}{path}");
    let mut browser = Browser::new(&["panel.example.test", "auth.example.test"]);

    let first = browser.get(&panel("/dashboard?tab=2")).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let login = first.location.expect("redirect to the portal");
    let expected = format!("http://auth.example.test:{front_port}/?rd=http%3A%2F%2Fpanel.example.test%3A{front_port}%2Fdashboard%3Ftab%3D2");
    assert_eq!(login, expected);
    assert_eq!(
        upstream.count(),
        0,
        "nothing reached the panel before login"
    );

    let done = browser.log_in(&login, "ann", PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(panel("/dashboard?tab=2").as_str())
    );

    let page = browser
        .get_with(&panel("/dashboard?tab=2"), &[("Remote-User", "mallory")])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let seen = upstream.last().to_ascii_lowercase();
    assert!(seen.starts_with("get /dashboard?tab=2 "), "{seen}");
    assert!(seen.contains("remote-user: ann\r\n"), "{seen}");
    assert!(seen.contains("remote-groups: admins,staff\r\n"), "{seen}");
    assert!(
        seen.contains("remote-email: ann@example.test\r\n"),
        "{seen}"
    );
    assert!(!seen.contains("mallory"), "{seen}");

    // A refused page sends the browser to the portal's 403 page, which says who is
    // signed in and offers to switch account.
    let refused = browser.get(&panel("/forbidden")).await;
    assert_eq!(refused.status, 302, "{}", refused.body);
    let denied_page = refused.location.unwrap();
    assert!(
        denied_page.starts_with(&format!("http://auth.example.test:{front_port}/denied?rd=")),
        "{denied_page}"
    );
    let denied = browser.get(&denied_page).await;
    assert_eq!(denied.status, 403);
    assert!(denied.body.contains("id=\"denied-who\""), "{}", denied.body);
    assert!(
        denied.body.contains("id=\"switch-account\""),
        "{}",
        denied.body
    );

    let mut anonymous = Browser::new(&["panel.example.test"]);
    let page = anonymous
        .get_with(
            &panel("/static/app.css"),
            &[("Remote-User", "mallory"), ("remote-name", "Mallory")],
        )
        .await;
    assert_eq!(page.status, 200, "bypass needs no login");
    let seen = upstream.last().to_ascii_lowercase();
    assert!(
        !seen.contains("mallory"),
        "a spoofed identity never reaches the panel: {seen}"
    );
}

/// The TOTP code of a base32 secret, `offset` steps from now (computed with totp-rs,
/// not with gatehouse's own code).
pub fn totp_code(secret_base32: &str, offset: i64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_base32).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret).build().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    totp.generate((now + offset * 30) as u64).to_string()
}

/// Text of the first element with this id.
pub fn element_text(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let rest = html
        .split(&marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    unescape(rest.split('<').next().unwrap())
}

/// The backup codes shown on a page.
pub fn backup_codes(html: &str) -> Vec<String> {
    html.split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect()
}

/// What enabling an authenticator app from the settings page yields.
pub struct Enrolled {
    pub secret: String,
    pub backup_codes: Vec<String>,
    pub final_page: Page,
}

impl Browser {
    /// Posts a settings form: fetches `page_url` for the CSRF token first.
    pub async fn post_with_csrf(
        &mut self,
        page_url: &str,
        action_url: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let page = self.get(page_url).await;
        let csrf = field(&page.body, "csrf");
        let mut all: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        all.extend_from_slice(fields);
        self.post(action_url, &all).await
    }

    /// Turns on TOTP through the settings pages under `base` (e.g. `http://h:p/.gatehouse`),
    /// answering with `code_for(secret)`.
    pub async fn enable_totp_with(
        &mut self,
        base: &str,
        code_for: impl Fn(&str) -> String,
    ) -> Enrolled {
        let settings = format!("{base}{}", routes::SETTINGS);
        let started = self
            .post_with_csrf(
                &settings,
                &format!("{base}{}", routes::SETTINGS_TOTP_START),
                &[],
            )
            .await;
        assert_eq!(started.status, 303, "{}", started.body);
        let enroll = self.get(&format!("{base}{}", routes::SETTINGS_TOTP)).await;
        assert_eq!(enroll.status, 200, "{}", enroll.body);
        let secret = element_text(&enroll.body, "totp-secret").replace(' ', "");
        let csrf = field(&enroll.body, "csrf");
        let code = code_for(&secret);
        let done = self
            .post(
                &format!("{base}{}", routes::SETTINGS_TOTP_CONFIRM),
                &[("csrf", &csrf), ("code", &code), ("rd", "")],
            )
            .await;
        assert_eq!(done.status, 200, "{}", done.body);
        Enrolled {
            secret,
            backup_codes: backup_codes(&done.body),
            final_page: done,
        }
    }

    pub async fn enable_totp(&mut self, base: &str) -> Enrolled {
        self.enable_totp_with(base, |secret| totp_code(secret, 0))
            .await
    }

    /// Answers the second step at `step_url` (the `/2fa` URL the login redirected to,
    /// with its `rd`) with a method and code.
    pub async fn second_step(&mut self, step_url: &str, method: &str, code: &str) -> Page {
        self.second_step_with(step_url, method, code, &[]).await
    }

    /// [`Browser::second_step`] with more fields (`("trust", "1")`: trust this device).
    pub async fn second_step_with(
        &mut self,
        step_url: &str,
        method: &str,
        code: &str,
        extra: &[(&str, &str)],
    ) -> Page {
        let joiner = if step_url.contains('?') { '&' } else { '?' };
        let page = self
            .get(&format!("{step_url}{joiner}method={method}"))
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = field(&page.body, "csrf");
        let rd = field(&page.body, "rd");
        let action = step_url.split('?').next().unwrap();
        let mut fields = vec![
            ("csrf", csrf.as_str()),
            ("rd", rd.as_str()),
            ("method", method),
            ("code", code),
        ];
        fields.extend_from_slice(extra);
        self.post(action, &fields).await
    }
}

/// The two-factor part of the journey through a real front proxy: a one-factor user on
/// a two_factor page is sent to the portal's settings, turns on an authenticator app
/// there, gets in; a later login goes through the portal's second step.
pub async fn two_factor_journey_through_front_proxy(front_port: u16, upstream: &Recorded) {
    let panel = |path: &str| format!("http://panel.example.test:{front_port}{path}");
    let portal = format!("http://auth.example.test:{front_port}");
    let hosts = ["panel.example.test", "auth.example.test"];
    let mut browser = Browser::new(&hosts);
    let login = browser.get(&panel("/admin/users")).await.location.unwrap();
    assert_eq!(browser.log_in(&login, "bob", PASSWORD).await.status, 303);

    let sent = browser.get(&panel("/admin/users")).await;
    assert_eq!(sent.status, 302, "one factor is not enough for /admin");
    let expected = format!(
        "{portal}/settings?rd=http%3A%2F%2Fpanel.example.test%3A{front_port}%2Fadmin%2Fusers"
    );
    assert_eq!(sent.location.as_deref(), Some(expected.as_str()));
    let enrolled = browser.enable_totp(&portal).await;
    assert_eq!(
        browser.get(&panel("/admin/users")).await.status,
        200,
        "two factors now"
    );
    assert!(upstream
        .last()
        .to_ascii_lowercase()
        .contains("remote-user: bob\r\n"));

    let mut later = Browser::new(&hosts);
    let login = later.get(&panel("/admin/users")).await.location.unwrap();
    let after_password = later.log_in(&login, "bob", PASSWORD).await;
    let location = after_password.location.expect("to the second step");
    assert!(location.starts_with("/2fa?rd="), "{location}");
    let step = format!("{portal}{location}");
    assert_eq!(
        later.get(&panel("/admin/users")).await.status,
        302,
        "the password alone opens nothing"
    );
    let done = later
        .second_step(&step, "totp", &totp_code(&enrolled.secret, 1))
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location.as_deref(),
        Some(panel("/admin/users").as_str())
    );
    assert_eq!(later.get(&panel("/admin/users")).await.status, 200);
}

/// A real SMTP server (Debian's python3-aiosmtpd) writing every message to a Maildir.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    _child: Option<ChildGuard>,
    _dir: tempfile::TempDir,
}

/// One delivered message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl SmtpServer {
    /// A port with no server yet (for "mail server down"); `start` brings it up.
    pub fn reserve() -> Self {
        let dir = tempfile::tempdir().unwrap();
        SmtpServer {
            port: free_port(),
            maildir: dir.path().join("maildir"),
            _child: None,
            _dir: dir,
        }
    }

    pub fn start() -> Self {
        let mut s = Self::reserve();
        s.run();
        s
    }

    /// Starts the server on the reserved port.
    pub fn run(&mut self) {
        let child = Command::new("/usr/bin/python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&self.maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd is installed (apt-get install python3-aiosmtpd)");
        self._child = Some(ChildGuard(child));
        wait_for_port(self.port, "aiosmtpd", String::new);
    }

    /// Every message delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| (e.metadata().unwrap().modified().unwrap(), e.path()))
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, path)| {
                let raw = std::fs::read(path).unwrap();
                let parsed = mailparse::parse_mail(&raw).unwrap();
                let header = |name: &str| {
                    parsed
                        .headers
                        .iter()
                        .find(|h| h.get_key().eq_ignore_ascii_case(name))
                        .map(|h| h.get_value())
                        .unwrap_or_default()
                };
                let mut text = String::new();
                let mut html = String::new();
                for part in parsed.subparts.iter().chain(std::iter::once(&parsed)) {
                    match part.ctype.mimetype.as_str() {
                        "text/plain" => text = part.get_body().unwrap(),
                        "text/html" => html = part.get_body().unwrap(),
                        _ => {}
                    }
                }
                Mail {
                    to: header("To"),
                    subject: header("Subject"),
                    text,
                    html,
                }
            })
            .collect()
    }

    /// Waits for the `n`-th message (1-based) to arrive.
    pub async fn wait_for(&self, n: usize, seconds: u64) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let all = self.messages();
            if all.len() >= n {
                return all[n - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "message {n} did not arrive; have {}",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Mail {
    /// The 6-digit code in the message.
    pub fn code(&self) -> String {
        self.text
            .split_whitespace()
            .find(|w| w.len() == 6 && w.chars().all(|c| c.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no code in {}", self.text))
            .to_string()
    }

    /// The first link in the message.
    pub fn link(&self) -> String {
        self.text
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .unwrap_or_else(|| panic!("no link in {}", self.text))
            .to_string()
    }
}

/// One request a [`Recorder`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A form field of an urlencoded body.
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

type Reply = dyn Fn(&Received) -> (u16, String) + Send + Sync;

/// A loopback HTTP server that records every request and answers through `reply`;
/// `status_override` (when not 0) replaces the status (a panel that is down).
#[derive(Clone)]
pub struct Recorder {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Received>>>,
    pub status_override: Arc<std::sync::atomic::AtomicU16>,
}

impl Recorder {
    pub async fn start(reply: impl Fn(&Received) -> (u16, String) + Send + Sync + 'static) -> Self {
        Self::start_on("127.0.0.1:0", Arc::new(reply)).await
    }

    pub async fn start_on(bind: &str, reply: Arc<Reply>) -> Self {
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let recorder = Recorder {
            addr: listener.local_addr().unwrap(),
            requests: Default::default(),
            status_override: Default::default(),
        };
        let r = recorder.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let r = r.clone();
                let reply = reply.clone();
                tokio::spawn(async move {
                    loop {
                        let Some((text, body)) = read_http_request(&mut stream).await else {
                            return;
                        };
                        let mut lines = text.lines();
                        let mut first = lines.next().unwrap_or("").split(' ');
                        let (method, path) = (
                            first.next().unwrap_or("").to_string(),
                            first.next().unwrap_or("").to_string(),
                        );
                        let headers: Vec<(String, String)> = lines
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                            .collect();
                        let received = Received {
                            method,
                            path,
                            headers,
                            body: String::from_utf8_lossy(&body).into(),
                        };
                        let (mut status, answer) = reply(&received);
                        r.requests.lock().unwrap().push(received);
                        let forced = r.status_override.load(std::sync::atomic::Ordering::SeqCst);
                        if forced != 0 {
                            status = forced;
                        }
                        let response = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}", answer.len());
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        recorder
    }

    pub fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `n` requests arrived.
    pub async fn wait_for(&self, n: usize, seconds: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let all = self.received();
            if all.len() >= n {
                return all;
            }
            assert!(
                Instant::now() < deadline,
                "request {n} did not arrive; have {}",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
