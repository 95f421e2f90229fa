//! What a client can make the server hold: connections, request bodies, time.
//!
//! Port 8443 serves admission (`/mutate`, `/validate`; called by the API
//! server, but reachable by any client that reaches the pod) and the outputs
//! API (`/v1/outputs`; called by agents). Both share one listener (the port is
//! part of the contract), so they are isolated per request instead:
//!
//! - **connections**: at most [`MAX_CONNECTIONS`] at once (more are closed at
//!   accept), each with a TLS handshake timeout, a header read timeout and an
//!   idle timeout (no byte in either direction), so slow or silent clients
//!   give their connection back;
//! - **bodies**: each endpoint has its own size limit ([`ADMISSION_MAX_BODY`],
//!   [`OUTPUTS_MAX_BODY`]), its own deadline to receive the whole body, and its
//!   own budget of body bytes held in memory at once ([`Pool`]); a flood on one
//!   endpoint exhausts only that endpoint's budget;
//! - **outputs requests**: at most [`OUTPUTS_CONCURRENCY`] at once (each one
//!   makes API calls); the agent's token is checked before its body is read,
//!   so only a running captured pod can make the server hold an upload.
//!
//! Worst case memory held by bodies: the two budgets, [`ADMISSION_BUDGET`] +
//! [`OUTPUTS_BUDGET`], whatever the clients do.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use http_body_util::BodyExt;
use lifecycle_contract::names::OUTPUT_FILE_MAX_BYTES;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Open connections on the TLS port at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// Time for a client to complete the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a client to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest read buffer of a connection (request line and headers must fit).
pub const HTTP1_MAX_BUF: usize = 64 * 1024;
/// A connection that moves no byte, either way, for this long is closed
/// (longer than any handler may take, see [`OUTPUTS_REQUEST_TIMEOUT`]).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Largest AdmissionReview: the API server refuses request bodies over 3 MiB,
/// and a review of a CREATE or DELETE carries one object plus a small envelope.
pub const ADMISSION_MAX_BODY: usize = 3 * 1024 * 1024 + 256 * 1024;
/// Time to receive a whole AdmissionReview (the API server's own webhook
/// timeout is at most 30 s, ours are 5 and 10 s).
pub const ADMISSION_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Admission bodies held in memory at once, all requests together.
pub const ADMISSION_BUDGET: usize = 24 * 1024 * 1024;

/// Largest output upload: the output file (the agent sends it raw).
pub const OUTPUTS_MAX_BODY: usize = OUTPUT_FILE_MAX_BYTES;
/// Time for an authenticated agent to send its file.
pub const OUTPUTS_BODY_TIMEOUT: Duration = Duration::from_secs(20);
/// Outputs bodies held in memory at once, all requests together.
pub const OUTPUTS_BUDGET: usize = 8 * 1024 * 1024;
/// Outputs requests handled at once; more are answered 503 with Retry-After
/// (the agent retries).
pub const OUTPUTS_CONCURRENCY: usize = 32;
/// Time to wait for an outputs slot before answering 503.
pub const OUTPUTS_QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Whole outputs request, body and API calls included.
pub const OUTPUTS_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Budget unit: permits count KiB.
const UNIT: usize = 1024;

fn units(bytes: usize) -> u32 {
    bytes.div_ceil(UNIT).min(u32::MAX as usize) as u32
}

/// One endpoint's limits: the largest body, the time to receive it, and the
/// bytes of bodies all its requests may hold at once.
#[derive(Debug)]
pub struct Pool {
    pub name: &'static str,
    pub max_body: usize,
    pub body_timeout: Duration,
    budget: Arc<Semaphore>,
}

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body not received within {}s", .0.as_secs())]
    TimedOut(Duration),
    #[error("could not read the request body: {0}")]
    Read(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A body read whole, with the budget it holds until dropped.
#[derive(Debug)]
pub struct HeldBody {
    pub bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Pool {
    pub fn new(name: &'static str, max_body: usize, body_timeout: Duration, budget: usize) -> Pool {
        assert!(budget >= max_body, "a pool's budget must hold at least one largest body");
        Pool { name, max_body, body_timeout, budget: Arc::new(Semaphore::new(units(budget) as usize)) }
    }

    /// Bytes of budget free now (metrics, tests).
    pub fn available(&self) -> usize {
        self.budget.available_permits() * UNIT
    }

    /// Reads `body` whole: refuses a declared or actual size over the limit
    /// before holding it, takes budget for each chunk as it arrives (waiting
    /// while the pool is full), and gives up after the body timeout.
    pub async fn read(&self, headers: &HeaderMap, body: Body) -> Result<HeldBody, BodyError> {
        let limit = self.max_body;
        if declared_length(headers).is_some_and(|n| n > limit as u64) {
            return Err(BodyError::TooLarge { limit });
        }
        match tokio::time::timeout(self.body_timeout, self.collect(body)).await {
            Ok(r) => r,
            Err(_) => Err(BodyError::TimedOut(self.body_timeout)),
        }
    }

    async fn collect(&self, mut body: Body) -> Result<HeldBody, BodyError> {
        let limit = self.max_body;
        let mut held: Option<OwnedSemaphorePermit> = None;
        let mut held_units = 0u32;
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
            let Ok(data) = frame.into_data() else { continue };
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            buf.extend_from_slice(&data);
            let need = units(buf.len()).saturating_sub(held_units);
            if need > 0 {
                let p = self.budget.clone().acquire_many_owned(need).await.expect("the budget semaphore is never closed");
                held_units += need;
                match held.as_mut() {
                    Some(h) => h.merge(p),
                    None => held = Some(p),
                }
            }
        }
        Ok(HeldBody { bytes: Bytes::from(buf), _budget: held })
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// The admission endpoints' pool.
pub static ADMISSION: LazyLock<Pool> =
    LazyLock::new(|| Pool::new("admission", ADMISSION_MAX_BODY, ADMISSION_BODY_TIMEOUT, ADMISSION_BUDGET));
/// The outputs API's pool (its body is read by the handler, after the token check).
pub static OUTPUTS: LazyLock<Pool> =
    LazyLock::new(|| Pool::new("outputs", OUTPUTS_MAX_BODY, OUTPUTS_BODY_TIMEOUT, OUTPUTS_BUDGET));
/// Outputs requests in flight.
static OUTPUTS_SLOTS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(OUTPUTS_CONCURRENCY)));

fn refuse(status: StatusCode, message: String) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "message": message }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("2"));
    }
    r
}

/// Middleware of the admission routes: the body is read here, within the
/// admission pool's limits, and its budget is held until the answer is made.
pub async fn admission_layer(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let held = match ADMISSION.read(&parts.headers, body).await {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(path = %parts.uri.path(), error = %e, "admission request refused");
            return refuse(e.status(), e.to_string());
        }
    };
    let req = Request::from_parts(parts, Body::from(held.bytes.clone()));
    let response = next.run(req).await;
    drop(held);
    response
}

/// Middleware of the outputs API: a bounded number at once, each bounded in
/// time. The body is read by the handler (after the token check) with [`OUTPUTS`].
pub async fn outputs_layer(req: Request, next: Next) -> Response {
    let slot = match tokio::time::timeout(OUTPUTS_QUEUE_WAIT, OUTPUTS_SLOTS.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the server handles {OUTPUTS_CONCURRENCY} output uploads at once and is busy: retry shortly"),
            );
        }
    };
    let response = match tokio::time::timeout(OUTPUTS_REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took longer than {}s: retry", OUTPUTS_REQUEST_TIMEOUT.as_secs()),
        ),
    };
    drop(slot);
    response
}

/// Admits connections while fewer than [`MAX_CONNECTIONS`] are open (more
/// are closed at accept); each connection is closed after [`IDLE_TIMEOUT`]
/// without traffic and gives its slot back when it ends. It sits under the TLS
/// acceptor, so the handshake counts as traffic and is bounded too.
#[derive(Clone)]
pub struct LimitedAcceptor {
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl LimitedAcceptor {
    pub fn new(max_connections: usize, idle: Duration) -> Self {
        LimitedAcceptor { slots: Arc::new(Semaphore::new(max_connections)), idle }
    }

    /// Connection slots free now.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }
}

impl<I, S> Accept<I, S> for LimitedAcceptor {
    type Stream = IdleTimeout<I>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            tracing::warn!(limit = MAX_CONNECTIONS, "connection refused: too many open connections");
            return std::future::ready(Err(io::Error::other("too many open connections")));
        };
        std::future::ready(Ok((IdleTimeout::new(stream, self.idle, permit), service)))
    }
}

/// A stream that fails with `TimedOut` once no byte moved for `idle`, and
/// holds its connection slot until dropped.
pub struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, idle: Duration, slot: OwnedSemaphorePermit) -> Self {
        IdleTimeout { inner, idle, timer: Box::pin(tokio::time::sleep(idle)), _slot: slot }
    }

    fn progress(&mut self) {
        self.timer.as_mut().reset(Instant::now() + self.idle);
    }

    /// Called when the inner stream is pending: errors once idle too long.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progress();
                Poll::Ready(r)
            }
            Poll::Pending => this.check_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pool(max: usize, budget: usize, timeout_ms: u64) -> Pool {
        Pool::new("test", max, Duration::from_millis(timeout_ms), budget)
    }

    fn with_length(n: usize) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, n.to_string().parse().unwrap());
        h
    }

    #[test]
    fn limits_fit_their_endpoints() {
        const { assert!(ADMISSION_MAX_BODY >= 3 * 1024 * 1024) };
        const { assert!(ADMISSION_MAX_BODY <= 4 * 1024 * 1024) };
        const { assert!(OUTPUTS_MAX_BODY == OUTPUT_FILE_MAX_BYTES) };
        // A handler never outlives the idle timeout of its connection.
        const { assert!(OUTPUTS_REQUEST_TIMEOUT.as_secs() < IDLE_TIMEOUT.as_secs()) };
        const { assert!(OUTPUTS_BODY_TIMEOUT.as_secs() < OUTPUTS_REQUEST_TIMEOUT.as_secs()) };
    }

    #[tokio::test]
    async fn declared_or_actual_oversize_is_refused() {
        let p = pool(1000, 4096, 1000);
        let e = p.read(&with_length(1001), Body::empty()).await.err().unwrap();
        assert_eq!(e, BodyError::TooLarge { limit: 1000 });
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let e = p.read(&HeaderMap::new(), Body::from(vec![b'x'; 1001])).await.err().unwrap();
        assert_eq!(e, BodyError::TooLarge { limit: 1000 });
        let ok = p.read(&with_length(1000), Body::from(vec![b'x'; 1000])).await.unwrap();
        assert_eq!(ok.bytes.len(), 1000);
        // Budget is freed when the body is dropped, also after a refusal.
        drop(ok);
        assert_eq!(p.available(), 4096);
    }

    #[tokio::test]
    async fn a_slow_body_times_out() {
        let p = pool(1000, 4096, 100);
        let stream =
            futures::stream::once(async { Ok::<_, io::Error>(Bytes::from_static(b"{")) }).chain(futures::stream::pending());
        let e = p.read(&HeaderMap::new(), Body::from_stream(stream)).await.err().unwrap();
        assert_eq!(e, BodyError::TimedOut(Duration::from_millis(100)));
        assert_eq!(e.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(p.available(), 4096);
    }

    #[tokio::test]
    async fn bodies_wait_for_budget_and_time_out_if_none_frees() {
        let p = pool(2048, 2048, 100);
        let first = p.read(&HeaderMap::new(), Body::from(vec![b'x'; 2048])).await.unwrap();
        assert_eq!(p.available(), 0);
        // The pool is full: the second waits, then gives up.
        let e = p.read(&HeaderMap::new(), Body::from(vec![b'y'; 10])).await.err().unwrap();
        assert!(matches!(e, BodyError::TimedOut(_)));
        drop(first);
        let second = p.read(&HeaderMap::new(), Body::from(vec![b'y'; 10])).await.unwrap();
        assert_eq!(&second.bytes[..], &[b'y'; 10][..]);
        assert_eq!(p.available(), 1024);
    }

    #[test]
    fn connections_over_the_limit_are_refused() {
        let acc = LimitedAcceptor::new(1, IDLE_TIMEOUT);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        rt.block_on(async {
            let first = acc.accept((), ()).await.unwrap();
            assert!(acc.accept((), ()).await.is_err());
            drop(first);
            assert!(acc.accept((), ()).await.is_ok());
        });
    }

    #[tokio::test]
    async fn idle_connections_are_closed_and_give_their_slot_back() {
        let slots = Arc::new(Semaphore::new(1));
        let (client, server) = tokio::io::duplex(64);
        let mut s = IdleTimeout::new(server, Duration::from_millis(100), slots.clone().try_acquire_owned().unwrap());
        assert_eq!(slots.available_permits(), 0);
        let mut client = client;
        client.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await.unwrap();
        // Silence: the read fails once the idle timeout passed.
        let e = s.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(s);
        assert_eq!(slots.available_permits(), 1);
    }
}

#[cfg(test)]
mod server_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A slow client against a real server with the same HTTP settings: it
    /// is cut off once its headers take longer than the header timeout.
    #[tokio::test]
    async fn slow_headers_are_cut_off() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", axum::routing::post(|| async { "ok" }));
        let mut server = axum_server::from_tcp(listener).unwrap().acceptor(LimitedAcceptor::new(8, Duration::from_secs(30)));
        server
            .http_builder()
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_millis(500))
            .max_buf_size(HTTP1_MAX_BUF);
        tokio::spawn(server.serve(app.into_make_service()));

        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let mut cut = false;
        for b in b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if c.write_all(&[*b]).await.is_err() {
                cut = true;
                break;
            }
            let mut buf = [0u8; 64];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(100), c.read(&mut buf)).await {
                cut = true;
                break;
            }
        }
        assert!(cut, "still open after {:?}", started.elapsed());
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
