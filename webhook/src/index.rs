//! Jobs by namespace and JOBID, kept by a metadata watch so that admission
//! never calls the API server.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::{Api, ResourceExt};
use lifecycle_contract::JobId;
use lifecycle_contract::names::{ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_JOB_ID, LABEL_RUN, opts_out};
use tokio::sync::watch;

/// One Job that owns a JOBID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEntry {
    pub name: String,
    pub uid: String,
}

type Key = (String, String); // (namespace, name)

#[derive(Default, Debug)]
struct Inner {
    /// (namespace, JOBID) → the Jobs that carry it (normally one).
    by_id: HashMap<(String, JobId), Vec<JobEntry>>,
    /// (namespace, name) → JOBID, to drop the entry on delete.
    by_name: HashMap<Key, JobId>,
}

impl Inner {
    fn insert(&mut self, ns: &str, name: &str, uid: &str, id: JobId) {
        self.remove(ns, name);
        self.by_id
            .entry((ns.to_string(), id.clone()))
            .or_default()
            .push(JobEntry { name: name.to_string(), uid: uid.to_string() });
        self.by_name.insert((ns.to_string(), name.to_string()), id);
    }

    fn remove(&mut self, ns: &str, name: &str) {
        if let Some(id) = self.by_name.remove(&(ns.to_string(), name.to_string())) {
            let key = (ns.to_string(), id);
            if let Some(v) = self.by_id.get_mut(&key) {
                v.retain(|e| e.name != name);
                if v.is_empty() {
                    self.by_id.remove(&key);
                }
            }
        }
    }
}

/// Shared, cheap to clone.
#[derive(Clone, Debug)]
pub struct JobIndex {
    inner: Arc<RwLock<Inner>>,
    ready: watch::Receiver<bool>,
}

/// The JOBID a Job claims in its environment, or `None` when it claims none:
/// opted out of capture, or a run (a run counts as its template).
pub fn claimed_job_id(meta: &kube::core::ObjectMeta, name: &str) -> Option<JobId> {
    let ann = meta.annotations.as_ref();
    if opts_out(ann.and_then(|a| a.get(ANNOTATION_CAPTURE_OUTPUT)).map(String::as_str)) {
        return None;
    }
    if meta.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_RUN)) {
        return None;
    }
    Some(JobId::derive(ann.and_then(|a| a.get(ANNOTATION_JOB_ID)).map(String::as_str), name))
}

impl JobIndex {
    /// An empty index that is ready at once (tests, benchmarks).
    pub fn empty() -> Self {
        let (_tx, rx) = watch::channel(true);
        JobIndex { inner: Arc::default(), ready: rx }
    }

    /// Starts the watch in the background.
    pub fn start(client: kube::Client) -> Self {
        let (tx, rx) = watch::channel(false);
        let index = JobIndex { inner: Arc::default(), ready: rx };
        let inner = index.inner.clone();
        tokio::spawn(async move {
            let api: Api<PartialObjectMeta<Job>> = Api::all(client);
            let mut stream = watcher::watcher(api, crate::kube_client::watch_config()).default_backoff().boxed();
            let mut fresh: Option<Inner> = None;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(WatchEvent::Init) => fresh = Some(Inner::default()),
                    Ok(WatchEvent::InitApply(job)) => {
                        if let Some(f) = fresh.as_mut() {
                            apply(f, &job);
                        }
                    }
                    Ok(WatchEvent::InitDone) => {
                        if let Some(f) = fresh.take() {
                            *inner.write().expect("job index lock") = f;
                        }
                        let _ = tx.send(true);
                    }
                    Ok(WatchEvent::Apply(job)) => apply(&mut inner.write().expect("job index lock"), &job),
                    Ok(WatchEvent::Delete(job)) => {
                        let ns = job.namespace().unwrap_or_default();
                        inner.write().expect("job index lock").remove(&ns, &job.name_any());
                    }
                    Err(e) => tracing::warn!(error = %e, "job watch error; retrying with backoff"),
                }
            }
        });
        index
    }

    pub async fn wait_until_ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Another Job (not `name`) in `namespace` that already claims `id`.
    pub fn other_owner(&self, namespace: &str, id: &JobId, name: &str) -> Option<JobEntry> {
        let inner = self.inner.read().expect("job index lock");
        inner.by_id.get(&(namespace.to_string(), id.clone())).and_then(|v| v.iter().find(|e| e.name != name).cloned())
    }

    /// Records a Job directly (tests; admission does not write the index).
    pub fn record(&self, namespace: &str, name: &str, uid: &str, id: JobId) {
        self.inner.write().expect("job index lock").insert(namespace, name, uid, id);
    }
}

fn apply(inner: &mut Inner, job: &PartialObjectMeta<Job>) {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    // A Job being deleted frees its JOBID for a successor at once.
    if job.metadata.deletion_timestamp.is_some() {
        inner.remove(&ns, &name);
        return;
    }
    match claimed_job_id(&job.metadata, &name) {
        Some(id) => inner.insert(&ns, &name, &job.uid().unwrap_or_default(), id),
        None => inner.remove(&ns, &name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_other_owner_and_forgets_deleted() {
        let idx = JobIndex::empty();
        let id = JobId::derive(None, "seed");
        idx.record("env", "seed", "u1", id.clone());
        assert_eq!(idx.other_owner("env", &id, "seed"), None);
        assert_eq!(idx.other_owner("env", &id, "seed-2").unwrap().name, "seed");
        assert_eq!(idx.other_owner("other", &id, "x"), None);
        idx.inner.write().unwrap().remove("env", "seed");
        assert_eq!(idx.other_owner("env", &id, "x"), None);
    }
}
