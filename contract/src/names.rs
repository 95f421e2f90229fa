//! Every public name of the contract: labels, annotations, objects, paths.

/// Prefix of every label and annotation.
pub const DOMAIN: &str = "lifecycle-jobs.dev";

/// Namespace label that marks an environment (value: environment name, empty = namespace name).
pub const LABEL_ENVIRONMENT: &str = "lifecycle-jobs.dev/environment";
/// Optional namespace label: project name.
pub const LABEL_PROJECT: &str = "lifecycle-jobs.dev/project";
/// Namespace label: wanted state, `started` (also when absent), `stopped` or `deleted`.
pub const LABEL_STATE: &str = "lifecycle-jobs.dev/state";
/// Namespace annotation: each change is a redeploy (a start event).
pub const ANNOTATION_DEPLOY_ID: &str = "lifecycle-jobs.dev/deploy-id";
/// Namespace annotation: when the environment runs, windows of weekdays and
/// hours in a time zone, e.g. `Mon-Fri 08:00-19:00 Europe/Paris`; the controller
/// starts it at each running period's start and stops it at its end. Grammar
/// and times: `schedule::Schedule` (feature `time`).
pub const ANNOTATION_SCHEDULE: &str = "lifecycle-jobs.dev/schedule";
/// Namespace annotation: an RFC 3339 time with its offset, e.g.
/// `2026-12-24T18:00:00+01:00`, when the controller deletes the environment
/// (delete jobs first); see `schedule::parse_expires_at`.
pub const ANNOTATION_EXPIRES_AT: &str = "lifecycle-jobs.dev/expires-at";
/// Namespace annotation: a duration such as `72h`, `2d` or `1h30m`, counted
/// from the last start or redeploy, after which the controller deletes the
/// environment; with `expires-at` too, the earlier wins. See
/// `schedule::parse_ttl`.
pub const ANNOTATION_TTL: &str = "lifecycle-jobs.dev/ttl";
/// Namespace annotation: `"true"` suspends the schedule, `ttl` and
/// `expires-at` (`"false"` or absent: they apply); see `schedule::parse_keep`.
pub const ANNOTATION_KEEP: &str = "lifecycle-jobs.dev/keep";
/// Namespace annotation written by the controller for people.
pub const ANNOTATION_STATUS: &str = "lifecycle-jobs.dev/status";

/// Job annotation: the events a lifecycle job (template) runs on.
pub const ANNOTATION_ON: &str = "lifecycle-jobs.dev/on";
/// Job annotation: which container the per-event command applies to.
pub const ANNOTATION_CONTAINER: &str = "lifecycle-jobs.dev/container";
/// Job annotation: the JOBID used in variable names.
pub const ANNOTATION_JOB_ID: &str = "lifecycle-jobs.dev/job-id";
/// Job annotation: run that event now; the controller clears it.
pub const ANNOTATION_FORCE_RUN: &str = "lifecycle-jobs.dev/force-run";
/// Job annotation: `"false"` opts a Job out of output capture.
pub const ANNOTATION_CAPTURE_OUTPUT: &str = "lifecycle-jobs.dev/capture-output";
/// Pod template annotation: `"false"` opts a workload out of variable injection.
pub const ANNOTATION_INJECT_OUTPUTS: &str = "lifecycle-jobs.dev/inject-outputs";
/// Job annotation written by the server: the last published outputs (sensitive values masked).
pub const ANNOTATION_OUTPUTS: &str = "lifecycle-jobs.dev/outputs";

/// Job annotation written by the server: which pod published the job's current
/// outputs, `<pod-name>/<pod-uid>`; makes an agent's retry idempotent.
pub const ANNOTATION_OUTPUTS_PUBLISHED_BY: &str = "lifecycle-jobs.dev/outputs-published-by";
/// `spec.managedBy` of a lifecycle template, set by admission when the Job is
/// created: the built-in Job controller leaves a Job managed by another
/// controller alone (no status writes, no Events, no pods), so templates cost
/// it nothing; the server writes the template's `Suspended` condition itself.
/// Runs are ordinary Jobs: they never carry it.
pub const TEMPLATE_MANAGED_BY: &str = "lifecycle-jobs.dev/controller";
/// Template annotation written by the controller: the last run of each event, as JSON
/// `{"start":{"run":"seed-start-k2x9q4mz","occurrence":"3","result":"succeeded","time":"…"},
///   "force":{"event":"stop",…}}`. It is also the controller's record of which
/// occurrence each template already ran: never edit it by hand.
pub const ANNOTATION_LAST_RUNS: &str = "lifecycle-jobs.dev/last-runs";
/// Namespace annotation written by the controller: the wanted state it last took in, as JSON
/// `{"seq":N,"state":"started","deployId":"v2"}`; `seq` numbers the environment's event occurrences.
pub const ANNOTATION_OBSERVED: &str = "lifecycle-jobs.dev/observed";
/// Namespace annotation written by the controller: the transition in flight, as JSON
/// `{"seq":N,"event":"stop","phase":"runs"}` (phases `runs`, `scale`, `delete`); absent when none is.
pub const ANNOTATION_TRANSITION: &str = "lifecycle-jobs.dev/transition";
/// Deployment / StatefulSet annotation: the replica count before a stop scaled it
/// to zero; a start scales it back and removes the annotation.
pub const ANNOTATION_REPLICAS_BEFORE_STOP: &str = "lifecycle-jobs.dev/replicas-before-stop";
/// Finalizer on every lifecycle template: its outputs' keys are removed before it goes.
pub const FINALIZER_OUTPUTS_CLEANUP: &str = "lifecycle-jobs.dev/outputs-cleanup";

/// Template annotation: the stage of a lifecycle job, an integer (default 0,
/// negatives allowed). Start runs go stage by stage ascending, stop and delete
/// runs descending; see [`crate::transition::parse_stage`].
pub const ANNOTATION_STAGE: &str = "lifecycle-jobs.dev/stage";
/// Scheduling gate set at admission on the pods of an environment whose start
/// transition is in flight; the controller removes it when the transition ends.
pub const SCHEDULING_GATE_START_JOBS: &str = "lifecycle-jobs.dev/start-jobs";
/// Pod label set at admission together with [`SCHEDULING_GATE_START_JOBS`]
/// (value `start-jobs`), removed with it: the controller finds the pods it must
/// release with a label selector, and is woken when one is created.
pub const LABEL_GATED: &str = "lifecycle-jobs.dev/gated";
/// Value of [`LABEL_GATED`].
pub const GATED_START_JOBS: &str = "start-jobs";
/// Namespace annotation: what a failed start run does to the gated pods,
/// `hold` (default: they stay gated) or `release`.
pub const ANNOTATION_ON_START_FAILURE: &str = "lifecycle-jobs.dev/on-start-failure";
/// Pod template annotation of a Deployment, StatefulSet or DaemonSet, written by
/// the controller: the hash of the outputs its pods were rolled for.
pub const ANNOTATION_OUTPUTS_HASH: &str = "lifecycle-jobs.dev/outputs-hash";
/// Namespace or workload annotation: when workloads are rolled for changed
/// outputs, `on-start` (default), `on-change` or `never`.
pub const ANNOTATION_ROLLOUT: &str = "lifecycle-jobs.dev/rollout";

/// Whether an opt-out annotation (`capture-output`, `inject-outputs`) says
/// `"false"`: case-insensitive, surrounding spaces ignored. Admission, the job
/// index and the outputs API all decide through this one function, so they
/// never disagree about whether a Job captures its outputs.
pub fn opts_out(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

/// Pod template label of a captured Job; value = JOBID.
pub const LABEL_CAPTURE: &str = "lifecycle-jobs.dev/capture";
/// Job label set by the webhook at admission on every Job of an environment
/// (value `true`): the server watches only the Jobs carrying it, so that Jobs
/// outside environments, whatever their size, cost it nothing. Admission puts
/// it back if an update removes it.
pub const LABEL_ADMITTED: &str = "lifecycle-jobs.dev/admitted";
/// Value of [`LABEL_ADMITTED`].
pub const ADMITTED: &str = "true";
/// Run Job label: the template's name.
pub const LABEL_JOB: &str = "lifecycle-jobs.dev/job";
/// Run Job label: the event (`start`, `stop`, `delete`).
pub const LABEL_EVENT: &str = "lifecycle-jobs.dev/event";
/// Run Job label: the run's identity (event occurrence).
pub const LABEL_RUN: &str = "lifecycle-jobs.dev/run";

/// What the server writes and nobody else does (the contract's Trust
/// section): it takes none of these as an instruction unless it wrote them.
/// The ValidatingAdmissionPolicies of `manifests/base/trust-policies.yaml`
/// refuse them from anyone else (a test checks that they name each one); a
/// copy of a Job (`kubectl lifecycle clone`) leaves them behind.
///
/// [`ANNOTATION_OUTPUTS_HASH`] is written by the server too but left open on
/// purpose: `kubectl rollout undo` puts an older pod template back, hash
/// included, and whoever may edit a workload's pod template may roll it
/// anyway; the controller reads the hash only to decide whether to roll.
pub mod server_owned {
    use super::*;
    /// On a Namespace: the controller's bookkeeping and its report.
    pub const NAMESPACE_ANNOTATIONS: [&str; 3] = [ANNOTATION_OBSERVED, ANNOTATION_TRANSITION, ANNOTATION_STATUS];
    /// On a Job: what the server recorded.
    pub const JOB_ANNOTATIONS: [&str; 3] = [ANNOTATION_OUTPUTS, ANNOTATION_OUTPUTS_PUBLISHED_BY, ANNOTATION_LAST_RUNS];
    /// On a Job: set by the server on the runs it creates.
    pub const RUN_LABELS: [&str; 3] = [LABEL_JOB, LABEL_EVENT, LABEL_RUN];
    /// On a Job ([`LABEL_ADMITTED`]) and its pod template ([`LABEL_CAPTURE`]):
    /// set by the server's admission webhook in the request of a new Job of an
    /// environment, never changed afterwards.
    pub const ADMISSION_LABELS: [&str; 2] = [LABEL_ADMITTED, LABEL_CAPTURE];
    /// On a Job: the finalizer the controller puts on templates.
    pub const FINALIZERS: [&str; 1] = [FINALIZER_OUTPUTS_CLEANUP];
    /// On a Pod ([`LABEL_GATED`], label) and a Deployment or StatefulSet
    /// ([`ANNOTATION_REPLICAS_BEFORE_STOP`], annotation).
    pub const WORKLOAD_NAMES: [&str; 2] = [LABEL_GATED, ANNOTATION_REPLICAS_BEFORE_STOP];
}

/// `lifecycle-jobs.dev/on-<event>-command`
pub fn annotation_on_command(event: crate::Event) -> String {
    format!("{DOMAIN}/on-{event}-command")
}

/// `lifecycle-jobs.dev/on-<event>-args`
pub fn annotation_on_args(event: crate::Event) -> String {
    format!("{DOMAIN}/on-{event}-args")
}

/// Name of the ConfigMap (non-sensitive) and the Secret (sensitive) holding an environment's outputs.
pub const OUTPUTS_OBJECT: &str = "lifecycle-outputs";

/// Name of the ConfigMap and the Secret the server mirrors from a project's
/// variables into each environment of the project.
pub const PROJECT_OBJECT: &str = "lifecycle-project";
/// Name of the ConfigMap and the Secret people create in an environment for its own variables.
pub const ENVIRONMENT_OBJECT: &str = "lifecycle-environment";
/// Label on ConfigMaps and Secrets in a variables source namespace; value = project.
pub const LABEL_PROJECT_VARIABLES: &str = "lifecycle-jobs.dev/project-variables";

/// Annotation on the mirrored `lifecycle-project` objects, written by the
/// server: JSON object `{"KEY": "<namespace>/<name>", …}`, the source object
/// each key came from (names only, never values), for people and the plugin.
pub const ANNOTATION_VARIABLE_SOURCES: &str = "lifecycle-jobs.dev/variable-sources";
/// Annotation on the mirrored `lifecycle-project` objects, written by the
/// server: a digest of what it last wrote (project, data, sources), so that a
/// restarted server rewrites only what changed.
pub const ANNOTATION_MIRROR_HASH: &str = "lifecycle-jobs.dev/mirror-hash";
/// Field manager of the server's writes of the `lifecycle-project` objects.
pub const PROJECT_VARIABLES_FIELD_MANAGER: &str = "lifecycle-jobs.dev/project-variables";

/// Name of the ConfigMap the server writes in each environment with its
/// built-in variables (`crate::builtins`); first of the injected sources.
pub const BUILTINS_OBJECT: &str = "lifecycle-builtins";
/// Field manager of the server's writes of the `lifecycle-builtins` ConfigMaps.
pub const BUILTINS_FIELD_MANAGER: &str = "lifecycle-jobs.dev/builtins";

/// Kind of an object a pod's `envFrom` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    ConfigMap,
    Secret,
}

/// Scope of an injected variable source; later scopes win over earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Builtin,
    Project,
    Environment,
    Output,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Builtin => "builtin",
            Scope::Project => "project",
            Scope::Environment => "environment",
            Scope::Output => "output",
        }
    }
}

/// The `envFrom` sources the webhook puts first in every container of an
/// environment's pods, in this order. A later source wins over an earlier one
/// (and the pod's own `envFrom` and `env`, which come after, win over all), so
/// the built-in variables lose to every scope, the narrower scope wins and
/// outputs win over inputs. Admission and the plugin's `env vars` both read
/// this one list.
pub const INJECTED_SOURCES: [(Scope, SourceKind, &str); 7] = [
    (Scope::Builtin, SourceKind::ConfigMap, BUILTINS_OBJECT),
    (Scope::Project, SourceKind::ConfigMap, PROJECT_OBJECT),
    (Scope::Project, SourceKind::Secret, PROJECT_OBJECT),
    (Scope::Environment, SourceKind::ConfigMap, ENVIRONMENT_OBJECT),
    (Scope::Environment, SourceKind::Secret, ENVIRONMENT_OBJECT),
    (Scope::Output, SourceKind::ConfigMap, OUTPUTS_OBJECT),
    (Scope::Output, SourceKind::Secret, OUTPUTS_OBJECT),
];

/// Directory shared by the job's containers and the agent.
pub const OUTPUT_DIR: &str = "/qovery-output";
/// The output file, as in Qovery.
pub const OUTPUT_FILE: &str = "/qovery-output/qovery-output.json";
/// File name of the output file inside [`OUTPUT_DIR`].
pub const OUTPUT_FILE_NAME: &str = "qovery-output.json";
/// Largest output file accepted.
pub const OUTPUT_FILE_MAX_BYTES: usize = 1024 * 1024;

/// Start of every "outputs were not published" reason: the agent's termination
/// message, the Job's `outputs` annotation and its Warning Event all begin so.
pub const OUTPUTS_NOT_PUBLISHED: &str = "outputs not published";

/// Smallest `terminationGracePeriodSeconds` of a captured pod: the agent
/// publishes after SIGTERM and retries (server restarting, network) until
/// shortly before the grace period ends. Pods asking less get this at admission.
pub const AGENT_MIN_GRACE_SECONDS: i64 = 60;
/// The pod default when `terminationGracePeriodSeconds` is absent.
pub const POD_DEFAULT_GRACE_SECONDS: i64 = 30;

/// The grace period a captured pod gets: its own, raised to [`AGENT_MIN_GRACE_SECONDS`].
pub fn captured_pod_grace(requested: Option<i64>) -> i64 {
    requested.unwrap_or(POD_DEFAULT_GRACE_SECONDS).max(AGENT_MIN_GRACE_SECONDS)
}

/// Audience of the agent's projected service-account token.
pub const TOKEN_AUDIENCE: &str = "lifecycle-jobs.dev";

/// The documented default namespace of the server (manifests/base, the chart's
/// `helm install -n lifecycle-jobs-system`). Not a rule: the server runs where it
/// is installed and reads its namespace from its pod (`--namespace`, else
/// `POD_NAMESPACE`); never compare a namespace or a username with this to
/// recognise the server.
pub const SYSTEM_NAMESPACE: &str = "lifecycle-jobs-system";
/// Label selector of the server's pods, whatever namespace it runs in (for
/// people's hints: `kubectl get pods -A -l ...`).
pub const SERVER_POD_SELECTOR: &str = "app.kubernetes.io/name=lifecycle-webhook";

/// Namespaces that are never environments, whatever their labels: the
/// cluster's own and (see [`never_environment`]) the server's.
pub const NEVER_ENVIRONMENTS: [&str; 4] = ["kube-system", "kube-public", "kube-node-lease", "default"];

/// Whether `namespace` may never be an environment; `server_namespace` is
/// where the server runs (its setting, default [`SYSTEM_NAMESPACE`]).
pub fn never_environment(namespace: &str, server_namespace: &str) -> bool {
    namespace == server_namespace || NEVER_ENVIRONMENTS.contains(&namespace)
}

/// Prefix of the full variable name: `QOVERY_OUTPUT_JOB_<JOBID>_<KEY>`.
pub const VARIABLE_PREFIX: &str = "QOVERY_OUTPUT_JOB_";

/// `QOVERY_OUTPUT_JOB_<JOBID>_<KEY>`
pub fn variable_name(job_id: &crate::JobId, key: &str) -> String {
    format!("{VARIABLE_PREFIX}{job_id}_{key}")
}

/// Field manager used for one job's outputs in server-side apply.
pub fn field_manager(job_id: &crate::JobId) -> String {
    format!("{DOMAIN}/job-{job_id}")
}

/// Names of the pieces the webhook injects into job pods.
pub mod injected {
    /// The agent's native sidecar container.
    pub const AGENT_CONTAINER: &str = "lifecycle-agent";
    /// The emptyDir mounted at `/qovery-output`.
    pub const OUTPUT_VOLUME: &str = "lifecycle-output";
    /// The projected, audience-bound token volume of the agent.
    pub const TOKEN_VOLUME: &str = "lifecycle-agent-token";
    /// Where the agent's token volume is mounted.
    pub const TOKEN_DIR: &str = "/var/run/secrets/lifecycle-jobs.dev";
    /// File of the token inside [`TOKEN_DIR`].
    pub const TOKEN_FILE: &str = "/var/run/secrets/lifecycle-jobs.dev/token";
}

/// Agent environment variables set by the webhook.
pub mod agent_env {
    /// HTTPS URL of the server's outputs API base, e.g. `https://lifecycle-webhook.lifecycle-jobs-system.svc:443`.
    pub const SERVER_URL: &str = "LIFECYCLE_SERVER_URL";
    /// `IP:port` the agent dials: the server Service's address. The agent resolves
    /// no names; [`SERVER_URL`]'s host still names the server for TLS.
    pub const SERVER_ADDR: &str = "LIFECYCLE_SERVER_ADDR";
    /// PEM bundle of the CA certificates the agent trusts for the server.
    pub const SERVER_CA: &str = "LIFECYCLE_SERVER_CA";
    /// Path of the output file (default [`super::OUTPUT_FILE`]).
    pub const OUTPUT_FILE: &str = "LIFECYCLE_OUTPUT_FILE";
    /// Path of the projected token (default [`super::injected::TOKEN_FILE`]).
    pub const TOKEN_FILE: &str = "LIFECYCLE_TOKEN_FILE";
    /// Seconds the agent has after SIGTERM (the pod's terminationGracePeriodSeconds).
    pub const GRACE_SECONDS: &str = "LIFECYCLE_GRACE_SECONDS";
    /// The JOBID, for logs.
    pub const JOB_ID: &str = "LIFECYCLE_JOB_ID";
    /// Path of the termination message file (default `/dev/termination-log`; for tests).
    pub const TERMINATION_LOG: &str = "LIFECYCLE_TERMINATION_LOG";
}

/// HTTP path of the outputs API.
pub const OUTPUTS_API_PATH: &str = "/v1/outputs";
/// Header an agent sets instead of a body when it could not read the output file safely;
/// value: a one-line reason (never file content).
pub const AGENT_ERROR_HEADER: &str = "lifecycle-agent-error";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_pods_get_at_least_the_agents_grace() {
        assert_eq!(captured_pod_grace(None), AGENT_MIN_GRACE_SECONDS);
        assert_eq!(captured_pod_grace(Some(5)), AGENT_MIN_GRACE_SECONDS);
        assert_eq!(captured_pod_grace(Some(300)), 300);
    }

    #[test]
    fn opt_out_is_false_in_any_case_with_spaces() {
        for v in ["false", "False", " FALSE "] {
            assert!(opts_out(Some(v)), "{v:?}");
        }
        for v in [None, Some("true"), Some(""), Some("no"), Some("0")] {
            assert!(!opts_out(v), "{v:?}");
        }
    }
}
