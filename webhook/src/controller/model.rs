//! What the controller keeps of Kubernetes objects: the slim types its lists
//! decode, and a Job's outcome and each template's runs (`last-runs`) as the
//! contract's Job reader gives them (`lifecycle_contract::lifecycle_job`,
//! `lifecycle_contract::last_runs`). What a namespace says (wanted state,
//! `observed`, the transition in flight, its settings) is read by the
//! contract's reader, [`lifecycle_contract::environment::Environment`]; its
//! types are re-exported here.
//!
//! Everything here is pure: parsing, serialising and small decisions.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lifecycle_contract::Event;
use serde::Deserialize;

use super::rollout::RollTarget;

pub(crate) use lifecycle_contract::environment::{Observed, WantedState};
pub(crate) use lifecycle_contract::transition::{OnStartFailure, Phase, Progress, Rollout, StartFailure, Transition};

pub(crate) use lifecycle_contract::last_runs::{LastRuns, RunRecord, RunResult, Slot};

/// How a finished run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub succeeded: bool,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// The outcome of a Job once it has ended, by the contract's one rule
/// ([`lifecycle_contract::run::outcome`], which the plugin reads too): only
/// `Complete` and `Failed` end it, and a `Complete` Job whose outputs the
/// server could not publish has failed.
///
/// A success keeps no reason: whether the server's record of the pod or the
/// Job controller's `Complete` told it first, the run succeeded the same way
/// (and its record reads the same whichever the controller saw).
pub(crate) fn job_outcome(job: &Job) -> Option<Outcome> {
    lifecycle_contract::lifecycle_job::outcome(job).map(|o| match o.succeeded {
        true => Outcome { succeeded: true, reason: None, message: None },
        false => Outcome { succeeded: false, reason: o.reason, message: o.message },
    })
}

// What the controller keeps of the API's objects. Every list it makes is read
// page by page into these slim types: serde skips the fields they do not
// name, each page is dropped once handled, and of each object only a few
// fields of the contract are kept, each value cut to a length no valid one
// reaches (`crate::runtime::text::capped`). So what a reconcile holds does not
// grow with what a tenant writes into its objects.

/// Longest value kept of an annotation the planner parses (`on`, `force-run`,
/// `stage`, `job-id`, `container`, `capture-output`, the rollout and replica
/// annotations of a workload): every valid one is far shorter.
pub(crate) const MAX_SHORT_VALUE: usize = 256;
/// Longest `last-runs` kept: the controller writes a few hundred bytes (its
/// messages are cut to 300); a longer one is not its own, and reads as unreadable.
pub(crate) const MAX_LAST_RUNS: usize = 16 * 1024;
/// Longest invalid `on-<event>-command`/`-args`, or run condition message, kept.
pub(crate) const MAX_MESSAGE_VALUE: usize = 1024;

fn cut(v: String, max: usize) -> String {
    crate::runtime::text::capped(v, max)
}

/// A template's metadata as the planner reads it: identity, version,
/// deletion, finalizers, and the annotations of the contract it parses, each
/// cut. A valid `on-<event>-command`/`-args` is kept as `[]`: the planner only
/// checks that it parses; the run is built from the template read whole when
/// it is created (see `reconcile::template_step`).
pub(crate) fn template_meta(meta: ObjectMeta) -> ObjectMeta {
    use lifecycle_contract::names::{
        ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_CONTAINER, ANNOTATION_FORCE_RUN, ANNOTATION_JOB_ID, ANNOTATION_ON,
        ANNOTATION_STAGE, annotation_on_args, annotation_on_command,
    };
    let commands: Vec<String> = Event::ALL.iter().flat_map(|e| [annotation_on_command(*e), annotation_on_args(*e)]).collect();
    let annotations = meta.annotations.map(|a| {
        a.into_iter()
            .filter_map(|(k, v)| {
                let v = match k.as_str() {
                    ANNOTATION_ON
                    | ANNOTATION_FORCE_RUN
                    | ANNOTATION_STAGE
                    | ANNOTATION_JOB_ID
                    | ANNOTATION_CONTAINER
                    | ANNOTATION_CAPTURE_OUTPUT => cut(v, MAX_SHORT_VALUE),
                    super::keys::ANNOTATION_LAST_RUNS => cut(v, MAX_LAST_RUNS),
                    c if commands.iter().any(|n| n == c) => match serde_json::from_str::<Vec<String>>(&v) {
                        Ok(_) => "[]".to_string(),
                        Err(_) => cut(v, MAX_MESSAGE_VALUE),
                    },
                    _ => return None,
                };
                Some((k, v))
            })
            .collect()
    });
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        deletion_timestamp: meta.deletion_timestamp,
        finalizers: meta.finalizers,
        labels: meta.labels.map(|l| l.into_iter().filter(|(k, _)| k == lifecycle_contract::names::LABEL_RUN).collect()),
        annotations,
        ..Default::default()
    }
}

/// A template as the planner reads it: [`template_meta`], and for a spec one
/// container, the one its `container` annotation names (else any): enough
/// for the planner to check the run can be built. Whether that container
/// exists is checked on the whole template, when the run is created.
pub(crate) fn template_skeleton(meta: ObjectMeta) -> Job {
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    let metadata = template_meta(meta);
    let container = metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(lifecycle_contract::names::ANNOTATION_CONTAINER))
        .cloned()
        .unwrap_or_else(|| "main".into());
    let pod = PodSpec { containers: vec![Container { name: container, ..Default::default() }], ..Default::default() };
    let spec = JobSpec { template: PodTemplateSpec { metadata: None, spec: Some(pod) }, ..Default::default() };
    Job { metadata, spec: Some(spec), status: None }
}

/// A run Job as the list of runs decodes it: metadata, status, and of its
/// spec only how many pods make it (never its pod template).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ListedRun {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<RunSpec>,
    #[serde(default)]
    pub status: Option<k8s_openapi::api::batch::v1::JobStatus>,
}

/// What the contract's outcome rule reads of a run's spec.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RunSpec {
    #[serde(default)]
    pub completions: Option<i32>,
    #[serde(default)]
    pub parallelism: Option<i32>,
}

impl ListedRun {
    /// What the planner reads of a run: its name, identity, owners of kind Job,
    /// labels of the contract, a recorded loss of outputs, the pod the server
    /// recorded as its publisher, how many pods make it, and its conditions
    /// (what the contract's outcome rule reads).
    pub(crate) fn into_job(self) -> Job {
        use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
        use lifecycle_contract::names::{
            ANNOTATION_OUTPUTS, ANNOTATION_OUTPUTS_PUBLISHED_BY, LABEL_EVENT, LABEL_JOB, LABEL_RUN, OUTPUTS_NOT_PUBLISHED,
        };
        let m = self.metadata;
        let labels =
            m.labels.map(|l| l.into_iter().filter(|(k, _)| [LABEL_RUN, LABEL_EVENT, LABEL_JOB].contains(&k.as_str())).collect());
        let annotations = m.annotations.map(|a| {
            a.into_iter()
                .filter_map(|(k, v)| match k.as_str() {
                    ANNOTATION_OUTPUTS if v.starts_with(OUTPUTS_NOT_PUBLISHED) => Some((k, cut(v, MAX_MESSAGE_VALUE))),
                    ANNOTATION_OUTPUTS_PUBLISHED_BY => Some((k, cut(v, MAX_SHORT_VALUE))),
                    _ => None,
                })
                .collect()
        });
        let spec = self.spec.map(|s| JobSpec { completions: s.completions, parallelism: s.parallelism, ..Default::default() });
        let owners = m.owner_references.map(|o| o.into_iter().filter(|o| o.kind == "Job").take(4).collect());
        let conditions = self.status.and_then(|s| s.conditions).map(|c| {
            c.into_iter()
                .filter(|c| matches!(c.type_.as_str(), "Complete" | "Failed" | "FailureTarget"))
                .map(|c| JobCondition {
                    reason: c.reason.map(|r| cut(r, MAX_SHORT_VALUE)),
                    message: c.message.map(|m| cut(m, MAX_MESSAGE_VALUE)),
                    type_: c.type_,
                    status: c.status,
                    ..Default::default()
                })
                .collect()
        });
        let metadata = ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            labels,
            annotations,
            owner_references: owners,
            ..Default::default()
        };
        Job { metadata, spec, status: Some(JobStatus { conditions, ..Default::default() }) }
    }
}

crate::runtime::kube_client::slim_resource!(ListedRun, Job);

/// A Deployment, StatefulSet or DaemonSet (`K`) as the controller's lists
/// decode it: its metadata, replicas and pod template's metadata; the rest of
/// its spec (containers, volumes: where a large object is large) is skipped.
#[derive(Deserialize)]
#[serde(bound = "")]
pub(crate) struct ListedWorkload<K> {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<WorkloadSpec>,
    #[serde(skip)]
    kind: std::marker::PhantomData<fn() -> K>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct WorkloadSpec {
    pub replicas: Option<i32>,
    #[serde(default)]
    pub template: WorkloadPodTemplate,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct WorkloadPodTemplate {
    #[serde(default)]
    pub metadata: Option<ObjectMeta>,
}

// By hand: derived, they would ask `K` for Clone and Debug.
impl<K> Clone for ListedWorkload<K> {
    fn clone(&self) -> Self {
        ListedWorkload::new(self.metadata.clone(), self.spec.clone())
    }
}

impl<K> fmt::Debug for ListedWorkload<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListedWorkload").field("metadata", &self.metadata).field("spec", &self.spec).finish()
    }
}

impl<K> ListedWorkload<K> {
    pub(crate) fn new(metadata: ObjectMeta, spec: Option<WorkloadSpec>) -> Self {
        ListedWorkload { metadata, spec, kind: std::marker::PhantomData }
    }
}

impl<K: k8s_openapi::Resource> kube::Resource for ListedWorkload<K> {
    type DynamicType = ();
    type Scope = K::Scope;
    fn kind(_: &()) -> Cow<'_, str> {
        K::KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        K::GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        K::VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        K::URL_PATH_SEGMENT.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A Deployment, a StatefulSet or a DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    pub replicas: Option<i32>,
    pub remembered: Option<String>,
    /// What rollouts need: its template's `outputs-hash`, opt-out and `rollout`.
    pub roll: RollTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

/// What the controller keeps of a workload: its name, replicas, the stop's
/// remembered count, and what rollouts read; each annotation cut.
pub(crate) fn workload_of<K>(kind: WorkloadKind, w: ListedWorkload<K>) -> Workload {
    use lifecycle_contract::names::{ANNOTATION_INJECT_OUTPUTS, ANNOTATION_OUTPUTS_HASH, ANNOTATION_ROLLOUT, opts_out};
    let mut meta = w.metadata;
    let mut own = |k: &str| meta.annotations.as_mut().and_then(|a| a.remove(k)).map(|v| cut(v, MAX_SHORT_VALUE));
    let remembered = own(super::keys::ANNOTATION_REPLICAS_BEFORE_STOP);
    let rollout = own(ANNOTATION_ROLLOUT);
    let recorded = own(ANNOTATION_OUTPUTS_HASH);
    let spec = w.spec.unwrap_or_default();
    let mut template = spec.template.metadata.and_then(|m| m.annotations).unwrap_or_default();
    let name = meta.name.take().unwrap_or_default();
    let is_daemon_set = kind == WorkloadKind::DaemonSet;
    Workload {
        kind,
        name: name.clone(),
        replicas: if is_daemon_set { None } else { spec.replicas },
        remembered: if is_daemon_set { None } else { remembered },
        roll: RollTarget {
            name,
            outputs_hash: template.remove(ANNOTATION_OUTPUTS_HASH).map(|v| cut(v, MAX_SHORT_VALUE)),
            recorded,
            injected: !opts_out(template.get(ANNOTATION_INJECT_OUTPUTS).map(String::as_str)),
            rollout,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn record(occurrence: &str, result: RunResult) -> RunRecord {
        RunRecord {
            event: None,
            run: "seed-start-abc".into(),
            occurrence: occurrence.into(),
            result,
            reason: None,
            message: None,
            time: "2025-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn last_runs_slots_and_checks() {
        let mut lr = LastRuns::default();
        assert!(!lr.in_flight());
        lr.set(Slot::Env(Event::Start), record("3", RunResult::Succeeded));
        assert!(lr.ran_env(Event::Start, 3).is_some());
        assert!(lr.ran_env(Event::Start, 2).is_some());
        assert!(lr.ran_env(Event::Start, 4).is_none());
        assert!(lr.ran_env(Event::Stop, 1).is_none());
        let mut forced = record("force-2", RunResult::Running);
        forced.event = Some(Event::Stop);
        lr.set(Slot::Force, forced);
        assert!(lr.in_flight());
        assert_eq!(lr.force.as_ref().unwrap().force_seq(), 2);
        assert_eq!(lr.force.as_ref().unwrap().env_seq(), 0);
        let json = lr.to_json();
        assert!(json.contains(r#""force":{"event":"stop""#), "{json}");
        assert!(!json.contains(r#""start":{"event""#), "{json}");
        assert_eq!(lifecycle_contract::annotation::parse_json::<LastRuns>(Some(&json)).unwrap().unwrap(), lr);
    }

    fn job_with(conditions: Vec<(&str, &str, &str)>) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .into_iter()
                        .map(|(t, s, r)| JobCondition {
                            type_: t.into(),
                            status: s.into(),
                            reason: Some(r.into()),
                            message: Some(format!("{r} happened")),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn outcome_is_taken_once_certain() {
        assert_eq!(job_outcome(&Job::default()), None);
        let failing = job_outcome(&job_with(vec![("FailureTarget", "True", "BackoffLimitExceeded")])).unwrap();
        assert!(!failing.succeeded, "the Job controller decided: failed for good, its pods still terminating");
        assert_eq!(job_outcome(&job_with(vec![("SuccessCriteriaMet", "True", "CompletionsReached")])), None);
        let failed =
            job_outcome(&job_with(vec![("FailureTarget", "True", "DeadlineExceeded"), ("Failed", "True", "DeadlineExceeded")]))
                .unwrap();
        assert!(!failed.succeeded);
        assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
        let ok = job_outcome(&job_with(vec![("Complete", "True", "CompletionsReached")])).unwrap();
        assert!(ok.succeeded);
        assert_eq!(job_outcome(&job_with(vec![("Complete", "False", "x")])), None);
    }

    #[test]
    fn a_workload_is_read_without_its_containers_and_kept_small() {
        use super::WorkloadKind;
        use k8s_openapi::api::apps::v1::Deployment;
        use lifecycle_contract::names::{ANNOTATION_OUTPUTS_HASH, ANNOTATION_ROLLOUT};
        let big = "x".repeat(300_000);
        let raw = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"example.com/blob": big, ANNOTATION_ROLLOUT: big,
                         crate::controller::keys::ANNOTATION_REPLICAS_BEFORE_STOP: "3"}},
            "spec": {"replicas": 0, "template": {
                "metadata": {"annotations": {ANNOTATION_OUTPUTS_HASH: "0123456789abcdef"}},
                "spec": {"containers": [{"name": "app", "env": [{"name": "BLOB", "value": big}]}]}}}
        });
        let listed: ListedWorkload<Deployment> = serde_json::from_value(raw).unwrap();
        assert!(format!("{listed:?}").len() < 2 * 300_000 + 4096, "the container's variable is not decoded");
        let w = workload_of(WorkloadKind::Deployment, listed);
        assert_eq!((w.name.as_str(), w.replicas, w.remembered.as_deref()), ("web", Some(0), Some("3")));
        assert_eq!(w.roll.outputs_hash.as_deref(), Some("0123456789abcdef"));
        let rollout = w.roll.rollout.as_deref().unwrap();
        assert!(rollout.len() <= MAX_SHORT_VALUE && Rollout::parse(Some(rollout)).is_err(), "cut, and still invalid");
        assert!(w.roll.injected);
    }
}
