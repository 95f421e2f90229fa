//! Gated pods: while an environment's start is pending or its runs are going,
//! the pods admitted to it wait behind the scheduling gate
//! `lifecycle-jobs.dev/start-jobs`, so that they start with the outputs the
//! start is about to publish.
//!
//! Whether an environment gates its pods is the contract's rule,
//! [`Environment::gates_pods`](lifecycle_contract::environment::Environment::gates_pods),
//! asked of the one reader of a Namespace by admission and the controller alike:
//! - Admission adds the gate and the label `lifecycle-jobs.dev/gated` (no API
//!   call: it asks the watch-fed [`crate::watches::env_index::EnvIndex`], which applies
//!   that rule to each environment's Namespace).
//! - The controller finds the gated pods by that label (a label-selected watch
//!   wakes it when one is created) and, whenever the rule no longer holds for
//!   their namespace (`NsView::gating` of its plan), removes the gate and the label together
//!   ([`release_patch`]). That check is made on every reconcile, not once at
//!   the end of a transition: a controller killed at any moment, or a pod that
//!   an admission replica gated a moment after the start ended (its watch lags
//!   a little), is still released.
//! - Pods of lifecycle runs are never gated (their pod template carries the
//!   label `run`, set by the run builder): the start could not go on. Neither are
//!   pods that opt out of the variables (`inject-outputs: "false"`).

use lifecycle_contract::names::{LABEL_GATED, SCHEDULING_GATE_START_JOBS};
use serde_json::{Value, json};

/// A pod that carries the gate label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatedPod {
    pub name: String,
    pub uid: String,
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
    use super::*;

    #[test]
    fn the_release_patch_removes_only_ours() {
        let p = release_patch();
        assert_eq!(p["spec"]["schedulingGates"][0]["$patch"], "delete");
        assert_eq!(p["spec"]["schedulingGates"][0]["name"], SCHEDULING_GATE_START_JOBS);
        assert_eq!(p["metadata"]["labels"][LABEL_GATED], Value::Null);
    }
}
