//! Gated pods: while an environment's start is pending or its runs are going,
//! the pods admitted to it wait behind the scheduling gate
//! `lifecycle-jobs.dev/start-jobs`, so that they start with the outputs the
//! start is about to publish.
//!
//! - Admission adds the gate and the label `lifecycle-jobs.dev/gated` (no API
//!   call: it asks the watch-fed [`crate::watches::env_index::EnvIndex`], which applies
//!   [`gates_pods`] to each environment's Namespace).
//! - The controller finds the gated pods by that label (a label-selected watch
//!   wakes it when one is created) and, whenever [`gates_pods`] no longer
//!   holds for their namespace, removes the gate and the label together
//!   ([`release_patch`]). That check is made on every reconcile, not once at
//!   the end of a transition: a controller killed at any moment, or a pod that
//!   an admission replica gated a moment after the start ended (its watch lags
//!   a little), is still released.
//! - Pods of lifecycle runs are never gated (their pod template carries the
//!   label `run`, set by the run builder): the start could not go on. Neither are
//!   pods that opt out of the variables (`inject-outputs: "false"`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lifecycle_contract::Event;
use lifecycle_contract::names::{
    ANNOTATION_DEPLOY_ID, ANNOTATION_ON_START_FAILURE, LABEL_ENVIRONMENT, LABEL_GATED, LABEL_STATE, SCHEDULING_GATE_START_JOBS,
};
use serde_json::{Value, json};

use super::decide::{Decision, decide};
use super::keys::{ANNOTATION_OBSERVED, ANNOTATION_TRANSITION};
use super::model::{Observed, OnStartFailure, Transition, Wanted, WantedState, parse_json};

/// A pod that carries the gate label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatedPod {
    pub name: String,
    pub uid: String,
}

/// Whether pods admitted now to the environment `ns` must wait: its start
/// transition's runs are going (or failed and are held, unless
/// `on-start-failure: release`), or a start is due that the controller has not
/// taken yet (a new environment, a new `deploy-id`, `state` back to started).
pub(crate) fn gates_pods(ns: &ObjectMeta) -> bool {
    if ns.deletion_timestamp.is_some() {
        return false;
    }
    let labels = ns.labels.as_ref();
    if !labels.is_some_and(|l| l.contains_key(LABEL_ENVIRONMENT)) {
        return false;
    }
    let annotation = |k: &str| ns.annotations.as_ref().and_then(|a| a.get(k)).map(String::as_str);
    let on_failure = OnStartFailure::parse(annotation(ANNOTATION_ON_START_FAILURE)).unwrap_or_default();
    let transition = parse_json::<Transition>(annotation(ANNOTATION_TRANSITION)).ok().flatten();
    if let Some(t) = transition {
        return t.gates_pods(on_failure);
    }
    let Ok(state) = WantedState::parse(labels.and_then(|l| l.get(LABEL_STATE)).map(String::as_str)) else {
        return false;
    };
    let wanted = Wanted { state, deploy_id: annotation(ANNOTATION_DEPLOY_ID).map(str::to_string) };
    let observed = parse_json::<Observed>(annotation(ANNOTATION_OBSERVED)).ok().flatten();
    decide(observed.as_ref(), &wanted) == Decision::Event(Event::Start)
}

/// Strategic merge patch that removes the gate and the label (and nothing
/// else: scheduling gates may only be removed). Repeating it is harmless.
pub(crate) fn release_patch() -> Value {
    json!({
        "metadata": {"labels": {LABEL_GATED: null}},
        "spec": {"schedulingGates": [{"$patch": "delete", "name": SCHEDULING_GATE_START_JOBS}]},
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn ns(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |p: &[(&str, &str)]| Some(p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>());
        ObjectMeta { name: Some("env1".into()), labels: map(labels), annotations: map(annotations), ..Default::default() }
    }
    const ENV: (&str, &str) = (LABEL_ENVIRONMENT, "");

    #[test]
    fn a_pending_or_running_start_gates() {
        // Not an environment.
        assert!(!gates_pods(&ns(&[], &[])));
        // New environment: its first start is due.
        assert!(gates_pods(&ns(&[ENV], &[])));
        // A new environment wanted stopped: no start.
        assert!(!gates_pods(&ns(&[ENV, (LABEL_STATE, "stopped")], &[])));
        let started = (ANNOTATION_OBSERVED, r#"{"seq":1,"state":"started","deployId":"v1"}"#);
        // Settled.
        assert!(!gates_pods(&ns(&[ENV], &[started, (ANNOTATION_DEPLOY_ID, "v1")])));
        // A redeploy not taken yet.
        assert!(gates_pods(&ns(&[ENV], &[started, (ANNOTATION_DEPLOY_ID, "v2")])));
        // A start's runs.
        let runs = (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"start","phase":"runs"}"#);
        assert!(gates_pods(&ns(&[ENV], &[started, runs])));
        // Its later phases: the outputs are final.
        let scale = (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"start","phase":"scale"}"#);
        assert!(!gates_pods(&ns(&[ENV], &[started, scale])));
        // A stop.
        let stop = (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"stop","phase":"runs"}"#);
        assert!(!gates_pods(&ns(&[ENV, (LABEL_STATE, "stopped")], &[started, stop])));
    }

    #[test]
    fn a_held_failed_start_gates_unless_released() {
        let held = (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"start","phase":"runs","failed":{"stage":1,"jobs":["seed"]}}"#);
        assert!(gates_pods(&ns(&[ENV], &[held])));
        assert!(!gates_pods(&ns(&[ENV], &[held, (ANNOTATION_ON_START_FAILURE, "release")])));
        assert!(gates_pods(&ns(&[ENV], &[held, (ANNOTATION_ON_START_FAILURE, "typo")])), "unknown values hold");
    }

    #[test]
    fn the_release_patch_removes_only_ours() {
        let p = release_patch();
        assert_eq!(p["spec"]["schedulingGates"][0]["$patch"], "delete");
        assert_eq!(p["spec"]["schedulingGates"][0]["name"], SCHEDULING_GATE_START_JOBS);
        assert_eq!(p["metadata"]["labels"][LABEL_GATED], Value::Null);
    }
}
