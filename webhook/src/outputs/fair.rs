//! Fair shares of the outputs API: one environment cannot starve the others'
//! uploads (DESIGN.md, Trust: "one environment cannot take more than its share
//! of connections, of the outputs API or of the controller's time").
//!
//! Two kinds of capacity, held at different times:
//!
//! - **slots** ([`Gate::slot`]): [`OUTPUTS_CONCURRENCY`] at once, all clients
//!   together, held only while the server makes Kubernetes API calls (the
//!   TokenReview, reading the pod and its Job, publishing). Never while it waits
//!   for the kubelet or reads an upload: those take time the client decides.
//!   A request waits up to [`OUTPUTS_QUEUE_WAIT`] for one (first come, first
//!   served), then gets `503`.
//! - **shares** ([`Gate::share`]): once the TokenReview has named the pod,
//!   at most [`PER_POD`] request in flight per pod and [`PER_NAMESPACE`] per
//!   namespace, held until the answer. More are refused at once with `429` and
//!   `Retry-After` (the agent retries on both), so a flood from one
//!   environment holds a handful of shares and only briefly a slot, whatever
//!   its size.
//!
//! The bookkeeping ([`Shares`]) is pure and holds one entry per pod and per
//! namespace with a request in flight: an entry goes when its count drops to
//! zero, so its size is bounded by the requests in flight, not by the
//! namespaces that ever called.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::runtime::limits::{OUTPUTS_CONCURRENCY, OUTPUTS_QUEUE_WAIT};

/// Requests in flight per pod: an agent sends one at a time; a second one
/// from the same pod is a retry of a request the agent gave up on, or abuse.
pub(crate) const PER_POD: usize = 1;
/// Requests in flight per namespace: an eighth of the slots, and at most half
/// of the outputs bodies' memory budget (4 x 1 MiB of 8 MiB), so at least
/// two other environments always find room.
pub(crate) const PER_NAMESPACE: usize = OUTPUTS_CONCURRENCY / 8;
/// `Retry-After` of a refused share: shares are held for the length of one
/// request, so one soon frees.
pub(crate) const SHARE_RETRY_AFTER_SECS: u64 = 1;
/// `Retry-After` when no slot freed within [`OUTPUTS_QUEUE_WAIT`].
pub(crate) const BUSY_RETRY_AFTER_SECS: u64 = 2;

const _: () = assert!(PER_NAMESPACE >= PER_POD && PER_NAMESPACE < OUTPUTS_CONCURRENCY);

/// Why a request was turned away before any work was done for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// This pod already has a request in flight.
    Pod,
    /// This pod's namespace already has [`PER_NAMESPACE`] requests in flight.
    Namespace,
    /// No slot freed within [`OUTPUTS_QUEUE_WAIT`].
    Busy,
}

impl Refusal {
    /// The `reason` label of `lifecycle_outputs_throttled`.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Pod => "pod_in_flight",
            Refusal::Namespace => "namespace_share",
            Refusal::Busy => "busy",
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            Refusal::Pod | Refusal::Namespace => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub(crate) fn retry_after_secs(self) -> u64 {
        match self {
            Refusal::Pod | Refusal::Namespace => SHARE_RETRY_AFTER_SECS,
            Refusal::Busy => BUSY_RETRY_AFTER_SECS,
        }
    }

    /// What the agent prints; names no pod nor namespace (the caller knows its own).
    pub(crate) fn message(self) -> String {
        match self {
            Refusal::Pod => "this pod already has an output upload in flight: retry once it is answered".to_string(),
            Refusal::Namespace => format!(
                "this environment already has {PER_NAMESPACE} output uploads in flight, its share of the server: retry shortly"
            ),
            Refusal::Busy => {
                format!("the server handles {OUTPUTS_CONCURRENCY} output uploads at once and is busy: retry shortly")
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut r = (self.status(), axum::Json(serde_json::json!({ "message": self.message() }))).into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(self.retry_after_secs()));
        r
    }
}

/// Pure bookkeeping of the requests in flight per pod and per namespace.
#[derive(Debug)]
pub(crate) struct Shares {
    per_namespace: usize,
    inner: Mutex<InFlight>,
}

#[derive(Debug, Default)]
struct InFlight {
    /// Namespace -> requests in flight (never 0: removed instead).
    namespaces: HashMap<String, usize>,
    /// UIDs of the pods with a request in flight ([`PER_POD`] is 1).
    pods: HashSet<String>,
}

impl Shares {
    pub(crate) fn new(per_namespace: usize) -> Arc<Shares> {
        Arc::new(Shares { per_namespace, inner: Mutex::new(InFlight::default()) })
    }

    fn lock(&self) -> MutexGuard<'_, InFlight> {
        // The critical sections cannot panic halfway; a poisoned lock still
        // holds consistent counts.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a share for a request of pod `pod_uid` in `namespace`, or says
    /// why not; the share is given back when the returned value is dropped.
    pub(crate) fn try_take(self: &Arc<Self>, namespace: &str, pod_uid: &str) -> Result<Share, Refusal> {
        let mut s = self.lock();
        if s.pods.contains(pod_uid) {
            return Err(Refusal::Pod);
        }
        let count = s.namespaces.get(namespace).copied().unwrap_or(0);
        if count >= self.per_namespace {
            return Err(Refusal::Namespace);
        }
        s.namespaces.insert(namespace.to_string(), count + 1);
        s.pods.insert(pod_uid.to_string());
        Ok(Share { shares: self.clone(), namespace: namespace.to_string(), pod_uid: pod_uid.to_string() })
    }

    fn give_back(&self, namespace: &str, pod_uid: &str) {
        let mut s = self.lock();
        s.pods.remove(pod_uid);
        if let Some(count) = s.namespaces.get_mut(namespace) {
            *count -= 1;
            if *count == 0 {
                s.namespaces.remove(namespace);
            }
        }
    }

    /// Requests in flight in `namespace`.
    #[cfg(test)]
    pub(crate) fn in_flight(&self, namespace: &str) -> usize {
        self.lock().namespaces.get(namespace).copied().unwrap_or(0)
    }

    /// Entries held (namespaces, pods): both 0 when nothing is in flight.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> (usize, usize) {
        let s = self.lock();
        (s.namespaces.len(), s.pods.len())
    }
}

/// One request's share; given back on drop, whatever way the request ends
/// (answer, error, timeout of the request, client gone).
#[derive(Debug)]
pub(crate) struct Share {
    shares: Arc<Shares>,
    namespace: String,
    pod_uid: String,
}

impl Drop for Share {
    fn drop(&mut self) {
        self.shares.give_back(&self.namespace, &self.pod_uid);
    }
}

/// The outputs API's capacity: global slots for API work, shares per pod and namespace.
#[derive(Debug)]
pub(crate) struct Gate {
    slots: Arc<Semaphore>,
    wait: Duration,
    shares: Arc<Shares>,
}

impl Gate {
    pub(crate) fn new(slots: usize, wait: Duration, per_namespace: usize) -> Gate {
        Gate { slots: Arc::new(Semaphore::new(slots)), wait, shares: Shares::new(per_namespace) }
    }

    /// A slot for API calls, waiting up to the gate's wait (first come, first served).
    pub(crate) async fn slot(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refusal::Busy),
        }
    }

    /// This request's share of its pod and namespace, at once or never.
    pub(crate) fn share(&self, namespace: &str, pod_uid: &str) -> Result<Share, Refusal> {
        self.shares.try_take(namespace, pod_uid)
    }

    /// Slots free now.
    #[cfg(test)]
    pub(crate) fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }
}

impl Default for Gate {
    /// The server's gate, with the limits of `crate::runtime::limits`; one per server (in its state).
    fn default() -> Self {
        Gate::new(OUTPUTS_CONCURRENCY, OUTPUTS_QUEUE_WAIT, PER_NAMESPACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_pod() {
        let s = Shares::new(4);
        let first = s.try_take("env-a", "pod-1").unwrap();
        assert_eq!(s.try_take("env-a", "pod-1").unwrap_err(), Refusal::Pod);
        // Another pod of the same namespace is not affected.
        let other = s.try_take("env-a", "pod-2").unwrap();
        drop(first);
        let again = s.try_take("env-a", "pod-1").unwrap();
        drop((other, again));
        assert_eq!(s.entries(), (0, 0));
    }

    #[test]
    fn a_namespace_gets_its_share_and_no_more() {
        let s = Shares::new(3);
        let held: Vec<Share> = (0..3).map(|i| s.try_take("flood", &format!("p{i}")).unwrap()).collect();
        assert_eq!(s.in_flight("flood"), 3);
        assert_eq!(s.try_take("flood", "p3").unwrap_err(), Refusal::Namespace);
        // Other namespaces still get theirs.
        let victim = s.try_take("victim", "v0").unwrap();
        assert_eq!(s.in_flight("victim"), 1);
        // A refusal takes nothing.
        assert_eq!(s.in_flight("flood"), 3);
        drop(held);
        assert_eq!(s.in_flight("flood"), 0);
        let _later = s.try_take("flood", "p3").unwrap();
        drop(victim);
        assert_eq!(s.entries(), (1, 1));
    }

    #[test]
    fn the_pod_check_comes_first_and_refusals_leave_no_entry() {
        let s = Shares::new(1);
        let _a = s.try_take("ns", "pod").unwrap();
        // The same pod: refused as a pod, even though the namespace is full too.
        assert_eq!(s.try_take("ns", "pod").unwrap_err(), Refusal::Pod);
        assert_eq!(s.try_take("ns", "pod-b").unwrap_err(), Refusal::Namespace);
        assert_eq!(s.entries(), (1, 1));
    }

    #[test]
    fn entries_stay_bounded_by_the_requests_in_flight() {
        let s = Shares::new(2);
        for round in 0..1000 {
            let a = s.try_take(&format!("ns-{round}"), &format!("uid-{round}")).unwrap();
            let b = s.try_take(&format!("ns-{round}"), &format!("uid-{round}-b")).unwrap();
            assert_eq!(s.entries(), (1, 2));
            drop((a, b));
        }
        assert_eq!(s.entries(), (0, 0));
    }

    #[test]
    fn refusals_tell_the_agent_to_retry() {
        for r in [Refusal::Pod, Refusal::Namespace, Refusal::Busy] {
            let resp = r.into_response();
            // The agent retries 429 and 5xx, after Retry-After seconds.
            assert!(matches!(resp.status().as_u16(), 429 | 503), "{r:?}");
            let after: u64 = resp.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&after), "{r:?}: {after}");
        }
        assert_eq!(Refusal::Pod.reason(), "pod_in_flight");
        assert_eq!(Refusal::Namespace.reason(), "namespace_share");
        assert_eq!(Refusal::Busy.reason(), "busy");
    }

    #[tokio::test]
    async fn slots_wait_then_refuse_and_come_back() {
        let g = Gate::new(1, Duration::from_millis(50), 4);
        let held = g.slot().await.unwrap();
        assert_eq!(g.free_slots(), 0);
        assert_eq!(g.slot().await.unwrap_err(), Refusal::Busy);
        let g = Gate { wait: Duration::from_secs(5), ..g };
        // A waiter gets the slot as soon as it is given back.
        let release = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(held);
        };
        let (got, ()) = tokio::join!(g.slot(), release);
        assert!(got.is_ok());
        drop(got);
        assert_eq!(g.free_slots(), 1);
    }

    #[tokio::test]
    async fn a_flood_from_one_namespace_leaves_room_for_others() {
        // 300 concurrent requests from one namespace (all from one pod, or
        // from 300 pods) hold at most PER_NAMESPACE shares; another namespace
        // still gets its share and a slot at once.
        let g = Gate::new(OUTPUTS_CONCURRENCY, Duration::from_millis(10), PER_NAMESPACE);
        let mut held = Vec::new();
        let (mut by_pod, mut by_ns) = (0, 0);
        for i in 0..300 {
            match g.share("flood", if i % 2 == 0 { "one-pod".to_string() } else { format!("pod-{i}") }.as_str()) {
                Ok(s) => held.push(s),
                Err(Refusal::Pod) => by_pod += 1,
                Err(Refusal::Namespace) => by_ns += 1,
                Err(Refusal::Busy) => unreachable!(),
            }
        }
        assert_eq!(held.len(), PER_NAMESPACE);
        assert_eq!(by_pod + by_ns, 300 - PER_NAMESPACE);
        let _victim = g.share("victim", "v").unwrap();
        assert!(g.slot().await.is_ok());
    }
}
