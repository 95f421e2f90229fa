//! Leader election with a coordination.k8s.io/v1 Lease: one replica runs the
//! controller at a time.
//!
//! The leader renews the Lease every [`RENEW_PERIOD`]; another replica takes it
//! once it has seen it unchanged for [`LEASE_DURATION`]. Expiry is judged on the
//! observer's own monotonic clock (how long the Lease has not changed), never by
//! comparing its `renewTime` with the local wall clock, so clock skew between
//! nodes does not matter. A leader that could not renew for [`RENEW_DEADLINE`]
//! (shorter than the duration) stops by itself, before anyone may take over:
//! every Lease call is bounded by the time left until that deadline
//! ([`call_budget`]), counted from the start of the last successful renewal, so
//! a hung call cannot keep a replica leading after the Lease could have expired.
//! Writes are conditional on the Lease's resourceVersion: of two candidates, one wins.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

pub(crate) const LEASE_DURATION: Duration = Duration::from_secs(15);
pub(crate) const RENEW_PERIOD: Duration = Duration::from_secs(5);
pub(crate) const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often a follower looks at the Lease.
pub(crate) const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// Longest Lease call of a follower (it holds nothing, so only to not hang).
pub(crate) const FOLLOWER_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait to release the Lease at shutdown.
pub(crate) const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// The pure timing rule of a leader: how long its next Lease call may take,
/// given the time since its last successful renewal *started* (the Lease was
/// written no earlier than that, so others see it expire no earlier than that
/// plus [`LEASE_DURATION`]). `None`: leadership must be dropped now.
pub(crate) fn call_budget(since_last_renewal: Duration) -> Option<Duration> {
    RENEW_DEADLINE.checked_sub(since_last_renewal).filter(|left| !left.is_zero())
}

/// What a replica should do with the Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// It holds it: renew.
    Renew,
    /// Free or expired: take it.
    Take,
    /// Another replica holds it and renews it: wait.
    Wait,
}

/// The pure rule. `unchanged_for`: how long this replica has seen the Lease
/// without any change; `duration`: the Lease's `leaseDurationSeconds` (absent:
/// [`LEASE_DURATION`]).
pub(crate) fn decide(holder: Option<&str>, me: &str, unchanged_for: Duration, duration: Option<Duration>) -> Decision {
    match holder {
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::Take,
        Some(_) if unchanged_for >= duration.unwrap_or(LEASE_DURATION) => Decision::Take,
        Some(_) => Decision::Wait,
    }
}

/// The Lease spec written by `me`: renewed now, `transitions` bumped when the
/// holder changes.
pub(crate) fn claimed(current: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseSpec {
    let same_holder = current.and_then(|s| s.holder_identity.as_deref()) == Some(me);
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time: if same_holder {
            current.and_then(|s| s.acquire_time.clone()).or(Some(MicroTime(now)))
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if same_holder || current.and_then(|s| s.holder_identity.as_ref()).is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..Default::default()
    }
}

/// One replica's view of the Lease.
pub(crate) struct Elector {
    api: Api<Lease>,
    me: String,
    /// The Lease's resourceVersion when last seen change, and when.
    seen: Option<(String, Instant)>,
    /// When the last successful take or renewal started.
    renewed: Option<Instant>,
}

impl Elector {
    pub(crate) fn new(client: kube::Client, namespace: &str, me: &str) -> Elector {
        Elector { api: Api::namespaced(client, namespace), me: me.to_string(), seen: None, renewed: None }
    }

    /// Takes or renews the Lease if this replica may; `Ok(true)` when it leads.
    pub(crate) async fn try_lead(&mut self) -> Result<bool, kube::Error> {
        let lease = match self.api.get_opt(super::keys::LEASE_NAME).await? {
            Some(l) => l,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(super::keys::LEASE_NAME.into()), ..Default::default() },
                    spec: Some(claimed(None, &self.me, Timestamp::now())),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                };
            }
        };
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let now = Instant::now();
        let unchanged_for = match &self.seen {
            Some((seen_rv, at)) if *seen_rv == rv => now.duration_since(*at),
            _ => {
                self.seen = Some((rv.clone(), now));
                Duration::ZERO
            }
        };
        let spec = lease.spec.as_ref();
        let holder = spec.and_then(|s| s.holder_identity.as_deref());
        let duration = spec.and_then(|s| s.lease_duration_seconds).map(|s| Duration::from_secs(s.max(0) as u64));
        match decide(holder, &self.me, unchanged_for, duration) {
            Decision::Wait => Ok(false),
            Decision::Renew | Decision::Take => {
                let mut next = lease.clone();
                next.spec = Some(claimed(spec, &self.me, Timestamp::now()));
                // `replace` carries the resourceVersion read: a concurrent writer makes it fail.
                match self.api.replace(super::keys::LEASE_NAME, &PostParams::default(), &next).await {
                    Ok(written) => {
                        self.seen = written.metadata.resource_version.map(|rv| (rv, Instant::now()));
                        Ok(true)
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Gives the Lease up (graceful shutdown): the other replica takes it at once.
    pub(crate) async fn release(&mut self) {
        if tokio::time::timeout(RELEASE_TIMEOUT, self.release_now()).await.is_err() {
            tracing::warn!("could not release the controller lease in time; it expires by itself");
        }
    }

    async fn release_now(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(super::keys::LEASE_NAME).await else { return };
        if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(self.me.as_str()) {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
        }
        match self.api.replace(super::keys::LEASE_NAME, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!("controller lease released"),
            Err(e) => tracing::warn!(error = %e, "could not release the controller lease"),
        }
    }

    /// Waits until this replica leads.
    pub(crate) async fn acquire(&mut self) {
        loop {
            let started = Instant::now();
            match tokio::time::timeout(FOLLOWER_CALL_TIMEOUT, self.try_lead()).await {
                Ok(Ok(true)) => {
                    self.renewed = Some(started);
                    return;
                }
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "reading the controller lease"),
                Err(_) => tracing::warn!(timeout = ?FOLLOWER_CALL_TIMEOUT, "reading the controller lease timed out"),
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    /// Renews while leading; returns when leadership is lost (another holder,
    /// or no successful renewal for [`RENEW_DEADLINE`]).
    pub(crate) async fn keep(&mut self) {
        let mut pause = RENEW_PERIOD;
        loop {
            tokio::time::sleep(pause).await;
            let renewed = *self.renewed.get_or_insert_with(Instant::now);
            let Some(budget) = call_budget(renewed.elapsed()) else {
                tracing::warn!(deadline = ?RENEW_DEADLINE, "controller lease not renewed in time: giving up leadership");
                return;
            };
            let started = Instant::now();
            match tokio::time::timeout(budget, self.try_lead()).await {
                Ok(Ok(true)) => {
                    self.renewed = Some(started);
                    pause = RENEW_PERIOD;
                }
                Ok(Ok(false)) => {
                    tracing::warn!("controller lease taken by another replica");
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "renewing the controller lease");
                    pause = RETRY_PERIOD;
                }
                Err(_) => {
                    tracing::warn!(timeout = ?budget, "renewing the controller lease timed out");
                    pause = RETRY_PERIOD;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn holder_renews() {
        assert_eq!(decide(Some("a"), "a", S(100), None), Decision::Renew);
        assert_eq!(decide(Some("a"), "a", S(0), None), Decision::Renew);
    }

    #[test]
    fn free_lease_is_taken() {
        assert_eq!(decide(None, "a", S(0), None), Decision::Take);
        assert_eq!(decide(Some(""), "a", S(0), None), Decision::Take);
    }

    #[test]
    fn others_lease_is_taken_only_once_expired() {
        assert_eq!(decide(Some("b"), "a", S(0), None), Decision::Wait);
        assert_eq!(decide(Some("b"), "a", S(14), None), Decision::Wait);
        assert_eq!(decide(Some("b"), "a", S(15), None), Decision::Take);
        assert_eq!(decide(Some("b"), "a", S(30), Some(S(60))), Decision::Wait);
        assert_eq!(decide(Some("b"), "a", S(2), Some(S(1))), Decision::Take);
    }

    #[test]
    fn renew_deadline_is_shorter_than_the_lease() {
        const { assert!(RENEW_DEADLINE.as_secs() < LEASE_DURATION.as_secs()) };
        const { assert!(RENEW_PERIOD.as_secs() * 2 <= RENEW_DEADLINE.as_secs()) };
    }

    #[test]
    fn lease_calls_are_bounded_by_the_renew_deadline() {
        assert_eq!(call_budget(S(0)), Some(RENEW_DEADLINE));
        assert_eq!(call_budget(RENEW_PERIOD), Some(RENEW_DEADLINE - RENEW_PERIOD));
        assert_eq!(call_budget(Duration::from_millis(9_500)), Some(Duration::from_millis(500)));
        assert_eq!(call_budget(RENEW_DEADLINE), None);
        assert_eq!(call_budget(S(60)), None);
        // Whatever a call does, it ends (and leadership is dropped) before the
        // Lease can expire for the other replica.
        for since_ms in (0..=12_000).step_by(250) {
            let since = Duration::from_millis(since_ms);
            if let Some(b) = call_budget(since) {
                assert!(since + b <= RENEW_DEADLINE && RENEW_DEADLINE < LEASE_DURATION);
            }
        }
    }

    #[test]
    fn claiming_counts_transitions() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(1_005).unwrap();
        let first = claimed(None, "a", t0);
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        assert_eq!(first.lease_transitions, Some(0));
        assert_eq!(first.lease_duration_seconds, Some(15));
        let renewed = claimed(Some(&first), "a", t1);
        assert_eq!(renewed.lease_transitions, Some(0));
        assert_eq!(renewed.acquire_time, Some(MicroTime(t0)));
        assert_eq!(renewed.renew_time, Some(MicroTime(t1)));
        let taken = claimed(Some(&renewed), "b", t1);
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(t1)));
        let released = LeaseSpec { holder_identity: None, ..taken.clone() };
        assert_eq!(claimed(Some(&released), "a", t1).lease_transitions, Some(1));
    }
}
