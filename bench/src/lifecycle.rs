//! `lifecycle`: how fast an environment gets ready on a real cluster (issue 21).
//!
//! Per environment, in a namespace of its own: one apply of two staged start
//! jobs and a two-replica Deployment (namespace first, then every object at
//! once, like `kubectl apply -f dir/`), then a redeploy that changes the
//! outputs (a new `deploy-id`). Watches of the namespace's pods, Jobs and the
//! Namespace itself run from before the apply; every time below is the
//! [`Instant`] at which this process OBSERVED a change, never an object's
//! timestamp (those have 1 s resolution).
//!
//! The figures ([`Figures`]) are computed from the observations alone
//! ([`Observations`], pure and unit-tested); the glue ([`run`]) only feeds it
//! watch events and decides when a phase is over. A figure that cannot be
//! computed prints as `-`; only a failure to measure (a phase past its
//! deadline, an API error) makes the command fail.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use lifecycle_contract::builtins::DEPLOY_ID;
use lifecycle_contract::environment::{Decision, Environment};
use lifecycle_contract::names::{
    ANNOTATION_DEPLOY_ID, ANNOTATION_ON, ANNOTATION_STAGE, LABEL_ENVIRONMENT, LABEL_JOB, OUTPUT_FILE, OUTPUTS_OBJECT,
};
use serde_json::json;

/// The Deployment's name and its pods' label `app`.
const WEB: &str = "web";
/// The start jobs (templates), in stage order.
const STAGES: [&str; 2] = ["stage1", "stage2"];
/// The Job controller's label on a run's pods: the run Job's name.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The image every local cluster imports (never pulled).
const BUSYBOX: &str = "busybox:local";
/// How often the loop looks at the clock when no event comes.
const TICK: Duration = Duration::from_millis(200);

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Environments, created and measured one after another.
    #[arg(long, default_value_t = 5)]
    envs: u32,
    /// Replicas of the Deployment `web`.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Deadline of each phase (first deploy, redeploy) of one environment, in seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// How long no `web` pod may be replaced after they are all Ready, in seconds.
    #[arg(long, default_value_t = 10)]
    quiet: u64,
    /// Also print each pod's timeline (seconds after the apply) on stderr.
    #[arg(long)]
    timeline: bool,
    /// Namespaces are `bench-lc-<n>-<suffix>`; the caller deletes leftovers by it.
    #[arg(long)]
    suffix: String,
}

pub(crate) fn main(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!((1..=50).contains(&args.envs), "--envs: 1 to 50 environments");
    anyhow::ensure!((1..=10).contains(&args.replicas), "--replicas: 1 to 10");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::try_default().await.context("a client from KUBECONFIG")?;
    let mut rows = Vec::new();
    let mut result = Ok(());
    for n in 1..=args.envs {
        let ns = format!("bench-lc-{n}-{}", args.suffix);
        eprintln!("environment {n}/{}: {ns}", args.envs);
        match run(&client, &ns, n, &args).await {
            Ok(figures) => {
                eprintln!("  {}", figures.detail());
                rows.push((n, figures));
            }
            Err(e) => {
                result = Err(e.context(format!("measuring environment {ns}")));
                break;
            }
        }
    }
    // Deleted at the end, not between environments: a namespace being torn
    // down would compete with the next one's measurement.
    for n in 1..=args.envs {
        let ns = format!("bench-lc-{n}-{}", args.suffix);
        let _ = Api::<Namespace>::all(client.clone()).delete(&ns, &DeleteParams::background()).await;
    }
    result?;
    print!("{}", table(&rows, args.replicas));
    Ok(())
}

// --- the objects --------------------------------------------------------------------------------

/// What `kubectl apply -f dir/` would apply for environment `n`, namespace first.
fn manifests(ns: &str, n: u32, replicas: usize) -> anyhow::Result<(Namespace, Vec<Job>, Deployment)> {
    let namespace = serde_json::from_value(json!({
        "metadata": {"name": ns, "labels": {LABEL_ENVIRONMENT: ""}}
    }))?;
    // Stage 1's output depends on the deploy id, so that a redeploy changes it
    // (`first` before any deploy id is set).
    let stage1 = format!(
        r#"sleep 1; printf '{{"DB_HOST":{{"sensitive":false,"value":"db-{n}-%s"}}}}' "${{{DEPLOY_ID}:-first}}" > {OUTPUT_FILE}"#
    );
    let stage2 =
        format!(r#"sleep 1; printf '{{"DB_URL":{{"sensitive":true,"value":"postgres://%s/app"}}}}' "$DB_HOST" > {OUTPUT_FILE}"#);
    let jobs = [(STAGES[0], "1", stage1), (STAGES[1], "2", stage2)]
        .into_iter()
        .map(|(name, stage, script)| {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": ns, "annotations": {ANNOTATION_ON: "start", ANNOTATION_STAGE: stage}},
                "spec": {
                    "backoffLimit": 0,
                    "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script],
                            // Small requests keep the webhook's defaults for job pods off the small machine.
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}
                        }]
                    }}
                }
            }))
        })
        .collect::<Result<Vec<Job>, _>>()?;
    // The container refuses to start without both values: a pod released too
    // early would show as a restart, not as a pass.
    let web = serde_json::from_value(json!({
        "metadata": {"name": WEB, "namespace": ns, "labels": {"app": WEB}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": WEB}},
            "template": {
                "metadata": {"labels": {"app": WEB}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", r#"test -n "$DB_HOST" && test -n "$DB_URL" || exit 1; exec sleep 3600"#],
                    "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
                    "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}
                }]}
            }
        }
    }))?;
    Ok((namespace, jobs, web))
}

/// The values stage 1 and stage 2 publish in environment `n` for `deploy_id`
/// (what the scripts of [`manifests`] write).
fn expected_outputs(n: u32, deploy_id: Option<&str>) -> [(&'static str, String); 2] {
    let host = format!("db-{n}-{}", deploy_id.unwrap_or("first"));
    [("DB_HOST", host.clone()), ("DB_URL", format!("postgres://{host}/app"))]
}

// --- observations (pure) ------------------------------------------------------------------------

/// What the watch saw of one pod, at the instants it saw it.
#[derive(Debug, Clone)]
struct PodSeen {
    labels: BTreeMap<String, String>,
    added: Instant,
    running: Option<Instant>,
    succeeded: Option<Instant>,
    /// First seen without a scheduling gate (at `added` for a pod never gated).
    ungated: Option<Instant>,
    /// First seen Ready.
    ready: Option<Instant>,
    /// Ready in the last version seen.
    ready_now: bool,
    /// A container of it ever ran (seen running, or terminated after a start).
    started: bool,
    restarts: i32,
    /// Container `main`'s startedAt..finishedAt from its status (whole seconds).
    main_ran: Option<f64>,
    /// First seen being deleted (or deleted).
    deleting: Option<Instant>,
    gone: bool,
}

/// The state of one pod read from one version of it.
#[derive(Debug, Clone, Default, PartialEq)]
struct PodState {
    labels: BTreeMap<String, String>,
    phase: Option<String>,
    gated: bool,
    ready: bool,
    started: bool,
    restarts: i32,
    main_ran: Option<f64>,
    deleting: bool,
}

impl PodState {
    fn read(pod: &Pod) -> PodState {
        let status = pod.status.as_ref();
        let containers = status.and_then(|s| s.container_statuses.as_deref()).unwrap_or_default();
        PodState {
            labels: pod.labels().clone(),
            phase: status.and_then(|s| s.phase.clone()),
            gated: pod.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref()).is_some_and(|g| !g.is_empty()),
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
            started: containers.iter().any(|c| {
                let state = c.state.as_ref();
                state.is_some_and(|s| s.running.is_some() || s.terminated.as_ref().is_some_and(|t| t.started_at.is_some()))
                    || c.restart_count > 0
            }),
            restarts: containers.iter().map(|c| c.restart_count).sum(),
            main_ran: containers.iter().filter(|c| c.name == "main").find_map(|c| {
                let t = c.state.as_ref()?.terminated.as_ref()?;
                Some(t.finished_at.as_ref()?.0.duration_since(t.started_at.as_ref()?.0).as_secs_f64())
            }),
            deleting: pod.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// Everything observed in one environment.
#[derive(Debug, Default)]
struct Observations {
    pods: BTreeMap<String, PodSeen>,
    /// Run Job name → the template it was made from (label `job`).
    runs: BTreeMap<String, String>,
    /// (variable, value) → when the environment's outputs were first seen
    /// with it (ConfigMap and Secret `lifecycle-outputs`). Values are only
    /// compared, never printed.
    published: BTreeMap<(String, String), Instant>,
    replicas: usize,
}

impl Observations {
    fn new(replicas: usize) -> Observations {
        Observations { replicas, ..Default::default() }
    }

    fn pod(&mut self, name: &str, s: PodState, at: Instant, deleted: bool) {
        let seen = self.pods.entry(name.to_string()).or_insert_with(|| PodSeen {
            labels: s.labels.clone(),
            added: at,
            running: None,
            succeeded: None,
            ungated: None,
            ready: None,
            ready_now: false,
            started: false,
            restarts: 0,
            main_ran: None,
            deleting: None,
            gone: false,
        });
        match s.phase.as_deref() {
            Some("Running") => {
                seen.running.get_or_insert(at);
            }
            Some("Succeeded") => {
                seen.succeeded.get_or_insert(at);
            }
            _ => {}
        }
        if !s.gated {
            seen.ungated.get_or_insert(at);
        }
        if s.ready {
            seen.ready.get_or_insert(at);
        }
        seen.ready_now = s.ready && !deleted && !s.deleting;
        seen.started |= s.started;
        seen.restarts = seen.restarts.max(s.restarts);
        if s.main_ran.is_some() {
            seen.main_ran = s.main_ran;
        }
        if s.deleting || deleted {
            seen.deleting.get_or_insert(at);
        }
        seen.gone |= deleted;
    }

    fn outputs<'a>(&mut self, data: impl Iterator<Item = (&'a String, String)>, at: Instant) {
        for (k, v) in data {
            self.published.entry((k.clone(), v)).or_insert(at);
        }
    }

    /// When `key` was first seen published with `value`.
    fn published_at(&self, (key, value): &(&str, String)) -> Option<Instant> {
        self.published.get(&(key.to_string(), value.clone())).copied()
    }

    fn run_job(&mut self, name: &str, template: Option<&str>) {
        if let Some(t) = template {
            self.runs.insert(name.to_string(), t.to_string());
        }
    }

    /// The template a run pod's Job was made from.
    fn template_of<'a>(&'a self, pod: &'a PodSeen) -> Option<&'a str> {
        let from_job = pod.labels.get(JOB_NAME_LABEL).and_then(|j| self.runs.get(j));
        from_job.or_else(|| pod.labels.get(LABEL_JOB)).map(String::as_str)
    }

    /// The first pod of a run of `template` seen at or after `since`.
    fn run_pod(&self, template: &str, since: Instant) -> Option<&PodSeen> {
        self.pods.values().filter(|p| p.added >= since && self.template_of(p) == Some(template)).min_by_key(|p| p.added)
    }

    fn web(&self) -> impl Iterator<Item = (&String, &PodSeen)> {
        self.pods.iter().filter(|(_, p)| p.labels.get("app").map(String::as_str) == Some(WEB))
    }

    /// The `web` pods Ready now, if there are as many as the replicas.
    fn all_ready(&self, since: Instant) -> Option<BTreeSet<String>> {
        let ready: BTreeSet<String> =
            self.web().filter(|(_, p)| p.added >= since && p.ready_now).map(|(n, _)| n.clone()).collect();
        (ready.len() >= self.replicas).then_some(ready)
    }

    /// As many live `web` pods as replicas, all Ready, none on its way out.
    fn settled(&self) -> bool {
        let live: Vec<&PodSeen> = self.web().map(|(_, p)| p).filter(|p| !p.gone).collect();
        live.len() == self.replicas && live.iter().all(|p| p.ready_now && p.deleting.is_none())
    }
}

/// Seconds from `a` to `b`, negative when `b` came first.
fn secs(a: Instant, b: Instant) -> f64 {
    if b >= a { (b - a).as_secs_f64() } else { -(a - b).as_secs_f64() }
}

/// The figures of one environment.
#[derive(Debug, Clone, Default, PartialEq)]
struct Figures {
    /// Stage-1 run pod Succeeded → stage-2 run pod created.
    handoff: Option<f64>,
    /// Last stage's run pod Succeeded → the later `web` pod ungated.
    release: Option<f64>,
    /// Stage 1's output seen published → stage 2's run pod created.
    published_handoff: Option<f64>,
    /// Stage 2's output seen published → the later `web` pod ungated.
    published_release: Option<f64>,
    /// Apply → as many `web` pods Ready at once as replicas.
    ready: Option<f64>,
    /// The start runs' pods: each one's observed Running → Succeeded, summed.
    pods_ran: Option<f64>,
    /// The start jobs' own time: each run's container `main`, startedAt..finishedAt
    /// from its status, summed (whole seconds each: what the user's script took).
    jobs: Option<f64>,
    /// Distinct `web` pods that ever started, over the replicas.
    starts_per_replica: f64,
    /// A `web` pod replaced after they were all Ready (until the end of the quiet period).
    replaced: bool,
    restarts: i32,
    redeploy_handoff: Option<f64>,
    redeploy_published_handoff: Option<f64>,
    /// Redeploy: the last stage's run pod Succeeded → the first new `web` pod created.
    redeploy_roll: Option<f64>,
    /// Redeploy → as many new `web` pods Ready at once as replicas.
    redeploy_ready: Option<f64>,
    /// New `web` pods that started after the redeploy.
    redeploy_new_pods: usize,
}

impl Figures {
    fn ready_minus_jobs(&self) -> Option<f64> {
        Some(self.ready? - self.jobs?)
    }

    fn detail(&self) -> String {
        format!(
            "handoff {} s (from stage 1's outputs published {} s), gate release {} s (from stage 2's outputs published {} s), \
             apply → web Ready {} s (jobs' main containers ran {} s, their pods {} s), \
             {} pod starts per replica, {}, {} restarts; redeploy: handoff {} s (from published {} s), \
             web pod created {} s after the last stage, {} new web pods Ready after {} s",
            f(self.handoff),
            f(self.published_handoff),
            f(self.release),
            f(self.published_release),
            f(self.ready),
            f(self.jobs),
            f(self.pods_ran),
            self.starts_per_replica,
            if self.replaced { "a web pod was replaced" } else { "no web pod replaced" },
            self.restarts,
            f(self.redeploy_handoff),
            f(self.redeploy_published_handoff),
            f(self.redeploy_roll),
            self.redeploy_new_pods,
            f(self.redeploy_ready)
        )
    }
}

/// The first deploy's figures: applied at `apply`, all Ready first at `ready`
/// (with the pods `ready_set`), the stages publishing `outputs`, observed until now.
fn first_deploy(
    obs: &Observations,
    apply: Instant,
    ready: Option<(Instant, &BTreeSet<String>)>,
    outputs: &[(&str, String); 2],
) -> Figures {
    let [s1, s2] = STAGES.map(|t| obs.run_pod(t, apply));
    let handoff = s1.and_then(|p| Some(secs(p.succeeded?, s2?.added)));
    let [p1, p2] = [&outputs[0], &outputs[1]].map(|o| obs.published_at(o));
    let last_done = s2.and_then(|p| p.succeeded);
    let web: Vec<&PodSeen> = obs.web().map(|(_, p)| p).collect();
    // The first pods made for the replicas are the ones the gate held.
    let mut first: Vec<&PodSeen> = web.clone();
    first.sort_by_key(|p| p.added);
    first.truncate(obs.replicas);
    let released = match first.iter().map(|p| p.ungated).collect::<Option<Vec<_>>>() {
        Some(ungated) if first.len() == obs.replicas => ungated.into_iter().max(),
        _ => None,
    };
    let release = last_done.zip(released).map(|(done, u)| secs(done, u));
    let ran = |p: Option<&PodSeen>| p.and_then(|p| Some(secs(p.running?, p.succeeded?)));
    let pods_ran = ran(s1).zip(ran(s2)).map(|(a, b)| a + b);
    let jobs = s1.and_then(|p| p.main_ran).zip(s2.and_then(|p| p.main_ran)).map(|(a, b)| a + b);
    let started = web.iter().filter(|p| p.started).count();
    let replaced = ready.is_some_and(|(_, set)| {
        let live: BTreeSet<&String> = obs.web().filter(|(_, p)| !p.gone).map(|(n, _)| n).collect();
        live != set.iter().collect() || obs.web().any(|(n, p)| set.contains(n) && p.deleting.is_some())
    });
    Figures {
        handoff,
        release,
        published_handoff: p1.zip(s2).map(|(at, p)| secs(at, p.added)),
        published_release: p2.zip(released).map(|(at, u)| secs(at, u)),
        ready: ready.map(|(at, _)| secs(apply, at)),
        pods_ran,
        jobs,
        starts_per_replica: started as f64 / obs.replicas as f64,
        replaced,
        restarts: web.iter().map(|p| p.restarts).sum(),
        ..Figures::default()
    }
}

/// The redeploy's figures (patched at `redeploy`) added to the first deploy's.
fn redeploy(
    obs: &Observations,
    redeploy: Instant,
    ready: Option<Instant>,
    outputs: &[(&str, String); 2],
    mut figures: Figures,
) -> Figures {
    let [s1, s2] = STAGES.map(|t| obs.run_pod(t, redeploy));
    figures.redeploy_handoff = s1.and_then(|p| Some(secs(p.succeeded?, s2?.added)));
    figures.redeploy_published_handoff = obs.published_at(&outputs[0]).zip(s2).map(|(at, p)| secs(at, p.added));
    figures.redeploy_ready = ready.map(|at| secs(redeploy, at));
    let first_new = obs.web().map(|(_, p)| p.added).filter(|at| *at >= redeploy).min();
    figures.redeploy_roll = s2.and_then(|p| Some(secs(p.succeeded?, first_new?)));
    figures.redeploy_new_pods = obs.web().filter(|(_, p)| p.added >= redeploy && p.started).count();
    figures
}

// --- the table ----------------------------------------------------------------------------------

fn f(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

fn table(rows: &[(u32, Figures)], replicas: usize) -> String {
    let mut out = String::from(
        "| env | stage handoff s | gate release s | apply → web Ready s | jobs' main s | jobs' pods s | Ready − jobs' main s \
         | web starts / replica | web replaced after Ready | redeploy handoff s | redeploy: last stage → new web pod s \
         | redeploy → web rolled Ready s | redeploy rolled web |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|\n",
    );
    for (n, r) in rows {
        out.push_str(&format!(
            "| {n} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} |\n",
            f(r.handoff),
            f(r.release),
            f(r.ready),
            f(r.jobs),
            f(r.pods_ran),
            f(r.ready_minus_jobs()),
            r.starts_per_replica,
            if r.replaced { "yes" } else { "no" },
            f(r.redeploy_handoff),
            f(r.redeploy_roll),
            f(r.redeploy_ready),
            if r.redeploy_new_pods > 0 { format!("yes, {} new pods", r.redeploy_new_pods) } else { "no".to_string() },
        ));
    }
    let col = |pick: fn(&Figures) -> Option<f64>| f(median(rows.iter().filter_map(|(_, r)| pick(r)).collect()));
    let total = rows.len();
    out.push_str(&format!(
        "| **median** | **{}** | **{}** | **{}** | {} | {} | **{}** | **{}** | {} of {total} | {} | {} | {} | {} of {total} |\n",
        col(|r| r.handoff),
        col(|r| r.release),
        col(|r| r.ready),
        col(|r| r.jobs),
        col(|r| r.pods_ran),
        col(Figures::ready_minus_jobs),
        median(rows.iter().map(|(_, r)| r.starts_per_replica).collect()).map_or("-".to_string(), |v| format!("{v:.1}")),
        rows.iter().filter(|(_, r)| r.replaced).count(),
        col(|r| r.redeploy_handoff),
        col(|r| r.redeploy_roll),
        col(|r| r.redeploy_ready),
        rows.iter().filter(|(_, r)| r.redeploy_new_pods >= replicas).count(),
    ));
    out
}

// --- the glue -----------------------------------------------------------------------------------

/// One watch event of the namespace's pods and Jobs, or of the Namespace
/// (boxed: the objects are kilobytes each).
enum Seen {
    Pod(Box<watcher::Event<Pod>>),
    Job(Box<watcher::Event<Job>>),
    Namespace(Box<watcher::Event<Namespace>>),
    OutputsConfig(Box<watcher::Event<ConfigMap>>),
    OutputsSecret(Box<watcher::Event<Secret>>),
}

/// Where the environment is, read with the contract's rules: the start taken
/// in (with `deploy_id`), no transition in flight, nothing due.
fn at_rest(ns: &Namespace, deploy_id: Option<&str>) -> bool {
    let env = Environment::read(&ns.metadata);
    env.observed.as_ref().is_some_and(|o| o.deploy_id.as_deref() == deploy_id)
        && env.transition.is_none()
        && env.due() == Decision::Idle
}

/// The live state of one environment's measurement.
struct Live {
    obs: Observations,
    ns: Option<Namespace>,
    inits: usize,
}

impl Live {
    fn apply(&mut self, seen: Seen, at: Instant) {
        match seen {
            Seen::Pod(e) => match *e {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    self.obs.pod(&p.name_any(), PodState::read(&p), at, false)
                }
                watcher::Event::Delete(p) => self.obs.pod(&p.name_any(), PodState::read(&p), at, true),
                watcher::Event::InitDone => self.inits += 1,
                watcher::Event::Init => {}
            },
            Seen::Job(e) => match *e {
                watcher::Event::Apply(j) | watcher::Event::InitApply(j) | watcher::Event::Delete(j) => {
                    self.obs.run_job(&j.name_any(), j.labels().get(LABEL_JOB).map(String::as_str))
                }
                watcher::Event::InitDone => self.inits += 1,
                watcher::Event::Init => {}
            },
            Seen::Namespace(e) => match *e {
                watcher::Event::Apply(n) | watcher::Event::InitApply(n) => self.ns = Some(n),
                watcher::Event::Delete(_) => self.ns = None,
                watcher::Event::InitDone => self.inits += 1,
                watcher::Event::Init => {}
            },
            Seen::OutputsConfig(e) => match *e {
                watcher::Event::Apply(c) | watcher::Event::InitApply(c) => {
                    self.obs.outputs(c.data.iter().flatten().map(|(k, v)| (k, v.clone())), at)
                }
                watcher::Event::InitDone => self.inits += 1,
                watcher::Event::Delete(_) | watcher::Event::Init => {}
            },
            Seen::OutputsSecret(e) => match *e {
                watcher::Event::Apply(c) | watcher::Event::InitApply(c) => {
                    self.obs.outputs(c.data.iter().flatten().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())), at)
                }
                watcher::Event::InitDone => self.inits += 1,
                watcher::Event::Delete(_) | watcher::Event::Init => {}
            },
        }
    }

    fn at_rest(&self, deploy_id: Option<&str>) -> bool {
        self.ns.as_ref().is_some_and(|n| at_rest(n, deploy_id))
    }
}

/// Measures one environment: the first deploy, then a redeploy.
async fn run(client: &Client, ns: &str, n: u32, args: &Args) -> anyhow::Result<Figures> {
    let (namespace, jobs, web) = manifests(ns, n, args.replicas)?;
    let pods = watcher(Api::<Pod>::namespaced(client.clone(), ns), watcher::Config::default())
        .default_backoff()
        .map_ok(|e| Seen::Pod(Box::new(e)))
        .boxed();
    let job_events = watcher(Api::<Job>::namespaced(client.clone(), ns), watcher::Config::default())
        .default_backoff()
        .map_ok(|e| Seen::Job(Box::new(e)))
        .boxed();
    let ns_events =
        watcher(Api::<Namespace>::all(client.clone()), watcher::Config::default().fields(&format!("metadata.name={ns}")))
            .default_backoff()
            .map_ok(|e| Seen::Namespace(Box::new(e)))
            .boxed();
    let by_name = || watcher::Config::default().fields(&format!("metadata.name={OUTPUTS_OBJECT}"));
    let config = watcher(Api::<ConfigMap>::namespaced(client.clone(), ns), by_name())
        .default_backoff()
        .map_ok(|e| Seen::OutputsConfig(Box::new(e)))
        .boxed();
    let secret = watcher(Api::<Secret>::namespaced(client.clone(), ns), by_name())
        .default_backoff()
        .map_ok(|e| Seen::OutputsSecret(Box::new(e)))
        .boxed();
    let streams = [pods, job_events, ns_events, config, secret];
    let watches = streams.len();
    let mut events = futures::stream::select_all(streams);
    let mut live = Live { obs: Observations::new(args.replicas), ns: None, inits: 0 };
    let quiet = Duration::from_secs(args.quiet);

    // The watches are listening before anything is applied.
    let deadline = Instant::now() + Duration::from_secs(30);
    while live.inits < watches {
        next(&mut events, &mut live, deadline, "the watches to start").await?;
    }

    // First deploy. The creates run beside the watch so that no event waits behind them.
    let apply = Instant::now();
    let mut creating = Some(tokio::spawn(create(client.clone(), namespace, jobs, web)));
    let deadline = apply + Duration::from_secs(args.timeout);
    let mut ready: Option<(Instant, BTreeSet<String>)> = None;
    loop {
        next(&mut events, &mut live, deadline, "the first deploy (web Ready, the start over, the quiet period)").await?;
        if let Some(done) = creating.take_if(|c| c.is_finished()) {
            done.await?.context("applying the objects")?;
        }
        if ready.is_none() {
            ready = live.obs.all_ready(apply).map(|set| (Instant::now(), set));
        }
        let quiet_over = ready.as_ref().is_some_and(|(at, _)| at.elapsed() >= quiet);
        if quiet_over && live.at_rest(None) && live.obs.settled() {
            break;
        }
    }
    if let Some(done) = creating {
        done.await?.context("applying the objects")?;
    }
    let figures = first_deploy(&live.obs, apply, ready.as_ref().map(|(at, set)| (*at, set)), &expected_outputs(n, None));

    // Redeploy with a new deploy id: stage 1's output changes, so web must roll.
    let deploy_id = format!("bench-{}", n + 1);
    let redeploy_at = Instant::now();
    let patch = json!({"metadata": {"annotations": {ANNOTATION_DEPLOY_ID: deploy_id}}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("setting {ANNOTATION_DEPLOY_ID} on {ns}"))?;
    let deadline = redeploy_at + Duration::from_secs(args.timeout);
    let mut rolled: Option<Instant> = None;
    let mut rest: Option<Instant> = None;
    loop {
        next(&mut events, &mut live, deadline, "the redeploy (the start over, web rolled or the quiet period)").await?;
        if rolled.is_none() && live.obs.all_ready(redeploy_at).is_some() {
            rolled = Some(Instant::now());
        }
        if rest.is_none() && live.at_rest(Some(&deploy_id)) {
            rest = Some(Instant::now());
        }
        let Some(rest) = rest else { continue };
        let old_gone = live.obs.web().all(|(_, p)| p.added >= redeploy_at || p.gone);
        // Not rolled: given the quiet period after the start is over to show it.
        if (rolled.is_some() && old_gone && live.obs.settled()) || (rolled.is_none() && rest.elapsed() >= quiet) {
            break;
        }
    }
    if args.timeline {
        eprint!("{}", timeline(&live.obs, apply, redeploy_at));
    }
    Ok(redeploy(&live.obs, redeploy_at, rolled, &expected_outputs(n, Some(&deploy_id)), figures))
}

/// Every pod seen, in the order seen, with the instants of its changes in
/// seconds after the apply.
fn timeline(obs: &Observations, apply: Instant, redeploy: Instant) -> String {
    let t = |at: Option<Instant>| at.map_or_else(|| "-".to_string(), |at| format!("{:.2}", secs(apply, at)));
    let mut pods: Vec<(&String, &PodSeen)> = obs.pods.iter().collect();
    pods.sort_by_key(|(_, p)| p.added);
    let mut out = format!("    redeploy at {}\n", t(Some(redeploy)));
    let mut published: Vec<(&Instant, &String)> = obs.published.iter().map(|((k, _), at)| (at, k)).collect();
    published.sort();
    for (at, key) in published {
        out.push_str(&format!("    {key} seen published (a new value) at {}\n", t(Some(*at))));
    }
    for (name, p) in pods {
        let role = obs.template_of(p).unwrap_or(WEB);
        out.push_str(&format!(
            "    {name} ({role}): added {}, ungated {}, running {}, succeeded {}, ready {}, deleting {}\n",
            t(Some(p.added)),
            t(p.ungated),
            t(p.running),
            t(p.succeeded),
            t(p.ready),
            t(p.deleting)
        ));
    }
    out
}

/// Applies the objects as `kubectl apply -f dir/` does: the namespace, then
/// every object at once, without waiting for anything.
async fn create(client: Client, namespace: Namespace, jobs: Vec<Job>, web: Deployment) -> anyhow::Result<()> {
    let pp = PostParams::default();
    let name = namespace.name_any();
    Api::<Namespace>::all(client.clone()).create(&pp, &namespace).await.with_context(|| format!("creating namespace {name}"))?;
    let job_api = Api::<Job>::namespaced(client.clone(), &name);
    for job in &jobs {
        job_api.create(&pp, job).await.with_context(|| format!("creating Job {name}/{}", job.name_any()))?;
    }
    Api::<Deployment>::namespaced(client, &name)
        .create(&pp, &web)
        .await
        .with_context(|| format!("creating Deployment {name}/{WEB}"))?;
    Ok(())
}

/// Takes the next watch event in (or a tick of the clock); fails past `deadline`.
async fn next(
    events: &mut (impl futures::Stream<Item = Result<Seen, watcher::Error>> + Unpin),
    live: &mut Live,
    deadline: Instant,
    waiting_for: &str,
) -> anyhow::Result<()> {
    if Instant::now() >= deadline {
        bail!("timed out waiting for {waiting_for}; seen: {}", summary(&live.obs));
    }
    match tokio::time::timeout(TICK, events.next()).await {
        Err(_) => Ok(()),
        Ok(None) => bail!("the watches ended"),
        Ok(Some(Err(e))) => {
            // The watcher retries with backoff; an event missed meanwhile only blurs a figure.
            eprintln!("  watch error (retrying): {e}");
            Ok(())
        }
        Ok(Some(Ok(seen))) => {
            live.apply(seen, Instant::now());
            Ok(())
        }
    }
}

/// The pods seen so far, for a timeout's message.
fn summary(obs: &Observations) -> String {
    let pods: Vec<String> = obs
        .pods
        .iter()
        .map(|(name, p)| {
            let role = obs.template_of(p).unwrap_or(if obs.web().any(|(n, _)| n == name) { WEB } else { "?" });
            format!(
                "{name} ({role}: ungated {}, running {}, succeeded {}, ready {}, deleting {})",
                p.ungated.is_some(),
                p.running.is_some(),
                p.succeeded.is_some(),
                p.ready_now,
                p.deleting.is_some()
            )
        })
        .collect();
    if pods.is_empty() { "no pod".to_string() } else { pods.join("; ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(labels: &[(&str, &str)], phase: &str) -> PodState {
        PodState {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            phase: Some(phase.to_string()),
            ..PodState::default()
        }
    }

    const WEB_LABELS: [(&str, &str); 1] = [("app", WEB)];

    /// A first deploy as the current server does it: stages, gated web pods
    /// released, then rolled once more.
    #[test]
    fn figures_of_a_first_deploy_with_a_rollout_after_the_start() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut obs = Observations::new(2);
        obs.run_job("stage1-run", Some("stage1"));
        obs.run_job("stage2-run", Some("stage2"));
        let run = |job: &'static str| [(JOB_NAME_LABEL, job)];
        let gated_web = PodState { gated: true, ..state(&WEB_LABELS, "Pending") };
        obs.pod("web-a", gated_web.clone(), at(100), false);
        obs.pod("web-b", gated_web, at(120), false);
        obs.pod("s1", state(&run("stage1-run"), "Pending"), at(200), false);
        obs.pod("s1", state(&run("stage1-run"), "Running"), at(1000), false);
        let done = |job| PodState { main_ran: Some(1.0), ..state(&run(job), "Succeeded") };
        let out = |k: &str, v: &str| [(k.to_string(), v.to_string())];
        obs.outputs(out("DB_HOST", "db-1-other").iter().map(|(k, v)| (k, v.clone())), at(300));
        obs.outputs(out("DB_HOST", "db-1-first").iter().map(|(k, v)| (k, v.clone())), at(2300));
        obs.pod("s1", done("stage1-run"), at(2500), false);
        obs.pod("s2", state(&run("stage2-run"), "Pending"), at(3900), false);
        obs.pod("s2", state(&run("stage2-run"), "Running"), at(4500), false);
        obs.outputs(out("DB_URL", "postgres://db-1-first/app").iter().map(|(k, v)| (k, v.clone())), at(5800));
        obs.pod("s2", done("stage2-run"), at(6000), false);
        let up = |p| PodState { ready: true, started: true, ..state(&WEB_LABELS, p) };
        obs.pod("web-a", state(&WEB_LABELS, "Pending"), at(7400), false);
        obs.pod("web-b", state(&WEB_LABELS, "Pending"), at(7600), false);
        obs.pod("web-a", up("Running"), at(8000), false);
        obs.pod("web-b", up("Running"), at(8100), false);
        let set = obs.all_ready(t0).expect("both ready");
        // The rollout's replacement, started, and the old pod on its way out.
        obs.pod("web-c", up("Running"), at(9000), false);
        obs.pod("web-a", PodState { deleting: true, ..up("Running") }, at(9500), false);
        let fig = first_deploy(&obs, t0, Some((at(8100), &set)), &expected_outputs(1, None));
        assert_eq!(fig.handoff.map(|v| (v * 1000.0).round()), Some(1400.0));
        assert_eq!(fig.release.map(|v| (v * 1000.0).round()), Some(1600.0));
        assert_eq!(fig.published_handoff.map(|v| (v * 1000.0).round()), Some(1600.0), "from the expected value only");
        assert_eq!(fig.published_release.map(|v| (v * 1000.0).round()), Some(1800.0));
        assert_eq!(fig.ready.map(|v| (v * 1000.0).round()), Some(8100.0));
        assert_eq!(fig.pods_ran.map(|v| (v * 1000.0).round()), Some(3000.0));
        assert_eq!(fig.jobs, Some(2.0));
        assert_eq!(fig.ready_minus_jobs().map(|v| (v * 1000.0).round()), Some(6100.0));
        assert_eq!(fig.starts_per_replica, 1.5);
        assert!(fig.replaced);
        assert!(!obs.settled(), "web-a is on its way out");
    }

    /// The next stage created before the previous pod shows Succeeded: a negative handoff.
    #[test]
    fn a_handoff_before_the_pod_shows_succeeded_is_negative() {
        let t0 = Instant::now();
        let mut obs = Observations::new(1);
        obs.pod("s1", state(&[(LABEL_JOB, "stage1")], "Running"), t0, false);
        obs.pod("s2", state(&[(LABEL_JOB, "stage2")], "Pending"), t0 + Duration::from_millis(100), false);
        obs.pod("s1", state(&[(LABEL_JOB, "stage1")], "Succeeded"), t0 + Duration::from_millis(300), false);
        let fig = first_deploy(&obs, t0, None, &expected_outputs(1, None));
        assert_eq!(fig.handoff.map(|v| (v * 1000.0).round()), Some(-200.0));
        assert_eq!(fig.release, None, "no web pod: no figure, no failure");
    }

    #[test]
    fn redeploy_counts_only_pods_made_after_it() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut obs = Observations::new(1);
        let up = PodState { ready: true, started: true, ..state(&WEB_LABELS, "Running") };
        obs.pod("web-old", up.clone(), t0, false);
        obs.pod("web-new", up, later + Duration::from_secs(1), false);
        obs.pod("web-old", state(&WEB_LABELS, "Running"), later + Duration::from_secs(2), true);
        let fig =
            redeploy(&obs, later, Some(later + Duration::from_secs(1)), &expected_outputs(1, Some("v2")), Figures::default());
        assert_eq!(fig.redeploy_new_pods, 1);
        assert_eq!(fig.redeploy_ready, Some(1.0));
        assert!(obs.settled());
    }

    #[test]
    fn medians_and_the_table() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
        let row = Figures { handoff: Some(-0.1), starts_per_replica: 1.0, redeploy_new_pods: 2, ..Figures::default() };
        let t = table(&[(1, row.clone()), (2, row)], 2);
        assert!(t.contains("| 1 | -0.10 | - |"), "{t}");
        assert!(t.contains("| **median** | **-0.10** |"), "{t}");
        assert!(t.trim_end().ends_with("| - | - | - | 2 of 2 |"), "{t}");
    }

    #[test]
    fn the_manifests_are_what_the_product_reads() {
        let (ns, jobs, web) = manifests("bench-lc-1-x", 1, 2).unwrap();
        assert!(ns.labels().contains_key(LABEL_ENVIRONMENT));
        assert_eq!(jobs.iter().map(|j| j.annotations()[ANNOTATION_STAGE].as_str()).collect::<Vec<_>>(), ["1", "2"]);
        let script = &jobs[0].spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].command.as_ref().unwrap()[2];
        assert!(script.contains("\"${LIFECYCLE_DEPLOY_ID:-first}\""), "{script}");
        assert!(script.contains(r#"{"DB_HOST":{"sensitive":false,"value":"db-1-%s"}}"#), "{script}");
        assert_eq!(expected_outputs(1, None)[0].1, "db-1-first");
        assert_eq!(expected_outputs(1, Some("bench-2"))[1].1, "postgres://db-1-bench-2/app");
        assert_eq!(web.spec.unwrap().replicas, Some(2));
    }
}
