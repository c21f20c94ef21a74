//! A throwaway PostgreSQL cluster for the tests of one test binary (Debian's
//! `postgresql`, on a free loopback port, fsync off), and a database per test. As root
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

    fn start() -> Option<Cluster> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        // Under /tmp, so that the postgres user can enter every parent directory.
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-pg-")
            .tempdir_in("/tmp")
            .ok()?
            .keep();
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
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            cluster.dir.display()
        );
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
        let _ = Command::new("sh")
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

    fn ctl(&self, action: &str) -> bool {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.display()
        );
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

    /// Stops the server at once (an outage); [`Cluster::resume`] starts it again.
    pub fn pause(&self) {
        assert!(self.ctl("stop"), "pg_ctl stop failed");
    }

    pub fn resume(&self) {
        assert!(self.ctl("start"), "pg_ctl start failed");
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

/// The cluster of this test binary, started on first use; `None` without PostgreSQL.
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
