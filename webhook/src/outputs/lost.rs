//! Outputs that could not be published are never lost silently.
//!
//! When the agent cannot publish (the server down, egress blocked, the grace
//! period too short), it exits non-zero and writes why in its termination
//! message. The pod still succeeds (a sidecar's exit code does not count) and
//! so does the Job. Every replica watches the captured pods that succeeded
//! (also the ones that ended while it was down: the watch starts with a
//! list), reads the agent's termination state ([`publish_failure`]), and
//! records `outputs not published: <why>` on the pod's Job: in its `outputs`
//! annotation and as a Warning Event on the Job (and on its template for a
//! run). The controller reads that record ([`recorded_loss`]): a lifecycle run
//! whose outputs were not published counts as failed.
//!
//! The record is written with the Job's resourceVersion as a precondition, so
//! of two replicas only one records it and emits the Events.
//!
//! What a pod costs: the watch selects the pods labelled `capture` that
//! succeeded, decodes of each only what [`publish_failure`] reads
//! ([`WatchedPod`]: its identity, owners, grace period and the agent's
//! status), in small pages, and keeps nothing once handled. A tenant may put
//! the label on any pod outside the environments: the server then writes
//! nothing, no annotation and no Event, unless the namespace is an environment
//! (and never one of the cluster's own) and the Job one that admission
//! admitted there ([`acts_on`]).

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Namespace, Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::events::EventType;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{
    AGENT_MIN_GRACE_SECONDS, ANNOTATION_OUTPUTS, LABEL_ADMITTED, LABEL_CAPTURE, LABEL_ENVIRONMENT, OUTPUTS_NOT_PUBLISHED,
    injected::AGENT_CONTAINER, never_environment,
};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use super::events;
use super::handler::{SUMMARY_FIELD_MANAGER, published_by};
use super::identity::{controller_job, job_ref, one_line, template_of};
use crate::runtime::backoff::Backoff;

/// Reason of the Warning Event.
pub(crate) const REASON_NOT_PUBLISHED: &str = "OutputsNotPublished";

/// Pods per page of the watch's lists: a pod is read whole (its status is
/// not in its metadata) and may be large.
const POD_PAGE_SIZE: u32 = 10;

/// A captured pod as the watch decodes it: serde skips every other field
/// (containers, volumes, other statuses) without keeping it.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct WatchedPod {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Option<WatchedPodSpec>,
    #[serde(default)]
    pub status: Option<WatchedPodStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WatchedPodSpec {
    pub termination_grace_period_seconds: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WatchedPodStatus {
    pub phase: Option<String>,
    #[serde(default)]
    pub init_container_statuses: Vec<ContainerStatus>,
}

crate::runtime::kube_client::slim_resource!(WatchedPod, Pod);

impl WatchedPod {
    /// The pod as [`publish_failure`] reads it: identity, owners, grace
    /// period, phase and the agent's status (no other container's).
    pub(crate) fn into_pod(self) -> Pod {
        let m = self.metadata;
        let metadata = ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            owner_references: m.owner_references.map(|o| o.into_iter().filter(|o| o.controller == Some(true)).collect()),
            ..Default::default()
        };
        let spec = self
            .spec
            .map(|s| PodSpec { termination_grace_period_seconds: s.termination_grace_period_seconds, ..Default::default() });
        let status = self.status.map(|s| PodStatus {
            phase: s.phase,
            init_container_statuses: Some(s.init_container_statuses.into_iter().filter(|c| c.name == AGENT_CONTAINER).collect()),
            ..Default::default()
        });
        Pod { metadata, spec, status }
    }
}

/// Pure: whether the server may write about a loss in namespace `ns` on the
/// Job `job`: an environment (labelled, never one of the cluster's own nor the
/// server's) and a Job admission admitted there. Anywhere else a `capture`
/// label is a tenant's own, and the server leaves it alone.
pub(crate) fn acts_on(ns: &ObjectMeta, job: &ObjectMeta, server_namespace: &str) -> bool {
    let name = ns.name.as_deref().unwrap_or_default();
    let environment = ns.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_ENVIRONMENT));
    let admitted = job.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_ADMITTED));
    environment && admitted && !never_environment(name, server_namespace)
}

/// Pure: why the agent of this pod did not publish its outputs, when the pod
/// succeeded (its main containers all exited 0) but the agent ended with a
/// non-zero exit code. `None`: published, nothing to publish, or not ended yet.
pub(crate) fn publish_failure(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Succeeded") {
        return None;
    }
    let agent = status.init_container_statuses.as_deref()?.iter().find(|c| c.name == AGENT_CONTAINER)?;
    let ended = agent.state.as_ref()?.terminated.as_ref()?;
    if ended.exit_code == 0 {
        return None;
    }
    let message = one_line(ended.message.as_deref().unwrap_or_default());
    if message.starts_with(OUTPUTS_NOT_PUBLISHED) {
        return Some(message);
    }
    let grace = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
    let how = match (ended.exit_code, ended.reason.as_deref()) {
        (137, _) => "was killed".to_string(),
        (code, Some(reason)) if !reason.is_empty() => format!("ended with exit code {code} ({reason})"),
        (code, _) => format!("ended with exit code {code}"),
    };
    let hint = if grace < AGENT_MIN_GRACE_SECONDS {
        format!("; the pod's terminationGracePeriodSeconds ({grace}s) is below the agent's minimum of {AGENT_MIN_GRACE_SECONDS}s")
    } else {
        String::new()
    };
    Some(format!("{OUTPUTS_NOT_PUBLISHED}: the agent {how} before it could publish{hint}"))
}

/// Pure: the loss recorded on a Job (its `outputs` annotation), if any.
pub(crate) use lifecycle_contract::run::recorded_loss;

/// Pure: whether a loss seen on `pod` still has to be recorded on `job`: not
/// if recorded already, nor if the server did publish this pod's outputs (the
/// agent then only missed the answer).
pub(crate) fn needs_record(job: &Job, pod_uid: &str) -> bool {
    recorded_loss(job).is_none() && published_by(job).is_none_or(|(_, uid)| uid != pod_uid)
}

/// Pure: the merge patch that records the loss, conditional on the Job's version.
pub(crate) fn record_patch(resource_version: &str, why: &str) -> serde_json::Value {
    json!({ "metadata": { "resourceVersion": resource_version, "annotations": { ANNOTATION_OUTPUTS: why } } })
}

/// Handle on the watch: ready once the pods that ended before it started are handled.
#[derive(Clone)]
pub(crate) struct LossWatch {
    synced: watch::Receiver<bool>,
}

impl LossWatch {
    pub(crate) async fn wait_until_synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The watch of succeeded captured pods (run by the server's supervisor) and its handle.
pub(crate) fn start(
    client: Client,
    instance: String,
    metrics: std::sync::Arc<crate::runtime::metrics::Metrics>,
) -> (LossWatch, impl std::future::Future<Output = ()> + Send + 'static) {
    let (tx, rx) = watch::channel(false);
    let task = async move {
        let api: Api<WatchedPod> = Api::all(client.clone());
        // Only pods that ended well and carry the capture label: few, and
        // nothing is kept once handled.
        let config = crate::runtime::kube_client::watch_config()
            .labels(LABEL_CAPTURE)
            .fields("status.phase=Succeeded")
            .page_size(POD_PAGE_SIZE);
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(WatchEvent::Apply(pod)) | Ok(WatchEvent::InitApply(pod)) => {
                    let pod = pod.into_pod();
                    if let Some(why) = publish_failure(&pod)
                        && record(&client, &instance, &pod, &why).await == Recorded::Now
                    {
                        metrics.outputs_lost.inc();
                    }
                }
                Ok(WatchEvent::InitDone) => {
                    let _ = tx.send(true);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "captured pod watch error; retrying with backoff"),
            }
        }
    };
    (LossWatch { synced: rx }, task)
}

/// Records the loss on the pod's Job once, retrying a while: at start the
/// Job webhook this very patch goes through may not be served yet. The watch
/// waits for it, so the controller starts only after the losses of pods that
/// ended while no server ran are recorded.
async fn record(client: &Client, instance: &str, pod: &Pod, why: &str) -> Recorded {
    let mut delays = Backoff::new(RETRY_FIRST, RETRY_MAX, RETRY_ATTEMPTS);
    for attempt in 1.. {
        match try_record(client, instance, pod, why).await {
            Ok(recorded) => return recorded,
            Err(e) => {
                let Some(delay) = delays.next() else { break };
                tracing::warn!(pod = %pod.name_any(), attempt, error = %e, "recording lost outputs on the Job; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
    tracing::error!(pod = %pod.name_any(), reason = %why, "could not record lost outputs on the Job; the next restart tries again");
    Recorded::Failed
}

/// What [`record`] did: the `outputs_lost` metric counts each loss once,
/// where it is recorded (not on every replica, nor again after a restart).
#[derive(Debug, PartialEq, Eq)]
enum Recorded {
    Now,
    /// Recorded earlier (or by another replica), or the Job is gone.
    Already,
    Failed,
}

const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(500);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(10);
/// About a minute and a half in all.
const RETRY_ATTEMPTS: u32 = 12;

async fn try_record(client: &Client, instance: &str, pod: &Pod, why: &str) -> Result<Recorded, String> {
    let Some(ns) = pod.namespace() else { return Ok(Recorded::Already) };
    let Some(owner) = controller_job(&pod.metadata) else { return Ok(Recorded::Already) };
    // Never in the cluster's namespaces, not even to read.
    if never_environment(&ns, client.default_namespace()) {
        return Ok(Recorded::Already);
    }
    let namespace = match Api::<Namespace>::all(client.clone()).get_metadata_opt(&ns).await {
        Ok(Some(n)) => n.metadata,
        Ok(None) => return Ok(Recorded::Already),
        Err(e) => return Err(format!("reading namespace {ns}: {}", super::error::short(&e))),
    };
    // Metadata only: the record reads the Job's annotations and labels, never its spec.
    let jobs: Api<PartialObjectMeta<Job>> = Api::namespaced(client.clone(), &ns);
    let job = match jobs.get_metadata_opt(&owner.name).await {
        Ok(Some(j)) if j.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
            Job { metadata: j.metadata, ..Default::default() }
        }
        Ok(_) => return Ok(Recorded::Already),
        Err(e) => return Err(format!("reading Job {ns}/{}: {}", owner.name, super::error::short(&e))),
    };
    if !acts_on(&namespace, &job.metadata, client.default_namespace()) {
        tracing::debug!(namespace = %ns, job = %owner.name, "a captured pod outside the environments: nothing recorded");
        return Ok(Recorded::Already);
    }
    if !needs_record(&job, &pod.uid().unwrap_or_default()) {
        return Ok(Recorded::Already);
    }
    let rv = job.metadata.resource_version.clone().unwrap_or_default();
    let params = PatchParams { field_manager: Some(SUMMARY_FIELD_MANAGER.into()), ..Default::default() };
    match jobs.patch(&owner.name, &params, &Patch::Merge(record_patch(&rv, why))).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Recorded::Already),
        // 409: the Job changed meanwhile (its status, or another replica
        // recorded the loss): read it again.
        Err(e) => return Err(format!("patching Job {ns}/{}: {}", owner.name, super::error::short(&e))),
    }
    tracing::warn!(namespace = %ns, job = %owner.name, pod = %pod.name_any(), reason = %why, "outputs not published");
    let mut refs = vec![job_ref(&ns, &owner.name, &owner.uid)];
    if let Some(t) = template_of(&job) {
        refs.push(job_ref(&ns, &t.name, &t.uid));
    }
    let note = format!("pod {}: {why}", pod.name_any());
    events::emit(client, instance, &refs, EventType::Warning, REASON_NOT_PUBLISHED, note).await;
    Ok(Recorded::Now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus, PodSpec, PodStatus};
    use kube::core::ObjectMeta;
    use lifecycle_contract::names::ANNOTATION_OUTPUTS_PUBLISHED_BY;
    use std::collections::BTreeMap;

    fn pod(phase: &str, agent_exit: Option<(i32, Option<&str>)>, grace: Option<i64>) -> Pod {
        let agent = agent_exit.map(|(code, msg)| ContainerStatus {
            name: AGENT_CONTAINER.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    message: msg.map(Into::into),
                    reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        Pod {
            spec: Some(PodSpec { termination_grace_period_seconds: grace, ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                init_container_statuses: agent.map(|a| vec![a]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn job(annotations: &[(&str, &str)]) -> Job {
        Job {
            metadata: ObjectMeta {
                annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_agents_own_reason_is_taken() {
        let why = "outputs not published: gave up after 9 attempts in 57.0s: connection refused";
        assert_eq!(publish_failure(&pod("Succeeded", Some((1, Some(why))), Some(60))).as_deref(), Some(why));
    }

    #[test]
    fn a_killed_agent_is_a_loss_with_a_hint() {
        let why = publish_failure(&pod("Succeeded", Some((137, None)), Some(5))).unwrap();
        assert!(why.starts_with("outputs not published: the agent was killed before it could publish"), "{why}");
        assert!(why.contains("(5s) is below the agent's minimum"), "{why}");
        let why = publish_failure(&pod("Succeeded", Some((2, Some("panic"))), Some(90))).unwrap();
        assert_eq!(why, "outputs not published: the agent ended with exit code 2 (Error) before it could publish");
    }

    #[test]
    fn published_or_unfinished_or_failed_pods_are_not_a_loss() {
        assert_eq!(publish_failure(&pod("Succeeded", Some((0, None)), None)), None);
        assert_eq!(publish_failure(&pod("Running", Some((1, Some("x"))), None)), None);
        assert_eq!(publish_failure(&pod("Failed", Some((1, Some("x"))), None)), None);
        assert_eq!(publish_failure(&pod("Succeeded", None, None)), None);
        assert_eq!(publish_failure(&Pod::default()), None);
    }

    #[test]
    fn only_the_admitted_jobs_of_environments_are_written_to() {
        let meta = |name: &str, labels: &[&str]| ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels.iter().map(|l| (l.to_string(), String::new())).collect()),
            ..Default::default()
        };
        let job = meta("seed", &[LABEL_ADMITTED]);
        assert!(acts_on(&meta("env", &[LABEL_ENVIRONMENT]), &job, "lifecycle-jobs-system"));
        assert!(!acts_on(&meta("env", &[]), &job, "lifecycle-jobs-system"), "not an environment");
        assert!(!acts_on(&meta("env", &[LABEL_ENVIRONMENT]), &meta("seed", &[]), "lifecycle-jobs-system"), "never admitted");
        for never in ["kube-system", "default", "custom-system"] {
            assert!(!acts_on(&meta(never, &[LABEL_ENVIRONMENT]), &job, "custom-system"), "{never}");
        }
        // The server's namespace is its setting: the default one is an ordinary
        // namespace when the server runs elsewhere (as for the controller).
        assert!(acts_on(&meta("lifecycle-jobs-system", &[LABEL_ENVIRONMENT]), &job, "custom-system"));
    }

    #[test]
    fn the_watch_keeps_only_what_it_reads_of_a_pod() {
        let big = "x".repeat(100_000);
        let raw = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "env", "uid": "u", "annotations": {"big": big},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "seed", "uid": "j", "controller": true}]},
            "spec": {"terminationGracePeriodSeconds": 5, "containers": [{"name": "main", "env": [{"name": "BIG", "value": big}]}]},
            "status": {"phase": "Succeeded", "initContainerStatuses": [
                {"name": AGENT_CONTAINER, "image": "a", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 137}}},
                {"name": "other", "image": "a", "imageID": "", "ready": false, "restartCount": 0}]}
        });
        let pod = serde_json::from_value::<WatchedPod>(raw).unwrap().into_pod();
        assert!(serde_json::to_string(&pod).unwrap().len() < 1000);
        assert_eq!(controller_job(&pod.metadata).unwrap().name, "seed");
        assert!(publish_failure(&pod).unwrap().contains("(5s) is below"));
    }

    #[test]
    fn records_are_read_and_written_once() {
        let why = "outputs not published: server down";
        let lost = job(&[(ANNOTATION_OUTPUTS, why)]);
        assert_eq!(recorded_loss(&lost), Some(why));
        assert!(!needs_record(&lost, "u1"));
        let published = job(&[(ANNOTATION_OUTPUTS, r#"{"A":"1"}"#), (ANNOTATION_OUTPUTS_PUBLISHED_BY, "p/u1")]);
        assert_eq!(recorded_loss(&published), None);
        assert!(!needs_record(&published, "u1"), "the server published this pod's outputs");
        assert!(needs_record(&published, "u2"), "another pod's loss");
        assert!(needs_record(&job(&[]), "u1"));
        let patch = record_patch("42", why);
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(patch["metadata"]["annotations"][ANNOTATION_OUTPUTS], why);
    }
}
