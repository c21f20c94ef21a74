//! Building and running the one pingora `Server`: the portal listener (portal and
//! forward-auth), the proxy listener, and housekeeping in the background (expired
//! session sweeper, admin socket).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::basics::now;
use crate::forward_auth::{answer, Asked, Kind};
use crate::http::client_ip;
use crate::http::guard::GuardedApp;
use crate::http::pingora_io::{limit_keepalive, peer_ip, read_request};
use crate::portal::{routes, Portal};
use crate::proxy::Gateway;
use crate::state::AppState;

/// The portal on its own listener, mounted at `/`.
pub struct PortalApp {
    portal: Portal,
}

impl PortalApp {
    /// The response to one request whose header is read.
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let config = &self.portal.state().config;
        if let Some(kind) = direct_check(session.req_header()) {
            let header = session.req_header();
            let asked = Asked {
                headers: &header.headers,
                client_ip: client_ip(peer_ip(session), &header.headers, &config.trusted_proxies),
            };
            return answer(self.portal.state(), asked, kind).await;
        }
        match read_request(session, "", &config.trusted_proxies).await {
            Ok(request) => self.portal.handle(request).await,
            Err(response) => response,
        }
    }
}

/// pingora's `ServeHttp` would do the same, but it turns keep-alive back on after
/// reading each request, overriding pingora's own decision to close (a request framed
/// by both `Transfer-Encoding` and `Content-Length`, RFC 9112 §6.1; an HTTP/1.0 client
/// that did not ask to keep the connection).
#[async_trait]
impl HttpServerApp for PortalApp {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                tracing::debug!(error = %e, "reading a request header failed");
                return None;
            }
        }
        if *shutdown.borrow() {
            session.set_keepalive(None);
        } else {
            limit_keepalive(
                &mut session,
                self.portal.state().config.limits.keepalive_timeout,
            );
        }
        let (parts, body) = self.response(&mut session).await.into_parts();
        let written: pingora::Result<()> = async {
            let header: ResponseHeader = parts.into();
            session.write_response_header(Box::new(header)).await?;
            if !body.is_empty() {
                session.write_response_body(body.into(), true).await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = written {
            tracing::debug!(error = %e, "writing a response failed");
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(e) => {
                tracing::debug!(error = %e, "finishing a request failed");
                None
            }
        }
    }
}

/// A forward-auth check answered straight from pingora's request header, the hot path
/// (no copy of the headers into a portal request, no body to read): the target spelled
/// exactly as one of the two routes, and no body. Anything else takes the portal's way,
/// which routes those targets to the same answer.
fn direct_check(header: &RequestHeader) -> Option<Kind> {
    let bodiless = !header.headers.contains_key(http::header::TRANSFER_ENCODING)
        && header
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0");
    if !bodiless {
        return None;
    }
    match (&header.method, header.uri.path_and_query()?.as_str()) {
        (&http::Method::GET | &http::Method::HEAD, routes::API_AUTHZ_AUTH_REQUEST) => {
            Some(Kind::AuthRequest)
        }
        (_, routes::API_AUTHZ_FORWARD_AUTH) => Some(Kind::ForwardAuth),
        _ => None,
    }
}

/// Background chores: sweeping expired sessions, reset links, WebAuthn ceremonies and
/// Telegram attempts, and serving the admin socket. Takes the factors' narrow handles
/// (the store, the configuration), not the whole state.
pub struct Housekeeping {
    state: Arc<dyn crate::mfa::Services>,
}

/// How often expired sessions are removed from the store.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Housekeeping {
    async fn sweep(&self) {
        let config = &self.state.config().session;
        let now = now();
        let store = self.state.store().as_ref();
        if let Err(e) = store.delete_expired_sessions(now).await {
            tracing::debug!(error = %e, "expired sessions not swept yet");
        }
        // Sessions idle past the inactivity limit (their users' choice, not the store's).
        if let Err(e) = store
            .delete_idle_sessions(now, config.inactivity.as_secs())
            .await
        {
            tracing::debug!(error = %e, "idle sessions not swept yet");
        }
        let _ = store.sweep_tokens(now).await;
        // The longest window of any limiter or budget: a day, or the login limiter's.
        let window = self
            .state
            .config()
            .regulation
            .find_time
            .as_secs()
            .max(86_400);
        let _ = store.sweep_tallies(now, window).await;
        crate::portal::reset::sweep_expired(store, now).await;
        crate::mfa::webauthn::sweep_expired(self.state.as_ref(), now).await;
        crate::mfa::telegram::sweep(self.state.as_ref(), now).await;
    }
}

#[async_trait]
impl BackgroundService for Housekeeping {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // On a shared database the CLI changes it directly, whichever replica runs.
        let local_store = matches!(
            self.state.config().storage,
            crate::config::StorageBackend::Sled
        );
        let admin = local_store.then(|| {
            tokio::spawn(crate::admin::serve(
                self.state.store().clone(),
                self.state.config().data_dir.clone(),
                shutdown.clone(),
            ))
        });
        // Replicas sharing a store sweep on one of them (whichever leads).
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        let mut lease: Option<std::sync::Arc<dyn crate::store::LeaderLease>> = None;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tick.tick() => {
                    if !lease.as_ref().is_some_and(|l| l.held()) {
                        lease = self.state.store().try_lead("sweeper").await.ok().flatten();
                    }
                    if lease.is_some() {
                        self.sweep().await;
                    }
                }
            }
        }
        if let Some(admin) = admin {
            let _ = admin.await;
        }
    }
}

/// Extra listening services (the demo panel).
pub type ExtraService = Box<dyn FnOnce(&mut Server)>;

/// Binds every configured listener once, so that an address in use stops the start
/// with the key, the address and the reason (pingora would retry for half a minute,
/// then leave a process that answers nothing).
pub fn check_listeners(config: &crate::config::Config) -> crate::error::Result<()> {
    for (key, addr) in [
        ("server.listen", config.portal_listen),
        ("proxy.listen", config.proxy_listen),
        ("server.metrics_listen", config.metrics_listen),
    ] {
        if let Some(addr) = addr {
            std::net::TcpListener::bind(addr).map_err(|e| {
                crate::error::Error::config(
                    key,
                    addr.to_string(),
                    format!("cannot listen there: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

/// Builds the pingora server with every configured listener.
pub fn build(state: Arc<AppState>, extra: Option<ExtraService>) -> Server {
    let config = &state.config;
    let conf = ServerConf {
        threads: config.threads,
        pid_file: config.data_dir.join("gatehouse.pid").display().to_string(),
        upgrade_sock: config.data_dir.join("upgrade.sock").display().to_string(),
        // One try and at most one retry (of a request safe to repeat, as pingora
        // decides): a panel that resets connections must not see a GET 16 times.
        max_retries: 2,
        // SIGTERM: the listeners stop accepting at once, requests in flight get the grace
        // period to finish, then background work gets a moment to wind down.
        grace_period_seconds: Some(config.shutdown_grace.as_secs()),
        graceful_shutdown_timeout_seconds: Some(2),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    if let Some(addr) = config.portal_listen {
        let mut portal = Service::new(
            "gatehouse portal".to_string(),
            GuardedApp::new(
                PortalApp {
                    portal: Portal::new(state.clone()),
                },
                config.limits.clone(),
            ),
        );
        portal.add_tcp(&addr.to_string());
        server.add_service(portal);
        tracing::info!(%addr, url = ?config.portal_url.as_ref().map(|u| u.to_string()), "portal and forward-auth listening");
    }
    if config.password_reset.enabled && config.smtp.is_some() {
        for (i, u) in config.upstreams.iter().enumerate() {
            if u.public_url.is_none() {
                tracing::warn!(
                    key = format!("proxy.upstreams[{i}].public_url"),
                    hosts = ?u.hosts,
                    "no public URL for this panel: password reset links are not mailed for it (a request's Host never decides where a link points)"
                );
            }
        }
    }
    if let Some(addr) = config.proxy_listen {
        let mut proxy = Service::new(
            "gatehouse proxy".to_string(),
            GuardedApp::new(
                pingora::proxy::http_proxy(&server.configuration, Gateway::new(state.clone())),
                config.limits.clone(),
            ),
        );
        proxy.add_tcp(&addr.to_string());
        server.add_service(proxy);
        tracing::info!(%addr, upstreams = config.upstreams.len(), "proxy listening");
    }
    server.add_service(background_service(
        "housekeeping",
        Housekeeping {
            state: state.clone(),
        },
    ));
    if let Some(writer) =
        crate::activity::ActivityWriter::install(state.store.clone(), config.activity_days)
    {
        server.add_service(background_service("activity", writer));
    }
    if let Some(addr) = config.metrics_listen {
        let mut metrics = Service::new(
            "gatehouse metrics".to_string(),
            crate::metrics::MetricsApp {
                metrics: state.metrics.clone(),
            },
        );
        metrics.add_tcp(&addr.to_string());
        server.add_service(metrics);
        tracing::info!(%addr, "metrics listening");
    }
    if state.config.recovery_hook.is_some() {
        server.add_service(background_service(
            "recovery hook",
            crate::notify::hook::HookService {
                queue: state.store.clone(),
                hook: state.config.recovery_hook.clone(),
                metrics: state.metrics.clone(),
            },
        ));
    }
    if state.telegram.is_some() {
        server.add_service(background_service(
            "telegram bot",
            crate::telegram_bot::BotService {
                state: state.clone(),
            },
        ));
    }
    if state.mailer.enabled() {
        server.add_service(background_service(
            "mail queue",
            crate::notify::email::MailerService {
                mailer: state.mailer.clone(),
                metrics: state.metrics.clone(),
            },
        ));
    }
    if let Some(extra) = extra {
        extra(&mut server);
    }
    server
}

/// Runs until SIGINT/SIGTERM.
pub fn run(state: Arc<AppState>, extra: Option<ExtraService>) {
    build(state, extra).run(RunArgs::default());
}
