//! Names the controller owns. Those people and tools read with kubectl live in
//! the contract crate and are re-exported here.

pub(crate) use lifecycle_contract::names::{
    ANNOTATION_LAST_RUNS, ANNOTATION_OBSERVED, ANNOTATION_REPLICAS_BEFORE_STOP, ANNOTATION_TRANSITION, FINALIZER_OUTPUTS_CLEANUP,
};

/// The controller's Lease, in the server's namespace.
pub(crate) const LEASE_NAME: &str = "lifecycle-webhook-controller";

/// `reportingController` of the controller's Events.
pub(crate) const REPORTING_CONTROLLER: &str = "lifecycle-jobs.dev/controller";
