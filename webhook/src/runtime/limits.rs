//! What a client can make the server hold: connections, request bodies, time.
//!
//! Port 8443 serves admission (`/mutate`, `/validate`; called by the API
//! server, but reachable by any client that reaches the pod) and the outputs
//! API (`/v1/outputs`; called by agents). Both share one listener (the port is
//! part of the contract), so they are isolated per request instead:
//!
//! - **connections**: at most [`MAX_CONNECTIONS`] at once, at most
//!   [`MAX_CONNECTIONS_PER_SOURCE`] from one address (fewer while the port is
//!   busy), more are refused at accept; each with a TLS handshake timeout, a
//!   deadline for its first request ([`FIRST_REQUEST_TIMEOUT`]), a header read
//!   timeout (HTTP/1.1) and two idle timeouts (no byte in either direction, or
//!   no request in flight: PINGs and trickled bytes keep nothing open), so
//!   slow or silent clients give their connection back; at most
//!   [`MAX_HTTP2_CONNECTIONS`] speak HTTP/2, each with at most
//!   [`HTTP2_MAX_CONCURRENT_STREAMS`] requests at once, each with at most
//!   [`HTTP2_MAX_HEADER_LIST_SIZE`] of headers, and at most
//!   [`HTTP2_CONNECTION_WINDOW`] of unread body bytes per connection (see
//!   `crate::runtime::listener`); the admin port has its own, smaller caps;
//! - **bodies**: each endpoint has its own size limit ([`ADMISSION_MAX_BODY`],
//!   [`OUTPUTS_MAX_BODY`]), its own deadline to receive the whole body, and its
//!   own budget of body bytes held in memory at once ([`Pool`]); a flood on one
//!   endpoint exhausts only that endpoint's budget;
//! - **outputs requests**: at most [`OUTPUTS_CONCURRENCY`] making API calls
//!   at once, and fair shares per pod and per namespace
//!   (`crate::outputs::fair`); the agent's token is checked before its body is
//!   read, so only a running captured pod can make the server hold an upload.
//!
//! Worst case memory held by bodies: the two budgets, [`ADMISSION_BUDGET`] +
//! [`OUTPUTS_BUDGET`], whatever the clients do.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use lifecycle_contract::names::OUTPUT_FILE_MAX_BYTES;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Open connections on the TLS port at once; more are refused at accept
/// (lowered at start when the open-file limit cannot hold them, see
/// `crate::runtime::listener::ConnLimits::within_open_files`).
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// Open connections from one source address at once. The API server comes
/// from one address (per API server instance) and, under a burst of pod
/// creations, opens one HTTP/1.1 connection per concurrent call: this leaves it
/// room, while one flooding pod takes a quarter of the port at most.
pub(crate) const MAX_CONNECTIONS_PER_SOURCE: usize = 256;
/// Once this many connections are open, the port is busy: a source that
/// already holds [`BUSY_CONNECTIONS_PER_SOURCE`] gets no new one, so a few
/// flooding sources leave room for everyone else.
pub(crate) const BUSY_CONNECTIONS: usize = 512;
/// A source's share while the port is busy (see [`BUSY_CONNECTIONS`]).
pub(crate) const BUSY_CONNECTIONS_PER_SOURCE: usize = 32;
/// Connections that speak HTTP/2 at once (neither the API server nor the
/// agents do): each may hold [`HTTP2_CONNECTION_WINDOW`] of unread body and
/// [`HTTP2_MAX_CONCURRENT_STREAMS`] header lists, so their number is bounded
/// apart. A connection over the cap gets 503 on its first request, then is closed.
pub(crate) const MAX_HTTP2_CONNECTIONS: usize = 64;
/// File descriptors kept for everything but the TLS port's connections (the
/// admin port's, API clients and watches, files).
pub(crate) const FD_RESERVE: u64 = 256;
/// Time for a client to complete the TLS handshake.
pub(crate) const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time from accept to the first request's headers, TLS handshake and the
/// protocol preface included: a client that trickles bytes (or HTTP/2 PINGs)
/// without asking anything is closed.
pub(crate) const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a client to send a request's headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest read buffer of an HTTP/1.1 connection (request line and headers
/// must fit; the API server's and the agents' are under 2 KiB). hyper's least is 8 KiB.
pub(crate) const HTTP1_MAX_BUF: usize = 16 * 1024;
/// HTTP/2: requests in flight on one connection (announced in SETTINGS; Go's
/// client, for one, opens another connection when a burst needs more).
pub(crate) const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 16;
/// HTTP/2: largest header list of a request, decoded (the API server's calls
/// carry well under 1 KiB, an agent's adds its ~1 KiB token).
pub(crate) const HTTP2_MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// HTTP/2: body bytes a client may send on one stream before the server reads
/// them (the protocol's default; an ~8 KiB AdmissionReview fits at once).
pub(crate) const HTTP2_STREAM_WINDOW: u32 = 64 * 1024;
/// HTTP/2: body bytes a client may send on one connection, all streams
/// together, before the server reads them: what a connection can make the
/// server buffer besides the bodies' budgets. The protocol's initial value
/// (65,535), which a receiver cannot lower.
pub(crate) const HTTP2_CONNECTION_WINDOW: u32 = 64 * 1024;
/// HTTP/2: response bytes queued per stream (answers are small).
pub(crate) const HTTP2_MAX_SEND_BUF: usize = 64 * 1024;
/// A connection that moves no byte, either way, for this long is closed
/// (longer than any handler may take, see [`OUTPUTS_REQUEST_TIMEOUT`]); so is
/// one with no request in flight for this long, whatever bytes it moves
/// (HTTP/2 PINGs keep no connection open).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Admin port (plain HTTP: probes, metrics): open connections at once.
pub(crate) const ADMIN_MAX_CONNECTIONS: usize = 64;
/// Admin port: connections from one source (the kubelet's probes come from
/// the node, a scrape from Prometheus's pod).
pub(crate) const ADMIN_MAX_CONNECTIONS_PER_SOURCE: usize = 16;
/// Admin port: busy from this many open connections; then a source holding
/// [`ADMIN_BUSY_CONNECTIONS_PER_SOURCE`] gets no new one.
pub(crate) const ADMIN_BUSY_CONNECTIONS: usize = 32;
/// Admin port: a source's share while busy (the kubelet probes with at most two at once).
pub(crate) const ADMIN_BUSY_CONNECTIONS_PER_SOURCE: usize = 4;
/// Admin port: a connection lives this long at most (its server, `axum::serve`,
/// has no header timeout; a probe or a scrape takes milliseconds, Prometheus
/// reconnects).
pub(crate) const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// Admin port: a connection that moves no byte for this long is closed.
pub(crate) const ADMIN_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest AdmissionReview: the API server refuses request bodies over 3 MiB,
/// and a review of a CREATE or DELETE carries one object plus a small envelope.
pub(crate) const ADMISSION_MAX_BODY: usize = 3 * 1024 * 1024 + 256 * 1024;
/// Time to receive a whole AdmissionReview (the API server's own webhook
/// timeout is at most 30 s, ours are 5 and 10 s).
pub(crate) const ADMISSION_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Admission bodies held in memory at once, all requests together.
pub(crate) const ADMISSION_BUDGET: usize = 24 * 1024 * 1024;

/// Largest output upload: the output file (the agent sends it raw).
pub(crate) const OUTPUTS_MAX_BODY: usize = OUTPUT_FILE_MAX_BYTES;
/// Time for an authenticated agent to send its file.
pub(crate) const OUTPUTS_BODY_TIMEOUT: Duration = Duration::from_secs(20);
/// Outputs bodies held in memory at once, all requests together.
pub(crate) const OUTPUTS_BUDGET: usize = 8 * 1024 * 1024;
/// Outputs requests making Kubernetes API calls at once; more wait for a slot
/// (never while waiting for the kubelet or reading an upload), see
/// `crate::outputs::fair`.
pub(crate) const OUTPUTS_CONCURRENCY: usize = 32;
/// Time to wait for an outputs slot before answering 503 with Retry-After
/// (the agent retries).
pub(crate) const OUTPUTS_QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Whole outputs request, body and API calls included.
pub(crate) const OUTPUTS_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Budget unit: permits count KiB.
const UNIT: usize = 1024;

fn units(bytes: usize) -> u32 {
    bytes.div_ceil(UNIT).min(u32::MAX as usize) as u32
}

/// One endpoint's limits: the largest body, the time to receive it, and the
/// bytes of bodies all its requests may hold at once.
#[derive(Debug)]
pub(crate) struct Pool {
    pub max_body: usize,
    pub body_timeout: Duration,
    budget: Arc<Semaphore>,
}

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("request body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("request body not received within {}s", .0.as_secs())]
    TimedOut(Duration),
    #[error("could not read the request body: {0}")]
    Read(String),
}

impl BodyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// A body read whole, with the budget it holds until dropped.
#[derive(Debug)]
pub(crate) struct HeldBody {
    pub bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

impl Pool {
    pub(crate) fn new(max_body: usize, body_timeout: Duration, budget: usize) -> Pool {
        assert!(budget >= max_body, "a pool's budget must hold at least one largest body");
        Pool { max_body, body_timeout, budget: Arc::new(Semaphore::new(units(budget) as usize)) }
    }

    /// Bytes of budget free now (metrics, tests).
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.budget.available_permits() * UNIT
    }

    /// Reads `body` whole: refuses a declared or actual size over the limit
    /// before holding it, takes budget for each chunk as it arrives (waiting
    /// while the pool is full), and gives up after the body timeout.
    pub(crate) async fn read(&self, headers: &HeaderMap, body: Body) -> Result<HeldBody, BodyError> {
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
            let len = buf.len() + data.len();
            if len > limit {
                return Err(BodyError::TooLarge { limit });
            }
            // Budget first, for the buffer's whole capacity (growth doubles
            // it, up to the limit): no byte is copied that the budget does not count.
            if len > buf.capacity() {
                let capacity = len.max(buf.capacity().saturating_mul(2).min(limit));
                let need = units(capacity).saturating_sub(held_units);
                if need > 0 {
                    let p = self.budget.clone().acquire_many_owned(need).await.expect("the budget semaphore is never closed");
                    held_units += need;
                    match held.as_mut() {
                        Some(h) => h.merge(p),
                        None => held = Some(p),
                    }
                }
                buf.reserve_exact(capacity - buf.len());
            }
            buf.extend_from_slice(&data);
        }
        Ok(HeldBody { bytes: Bytes::from(buf), _budget: held })
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// The request bodies the server holds, by endpoint; one set per server (in
/// its state), so that servers in one process (tests, the benchmark) never
/// share a budget.
#[derive(Debug)]
pub(crate) struct BodyPools {
    /// The admission endpoints' pool.
    pub(crate) admission: Pool,
    /// The outputs API's pool (its body is read by the handler, after the token check).
    pub(crate) outputs: Pool,
}

impl Default for BodyPools {
    fn default() -> Self {
        BodyPools {
            admission: Pool::new(ADMISSION_MAX_BODY, ADMISSION_BODY_TIMEOUT, ADMISSION_BUDGET),
            outputs: Pool::new(OUTPUTS_MAX_BODY, OUTPUTS_BODY_TIMEOUT, OUTPUTS_BUDGET),
        }
    }
}

fn refuse(status: StatusCode, message: String) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "message": message }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("2"));
    }
    r
}

/// Middleware of the admission routes: the body is read here, within the
/// admission pool's limits, and its budget is held until the answer is made.
pub(crate) async fn admission_layer(State(pools): State<Arc<BodyPools>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let held = match pools.admission.read(&parts.headers, body).await {
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

/// Middleware of the outputs API: each request bounded in time. How many run
/// at once is decided by the handler, once it knows the caller's pod and
/// namespace (`crate::outputs::fair`); the body is read by the handler (after
/// the token check) with [`BodyPools::outputs`].
pub(crate) async fn outputs_layer(req: Request, next: Next) -> Response {
    match tokio::time::timeout(OUTPUTS_REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took longer than {}s: retry", OUTPUTS_REQUEST_TIMEOUT.as_secs()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::io;

    fn pool(max: usize, budget: usize, timeout_ms: u64) -> Pool {
        Pool::new(max, Duration::from_millis(timeout_ms), budget)
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
}
