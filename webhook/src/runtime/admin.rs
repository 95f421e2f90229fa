//! Plain HTTP admin port: liveness, readiness and metrics.
//!
//! The kubelet's probes reach it at the pod's address, a Prometheus scrape at
//! the pod's address too (the Service publishes only 8443; the chart adds the
//! metrics port for a ServiceMonitor). Its connections have caps and a
//! lifetime of their own ([`AdminListener`]): a client that fills or holds
//! them cannot starve the probes from another address.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::runtime::listener::{ConnLimits, ConnectionGate, Guarded};
use crate::runtime::metrics::Metrics;

/// The admin port's listener: refuses connections over the caps of
/// [`ConnLimits::ADMIN`] (closed at once) and bounds each in time.
pub(crate) struct AdminListener {
    inner: tokio::net::TcpListener,
    gate: ConnectionGate,
}

impl AdminListener {
    pub(crate) fn new(inner: tokio::net::TcpListener, metrics: &Metrics) -> Self {
        AdminListener { inner, gate: ConnectionGate::new("admin", ConnLimits::ADMIN, metrics) }
    }
}

impl axum::serve::Listener for AdminListener {
    type Io = Guarded<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            // Refused: dropped, so closed; the gate counts and logs it.
            if let Ok((stream, _)) = self.gate.guard(stream, addr.ip()) {
                return (stream, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Set once the server can answer admissions correctly (certificate loaded, indexes synced).
#[derive(Clone, Default, Debug)]
pub(crate) struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub(crate) fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub(crate) fn set_not_ready(&self) {
        self.0.store(false, Ordering::Release);
    }
    pub(crate) fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: Readiness,
}

pub(crate) fn router(metrics: Arc<Metrics>, ready: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { metrics, ready })
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: waiting for the serving certificate and the job index")
    }
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    s.metrics.ready.set(i64::from(s.ready.is_ready()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.encode())
}
