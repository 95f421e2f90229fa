//! The one watch of Jobs. Three readers need the Jobs of the environments:
//! admission's [`JobIndex`] (who holds a JOBID, which Job is a template), the
//! environment controller (a template or run that changed wakes its
//! environment) and the template cleanup controller (a deleted template's
//! outputs go). One watch feeds them all, so each replica lists and watches
//! Jobs once, and keeps each Job once:
//!
//! - only the Jobs admission labelled [`LABEL_ADMITTED`], i.e. the Jobs of the
//!   environments, never the cluster's (a tenant's Jobs elsewhere, however
//!   large, cost the server nothing);
//! - metadata only, in small pages, stripped on arrival to the fields the
//!   readers use ([`slim`]): no managedFields, no other annotation or label;
//! - one store (kube-runtime's reflector store, which the controllers read)
//!   plus the index, both fed from the same events; the controllers follow
//!   the changes through a fan-out ([`super::shared`], the mechanism the
//!   namespace watch shares).

use std::future::Future;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use lifecycle_contract::names::{
    ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_JOB_ID, ANNOTATION_ON, LABEL_ADMITTED, LABEL_JOB, LABEL_RUN,
};

use super::shared::{Observer, SharedWatch};
use crate::watches::job_index::JobIndexFeed;

/// A Job as the watch keeps it: metadata, stripped by [`slim`].
pub(crate) type JobMeta = PartialObjectMeta<Job>;

/// The annotations and labels some reader uses; every other one is dropped.
const KEPT_ANNOTATIONS: [&str; 3] = [ANNOTATION_ON, ANNOTATION_JOB_ID, ANNOTATION_CAPTURE_OUTPUT];
const KEPT_LABELS: [&str; 2] = [LABEL_RUN, LABEL_JOB];
/// Longest kept value of a kept annotation. A valid one is far shorter (a
/// JOBID is at most 63 characters, `on` lists three events, `capture-output`
/// is `false`); a longer one is cut and marked (`crate::runtime::text::capped`),
/// so that it stays invalid: a JOBID ending in `_` that no valid one equals
/// and no Job may publish under, an `on` that makes no template, a
/// `capture-output` that does not opt out (as the whole value would not).
pub(crate) const MAX_KEPT_VALUE: usize = 256;
/// Finalizers kept by name; beyond this many bytes of them, only ours is kept
/// by name, at its position (the cleanup controller removes it by index),
/// the others as empty strings.
const MAX_FINALIZER_BYTES: usize = 4096;

/// Which Jobs are watched (see the module's doc).
pub(crate) fn watch_config() -> watcher::Config {
    crate::runtime::kube_client::watch_config().labels(LABEL_ADMITTED)
}

/// Keeps of a Job's metadata only what the readers use: its identity,
/// creation (which of two claimants of a JOBID came first), version,
/// deletion, finalizers, controlling owner, and the few names of the
/// contract they read ([`KEPT_ANNOTATIONS`], [`KEPT_LABELS`]), each value cut
/// to [`MAX_KEPT_VALUE`]: what is kept of a Job is bounded whatever its size.
pub(crate) fn slim(job: &mut JobMeta) {
    let m = &mut job.metadata;
    m.managed_fields = None;
    m.generate_name = None;
    m.generation = None;
    m.deletion_grace_period_seconds = None;
    if let Some(a) = m.annotations.take() {
        let kept = a
            .into_iter()
            .filter(|(k, _)| KEPT_ANNOTATIONS.contains(&k.as_str()))
            .map(|(k, v)| (k, crate::runtime::text::capped(v, MAX_KEPT_VALUE)))
            .collect();
        m.annotations = Some(kept);
    }
    if let Some(f) = m.finalizers.as_mut()
        && f.iter().map(String::len).sum::<usize>() > MAX_FINALIZER_BYTES
    {
        match f.iter().position(|f| f == lifecycle_contract::names::FINALIZER_OUTPUTS_CLEANUP) {
            Some(at) => {
                f.truncate(at + 1);
                f[..at].iter_mut().for_each(String::clear);
                f.shrink_to_fit();
            }
            None => *f = vec![String::new()],
        }
    }
    if let Some(l) = m.labels.as_mut() {
        l.retain(|k, _| KEPT_LABELS.contains(&k.as_str()));
    }
    if let Some(o) = m.owner_references.as_mut() {
        o.retain(|o| o.controller == Some(true));
    }
}

/// The readers' handle on the watch; cheap to clone.
pub(crate) type JobWatch = SharedWatch<JobMeta>;

/// Starts the watch; `index` is kept from the same events.
pub(crate) fn start(client: kube::Client, index: JobIndexFeed) -> (JobWatch, impl Future<Output = ()> + Send + 'static) {
    // Metadata only: an `Api` of PartialObjectMeta makes metadata requests.
    let api: Api<JobMeta> = Api::all(client);
    SharedWatch::start(api, watch_config(), slim, index, "job")
}

impl Observer<JobMeta> for JobIndexFeed {
    fn observe(&mut self, event: &Event<JobMeta>) {
        JobIndexFeed::observe(self, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watches::job_index::JobIndex;
    use futures::StreamExt;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::ResourceExt;
    use kube::core::ObjectMeta;
    use lifecycle_contract::names::FINALIZER_OUTPUTS_CLEANUP;

    fn job(name: &str) -> JobMeta {
        let owner = |kind: &str, controller| OwnerReference {
            kind: kind.into(),
            name: "o".into(),
            uid: "ou".into(),
            controller,
            ..Default::default()
        };
        JobMeta {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("env".into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some("7".into()),
                finalizers: Some(vec![FINALIZER_OUTPUTS_CLEANUP.into()]),
                annotations: Some(
                    [
                        (ANNOTATION_JOB_ID.to_string(), "Z1".to_string()),
                        (ANNOTATION_ON.to_string(), "start".to_string()),
                        ("big".to_string(), "x".repeat(200_000)),
                    ]
                    .into(),
                ),
                labels: Some([(LABEL_RUN.to_string(), "3".to_string()), (LABEL_ADMITTED.to_string(), "true".to_string())].into()),
                owner_references: Some(vec![owner("Job", Some(true)), owner("Deployment", None)]),
                managed_fields: Some(vec![Default::default()]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn slim_keeps_what_the_readers_use() {
        let mut m = job("seed");
        slim(&mut m);
        assert_eq!(m.finalizers(), [FINALIZER_OUTPUTS_CLEANUP.to_string()]);
        assert_eq!((m.name_any(), m.namespace(), m.uid()), ("seed".into(), Some("env".into()), Some("uid-seed".into())));
        assert_eq!(m.resource_version().as_deref(), Some("7"));
        assert_eq!(m.annotations().keys().collect::<Vec<_>>(), [ANNOTATION_JOB_ID, ANNOTATION_ON]);
        assert_eq!(m.labels().keys().collect::<Vec<_>>(), [LABEL_RUN]);
        let controller = lifecycle_contract::lifecycle_job::controller(&m.metadata);
        assert_eq!(controller, Some(lifecycle_contract::lifecycle_job::Controller { kind: "Job", name: "o", uid: "ou" }));
        assert_eq!(m.owner_references().len(), 1);
        assert!(m.metadata.managed_fields.is_none());
    }

    #[test]
    fn slim_keeps_a_bounded_amount_and_cut_values_stay_invalid() {
        let mut m = job("big");
        let annotations = m.metadata.annotations.as_mut().unwrap();
        annotations.insert(ANNOTATION_JOB_ID.into(), "V".repeat(250_000));
        annotations.insert(ANNOTATION_ON.into(), format!("start{}", " ".repeat(250_000)));
        annotations.insert(ANNOTATION_CAPTURE_OUTPUT.into(), format!("false{}", "x".repeat(1000)));
        let mut finalizers: Vec<String> = (0..2000).map(|i| format!("example.com/f{i}")).collect();
        finalizers.push(FINALIZER_OUTPUTS_CLEANUP.into());
        m.metadata.finalizers = Some(finalizers);
        slim(&mut m);
        let kept: usize = m.annotations().values().map(String::len).sum();
        assert!(kept <= 3 * MAX_KEPT_VALUE, "{kept}");
        let f = m.finalizers();
        assert_eq!((f.len(), f[2000].as_str()), (2001, FINALIZER_OUTPUTS_CLEANUP), "ours stays at its index");
        assert!(f[..2000].iter().all(String::is_empty));
        // What the readers then see (the contract's reader): no JOBID anyone can hold, no template, no opt-out.
        use lifecycle_contract::lifecycle_job;
        assert!(lifecycle_job::job_id(&m.metadata).id().check().is_err());
        assert!(lifecycle_contract::Event::parse_list(&m.annotations()[ANNOTATION_ON]).is_err());
        assert!(lifecycle_job::captures(&m.metadata));
    }

    #[tokio::test]
    async fn one_watch_feeds_the_index_the_store_and_every_reader() {
        let (index, feed) = JobIndex::new();
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (watch, driving) = SharedWatch::from_events(rx, feed, "job");
        let driver = tokio::spawn(driving);
        let mut slimmed = job("seed");
        slimmed.metadata.labels = None;
        slim(&mut slimmed);
        for ev in [Event::Init, Event::InitApply(slimmed.clone()), Event::InitDone] {
            tx.unbounded_send(Ok(ev)).unwrap();
        }
        index.wait_until_ready().await;
        watch.store().wait_until_ready().await.unwrap();
        let id = lifecycle_contract::JobId::parse("Z1").unwrap();
        let first = index.other_owner("env", &id, &crate::watches::job_index::Claimant::Job("other".into())).expect("indexed");
        assert_eq!(first.name, "seed");
        assert!(index.template("env", "uid-seed").is_some());

        // Both readers: the one that starts with the store sees the stored Job first.
        let mut current = Box::pin(watch.current_and_changes());
        let mut later = Box::pin(watch.changes());
        assert_eq!(current.next().await.unwrap().name_any(), "seed");
        let mut other = job("backup");
        slim(&mut other);
        tx.unbounded_send(Ok(Event::Apply(other.clone()))).unwrap();
        assert_eq!(current.next().await.unwrap().name_any(), "backup");
        assert_eq!(later.next().await.unwrap().name_any(), "backup");
        tx.unbounded_send(Ok(Event::Delete(other))).unwrap();
        assert_eq!(later.next().await.unwrap().name_any(), "backup", "a deleted Job, as last seen");
        assert_eq!(watch.store().state().len(), 1);

        // A reader that fell behind gets the whole store again, and is never stalled.
        for i in 0..crate::watches::shared::CHANGES_BUFFER + 10 {
            let mut j = slimmed.clone();
            j.metadata.resource_version = Some(i.to_string());
            tx.unbounded_send(Ok(Event::Apply(j))).unwrap();
        }
        drop((tx, watch));
        driver.await.unwrap();
        let rest: Vec<_> = later.collect().await;
        assert!(!rest.is_empty() && rest.iter().all(|j| j.name_any() == "seed"));
    }
}
