//! Names the controller owns. They are part of the public contract (people and
//! tools read them with kubectl); `shared/DESIGN.md` lists them.

/// Namespace annotation: the wanted state the controller last took in, as JSON
/// `{"seq":N,"state":"started","deployId":"v2"}`; `seq` numbers the environment's
/// event occurrences.
pub const ANNOTATION_OBSERVED: &str = "lifecycle-jobs.dev/observed";

/// Namespace annotation: the transition in flight, as JSON
/// `{"seq":N,"event":"stop","phase":"runs"}` (phases `runs`, `scale`, `delete`);
/// absent when none is.
pub const ANNOTATION_TRANSITION: &str = "lifecycle-jobs.dev/transition";

/// Template annotation: the last run of each event, as JSON
/// `{"start":{"run":"seed-start-k2x9q4mz","occurrence":"3","result":"succeeded","time":"…"},
///   "force":{"event":"stop",…}}`. It is also the controller's record of which
/// occurrence each template already ran: never edit it by hand.
pub const ANNOTATION_LAST_RUNS: &str = "lifecycle-jobs.dev/last-runs";

/// Deployment / StatefulSet annotation: the replica count before a stop scaled
/// it to zero; a start scales it back and removes the annotation.
pub const ANNOTATION_REPLICAS_BEFORE_STOP: &str = "lifecycle-jobs.dev/replicas-before-stop";

/// Finalizer on every lifecycle template: its outputs' keys are removed before
/// it goes.
pub const FINALIZER_OUTPUTS_CLEANUP: &str = "lifecycle-jobs.dev/outputs-cleanup";

/// The controller's Lease, in the server's namespace.
pub const LEASE_NAME: &str = "lifecycle-webhook-controller";

/// `reportingController` of the controller's Events.
pub const REPORTING_CONTROLLER: &str = "lifecycle-jobs.dev/controller";

/// Labels the Job controller sets on a Job and its pod template; a run must
/// not inherit its template's.
pub const JOB_CONTROLLER_LABELS: [&str; 4] =
    ["controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name"];

/// Annotation kubectl writes on `kubectl apply`; a run must not inherit it.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
