//! Operating the installed product, the way a platform team does, while
//! workloads keep coming: a forced CA rotation, a server replica killed, an
//! uninstall. Each test checks what an operator would: no admission failed,
//! every admitted pod got its variables, every job's outputs were published,
//! nothing was left behind.
//!
//! These tests change the shared installation (the Deployment's environment,
//! its pods, the whole install), so they run alone (`--test-threads=1`), after
//! the main suite, and each leaves the product as it found it: installed from
//! `manifests/overlays/local`, two replicas ready, the default CA overlap.
//!
//! Admission streams use a client with kube's retry layer turned off: a
//! creation that needed a second try is a lost admission.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, ResourceExt};
use lifecycle_contract::JobId;
use lifecycle_contract::names::{
    ANNOTATION_ON, INJECTED_SOURCES, LABEL_CAPTURE, SYSTEM_NAMESPACE, SourceKind, agent_env, injected,
};
use lifecycle_e2e::lifecycle::{self, environment, live_and_ready, published_config, wanted_replicas};
use lifecycle_e2e::{
    BUSYBOX, TIMEOUT, TestNamespace, busybox_job, client, exec, job_pods, kubeconfig_path, obj, pod_logs, unique_suffix,
    wait_for_deployment_available, wait_for_job_complete, wait_for_pod_running, wait_until,
};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// The server's Deployment (and Service, and ServiceAccount).
pub(crate) const SERVER: &str = "lifecycle-webhook";
/// Label selector of the server's pods.
const SERVER_PODS: &str = "app.kubernetes.io/name=lifecycle-webhook";
/// The Secret of the self-managed CA and serving certificate.
pub(crate) const TLS_SECRET: &str = "lifecycle-webhook-tls";
/// Both webhook configurations are named so.
pub(crate) const WEBHOOK_CONFIGURATIONS: &str = "lifecycle-jobs";
/// The controller's leader-election Lease.
const CONTROLLER_LEASE: &str = "lifecycle-webhook-controller";
/// The overlay installed on the local cluster.
pub(crate) const LOCAL_OVERLAY: &str = "manifests/overlays/local";
/// Label every object of the install carries (kustomize `labels`).
const PART_OF: &str = "app.kubernetes.io/part-of=lifecycle-jobs";

/// Secret annotations of the certificate manager (webhook/src/certs/material.rs).
const ANNOTATION_ROTATE: &str = "lifecycle-jobs.dev/rotate";
const ANNOTATION_CA_PHASE: &str = "lifecycle-jobs.dev/ca-phase";
/// The wait between CA rotation steps (server flag `--ca-overlap`).
const OVERLAP_ENV: &str = "LIFECYCLE_CA_OVERLAP";
const TEST_OVERLAP: &str = "15s";

/// One admission every so often: a steady stream, light enough for one node.
const STREAM_PERIOD: Duration = Duration::from_millis(200);
/// One admission in this many is a real pod (the others are dry runs, which
/// call the mutating webhooks all the same).
const REAL_POD_EVERY: u64 = 10;
/// One admission in this many is a (dry-run) Job, for the Job webhook.
const JOB_EVERY: u64 = 4;

// --- tools -------------------------------------------------------------------------

pub(crate) fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// kubectl: `$KUBECTL`, else the local cluster's, else the one on PATH.
fn kubectl_path() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL").filter(|k| !k.is_empty()) {
        return PathBuf::from(k);
    }
    let local = repo_root().join(".local-cluster/bin/kubectl");
    if local.exists() { local } else { PathBuf::from("kubectl") }
}

/// Runs a program from the repository root against the cluster under test and
/// returns its stdout; a failure carries both outputs.
pub(crate) fn run_blocking(program: &PathBuf, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .env("KUBECONFIG", kubeconfig_path())
        .env("KUBECTL", kubectl_path())
        .output()
        .with_context(|| format!("running {} {}", program.display(), args.join(" ")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    ensure!(
        out.status.success(),
        "{} {} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        program.display(),
        args.join(" "),
        out.status
    );
    Ok(stdout)
}

pub(crate) fn kubectl_blocking(args: &[&str]) -> Result<String> {
    run_blocking(&kubectl_path(), args)
}

async fn kubectl(args: &[&str]) -> Result<String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || kubectl_blocking(&args.iter().map(String::as_str).collect::<Vec<_>>())).await?
}

/// A client without kube's retry layer (which would resend a request answered
/// 429/503/504): every admission of a stream is attempted exactly once.
pub(crate) async fn strict_client() -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path())?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.default_retry = false;
    Ok(Client::try_from(config)?)
}

fn unix_time() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

// --- environments, jobs, outputs ---------------------------------------------------------

/// A Job (JOBID `job_id`) whose container runs `script` and then writes `content`
/// as its output file, ended after 600 s at most. Pod grace period: the default
/// 30 s, for the agent.
pub(crate) fn output_job(name: &str, job_id: &str, script: &str, content: &str) -> Job {
    let mut job = lifecycle::output_job(name, Some(job_id), Some(script), content);
    job.spec.as_mut().unwrap().active_deadline_seconds = Some(600);
    job
}

/// Waits until every `(variable, value)` is published in the environment.
pub(crate) async fn wait_published(ns: &TestNamespace, want: &[(String, String)], timeout: Duration) -> Result<()> {
    let result = wait_until("every output is published", timeout, || async {
        let cm = published_config(ns).await?;
        Ok(want.iter().all(|(k, v)| cm.get(k) == Some(v)).then_some(()))
    })
    .await;
    if result.is_err() {
        let cm = published_config(ns).await.unwrap_or_default();
        let missing: Vec<&String> = want.iter().filter(|(k, v)| cm.get(k) != Some(v)).map(|(k, _)| k).collect();
        bail!("outputs not published within {timeout:?}: missing {missing:?}; published: {cm:?}");
    }
    Ok(())
}

/// The value of the agent's environment variable `name` in a job's pod.
async fn agent_env(client: &Client, ns: &str, job: &str, name: &str) -> Result<String> {
    let pod = job_pods(client, ns, job).await?.into_iter().next().with_context(|| format!("job {job} has no pod"))?;
    let spec = pod.spec.context("pod without spec")?;
    let agent = spec
        .init_containers
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == injected::AGENT_CONTAINER)
        .with_context(|| format!("job {job}'s pod has no agent"))?;
    agent
        .env
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value)
        .with_context(|| format!("agent has no {name}"))
}

/// Warning Events recorded on a Job.
pub(crate) async fn job_warnings(client: &Client, ns: &str, job: &str) -> Result<Vec<String>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.kind=Job,involvedObject.name={job}");
    Ok(api
        .list(&ListParams::default().fields(&selector))
        .await?
        .items
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect())
}

// --- the server ----------------------------------------------------------------------

pub(crate) fn system_api<K>(client: &Client) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    Api::namespaced(client.clone(), SYSTEM_NAMESPACE)
}

/// Waits until the server runs exactly its two replicas, ready, none terminating.
pub(crate) async fn wait_server_settled(client: &Client, timeout: Duration) -> Result<Vec<Pod>> {
    wait_for_deployment_available(client, SYSTEM_NAMESPACE, SERVER, timeout).await?;
    let pods = system_api::<Pod>(client);
    wait_until("the server runs two ready replicas and nothing else", timeout, || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels(SERVER_PODS)).await?.items;
            Ok((list.len() == 2 && list.iter().all(live_and_ready)).then_some(list))
        }
    })
    .await
}

/// Whether the server's Deployment has all its wanted replicas updated and available.
async fn server_available_now(client: &Client) -> Result<bool> {
    let d = system_api::<Deployment>(client).get(SERVER).await?;
    let wanted = wanted_replicas(&d);
    let status = d.status.unwrap_or_default();
    Ok(status.observed_generation >= d.metadata.generation
        && status.updated_replicas == Some(wanted)
        && status.available_replicas == Some(wanted)
        && status.replicas == Some(wanted))
}

/// The TLS Secret as people see it: (phase annotation, ca.crt, rotate annotation).
pub(crate) async fn tls_state(client: &Client) -> Result<(String, String, Option<String>)> {
    let secret = system_api::<Secret>(client).get(TLS_SECRET).await?;
    let ann = secret.annotations().clone();
    let ca = secret
        .data
        .as_ref()
        .and_then(|d| d.get("ca.crt"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .context("the TLS Secret has no ca.crt")?;
    Ok((ann.get(ANNOTATION_CA_PHASE).cloned().unwrap_or_default(), ca, ann.get(ANNOTATION_ROTATE).cloned()))
}

/// Every caBundle of both webhook configurations, decoded.
async fn webhook_bundles(client: &Client) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let m = Api::<MutatingWebhookConfiguration>::all(client.clone()).get(WEBHOOK_CONFIGURATIONS).await?;
    for w in m.webhooks.unwrap_or_default() {
        out.push(w.client_config.ca_bundle.map(|b| String::from_utf8_lossy(&b.0).into_owned()).unwrap_or_default());
    }
    let v = Api::<ValidatingWebhookConfiguration>::all(client.clone()).get(WEBHOOK_CONFIGURATIONS).await?;
    for w in v.webhooks.unwrap_or_default() {
        out.push(w.client_config.ca_bundle.map(|b| String::from_utf8_lossy(&b.0).into_owned()).unwrap_or_default());
    }
    Ok(out)
}

fn count_certificates(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

/// The server's `LIFECYCLE_CA_OVERLAP` set to a short value for one test, and
/// put back as it was (with the rollout awaited) when dropped, also on failure.
struct ShortOverlap {
    original: Option<String>,
}

impl ShortOverlap {
    async fn set(client: &Client, value: &str) -> Result<Self> {
        let deployment = system_api::<Deployment>(client).get(SERVER).await?;
        let original = deployment
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|s| s.containers.into_iter().find(|c| c.name == "server"))
            .and_then(|c| c.env)
            .and_then(|env| env.into_iter().find(|e| e.name == OVERLAP_ENV))
            .and_then(|e| e.value)
            // A value of ours left by an interrupted run is not the original.
            .filter(|v| v != value);
        let guard = ShortOverlap { original };
        kubectl(&[
            "-n",
            SYSTEM_NAMESPACE,
            "set",
            "env",
            &format!("deployment/{SERVER}"),
            "-c",
            "server",
            &format!("{OVERLAP_ENV}={value}"),
        ])
        .await?;
        Ok(guard)
    }

    fn restore_blocking(&self) -> Result<()> {
        let setting = match &self.original {
            Some(v) => format!("{OVERLAP_ENV}={v}"),
            None => format!("{OVERLAP_ENV}-"),
        };
        kubectl_blocking(&["-n", SYSTEM_NAMESPACE, "set", "env", &format!("deployment/{SERVER}"), "-c", "server", &setting])?;
        kubectl_blocking(&["-n", SYSTEM_NAMESPACE, "rollout", "status", &format!("deployment/{SERVER}"), "--timeout=180s"])?;
        Ok(())
    }
}

impl Drop for ShortOverlap {
    fn drop(&mut self) {
        if let Err(e) = self.restore_blocking() {
            eprintln!("could not restore {OVERLAP_ENV} on deployment/{SERVER}: {e:#}");
        }
    }
}

// --- a stream of admissions ---------------------------------------------------------------

/// What a stream of creations saw.
#[derive(Debug, Default)]
pub(crate) struct StreamReport {
    pub(crate) admissions: u64,
    real_pods: u64,
    dry_run_pods: u64,
    dry_run_jobs: u64,
    /// Failed or unmutated admissions: `t+<s> (<unix time>) <what>: <error>`.
    pub(crate) failures: Vec<String>,
    max_latency: Duration,
}

impl std::fmt::Display for StreamReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} admissions ({} real pods, {} dry-run pods, {} dry-run jobs), {} failed, slowest {:?}",
            self.admissions,
            self.real_pods,
            self.dry_run_pods,
            self.dry_run_jobs,
            self.failures.len(),
            self.max_latency
        )
    }
}

enum Outcome {
    RealPod,
    DryRunPod,
    DryRunJob,
}

/// Creations in an environment, one every [`STREAM_PERIOD`] whatever the
/// latency of the previous ones, until stopped.
pub(crate) struct Stream {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<StreamReport>,
}

impl Stream {
    pub(crate) fn start(client: Client, ns: &str) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let ns = ns.to_string();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut report = StreamReport::default();
            let mut inflight: JoinSet<(Duration, Result<Outcome, String>)> = JoinSet::new();
            let mut tick = tokio::time::interval(STREAM_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i: u64 = 0;
            let record = |report: &mut StreamReport, (latency, result): (Duration, Result<Outcome, String>)| {
                report.admissions += 1;
                report.max_latency = report.max_latency.max(latency);
                match result {
                    Ok(Outcome::RealPod) => report.real_pods += 1,
                    Ok(Outcome::DryRunPod) => report.dry_run_pods += 1,
                    Ok(Outcome::DryRunJob) => report.dry_run_jobs += 1,
                    Err(e) => report.failures.push(e),
                }
            };
            while !flag.load(Ordering::SeqCst) {
                tick.tick().await;
                i += 1;
                let (client, ns) = (client.clone(), ns.clone());
                inflight.spawn(async move {
                    let t0 = Instant::now();
                    let result = tokio::time::timeout(Duration::from_secs(60), admit(&client, &ns, i))
                        .await
                        .unwrap_or_else(|_| Err("no answer within 60 s".to_string()))
                        .map_err(|e| format!("t+{:.1}s ({}) #{i}: {e}", started.elapsed().as_secs_f64(), unix_time()));
                    (t0.elapsed(), result)
                });
                while let Some(done) = inflight.try_join_next() {
                    match done {
                        Ok(r) => record(&mut report, r),
                        Err(e) => report.failures.push(format!("admission task failed: {e}")),
                    }
                }
            }
            while let Some(done) = inflight.join_next().await {
                match done {
                    Ok(r) => record(&mut report, r),
                    Err(e) => report.failures.push(format!("admission task failed: {e}")),
                }
            }
            report
        });
        Stream { stop, task }
    }

    pub(crate) async fn stop(self) -> Result<StreamReport> {
        self.stop.store(true, Ordering::SeqCst);
        Ok(self.task.await?)
    }
}

/// One creation, exactly once: a real pod, a dry-run pod or a dry-run Job,
/// checked to come back mutated.
async fn admit(client: &Client, ns: &str, i: u64) -> Result<Outcome, String> {
    if i.is_multiple_of(REAL_POD_EVERY) {
        let pod = stream_pod(&format!("real-{i}"));
        let created = Api::<Pod>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &pod)
            .await
            .map_err(|e| format!("real pod: {e}"))?;
        check_pod_mutated(&created).map_err(|e| format!("real pod {}: {e}", created.name_any()))?;
        Ok(Outcome::RealPod)
    } else if i % JOB_EVERY == 1 {
        let name = format!("dry-{i}");
        let job = busybox_job(&name, "true");
        let dry = PostParams { dry_run: true, ..PostParams::default() };
        let created =
            Api::<Job>::namespaced(client.clone(), ns).create(&dry, &job).await.map_err(|e| format!("dry-run job: {e}"))?;
        let want = JobId::derive(None, &name);
        let label =
            created.spec.and_then(|s| s.template.metadata).and_then(|m| m.labels).and_then(|l| l.get(LABEL_CAPTURE).cloned());
        if label.as_deref() != Some(want.as_str()) {
            return Err(format!("dry-run job {name} admitted without the capture label {want} (got {label:?})"));
        }
        Ok(Outcome::DryRunJob)
    } else {
        let pod = stream_pod(&format!("dry-{i}"));
        let dry = PostParams { dry_run: true, ..PostParams::default() };
        let created =
            Api::<Pod>::namespaced(client.clone(), ns).create(&dry, &pod).await.map_err(|e| format!("dry-run pod: {e}"))?;
        check_pod_mutated(&created).map_err(|e| format!("dry-run pod {}: {e}", created.name_any()))?;
        Ok(Outcome::DryRunPod)
    }
}

/// A small pod that ends at once and goes without a grace period.
pub(crate) fn stream_pod(name: &str) -> Pod {
    obj(json!({
        "metadata": {"name": name, "labels": {"e2e.lifecycle-jobs.dev/stream": "true"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["true"]}]
        }
    }))
}

/// Every container starts its `envFrom` with the injected sources (project,
/// environment, outputs), in order, all optional.
pub(crate) fn check_pod_mutated(pod: &Pod) -> Result<(), String> {
    let spec = pod.spec.as_ref().ok_or("no spec")?;
    for c in &spec.containers {
        let env_from = c.env_from.clone().unwrap_or_default();
        let ok = INJECTED_SOURCES.iter().enumerate().all(|(i, &(_, kind, name))| {
            let e = env_from.get(i);
            match kind {
                SourceKind::ConfigMap => {
                    e.and_then(|e| e.config_map_ref.as_ref()).is_some_and(|r| r.name == name && r.optional == Some(true))
                }
                SourceKind::Secret => {
                    e.and_then(|e| e.secret_ref.as_ref()).is_some_and(|r| r.name == name && r.optional == Some(true))
                }
            }
        });
        if !ok {
            return Err(format!("container {} admitted without the injected envFrom: {:?}", c.name, c.env_from));
        }
    }
    Ok(())
}

// --- 1. certificate rotation -----------------------------------------------------------------

/// A forced CA rotation (all three steps) while pods keep being created fails
/// none of them, and agents of jobs admitted before and after it publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ca_rotation_during_a_stream_of_pod_creations_fails_none() -> Result<()> {
    let client = client().await?;
    let strict = strict_client().await?;
    let ns = environment(&client, "rotation").await?;

    // A short overlap between the steps (the Deployment rolls out with it).
    let overlap = ShortOverlap::set(&client, TEST_OVERLAP).await?;
    wait_server_settled(&client, Duration::from_secs(180)).await?;
    // An interrupted earlier run may have left a rotation going: let it end.
    let (_, ca_before, _) = wait_until("the CA is stable before the test", Duration::from_secs(120), || async {
        let state = tls_state(&client).await?;
        Ok((state.0 == "stable" && state.2.is_none()).then_some(state))
    })
    .await?;
    ensure!(count_certificates(&ca_before) == 1, "a stable bundle holds one CA:\n{ca_before}");

    // A job admitted before the rotation, trusting only the old CA, that
    // publishes after it (the served chain's cross-signed bridge).
    let suffix = unique_suffix();
    let early_value = format!("early-{suffix}");
    ns.create(&output_job(
        "early",
        "early",
        "until [ -f /tmp/go ]; do sleep 0.5; done",
        &format!(r#"{{"EARLY": {{"value": "{early_value}"}}}}"#),
    ))
    .await?;
    let early_pod = wait_until("the early job's pod runs", TIMEOUT, || async {
        let pods = job_pods(&client, ns.name(), "early").await?;
        Ok(pods.into_iter().next().map(|p| p.name_any()))
    })
    .await?;
    wait_for_pod_running(&client, ns.name(), &early_pod, TIMEOUT).await?;
    let early_ca = agent_env(&client, ns.name(), "early", agent_env::SERVER_CA).await?;
    assert_eq!(early_ca, ca_before, "the early agent trusts the old CA only");

    let stream = Stream::start(strict, ns.name());
    tokio::time::sleep(Duration::from_secs(2)).await;

    let secrets = system_api::<Secret>(&client);
    let forced = Instant::now();
    let patch = json!({"metadata": {"annotations": {ANNOTATION_ROTATE: "now"}}});
    secrets.patch(TLS_SECRET, &PatchParams::default(), &Patch::Merge(&patch)).await?;

    // introducing -> retiring -> stable with a new CA.
    let seen: Mutex<Vec<(f64, String)>> = Mutex::new(Vec::new());
    let rotation = wait_until("the CA rotation completes its three steps", Duration::from_secs(150), || {
        let client = client.clone();
        let ca_before = ca_before.clone();
        let seen = &seen;
        async move {
            let (phase, ca, rotate) = tls_state(&client).await?;
            let mut seen = seen.lock().unwrap();
            if seen.last().map(|(_, p)| p) != Some(&phase) {
                seen.push((forced.elapsed().as_secs_f64(), phase.clone()));
            }
            let names: Vec<&str> = seen.iter().map(|(_, p)| p.as_str()).collect();
            let done = phase == "stable"
                && rotate.is_none()
                && ca != ca_before
                && names.contains(&"introducing")
                && names.contains(&"retiring");
            Ok(done.then_some(ca))
        }
    })
    .await;
    let phases = seen.into_inner().unwrap();
    let ca_after = match rotation {
        Ok(ca) => ca,
        Err(e) => {
            let report = stream.stop().await?;
            bail!("{e:#}\nphases seen: {phases:?}\nstream: {report}\nfailures: {:#?}", report.failures);
        }
    };
    let rotation_time = forced.elapsed();
    // The webhook configurations trust the new CA alone.
    let bundle_synced = wait_until("the webhook configurations' caBundle is the new CA", Duration::from_secs(30), || async {
        Ok(webhook_bundles(&client).await?.iter().all(|b| *b == ca_after).then_some(()))
    })
    .await;
    // Keep admitting a while after the old CA left every bundle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let report = stream.stop().await?;
    println!("CA rotation: {phases:?} in {rotation_time:?}; stream: {report}");
    assert!(report.failures.is_empty(), "admissions failed during the rotation ({report}):\n{}", report.failures.join("\n"));
    bundle_synced?;
    assert_eq!(count_certificates(&ca_after), 1, "the stable bundle holds the new CA only");
    assert!(report.admissions >= 100, "the stream was too thin to mean anything: {report}");
    let names: Vec<&str> = phases.iter().map(|(_, p)| p.as_str()).collect();
    let first = |p: &str| names.iter().position(|n| *n == p);
    assert!(first("introducing") < first("retiring"), "phases in order: {phases:?}");

    // The early agent (old CA only) publishes now, after the rotation.
    let out = exec(&client, ns.name(), &early_pod, Some("main"), &["touch", "/tmp/go"], TIMEOUT).await?;
    ensure!(out.exit_code == 0, "releasing the early job: {out:?}");
    // A job admitted after the rotation: its agent trusts the new CA.
    let late_value = format!("late-{suffix}");
    ns.create(&output_job("late", "late", "true", &format!(r#"{{"LATE": {{"value": "{late_value}"}}}}"#))).await?;
    wait_for_job_complete(&client, ns.name(), "early", TIMEOUT).await?;
    wait_for_job_complete(&client, ns.name(), "late", TIMEOUT).await?;
    assert_eq!(agent_env(&client, ns.name(), "late", agent_env::SERVER_CA).await?, ca_after, "the late agent trusts the new CA");
    wait_published(
        &ns,
        &[("QOVERY_OUTPUT_JOB_EARLY_EARLY".into(), early_value), ("QOVERY_OUTPUT_JOB_LATE_LATE".into(), late_value)],
        TIMEOUT,
    )
    .await?;
    for job in ["early", "late"] {
        let warnings = job_warnings(&client, ns.name(), job).await?;
        assert!(warnings.is_empty(), "job {job} has Warning events: {warnings:?}");
    }

    // Back to the default overlap, with the rollout awaited.
    tokio::task::spawn_blocking(move || drop(overlap)).await?;
    wait_server_settled(&client, Duration::from_secs(180)).await?;
    Ok(())
}

// --- 2. a replica killed ---------------------------------------------------------------------

/// One server replica deleted (default grace: preStop, drain) while pods are
/// created and jobs complete: no admission lost, every job's outputs published.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_server_replica_loses_no_admission_and_no_output() -> Result<()> {
    let client = client().await?;
    let strict = strict_client().await?;
    let pods_before = wait_server_settled(&client, Duration::from_secs(180)).await?;
    let ns = environment(&client, "kill").await?;

    // Jobs that end one after another, over the whole disruption.
    const JOBS: usize = 8;
    let suffix = unique_suffix();
    let mut want = Vec::new();
    for i in 0..JOBS {
        let value = format!("v{i}-{suffix}");
        let delay = 2 * i;
        let job = output_job(
            &format!("out-{i}"),
            &format!("kill{i}"),
            &format!("sleep {delay}"),
            &format!(r#"{{"K{i}": {{"value": "{value}"}}}}"#),
        );
        ns.create(&job).await?;
        want.push((format!("QOVERY_OUTPUT_JOB_KILL{i}_K{i}"), value));
    }

    let stream = Stream::start(strict, ns.name());
    // Kill once the first jobs' main containers run, so completions fall
    // before, during and after the drain.
    let running = wait_until("two job pods run", TIMEOUT, || async {
        let pods = ns.api::<Pod>().list(&ListParams::default().labels("batch.kubernetes.io/job-name")).await?.items;
        let n = pods.iter().filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).count();
        Ok((n >= 2).then_some(()))
    })
    .await;
    if let Err(e) = running {
        let report = stream.stop().await?;
        bail!("{e:#}\nstream: {report}");
    }

    // The controller's leader, for good measure (its Lease moves too).
    let holder = system_api::<Lease>(&client)
        .get_opt(CONTROLLER_LEASE)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    let victim = pods_before
        .iter()
        .map(|p| p.name_any())
        .find(|n| !holder.is_empty() && holder.contains(n.as_str()))
        .unwrap_or_else(|| pods_before[0].name_any());
    let victim_uid = pods_before.iter().find(|p| p.name_any() == victim).and_then(|p| p.uid()).unwrap_or_default();
    let killed = Instant::now();
    let killed_at = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    system_api::<Pod>(&client).delete(&victim, &DeleteParams::default()).await?;

    // Until the victim is gone, its replacement serves, and every job ended.
    let pods = system_api::<Pod>(&client);
    let jobs = ns.api::<Job>();
    let settled = wait_until("the victim is gone, two replicas serve, every job ended", Duration::from_secs(150), || {
        let (pods, jobs, victim, victim_uid) = (pods.clone(), jobs.clone(), victim.clone(), victim_uid.clone());
        let client = client.clone();
        async move {
            let gone = match pods.get_opt(&victim).await? {
                None => true,
                Some(p) => p.uid().as_deref() != Some(victim_uid.as_str()),
            };
            let available = server_available_now(&client).await?;
            let ended = jobs
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .all(|j| j.status.as_ref().is_some_and(|s| s.succeeded.unwrap_or(0) + s.failed.unwrap_or(0) > 0));
            Ok((gone && available && ended).then_some(()))
        }
    })
    .await;
    let disruption = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = stream.stop().await?;
    println!("killed {victim} (leader: {holder}); settled after {disruption:?}; stream: {report}");
    assert!(report.failures.is_empty(), "admissions lost while a replica was killed ({report}):\n{}", report.failures.join("\n"));
    settled?;

    let mut retries = 0;
    let mut completed = Vec::new();
    for i in 0..JOBS {
        let job = format!("out-{i}");
        let done = wait_for_job_complete(&client, ns.name(), &job, TIMEOUT).await?;
        if let Some(t) = done.status.and_then(|s| s.completion_time) {
            completed.push(t.0.as_second() - killed_at);
        }
        let warnings = job_warnings(&client, ns.name(), &job).await?;
        assert!(warnings.is_empty(), "job {job} has Warning events: {warnings:?}");
        for pod in job_pods(&client, ns.name(), &job).await? {
            let log = pod_logs(&client, ns.name(), &pod.name_any(), Some(injected::AGENT_CONTAINER)).await.unwrap_or_default();
            retries += log.matches("publish-retry").count();
        }
    }
    wait_published(&ns, &want, Duration::from_secs(60)).await?;
    println!("all {JOBS} jobs published; completions (s after the kill): {completed:?}; agent publish retries: {retries}");
    // The disruption really overlapped the jobs (else this test proves little).
    ensure!(completed.iter().filter(|t| **t >= 0).count() >= 3, "too few jobs completed after the kill: {completed:?}");
    wait_server_settled(&client, Duration::from_secs(120)).await?;
    Ok(())
}

// --- 3. uninstall ------------------------------------------------------------------------------

/// Reinstalls the product (`scripts/deploy.sh manifests/overlays/local`) when
/// dropped, unless it was done already: later tests and runs find it installed
/// even when the uninstall test fails midway.
struct Reinstall {
    done: bool,
}

impl Reinstall {
    fn reinstall_blocking() -> Result<String> {
        // Apply cannot create objects in a namespace that is still terminating.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let out = kubectl_blocking(&["get", "namespace", SYSTEM_NAMESPACE, "--ignore-not-found", "-o", "name"])?;
            if out.trim().is_empty() {
                break;
            }
            ensure!(Instant::now() < deadline, "namespace {SYSTEM_NAMESPACE} still exists after 180 s");
            std::thread::sleep(Duration::from_millis(500));
        }
        run_blocking(&repo_root().join("scripts/deploy.sh"), &[LOCAL_OVERLAY])
    }

    async fn reinstall(&mut self) -> Result<String> {
        self.done = true;
        tokio::task::spawn_blocking(Self::reinstall_blocking).await?
    }
}

impl Drop for Reinstall {
    fn drop(&mut self) {
        if !self.done {
            eprintln!("reinstalling lifecycle-jobs ({LOCAL_OVERLAY}) after a failed uninstall test");
            if let Err(e) = Self::reinstall_blocking() {
                eprintln!("REINSTALL FAILED: {e:#}");
            }
        }
    }
}

/// After an uninstall (`by` names it): no webhook configuration is left to
/// intercept anything, no cluster-wide object of ours, and the system
/// namespace goes.
pub(crate) async fn assert_nothing_left(client: &Client, by: &str) -> Result<()> {
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone()).get_opt(WEBHOOK_CONFIGURATIONS).await?;
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone()).get_opt(WEBHOOK_CONFIGURATIONS).await?;
    assert!(mutating.is_none() && validating.is_none(), "{by} left the webhook configurations {WEBHOOK_CONFIGURATIONS} behind");
    let left = leftovers(client).await?;
    assert!(left.is_empty(), "{by} left cluster-wide objects behind: {left:?}");
    let namespaces = Api::<Namespace>::all(client.clone());
    wait_until("the system namespace is gone", Duration::from_secs(180), || async {
        Ok(namespaces.get_opt(SYSTEM_NAMESPACE).await?.is_none().then_some(()))
    })
    .await
}

/// Names of cluster-scoped objects of ours still present after the uninstall.
async fn leftovers(client: &Client) -> Result<Vec<String>> {
    let ours = |name: &str, labels: &BTreeMap<String, String>, value: &Value| {
        name.contains("lifecycle")
            || labels.get("app.kubernetes.io/part-of").is_some_and(|v| v == "lifecycle-jobs")
            || labels.get("app.kubernetes.io/name").is_some_and(|v| v == SERVER)
            || value.to_string().contains(SYSTEM_NAMESPACE)
    };
    let mut found = Vec::new();
    for c in Api::<MutatingWebhookConfiguration>::all(client.clone()).list(&ListParams::default()).await?.items {
        if ours(&c.name_any(), c.labels(), &serde_json::to_value(&c)?) {
            found.push(format!("MutatingWebhookConfiguration {}", c.name_any()));
        }
    }
    for c in Api::<ValidatingWebhookConfiguration>::all(client.clone()).list(&ListParams::default()).await?.items {
        if ours(&c.name_any(), c.labels(), &serde_json::to_value(&c)?) {
            found.push(format!("ValidatingWebhookConfiguration {}", c.name_any()));
        }
    }
    for c in Api::<ValidatingAdmissionPolicy>::all(client.clone()).list(&ListParams::default()).await?.items {
        if ours(&c.name_any(), c.labels(), &serde_json::to_value(&c)?) {
            found.push(format!("ValidatingAdmissionPolicy {}", c.name_any()));
        }
    }
    for c in Api::<ValidatingAdmissionPolicyBinding>::all(client.clone()).list(&ListParams::default()).await?.items {
        if ours(&c.name_any(), c.labels(), &serde_json::to_value(&c)?) {
            found.push(format!("ValidatingAdmissionPolicyBinding {}", c.name_any()));
        }
    }
    for c in Api::<ClusterRole>::all(client.clone()).list(&ListParams::default().labels(PART_OF)).await?.items {
        found.push(format!("ClusterRole {}", c.name_any()));
    }
    for c in Api::<ClusterRoleBinding>::all(client.clone()).list(&ListParams::default().labels(PART_OF)).await?.items {
        found.push(format!("ClusterRoleBinding {}", c.name_any()));
    }
    Ok(found)
}

/// `kubectl delete -k` of the install leaves no webhook configuration (nor any
/// other cluster-wide object of ours); pods and jobs in a former environment
/// then start as in any namespace. The product is installed again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uninstall_leaves_no_webhook_and_former_environments_work() -> Result<()> {
    let client = client().await?;
    wait_server_settled(&client, Duration::from_secs(180)).await?;
    let ns = environment(&client, "former").await?;
    // Installed: pods of the environment get the outputs.
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    let pod = ns.api::<Pod>().create(&dry, &stream_pod("before")).await?;
    check_pod_mutated(&pod).map_err(|e| anyhow!("before the uninstall: {e}"))?;
    // A lifecycle template (never run: the environment is never stopped); the
    // controller puts its outputs-cleanup finalizer on it.
    let mut template = busybox_job("on-stop", "true");
    template.metadata.annotations = Some([(ANNOTATION_ON.to_string(), "stop".to_string())].into());
    ns.create(&template).await?;
    wait_until("the controller adopts the template", TIMEOUT, || async {
        Ok((!ns.api::<Job>().get("on-stop").await?.finalizers().is_empty()).then_some(()))
    })
    .await?;

    let mut reinstall = Reinstall { done: false };
    let started = Instant::now();
    kubectl(&["delete", "-k", LOCAL_OVERLAY, "--ignore-not-found", "--timeout=180s"]).await?;
    let uninstall_time = started.elapsed();

    // Nothing of ours is left intercepting or granting anything.
    assert_nothing_left(&client, "the uninstall").await?;

    // A pod in the former environment starts normally, without our variables.
    ns.create(&obj::<Pod>(json!({
        "metadata": {"name": "after"},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]
        }
    })))
    .await?;
    let pod = wait_for_pod_running(&client, ns.name(), "after", TIMEOUT).await?;
    let spec = pod.spec.context("pod without spec")?;
    assert!(
        spec.containers.iter().all(|c| c.env_from.is_none()),
        "no outputs envFrom without the product: {:?}",
        spec.containers
    );
    assert!(spec.init_containers.is_none(), "no agent without the product");
    // And so does a Job, without an agent.
    ns.create(&busybox_job("after-job", "echo ran")).await?;
    wait_for_job_complete(&client, ns.name(), "after-job", TIMEOUT).await?;
    let job_pod = job_pods(&client, ns.name(), "after-job").await?.into_iter().next().context("after-job's pod")?;
    assert!(job_pod.spec.and_then(|s| s.init_containers).is_none(), "no agent without the product");

    // The documented uninstall's second step (README, Uninstall) frees the
    // lifecycle templates of their finalizers, here in this environment; the
    // template can then be deleted (and with it the environment's namespace).
    let jobs = ns.api::<Job>();
    for job in jobs.list(&ListParams::default()).await?.items {
        if !job.finalizers().is_empty() {
            let patch = json!([{"op": "remove", "path": "/metadata/finalizers"}]);
            jobs.patch(&job.name_any(), &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(patch)?)).await?;
        }
    }
    jobs.delete("on-stop", &DeleteParams::background()).await?;
    let template_deleted = wait_until("the template is deleted", Duration::from_secs(30), || async {
        Ok(jobs.get_opt("on-stop").await?.is_none().then_some(()))
    })
    .await;

    // Installed again, for the runs that follow; it serves this environment again.
    let started = Instant::now();
    reinstall.reinstall().await.context("reinstalling")?;
    println!("uninstall took {uninstall_time:?}, reinstall {:?}", started.elapsed());
    wait_server_settled(&client, Duration::from_secs(180)).await?;
    let pod = ns.api::<Pod>().create(&dry, &stream_pod("reinstalled")).await?;
    check_pod_mutated(&pod).map_err(|e| anyhow!("after the reinstall: {e}"))?;

    template_deleted.context("after the documented uninstall, a lifecycle template of a former environment cannot be deleted")?;
    Ok(())
}
