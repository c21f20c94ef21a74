//! The connection guard in front of both listeners: limits on connections (in total
//! and per client address) and deadlines pingora does not have on its own.
//!
//! pingora's per-read timeout lets a slow client (slowloris) keep a connection by
//! sending a byte now and then. [`GuardedApp`] wraps a listener's app: it refuses
//! connections over the limits at once, and wraps each connection's stream in
//! [`Guarded`], which follows the client's bytes through each request's head and body
//! (by `Content-Length` or chunked framing, so early responses and pipelining do not
//! confuse it) and ends the connection when
//! - the first request does not start within `keepalive_timeout`, or
//! - a request's head is not complete within `header_timeout` of its first byte (empty
//!   lines before a request line count as its start).
//!
//! Between requests on a kept-alive connection, pingora's keep-alive timeout (which the
//! listeners set to `keepalive_timeout`) limits the wait. Bodies and responses run
//! without these deadlines (pingora's per-read timeouts apply). After a `101 Switching
//! Protocols` answer to a request that asked for it (WebSocket) nothing is watched.
//! Peers in `server.trusted_proxies` (nginx, Caddy, a load balancer) are not limited per
//! address: every client of theirs shares their address. IPv6 clients are counted by
//! their /64.

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
        let ip = client_network(ip);
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

/// What one client is counted by: its IPv4 address, or its IPv6 /64 (one subscriber
/// usually gets a whole /64, so per-address counting would not limit anyone).
fn client_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        v4 @ IpAddr::V4(_) => v4,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
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
        let ip = stream.get_socket_digest().and_then(|d| {
            d.peer_addr()
                .and_then(|a| a.as_inet().map(|a| a.ip().to_canonical()))
        });
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

/// Where a connection is in its request stream. Request boundaries come from the
/// requests' own framing (`Content-Length`, chunked bodies), so an early response or a
/// pipelined request never confuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of the connection's first request.
    Idle,
    /// Between requests on a kept-alive connection (pingora's keep-alive timeout, set to
    /// `keepalive_timeout` by the listeners, limits the wait).
    Between,
    /// Reading a request's head, due within `header_timeout` of its first byte.
    Head,
    /// Reading a body of known length: bytes left.
    Body(u64),
    /// Reading a chunked body.
    Chunked(Chunk),
    /// Switched protocols (WebSocket): nothing is watched any more.
    Upgraded,
}

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The chunk-size digits (value so far).
    Size(u64),
    /// Chunk extensions, up to the end of the line.
    Extension(u64),
    /// Chunk data: bytes left.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// At the start of a trailer line (an empty one ends the body).
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
}

/// The longest request head remembered to find its framing headers; pingora refuses
/// longer ones anyway.
const MAX_HEAD: usize = 64 * 1024;

/// A stream that ends itself when a request is too slow to start or to send its headers.
pub struct Guarded {
    inner: Stream,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    header_timeout: Duration,
    /// The current head, for its framing headers.
    head: Vec<u8>,
    /// Whether a byte other than CR/LF was seen in the current head (parsers skip
    /// empty lines before a request line, so they must not end the head).
    head_started: bool,
    /// The last request asked to switch protocols: watch for `101`.
    upgrade_asked: bool,
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
            head: Vec::new(),
            head_started: false,
            upgrade_asked: false,
        }
    }

    /// Whether the deadline applies now.
    fn timed(&self) -> bool {
        matches!(self.phase, Phase::Idle | Phase::Head)
    }

    /// Follows the bytes the client sent, through heads and bodies.
    fn saw(&mut self, bytes: &[u8]) {
        let head_began = self.follow(bytes);
        // A head begun in this read and not yet complete is due within the header
        // timeout of now. (Most heads arrive whole in one read: they never touch the
        // timer, which costs a lock on tokio's timer wheel.)
        if head_began && self.phase == Phase::Head {
            self.deadline
                .as_mut()
                .reset(Instant::now() + self.header_timeout);
        }
    }

    /// [`Self::saw`]'s walk through the bytes; whether a new request's head began.
    fn follow(&mut self, mut bytes: &[u8]) -> bool {
        let mut head_began = false;
        while let Some((&b, rest)) = bytes.split_first() {
            match self.phase {
                Phase::Upgraded => return false,
                Phase::Idle | Phase::Between => {
                    // The first byte of a request: its head is due within the deadline.
                    self.phase = Phase::Head;
                    self.head.clear();
                    self.head_started = false;
                    head_began = true;
                    continue;
                }
                Phase::Head => {
                    // Taken a read at a time (this runs on every request): empty lines
                    // before the request line skipped, the rest appended and searched
                    // for the blank line, from just before where this read starts.
                    if !self.head_started {
                        let skip = bytes
                            .iter()
                            .take_while(|b| matches!(b, b'\r' | b'\n'))
                            .count();
                        bytes = &bytes[skip..];
                        if bytes.is_empty() {
                            continue;
                        }
                        self.head_started = true;
                    }
                    let before = self.head.len();
                    self.head.extend_from_slice(bytes);
                    match head_end(&self.head, before.saturating_sub(2)) {
                        Some(end) => {
                            bytes = &bytes[end.saturating_sub(before)..];
                            self.head.truncate(end);
                            self.phase = self.after_head();
                        }
                        None => {
                            bytes = &[];
                            // Past the longest head remembered: keep its start (for the
                            // framing headers) and the last two bytes (for the search).
                            if self.head.len() > MAX_HEAD + 2 {
                                let keep_from = self.head.len() - 2;
                                self.head.drain(MAX_HEAD..keep_from);
                            }
                        }
                    }
                }
                Phase::Body(left) => {
                    let take = (left as usize).min(bytes.len());
                    bytes = &bytes[take..];
                    let left = left - take as u64;
                    self.phase = if left == 0 {
                        Phase::Between
                    } else {
                        Phase::Body(left)
                    };
                }
                Phase::Chunked(Chunk::Data(left)) => {
                    let take = (left as usize).min(bytes.len());
                    bytes = &bytes[take..];
                    let left = left - take as u64;
                    self.phase = Phase::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                }
                Phase::Chunked(chunk) => {
                    bytes = rest;
                    self.phase = next_chunk_state(chunk, b);
                }
            }
        }
        head_began
    }

    /// The head is complete: what follows is its body, if it has one.
    fn after_head(&mut self) -> Phase {
        let mut length = None;
        let mut chunked = false;
        self.upgrade_asked = false;
        for line in self.head.split(|b| *b == b'\n').skip(1) {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
            if name.eq_ignore_ascii_case(b"content-length") {
                length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = value.to_ascii_lowercase().ends_with(b"chunked");
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade_asked = true;
            }
        }
        match (chunked, length) {
            (true, _) => Phase::Chunked(Chunk::Size(0)),
            (false, Some(n)) if n > 0 => Phase::Body(n),
            _ => Phase::Between,
        }
    }

    /// Follows what is written back: `101` to a request that asked for it hands the
    /// connection to another protocol.
    fn wrote(&mut self, bytes: &[u8]) {
        if !self.upgrade_asked || !bytes.starts_with(b"HTTP/") {
            return;
        }
        self.upgrade_asked = false;
        if bytes.get(8..13) == Some(b" 101 ".as_slice()) {
            self.phase = Phase::Upgraded;
        }
    }
}

/// Where a request head ends in `head` (just past its blank line: `\n\n`, or `\n\r\n`),
/// searching from `from`.
fn head_end(head: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = head[at..].iter().position(|b| *b == b'\n') {
        let lf = at + i;
        match head.get(lf + 1..) {
            Some([b'\n', ..]) => return Some(lf + 2),
            Some([b'\r', b'\n', ..]) => return Some(lf + 3),
            _ => at = lf + 1,
        }
    }
    None
}

/// The chunked-body state after one more byte (data bytes are taken in bulk elsewhere).
fn next_chunk_state(chunk: Chunk, b: u8) -> Phase {
    let hex = |b: u8| char::from(b).to_digit(16).map(u64::from);
    Phase::Chunked(match (chunk, b) {
        (Chunk::Size(n), _) if hex(b).is_some() => {
            Chunk::Size(n.saturating_mul(16).saturating_add(hex(b).unwrap_or(0)))
        }
        (Chunk::Size(n) | Chunk::Extension(n), b'\n') if n == 0 => Chunk::TrailerStart,
        (Chunk::Size(n) | Chunk::Extension(n), b'\n') => Chunk::Data(n),
        (Chunk::Size(n) | Chunk::Extension(n), _) => Chunk::Extension(n),
        (Chunk::DataEnd, b'\n') => Chunk::Size(0),
        (Chunk::DataEnd, _) => Chunk::DataEnd,
        (Chunk::TrailerStart, b'\n') => return Phase::Between,
        (Chunk::TrailerStart, b'\r') => Chunk::TrailerStart,
        (Chunk::TrailerLine, b'\n') => Chunk::TrailerStart,
        (Chunk::TrailerStart | Chunk::TrailerLine, _) => Chunk::TrailerLine,
        (Chunk::Data(n), _) => Chunk::Data(n),
    })
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
        if this.phase == Phase::Upgraded {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.timed() && this.deadline.is_elapsed() {
            return Poll::Ready(Err(too_slow(this.phase)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if this.timed() => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(too_slow(this.phase))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
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

    /// What `look` sees of a guarded connection (header timeout 1 s, keep-alive
    /// timeout 100 s) after each of the given pieces of a client's bytes.
    fn after_each<T>(chunks: &[&[u8]], look: impl Fn(&Guarded) -> T) -> Vec<T> {
        let (a, _b) = tokio::io::duplex(64);
        let limits = Limits {
            header_timeout: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(100),
            max_connections: 1,
            max_connections_per_ip: 1,
            trusted_proxies: vec![],
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut g = Guarded::new(Box::new(a), &limits);
            chunks
                .iter()
                .map(|c| {
                    g.saw(c);
                    look(&g)
                })
                .collect()
        })
    }

    /// The phases a client's bytes go through, fed in the given pieces.
    fn phases(chunks: &[&[u8]]) -> Vec<Phase> {
        after_each(chunks, |g| g.phase)
    }

    /// How long from now each head's deadline lies after each piece is seen.
    fn deadlines(chunks: &[&[u8]]) -> Vec<Duration> {
        after_each(chunks, |g| g.deadline.deadline() - Instant::now())
    }

    #[test]
    fn a_head_that_does_not_arrive_whole_is_due_within_the_header_timeout() {
        let whole: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let due = |d: &Duration| d.as_secs_f64();
        // A head in one read leaves the connection's first deadline alone (no timer
        // touched); one in pieces is due within the header timeout of its first byte.
        let d = deadlines(&[whole, b"GET / HT", b"TP/1.1\r\n"]);
        assert!(due(&d[0]) > 99.0, "{d:?}");
        assert!(due(&d[1]) <= 1.0, "{d:?}");
        assert!(
            d[2] <= d[1],
            "a later piece of the same head must not extend it: {d:?}"
        );
        // A whole head followed, in the same read, by the start of the next one.
        let d = deadlines(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next"]);
        assert!(due(&d[0]) <= 1.0, "{d:?}");
        // Empty lines before a request line start its head's clock.
        let d = deadlines(&[b"\r\n", b"\r\n"]);
        assert!(due(&d[0]) <= 1.0 && d[1] <= d[0], "{d:?}");
    }

    #[test]
    fn a_head_ends_at_its_blank_line_however_the_bytes_are_split() {
        assert_eq!(
            phases(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]),
            [Phase::Between]
        );
        assert_eq!(
            phases(&[b"GET / HTTP/1.1\r\nHost: a\r", b"\n", b"\r", b"\n"]),
            [Phase::Head, Phase::Head, Phase::Head, Phase::Between]
        );
        assert_eq!(phases(&[b"GET / HTTP/1.1\nHost: a\n\n"]), [Phase::Between]);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a = client_network("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = client_network("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = client_network("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_network(v4), v4);
        // IPv4 clients of a dual-stack listener are each themselves, not one /64.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_network(mapped), v4);
    }

    #[test]
    fn empty_lines_before_a_request_do_not_end_its_head() {
        assert_eq!(
            phases(&[b"\r\n\r\n\r\n", b"GET / HTTP/1.1\r\n"]),
            [Phase::Head, Phase::Head]
        );
    }

    #[test]
    fn a_body_of_known_length_then_the_next_request() {
        assert_eq!(
            phases(&[
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
                b"cde",
                b"GET /next HTTP/1.1\r\n"
            ]),
            [Phase::Body(3), Phase::Between, Phase::Head]
        );
        // Pipelined in one piece.
        assert_eq!(
            phases(&[b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\nokGET / HTTP/1.1\r\n\r\n"]),
            [Phase::Between]
        );
    }

    #[test]
    fn a_chunked_body_with_blank_lines_inside_is_followed_to_its_end() {
        let body: &[u8] = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6;x=y\r\n\r\n\r\n\r\n\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(phases(&[body]), [Phase::Between]);
        assert_eq!(
            phases(&[&body[..body.len() - 2]]),
            [Phase::Chunked(Chunk::TrailerStart)]
        );
    }
}
