//! The connection guard in front of both listeners: limits on connections (in total
//! and per client address) and deadlines pingora does not have on its own.
//!
//! pingora's per-read timeout lets a slow client (slowloris) keep a connection by
//! sending a byte now and then, and its keep-alive wait between requests has no end.
//! [`GuardedApp`] wraps a listener's app: it refuses connections over the limits at once,
//! and wraps each connection's stream in [`Guarded`], which watches the bytes as they
//! are read and ends the connection when
//! - no new request starts within `keepalive_timeout` of the previous one (or of the
//!   connection's start), or
//! - a request's headers are not complete within `header_timeout` of its first byte.
//!
//! Once a request's headers are in, its body and the response run without these
//! deadlines (pingora's own per-read timeouts still apply). The bytes that arrive after
//! a response has started begin the next request on a kept-alive connection, which
//! gets the same header deadline; the wait for it is pingora's keep-alive timeout,
//! which the listeners set to `keepalive_timeout`. After `101 Switching Protocols`
//! (WebSocket) nothing is watched any more. Peers in
//! `server.trusted_proxies` (nginx, Caddy, a load balancer) are not limited per address:
//! every client of theirs shares their address.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::IpNet;
use pingora::apps::ServerApp;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, TimingDigest,
    UniqueID, UniqueIDType,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The limits of one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From a request's first byte to the end of its headers.
    pub header_timeout: Duration,
    /// From the connection's start, or the end of a response, to the next request's
    /// first byte.
    pub keepalive_timeout: Duration,
    /// Open connections on this listener.
    pub max_connections: usize,
    /// Open connections from one client address (trusted proxies excepted).
    pub max_connections_per_ip: usize,
    /// Peers that are not limited per address.
    pub trusted_proxies: Vec<IpNet>,
}

/// Wraps a listener's app with the [`Limits`].
pub struct GuardedApp<A> {
    inner: Arc<A>,
    limits: Limits,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl<A> GuardedApp<A> {
    pub fn new(inner: A, limits: Limits) -> Self {
        GuardedApp {
            inner: Arc::new(inner),
            limits,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection, or refuses it when over a limit.
    fn admit(&self, ip: Option<IpAddr>) -> Option<Admitted<'_, A>> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let mut admitted = Admitted {
            app: self,
            ip: None,
        };
        if open > self.limits.max_connections {
            tracing::warn!(
                limit = self.limits.max_connections,
                "connection refused: server.max_connections reached"
            );
            return None;
        }
        let Some(ip) = ip.filter(|ip| !self.limits.trusted_proxies.iter().any(|n| n.contains(ip)))
        else {
            return Some(admitted);
        };
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let count = per_ip.entry(ip).or_default();
        if *count >= self.limits.max_connections_per_ip {
            tracing::warn!(%ip, limit = self.limits.max_connections_per_ip, "connection refused: server.max_connections_per_ip reached");
            return None;
        }
        *count += 1;
        admitted.ip = Some(ip);
        Some(admitted)
    }
}

/// A counted connection; uncounted when dropped.
struct Admitted<'a, A> {
    app: &'a GuardedApp<A>,
    ip: Option<IpAddr>,
}

impl<A> Drop for Admitted<'_, A> {
    fn drop(&mut self) {
        self.app.open.fetch_sub(1, Ordering::AcqRel);
        if let Some(ip) = self.ip {
            let mut per_ip = self.app.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = per_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for GuardedApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let ip = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet().map(|a| a.ip())));
        let _admitted = self.admit(ip)?;
        let mut stream: Stream = Box::new(Guarded::new(stream, &self.limits));
        // pingora serves a kept-alive connection's requests inside one call; should it
        // hand the connection back, it is served here, so it stays counted until it closes.
        loop {
            stream = self.inner.process_new(stream, shutdown).await?;
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Where a connection is in its current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of the first request.
    Idle,
    /// Reading headers; `matched` bytes of a blank line seen at the end so far.
    Headers { matched: u8 },
    /// Headers complete: body and response, no deadline here. Once a (final) response
    /// has started (`responded`), the next bytes that arrive begin the next request.
    Open { responded: bool },
    /// Switched protocols (WebSocket): no more HTTP requests on this connection.
    Upgraded,
}

/// A stream that ends itself when a request is too slow to start or to send its headers.
pub struct Guarded {
    inner: Stream,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    header_timeout: Duration,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

impl Guarded {
    fn new(inner: Stream, limits: &Limits) -> Self {
        Guarded {
            inner,
            phase: Phase::Idle,
            deadline: Box::pin(tokio::time::sleep(limits.keepalive_timeout)),
            header_timeout: limits.header_timeout,
        }
    }

    /// Follows the request's bytes up to the blank line that ends its headers.
    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if matches!(self.phase, Phase::Idle | Phase::Open { responded: true }) {
            // The first byte of a request: its headers are due within the deadline.
            self.phase = Phase::Headers { matched: 0 };
            self.deadline
                .as_mut()
                .reset(Instant::now() + self.header_timeout);
        }
        self.phase = bytes.iter().fold(self.phase, |phase, &b| advance(phase, b));
    }

    /// Follows what is written back: a final response ends the request (what arrives
    /// next is the next request); `101` hands the connection to another protocol.
    fn wrote(&mut self, bytes: &[u8]) {
        if let Phase::Open { responded: false } = self.phase {
            if bytes.starts_with(b"HTTP/1.1 101") || bytes.starts_with(b"HTTP/1.0 101") {
                self.phase = Phase::Upgraded;
            } else if !(bytes.starts_with(b"HTTP/1.1 1") || bytes.is_empty()) {
                self.phase = Phase::Open { responded: true };
            }
        }
    }
}

/// The phase after one more byte: counts "\r\n\r\n" (or a bare "\n\n", which parsers
/// also accept) at the end of the headers.
fn advance(phase: Phase, b: u8) -> Phase {
    let matched = match phase {
        Phase::Open { .. } | Phase::Upgraded => return phase,
        Phase::Idle => 0,
        Phase::Headers { matched } => matched,
    };
    let matched = match (matched, b) {
        (1 | 3, b'\n') => matched + 1,
        (2, b'\n') => 4,
        (0, b'\n') => 2,
        (0 | 2, b'\r') => matched + 1,
        (_, b'\r') => 1,
        _ => 0,
    };
    if matched >= 4 {
        Phase::Open { responded: false }
    } else {
        Phase::Headers { matched }
    }
}

fn too_slow(phase: Phase) -> std::io::Error {
    let what = match phase {
        Phase::Idle => "no request within server.keepalive_timeout",
        _ => "request headers not complete within server.header_timeout",
    };
    std::io::Error::new(std::io::ErrorKind::TimedOut, what)
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::Open { .. } | Phase::Upgraded) {
            let before = buf.filled().len();
            let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
            if this.phase == (Phase::Open { responded: true }) {
                let new = buf.filled()[before..].to_vec();
                this.saw(&new);
            }
            return polled;
        }
        if this.deadline.is_elapsed() {
            return Poll::Ready(Err(too_slow(this.phase)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = buf.filled()[before..].to_vec();
                this.saw(&new);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(too_slow(this.phase))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.wrote(&buf[..n]);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let (Poll::Ready(Ok(n)), Some(first)) = (&polled, bufs.iter().find(|b| !b.is_empty())) {
            if *n > 0 {
                let first: &[u8] = first;
                this.wrote(&first[..first.len().min(*n)]);
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase_after(chunks: &[&[u8]]) -> Phase {
        chunks
            .iter()
            .flat_map(|c| c.iter())
            .fold(Phase::Idle, |phase, &b| advance(phase, b))
    }

    const OPEN: Phase = Phase::Open { responded: false };

    #[test]
    fn headers_end_at_the_first_blank_line_however_the_bytes_are_split() {
        assert_eq!(phase_after(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]), OPEN);
        assert_eq!(
            phase_after(&[b"GET / HTTP/1.1\r\nHost: a\r", b"\n", b"\r", b"\n"]),
            OPEN
        );
        assert_eq!(phase_after(&[b"GET / HTTP/1.1\nHost: a\n\n"]), OPEN);
        assert_eq!(
            phase_after(&[b"GET / HTTP/1.1\r\nHost: a\r\n"]),
            Phase::Headers { matched: 2 }
        );
        assert_eq!(phase_after(&[]), Phase::Idle);
    }
}
