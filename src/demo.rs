//! `gatehouse demo`: gatehouse in proxy mode on 127.0.0.1:8080 in front of a built-in
//! stand-in for a legacy panel (a page that shows the `Remote-*` headers it received),
//! with a fresh data directory and a user `demo` whose random password is printed once.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use askama::Template;
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;

use crate::admin::{execute, Command};
use crate::config::{extract, figment, RawUpstream};
use crate::error::{Error, Result};
use crate::http::IDENTITY_HEADERS;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "demo_panel.html")]
struct PanelPage {
    name: String,
    identity: Vec<(String, String)>,
}

/// The stand-in panel: shows who gatehouse says the visitor is.
pub struct DemoPanel;

#[async_trait]
impl ServeHttp for DemoPanel {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let headers = &session.req_header().headers;
        let value = |name: &str| {
            headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default()
        };
        let identity: Vec<(String, String)> = IDENTITY_HEADERS
            .iter()
            .map(|h| (h.to_string(), value(h)))
            .collect();
        let name = [value("remote-name"), value("remote-user")]
            .into_iter()
            .find(|v| !v.is_empty())
            .unwrap_or_else(|| "stranger".into());
        let body = PanelPage { name, identity }
            .render()
            .unwrap_or_default()
            .into_bytes();
        http::Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("content-length", body.len())
            .body(body)
            .unwrap_or_default()
    }
}

fn free_loopback_port() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Where the demo is opened, and where its mailed links point. Browsers allow WebAuthn
/// (passkeys) on plain http only for `localhost`.
fn demo_public_url(listen: &str) -> String {
    match listen.strip_prefix("127.0.0.1:") {
        Some(port) => format!("http://localhost:{port}"),
        None => format!("http://{listen}"),
    }
}

/// Runs the demo until interrupted.
pub fn run(config_path: Option<&Path>, listen: &str, email: &str) -> Result<()> {
    let data = tempfile::Builder::new()
        .prefix("gatehouse-demo-")
        .tempdir()?;
    let panel = free_loopback_port()?;
    let mut raw = extract(&figment(config_path))?;
    raw.server.listen = None;
    raw.server.data_dir = data.path().to_path_buf();
    raw.proxy.listen = Some(listen.to_string());
    raw.proxy.upstreams = vec![RawUpstream {
        hosts: vec!["*".into()],
        address: panel.to_string(),
        tls: false,
        sni: None,
        public_url: Some(demo_public_url(listen)),
    }];
    raw.session.secure = false;
    raw.session.domain = None;
    let config = raw.validate()?;
    let password = crate::basics::random_token(12);
    let state = crate::basics::block_on_lasting(async {
        let state = AppState::open(config).await?;
        let hash = state.passwords.hash_now(&password)?;
        execute(
            state.store.as_ref(),
            Command::UserAdd {
                username: "demo".into(),
                email: email.to_string(),
                display_name: "Demo User".into(),
                groups: vec!["demo".into()],
                password_hash: hash,
            },
        )
        .await?;
        Ok::<_, Error>(state)
    })?;
    if TcpListener::bind(listen).is_err() {
        return Err(Error::config(
            "--listen",
            listen,
            "the address is in use or cannot be bound; pass --listen 127.0.0.1:PORT",
        ));
    }
    println!();
    println!("  gatehouse demo is running (Ctrl-C to stop)");
    println!();
    println!("  Open:      {}/", demo_public_url(listen));
    println!("  Username:  demo");
    println!("  Password:  {password}");
    println!();
    println!(
        "  The panel behind it is a stand-in that shows the Remote-* headers gatehouse sends."
    );
    println!(
        "  Data lives in {} and is removed on exit.",
        data.path().display()
    );
    println!();
    crate::server::run(
        state,
        Some(Box::new(move |server| {
            let mut service = Service::new("demo panel".to_string(), DemoPanel);
            service.add_tcp(&panel.to_string());
            server.add_service(service);
        })),
    );
    drop(data);
    Ok(())
}
