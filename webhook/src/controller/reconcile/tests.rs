//! The executor against an in-memory cluster that can be killed at any call:
//! whatever the moment, every event occurrence runs each matching template
//! exactly once and every transition finishes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use lifecycle_contract::names::{
    ANNOTATION_DEPLOY_ID, ANNOTATION_FORCE_RUN, ANNOTATION_ON, LABEL_EVENT, LABEL_JOB, LABEL_RUN, LABEL_STATE,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::*;
use crate::controller::gate::GatedPod;
use crate::controller::keys::FINALIZER_OUTPUTS_CLEANUP;
use crate::controller::model::{LastRuns, Phase};
use crate::controller::rollout::RollTarget;
use lifecycle_contract::annotation::parse_json;
use lifecycle_contract::names::ANNOTATION_OUTPUTS_HASH;
use lifecycle_contract::names::LABEL_ENVIRONMENT;

const NS: &str = "env1";

#[derive(Default)]
struct World {
    ns: Option<Namespace>,
    jobs: BTreeMap<String, Job>,
    workloads: BTreeMap<String, Workload>,
    rv: u64,
    uids: u64,
    calls: u64,
    /// Kill the controller at this call; `true`: the call's write happened (the answer was lost).
    crash: Option<(u64, bool)>,
    created: Vec<String>,
    reports: Vec<(String, Report)>,
    ns_reports: Vec<NsReport>,
    pods: BTreeMap<String, MemPod>,
    told: Vec<(String, String)>,
    /// The runs that published outputs: the environment's outputs.
    outputs: BTreeSet<String>,
    /// Rolls of each workload (patches that changed its outputs-hash).
    rolls: BTreeMap<String, u32>,
    /// Templates shown `Suspended` (their status written).
    shown_suspended: BTreeSet<String>,
    /// Workloads none of whose pods has started (all gated); the others' have,
    /// when they have replicas.
    unstarted: BTreeSet<String>,
}

/// A pod as far as gates go.
#[derive(Debug, Clone, Default)]
struct MemPod {
    uid: String,
    gated: bool,
    /// Times a release removed its gate.
    releases: u32,
}

impl World {
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }
}

struct Mem(Mutex<World>);

fn merge<T: Serialize + DeserializeOwned>(obj: &T, patch: &Value, rv: String) -> Result<T, Error> {
    let mut doc = serde_json::to_value(obj).unwrap();
    let mut patch = patch.clone();
    if let Some(want) = patch.pointer("/metadata/resourceVersion").cloned() {
        if doc.pointer("/metadata/resourceVersion") != Some(&want) {
            return Err(Error::Conflict(format!("resourceVersion {want} is stale")));
        }
        patch["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    }
    json_patch::merge(&mut doc, &patch);
    doc["metadata"]["resourceVersion"] = Value::String(rv);
    Ok(serde_json::from_value(doc).unwrap())
}

impl Mem {
    fn new() -> Mem {
        Mem(Mutex::new(World::default()))
    }

    /// One API call; the crash, if it is this one, before or after its effect.
    fn call<T>(&self, f: impl FnOnce(&mut World) -> Result<T, Error>) -> Result<T, Error> {
        let mut w = self.0.lock().unwrap();
        w.calls += 1;
        if let Some((at, applied)) = w.crash
            && at == w.calls
        {
            w.crash = None;
            if applied {
                let _ = f(&mut w);
            }
            return Err(Error::Crash);
        }
        f(&mut w)
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    // ---- what people and the Job controller do ----

    fn create_env(&self, labels: &[(&str, &str)]) {
        self.with(|w| {
            let mut l: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            l.insert(LABEL_ENVIRONMENT.into(), String::new());
            w.ns = Some(Namespace {
                metadata: ObjectMeta {
                    name: Some(NS.into()),
                    uid: Some("ns-uid".into()),
                    labels: Some(l),
                    resource_version: Some(w.next_rv()),
                    ..Default::default()
                },
                ..Default::default()
            });
        });
    }

    fn set_label(&self, key: &str, value: &str) {
        self.with(|w| {
            let rv = w.next_rv();
            let ns = w.ns.as_mut().unwrap();
            ns.metadata.labels.get_or_insert_default().insert(key.into(), value.into());
            ns.metadata.resource_version = Some(rv);
        });
    }

    fn set_ns_annotation(&self, key: &str, value: &str) {
        self.with(|w| {
            let rv = w.next_rv();
            let ns = w.ns.as_mut().unwrap();
            ns.metadata.annotations.get_or_insert_default().insert(key.into(), value.into());
            ns.metadata.resource_version = Some(rv);
        });
    }

    fn add_template(&self, name: &str, on: &str, extra: &[(&str, &str)]) {
        self.with(|w| {
            w.uids += 1;
            let mut ann: BTreeMap<String, String> = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            ann.insert(ANNOTATION_ON.into(), on.into());
            let job = Job {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(NS.into()),
                    uid: Some(format!("uid-{name}-{}", w.uids)),
                    annotations: Some(ann),
                    resource_version: Some(w.next_rv()),
                    ..Default::default()
                },
                spec: Some(JobSpec {
                    suspend: Some(true),
                    template: PodTemplateSpec {
                        metadata: None,
                        spec: Some(PodSpec {
                            containers: vec![Container {
                                name: "main".into(),
                                image: Some("busybox:local".into()),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
                status: None,
            };
            w.jobs.insert(name.into(), job);
        });
    }

    fn set_job_annotation(&self, name: &str, key: &str, value: &str) {
        self.with(|w| {
            let rv = w.next_rv();
            let job = w.jobs.get_mut(name).unwrap();
            job.metadata.annotations.get_or_insert_default().insert(key.into(), value.into());
            job.metadata.resource_version = Some(rv);
        });
    }

    /// Pod admission: gated when the environment gates now.
    fn admit_pod(&self, name: &str) -> bool {
        self.with(|w| {
            let gated = lifecycle_contract::environment::Environment::read(&w.ns.as_ref().unwrap().metadata).gates_pods();
            w.uids += 1;
            w.pods.insert(name.into(), MemPod { uid: format!("uid-pod-{}", w.uids), gated, releases: 0 });
            gated
        })
    }

    fn gated(&self, name: &str) -> bool {
        self.with(|w| w.pods[name].gated)
    }

    fn add_deployment(&self, name: &str, replicas: i32) {
        self.add_workload(name, replicas, true, None);
    }

    fn add_workload(&self, name: &str, replicas: i32, injected: bool, rollout: Option<&str>) {
        self.with(|w| {
            let roll =
                RollTarget { name: name.into(), outputs_hash: None, recorded: None, injected, rollout: rollout.map(Into::into) };
            w.workloads.insert(
                name.into(),
                Workload { kind: WorkloadKind::Deployment, name: name.into(), replicas: Some(replicas), remembered: None, roll },
            );
        });
    }

    fn rolls(&self, name: &str) -> u32 {
        self.with(|w| w.rolls.get(name).copied().unwrap_or(0))
    }

    fn template_hash(&self, name: &str) -> Option<String> {
        self.with(|w| w.workloads[name].roll.outputs_hash.clone())
    }

    fn current_hash(&self) -> String {
        self.with(|w| mem_hash(&w.outputs))
    }

    /// The Job controller: every run without an end ends, failed when `fail` says so.
    /// Returns how many ended.
    fn finish_runs(&self, fail: impl Fn(&Job) -> bool) -> usize {
        self.with(|w| {
            let names: Vec<String> = w
                .jobs
                .iter()
                .filter(|(_, j)| j.metadata.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_RUN)))
                .filter(|(_, j)| j.status.is_none())
                .map(|(n, _)| n.clone())
                .collect();
            let names_len = names.len();
            for n in names {
                let rv = w.next_rv();
                let job = w.jobs.get_mut(&n).unwrap();
                let failed = fail(job);
                let published = lifecycle_contract::run::publisher(job).is_some();
                if !failed && !published {
                    // The server records the pod that published first; the Job
                    // controller's `Complete` follows at the next turn.
                    let by = lifecycle_contract::names::ANNOTATION_OUTPUTS_PUBLISHED_BY.to_string();
                    job.metadata.annotations.get_or_insert_default().insert(by, format!("{n}-pod/uid-{n}"));
                    job.metadata.resource_version = Some(rv);
                    w.outputs.insert(n.clone());
                    continue;
                }
                let job = w.jobs.get_mut(&n).unwrap();
                job.status = Some(JobStatus {
                    conditions: Some(vec![JobCondition {
                        type_: if failed { "Failed" } else { "Complete" }.into(),
                        status: "True".into(),
                        reason: Some(if failed { "BackoffLimitExceeded" } else { "CompletionsReached" }.into()),
                        message: Some(if failed { "Job has reached the specified backoff limit" } else { "done" }.into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
                job.metadata.resource_version = Some(rv);
            }
            names_len
        })
    }

    // ---- what tests look at ----

    fn runs(&self) -> Vec<(String, String, String)> {
        self.with(|w| {
            let mut v: Vec<_> = w
                .jobs
                .values()
                .filter_map(|j| {
                    let l = j.metadata.labels.as_ref()?;
                    Some((l.get(LABEL_JOB)?.clone(), l.get(LABEL_EVENT)?.clone(), l.get(LABEL_RUN)?.clone()))
                })
                .collect();
            v.sort();
            v
        })
    }

    fn ns_annotation(&self, key: &str) -> Option<String> {
        self.with(|w| w.ns.as_ref()?.metadata.annotations.as_ref()?.get(key).cloned())
    }

    fn last_runs(&self, template: &str) -> LastRuns {
        self.with(|w| {
            let a = w.jobs[template].metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_LAST_RUNS)).cloned();
            parse_json::<LastRuns>(a.as_deref()).unwrap().unwrap_or_default()
        })
    }

    fn replicas(&self, name: &str) -> (Option<i32>, Option<String>) {
        self.with(|w| {
            let d = &w.workloads[name];
            (d.replicas, d.remembered.clone())
        })
    }

    fn ns_deleting(&self) -> bool {
        self.with(|w| w.ns.as_ref().is_some_and(|n| n.metadata.deletion_timestamp.is_some()))
    }
}

impl Cluster for Mem {
    async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>, Error> {
        self.call(|w| Ok(w.ns.clone().filter(|n| n.metadata.name.as_deref() == Some(name))))
    }

    /// As [`KubeCluster`] lists them: templates and runs only, slim.
    async fn list_jobs(&self, _ns: &str) -> Result<Vec<Job>, Error> {
        self.call(|w| Ok(w.jobs.values().filter_map(listed).collect()))
    }

    async fn show_template_suspended(&self, _ns: &str, name: &str, _uid: &str) -> Result<(), Error> {
        self.call(|w| {
            w.shown_suspended.insert(name.to_string());
            Ok(())
        })
    }

    async fn get_template(&self, _ns: &str, name: &str) -> Result<Option<Job>, Error> {
        self.call(|w| Ok(w.jobs.get(name).cloned()))
    }

    async fn create_job(&self, _ns: &str, job: &Job) -> Result<Created, Error> {
        self.call(|w| {
            let name = job.metadata.name.clone().unwrap();
            if let Some(existing) = w.jobs.get(&name) {
                return Ok(Created::Exists(Box::new(existing.clone())));
            }
            let mut job = job.clone();
            w.uids += 1;
            job.metadata.uid = Some(format!("uid-run-{}", w.uids));
            job.metadata.resource_version = Some(w.next_rv());
            w.jobs.insert(name.clone(), job);
            w.created.push(name);
            Ok(Created::New)
        })
    }

    async fn patch_job(&self, _ns: &str, name: &str, patch: &Value) -> Result<(), Error> {
        self.call(|w| {
            let rv = w.next_rv();
            let job = w.jobs.get(name).ok_or_else(|| Error::Conflict("gone".into()))?;
            let job = merge(job, patch, rv)?;
            w.jobs.insert(name.into(), job);
            Ok(())
        })
    }

    async fn patch_namespace(&self, _name: &str, patch: &Value) -> Result<(), Error> {
        self.call(|w| {
            let rv = w.next_rv();
            let ns = merge(w.ns.as_ref().unwrap(), patch, rv)?;
            w.ns = Some(ns);
            Ok(())
        })
    }

    async fn delete_namespace(&self, _name: &str, uid: &str) -> Result<(), Error> {
        self.call(|w| {
            let ns = w.ns.as_mut().unwrap();
            assert_eq!(ns.metadata.uid.as_deref(), Some(uid));
            ns.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
            Ok(())
        })
    }

    /// Pages of [`MEM_PAGE`] workloads; the token is the index of the next one.
    async fn list_workloads(
        &self,
        _ns: &str,
        kind: WorkloadKind,
        continue_: Option<String>,
    ) -> Result<(Vec<Workload>, Option<String>), Error> {
        self.call(|w| {
            let from: usize = continue_.map_or(0, |t| t.parse().unwrap());
            let all: Vec<&Workload> = w.workloads.values().filter(|d| d.kind == kind).collect();
            let page: Vec<Workload> = all.iter().skip(from).take(MEM_PAGE).map(|d| (*d).clone()).collect();
            let next = (from + MEM_PAGE < all.len()).then(|| (from + MEM_PAGE).to_string());
            Ok((page, next))
        })
    }

    async fn patch_workload(&self, _ns: &str, wl: &Workload, patch: &Value) -> Result<(), Error> {
        self.call(|w| {
            let d = w.workloads.get_mut(&wl.name).unwrap();
            if let Some(n) = patch.pointer("/spec/replicas") {
                d.replicas = Some(n.as_i64().unwrap() as i32);
            }
            match patch.pointer(&format!("/metadata/annotations/{}", ANNOTATION_REPLICAS_BEFORE_STOP.replace('/', "~1"))) {
                Some(Value::Null) => d.remembered = None,
                Some(Value::String(s)) => d.remembered = Some(s.clone()),
                _ => {}
            }
            let hash = format!("/spec/template/metadata/annotations/{}", ANNOTATION_OUTPUTS_HASH.replace('/', "~1"));
            if let Some(Value::String(h)) = patch.pointer(&hash) {
                if d.roll.outputs_hash.as_ref() != Some(h) {
                    *w.rolls.entry(wl.name.clone()).or_default() += 1;
                }
                let d = w.workloads.get_mut(&wl.name).unwrap();
                d.roll.outputs_hash = Some(h.clone());
            }
            let record = format!("/metadata/annotations/{}", ANNOTATION_OUTPUTS_HASH.replace('/', "~1"));
            if let Some(Value::String(h)) = patch.pointer(&record) {
                w.workloads.get_mut(&wl.name).unwrap().roll.recorded = Some(h.clone());
            }
            Ok(())
        })
    }

    async fn report(&self, t: &TemplateRef, report: &Report) {
        self.with(|w| w.reports.push((t.name.clone(), report.clone())));
    }

    async fn report_namespace(&self, _ns: &str, _uid: &str, report: &NsReport) {
        self.with(|w| w.ns_reports.push(report.clone()));
    }

    async fn outputs_hash(&self, _ns: &str) -> Result<String, Error> {
        self.call(|w| Ok(mem_hash(&w.outputs)))
    }

    async fn workloads_with_started_pods(&self, _ns: &str) -> Result<BTreeSet<(WorkloadKind, String)>, Error> {
        self.call(|w| {
            Ok(w.workloads
                .values()
                .filter(|d| d.replicas != Some(0) && !w.unstarted.contains(&d.name))
                .map(|d| (d.kind, d.name.clone()))
                .collect())
        })
    }

    async fn list_gated_pods(&self, _ns: &str) -> Result<Vec<GatedPod>, Error> {
        self.call(|w| {
            Ok(w.pods.iter().filter(|(_, p)| p.gated).map(|(n, p)| GatedPod { name: n.clone(), uid: p.uid.clone() }).collect())
        })
    }

    async fn release_pod(&self, _ns: &str, pod: &GatedPod) -> Result<(), Error> {
        self.call(|w| {
            if let Some(p) = w.pods.get_mut(&pod.name).filter(|p| p.gated) {
                p.gated = false;
                p.releases += 1;
            }
            Ok(())
        })
    }

    async fn tell_gated(&self, _ns: &str, pods: &[GatedPod], note: &str) {
        self.with(|w| w.told.extend(pods.iter().map(|p| (p.name.clone(), note.to_string()))));
    }
}

/// Workloads per page of the in-memory list: small, so that tests go through pages.
const MEM_PAGE: usize = 2;

/// A Job as the controller's lists return it: a template's skeleton, a run's
/// metadata and status, nothing of any other Job.
fn listed(job: &Job) -> Option<Job> {
    let m = &job.metadata;
    if m.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_RUN)) {
        // Decoded from the Job's JSON, as the list's page is.
        let run: crate::controller::model::ListedRun = serde_json::from_value(serde_json::to_value(job).unwrap()).unwrap();
        return Some(run.into_job());
    }
    m.annotations.as_ref()?.get(ANNOTATION_ON)?;
    Some(crate::controller::model::template_skeleton(m.clone()))
}

/// The in-memory outputs' fingerprint; no outputs is the empty fingerprint.
fn mem_hash(outputs: &BTreeSet<String>) -> String {
    if outputs.is_empty() {
        crate::controller::rollout::empty_hash()
    } else {
        outputs.iter().cloned().collect::<Vec<_>>().join("+")
    }
}

fn now() -> String {
    "2025-01-01T00:00:00Z".into()
}

/// The controller and the Job controller take turns until things settle.
async fn settle(mem: &Mem) {
    for _ in 0..12 {
        let quiet = matches!(reconcile_env(mem, NS, now).await, Ok(Done { busy: false }));
        let ended = mem.finish_runs(|j| j.metadata.name.as_deref().is_some_and(|n| n.starts_with("flaky")));
        if quiet && ended == 0 {
            return;
        }
    }
}

/// A life of an environment: created, redeployed, stopped, started, forced,
/// given a new template, deleted.
async fn life(mem: &Mem) {
    mem.add_template("seed", "start", &[]);
    mem.add_template("cleanup", "stop,delete", &[]);
    mem.add_template("flaky", "stop", &[]);
    mem.add_deployment("web", 3);
    mem.add_deployment("idle", 0);
    mem.create_env(&[]);
    settle(mem).await;
    mem.set_ns_annotation(ANNOTATION_DEPLOY_ID, "v2");
    settle(mem).await;
    mem.set_label(LABEL_STATE, "stopped");
    settle(mem).await;
    mem.set_label(LABEL_STATE, "started");
    settle(mem).await;
    mem.set_job_annotation("cleanup", ANNOTATION_FORCE_RUN, "stop");
    settle(mem).await;
    mem.add_template("migrate", "start", &[]);
    settle(mem).await;
    mem.set_label(LABEL_STATE, "deleted");
    settle(mem).await;
}

fn expected_runs() -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = [
        ("seed", "start", "1"),
        ("seed", "start", "2"),
        ("cleanup", "stop", "3"),
        ("flaky", "stop", "3"),
        ("seed", "start", "4"),
        ("cleanup", "stop", "force-1"),
        ("migrate", "start", "4"),
        ("cleanup", "delete", "5"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_whole_life_without_crashes() {
    let mem = Mem::new();
    mem.add_template("seed", "start", &[]);
    mem.add_template("cleanup", "stop,delete", &[]);
    mem.add_template("flaky", "stop", &[]);
    mem.add_deployment("web", 3);
    mem.add_deployment("idle", 0);
    mem.create_env(&[]);
    let _ = reconcile_env(&mem, NS, now).await;
    // Finalizers first, then the start run of occurrence 1, in flight.
    assert!(
        mem.with(|w| { w.jobs["seed"].metadata.finalizers.clone().unwrap().contains(&FINALIZER_OUTPUTS_CLEANUP.to_string()) })
    );
    let shown: Vec<String> = mem.with(|w| w.shown_suspended.iter().cloned().collect());
    assert_eq!(shown, ["cleanup", "flaky", "seed"], "every template shown Suspended as it is first seen");
    assert_eq!(mem.runs(), vec![("seed".into(), "start".into(), "1".into())]);
    assert_eq!(mem.ns_annotation(ANNOTATION_STATUS).as_deref(), Some("starting: 0/1 start jobs done"));
    settle(&mem).await;
    assert_eq!(mem.ns_annotation(ANNOTATION_STATUS).as_deref(), Some("started"));
    assert_eq!(mem.ns_annotation(ANNOTATION_TRANSITION), None);
    assert_eq!(mem.last_runs("seed").start.unwrap().result, RunResult::Succeeded);

    mem.set_label(LABEL_STATE, "stopped");
    let _ = reconcile_env(&mem, NS, now).await;
    assert_eq!(mem.ns_annotation(ANNOTATION_STATUS).as_deref(), Some("stopping: 0/2 stop jobs done"));
    // Workloads are untouched while the stop jobs run.
    assert_eq!(mem.replicas("web"), (Some(3), None));
    mem.finish_runs(|j| j.metadata.name.as_deref().unwrap().starts_with("flaky"));
    let _ = reconcile_env(&mem, NS, now).await;
    // The failed run is reported, and the stop goes on.
    assert_eq!(mem.replicas("web"), (Some(0), Some("3".into())));
    assert_eq!(mem.replicas("idle"), (Some(0), None));
    assert_eq!(mem.ns_annotation(ANNOTATION_STATUS).as_deref(), Some("stopped; stop jobs failed: flaky"));
    let flaky = mem.last_runs("flaky").stop.unwrap();
    assert_eq!((flaky.result, flaky.reason.as_deref()), (RunResult::Failed, Some("BackoffLimitExceeded")));
    assert!(mem.with(|w| {
        w.reports.iter().any(|(t, r)| t == "flaky" && matches!(r, Report::RunEnded { outcome, .. } if !outcome.succeeded))
    }));

    mem.set_label(LABEL_STATE, "started");
    let _ = reconcile_env(&mem, NS, now).await;
    // Start jobs first: the workloads stay down until they end.
    assert_eq!(mem.replicas("web"), (Some(0), Some("3".into())));
    mem.finish_runs(|_| false);
    let _ = reconcile_env(&mem, NS, now).await;
    assert_eq!(mem.replicas("web"), (Some(3), None));
    assert_eq!(mem.replicas("idle"), (Some(0), None));
    assert_eq!(mem.ns_annotation(ANNOTATION_STATUS).as_deref(), Some("started"));
}

#[tokio::test]
async fn the_whole_life_runs_each_occurrence_once() {
    let mem = Mem::new();
    life(&mem).await;
    assert_eq!(mem.runs(), expected_runs());
    assert!(mem.ns_deleting());
    assert_eq!(mem.with(|w| w.created.len()), expected_runs().len());
    assert_eq!(mem.replicas("web"), (Some(3), None));
    // force-run was taken and cleared.
    assert!(mem.with(|w| !w.jobs["cleanup"].metadata.annotations.as_ref().unwrap().contains_key(ANNOTATION_FORCE_RUN)));
    let forced = mem.last_runs("cleanup").force.unwrap();
    assert_eq!((forced.event, forced.occurrence.as_str(), forced.result), (Some(Event::Stop), "force-1", RunResult::Succeeded));
}

fn records_of(mem: &Mem) -> Vec<LastRuns> {
    ["seed", "cleanup", "flaky", "migrate"].iter().map(|t| mem.last_runs(t)).collect()
}

/// Kill the controller at every single API call of a whole life, before or
/// after the call's effect: the runs, their records and the end state are
/// exactly those of a life without crashes.
#[tokio::test(flavor = "multi_thread")]
async fn crashes_at_any_call_create_no_duplicate_and_miss_nothing() {
    let status = crash_everywhere(
        |mem| Box::pin(life(mem)),
        expected_runs(),
        records_of,
        |mem, when| {
            assert_eq!(mem.replicas("web"), (Some(3), None), "{when}");
        },
    )
    .await;
    assert_eq!(status.as_deref(), Some("deleting: deleting the namespace"));
}

type Life = for<'a> fn(&'a Mem) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// Runs `life` once without crashes, then once per API call with a crash at
/// that call (before and after its effect): every life creates each run once,
/// `expected` exactly, and ends with the same records and status. Returns that status.
async fn crash_everywhere(
    life: Life,
    expected: Vec<(String, String, String)>,
    records: fn(&Mem) -> Vec<LastRuns>,
    check: fn(&Mem, &str),
) -> Option<String> {
    let (total, baseline, status) = {
        let mem = Mem::new();
        life(&mem).await;
        assert_eq!(mem.runs(), expected, "without crashes");
        check(&mem, "without crashes");
        (mem.with(|w| w.calls), records(&mem), mem.ns_annotation(ANNOTATION_STATUS))
    };
    assert!(total > 50, "{total}");
    let mut lives = tokio::task::JoinSet::new();
    for at in 1..=total {
        for applied in [false, true] {
            lives.spawn(async move {
                let mem = Mem::new();
                mem.with(|w| w.crash = Some((at, applied)));
                life(&mem).await;
                (at, applied, mem)
            });
        }
    }
    while let Some(r) = lives.join_next().await {
        let (at, applied, mem) = r.unwrap();
        let when = format!("crash at call {at} (write applied: {applied})");
        assert!(mem.with(|w| w.crash.is_none()), "{when}: did not happen");
        let created = mem.with(|w| w.created.clone());
        let unique: BTreeSet<_> = created.iter().collect();
        assert_eq!(unique.len(), created.len(), "{when}: a run created twice");
        assert_eq!(mem.runs(), expected, "{when}");
        assert!(mem.ns_deleting(), "{when}: the delete did not finish");
        check(&mem, &when);
        assert_eq!(records(&mem), baseline, "{when}");
        assert_eq!(mem.ns_annotation(ANNOTATION_STATUS), status, "{when}");
    }
    status
}

/// A life with stages: three start stages, two stop stages, a start job added
/// later that fails (the start is held), a redeploy that fails again at the
/// same stage, and a delete that replaces the held start.
async fn staged_life(mem: &Mem) {
    let stage = lifecycle_contract::names::ANNOTATION_STAGE;
    mem.add_template("db", "start", &[(stage, "1")]);
    mem.add_template("seed", "start", &[(stage, "2")]);
    mem.add_template("last", "start", &[(stage, "3")]);
    mem.add_template("teardown", "stop,delete", &[(stage, "1")]);
    mem.add_template("drain", "stop", &[(stage, "2")]);
    mem.add_deployment("web", 2);
    mem.create_env(&[]);
    assert!(mem.admit_pod("first"), "a new environment gates");
    let _ = reconcile_env(mem, NS, now).await;
    mem.admit_pod("during-1");
    settle(mem).await;
    assert!(!mem.admit_pod("quiet"), "a started environment does not gate");
    mem.set_ns_annotation(ANNOTATION_DEPLOY_ID, "v2");
    assert!(mem.admit_pod("redeploy"), "a redeploy not taken yet gates");
    settle(mem).await;
    mem.set_label(LABEL_STATE, "stopped");
    settle(mem).await;
    mem.set_label(LABEL_STATE, "started");
    settle(mem).await;
    mem.add_template("flaky-migrate", "start", &[(stage, "2")]);
    settle(mem).await;
    mem.set_ns_annotation(ANNOTATION_DEPLOY_ID, "v3");
    settle(mem).await;
    assert!(mem.admit_pod("held"), "a held failed start gates");
    settle(mem).await;
    assert!(mem.gated("held"), "and keeps its pods gated");
    mem.set_label(LABEL_STATE, "deleted");
    settle(mem).await;
}

fn staged_runs() -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = [
        ("db", "start", "1"),
        ("seed", "start", "1"),
        ("last", "start", "1"),
        ("db", "start", "2"),
        ("seed", "start", "2"),
        ("last", "start", "2"),
        ("drain", "stop", "3"),
        ("teardown", "stop", "3"),
        ("db", "start", "4"),
        ("seed", "start", "4"),
        ("last", "start", "4"),
        ("flaky-migrate", "start", "4"),
        ("db", "start", "5"),
        ("seed", "start", "5"),
        ("flaky-migrate", "start", "5"),
        ("teardown", "delete", "6"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    v.sort();
    v
}

fn staged_records(mem: &Mem) -> Vec<LastRuns> {
    ["db", "seed", "last", "teardown", "drain", "flaky-migrate"].iter().map(|t| mem.last_runs(t)).collect()
}

/// Runs were created in stage order within each occurrence.
fn check_stage_order(mem: &Mem, when: &str) {
    let order = mem.with(|w| {
        w.created
            .iter()
            .map(|name| {
                let l = w.jobs[name].metadata.labels.clone().unwrap();
                (l[LABEL_RUN].clone(), l[LABEL_JOB].clone())
            })
            .collect::<Vec<_>>()
    });
    let pos = |run: &str, job: &str| order.iter().position(|(r, j)| r == run && j == job);
    for run in ["1", "2", "4", "5"] {
        let (db, seed, last) = (pos(run, "db").unwrap(), pos(run, "seed").unwrap(), pos(run, "last"));
        assert!(db < seed, "{when}: occurrence {run}: {order:?}");
        if let Some(last) = last {
            assert!(seed < last, "{when}: occurrence {run}: {order:?}");
        }
    }
    assert!(pos("3", "drain") < pos("3", "teardown"), "{when}: the stop goes by descending stage: {order:?}");
    assert!(pos("5", "last").is_none(), "{when}: a stage after a failed one ran");
    // web rolled once at the end of each start that ended (1, 2 and 4; 5 failed), never twice.
    assert_eq!(mem.rolls("web"), 3, "{when}");
    // Every gated pod released, exactly once in effect.
    for (name, pod) in mem.with(|w| w.pods.clone()) {
        assert!(!pod.gated, "{when}: {name} still gated");
        let expected = u32::from(name != "quiet");
        assert_eq!(pod.releases, expected, "{when}: {name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stages_run_in_order_exactly_once_whatever_the_crash() {
    let status = crash_everywhere(|mem| Box::pin(staged_life(mem)), staged_runs(), staged_records, check_stage_order).await;
    assert_eq!(status.as_deref(), Some("deleting: deleting the namespace"));
}

#[tokio::test]
async fn a_failed_start_is_held_and_reported_on_the_namespace() {
    let mem = Mem::new();
    let stage = lifecycle_contract::names::ANNOTATION_STAGE;
    mem.add_template("flaky-db", "start", &[(stage, "1")]);
    mem.add_template("seed", "start", &[(stage, "2")]);
    mem.add_deployment("web", 2);
    mem.create_env(&[]);
    let _ = reconcile_env(&mem, NS, now).await;
    assert!(mem.admit_pod("web-1"));
    settle(&mem).await;
    assert_eq!(mem.runs(), vec![("flaky-db".into(), "start".into(), "1".into())], "stage 2 never runs");
    assert!(mem.gated("web-1"), "the gated pod stays gated");
    let told = mem.with(|w| w.told.clone());
    assert!(told.iter().any(|(pod, note)| pod == "web-1" && note.contains("flaky-db (stage 1), seed (stage 2)")), "{told:?}");
    assert!(told.iter().any(|(pod, note)| pod == "web-1" && note.contains("the start failed (flaky-db failed)")), "{told:?}");
    let status = mem.ns_annotation(ANNOTATION_STATUS).unwrap();
    assert!(status.starts_with("start failed at stage 1 of 2: job flaky-db failed (BackoffLimitExceeded)"), "{status}");
    let transition: Transition = parse_json(mem.ns_annotation(ANNOTATION_TRANSITION).as_deref()).unwrap().unwrap();
    assert!(transition.failed.is_some() && transition.phase == Phase::Runs);
    let reports = mem.with(|w| w.ns_reports.clone());
    assert!(matches!(&reports[..], [NsReport::StartFailed { message }] if *message == status), "{reports:?}");
    // Released on request: the start goes on without stage 2.
    mem.set_ns_annotation(lifecycle_contract::names::ANNOTATION_ON_START_FAILURE, "release");
    settle(&mem).await;
    assert_eq!(mem.ns_annotation(ANNOTATION_TRANSITION), None);
    assert!(!mem.gated("web-1"), "released on request");
    assert_eq!(mem.runs().len(), 1);
    assert_eq!(mem.ns_annotation(ANNOTATION_STATUS).as_deref(), Some("started; start jobs failed: flaky-db"));
}

#[tokio::test]
async fn an_event_waits_for_runs_in_flight_and_states_collapse() {
    let mem = Mem::new();
    mem.add_template("seed", "start", &[]);
    mem.add_template("cleanup", "stop", &[]);
    mem.add_deployment("web", 2);
    mem.create_env(&[]);
    let _ = reconcile_env(&mem, NS, now).await;
    // The start run is in flight; stop, then started again with a redeploy: one more start, no stop.
    mem.set_label(LABEL_STATE, "stopped");
    let _ = reconcile_env(&mem, NS, now).await;
    assert_eq!(mem.runs().len(), 1);
    mem.set_label(LABEL_STATE, "started");
    mem.set_ns_annotation(ANNOTATION_DEPLOY_ID, "v2");
    mem.set_ns_annotation(ANNOTATION_DEPLOY_ID, "v3");
    settle(&mem).await;
    let runs: Vec<_> = mem.runs().into_iter().map(|(t, e, o)| format!("{t}/{e}/{o}")).collect();
    assert_eq!(runs, vec!["seed/start/1", "seed/start/2"]);
    assert_eq!(mem.replicas("web"), (Some(2), None));
}

#[tokio::test]
async fn forced_runs_wait_for_transitions_and_bad_ones_are_refused() {
    let mem = Mem::new();
    mem.add_template("seed", "start,stop", &[("lifecycle-jobs.dev/on-stop-args", r#"["stopping"]"#)]);
    mem.create_env(&[]);
    let _ = reconcile_env(&mem, NS, now).await; // start 1 in flight
    mem.set_job_annotation("seed", ANNOTATION_FORCE_RUN, "stop");
    let _ = reconcile_env(&mem, NS, now).await;
    assert_eq!(mem.runs().len(), 1, "a forced run waits for the transition");
    settle(&mem).await;
    let runs = mem.runs();
    assert_eq!(runs.len(), 2);
    let forced = mem.with(|w| {
        w.jobs
            .values()
            .find(|j| j.metadata.labels.as_ref().and_then(|l| l.get(LABEL_RUN)).map(String::as_str) == Some("force-1"))
            .cloned()
            .unwrap()
    });
    let c = &forced.spec.unwrap().template.spec.unwrap().containers[0];
    assert_eq!(c.args.as_ref().unwrap(), &vec!["stopping".to_string()]);
    // Nothing was stopped.
    assert_eq!(mem.ns_annotation(ANNOTATION_STATUS).as_deref(), Some("started"));

    mem.set_job_annotation("seed", ANNOTATION_FORCE_RUN, "delete");
    settle(&mem).await;
    assert_eq!(mem.runs().len(), 2);
    assert!(mem.with(|w| !w.jobs["seed"].metadata.annotations.as_ref().unwrap().contains_key(ANNOTATION_FORCE_RUN)));
    assert!(
        mem.with(|w| { w.reports.iter().any(|(_, r)| matches!(r, Report::ForceRunIgnored { value, .. } if value == "delete")) })
    );

    // Forced twice: two runs, distinct occurrences.
    mem.set_job_annotation("seed", ANNOTATION_FORCE_RUN, "start");
    settle(&mem).await;
    assert!(mem.runs().contains(&("seed".into(), "start".into(), "force-2".into())));
}

#[tokio::test]
async fn a_run_deleted_before_it_ends_is_a_failure_and_the_transition_goes_on() {
    let mem = Mem::new();
    mem.add_template("teardown", "delete", &[]);
    mem.create_env(&[(LABEL_STATE, "deleted")]);
    let _ = reconcile_env(&mem, NS, now).await;
    assert_eq!(mem.runs().len(), 1);
    mem.with(|w| w.jobs.retain(|_, j| !j.metadata.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_RUN))));
    let _ = reconcile_env(&mem, NS, now).await;
    let rec = mem.last_runs("teardown").delete.unwrap();
    assert_eq!((rec.result, rec.reason.as_deref()), (RunResult::Failed, Some("RunDeleted")));
    assert!(mem.ns_deleting());
    assert_eq!(mem.with(|w| w.created.len()), 1, "not created again");
}

#[tokio::test]
async fn a_delete_cancelled_during_its_runs_keeps_the_namespace() {
    let mem = Mem::new();
    mem.add_template("teardown", "delete", &[]);
    mem.add_template("seed", "start", &[]);
    mem.create_env(&[]);
    settle(&mem).await;
    mem.set_label(LABEL_STATE, "deleted");
    let _ = reconcile_env(&mem, NS, now).await;
    mem.set_label(LABEL_STATE, "started");
    settle(&mem).await;
    assert!(!mem.ns_deleting());
    let runs: Vec<_> = mem.runs().into_iter().map(|(t, e, o)| format!("{t}/{e}/{o}")).collect();
    assert_eq!(runs, vec!["seed/start/1", "seed/start/3", "teardown/delete/2"]);
    assert_eq!(mem.ns_annotation(ANNOTATION_STATUS).as_deref(), Some("started"));
}

#[tokio::test]
async fn an_environment_without_jobs_moves_at_once() {
    let mem = Mem::new();
    mem.add_deployment("web", 1);
    mem.create_env(&[(LABEL_STATE, "stopped")]);
    let _ = reconcile_env(&mem, NS, now).await;
    assert_eq!(mem.replicas("web"), (Some(0), Some("1".into())));
    assert_eq!(mem.ns_annotation(ANNOTATION_STATUS).as_deref(), Some("stopped"));
    mem.set_label(LABEL_STATE, "deleted");
    let _ = reconcile_env(&mem, NS, now).await;
    assert!(mem.ns_deleting());
}

#[tokio::test]
async fn a_name_taken_by_a_stranger_is_reported_not_adopted() {
    let mem = Mem::new();
    mem.add_template("seed", "start", &[]);
    mem.create_env(&[]);
    // Add the finalizer first so that the uid is known, then squat the run's name.
    mem.with(|w| {
        w.jobs.get_mut("seed").unwrap().metadata.finalizers = Some(vec![FINALIZER_OUTPUTS_CLEANUP.into()]);
    });
    let uid = mem.with(|w| w.jobs["seed"].metadata.uid.clone().unwrap());
    let name =
        crate::controller::run_job::run_name("seed", Event::Start, &crate::controller::run_job::suffix(&uid, Event::Start, "1"));
    mem.with(|w| {
        w.jobs.insert(
            name.clone(),
            Job { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() },
        );
    });
    settle(&mem).await;
    let rec = mem.last_runs("seed").start.unwrap();
    assert_eq!((rec.result, rec.reason.as_deref()), (RunResult::Failed, Some("NameConflict")));
    // A failed start run: the start is held.
    let status = mem.ns_annotation(ANNOTATION_STATUS).unwrap();
    assert!(status.starts_with("start failed: job seed failed (NameConflict); gated pods stay gated"), "{status}");
}

#[test]
fn reports_become_events_and_metrics() {
    let (e, m) = event_of(
        &Report::RunEnded {
            event: Event::Stop,
            run: "a-stop-x".into(),
            forced: false,
            outcome: Outcome { succeeded: false, reason: Some("DeadlineExceeded".into()), message: Some("too slow".into()) },
        },
        NS,
    );
    assert_eq!(e.secondary.as_ref().and_then(|r| r.name.as_deref()), Some("a-stop-x"));
    assert_eq!(e.reason, "RunFailed");
    assert_eq!(e.type_, EventType::Warning);
    assert_eq!(e.note.unwrap(), "stop run a-stop-x failed (DeadlineExceeded: too slow)");
    assert_eq!(m, Some((Event::Stop, "failed")));
    let (e, m) = event_of(&Report::RunStarted { event: Event::Start, run: "r".into(), forced: true }, NS);
    assert_eq!((e.reason.as_str(), e.note.unwrap().as_str()), ("RunStarted", "forced start run r started"));
    assert_eq!(m, Some((Event::Start, "started")));
}

#[tokio::test]
async fn workloads_roll_when_a_start_ends_unless_they_opt_out() {
    let mem = Mem::new();
    mem.add_template("seed", "start", &[]);
    mem.add_deployment("web", 1);
    mem.add_workload("pinned", 1, true, Some("never"));
    mem.add_workload("own-vars", 1, false, None);
    mem.add_workload("eager", 1, true, Some("on-change"));
    mem.create_env(&[]);
    settle(&mem).await;
    let first = mem.current_hash();
    assert_eq!(mem.template_hash("web"), Some(first.clone()));
    assert_eq!(mem.rolls("web"), 1);
    assert_eq!((mem.rolls("pinned"), mem.rolls("own-vars")), (0, 0));
    // Settled: nothing more.
    settle(&mem).await;
    assert_eq!(mem.rolls("web"), 1);
    // A publish outside a transition (a plain Job, a forced run): only on-change rolls.
    mem.with(|w| w.outputs.insert("plain-job".into()));
    let _ = reconcile_env(&mem, NS, now).await;
    assert_eq!(mem.rolls("eager"), 2);
    assert_eq!(mem.template_hash("eager"), Some(mem.current_hash()));
    assert_eq!(mem.rolls("web"), 1);
    // A redeploy: web catches up at its end.
    mem.set_ns_annotation(ANNOTATION_DEPLOY_ID, "v2");
    settle(&mem).await;
    assert_eq!(mem.rolls("web"), 2);
    assert_eq!(mem.template_hash("web"), Some(mem.current_hash()));
    // rollout: never on the namespace.
    mem.set_ns_annotation(lifecycle_contract::names::ANNOTATION_ROLLOUT, "never");
    mem.set_ns_annotation(ANNOTATION_DEPLOY_ID, "v3");
    settle(&mem).await;
    assert_eq!(mem.rolls("web"), 2);
    assert_eq!((mem.rolls("pinned"), mem.rolls("own-vars")), (0, 0));
}

/// Issue 21: a first deploy starts each replica once. A workload whose pods
/// are all gated when the start ends (they read the values when released)
/// is recorded, not rolled; a later start whose outputs change rolls it, as
/// its pods then run on older values.
#[tokio::test]
async fn a_workload_whose_pods_wait_at_the_gate_is_not_rolled_by_its_first_start() {
    let mem = Mem::new();
    mem.add_template("seed", "start", &[]);
    mem.add_deployment("web", 2);
    mem.add_deployment("old", 1);
    mem.with(|w| w.unstarted.insert("web".into()));
    mem.create_env(&[]);
    settle(&mem).await;
    let first = mem.current_hash();
    assert_eq!(mem.rolls("web"), 0, "its gated pods start with the outputs: no second start");
    assert_eq!(mem.template_hash("web"), None, "its pod template is left alone");
    assert_eq!(mem.with(|w| w.workloads["web"].roll.recorded.clone()), Some(first.clone()));
    assert_eq!(mem.rolls("old"), 1, "a pod of it started before the outputs existed");
    // Released, its pods run; settled, nothing more.
    mem.with(|w| w.unstarted.clear());
    settle(&mem).await;
    assert_eq!((mem.rolls("web"), mem.rolls("old")), (0, 1));
    // A redeploy whose outputs change: its pods run on older values now.
    mem.set_ns_annotation(ANNOTATION_DEPLOY_ID, "v2");
    settle(&mem).await;
    assert_ne!(mem.current_hash(), first);
    assert_eq!((mem.rolls("web"), mem.rolls("old")), (1, 2));
    assert_eq!(mem.template_hash("web"), Some(mem.current_hash()));
}

/// A run is built from its template read whole when it is created (the plan
/// reads templates without their spec): a `container` that names none of the
/// template's containers fails that run then, as the plan would have.
#[tokio::test]
async fn a_template_naming_a_missing_container_fails_its_run_at_creation() {
    let mem = Mem::new();
    let (container, command) = (lifecycle_contract::names::ANNOTATION_CONTAINER, "lifecycle-jobs.dev/on-start-command");
    mem.add_template("seed", "start", &[(container, "sidecar"), (command, r#"["migrate"]"#)]);
    mem.create_env(&[]);
    settle(&mem).await;
    assert!(mem.runs().is_empty(), "no run was created");
    let rec = mem.last_runs("seed").start.unwrap();
    assert_eq!((rec.result, rec.reason.as_deref()), (RunResult::Failed, Some("InvalidTemplate")));
    assert!(rec.message.as_deref().is_some_and(|m| m.contains("\"sidecar\"")), "{rec:?}");
    let reports = mem.with(|w| w.reports.clone());
    assert!(reports.iter().any(|(_, r)| matches!(r, Report::RunEnded { outcome, .. } if !outcome.succeeded)));
    assert!(!reports.iter().any(|(_, r)| matches!(r, Report::RunStarted { .. })), "{reports:?}");
}

/// A template changed between the plan and the creation of its run: planned again.
#[tokio::test]
async fn a_template_changed_since_it_was_listed_is_planned_again() {
    let mem = Mem::new();
    mem.add_template("seed", "start", &[]);
    mem.with(|w| w.jobs.get_mut("seed").unwrap().metadata.finalizers = Some(vec![FINALIZER_OUTPUTS_CLEANUP.into()]));
    mem.create_env(&[]);
    let step = TemplateStep {
        name: "seed".into(),
        uid: mem.with(|w| w.jobs["seed"].metadata.uid.clone().unwrap()),
        resource_version: "stale".into(),
        finalizers: None,
        creates: vec![crate::controller::plan::Create {
            slot: crate::controller::model::Slot::Env(Event::Start),
            event: Event::Start,
            occurrence: "1".into(),
            job: Box::new(Job {
                metadata: ObjectMeta { name: Some("seed-start-x".into()), ..Default::default() },
                ..Default::default()
            }),
        }],
        records: None,
        clear_force_run: false,
        reports: Vec::new(),
    };
    assert!(matches!(template_step(&mem, NS, RunFacts::default(), step).await, Err(Error::Conflict(_))));
    assert!(mem.runs().is_empty());
    // The next reconcile plans from the template as it is, and creates the run.
    settle(&mem).await;
    assert_eq!(mem.runs().len(), 1);
}

/// Many workloads, read a page at a time: every one is stopped and started.
#[tokio::test]
async fn stop_and_start_scale_every_workload_page_by_page() {
    let mem = Mem::new();
    for i in 0..(MEM_PAGE * 3 + 1) {
        mem.add_deployment(&format!("web-{i}"), i as i32 % 3);
    }
    mem.with(|w| {
        let d = w.workloads.get_mut("web-1").unwrap();
        d.kind = WorkloadKind::StatefulSet;
    });
    mem.create_env(&[]);
    settle(&mem).await;
    mem.set_label(LABEL_STATE, "stopped");
    settle(&mem).await;
    for i in 0..(MEM_PAGE * 3 + 1) {
        let n = i as i32 % 3;
        assert_eq!(mem.replicas(&format!("web-{i}")), (Some(0), (n > 0).then(|| n.to_string())), "web-{i}");
    }
    mem.set_label(LABEL_STATE, "started");
    settle(&mem).await;
    for i in 0..(MEM_PAGE * 3 + 1) {
        assert_eq!(mem.replicas(&format!("web-{i}")), (Some(i as i32 % 3), None), "web-{i}");
    }
}

/// What the controller's lists keep of a Job: never its spec, nor an
/// annotation outside the contract; every kept value cut.
#[test]
fn the_controllers_lists_keep_little_of_each_job() {
    let big = "x".repeat(200_000);
    let mut template = Job {
        metadata: ObjectMeta {
            name: Some("seed".into()),
            uid: Some("u".into()),
            annotations: Some(BTreeMap::from([
                (ANNOTATION_ON.to_string(), "start".to_string()),
                ("example.com/blob".to_string(), big.clone()),
                (ANNOTATION_FORCE_RUN.to_string(), big.clone()),
                ("lifecycle-jobs.dev/on-start-command".to_string(), serde_json::to_string(&[&big]).unwrap()),
                ("lifecycle-jobs.dev/on-stop-args".to_string(), format!("[{big}")),
            ])),
            managed_fields: Some(vec![Default::default()]),
            ..Default::default()
        },
        ..Default::default()
    };
    let c = Container {
        name: "main".into(),
        env: Some(vec![k8s_openapi::api::core::v1::EnvVar { name: "BIG".into(), value: Some(big.clone()), value_from: None }]),
        ..Default::default()
    };
    template.spec = Some(JobSpec {
        template: PodTemplateSpec { metadata: None, spec: Some(PodSpec { containers: vec![c], ..Default::default() }) },
        ..Default::default()
    });
    let listed_template = listed(&template).unwrap();
    let size = serde_json::to_string(&listed_template).unwrap().len();
    assert!(size < 4 * 1024, "{size}");
    let a = listed_template.metadata.annotations.as_ref().unwrap();
    assert_eq!(a["lifecycle-jobs.dev/on-start-command"], "[]", "valid: kept as valid");
    assert!(serde_json::from_str::<Vec<String>>(&a["lifecycle-jobs.dev/on-stop-args"]).is_err(), "invalid: kept invalid");
    assert!(a[ANNOTATION_FORCE_RUN].ends_with('…'));

    let mut run = template.clone();
    run.metadata.labels = Some(BTreeMap::from([(LABEL_RUN.to_string(), "1".to_string())]));
    run.status = Some(JobStatus {
        conditions: Some(vec![JobCondition {
            type_: "Failed".into(),
            status: "True".into(),
            message: Some(big.clone()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let listed_run = listed(&run).unwrap();
    assert!(listed_run.spec.as_ref().is_some_and(|s| s.template.spec.is_none()), "no pod template");
    assert!(serde_json::to_string(&listed_run).unwrap().len() < 2 * 1024);
    assert!(!crate::controller::model::job_outcome(&listed_run).unwrap().succeeded);

    // The server's record of the run's pod is kept: the run's outcome, before the Job controller's.
    run.status = None;
    let published_by = lifecycle_contract::names::ANNOTATION_OUTPUTS_PUBLISHED_BY.to_string();
    run.metadata.annotations.as_mut().unwrap().insert(published_by, "seed-start-x-abcde/pod-uid".into());
    let listed_run = listed(&run).unwrap();
    assert!(crate::controller::model::job_outcome(&listed_run).unwrap().succeeded);
    run.spec.as_mut().unwrap().completions = Some(2);
    assert_eq!(crate::controller::model::job_outcome(&listed(&run).unwrap()), None, "one pod of two");
}
