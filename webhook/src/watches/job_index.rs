//! Jobs of the environments by JOBID, and lifecycle templates by UID, kept by
//! the one Job watch ([`crate::watches::jobs`]) so that admission never calls the
//! API server.
//!
//! The index answers three questions of admission: who already claims a JOBID
//! in an environment (duplicates are refused), which Job is a template (a run
//! must be controlled by one), and whether an environment has delete jobs
//! (its plain `kubectl delete namespace` is refused).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use lifecycle_contract::lifecycle_job;
use lifecycle_contract::{Event, JobId};
use tokio::sync::watch;

use crate::watches::store::Feed;

/// Who holds a JOBID in an environment: the contract's rule
/// ([`lifecycle_contract::lifecycle_job::Claimant`]).
pub(crate) use lifecycle_contract::lifecycle_job::Claimant;

/// One Job that holds a JOBID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEntry {
    pub name: String,
    pub uid: String,
    pub claimant: Claimant,
    /// Its creationTimestamp (RFC 3339), which orders claimants of one JOBID.
    pub created: Option<String>,
}

/// A lifecycle template, as admission needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateEntry {
    pub name: String,
    pub job_id: JobId,
    pub on_delete: bool,
}

type Key = (String, String); // (namespace, name)

#[derive(Default, Debug)]
struct Inner {
    /// (namespace, JOBID) → the Jobs that hold it.
    by_id: HashMap<(String, JobId), Vec<JobEntry>>,
    /// (namespace, name) → JOBID, to drop the entry on delete.
    by_name: HashMap<Key, JobId>,
    /// (namespace, UID) → template.
    templates: HashMap<Key, TemplateEntry>,
    /// (namespace, name) → UID of a template, to drop it on delete.
    template_uids: HashMap<Key, String>,
}

impl Inner {
    fn insert(&mut self, ns: &str, entry: JobEntry, id: JobId) {
        self.remove(ns, &entry.name);
        self.by_name.insert((ns.to_string(), entry.name.clone()), id.clone());
        self.by_id.entry((ns.to_string(), id)).or_default().push(entry);
    }

    fn insert_template(&mut self, ns: &str, uid: &str, t: TemplateEntry) {
        self.template_uids.insert((ns.to_string(), t.name.clone()), uid.to_string());
        self.templates.insert((ns.to_string(), uid.to_string()), t);
    }

    fn remove(&mut self, ns: &str, name: &str) {
        let key = (ns.to_string(), name.to_string());
        if let Some(id) = self.by_name.remove(&key) {
            let id_key = (ns.to_string(), id);
            if let Some(v) = self.by_id.get_mut(&id_key) {
                v.retain(|e| e.name != name);
                if v.is_empty() {
                    self.by_id.remove(&id_key);
                }
            }
        }
        if let Some(uid) = self.template_uids.remove(&key) {
            self.templates.remove(&(ns.to_string(), uid));
        }
    }
}

/// Shared, cheap to clone.
#[derive(Clone, Debug)]
pub struct JobIndex {
    inner: Arc<RwLock<Inner>>,
    ready: watch::Receiver<bool>,
}

impl JobIndex {
    /// An empty index that is ready at once (tests, benchmarks).
    pub fn empty() -> Self {
        let (_tx, rx) = watch::channel(true);
        JobIndex { inner: Arc::default(), ready: rx }
    }

    /// An empty index, not ready, and what keeps it: the one Job watch
    /// ([`crate::watches::jobs`]) hands every event to the feed.
    pub fn new() -> (Self, JobIndexFeed) {
        let (tx, rx) = watch::channel(false);
        let index = JobIndex { inner: Arc::default(), ready: rx };
        let forget =
            |inner: &mut Inner, job: &PartialObjectMeta<Job>| inner.remove(&job.namespace().unwrap_or_default(), &job.name_any());
        (index.clone(), JobIndexFeed(Feed::new(index.inner, tx, apply, forget)))
    }

    pub async fn wait_until_ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// A Job of another claimant in `namespace` that already holds `id`.
    pub fn other_owner(&self, namespace: &str, id: &JobId, claimant: &Claimant) -> Option<JobEntry> {
        let inner = self.inner.read().expect("job index lock");
        inner.by_id.get(&(namespace.to_string(), id.clone())).and_then(|v| v.iter().find(|e| &e.claimant != claimant).cloned())
    }

    /// Every Job in `namespace` that holds `id`, whoever it claims for.
    pub fn holders(&self, namespace: &str, id: &JobId) -> Vec<JobEntry> {
        let inner = self.inner.read().expect("job index lock");
        inner.by_id.get(&(namespace.to_string(), id.clone())).cloned().unwrap_or_default()
    }

    /// Whether the watch's first list is in: before it, a JOBID's holders may be missing.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// The template with this UID in `namespace`.
    pub fn template(&self, namespace: &str, uid: &str) -> Option<TemplateEntry> {
        let inner = self.inner.read().expect("job index lock");
        inner.templates.get(&(namespace.to_string(), uid.to_string())).cloned()
    }

    /// Whether `namespace` has a lifecycle template that runs on delete.
    pub fn has_delete_templates(&self, namespace: &str) -> bool {
        let inner = self.inner.read().expect("job index lock");
        inner.templates.iter().any(|((ns, _), t)| ns == namespace && t.on_delete)
    }

    /// Records a Job directly (tests; admission does not write the index).
    pub fn record(&self, namespace: &str, name: &str, uid: &str, id: JobId) {
        let entry =
            JobEntry { name: name.to_string(), uid: uid.to_string(), claimant: Claimant::Job(name.to_string()), created: None };
        self.inner.write().expect("job index lock").insert(namespace, entry, id);
    }

    /// Records a template directly (tests).
    pub fn record_template(&self, namespace: &str, name: &str, uid: &str, id: JobId, on_delete: bool) {
        self.record(namespace, name, uid, id.clone());
        // (after `record`, which forgets any earlier template of that name)
        let t = TemplateEntry { name: name.to_string(), job_id: id, on_delete };
        self.inner.write().expect("job index lock").insert_template(namespace, uid, t);
    }
}

/// Keeps a [`JobIndex`] from the events of the Job watch.
pub struct JobIndexFeed(Feed<PartialObjectMeta<Job>, Inner>);

impl JobIndexFeed {
    pub fn observe(&mut self, event: &kube::runtime::watcher::Event<PartialObjectMeta<Job>>) {
        self.0.observe(event);
    }
}

fn apply(inner: &mut Inner, job: &PartialObjectMeta<Job>) {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    // A Job being deleted frees its JOBID for a successor at once.
    inner.remove(&ns, &name);
    if job.metadata.deletion_timestamp.is_some() {
        return;
    }
    let uid = job.uid().unwrap_or_default();
    let meta = &job.metadata;
    // What it holds, by the contract's rule (`lifecycle_job::claim`): nothing
    // when opted out of capture or a run. Admission has verified the `run`
    // label and a CronJob owner of every Job it admitted, so they are trusted here.
    if let Some(lifecycle_job::Claim { job_id, claimant }) = lifecycle_job::claim(meta) {
        let created = meta.creation_timestamp.as_ref().map(|t| t.0.to_string());
        inner.insert(&ns, JobEntry { name: name.clone(), uid: uid.clone(), claimant, created }, job_id.into_id());
    }
    // A template, capturing or not: one opted out of capture still runs on
    // its events (a delete job among them keeps the namespace from a plain
    // delete). A Job whose `on` is not a list of events (one cut by the
    // watch, too long to be valid, included) is no template.
    if let Some(events) = lifecycle_job::kind(meta).template_events() {
        let on_delete = events.contains(&Event::Delete);
        let job_id = lifecycle_job::job_id(meta).into_id();
        inner.insert_template(&ns, &uid, TemplateEntry { name, job_id, on_delete });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::core::ObjectMeta;
    use lifecycle_contract::names::{ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_JOB_ID, ANNOTATION_ON, LABEL_RUN};
    use std::collections::BTreeMap;

    fn job(
        name: &str,
        annotations: &[(&str, &str)],
        labels: &[(&str, &str)],
        owner: Option<(&str, &str)>,
    ) -> PartialObjectMeta<Job> {
        let map = |p: &[(&str, &str)]| Some(p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>());
        PartialObjectMeta {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("env".into()),
                uid: Some(format!("uid-{name}")),
                annotations: map(annotations),
                labels: map(labels),
                owner_references: owner.map(|(kind, n)| {
                    vec![OwnerReference {
                        kind: kind.into(),
                        name: n.into(),
                        uid: format!("uid-{n}"),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn finds_other_owner_and_forgets_deleted() {
        let idx = JobIndex::empty();
        let id = JobId::derive(None, "seed");
        idx.record("env", "seed", "u1", id.clone());
        assert_eq!(idx.other_owner("env", &id, &Claimant::Job("seed".into())), None);
        assert_eq!(idx.other_owner("env", &id, &Claimant::Job("seed-2".into())).unwrap().name, "seed");
        assert_eq!(idx.other_owner("other", &id, &Claimant::Job("x".into())), None);
        idx.inner.write().unwrap().remove("env", "seed");
        assert_eq!(idx.other_owner("env", &id, &Claimant::Job("x".into())), None);
    }

    #[test]
    fn runs_claim_nothing_and_cron_jobs_claim_for_their_cron_job() {
        let mut inner = Inner::default();
        apply(&mut inner, &job("backup", &[(ANNOTATION_ON, "stop,delete")], &[], None));
        apply(&mut inner, &job("backup-stop-x", &[(ANNOTATION_JOB_ID, "BACKUP")], &[(LABEL_RUN, "3")], Some(("Job", "backup"))));
        apply(&mut inner, &job("nightly-2911", &[], &[], Some(("CronJob", "nightly"))));
        apply(&mut inner, &job("nightly-2912", &[(ANNOTATION_JOB_ID, "NIGHTLY")], &[], Some(("CronJob", "nightly"))));
        let idx = JobIndex { inner: Arc::new(RwLock::new(inner)), ready: JobIndex::empty().ready };
        let backup = JobId::parse("BACKUP").unwrap();
        assert_eq!(idx.other_owner("env", &backup, &Claimant::Job("backup".into())), None, "the run claims nothing");
        assert!(idx.template("env", "uid-backup").is_some_and(|t| t.on_delete && t.job_id == backup));
        assert!(idx.has_delete_templates("env"));
        assert!(!idx.has_delete_templates("other"));
        // The CronJob's Jobs hold NIGHTLY together (the first by its CronJob's name), nobody else may.
        let nightly = JobId::parse("NIGHTLY").unwrap();
        assert_eq!(idx.other_owner("env", &nightly, &Claimant::CronJob("nightly".into())), None);
        assert_eq!(
            idx.other_owner("env", &nightly, &Claimant::Job("nightly".into())).unwrap().claimant,
            Claimant::CronJob("nightly".into())
        );
    }

    #[test]
    fn an_invalid_on_makes_no_template() {
        let mut inner = Inner::default();
        apply(&mut inner, &job("backup", &[(ANNOTATION_ON, "stop,delete…")], &[], None));
        assert!(inner.templates.is_empty());
        assert_eq!(inner.by_id.len(), 1, "it still holds its JOBID");
    }

    #[test]
    fn an_opted_out_template_is_a_template_that_holds_no_job_id() {
        let mut inner = Inner::default();
        apply(&mut inner, &job("backup", &[(ANNOTATION_ON, "delete"), (ANNOTATION_CAPTURE_OUTPUT, "false")], &[], None));
        assert!(inner.by_id.is_empty(), "it claims no JOBID");
        let idx = JobIndex { inner: Arc::new(RwLock::new(inner)), ready: JobIndex::empty().ready };
        assert!(idx.has_delete_templates("env"), "its delete run still has to run before the namespace goes");
        idx.inner.write().unwrap().remove("env", "backup");
        assert!(!idx.has_delete_templates("env"));
    }

    #[test]
    fn a_deleted_template_is_forgotten() {
        let mut inner = Inner::default();
        apply(&mut inner, &job("backup", &[(ANNOTATION_ON, "delete")], &[], None));
        inner.remove("env", "backup");
        assert!(inner.templates.is_empty() && inner.by_id.is_empty());
    }
}
