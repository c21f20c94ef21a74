//! Email over SMTP (lettre), from a background queue.
//!
//! Requests never talk to the mail server: they put an [`Outgoing`] message on the
//! store's durable `mail` [`Queue`] and may wait a short, bounded time for the first
//! delivery attempt (announced as an [`Event::MailAttempted`]), so the page can say
//! "sent" or "could not be sent right now". A message queued while the mail server is
//! down is delivered after a restart too. A background service owns the SMTP transport
//! (lettre's pooled transport must live and die inside a tokio runtime), claims due
//! messages (with a lease, so one whose worker died is claimed again), and puts each
//! failed one back with backoff, logging each attempt, and clearly when it gives up; a
//! message leaves the queue when delivered or given up.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::Notify;

use crate::config::{SmtpConfig, SmtpTls};
use crate::store::{Claimed, Event, Store};
use crate::texts::Texts;

/// The store queue that holds outgoing mail.
pub const QUEUE: &str = "mail";

/// How long a claimed message is left to one delivery attempt before another may try.
const LEASE: u64 = 120;

/// A message as the queue keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Queued {
    to: String,
    subject: String,
    text: String,
    html: String,
}

/// Delays between delivery attempts of one message (then it is given up).
const RETRY_DELAYS: &[u64] = &[2, 5, 15, 30, 60, 120, 300];

/// A message to send.
pub struct Outgoing {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What became of a message by the time the request stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// The first attempt failed; the queue keeps trying.
    Failed,
    /// Not known yet; the queue keeps trying.
    Pending,
    /// No SMTP server is configured.
    Disabled,
}

#[derive(Template)]
#[template(path = "email/message.txt")]
struct TextBody<'a> {
    t: &'static Texts,
    lines: &'a [String],
    code: Option<&'a str>,
    link: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "email/message.html")]
struct HtmlBody<'a> {
    t: &'static Texts,
    subject: &'a str,
    lines: &'a [String],
    code: Option<&'a str>,
    link: Option<&'a str>,
}

/// One email's content, in the user's language.
pub struct Letter<'a> {
    pub t: &'static Texts,
    pub subject: String,
    pub lines: Vec<String>,
    pub code: Option<&'a str>,
    pub link: Option<&'a str>,
}

impl Letter<'_> {
    fn into_outgoing(self, to: &str) -> Outgoing {
        let text = TextBody {
            t: self.t,
            lines: &self.lines,
            code: self.code,
            link: self.link,
        }
        .render()
        .unwrap_or_default();
        let html = HtmlBody {
            t: self.t,
            subject: &self.subject,
            lines: &self.lines,
            code: self.code,
            link: self.link,
        }
        .render()
        .unwrap_or_default();
        Outgoing {
            to: to.to_string(),
            subject: self.subject,
            text,
            html,
        }
    }
}

/// The sending side, shared by request handlers.
pub struct Mailer {
    config: Option<SmtpConfig>,
    store: Arc<dyn Store>,
    /// Tells this process's worker that something was queued.
    queued: Notify,
}

impl Mailer {
    pub fn new(config: Option<SmtpConfig>, store: Arc<dyn Store>) -> Self {
        Mailer {
            config,
            store,
            queued: Notify::new(),
        }
    }

    /// Puts a message on the queue, durably; its id.
    async fn enqueue(&self, outgoing: &Outgoing) -> Option<String> {
        let queued = Queued {
            to: outgoing.to.clone(),
            subject: outgoing.subject.clone(),
            text: outgoing.text.clone(),
            html: outgoing.html.clone(),
        };
        let written = match serde_json::to_vec(&queued) {
            Ok(bytes) => self.store.enqueue(QUEUE, &bytes).await,
            Err(e) => Err(e.into()),
        };
        match written {
            Ok(id) => {
                self.queued.notify_one();
                Some(id)
            }
            Err(e) => {
                tracing::error!(to = %outgoing.to, error = %e, "could not queue a mail; it is not sent");
                None
            }
        }
    }

    /// Whether an SMTP server is configured.
    pub fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// Queues a letter and waits at most `wait` for the first attempt.
    pub async fn send(&self, to: &str, letter: Letter<'_>, wait: Duration) -> Delivery {
        if !self.enabled() {
            return Delivery::Disabled;
        }
        let mut events = self.store.subscribe();
        let Some(id) = self.enqueue(&letter.into_outgoing(to)).await else {
            return Delivery::Failed;
        };
        let first_attempt = async {
            loop {
                match events.recv().await {
                    Ok(Event::MailAttempted { id: tried, sent }) if tried == id => return sent,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        match tokio::time::timeout(wait, first_attempt).await {
            Ok(true) => Delivery::Sent,
            Ok(false) => Delivery::Failed,
            Err(_) => Delivery::Pending,
        }
    }

    /// Queues a letter without waiting (notices).
    pub async fn send_later(&self, to: &str, letter: Letter<'_>) {
        if !self.enabled() || to.is_empty() {
            return;
        }
        self.enqueue(&letter.into_outgoing(to)).await;
    }
}

fn transport(
    config: &SmtpConfig,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
    let builder = match config.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)?,
    };
    let mut builder = builder
        .port(config.port)
        .timeout(Some(Duration::from_secs(15)));
    if let Some(user) = &config.username {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            config
                .password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default(),
        ));
    }
    Ok(builder.build())
}

fn message(config: &SmtpConfig, outgoing: &Outgoing) -> Option<Message> {
    let from = Mailbox::new(Some(config.from_name.clone()), config.from.parse().ok()?);
    let to: Mailbox = outgoing.to.parse().ok()?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(outgoing.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            outgoing.text.clone(),
            outgoing.html.clone(),
        ))
        .ok()
}

/// Delivers the queue: claims what is due (at once when this process queued something,
/// else every second) and tries each message on a task of its own.
pub struct MailerService {
    pub mailer: Arc<Mailer>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

#[async_trait]
impl BackgroundService for MailerService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mailer = &self.mailer;
        let Some(config) = mailer.config.clone() else {
            return;
        };
        let transport = match transport(&config) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                tracing::error!(error = %e, host = %config.host, "cannot set up the SMTP transport; no mail will be sent");
                return;
            }
        };
        match mailer.store.queued(QUEUE).await {
            Ok(0) | Err(_) => {}
            Ok(count) => tracing::info!(count, "mail queued before the restart is sent now"),
        }
        tracing::info!(host = %config.host, port = config.port, "mail queue running");
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = mailer.queued.notified() => {}
                _ = tick.tick() => {}
            }
            let claimed = match mailer.store.claim(QUEUE, 16, LEASE).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::error!(error = %e, "could not read the mail queue");
                    continue;
                }
            };
            for item in claimed {
                let (transport, config, mailer, metrics) = (
                    transport.clone(),
                    config.clone(),
                    self.mailer.clone(),
                    self.metrics.clone(),
                );
                tokio::spawn(
                    async move { deliver(&transport, &config, item, &mailer, &metrics).await },
                );
            }
        }
    }
}

/// One delivery attempt of a claimed message: acknowledged when delivered or given
/// up, else put back for the next delay.
async fn deliver(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    config: &SmtpConfig,
    item: Claimed,
    mailer: &Mailer,
    metrics: &crate::metrics::Metrics,
) {
    let store = mailer.store.as_ref();
    let first = item.attempts == 0;
    let attempted = |sent: bool| {
        if first {
            store.publish(Event::MailAttempted {
                id: item.id.clone(),
                sent,
            });
        }
    };
    let done = || async {
        if let Err(e) = store.ack(QUEUE, &item.id).await {
            tracing::error!(error = %e, "could not remove a sent mail from the queue");
        }
    };
    let outgoing = serde_json::from_slice::<Queued>(&item.payload).ok();
    let message = outgoing.as_ref().and_then(|o| {
        message(
            config,
            &Outgoing {
                to: o.to.clone(),
                subject: o.subject.clone(),
                text: o.text.clone(),
                html: o.html.clone(),
            },
        )
    });
    let (Some(outgoing), Some(message)) = (outgoing, message) else {
        tracing::error!(id = %item.id, "cannot build an email from this queued message; dropped");
        done().await;
        attempted(false);
        return;
    };
    match transport.send(message).await {
        Ok(_) => {
            metrics.mail_sent.inc();
            tracing::info!(to = %outgoing.to, subject = %outgoing.subject, attempt = item.attempts, "mail delivered to the SMTP server");
            done().await;
            attempted(true);
        }
        Err(e) => {
            metrics.mail_failed.inc();
            // Told after the queue records the next try: a process killed right after
            // the page said "could not send" leaves the message due, not leased to it.
            match RETRY_DELAYS.get(item.attempts as usize) {
                Some(delay) => {
                    tracing::warn!(to = %outgoing.to, error = %e, retry_in_s = delay, "mail delivery failed; will retry");
                    if let Err(e) = store.retry(QUEUE, &item, *delay).await {
                        tracing::error!(error = %e, "could not put a mail back on the queue");
                    }
                }
                None => {
                    tracing::error!(to = %outgoing.to, subject = %outgoing.subject, error = %e, "mail could not be delivered; giving up");
                    done().await;
                }
            }
            attempted(false);
        }
    }
}

/// Hides most of an address for display: `a***@example.com`.
pub fn mask(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => format!("{}***@{domain}", local.chars().next().unwrap_or('*')),
        None => "***".into(),
    }
}

/// Whether text is a plausible email address (what lettre will accept).
pub fn valid_address(address: &str) -> bool {
    address.parse::<lettre::Address>().is_ok()
}
