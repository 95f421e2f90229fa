//! Prometheus metrics, served as text on the admin port.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `Pod`, `Job`, `Namespace` or `other`.
    pub kind: &'static str,
    /// `patched`, `unchanged`, `denied` or `error`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    /// `HTTP/2` or `HTTP/1.1` (the API server and agents speak HTTP/1.1).
    pub protocol: &'static str,
    /// `mutate`, `validate`, `outputs` or `other`.
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// `tls` (8443) or `admin` (9090).
    pub port: &'static str,
    /// Refused: `total`, `per_source`, `busy_source`, `http2`; closed:
    /// `no_first_request`, `no_request`, `idle`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PortLabels {
    pub port: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub event: &'static str,
    /// `started`, `succeeded` or `failed`.
    pub result: &'static str,
}

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub admission_requests: Family<AdmissionLabels, Counter>,
    pub admission_duration: Family<KindLabels, Histogram>,
    /// Requests on the TLS port, by protocol and endpoint.
    pub http_requests: Family<ProtocolLabels, Counter>,
    pub outputs_published: Counter,
    pub outputs_rejected: Family<ReasonLabels, Counter>,
    /// Output uploads turned away for fairness or load (`pod_in_flight`,
    /// `namespace_share`, `busy`), before any work; the agent retries them.
    pub outputs_throttled: Family<ReasonLabels, Counter>,
    /// Succeeded job pods whose agent could not publish (recorded once, by one replica).
    pub outputs_lost: Counter,
    pub runs: Family<RunLabels, Counter>,
    pub leader: Gauge,
    /// notAfter of the serving certificate, Unix seconds (set by the `CertStore`).
    pub certificate_expiry: Gauge,
    /// 1 when `/readyz` answers ok (set at each scrape).
    pub ready: Gauge,
    /// Connections refused at accept (or at their first HTTP/2 request), by port and reason.
    pub connections_refused: Family<ConnectionLabels, Counter>,
    /// Connections the server closed for a deadline, by port and reason.
    pub connections_closed: Family<ConnectionLabels, Counter>,
    /// Connections open now, by port.
    pub connections_open: Family<PortLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lifecycle");
        let admission_requests = Family::<AdmissionLabels, Counter>::default();
        registry.register("admission_requests", "Admission reviews answered", admission_requests.clone());
        // 50µs .. ~100ms: admission should sit at the bottom of this range.
        let admission_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 12))
        });
        registry.register(
            "admission_duration_seconds",
            "Time to answer an admission review, from request body to response",
            admission_duration.clone(),
        );
        let http_requests = Family::<ProtocolLabels, Counter>::default();
        registry.register("http_requests", "Requests on the TLS port, by protocol and endpoint", http_requests.clone());
        let outputs_published = Counter::default();
        registry.register("outputs_published", "Output files published to an environment", outputs_published.clone());
        let outputs_rejected = Family::<ReasonLabels, Counter>::default();
        registry.register("outputs_rejected", "Output submissions refused, by reason", outputs_rejected.clone());
        let outputs_throttled = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "outputs_throttled",
            "Output uploads turned away before any work (pod_in_flight, namespace_share, busy); the agent retries",
            outputs_throttled.clone(),
        );
        let outputs_lost = Counter::default();
        registry.register("outputs_lost", "Succeeded job pods whose agent could not publish their outputs", outputs_lost.clone());
        let runs = Family::<RunLabels, Counter>::default();
        registry.register("runs", "Lifecycle job runs, by event and result", runs.clone());
        let leader = Gauge::default();
        registry.register("controller_leader", "1 when this replica leads the environment controller", leader.clone());
        let certificate_expiry = Gauge::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When the served TLS certificate expires (Unix seconds)",
            certificate_expiry.clone(),
        );
        let ready = Gauge::default();
        registry.register("server_ready", "1 when this replica is ready to answer admissions", ready.clone());
        let connections_refused = Family::<ConnectionLabels, Counter>::default();
        registry.register("connections_refused", "Connections refused, by port and reason", connections_refused.clone());
        let connections_closed = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections closed by a deadline, by port and reason",
            connections_closed.clone(),
        );
        let connections_open = Family::<PortLabels, Gauge>::default();
        registry.register("connections_open", "Connections open, by port", connections_open.clone());
        Metrics {
            registry,
            admission_requests,
            admission_duration,
            http_requests,
            outputs_published,
            outputs_rejected,
            outputs_throttled,
            outputs_lost,
            runs,
            leader,
            certificate_expiry,
            ready,
            connections_refused,
            connections_closed,
            connections_open,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
