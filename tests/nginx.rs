//! Real nginx (Debian's package) in front, running examples/nginx/gatehouse.conf with the
//! hosts and ports swapped, asking gatehouse through auth_request.

mod common;

use std::process::Command;

use common::{
    browser_journey_through_front_proxy, forward_auth_config, free_port, start_upstream,
    two_factor_journey_through_front_proxy, wait_for_port, ChildGuard, Gatehouse,
};

fn nginx_binary() -> String {
    for candidate in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.to_string();
        }
    }
    panic!("nginx is not installed: apt-get install nginx (.ci/run does)");
}

#[tokio::test]
async fn browser_logs_in_through_nginx_auth_request_and_reaches_the_panel_as_itself_with_one_and_two_factors(
) {
    let front = free_port();
    let (upstream_addr, upstream) = start_upstream().await;
    let gate = Gatehouse::start(&forward_auth_config(front));

    let dir = gate.dir.path().join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/nginx/gatehouse.conf"
    ))
    .unwrap();
    let site = example
        .replace("auth.example.com", "auth.example.test")
        .replace("panel.example.com", "panel.example.test")
        .replace("127.0.0.1:9091", &format!("127.0.0.1:{}", gate.portal))
        .replace("127.0.0.1:8081", &upstream_addr.to_string())
        .replace("listen 80;", &format!("listen 127.0.0.1:{front};"));
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
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .spawn()
        .expect("nginx starts");
    let _nginx = ChildGuard(child);
    let error_log = dir.join("error.log");
    wait_for_port(front, "nginx", || {
        std::fs::read_to_string(&error_log).unwrap_or_default()
    });

    browser_journey_through_front_proxy(front, &upstream).await;
    two_factor_journey_through_front_proxy(front, &upstream).await;
}
