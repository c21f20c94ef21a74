//! Email over SMTP (lettre), from a background queue.
//!
//! Requests never talk to the mail server: they put an [`Outgoing`] message on a queue
//! and may wait a short, bounded time for the first delivery attempt, so the page can
//! say "sent" or "could not be sent right now". Every message is first written to the
//! store's outbox (`mail\0…` keys), so one queued while the mail server is down is
//! delivered after a restart too. A background service owns the SMTP transport
//! (lettre's pooled transport must live and die inside a tokio runtime), re-queues what
//! the outbox holds at start, and retries each failed message with backoff, logging each
//! attempt, and clearly when it gives up; a message leaves the outbox when delivered or
//! given up.

use std::sync::Mutex;
use std::time::Duration;

use askama::Template;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::{mpsc, oneshot};

use crate::config::{SmtpConfig, SmtpTls};
use crate::store::{Space, Store};
use crate::texts::Texts;

/// Outbox keys of queued mail (the recovery hook's events share the outbox).
pub const MAIL_PREFIX: &str = "mail\0";

/// A message as the outbox keeps it.
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
    first_attempt: Option<oneshot::Sender<bool>>,
    /// Its outbox key, once written there.
    key: Option<String>,
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
            first_attempt: None,
            key: None,
        }
    }
}

/// The sending side, shared by request handlers.
pub struct Mailer {
    config: Option<SmtpConfig>,
    store: std::sync::Arc<dyn Store>,
    queue: mpsc::Sender<Outgoing>,
    receiver: Mutex<Option<mpsc::Receiver<Outgoing>>>,
}

impl Mailer {
    pub fn new(config: Option<SmtpConfig>, store: std::sync::Arc<dyn Store>) -> Self {
        let (queue, receiver) = mpsc::channel(1024);
        Mailer {
            config,
            store,
            queue,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// Writes a message to the outbox before it is queued; a failure (a full disk) is
    /// logged and the message still goes out from memory.
    fn persist(&self, outgoing: &mut Outgoing) {
        let key = format!(
            "{MAIL_PREFIX}{:012}\0{}",
            crate::basics::now(),
            crate::basics::random_token(8)
        );
        let queued = Queued {
            to: outgoing.to.clone(),
            subject: outgoing.subject.clone(),
            text: outgoing.text.clone(),
            html: outgoing.html.clone(),
        };
        let written = serde_json::to_vec(&queued)
            .map_err(crate::error::Error::from)
            .and_then(|bytes| self.store.put_raw(Space::Outbox, &key, &bytes));
        match written {
            Ok(()) => outgoing.key = Some(key),
            Err(e) => {
                tracing::error!(to = %outgoing.to, error = %e, "could not write the mail to the outbox; it is queued in memory only")
            }
        }
    }

    /// Messages left in the outbox by an earlier run.
    fn pending(&self) -> Vec<Outgoing> {
        let Ok(entries) = self.store.scan_raw(Space::Outbox) else {
            return Vec::new();
        };
        entries
            .into_iter()
            .filter(|(key, _)| key.starts_with(MAIL_PREFIX))
            .filter_map(|(key, raw)| {
                let queued: Queued = serde_json::from_slice(&raw)
                    .map_err(|e| tracing::error!(key = %key.replace('\0', "/"), error = %e, "unreadable mail in the outbox; left there"))
                    .ok()?;
                Some(Outgoing {
                    to: queued.to,
                    subject: queued.subject,
                    text: queued.text,
                    html: queued.html,
                    first_attempt: None,
                    key: Some(key),
                })
            })
            .collect()
    }

    /// A message is done with (delivered or given up): out of the outbox.
    fn forget(&self, outgoing: &Outgoing) {
        if let Some(key) = &outgoing.key {
            if let Err(e) = self.store.delete_raw(Space::Outbox, key) {
                tracing::error!(error = %e, "could not remove a sent mail from the outbox");
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
        let (tx, rx) = oneshot::channel();
        let mut outgoing = letter.into_outgoing(to);
        outgoing.first_attempt = Some(tx);
        self.persist(&mut outgoing);
        if self.queue.try_send(outgoing).is_err() {
            tracing::error!(to, "mail queue is full; message dropped");
            return Delivery::Failed;
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(true)) => Delivery::Sent,
            Ok(Ok(false)) => Delivery::Failed,
            _ => Delivery::Pending,
        }
    }

    /// Queues a letter without waiting (notices).
    pub fn send_later(&self, to: &str, letter: Letter<'_>) {
        if !self.enabled() || to.is_empty() {
            return;
        }
        let mut outgoing = letter.into_outgoing(to);
        self.persist(&mut outgoing);
        if self.queue.try_send(outgoing).is_err() {
            tracing::error!(
                to,
                "mail queue is full; the notice waits in the outbox for the next start"
            );
        }
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

/// Drains the queue; each message is tried, then retried with backoff on its own task.
pub struct MailerService {
    pub mailer: std::sync::Arc<Mailer>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
}

#[async_trait]
impl BackgroundService for MailerService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mailer = &self.mailer;
        let Some(config) = mailer.config.clone() else {
            return;
        };
        let Some(mut receiver) = mailer
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let transport = match transport(&config) {
            Ok(t) => std::sync::Arc::new(t),
            Err(e) => {
                tracing::error!(error = %e, host = %config.host, "cannot set up the SMTP transport; no mail will be sent");
                return;
            }
        };
        tracing::info!(host = %config.host, port = config.port, "mail queue running");
        // Each message is tried, then retried with backoff, on a task of its own.
        let spawn_delivery = |outgoing: Outgoing| {
            let (transport, config, mailer, metrics) = (
                transport.clone(),
                config.clone(),
                self.mailer.clone(),
                self.metrics.clone(),
            );
            tokio::spawn(
                async move { deliver(&transport, &config, outgoing, &mailer, &metrics).await },
            );
        };
        let earlier = mailer.pending();
        if !earlier.is_empty() {
            tracing::info!(
                count = earlier.len(),
                "mail queued before the restart is sent now"
            );
        }
        for outgoing in earlier {
            spawn_delivery(outgoing);
        }
        loop {
            let outgoing = tokio::select! {
                _ = shutdown.changed() => break,
                next = receiver.recv() => match next { Some(o) => o, None => break },
            };
            spawn_delivery(outgoing);
        }
    }
}

async fn deliver(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    config: &SmtpConfig,
    mut outgoing: Outgoing,
    mailer: &Mailer,
    metrics: &crate::metrics::Metrics,
) {
    let (sent, failed) = (&metrics.mail_sent, &metrics.mail_failed);
    let Some(message) = message(config, &outgoing) else {
        tracing::error!(to = %outgoing.to, "cannot build an email to this address; dropped");
        mailer.forget(&outgoing);
        if let Some(tx) = outgoing.first_attempt.take() {
            let _ = tx.send(false);
        }
        return;
    };
    let mut attempt = 0;
    loop {
        match transport.send(message.clone()).await {
            Ok(_) => {
                sent.inc();
                tracing::info!(to = %outgoing.to, subject = %outgoing.subject, attempt, "mail delivered to the SMTP server");
                mailer.forget(&outgoing);
                if let Some(tx) = outgoing.first_attempt.take() {
                    let _ = tx.send(true);
                }
                return;
            }
            Err(e) => {
                failed.inc();
                if let Some(tx) = outgoing.first_attempt.take() {
                    let _ = tx.send(false);
                }
                let Some(delay) = RETRY_DELAYS.get(attempt) else {
                    tracing::error!(to = %outgoing.to, subject = %outgoing.subject, error = %e, "mail could not be delivered; giving up");
                    mailer.forget(&outgoing);
                    return;
                };
                tracing::warn!(to = %outgoing.to, error = %e, retry_in_s = delay, "mail delivery failed; will retry");
                tokio::time::sleep(Duration::from_secs(*delay)).await;
                attempt += 1;
            }
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
