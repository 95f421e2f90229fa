//! Helpers for environments, lifecycle jobs (templates) and their runs, and
//! published outputs, shared by the main and the disruptive tests.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{
    ANNOTATION_JOB_ID, ANNOTATION_ON, ANNOTATION_STATUS, ANNOTATION_TRANSITION, LABEL_ENVIRONMENT, LABEL_EVENT, LABEL_JOB,
    LABEL_STATE, OUTPUTS_OBJECT,
};
use serde_json::{Value, json};

use crate::{BUSYBOX, TIMEOUT, TestNamespace, obj, wait_until};

// --- environments -------------------------------------------------------------------------------

/// An environment namespace (`e2e-<prefix>-<suffix>`, environment label) for one test.
pub async fn environment(client: &Client, prefix: &str) -> Result<TestNamespace> {
    TestNamespace::with_labels(client, prefix, &[(LABEL_ENVIRONMENT, "")]).await
}

/// Merge-patches a namespace (labels, annotations).
pub async fn patch_namespace(client: &Client, ns: &str, patch: Value) -> Result<()> {
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("patching namespace {ns} with {patch}"))?;
    Ok(())
}

/// Sets the environment's wanted state (its state label).
pub async fn set_state(client: &Client, ns: &str, state: &str) -> Result<()> {
    patch_namespace(client, ns, json!({"metadata": {"labels": {LABEL_STATE: state}}})).await
}

/// Waits until the controller reports the environment at rest in `state`: no
/// transition in flight, its status starting with the state, nothing running.
pub async fn wait_status(client: &Client, ns: &str, state: &str, timeout: Duration) -> Result<String> {
    wait_status_with(client, ns, state, true, timeout).await
}

/// Waits until the controller reports the environment idle in `state` (its
/// status starts with the word and names nothing running), whether or not a
/// transition is still recorded in flight.
pub async fn wait_status_idle(client: &Client, ns: &str, state: &str, timeout: Duration) -> Result<String> {
    wait_status_with(client, ns, state, false, timeout).await
}

async fn wait_status_with(client: &Client, ns: &str, state: &str, at_rest: bool, timeout: Duration) -> Result<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    wait_until(&format!("namespace {ns} has status {state}"), timeout, || async {
        let n = api.get(ns).await?;
        let status = n.annotations().get(ANNOTATION_STATUS).cloned().unwrap_or_default();
        let rest = !at_rest || !n.annotations().contains_key(ANNOTATION_TRANSITION);
        Ok((rest && status.starts_with(state) && !status.contains("running")).then_some(status))
    })
    .await
}

// --- objects ------------------------------------------------------------------------------------

/// A lifecycle job (template) on `on` of one busybox container `main` running
/// `script`, no retries. A template whose runs publish outputs keeps the
/// default grace period (the agent needs it); the others get 1 s. Small
/// resources keep the webhook's defaults for lifecycle jobs (500m CPU) off the
/// small test machine.
pub fn lifecycle_job(name: &str, on: &str, script: &str, publishes: bool) -> Job {
    let mut job: Job = obj(json!({
        "metadata": {"name": name, "annotations": {ANNOTATION_ON: on}},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}}
                }]
            }}
        }
    }));
    if !publishes {
        job.spec.as_mut().unwrap().template.spec.as_mut().unwrap().termination_grace_period_seconds = Some(1);
    }
    job
}

/// The Job with the annotations `pairs` added (or replaced).
pub fn annotate(mut job: Job, pairs: &[(&str, &str)]) -> Job {
    let a = job.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in pairs {
        a.insert(k.to_string(), v.to_string());
    }
    job
}

/// A plain Job (JOBID annotation `job_id` if given; an empty annotation map
/// otherwise) whose one container `main` runs `script` if given, then writes
/// `content` as its output file. A grace period of 30 s (the pod default)
/// leaves the agent time to publish.
pub fn output_job(name: &str, job_id: Option<&str>, script: Option<&str>, content: &str) -> Job {
    let mut annotations = BTreeMap::new();
    if let Some(id) = job_id {
        annotations.insert(ANNOTATION_JOB_ID.to_string(), id.to_string());
    }
    let write = "printf '%s' \"$OUT\" > /qovery-output/qovery-output.json";
    let command = match script {
        Some(script) => format!("{script}; {write}"),
        None => write.to_string(),
    };
    obj(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{
                    "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", command],
                    "env": [{"name": "OUT", "value": content}]
                }]
            }}
        }
    }))
}

/// A Deployment (label `app=<name>`) of one small busybox container `app`
/// running `command`, with a grace period of 1 s.
pub fn small_deployment(name: &str, replicas: i32, command: &[&str]) -> Deployment {
    obj(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}
                }]}
            }
        }
    }))
}

// --- reading the cluster ------------------------------------------------------------------------

/// Whether the Job has condition `kind` (`Complete`, `Failed`, ...) set to True.
pub fn condition(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// Whether the Job has completed successfully.
pub fn complete(job: &Job) -> bool {
    condition(job, "Complete")
}

/// Whether a run succeeded as everything of the product reads it (the
/// contract's rule, `kubectl lifecycle` included): its pod's end recorded by
/// the server, or `Complete` — the Job controller writes `Complete` a moment
/// after the controller has moved on.
pub fn succeeded(job: &Job) -> bool {
    lifecycle_contract::run::outcome(job).is_some_and(|o| o.succeeded)
}

/// When the work of a Job's pods ended: the latest `finishedAt` of their main
/// containers (the agent sidecar aside), `None` while one has not. The
/// controller moves on once a run's pod has published, before the Job
/// controller writes `Complete` (and its `completionTime`): this is the instant
/// an order between runs is checked against.
pub async fn work_ended_at(client: &Client, ns: &str, job: &str) -> Result<Option<Time>> {
    let pods = crate::job_pods(client, ns, job).await?;
    let mut ended = None;
    for p in &pods {
        for c in p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()) {
            let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()).and_then(|t| t.finished_at.clone()) else {
                return Ok(None);
            };
            ended = ended.max(Some(t));
        }
    }
    Ok(ended)
}

/// The names of the Jobs.
pub fn names(jobs: &[Job]) -> BTreeSet<String> {
    jobs.iter().map(|j| j.name_any()).collect()
}

/// The replicas a Deployment asks for (1 when unset).
pub fn wanted_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Whether the pod is not being deleted and its Ready condition is True.
pub fn live_and_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The run Jobs the controller made from `template` for `event`.
pub async fn runs(client: &Client, ns: &str, template: &str, event: &str) -> Result<Vec<Job>> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let selector = format!("{LABEL_JOB}={template},{LABEL_EVENT}={event}");
    Ok(api.list(&ListParams::default().labels(&selector)).await?.items)
}

/// How many runs [`wait_runs_complete`] waits for.
#[derive(Clone, Copy, Debug)]
pub enum Runs {
    /// Exactly so many: one more ends the wait at once, with an error.
    Exactly(usize),
    /// So many or more.
    AtLeast(usize),
}

/// Waits until `template` has `count` runs of `event`, all complete, and
/// returns them oldest first; a failed run ends the wait at once.
pub async fn wait_runs_complete(
    client: &Client,
    ns: &str,
    template: &str,
    event: &str,
    count: Runs,
    timeout: Duration,
) -> Result<Vec<Job>> {
    let (Runs::Exactly(n) | Runs::AtLeast(n)) = count;
    let mut list = wait_until(&format!("{n} {event} run(s) of {ns}/{template} completed"), timeout, || async {
        let list = runs(client, ns, template, event).await?;
        if let Some(bad) = list.iter().find(|j| condition(j, "Failed")) {
            bail!("run {} failed: {:?}", bad.name_any(), bad.status);
        }
        if let Runs::Exactly(_) = count {
            ensure!(list.len() <= n, "more than {n} {event} runs of {template}: {:?}", names(&list));
        }
        Ok((list.len() >= n && list.iter().all(complete)).then_some(list))
    })
    .await?;
    list.sort_by_key(|j| j.metadata.creation_timestamp.clone());
    Ok(list)
}

// --- published outputs --------------------------------------------------------------------------

/// The environment's non-sensitive published variables (its outputs ConfigMap's data).
pub async fn published_config(ns: &TestNamespace) -> Result<BTreeMap<String, String>> {
    Ok(ns.api::<ConfigMap>().get_opt(OUTPUTS_OBJECT).await?.and_then(|c| c.data).unwrap_or_default())
}

/// The environment's published variables: (ConfigMap data, Secret data decoded).
pub async fn published(ns: &TestNamespace) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    published_in(&ns.api::<ConfigMap>(), &ns.api::<Secret>()).await
}

/// [`published`] of the namespace `ns` (one a test did not create).
pub async fn published_of(client: &Client, ns: &str) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    published_in(&Api::namespaced(client.clone(), ns), &Api::namespaced(client.clone(), ns)).await
}

async fn published_in(
    config_maps: &Api<ConfigMap>,
    secrets: &Api<Secret>,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let cm = config_maps.get_opt(OUTPUTS_OBJECT).await?.and_then(|c| c.data).unwrap_or_default();
    let secret = secrets
        .get_opt(OUTPUTS_OBJECT)
        .await?
        .and_then(|s| s.data)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    Ok((cm, secret))
}

/// Waits until `check` holds for the published variables, and returns them.
pub async fn wait_published<F>(
    ns: &TestNamespace,
    what: &str,
    check: F,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)>
where
    F: Fn(&BTreeMap<String, String>, &BTreeMap<String, String>) -> bool,
{
    wait_until(what, TIMEOUT, || async {
        let (cm, secret) = published(ns).await?;
        Ok(check(&cm, &secret).then_some((cm, secret)))
    })
    .await
}
