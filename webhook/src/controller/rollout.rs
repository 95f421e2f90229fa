//! Rollouts: a container reads its environment variables when it starts, so a
//! workload whose pods started before its environment's outputs changed runs
//! with stale ones. The controller rolls such a Deployment, StatefulSet or
//! DaemonSet the way `kubectl rollout restart` does: it writes the pod
//! template annotation `lifecycle-jobs.dev/outputs-hash`, a fingerprint of the
//! variables the workload reads (its environment's injected sources).
//!
//! A workload whose pods all start after now does not need a roll: a pod
//! gated during a start (or made by a scale-up during it) reads the values
//! when the gate is removed, which is after the start's runs published. Such a
//! workload is only recorded: the same fingerprint on the workload's own
//! metadata, which changes no pod. So a first deploy starts each replica once,
//! and a workload is rolled only when some pod of it started on older values.
//! The record, else the pod template's annotation (a workload rolled before
//! records existed), is what its pods started with.
//!
//! When: at the end of every start transition (policy `on-start`, the
//! default), and also after any change outside a transition (`on-change`);
//! never with `never` (annotation `rollout` on the workload, else on the
//! namespace). A workload that opts out of the variables
//! (`inject-outputs: "false"` on its pod template) is never rolled. Bare pods
//! have no template to roll: they keep what they started with.
//!
//! The fingerprint covers the ConfigMaps' data and, for the Secrets, only their
//! identity and resourceVersion: no secret material goes into an annotation,
//! not even hashed. A rewrite of a Secret with the same data does not change its
//! resourceVersion (the API server drops no-op writes), so it rolls nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lifecycle_contract::names::{ANNOTATION_OUTPUTS_HASH, SourceKind};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use lifecycle_contract::transition::Rollout;

/// One injected source as read from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceState {
    /// A ConfigMap's data, sorted by key.
    ConfigMap(Vec<(String, String)>),
    /// A Secret's `uid/resourceVersion`.
    Secret(String),
}

/// The fingerprint of an environment's injected sources (`None`: absent),
/// 16 hex characters. Absent and empty ConfigMaps count the same.
pub(crate) fn outputs_hash(sources: &[(SourceKind, &str, Option<SourceState>)]) -> String {
    let mut h = Sha256::new();
    for (_kind, name, state) in sources {
        let part = match state {
            None => continue,
            Some(SourceState::ConfigMap(data)) if data.is_empty() => continue,
            Some(SourceState::ConfigMap(data)) => {
                let mut s = format!("configmap/{name}\0");
                for (k, v) in data {
                    s.push_str(&format!("{k}\0{}\0{v}\0", v.len()));
                }
                s
            }
            Some(SourceState::Secret(version)) => format!("secret/{name}\0{version}\0"),
        };
        h.update(part.as_bytes());
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of an environment with no variables at all: what a
/// workload never rolled (no annotation) is taken to have started with.
pub(crate) fn empty_hash() -> String {
    outputs_hash(&[])
}

/// A Deployment, StatefulSet or DaemonSet, as far as rollouts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RollTarget {
    pub name: String,
    /// Its pod template's `outputs-hash` (written by a roll).
    pub outputs_hash: Option<String>,
    /// Its own `outputs-hash` (metadata): the fingerprint its pods started
    /// with, recorded by every roll and by a start that needed none.
    pub recorded: Option<String>,
    /// Its pod template does not opt out of the variables.
    pub injected: bool,
    /// Its own `rollout` annotation, raw.
    pub rollout: Option<String>,
}

/// Why a rollout is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// A start transition ended.
    StartEnded,
    /// Outside any transition (after a publish).
    Change,
}

/// Whether `w` is rolled now if its outputs changed; `ns_policy` is the namespace's `rollout`.
pub(crate) fn due(w: &RollTarget, ns_policy: Rollout, when: When) -> bool {
    if !w.injected {
        return false;
    }
    // An unreadable workload annotation falls back to the namespace's policy.
    let policy = w.rollout.as_deref().and_then(|v| Rollout::parse(Some(v)).ok()).unwrap_or(ns_policy);
    match (policy, when) {
        (Rollout::Never, _) => false,
        (Rollout::OnStart, When::StartEnded) | (Rollout::OnChange, _) => true,
        (Rollout::OnStart, When::Change) => false,
    }
}

/// What its pods started with: the record, else the pod template's
/// fingerprint, else none (a workload never rolled counts as started with no
/// variables).
fn started_with(w: &RollTarget) -> String {
    w.recorded.clone().or_else(|| w.outputs_hash.clone()).unwrap_or_else(empty_hash)
}

/// What to do with a workload whose variables now fingerprint `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Some pod of it started on older values: roll it.
    Roll,
    /// None of its pods has started (all gated, or none): they read the
    /// current values when they start; record them, change no pod.
    Record,
}

/// Whether `w` is behind `hash` and due now: then what to do, given whether
/// any pod of it has started (`started_pods`).
pub(crate) fn action(w: &RollTarget, hash: &str, ns_policy: Rollout, when: When, started_pods: bool) -> Option<Action> {
    let behind = due(w, ns_policy, when) && started_with(w) != hash;
    behind.then_some(if started_pods { Action::Roll } else { Action::Record })
}

/// Whether `w` is behind `hash` and due now (see [`action`]).
pub(crate) fn behind(w: &RollTarget, hash: &str, ns_policy: Rollout, when: When) -> bool {
    action(w, hash, ns_policy, when, true).is_some()
}

/// The merge patch that carries out `action` to `hash`: a roll writes the pod
/// template (new pods) and the record; a record writes the record only.
pub(crate) fn patch(action: Action, hash: &str) -> Value {
    let record = json!({"annotations": {ANNOTATION_OUTPUTS_HASH: hash}});
    match action {
        Action::Roll => {
            json!({"metadata": record, "spec": {"template": {"metadata": {"annotations": {ANNOTATION_OUTPUTS_HASH: hash}}}}})
        }
        Action::Record => json!({"metadata": record}),
    }
}

/// The workload a pod belongs to, from its controller reference: a
/// StatefulSet's or DaemonSet's own, a Deployment's through its ReplicaSet
/// (named `<deployment>-<pod-template-hash>`, the hash being the pod's label).
/// `None` for a bare pod, a Job's, a bare ReplicaSet's (no such label).
pub(crate) fn workload_of_pod(meta: &ObjectMeta) -> Option<(super::model::WorkloadKind, String)> {
    use super::model::WorkloadKind;
    let owner = meta.owner_references.as_deref()?.iter().find(|o| o.controller == Some(true) && o.api_version == "apps/v1")?;
    match owner.kind.as_str() {
        "StatefulSet" => Some((WorkloadKind::StatefulSet, owner.name.clone())),
        "DaemonSet" => Some((WorkloadKind::DaemonSet, owner.name.clone())),
        "ReplicaSet" => {
            let hash = meta.labels.as_ref()?.get("pod-template-hash")?;
            let name = owner.name.strip_suffix(hash.as_str())?.strip_suffix('-')?;
            (!name.is_empty()).then(|| (WorkloadKind::Deployment, name.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(hash: Option<&str>, injected: bool, rollout: Option<&str>) -> RollTarget {
        RollTarget {
            name: "web".into(),
            outputs_hash: hash.map(Into::into),
            recorded: None,
            injected,
            rollout: rollout.map(Into::into),
        }
    }

    fn must_roll(w: &RollTarget, hash: &str, ns_policy: Rollout, when: When) -> bool {
        action(w, hash, ns_policy, when, true) == Some(Action::Roll)
    }

    #[test]
    fn the_hash_follows_the_data_and_the_secret_version() {
        let cm = |v: &str| Some(SourceState::ConfigMap(vec![("A".into(), v.into())]));
        let base = outputs_hash(&[(SourceKind::ConfigMap, "lifecycle-outputs", cm("1"))]);
        assert_eq!(base.len(), 16);
        assert_ne!(base, outputs_hash(&[(SourceKind::ConfigMap, "lifecycle-outputs", cm("2"))]));
        let with_secret = outputs_hash(&[
            (SourceKind::ConfigMap, "lifecycle-outputs", cm("1")),
            (SourceKind::Secret, "lifecycle-outputs", Some(SourceState::Secret("u/7".into()))),
        ]);
        assert_ne!(base, with_secret);
        // Absent and empty sources are no variables.
        assert_eq!(empty_hash(), outputs_hash(&[(SourceKind::ConfigMap, "x", Some(SourceState::ConfigMap(vec![])))]));
        assert_eq!(empty_hash(), outputs_hash(&[(SourceKind::Secret, "x", None)]));
    }

    #[test]
    fn who_rolls_when() {
        let h = "0123456789abcdef";
        use Rollout::*;
        use When::*;
        assert!(must_roll(&target(None, true, None), h, OnStart, StartEnded));
        assert!(!must_roll(&target(Some(h), true, None), h, OnStart, StartEnded), "up to date");
        assert!(!must_roll(&target(None, true, None), &empty_hash(), OnStart, StartEnded), "never rolled, no variables");
        assert!(!must_roll(&target(None, false, None), h, OnStart, StartEnded), "inject-outputs: false");
        assert!(!must_roll(&target(None, true, Some("never")), h, OnChange, StartEnded), "the workload says never");
        assert!(!must_roll(&target(None, true, None), h, Never, StartEnded), "the namespace says never");
        assert!(must_roll(&target(None, true, Some("on-start")), h, Never, StartEnded), "the workload wins");
        assert!(!must_roll(&target(None, true, None), h, OnStart, Change), "on-start waits for a start");
        assert!(must_roll(&target(None, true, Some("on-change")), h, OnStart, Change));
        assert!(must_roll(&target(None, true, Some("bogus")), h, OnChange, Change), "unreadable: the namespace's");
        let roll = patch(Action::Roll, h);
        assert_eq!(roll["spec"]["template"]["metadata"]["annotations"][ANNOTATION_OUTPUTS_HASH], h);
        assert_eq!(roll["metadata"]["annotations"][ANNOTATION_OUTPUTS_HASH], h);
    }

    #[test]
    fn a_workload_whose_pods_have_not_started_is_recorded_not_rolled() {
        let h = "0123456789abcdef";
        use Rollout::*;
        use When::*;
        let new = target(None, true, None);
        assert_eq!(action(&new, h, OnStart, StartEnded, false), Some(Action::Record), "gated pods: they start with h");
        assert_eq!(action(&new, h, OnStart, StartEnded, true), Some(Action::Roll), "a pod started on older values");
        let record = patch(Action::Record, h);
        assert!(record.get("spec").is_none(), "no pod template change, so no new pod");
        assert_eq!(record["metadata"]["annotations"][ANNOTATION_OUTPUTS_HASH], h);
        // Recorded: up to date, whatever its template says (a rollout undo puts an old one back,
        // and its new pods read the current values all the same).
        let recorded = RollTarget { recorded: Some(h.into()), outputs_hash: Some("old".into()), ..new.clone() };
        assert_eq!(action(&recorded, h, OnStart, StartEnded, true), None);
        assert_eq!(action(&recorded, "fedcba9876543210", OnStart, StartEnded, true), Some(Action::Roll), "outputs changed");
        assert!(behind(&recorded, "fedcba9876543210", OnStart, StartEnded));
        assert!(!behind(&recorded, h, OnStart, StartEnded));
        // Rolled before records existed: the template's fingerprint is what it started with.
        assert_eq!(action(&target(Some(h), true, None), h, OnStart, StartEnded, true), None);
    }

    #[test]
    fn pods_belong_to_their_workload() {
        use super::super::model::WorkloadKind;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let pod = |kind: &str, name: &str, hash: Option<&str>| ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                name: name.into(),
                controller: Some(true),
                ..Default::default()
            }]),
            labels: hash.map(|h| [("pod-template-hash".to_string(), h.to_string())].into()),
            ..Default::default()
        };
        assert_eq!(
            workload_of_pod(&pod("ReplicaSet", "web-7d9f8b6c5", Some("7d9f8b6c5"))),
            Some((WorkloadKind::Deployment, "web".into()))
        );
        assert_eq!(
            workload_of_pod(&pod("ReplicaSet", "web-api-7d9f", Some("7d9f"))),
            Some((WorkloadKind::Deployment, "web-api".into()))
        );
        assert_eq!(workload_of_pod(&pod("ReplicaSet", "bare", None)), None, "a bare ReplicaSet");
        assert_eq!(workload_of_pod(&pod("ReplicaSet", "other-123", Some("456"))), None);
        assert_eq!(workload_of_pod(&pod("StatefulSet", "db", None)), Some((WorkloadKind::StatefulSet, "db".into())));
        assert_eq!(workload_of_pod(&pod("DaemonSet", "agent", None)), Some((WorkloadKind::DaemonSet, "agent".into())));
        assert_eq!(workload_of_pod(&ObjectMeta::default()), None, "a bare pod");
    }
}
