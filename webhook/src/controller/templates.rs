//! Deleting a lifecycle template removes its outputs' keys: the environment
//! reconcile puts the `outputs-cleanup` finalizer on every template before its
//! first run; this controller, fed by the server's one Job watch
//! ([`crate::watches::jobs`]), runs the cleanup when a Job carrying it is deleted —
//! even in a namespace that stopped being an environment — and then removes
//! the finalizer (kube-runtime's finalizer helper). The runs go with the
//! template (ownerReferences).
//!
//! A template is admitted with `spec.managedBy` ([`TEMPLATE_MANAGED_BY`]), so
//! the built-in Job controller never looks at it; its `Suspended` condition,
//! which `kubectl get jobs` shows, is written by the environment reconcile
//! when it first sees the template ([`needs_suspended_condition`],
//! [`suspended_status_patch`]).

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use lifecycle_contract::JobId;
use lifecycle_contract::lifecycle_job::{self, JobKind};

use k8s_openapi::api::batch::v1::Job;
use lifecycle_contract::names::{ANNOTATION_ON, TEMPLATE_MANAGED_BY};
use serde_json::{Value, json};

use super::keys::FINALIZER_OUTPUTS_CLEANUP;
pub(crate) use crate::watches::jobs::JobMeta;

/// The cleanup failed: the finalizer stays, and it is tried again.
#[derive(Debug, thiserror::Error)]
#[error("removing the outputs of JOBID {job_id}: {source}")]
pub(crate) struct CleanupError {
    pub job_id: JobId,
    pub source: crate::outputs::Error,
}

pub(crate) type Error = kube::runtime::finalizer::Error<CleanupError>;

/// Reason of the `Suspended` condition the server writes on its templates.
pub(crate) const REASON_TEMPLATE: &str = "LifecycleJobTemplate";

/// Whether the server writes `job`'s `Suspended` condition: it manages the
/// Job (admission set `spec.managedBy` when it was created) and the Job shows
/// no `Suspended` condition yet. A template the built-in Job controller
/// manages (admitted before, or on a cluster without the field) gets the
/// condition from that controller; one another controller manages is left
/// to it.
pub(crate) fn needs_suspended_condition(job: &Job) -> bool {
    let ours = job.spec.as_ref().and_then(|s| s.managed_by.as_deref()) == Some(TEMPLATE_MANAGED_BY);
    let conditions = job.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    ours && !conditions.iter().any(|c| c.type_ == "Suspended" && c.status == "True")
}

/// The status patch (merge, the Job's UID as a precondition) that shows a
/// template as what it is: `Suspended` in `kubectl get jobs`, with a message
/// that says how it runs.
pub(crate) fn suspended_status_patch(uid: &str, now: &str) -> Value {
    let message = format!(
        "a lifecycle job: it never runs itself; lifecycle-jobs creates a run (a Job it owns) on each event of its {ANNOTATION_ON} \
         annotation, or when forced (kubectl lifecycle run)"
    );
    json!({
        "metadata": {"uid": uid},
        "status": {"conditions": [{
            "type": "Suspended", "status": "True", "reason": REASON_TEMPLATE, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now,
        }]}
    })
}

pub(crate) struct Ctx {
    pub client: kube::Client,
}

/// The JOBID whose keys a deleted template leaves behind: the one admission
/// recorded ([`lifecycle_job::job_id`]; a template admitted before JOBIDs were
/// recorded has its name's).
pub(crate) fn job_id(job: &JobMeta) -> JobId {
    lifecycle_job::job_id(&job.metadata).into_id()
}

/// Whether a deleted Job's keys are its to remove: only a lifecycle template
/// that captures its outputs ever publishes under its JOBID and gets the
/// finalizer from the controller. Policy `lifecycle-jobs-server-owned-jobs`
/// keeps anyone else from adding the finalizer; should one still be found on
/// another Job, it is dropped and nothing of the outputs is touched.
pub(crate) fn owns_outputs(job: &JobMeta) -> bool {
    matches!(lifecycle_job::kind(&job.metadata), JobKind::Template { .. }) && lifecycle_job::captures(&job.metadata)
}

/// A Job this controller has to act on: its deletion is asked and it still
/// carries the finalizer.
pub(crate) fn being_deleted(job: &JobMeta) -> bool {
    job.metadata.deletion_timestamp.is_some() && job.finalizers().iter().any(|f| f == FINALIZER_OUTPUTS_CLEANUP)
}

/// The one call into the outputs store.
async fn remove_outputs(client: &kube::Client, namespace: &str, job_id: &JobId) -> Result<(), crate::outputs::Error> {
    crate::outputs::store::remove_job_outputs(client, namespace, job_id).await
}

pub(crate) async fn reconcile(job: Arc<JobMeta>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    // Only Jobs that carry the finalizer: the helper would add it to any other.
    if !job.finalizers().iter().any(|f| f == FINALIZER_OUTPUTS_CLEANUP) {
        return Ok(Action::await_change());
    }
    let namespace = job.namespace().unwrap_or_default();
    let api: Api<JobMeta> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER_OUTPUTS_CLEANUP, job, |event| async {
        match event {
            Finalizer::Apply(_) => Ok(Action::await_change()),
            Finalizer::Cleanup(job) if !owns_outputs(&job) => {
                tracing::warn!(%namespace, job = %job.name_any(), "a Job that is no capturing lifecycle template carried the outputs-cleanup finalizer: removed, outputs left as they are");
                Ok(Action::await_change())
            }
            Finalizer::Cleanup(job) => {
                let id = job_id(&job);
                remove_outputs(&ctx.client, &namespace, &id)
                    .await
                    .map_err(|source| CleanupError { job_id: id.clone(), source })?;
                tracing::info!(%namespace, template = %job.name_any(), job_id = %id, "template deleted: its outputs were removed");
                Ok(Action::await_change())
            }
        }
    })
    .await
}

pub(crate) fn error_policy(job: Arc<JobMeta>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = job.namespace().unwrap_or_default(), job = %job.name_any(), %error, "template cleanup failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;
    use lifecycle_contract::names::{ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_JOB_ID};

    #[test]
    fn job_id_of_a_template() {
        let mut m = JobMeta { metadata: ObjectMeta { name: Some("seed-db".into()), ..Default::default() }, ..Default::default() };
        assert_eq!(job_id(&m).as_str(), "SEED_DB");
        m.metadata.annotations = Some([(ANNOTATION_JOB_ID.to_string(), "zf138d9c8".to_string())].into());
        assert_eq!(job_id(&m).as_str(), "ZF138D9C8");
    }

    #[test]
    fn only_capturing_templates_own_their_outputs() {
        let with = |pairs: &[(&str, &str)]| JobMeta {
            metadata: ObjectMeta {
                name: Some("x".into()),
                annotations: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(owns_outputs(&with(&[(ANNOTATION_ON, "start")])));
        assert!(!owns_outputs(&with(&[(ANNOTATION_JOB_ID, "VICTIM")])), "a plain Job");
        assert!(!owns_outputs(&with(&[(ANNOTATION_ON, "start"), (ANNOTATION_CAPTURE_OUTPUT, "false")])), "opted out");
    }

    #[test]
    fn only_deleted_templates_with_the_finalizer_are_acted_on() {
        let mut m = JobMeta { metadata: ObjectMeta { name: Some("seed".into()), ..Default::default() }, ..Default::default() };
        m.metadata.finalizers = Some(vec![FINALIZER_OUTPUTS_CLEANUP.into()]);
        assert!(!being_deleted(&m));
        m.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()));
        assert!(being_deleted(&m));
        m.metadata.finalizers = Some(vec!["other".into()]);
        assert!(!being_deleted(&m));
    }

    #[test]
    fn the_server_shows_its_own_templates_suspended_once() {
        use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
        let managed = |by: Option<&str>| Job {
            spec: Some(JobSpec { managed_by: by.map(Into::into), ..Default::default() }),
            ..Default::default()
        };
        assert!(needs_suspended_condition(&managed(Some(TEMPLATE_MANAGED_BY))));
        assert!(!needs_suspended_condition(&managed(None)), "the built-in Job controller writes it");
        assert!(!needs_suspended_condition(&managed(Some("kueue.x-k8s.io/multikueue"))), "another controller's");
        let mut done = managed(Some(TEMPLATE_MANAGED_BY));
        let patch = suspended_status_patch("uid-1", "2026-12-07T22:00:00Z");
        let condition: JobCondition = serde_json::from_value(patch["status"]["conditions"][0].clone()).unwrap();
        assert_eq!((condition.type_.as_str(), condition.status.as_str()), ("Suspended", "True"));
        assert_eq!(patch["metadata"]["uid"], "uid-1", "a Job replaced under the same name is not written");
        done.status = Some(JobStatus { conditions: Some(vec![condition]), ..Default::default() });
        assert!(!needs_suspended_condition(&done), "written once");
    }
}
