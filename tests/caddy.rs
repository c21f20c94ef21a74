//! Real Caddy (Debian's package) in front, running examples/caddy/Caddyfile with the
//! hosts and ports swapped, asking gatehouse through forward_auth.

mod common;

use std::process::{Command, Stdio};

use common::{
    browser_journey_through_front_proxy, forward_auth_config, free_port, start_upstream,
    two_factor_journey_through_front_proxy, wait_for_port, ChildGuard, Gatehouse,
};

#[tokio::test]
async fn browser_logs_in_through_caddy_forward_auth_and_reaches_the_panel_as_itself_with_one_and_two_factors(
) {
    assert!(
        std::path::Path::new("/usr/bin/caddy").exists(),
        "caddy is not installed: apt-get install caddy (.ci/run does)"
    );
    let front = free_port();
    let (upstream_addr, upstream) = start_upstream().await;
    let gate = Gatehouse::start(&forward_auth_config(front));

    let dir = gate.dir.path().join("caddy");
    std::fs::create_dir_all(&dir).unwrap();
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
        .replace("127.0.0.1:9091", &format!("127.0.0.1:{}", gate.portal))
        .replace("127.0.0.1:8081", &upstream_addr.to_string());
    let caddyfile = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}");
    std::fs::write(dir.join("Caddyfile"), caddyfile).unwrap();
    let log = std::fs::File::create(dir.join("caddy.log")).unwrap();
    let child = Command::new("/usr/bin/caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", &dir)
        .env("XDG_CONFIG_HOME", &dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("caddy starts");
    let _caddy = ChildGuard(child);
    let log_path = dir.join("caddy.log");
    wait_for_port(front, "caddy", || {
        std::fs::read_to_string(&log_path).unwrap_or_default()
    });

    browser_journey_through_front_proxy(front, &upstream).await;
    two_factor_journey_through_front_proxy(front, &upstream).await;
}
