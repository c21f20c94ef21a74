//! The command line: configuration checks and user management, as an operator runs them.

mod common;

use std::process::Command;

use common::{cli, Gatehouse, BIN, PASSWORD};

#[test]
fn config_check_names_the_bad_key_value_and_reason() {
    let g = Gatehouse::configure("[regulation]\nban_time = \"forever\"");
    let (ok, _, err) = g.cli(&["config", "check"]);
    assert!(!ok);
    assert!(err.contains("regulation.ban_time"), "{err}");
    assert!(err.contains("forever"), "{err}");
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_masked() {
    let g = Gatehouse::configure("[session]\nsecret = \"a-very-long-session-secret-0123456789\"");
    let (ok, out, err) = g.cli(&["config", "check"]);
    assert!(ok, "{err}");
    assert!(out.contains("configuration is valid"), "{out}");
    assert!(out.contains("max_retries = 3"), "{out}");
    assert!(
        !out.contains("a-very-long-session-secret"),
        "secret leaked: {out}"
    );
    assert!(out.contains("********"), "{out}");
}

#[test]
fn environment_overrides_the_file_with_double_underscore_nesting() {
    let g = Gatehouse::configure("");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&g.config_path)
        .args(["config", "check"])
        .env("GATEHOUSE_SERVER__LISTEN", "nowhere")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("server.listen") && err.contains("nowhere"),
        "{err}"
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&g.config_path)
        .args(["config", "check"])
        .env("GATEHOUSE_REGULATION__MAX_RETRIES", "7")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("max_retries = 7"));
}

#[test]
fn serve_refuses_to_start_on_a_bad_config() {
    let g = Gatehouse::configure(
        "[[access_control.rules]]\nresources = [\"(unclosed\"]\npolicy = \"deny\"",
    );
    let err = common::refused_serve(&g.config_path);
    assert!(
        err.contains("access_control.rules[0].resources[0]") && err.contains("regex"),
        "{err}"
    );
}

#[test]
fn missing_config_file_is_reported() {
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/gatehouse.toml", "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

#[test]
fn user_management_round_trip() {
    let g = Gatehouse::configure("");
    let config = &g.config_path;
    let (ok, out, err) = cli(
        config,
        &[
            "user",
            "add",
            "Carol",
            "--email",
            "carol@example.test",
            "--name",
            "Carol C",
            "--groups",
            "ops,dev",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(ok, "{out}{err}");
    let (ok, _, err) = cli(
        config,
        &["user", "add", "carol", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, out, _) = cli(config, &["user", "list"], None);
    assert!(
        ok && out.contains("carol\tactive\tCarol C\tcarol@example.test\tops,dev"),
        "{out}"
    );
    let (ok, _, _) = cli(config, &["user", "disable", "carol"], None);
    assert!(ok);
    assert!(cli(config, &["user", "list"], None)
        .1
        .contains("carol\tdisabled"));
    assert!(cli(config, &["user", "enable", "carol"], None).0);
    let (ok, out, err) = cli(
        config,
        &["user", "passwd", "carol", "--password-stdin"],
        Some("another long password"),
    );
    assert!(ok, "{out}{err}");
    let (ok, _, _) = cli(config, &["user", "delete", "carol"], None);
    assert!(ok);
    let (ok, _, err) = cli(config, &["user", "delete", "carol"], None);
    assert!(!ok && err.contains("not found"), "{err}");
}

#[test]
fn passwords_come_only_from_stdin_and_must_be_long_enough() {
    let g = Gatehouse::configure("");
    let (ok, _, err) = g.cli(&["user", "add", "dave"]);
    assert!(!ok && err.contains("--password-stdin"), "{err}");
    let (ok, _, err) = cli(
        &g.config_path,
        &["user", "add", "dave", "--password-stdin"],
        Some("short"),
    );
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, _, err) = cli(
        &g.config_path,
        &["user", "add", "bad name", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(!ok && err.contains("invalid user name"), "{err}");
}

#[test]
fn user_commands_work_while_the_server_runs() {
    let g = Gatehouse::start("");
    let (ok, out, err) = g.cli(&["user", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("ann") && out.contains("bob"), "{out}");
    let (ok, out, err) = cli(
        &g.config_path,
        &["user", "add", "erin", "--password-stdin"],
        Some(PASSWORD),
    );
    assert!(ok, "{out}{err}");
    // On sled the running server does the work (the CLI asks it over the admin
    // socket); on PostgreSQL the CLI changes the shared database itself.
    let by = if common::on_postgres() {
        &err
    } else {
        &g.log()
    };
    assert!(by.contains("user_added"), "the audit line: {by}");
}

#[test]
fn the_shipped_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/gatehouse.example.toml");
    let (ok, out, err) = cli(std::path::Path::new(example), &["config", "check"], None);
    assert!(ok, "{err}");
    assert!(out.contains("default_policy = \"one_factor\""), "{out}");
}

#[test]
fn the_cli_gives_up_on_a_server_that_does_not_answer() {
    if common::on_postgres() {
        println!("SKIPPED on PostgreSQL: the CLI asks no server there");
        return;
    }
    let g = Gatehouse::start("");
    let pid = g.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let start = std::time::Instant::now();
    let (ok, _, err) = g.cli(&["user", "list"]);
    let took = start.elapsed();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    assert!(!ok, "no answer is an error");
    assert!(
        took < std::time::Duration::from_secs(15),
        "gave up after {took:?}"
    );
    assert!(err.contains("did not answer within"), "{err}");
}

#[test]
fn a_session_id_that_starts_with_a_dash_is_taken_as_an_id() {
    let g = Gatehouse::start("");
    let (ok, out, err) = g.cli(&["sessions", "revoke", "-AbCdEf0123456789"]);
    assert!(!ok);
    assert!(
        !err.contains("unexpected argument") && !err.contains("Usage"),
        "read as an id, not a flag: {out}{err}"
    );
    assert!(err.contains("session -AbCdEf0123456789"), "{err}");
}

#[test]
fn serve_stops_at_once_when_its_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let g = Gatehouse::configure(&format!(
        "[proxy]\nlisten = \"127.0.0.1:{port}\"\n[[proxy.upstreams]]\nhosts = [\"*\"]\naddress = \"127.0.0.1:9\""
    ));
    let start = std::time::Instant::now();
    let err = common::refused_serve(&g.config_path);
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        err.contains("proxy.listen") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("listening"), "{err}");
}

#[test]
fn config_check_refuses_listeners_sharing_an_address_and_a_portal_outside_the_cookie_domain() {
    let g = Gatehouse::configure(
        "[proxy]\nlisten = \"127.0.0.1:{portal}\"\n[[proxy.upstreams]]\nhosts = [\"*\"]\naddress = \"127.0.0.1:9\"",
    );
    let (ok, _, err) = g.cli(&["config", "check"]);
    assert!(
        !ok && err.contains("proxy.listen") && err.contains("same address"),
        "{err}"
    );
    let g = Gatehouse::configure(
        "[portal]\nurl = \"https://auth.other.test/\"\n[session]\ndomain = \"example.test\"",
    );
    let (ok, _, err) = g.cli(&["config", "check"]);
    assert!(
        !ok && err.contains("portal.url") && err.contains("example.test"),
        "{err}"
    );
}

#[test]
fn an_unusable_data_dir_is_named_with_its_key_and_an_empty_store_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!("[server]\ndata_dir = {:?}\n", file.join("data")),
    )
    .unwrap();
    let err = common::refused_serve(&config);
    assert!(
        err.contains("server.data_dir") && err.contains("a-file/data"),
        "{err}"
    );

    let mut g = Gatehouse::configure("");
    g.spawn();
    assert!(g.log().contains("has no users"), "{}", g.log());
}
