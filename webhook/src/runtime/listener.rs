//! The TLS listener of port 8443: HTTP/1.1 and HTTP/2 on one port.
//!
//! The server offers HTTP/2 first (ALPN `h2`, see [`crate::runtime::tls`]): a client
//! that takes it multiplexes its requests over few connections. The Kubernetes
//! API server does not, for webhooks referenced by a Service: its webhook
//! client offers only `http/1.1` (kubernetes/kubernetes#82090, so that
//! concurrent calls spread over replicas); agents offer no ALPN and speak
//! HTTP/1.1. hyper's automatic builder serves whichever protocol the client
//! speaks, each with its own limits ([`crate::runtime::limits`]):
//!
//! - both: the connection caps ([`ConnectionGate`]: in all, per source
//!   address, fewer per source while the port is busy), the TLS handshake
//!   timeout, a deadline for the first request, and two idle timeouts: a
//!   connection that moves no byte for [`limits::IDLE_TIMEOUT`] is closed, and
//!   so is one with no request in flight for as long whatever bytes it moves;
//!   per request the same body size, body deadline and memory budget (the
//!   admission and outputs layers run whatever the protocol);
//! - HTTP/1.1: the header read timeout and the read buffer;
//! - HTTP/2: a cap on HTTP/2 connections, streams per connection, header list
//!   size and flow-control windows, so one connection holds a bounded amount
//!   of memory. The server sends no keep-alive PING of its own, and a peer's
//!   PINGs do not keep a connection without requests open.
//!
//! Once the server drains ([`ConnectionGate::drain`]), every HTTP/1.x answer
//! carries `Connection: close` and its connection closes after it: a client
//! that keeps connections alive opens a new one for its next request, which
//! the Service sends to a replica that stays, instead of writing into one
//! this replica is about to close. HTTP/2 clients get a GOAWAY when the
//! graceful shutdown starts.
//!
//! Nothing here can tell the API server from another client (it presents no
//! client certificate): the caps are per source address, so that one
//! flooding pod cannot take the port from the API server's address. The
//! NetworkPolicy of the manifests narrows who reaches the port where the
//! cluster enforces it (docs/limits.md).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::Server;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::runtime::limits;
use crate::runtime::metrics::{ConnectionLabels, Metrics, PortLabels, ProtocolLabels};
use crate::runtime::tls::CertStore;

/// The acceptor chain of the TLS port: `TCP_NODELAY`, the connection caps and
/// deadlines, then the TLS handshake (bounded in time).
pub(crate) type TlsAcceptor = RustlsAcceptor<NoDelay<ConnectionGate>>;

/// `server` serving TLS with the current certificate of `certs`, both
/// protocols, and every connection limit (metrics of its own, unread: the
/// server uses [`tls_server_with`]).
pub fn tls_server(server: Server<SocketAddr>, certs: &CertStore) -> Server<SocketAddr, TlsAcceptor> {
    tls_server_with(server, certs, ConnectionGate::new("tls", ConnLimits::TLS, &Metrics::new()))
}

/// `server` serving TLS behind `gate`.
pub(crate) fn tls_server_with(
    server: Server<SocketAddr>,
    certs: &CertStore,
    gate: ConnectionGate,
) -> Server<SocketAddr, TlsAcceptor> {
    let tls = RustlsConfig::from_config(certs.server_config());
    let acceptor = RustlsAcceptor::new(tls).handshake_timeout(limits::TLS_HANDSHAKE_TIMEOUT).acceptor(NoDelay(gate));
    let mut server = server.acceptor(acceptor);
    configure(server.http_builder());
    server
}

/// Sets `TCP_NODELAY` on accepted connections: an answer goes out as soon as
/// it is written. Without it, HTTP/2's separate HEADERS and DATA frames of an
/// answer wait on the peer's delayed ACK (Nagle), which added milliseconds to
/// every multiplexed admission in `make bench`.
#[derive(Clone)]
pub struct NoDelay<A>(pub A);

impl<S, A: Accept<TcpStream, S>> Accept<TcpStream, S> for NoDelay<A> {
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = A::Future;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        self.0.accept(stream, service)
    }
}

// --- connection caps and deadlines -----------------------------------------------------------

/// What one port lets clients hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnLimits {
    /// Open connections at once.
    pub total: usize,
    /// Open connections from one source address.
    pub per_source: usize,
    /// From this many open connections, a source holding `busy_per_source` gets no new one.
    pub busy: usize,
    pub busy_per_source: usize,
    /// Connections speaking HTTP/2.
    pub http2: usize,
    /// From accept to the first request's headers.
    pub first_request: Duration,
    /// With no request in flight, whatever bytes move.
    pub request_idle: Duration,
    /// With no byte moving either way.
    pub byte_idle: Duration,
}

impl ConnLimits {
    /// Port 8443.
    pub(crate) const TLS: ConnLimits = ConnLimits {
        total: limits::MAX_CONNECTIONS,
        per_source: limits::MAX_CONNECTIONS_PER_SOURCE,
        busy: limits::BUSY_CONNECTIONS,
        busy_per_source: limits::BUSY_CONNECTIONS_PER_SOURCE,
        http2: limits::MAX_HTTP2_CONNECTIONS,
        first_request: limits::FIRST_REQUEST_TIMEOUT,
        request_idle: limits::IDLE_TIMEOUT,
        byte_idle: limits::IDLE_TIMEOUT,
    };

    /// Port 9090: its server tracks no request, so a connection lives
    /// [`limits::ADMIN_CONNECTION_LIFETIME`] at most.
    pub(crate) const ADMIN: ConnLimits = ConnLimits {
        total: limits::ADMIN_MAX_CONNECTIONS,
        per_source: limits::ADMIN_MAX_CONNECTIONS_PER_SOURCE,
        busy: limits::ADMIN_BUSY_CONNECTIONS,
        busy_per_source: limits::ADMIN_BUSY_CONNECTIONS_PER_SOURCE,
        http2: 0,
        first_request: limits::ADMIN_CONNECTION_LIFETIME,
        request_idle: limits::ADMIN_CONNECTION_LIFETIME,
        byte_idle: limits::ADMIN_IDLE_TIMEOUT,
    };

    /// These limits, lowered so that `fds` file descriptors hold every
    /// connection (accept fails with EMFILE otherwise, for every client alike).
    pub(crate) fn within_open_files(self, fds: u64) -> ConnLimits {
        let fit = usize::try_from(fds).unwrap_or(usize::MAX).max(1);
        if fit >= self.total {
            return self;
        }
        ConnLimits {
            total: fit,
            per_source: self.per_source.min(fit.div_ceil(4)),
            busy: self.busy.min(fit / 2),
            busy_per_source: self.busy_per_source.min(fit.div_ceil(32)),
            http2: self.http2.min(fit.div_ceil(16)),
            ..self
        }
    }
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The port holds its total.
    Total,
    /// The source holds its cap.
    PerSource,
    /// The port is busy and the source holds its busy share.
    BusySource,
    /// Too many connections speak HTTP/2.
    Http2,
}

impl Refusal {
    /// The metrics label.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerSource => "per_source",
            Refusal::BusySource => "busy_source",
            Refusal::Http2 => "http2",
        }
    }
}

/// Whether a new connection from a source that holds `from_source` may open,
/// with `open` open on the port.
pub(crate) fn admit(limits: &ConnLimits, open: usize, from_source: usize) -> Result<(), Refusal> {
    if open >= limits.total {
        Err(Refusal::Total)
    } else if from_source >= limits.per_source {
        Err(Refusal::PerSource)
    } else if open >= limits.busy && from_source >= limits.busy_per_source {
        Err(Refusal::BusySource)
    } else {
        Ok(())
    }
}

/// The source a connection counts against: its address, an IPv4 address
/// mapped into IPv6 counted as the IPv4 one.
pub(crate) fn source(peer: IpAddr) -> IpAddr {
    peer.to_canonical()
}

/// The caps of one port, shared by its connections: counts per source, the
/// HTTP/2 slots, metrics. Cloned into the acceptor.
#[derive(Clone)]
pub struct ConnectionGate(Arc<Gate>);

struct Gate {
    port: &'static str,
    limits: ConnLimits,
    open: Mutex<Open>,
    http2: Arc<Semaphore>,
    refused: prometheus_client::metrics::family::Family<ConnectionLabels, prometheus_client::metrics::counter::Counter>,
    closed: prometheus_client::metrics::family::Family<ConnectionLabels, prometheus_client::metrics::counter::Counter>,
    gauge: prometheus_client::metrics::gauge::Gauge,
    /// Set once the server drains: HTTP/1.x answers close their connection.
    draining: AtomicBool,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
    /// When a refusal was last logged: a flood logs one line per interval, the metric counts them all.
    last_warned: Option<Instant>,
}

impl ConnectionGate {
    /// The gate of `port` (the metrics label) with `limits`, counting into `metrics`.
    pub(crate) fn new(port: &'static str, limits: ConnLimits, metrics: &Metrics) -> Self {
        ConnectionGate(Arc::new(Gate {
            port,
            limits,
            open: Mutex::default(),
            http2: Arc::new(Semaphore::new(limits.http2)),
            refused: metrics.connections_refused.clone(),
            closed: metrics.connections_closed.clone(),
            gauge: metrics.connections_open.get_or_create(&PortLabels { port }).clone(),
            draining: AtomicBool::new(false),
        }))
    }

    /// The server drains: from now on, HTTP/1.x answers (those of requests
    /// in flight included) carry `Connection: close`.
    pub(crate) fn drain(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    /// Connections open now: in all, and from `peer`'s source.
    #[cfg(test)]
    pub(crate) fn open(&self, peer: IpAddr) -> (usize, usize) {
        let open = self.0.open.lock().unwrap_or_else(PoisonError::into_inner);
        (open.total, open.by_source.get(&source(peer)).copied().unwrap_or(0))
    }

    /// A slot for a new connection from `peer`, or why not.
    pub(crate) fn take(&self, peer: IpAddr) -> Result<Slot, Refusal> {
        let key = source(peer);
        let mut open = self.0.open.lock().unwrap_or_else(PoisonError::into_inner);
        let from_source = open.by_source.get(&key).copied().unwrap_or(0);
        if let Err(refusal) = admit(&self.0.limits, open.total, from_source) {
            let now = Instant::now();
            let warn = open.last_warned.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10));
            if warn {
                open.last_warned = Some(now);
            }
            let total = open.total;
            drop(open);
            self.0.refused.get_or_create(&ConnectionLabels { port: self.0.port, reason: refusal.reason() }).inc();
            if warn {
                tracing::warn!(
                    port = self.0.port, source = %key, reason = refusal.reason(), open = total, from_source,
                    "connection refused (further refusals within 10 s are only counted: lifecycle_connections_refused_total)"
                );
            }
            return Err(refusal);
        }
        open.total += 1;
        *open.by_source.entry(key).or_default() += 1;
        self.0.gauge.set(open.total as i64);
        Ok(Slot { gate: self.0.clone(), source: key })
    }

    /// `stream`, from `peer`, with its slot and deadlines; and the record of
    /// its requests, which the HTTP layer keeps ([`track_requests`]).
    pub(crate) fn guard<S>(&self, stream: S, peer: IpAddr) -> Result<(Guarded<S>, Arc<Activity>), Refusal> {
        let slot = self.take(peer)?;
        let activity = Arc::new(Activity::new(self.0.clone()));
        Ok((Guarded::new(stream, activity.clone(), slot), activity))
    }
}

/// A connection's place in its gate's counts, given back when dropped.
pub(crate) struct Slot {
    gate: Arc<Gate>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                open.by_source.remove(&self.source);
            }
        }
        self.gate.gauge.set(open.total as i64);
    }
}

impl Accept<TcpStream, Router> for ConnectionGate {
    type Stream = Guarded<TcpStream>;
    type Service = Router;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: Router) -> Self::Future {
        let peer = match stream.peer_addr() {
            Ok(a) => a.ip(),
            Err(e) => return std::future::ready(Err(e)),
        };
        match self.guard(stream, peer) {
            // The connection's own copy of the application records its requests.
            Ok((stream, activity)) => std::future::ready(Ok((stream, track_requests(service, activity)))),
            Err(refusal) => std::future::ready(Err(io::Error::other(format!("connection refused: {}", refusal.reason())))),
        }
    }
}

/// `app` recording its requests in `activity`: the deadlines of a connection
/// count requests, not bytes. While the gate drains, HTTP/1.x answers close
/// their connection.
pub(crate) fn track_requests(app: Router, activity: Arc<Activity>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(activity, track))
}

async fn track(State(conn): State<Arc<Activity>>, req: Request, next: Next) -> Response {
    if req.version() == Version::HTTP_2 && !conn.admit_http2() {
        // Closed shortly after this answer: its windows and header lists are not held.
        conn.close_soon();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "2")],
            "too many HTTP/2 connections: retry later or over HTTP/1.1",
        )
            .into_response();
    }
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    let _in_flight = conn.begin();
    let mut resp = next.run(req).await;
    if http1 && conn.gate.draining.load(Ordering::SeqCst) {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// What a connection is doing, at the request level: requests in flight,
/// when the last one ended. Shared by the stream (which closes the
/// connection on a deadline) and the connection's application.
pub(crate) struct Activity {
    gate: Arc<Gate>,
    accepted: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from accept to the end of the last request; `u64::MAX` before the first.
    last_ms: AtomicU64,
    /// Milliseconds from accept to when the connection must end (HTTP/2 over
    /// its cap: time for its 503 to go out); `u64::MAX` when not set.
    close_ms: AtomicU64,
    http2: Mutex<Option<OwnedSemaphorePermit>>,
}

/// A request in flight; its end when dropped (also when the client resets it).
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_ms.store(a.accepted.elapsed().as_millis().min(u64::MAX as u128 - 1) as u64, Ordering::SeqCst);
        a.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    fn new(gate: Arc<Gate>) -> Self {
        Activity {
            gate,
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(u64::MAX),
            close_ms: AtomicU64::new(u64::MAX),
            http2: Mutex::new(None),
        }
    }

    /// A request starts.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn close_soon(&self) {
        let at = (self.accepted.elapsed() + Duration::from_millis(500)).as_millis().min(u64::MAX as u128 - 1) as u64;
        self.close_ms.fetch_min(at, Ordering::SeqCst);
    }

    /// Takes one of the gate's HTTP/2 slots for this connection, once.
    fn admit_http2(&self) -> bool {
        let mut held = self.http2.lock().unwrap_or_else(PoisonError::into_inner);
        if held.is_some() {
            return true;
        }
        match self.gate.http2.clone().try_acquire_owned() {
            Ok(p) => {
                *held = Some(p);
                true
            }
            Err(_) => {
                let labels = ConnectionLabels { port: self.gate.port, reason: Refusal::Http2.reason() };
                self.gate.refused.get_or_create(&labels).inc();
                false
            }
        }
    }

    /// When the connection must have a request, and the reason it is closed
    /// then; `None` while a request is in flight.
    pub(crate) fn deadline(&self) -> Option<(Instant, &'static str)> {
        let close = self.close_ms.load(Ordering::SeqCst);
        if close != u64::MAX {
            return Some((self.accepted + Duration::from_millis(close), "http2"));
        }
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let l = &self.gate.limits;
        Some(match self.last_ms.load(Ordering::SeqCst) {
            u64::MAX => (self.accepted + l.first_request, "no_first_request"),
            ms => (self.accepted + Duration::from_millis(ms) + l.request_idle, "no_request"),
        })
    }
}

/// A connection's stream: holds its slot until dropped, and fails (so that
/// the connection is closed) once no byte moved for the byte idle timeout,
/// or once no request was in flight for the first-request or request idle
/// deadline of [`Activity::deadline`].
pub struct Guarded<S> {
    inner: S,
    activity: Arc<Activity>,
    byte_timer: Pin<Box<Sleep>>,
    request_timer: Pin<Box<Sleep>>,
    counted: bool,
    _slot: Slot,
}

impl<S> Guarded<S> {
    fn new(inner: S, activity: Arc<Activity>, slot: Slot) -> Self {
        let byte_idle = activity.gate.limits.byte_idle;
        let first = activity.accepted + activity.gate.limits.first_request;
        Guarded {
            inner,
            activity,
            byte_timer: Box::pin(tokio::time::sleep(byte_idle)),
            request_timer: Box::pin(tokio::time::sleep_until(first)),
            counted: false,
            _slot: slot,
        }
    }

    fn closed(&mut self, reason: &'static str, kind: io::ErrorKind) -> io::Error {
        // An HTTP/2 connection over its cap is counted once, as refused.
        if !self.counted && reason != "http2" {
            self.counted = true;
            let gate = &self.activity.gate;
            gate.closed.get_or_create(&ConnectionLabels { port: gate.port, reason }).inc();
        }
        io::Error::new(kind, format!("connection closed by the server: {reason}"))
    }

    /// Before any read or write: fails past the request deadline, and
    /// otherwise makes sure the connection is polled again at it (bytes that
    /// keep arriving, PINGs for one, do not move it).
    fn check_requests(&mut self, cx: &mut Context<'_>) -> Result<(), io::Error> {
        let Some((deadline, reason)) = self.activity.deadline() else { return Ok(()) };
        if Instant::now() >= deadline {
            return Err(self.closed(reason, io::ErrorKind::TimedOut));
        }
        if self.request_timer.deadline() != deadline {
            self.request_timer.as_mut().reset(deadline);
        }
        // Pending (the deadline is ahead): the waker is registered.
        let _ = self.request_timer.as_mut().poll(cx);
        Ok(())
    }

    fn progress(&mut self) {
        let next = Instant::now() + self.activity.gate.limits.byte_idle;
        self.byte_timer.as_mut().reset(next);
    }

    /// Called when the inner stream is pending: fails once idle too long.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.byte_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.closed("idle", io::ErrorKind::TimedOut)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Err(e) = this.check_requests(cx) {
            return Poll::Ready(Err(e));
        }
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progress();
                Poll::Ready(r)
            }
            Poll::Pending => this.check_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                this.progress();
                Poll::Ready(r)
            }
            Poll::Pending => this.check_idle(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// --- file descriptors -------------------------------------------------------------------------

/// Raises the soft limit of open files to the hard one (Rust's runtime, unlike
/// Go's, leaves it as inherited: often 1024, under the port's connection cap)
/// and returns the limit in force, or `None` where it cannot be read.
#[cfg(target_os = "linux")]
pub(crate) fn raise_open_files() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one struct rlimit into `lim`, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads one struct rlimit from `raised`, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Some(lim.rlim_max);
        }
        tracing::warn!(soft = lim.rlim_cur, hard = lim.rlim_max, error = %io::Error::last_os_error(), "open files limit not raised");
    }
    Some(lim.rlim_cur)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn raise_open_files() -> Option<u64> {
    None
}

/// The HTTP settings of both protocols (hyper's timer makes the HTTP/1.1
/// header read timeout work).
pub(crate) fn configure(builder: &mut Builder<TokioExecutor>) {
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits::HEADER_READ_TIMEOUT).max_buf_size(limits::HTTP1_MAX_BUF);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits::HTTP2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(limits::HTTP2_MAX_HEADER_LIST_SIZE)
        .initial_stream_window_size(limits::HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(limits::HTTP2_CONNECTION_WINDOW)
        .adaptive_window(false)
        .max_send_buf_size(limits::HTTP2_MAX_SEND_BUF)
        .keep_alive_interval(None);
}

/// The metrics label of an HTTP version.
pub(crate) fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "other",
    }
}

/// The metrics label of a request path: the endpoints of port 8443.
fn endpoint(path: &str) -> &'static str {
    match path {
        "/mutate" => "mutate",
        "/validate" => "validate",
        "/v1/outputs" => "outputs",
        _ => "other",
    }
}

/// Middleware of the TLS application: counts requests by protocol and endpoint.
pub(crate) async fn count_requests(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let labels = ProtocolLabels { protocol: protocol(req.version()), endpoint: endpoint(req.uri().path()) };
    metrics.http_requests.get_or_create(&labels).inc();
    next.run(req).await
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
