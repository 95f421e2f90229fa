//! The TLS listener of port 8443: HTTP/1.1 and HTTP/2 on one port.
//!
//! The server offers HTTP/2 first (ALPN `h2`, see [`crate::tls`]): a client
//! that takes it multiplexes its requests over few connections. The Kubernetes
//! API server does not, for webhooks referenced by a Service: its webhook
//! client offers only `http/1.1` (kubernetes/kubernetes#82090, so that
//! concurrent calls spread over replicas); agents offer no ALPN and speak
//! HTTP/1.1. hyper's automatic builder serves whichever protocol the client
//! speaks, each with its own limits ([`crate::limits`]):
//!
//! - both: the connection cap, the TLS handshake timeout and the idle timeout
//!   (a connection that moves no byte for [`limits::IDLE_TIMEOUT`] is closed),
//!   and per request the same body size, body deadline and memory budget
//!   (the admission and outputs layers run whatever the protocol);
//! - HTTP/1.1: the header read timeout and the read buffer;
//! - HTTP/2: streams per connection, header list size and flow-control
//!   windows, so one connection holds a bounded amount of memory. The server
//!   sends no keep-alive PING of its own: a peer's PINGs (Go's HTTP/2 health
//!   check) keep a connection in use, a silent one is closed by the idle timeout as
//!   over HTTP/1.1.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Version;
use axum::middleware::Next;
use axum::response::Response;
use axum_server::Server;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpStream;

use crate::limits::{self, LimitedAcceptor};
use crate::metrics::{Metrics, ProtocolLabels};
use crate::tls::CertStore;

/// The acceptor chain of the TLS port: `TCP_NODELAY`, the connection cap and
/// idle timeout, then the TLS handshake (bounded in time).
pub type TlsAcceptor = RustlsAcceptor<NoDelay<LimitedAcceptor>>;

/// `server` serving TLS with the current certificate of `certs`, both
/// protocols, and every connection limit.
pub fn tls_server(server: Server<SocketAddr>, certs: &CertStore) -> Server<SocketAddr, TlsAcceptor> {
    let tls = RustlsConfig::from_config(certs.server_config());
    let acceptor = RustlsAcceptor::new(tls)
        .handshake_timeout(limits::TLS_HANDSHAKE_TIMEOUT)
        .acceptor(NoDelay(LimitedAcceptor::new(limits::MAX_CONNECTIONS, limits::IDLE_TIMEOUT)));
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

/// The HTTP settings of both protocols (hyper's timer makes the HTTP/1.1
/// header read timeout work).
pub fn configure(builder: &mut Builder<TokioExecutor>) {
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
pub fn protocol(version: Version) -> &'static str {
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
pub async fn count_requests(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let labels = ProtocolLabels { protocol: protocol(req.version()), endpoint: endpoint(req.uri().path()) };
    metrics.http_requests.get_or_create(&labels).inc();
    next.run(req).await
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
