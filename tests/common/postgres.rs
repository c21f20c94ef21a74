//! A throwaway PostgreSQL cluster for the tests of one test binary (Debian's
//! `postgresql`, on a free loopback port, fsync off, TLS on with a test authority's
//! certificate where openssl is installed), and a database per test. As root
//! the cluster runs as the `postgres` user (initdb refuses root). `None` when no
//! PostgreSQL is installed: the caller says SKIPPED.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The running cluster.
pub struct Cluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();

fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let tool = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&tool);
            c
        } else {
            Command::new(&tool)
        };
        command
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The cluster of this test process. A binary that compiles the harness more than
    /// once (`tests/on_postgres.rs`) still runs one: the first copy to claim the name
    /// (in the abstract socket namespace) starts it and says where in `ready`, the
    /// others wait for that. Installed but not starting is a failure, not a skip.
    fn start() -> Option<Cluster> {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let pid = std::process::id();
        // Under /tmp, so that the postgres user can enter every parent directory.
        let dir = PathBuf::from(format!("/tmp/gatehouse-pg-{pid}"));
        let claim = UnixAddr::from_abstract_name(format!("gatehouse-test-pg-{pid}").as_bytes())
            .and_then(|addr| UnixListener::bind_addr(&addr));
        let Ok(claim) = claim else {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            loop {
                if let Ok(port) = std::fs::read_to_string(dir.join("ready")) {
                    let port = port.trim().parse().expect("a port in ready");
                    return Some(Cluster {
                        port,
                        dir,
                        bin,
                        as_postgres,
                    });
                }
                assert!(
                    !dir.join("failed").exists() && std::time::Instant::now() < deadline,
                    "the test cluster did not start (another copy of the harness started it)"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        };
        std::mem::forget(claim);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the test cluster");
        let cluster = Self::start_in(dir.clone(), bin, as_postgres);
        match &cluster {
            Some(c) => std::fs::write(dir.join("ready"), c.port.to_string()).unwrap(),
            None => {
                std::fs::write(dir.join("failed"), "").unwrap();
                panic!(
                    "PostgreSQL is installed but the test cluster did not start: {}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
        }
        cluster
    }

    fn start_in(dir: PathBuf, bin: PathBuf, as_postgres: bool) -> Option<Cluster> {
        if as_postgres {
            let _ = Command::new("chown").arg("postgres:").arg(&dir).status();
        }
        let port = super::free_port();
        let cluster = Cluster {
            port,
            dir,
            bin,
            as_postgres,
        };
        Cluster::make_certificates(&cluster.dir, as_postgres);
        let data = cluster.dir.join("data");
        let data = data.to_str()?;
        if !cluster.run(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
        ) {
            return None;
        }
        let options = cluster.options();
        let log = cluster.dir.join("server.log");
        if !cluster.run(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str()?,
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        ) {
            return None;
        }
        // Statics are never dropped: a watchdog stops the cluster when this test
        // process has gone.
        let stop = format!(
            "{}{} -D {data} -m immediate -w stop",
            if as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            cluster.bin.join("pg_ctl").display()
        );
        // In a session of its own (setsid), so that killing the test's process group
        // (a timeout, Ctrl-C) does not take the watchdog down with it.
        let _ = Command::new("setsid")
            .arg("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {}",
                std::process::id(),
                cluster.dir.display()
            ))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        Some(cluster)
    }

    /// The server's options: loopback, no fsync, and TLS where certificates were made.
    fn options(&self) -> String {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.display()
        );
        if self.tls_root().is_some() && self.dir.join("server.key").exists() {
            let (cert, key) = (self.dir.join("server.crt"), self.dir.join("server.key"));
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert.display(),
                key.display()
            ));
        }
        options
    }

    /// Makes a test certificate authority and a server certificate for 127.0.0.1 signed
    /// by it (and another authority, which signed nothing here), with openssl.
    fn make_certificates(dir: &std::path::Path, as_postgres: bool) -> bool {
        let script = r#"set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=gatehouse-test-ca -keyout ca.key -out ca.crt
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=another-ca -keyout other-ca.key -out other-ca.crt
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj /CN=127.0.0.1 -keyout server.key -out server.csr
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
  -extfile server.ext -out server.crt
chmod 600 server.key
"#;
        let made = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if made && as_postgres {
            let _ = Command::new("chown")
                .args(["postgres:", "server.key", "server.crt"])
                .current_dir(dir)
                .status();
        }
        made
    }

    /// The test authority that signed the server's certificate, when the cluster
    /// speaks TLS (openssl was there to make the certificates).
    pub fn tls_root(&self) -> Option<PathBuf> {
        Some(self.dir.join("ca.crt")).filter(|p| p.exists())
    }

    /// An authority that signed nothing the server has.
    pub fn other_root(&self) -> PathBuf {
        self.dir.join("other-ca.crt")
    }

    /// How many client connections to the database of `url` use TLS.
    pub fn tls_connections_to(&self, url: &str) -> usize {
        let database = url
            .rsplit('/')
            .next()
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("");
        let query = format!(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND datname = '{database}'"
        );
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-At", "-c", &query])
            .output()
            .expect("psql runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    fn ctl(&self, action: &str) -> bool {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        let options = self.options();
        let (data, log) = (data.to_string_lossy(), log.to_string_lossy());
        match action {
            // fast: every client is cut off, and what was committed stays (with fsync
            // off, an immediate stop could lose the last commits).
            "stop" => self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]),
            _ => self.run(
                "pg_ctl",
                &[
                    "-D", &data, "-l", &log, "-w", "-t", "30", "-o", &options, "start",
                ],
            ),
        }
    }

    /// Stops the server at once (an outage) until the [`Paused`] goes.
    pub fn pause(&self) -> Paused<'_> {
        assert!(self.ctl("stop"), "pg_ctl stop failed");
        Paused(self)
    }

    /// A fresh database; its URL.
    pub fn database(&self) -> String {
        let name = format!("t{}", rand::random::<u32>());
        let ok = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-c", &format!("CREATE DATABASE {name}")])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "CREATE DATABASE failed");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// A stopped cluster, started again when this goes (also when the test fails, so
/// that the next test of the binary finds it running).
#[must_use]
pub struct Paused<'a>(&'a Cluster);

impl Paused<'_> {
    pub fn resume(self) {}
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        let started = self.0.ctl("start");
        if !std::thread::panicking() {
            assert!(started, "pg_ctl start failed");
        }
    }
}

/// The cluster of this test process, started on first use; `None` without PostgreSQL.
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER.get_or_init(Cluster::start).as_ref()
}

/// The front port the replica tests' forward-auth configuration names.
pub const FRONT: u16 = 8443;

/// The configuration every replica shares: the database and the keys.
pub fn shared(url: &str) -> String {
    shared_behind(url, FRONT)
}

/// [`shared`], for replicas behind a front proxy on `front`.
pub fn shared_behind(url: &str, front: u16) -> String {
    format!(
        "{}\n[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\nencryption_key = \"replicas-share-this-encryption-key-0123\"\n",
        super::forward_auth_config(front).replace(
            "[session]\n",
            "[session]\nsecret = \"replicas-share-this-session-secret-0123\"\n"
        )
    )
}

/// The forward-auth answer of `gate` for the browser's cookie, for the panel's `/`.
pub async fn forward_auth(browser: &mut super::Browser, gate: &super::Gatehouse) -> u16 {
    let endpoint = gate.portal_url(gatehouse::portal::routes::API_AUTHZ_FORWARD_AUTH);
    let headers = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "panel.example.test"),
        ("X-Forwarded-Uri", "/"),
        ("X-Forwarded-Method", "GET"),
    ];
    browser.get_with(&endpoint, &headers).await.status
}
