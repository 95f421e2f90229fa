//! Deleting a lifecycle template removes its outputs' keys: the environment
//! reconcile puts the `outputs-cleanup` finalizer on every template before its
//! first run; this controller, over the metadata of every Job, runs the cleanup
//! when a Job carrying it is deleted — in any namespace, even one that stopped
//! being an environment — and then removes the finalizer (kube-runtime's
//! finalizer helper). The runs go with the template (ownerReferences).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use lifecycle_contract::JobId;
use lifecycle_contract::names::ANNOTATION_JOB_ID;

use super::keys::FINALIZER_OUTPUTS_CLEANUP;

pub type JobMeta = PartialObjectMeta<Job>;

/// The cleanup failed: the finalizer stays, and it is tried again.
#[derive(Debug, thiserror::Error)]
#[error("removing the outputs of JOBID {job_id}: {source}")]
pub struct CleanupError {
    pub job_id: JobId,
    pub source: crate::outputs::Error,
}

pub type Error = kube::runtime::finalizer::Error<CleanupError>;

pub struct Ctx {
    pub client: kube::Client,
}

/// The JOBID whose keys a deleted template leaves behind.
pub fn job_id(job: &JobMeta) -> JobId {
    JobId::derive(job.annotations().get(ANNOTATION_JOB_ID).map(String::as_str), &job.name_any())
}

/// Keeps of a Job's metadata only what this controller and the finalizer
/// helper read, so that the store of every Job of the cluster stays small
/// whatever annotations, labels or managedFields tenants put on their Jobs.
pub fn slim(job: &mut JobMeta) {
    let m = &mut job.metadata;
    m.managed_fields = None;
    m.labels = None;
    m.owner_references = None;
    m.generate_name = None;
    if let Some(a) = m.annotations.as_mut() {
        a.retain(|k, _| k == ANNOTATION_JOB_ID);
    }
}

/// The one call into the outputs store.
async fn remove_outputs(client: &kube::Client, namespace: &str, job_id: &JobId) -> Result<(), crate::outputs::Error> {
    crate::outputs::store::remove_job_outputs(client, namespace, job_id).await
}

pub async fn reconcile(job: Arc<JobMeta>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    // Only Jobs that carry the finalizer: the helper would add it to any other.
    if !job.finalizers().iter().any(|f| f == FINALIZER_OUTPUTS_CLEANUP) {
        return Ok(Action::await_change());
    }
    let namespace = job.namespace().unwrap_or_default();
    let api: Api<JobMeta> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER_OUTPUTS_CLEANUP, job, |event| async {
        match event {
            Finalizer::Apply(_) => Ok(Action::await_change()),
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

pub fn error_policy(job: Arc<JobMeta>, error: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(namespace = job.namespace().unwrap_or_default(), job = %job.name_any(), %error, "template cleanup failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;

    #[test]
    fn job_id_of_a_template() {
        let mut m = JobMeta { metadata: ObjectMeta { name: Some("seed-db".into()), ..Default::default() }, ..Default::default() };
        assert_eq!(job_id(&m).as_str(), "SEED_DB");
        m.metadata.annotations = Some([(ANNOTATION_JOB_ID.to_string(), "zf138d9c8".to_string())].into());
        assert_eq!(job_id(&m).as_str(), "ZF138D9C8");
    }

    #[test]
    fn slim_keeps_what_the_cleanup_reads() {
        let mut m = JobMeta {
            metadata: ObjectMeta {
                name: Some("seed".into()),
                namespace: Some("env".into()),
                uid: Some("u".into()),
                finalizers: Some(vec![FINALIZER_OUTPUTS_CLEANUP.into()]),
                annotations: Some(
                    [(ANNOTATION_JOB_ID.to_string(), "Z1".to_string()), ("big".to_string(), "x".repeat(200_000))].into(),
                ),
                labels: Some([("a".to_string(), "b".to_string())].into()),
                managed_fields: Some(vec![Default::default()]),
                ..Default::default()
            },
            ..Default::default()
        };
        slim(&mut m);
        assert_eq!(job_id(&m).as_str(), "Z1");
        assert_eq!(m.finalizers(), [FINALIZER_OUTPUTS_CLEANUP.to_string()]);
        assert_eq!((m.name_any(), m.namespace(), m.uid()), ("seed".into(), Some("env".into()), Some("u".into())));
        assert_eq!(m.annotations().len(), 1);
        assert!(m.metadata.managed_fields.is_none() && m.metadata.labels.is_none());
    }
}
