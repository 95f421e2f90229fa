//! Rollouts: a container reads its environment variables when it starts, so a
//! workload whose pods started before its environment's outputs changed runs
//! with stale ones. The controller rolls such a Deployment, StatefulSet or
//! DaemonSet the way `kubectl rollout restart` does: it writes the pod
//! template annotation `lifecycle-jobs.dev/outputs-hash`, a fingerprint of the
//! variables the workload reads (its environment's injected sources).
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
    /// Its pod template's `outputs-hash`.
    pub outputs_hash: Option<String>,
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

/// Whether `w` must be rolled to `hash` now.
pub(crate) fn must_roll(w: &RollTarget, hash: &str, ns_policy: Rollout, when: When) -> bool {
    due(w, ns_policy, when) && w.outputs_hash.clone().unwrap_or_else(empty_hash) != hash
}

/// The merge patch that rolls a workload to `hash`.
pub(crate) fn roll_patch(hash: &str) -> Value {
    json!({"spec": {"template": {"metadata": {"annotations": {ANNOTATION_OUTPUTS_HASH: hash}}}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(hash: Option<&str>, injected: bool, rollout: Option<&str>) -> RollTarget {
        RollTarget { name: "web".into(), outputs_hash: hash.map(Into::into), injected, rollout: rollout.map(Into::into) }
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
        assert_eq!(roll_patch(h)["spec"]["template"]["metadata"]["annotations"][ANNOTATION_OUTPUTS_HASH], h);
    }
}
