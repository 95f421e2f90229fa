//! Executes the plans of one environment: read a fresh snapshot, plan, write,
//! again until nothing is left. The API calls go through [`Cluster`], which the
//! tests implement in memory (and make fail at any call, like a controller
//! killed at that moment).

use std::collections::BTreeSet;
use std::future::Future;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use lifecycle_contract::lifecycle_job::{self, JobKind};
use lifecycle_contract::names::{
    ANNOTATION_FORCE_RUN, ANNOTATION_STATUS, INJECTED_SOURCES, LABEL_ADMITTED, LABEL_GATED, LABEL_RUN, SourceKind,
};
use serde_json::{Value, json};

use super::gate::{GatedPod, release_patch};
use super::keys::{ANNOTATION_LAST_RUNS, ANNOTATION_OBSERVED, ANNOTATION_REPLICAS_BEFORE_STOP, ANNOTATION_TRANSITION};
use super::model::{ListedRun, ListedWorkload, Workload, WorkloadKind, template_skeleton, workload_of};
use super::model::{Outcome, RunRecord, RunResult, Transition};
use super::model::{Rollout, WantedState};
use super::plan::{NsReport, NsStep, Report, Snapshot, Step, TemplateStep, plan};
use super::rollout::{Action, SourceState, When, action, behind, due, outputs_hash, workload_of_pod};
use super::run_job::{RunFacts, build_run_with, is_same_run};
use super::scale::{StartPatch, start_patch, stop_patch};
use super::templates::{needs_suspended_condition, suspended_status_patch};
use crate::runtime::kube_client::{FULL_OBJECT_PAGE_SIZE, for_each_page, get_whole, list_all_metadata, list_page, object_ref};
use crate::runtime::text::{cut, event_note};

/// Jobs per page of the metadata-only list of an environment's Jobs (each at
/// most the API server's 256 KiB of annotations, plus managedFields).
const METADATA_PAGE_SIZE: u32 = 20;
use crate::runtime::metrics::{Metrics, RunLabels};
use lifecycle_contract::Event;

/// Plans executed per reconcile before handing back to the queue.
const MAX_ROUNDS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A conditional write lost against another writer: read again and plan again.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// The in-memory cluster of the tests, killed at a chosen call.
    #[cfg(test)]
    #[error("injected crash")]
    Crash,
}

impl Error {
    fn from_kube(e: kube::Error) -> Error {
        match &e {
            kube::Error::Api(s) if s.code == 409 => Error::Conflict(s.message.clone()),
            _ => Error::Kube(e),
        }
    }
}

/// What creating a run Job found.
#[derive(Debug)]
pub(crate) enum Created {
    New,
    /// A Job of that name already exists (this run, created before a crash — or a collision).
    Exists(Box<Job>),
}

/// Where a report goes: the template it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The API calls of the environment controller.
pub(crate) trait Cluster: Sync {
    fn get_namespace(&self, name: &str) -> impl Future<Output = Result<Option<Namespace>, Error>> + Send;
    /// The environment's templates and runs, as the planner reads them: a
    /// template's metadata of the contract with a skeleton spec
    /// ([`super::model::template_skeleton`]), a run's metadata and conditions
    /// ([`super::model::ListedRun`]). Never a whole Job: their specs may be large.
    fn list_jobs(&self, ns: &str) -> impl Future<Output = Result<Vec<Job>, Error>> + Send;
    /// Shows a template the server manages as `Suspended` (its status), unless
    /// it already is ([`super::templates::needs_suspended_condition`]).
    fn show_template_suspended(&self, ns: &str, name: &str, uid: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// One template, whole (its spec is what a run copies); `None` if it is gone.
    fn get_template(&self, ns: &str, name: &str) -> impl Future<Output = Result<Option<Job>, Error>> + Send;
    fn create_job(&self, ns: &str, job: &Job) -> impl Future<Output = Result<Created, Error>> + Send;
    /// JSON merge patch; a `metadata.resourceVersion` in it is a precondition.
    fn patch_job(&self, ns: &str, name: &str, patch: &Value) -> impl Future<Output = Result<(), Error>> + Send;
    fn patch_namespace(&self, name: &str, patch: &Value) -> impl Future<Output = Result<(), Error>> + Send;
    fn delete_namespace(&self, name: &str, uid: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// One page of the workloads of `kind` from `continue_` (`None`: the first),
    /// and the token of the next page (`None`: that was the last).
    fn list_workloads(
        &self,
        ns: &str,
        kind: WorkloadKind,
        continue_: Option<String>,
    ) -> impl Future<Output = Result<(Vec<Workload>, Option<String>), Error>> + Send;
    fn patch_workload(&self, ns: &str, w: &Workload, patch: &Value) -> impl Future<Output = Result<(), Error>> + Send;
    /// The fingerprint of the environment's injected sources ([`super::rollout::outputs_hash`]).
    fn outputs_hash(&self, ns: &str) -> impl Future<Output = Result<String, Error>> + Send;
    /// Events and metrics; never fails (a lost Event is logged).
    fn report(&self, template: &TemplateRef, report: &Report) -> impl Future<Output = ()> + Send;
    /// Events on the namespace; never fails.
    fn report_namespace(&self, ns: &str, uid: &str, report: &NsReport) -> impl Future<Output = ()> + Send;
    /// The workloads that have a pod not gated (one that has started, or will
    /// start on the values of its admission): [`super::rollout::workload_of_pod`].
    fn workloads_with_started_pods(
        &self,
        ns: &str,
    ) -> impl Future<Output = Result<BTreeSet<(WorkloadKind, String)>, Error>> + Send;
    /// The pods carrying the start-jobs gate label.
    fn list_gated_pods(&self, ns: &str) -> impl Future<Output = Result<Vec<GatedPod>, Error>> + Send;
    /// Removes the start-jobs gate and its label from a pod (a pod gone is fine).
    fn release_pod(&self, ns: &str, pod: &GatedPod) -> impl Future<Output = Result<(), Error>> + Send;
    /// Tells gated pods why they wait (an Event on each, once); never fails.
    fn tell_gated(&self, ns: &str, pods: &[GatedPod], note: &str) -> impl Future<Output = ()> + Send;
}

/// How a reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Done {
    /// Runs in flight, a transition, or an event waiting: look again soon.
    pub busy: bool,
}

/// Brings one environment as far as it can go now.
pub(crate) async fn reconcile_env<C: Cluster>(c: &C, name: &str, now: impl Fn() -> String) -> Result<Done, Error> {
    for _ in 0..MAX_ROUNDS {
        let Some(ns) = c.get_namespace(name).await? else {
            return Ok(Done { busy: false });
        };
        let env = lifecycle_contract::environment::Environment::read(&ns.metadata);
        if !env.is_environment || env.deleting {
            return Ok(Done { busy: false });
        }
        let jobs = c.list_jobs(name).await?;
        let mut snap = Snapshot::new(&ns, jobs);
        snap.gated = c.list_gated_pods(name).await?;
        for p in &snap.ns.env.problems {
            tracing::warn!(namespace = name, "{p}");
        }
        let plan = plan(&snap, &now());
        if let Some(note) = &plan.gated_note {
            c.tell_gated(name, &snap.gated, note).await;
        }
        if plan.steps.is_empty() {
            // Settled: workloads that roll on any change catch up with the outputs.
            let started = snap.ns.env.observed.as_ref().is_some_and(|o| o.state == Some(WantedState::Started));
            if snap.ns.env.transition.is_none() && started {
                rollout(c, name, snap.ns.env.rollout, When::Change).await?;
            }
            return Ok(Done { busy: plan.busy });
        }
        match execute(c, &snap, plan.steps, &plan.status, &plan.ns_reports).await {
            Ok(()) => {}
            Err(Error::Conflict(m)) => tracing::debug!(namespace = name, "conflict, planning again: {m}"),
            Err(e) => return Err(e),
        }
    }
    Ok(Done { busy: true })
}

async fn execute<C: Cluster>(c: &C, snap: &Snapshot, steps: Vec<Step>, status: &str, reports: &[NsReport]) -> Result<(), Error> {
    for step in steps {
        match step {
            Step::Template(t) => {
                // The run is made for the occurrence the controller took in (`observed`).
                let facts = RunFacts { deploy_id: snap.ns.env.observed.as_ref().and_then(|o| o.deploy_id.as_deref()) };
                template_step(c, &snap.ns.env.namespace, facts, *t).await?
            }
            Step::Namespace(n) => {
                namespace_step(c, snap, n, status).await?;
                for r in reports {
                    c.report_namespace(&snap.ns.env.namespace, &snap.ns.uid, r).await;
                }
            }
            Step::Release(pods) => {
                for pod in &pods {
                    c.release_pod(&snap.ns.env.namespace, pod).await?;
                }
                tracing::info!(namespace = %snap.ns.env.namespace, pods = pods.len(), "start-jobs gate removed");
            }
        }
    }
    Ok(())
}

async fn template_step<C: Cluster>(c: &C, ns: &str, facts: RunFacts<'_>, mut t: TemplateStep) -> Result<(), Error> {
    if let Some(finalizers) = &t.finalizers {
        // A template is new to the controller until it has the finalizer: its
        // status first, so that a restart between the two writes still makes both.
        c.show_template_suspended(ns, &t.name, &t.uid).await?;
        let patch = json!({"metadata": {"resourceVersion": t.resource_version, "finalizers": finalizers}});
        c.patch_job(ns, &t.name, &patch).await?;
        tracing::info!(namespace = ns, template = %t.name, "added the outputs-cleanup finalizer");
        // Any other change of this step needs the new resourceVersion: planned again.
        return Ok(());
    }
    let creates = std::mem::take(&mut t.creates);
    for create in &creates {
        let run = create.job.metadata.name.clone().unwrap_or_default();
        // The plan's run was built from the template as listed (no spec): the
        // run Job is built again from the template read whole, one at a time,
        // and only if it is still the version the plan was made from.
        let built = match c.get_template(ns, &t.name).await? {
            Some(whole)
                if whole.metadata.uid.as_deref() == Some(&t.uid)
                    && whole.metadata.resource_version.as_deref() == Some(&t.resource_version) =>
            {
                build_run_with(&whole, create.event, &create.occurrence, &run, facts)
            }
            _ => return Err(Error::Conflict(format!("template {ns}/{} changed since it was listed", t.name))),
        };
        let job = match built {
            Ok(job) => job,
            Err(e) => {
                let outcome = Outcome { succeeded: false, reason: Some("InvalidTemplate".into()), message: Some(e.to_string()) };
                fail_create(&mut t, create, run, outcome);
                continue;
            }
        };
        match c.create_job(ns, &job).await? {
            Created::New => {
                tracing::info!(namespace = ns, template = %t.name, %run, event = %create.event, occurrence = %create.occurrence, "run created")
            }
            Created::Exists(existing) if is_same_run(&existing, &t.uid, create.event, &create.occurrence) => {
                tracing::info!(namespace = ns, template = %t.name, %run, "run already created (before a restart)")
            }
            Created::Exists(_) => {
                // Another Job holds the name: report the run failed rather than adopt a stranger.
                let outcome = Outcome {
                    succeeded: false,
                    reason: Some("NameConflict".into()),
                    message: Some(format!("another Job named {run} exists in the namespace")),
                };
                fail_create(&mut t, create, run, outcome);
            }
        }
    }
    if t.records.is_some() || t.clear_force_run {
        let mut annotations = serde_json::Map::new();
        if let Some(records) = &t.records {
            annotations.insert(ANNOTATION_LAST_RUNS.into(), Value::String(records.to_json()));
        }
        if t.clear_force_run {
            annotations.insert(ANNOTATION_FORCE_RUN.into(), Value::Null);
        }
        let patch = json!({"metadata": {"resourceVersion": t.resource_version, "annotations": annotations}});
        c.patch_job(ns, &t.name, &patch).await?;
    }
    let target = TemplateRef { namespace: ns.to_string(), name: t.name.clone(), uid: t.uid.clone() };
    for r in &t.reports {
        c.report(&target, r).await;
    }
    Ok(())
}

/// A run that could not be created: recorded failed and reported, instead of started.
fn fail_create(t: &mut TemplateStep, create: &super::plan::Create, run: String, outcome: Outcome) {
    let max = 300;
    if let Some(records) = t.records.as_mut()
        && let Some(rec) = records.get(create.slot).cloned()
    {
        records.set(
            create.slot,
            RunRecord {
                result: RunResult::Failed,
                reason: outcome.reason.clone(),
                message: outcome.message.as_deref().map(|m| cut(m, max)),
                ..rec
            },
        );
    }
    t.reports.retain(|r| !matches!(r, Report::RunStarted { run: r, .. } if *r == run));
    t.reports.push(Report::RunEnded { event: create.event, run, forced: create.slot == super::model::Slot::Force, outcome });
}

/// A conditional patch of the namespace's annotations, `status` included.
fn ns_patch(rv: &str, status: &str, mut annotations: Value) -> Value {
    annotations[ANNOTATION_STATUS] = Value::String(status.to_string());
    json!({"metadata": {"resourceVersion": rv, "annotations": annotations}})
}

fn transition_json(t: &Option<Transition>) -> Value {
    t.as_ref().map_or(Value::Null, json_of)
}

async fn namespace_step<C: Cluster>(c: &C, snap: &Snapshot, step: NsStep, status: &str) -> Result<(), Error> {
    let (name, rv) = (snap.ns.env.namespace.as_str(), snap.ns.resource_version.as_str());
    let ns_patch = |annotations: Value| ns_patch(rv, status, annotations);
    match step {
        NsStep::Begin { observed, transition } => {
            tracing::info!(namespace = name, event = %transition.event, seq = transition.seq, "event taken");
            let annotations = json!({
                ANNOTATION_OBSERVED: json_of(&observed),
                ANNOTATION_TRANSITION: json_of(&transition),
            });
            c.patch_namespace(name, &ns_patch(annotations)).await
        }
        NsStep::Record { observed } => c.patch_namespace(name, &ns_patch(json!({ANNOTATION_OBSERVED: json_of(&observed)}))).await,
        NsStep::Update { transition } => {
            c.patch_namespace(name, &ns_patch(json!({ANNOTATION_TRANSITION: json_of(&transition)}))).await
        }
        NsStep::Advance { next } => {
            if next.is_none() {
                tracing::info!(namespace = name, "transition done");
            }
            c.patch_namespace(name, &ns_patch(json!({ANNOTATION_TRANSITION: transition_json(&next)}))).await
        }
        NsStep::Workloads { event, scale: scales, rollout: policy } => {
            if scales {
                scale(c, name, event).await?;
            }
            if let Some(policy) = policy {
                rollout(c, name, policy, When::StartEnded).await?;
            }
            tracing::info!(namespace = name, %event, "transition done");
            c.patch_namespace(name, &ns_patch(json!({ANNOTATION_TRANSITION: null}))).await
        }
        NsStep::DeleteNamespace => {
            tracing::info!(namespace = name, "delete runs ended: deleting the namespace");
            c.patch_namespace(name, &ns_patch(json!({}))).await?;
            c.delete_namespace(name, &snap.ns.uid).await
        }
        NsStep::CancelDelete { observed } => {
            tracing::info!(namespace = name, "state is no longer deleted: the namespace is kept");
            let annotations = json!({ANNOTATION_OBSERVED: json_of(&observed), ANNOTATION_TRANSITION: null});
            c.patch_namespace(name, &ns_patch(annotations)).await
        }
        NsStep::Status(_) => c.patch_namespace(name, &ns_patch(json!({}))).await,
    }
}

/// A controller annotation's value: the record as JSON text.
fn json_of<T: serde::Serialize>(v: &T) -> Value {
    Value::String(serde_json::to_string(v).expect("records always serialise"))
}

/// Stop: every Deployment and StatefulSet to zero, its count remembered. Start:
/// back to the remembered count.
async fn scale<C: Cluster>(c: &C, ns: &str, event: Event) -> Result<(), Error> {
    let mut pages = Pages::new(&[WorkloadKind::Deployment, WorkloadKind::StatefulSet]);
    while let Some(page) = pages.next(c, ns).await? {
        for w in page {
            scale_one(c, ns, event, &w).await?;
        }
    }
    Ok(())
}

async fn scale_one<C: Cluster>(c: &C, ns: &str, event: Event, w: &Workload) -> Result<(), Error> {
    let patch = match event {
        Event::Stop => stop_patch(w.replicas, w.remembered.as_deref()),
        Event::Start => match start_patch(w.remembered.as_deref()) {
            StartPatch::None => None,
            StartPatch::Patch(p) => Some(p),
            StartPatch::Invalid { patch, value } => {
                tracing::warn!(namespace = ns, workload = %w.name, "annotation {ANNOTATION_REPLICAS_BEFORE_STOP}={value:?} is not a replica count: removed, replicas left alone");
                Some(patch)
            }
        },
        Event::Delete => None,
    };
    if let Some(p) = patch {
        c.patch_workload(ns, w, &p).await?;
        tracing::info!(namespace = ns, kind = ?w.kind, workload = %w.name, %event, "scaled");
    }
    Ok(())
}

/// The workloads of some kinds, a page at a time: a reconcile holds one
/// page of them, never a namespace's worth.
struct Pages<'a> {
    kinds: &'a [WorkloadKind],
    next: Option<String>,
}

impl<'a> Pages<'a> {
    fn new(kinds: &'a [WorkloadKind]) -> Self {
        Pages { kinds, next: None }
    }

    async fn next<C: Cluster>(&mut self, c: &C, ns: &str) -> Result<Option<Vec<Workload>>, Error> {
        let Some((&kind, rest)) = self.kinds.split_first() else { return Ok(None) };
        let (page, next) = c.list_workloads(ns, kind, self.next.take()).await?;
        match next {
            Some(token) => self.next = Some(token),
            None => self.kinds = rest,
        }
        Ok(Some(page))
    }
}

/// Rolls the workloads whose outputs changed (see [`super::rollout`]). Each
/// roll is one patch that also records the new hash, so a repeated call
/// rolls nothing twice.
async fn rollout<C: Cluster>(c: &C, ns: &str, policy: Rollout, when: When) -> Result<(), Error> {
    // Each read once, at the first workload that needs it.
    let mut hash: Option<String> = None;
    let mut started: Option<BTreeSet<(WorkloadKind, String)>> = None;
    let mut pages = Pages::new(&[WorkloadKind::Deployment, WorkloadKind::StatefulSet, WorkloadKind::DaemonSet]);
    while let Some(page) = pages.next(c, ns).await? {
        for w in page.iter().filter(|w| due(&w.roll, policy, when)) {
            let hash = match &hash {
                Some(h) => h,
                None => hash.insert(c.outputs_hash(ns).await?),
            };
            if !behind(&w.roll, hash, policy, when) {
                continue;
            }
            let started = match &started {
                Some(s) => s,
                None => started.insert(c.workloads_with_started_pods(ns).await?),
            };
            let Some(act) = action(&w.roll, hash, policy, when, started.contains(&(w.kind, w.name.clone()))) else { continue };
            c.patch_workload(ns, w, &super::rollout::patch(act, hash)).await?;
            match act {
                Action::Roll => {
                    tracing::info!(namespace = ns, kind = ?w.kind, workload = %w.name, %hash, "rolled: its outputs changed")
                }
                Action::Record => tracing::info!(
                    namespace = ns, kind = ?w.kind, workload = %w.name, %hash,
                    "not rolled: none of its pods has started, they start with the current outputs"
                ),
            }
        }
    }
    Ok(())
}

/// [`Cluster`] on the Kubernetes API.
pub(crate) struct KubeCluster {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub metrics: std::sync::Arc<Metrics>,
    /// UIDs of the gated pods already told why they wait (one Event each; a
    /// restarted controller may tell a pod twice, which is harmless).
    pub told: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Cluster for KubeCluster {
    async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>, Error> {
        Api::<Namespace>::all(self.client.clone()).get_opt(name).await.map_err(Error::from_kube)
    }

    async fn list_jobs(&self, ns: &str) -> Result<Vec<Job>, Error> {
        let mut out = Vec::new();
        // Templates: the Jobs admission admitted (those of the environment, never
        // another's), metadata only; of each, what the planner reads.
        let templates = ListParams::default().labels(&format!("{LABEL_ADMITTED},!{LABEL_RUN}"));
        let api = Api::<PartialObjectMeta<Job>>::namespaced(self.client.clone(), ns);
        for_each_page(&api, &templates, METADATA_PAGE_SIZE, |page| {
            for job in page {
                if matches!(lifecycle_job::kind(&job.metadata), JobKind::Template { .. }) {
                    out.push(template_skeleton(job.metadata));
                }
            }
        })
        .await?;
        // Runs: selected by their label; their metadata and conditions, never their spec.
        let runs = ListParams::default().labels(&format!("{LABEL_ADMITTED},{LABEL_RUN}"));
        let api = Api::<ListedRun>::namespaced(self.client.clone(), ns);
        for_each_page(&api, &runs, FULL_OBJECT_PAGE_SIZE, |page| out.extend(page.into_iter().map(ListedRun::into_job))).await?;
        Ok(out)
    }

    async fn show_template_suspended(&self, ns: &str, name: &str, uid: &str) -> Result<(), Error> {
        let api = Api::<Job>::namespaced(self.client.clone(), ns);
        let Some(job) = get_whole(&api, name).await.map_err(Error::from_kube)? else { return Ok(()) };
        if job.metadata.uid.as_deref() != Some(uid) || !needs_suspended_condition(&job) {
            return Ok(());
        }
        let patch = suspended_status_patch(uid, &super::now());
        match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            // Gone or replaced meanwhile (the UID precondition): nothing to show.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(()),
            Err(e) => Err(Error::from_kube(e)),
        }
    }

    async fn get_template(&self, ns: &str, name: &str) -> Result<Option<Job>, Error> {
        get_whole(&Api::<Job>::namespaced(self.client.clone(), ns), name).await.map_err(Error::from_kube)
    }

    async fn create_job(&self, ns: &str, job: &Job) -> Result<Created, Error> {
        let api = Api::<Job>::namespaced(self.client.clone(), ns);
        match api.create(&PostParams::default(), job).await {
            Ok(_) => Ok(Created::New),
            Err(kube::Error::Api(s)) if s.reason == "AlreadyExists" || s.code == 409 => {
                // Its metadata is all that tells whether it is this run.
                let name = job.metadata.name.as_deref().unwrap_or_default();
                let meta = Api::<PartialObjectMeta<Job>>::namespaced(self.client.clone(), ns);
                let existing = meta.get_metadata(name).await.map_err(Error::from_kube)?;
                Ok(Created::Exists(Box::new(Job { metadata: existing.metadata, ..Default::default() })))
            }
            Err(e) => Err(Error::from_kube(e)),
        }
    }

    async fn patch_job(&self, ns: &str, name: &str, patch: &Value) -> Result<(), Error> {
        Api::<Job>::namespaced(self.client.clone(), ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(Error::from_kube)
    }

    async fn patch_namespace(&self, name: &str, patch: &Value) -> Result<(), Error> {
        Api::<Namespace>::all(self.client.clone())
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(Error::from_kube)
    }

    async fn delete_namespace(&self, name: &str, uid: &str) -> Result<(), Error> {
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
            ..DeleteParams::default()
        };
        match Api::<Namespace>::all(self.client.clone()).delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(Error::from_kube(e)),
        }
    }

    async fn list_workloads(
        &self,
        ns: &str,
        kind: WorkloadKind,
        continue_: Option<String>,
    ) -> Result<(Vec<Workload>, Option<String>), Error> {
        async fn page<K>(
            client: &kube::Client,
            ns: &str,
            kind: WorkloadKind,
            continue_: Option<String>,
        ) -> Result<(Vec<Workload>, Option<String>), Error>
        where
            K: k8s_openapi::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        {
            let api = Api::<ListedWorkload<K>>::namespaced(client.clone(), ns);
            let (items, next) = list_page(&api, &ListParams::default(), FULL_OBJECT_PAGE_SIZE, continue_).await?;
            Ok((items.into_iter().map(|w| workload_of(kind, w)).collect(), next))
        }
        match kind {
            WorkloadKind::Deployment => page::<Deployment>(&self.client, ns, kind, continue_).await,
            WorkloadKind::StatefulSet => page::<StatefulSet>(&self.client, ns, kind, continue_).await,
            WorkloadKind::DaemonSet => page::<DaemonSet>(&self.client, ns, kind, continue_).await,
        }
    }

    async fn outputs_hash(&self, ns: &str) -> Result<String, Error> {
        let mut sources = Vec::new();
        for (_, kind, name) in INJECTED_SOURCES {
            let state = match kind {
                SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(self.client.clone(), ns)
                    .get_opt(name)
                    .await
                    .map_err(Error::from_kube)?
                    .map(|cm| SourceState::ConfigMap(cm.data.unwrap_or_default().into_iter().collect())),
                // Metadata only: no secret material is read for this.
                SourceKind::Secret => Api::<PartialObjectMeta<Secret>>::namespaced(self.client.clone(), ns)
                    .get_metadata_opt(name)
                    .await
                    .map_err(Error::from_kube)?
                    .map(|s| {
                        SourceState::Secret(format!(
                            "{}/{}",
                            s.metadata.uid.unwrap_or_default(),
                            s.metadata.resource_version.unwrap_or_default()
                        ))
                    }),
            };
            sources.push((kind, name, state));
        }
        Ok(outputs_hash(&sources))
    }

    async fn patch_workload(&self, ns: &str, w: &Workload, patch: &Value) -> Result<(), Error> {
        let pp = PatchParams::default();
        let r = match w.kind {
            WorkloadKind::Deployment => {
                Api::<Deployment>::namespaced(self.client.clone(), ns).patch(&w.name, &pp, &Patch::Merge(patch)).await.map(|_| ())
            }
            WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(self.client.clone(), ns)
                .patch(&w.name, &pp, &Patch::Merge(patch))
                .await
                .map(|_| ()),
            WorkloadKind::DaemonSet => {
                Api::<DaemonSet>::namespaced(self.client.clone(), ns).patch(&w.name, &pp, &Patch::Merge(patch)).await.map(|_| ())
            }
        };
        match r {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()), // deleted meanwhile: nothing to scale
            r => r.map_err(Error::from_kube),
        }
    }

    async fn report(&self, t: &TemplateRef, report: &Report) {
        let (event, label) = event_of(report, &t.namespace);
        if let Some((ev, result)) = label {
            self.metrics.runs.get_or_create(&RunLabels { event: ev.as_str(), result }).inc();
        }
        let reference = object_ref::<Job>(&t.namespace, &t.name, &t.uid);
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(namespace = %t.namespace, template = %t.name, error = %e, "could not publish an Event");
        }
    }

    async fn workloads_with_started_pods(&self, ns: &str) -> Result<BTreeSet<(WorkloadKind, String)>, Error> {
        // Metadata only, a page at a time: of each pod only its workload is kept.
        let lp = ListParams::default().labels(&format!("!{LABEL_GATED}"));
        let api = Api::<PartialObjectMeta<Pod>>::namespaced(self.client.clone(), ns);
        let mut out = BTreeSet::new();
        for_each_page(&api, &lp, METADATA_PAGE_SIZE, |page| out.extend(page.iter().filter_map(|p| workload_of_pod(&p.metadata))))
            .await?;
        Ok(out)
    }

    async fn list_gated_pods(&self, ns: &str) -> Result<Vec<GatedPod>, Error> {
        let lp = ListParams::default().labels(LABEL_GATED);
        let list = list_all_metadata(&Api::<Pod>::namespaced(self.client.clone(), ns), &lp).await?;
        Ok(list
            .into_iter()
            .map(|p| GatedPod { name: p.metadata.name.unwrap_or_default(), uid: p.metadata.uid.unwrap_or_default() })
            .collect())
    }

    async fn release_pod(&self, ns: &str, pod: &GatedPod) -> Result<(), Error> {
        let api = Api::<Pod>::namespaced(self.client.clone(), ns);
        match api.patch(&pod.name, &PatchParams::default(), &Patch::Strategic(release_patch())).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::from_kube(e)),
        }
        self.told.lock().expect("told lock").remove(&pod.uid);
        Ok(())
    }

    async fn tell_gated(&self, ns: &str, pods: &[GatedPod], note: &str) {
        for pod in pods {
            if !self.told.lock().expect("told lock").insert(pod.uid.clone()) {
                continue;
            }
            let event = KubeEvent {
                type_: EventType::Normal,
                reason: "WaitingForStartJobs".into(),
                note: Some(event_note(note)),
                action: "Gate".into(),
                secondary: None,
            };
            let reference = object_ref::<Pod>(ns, &pod.name, &pod.uid);
            if let Err(e) = self.recorder.publish(&event, &reference).await {
                tracing::warn!(namespace = ns, pod = %pod.name, error = %e, "could not publish an Event");
            }
        }
    }

    async fn report_namespace(&self, ns: &str, uid: &str, report: &NsReport) {
        tracing::warn!(
            namespace = ns,
            "{}",
            match report {
                NsReport::StartFailed { message } => message,
            }
        );
        self.publish_on_namespace(ns, uid, ns_event_of(report)).await;
    }
}

impl KubeCluster {
    async fn publish_on_namespace(&self, ns: &str, uid: &str, event: KubeEvent) {
        // Recorded in the environment itself (`kubectl get events -n NS`,
        // `kubectl describe namespace NS`), not in `default`.
        let reference = object_ref::<Namespace>(ns, ns, uid);
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(namespace = %ns, error = %e, "could not publish an Event");
        }
    }
}

/// The Kubernetes Event of a namespace report.
pub(crate) fn ns_event_of(report: &NsReport) -> KubeEvent {
    match report {
        NsReport::StartFailed { message } => KubeEvent {
            type_: EventType::Warning,
            reason: "StartFailed".into(),
            note: Some(event_note(message)),
            action: "Start".into(),
            secondary: None,
        },
    }
}

/// The Kubernetes Event and the metric labels of a report.
/// Each run is the Event's related object: the recorder folds repeated Events
/// of one (object, reason, related) into a series, and runs must not be folded
/// into each other.
pub(crate) fn event_of(report: &Report, namespace: &str) -> (KubeEvent, Option<(Event, &'static str)>) {
    let run_ref = |run: &str| Some(object_ref::<Job>(namespace, run, ""));
    let forced = |f: bool| if f { "forced " } else { "" };
    match report {
        Report::RunStarted { event, run, forced: f } => (
            KubeEvent {
                type_: EventType::Normal,
                reason: "RunStarted".into(),
                note: Some(format!("{}{event} run {run} started", forced(*f))),
                action: "CreateRun".into(),
                secondary: run_ref(run),
            },
            Some((*event, "started")),
        ),
        Report::RunEnded { event, run, forced: f, outcome } if outcome.succeeded => (
            KubeEvent {
                type_: EventType::Normal,
                reason: "RunSucceeded".into(),
                note: Some(format!("{}{event} run {run} succeeded", forced(*f))),
                action: "WatchRun".into(),
                secondary: run_ref(run),
            },
            Some((*event, "succeeded")),
        ),
        Report::RunEnded { event, run, forced: f, outcome } => {
            let why = match (&outcome.reason, &outcome.message) {
                (Some(r), Some(m)) => format!("{r}: {m}"),
                (Some(r), None) => r.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => "no reason given".into(),
            };
            (
                KubeEvent {
                    type_: EventType::Warning,
                    reason: "RunFailed".into(),
                    note: Some(event_note(&format!("{}{event} run {run} failed ({why})", forced(*f)))),
                    action: "WatchRun".into(),
                    secondary: run_ref(run),
                },
                Some((*event, "failed")),
            )
        }
        Report::ForceRunIgnored { value, why } => (
            KubeEvent {
                type_: EventType::Warning,
                reason: "ForceRunIgnored".into(),
                note: Some(event_note(&format!("force-run={value:?} ignored and cleared: {why}"))),
                action: "ForceRun".into(),
                secondary: None,
            },
            None,
        ),
    }
}

#[cfg(test)]
mod tests;
