//! Support library of the end-to-end suite: a client for the real local cluster
//! (`make cluster-up`), a namespace per test that is deleted afterwards, waits
//! that poll with a deadline (never a fixed sleep), pod logs and exec, and
//! builders for the busybox workloads the tests run.
//!
//! The cluster is found through `KUBECONFIG` (one path) or else the repository's
//! `.local-cluster/kubeconfig`. Set `E2E_KEEP_NAMESPACES=1` to keep the
//! namespaces of failed tests for a post-mortem.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, ServiceAccount};
use kube::api::{AttachParams, DeleteParams, ListParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

pub mod browser;
pub mod lifecycle;
pub mod process;

/// The busybox image every cluster-up imports (`busybox:local`, never pulled).
pub const BUSYBOX: &str = "busybox:local";

/// Label on every namespace the suite creates, so leftovers are easy to find:
/// `kubectl delete namespace -l e2e.lifecycle-jobs.dev/suite`.
pub const SUITE_LABEL: &str = "e2e.lifecycle-jobs.dev/suite";

/// Generous default deadline for things that take seconds on an idle cluster:
/// the suite runs tests in parallel on a small CI machine.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// How often the waits poll.
const POLL: Duration = Duration::from_millis(300);

// --- client ------------------------------------------------------------------------

/// The kubeconfig of the cluster under test.
pub fn kubeconfig_path() -> PathBuf {
    match std::env::var_os("KUBECONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local-cluster/kubeconfig"),
    }
}

/// A client for the cluster under test, with the admin credentials.
///
/// Each `#[tokio::test]` has its own runtime, and a client belongs to the
/// runtime that made it: call this once per test.
pub async fn client() -> Result<Client> {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).with_context(|| {
        format!("no kubeconfig at {} (start the local cluster with `make cluster-up`, or set KUBECONFIG)", path.display())
    })?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("kubeconfig {}", path.display()))?;
    let client = Client::try_from(config)?;
    client.apiserver_version().await.with_context(|| format!("cluster of {} does not answer", path.display()))?;
    Ok(client)
}

/// A client that acts as `user` (with no group but `system:authenticated`):
/// `kubectl --as=<user>`, for tests that play a user with only some rights.
pub async fn client_as(user: &str) -> Result<Client> {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.auth_info.impersonate = Some(user.to_string());
    Ok(Client::try_from(config)?)
}

/// What curl got from the lifecycle-jobs server.
#[derive(Debug)]
pub struct ServerAnswer {
    /// The HTTP version curl used (`1.1`, `2`).
    pub version: String,
    /// The status code (0 when curl got no answer; see `stderr`).
    pub status: u16,
    pub body: String,
    /// curl's own messages.
    pub stderr: String,
}

/// POSTs `body` over HTTPS to the lifecycle-jobs server through its Service,
/// from the test host, as any pod or client that reaches the Service could;
/// with a bearer token if given. Over HTTP/1.1, as agents: over HTTP/2 the
/// server answers a refused upload before reading it and resets the stream
/// (NO_ERROR), which curl before 8.1 reports as error 92 instead of the
/// answer. Returns the status code and the body.
pub async fn server_post(client: &Client, path: &str, token: Option<&str>, body: &str) -> Result<(u16, String)> {
    let answer = server_request(client, "--http1.1", path, token, body).await?;
    Ok((answer.status, answer.body))
}

/// POSTs `body` to the server through its Service with curl's `protocol`
/// flag (`--http1.1`, `--http2`), trusting the server's CA from its Secret.
pub async fn server_request(
    client: &Client,
    protocol: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<ServerAnswer> {
    use k8s_openapi::api::core::v1::{Secret, Service};
    use lifecycle_contract::names::SYSTEM_NAMESPACE;
    let svc: Service = Api::namespaced(client.clone(), SYSTEM_NAMESPACE).get("lifecycle-webhook").await?;
    let ip = svc.spec.and_then(|s| s.cluster_ip).context("service IP")?;
    let tls: Secret = Api::namespaced(client.clone(), SYSTEM_NAMESPACE).get("lifecycle-webhook-tls").await?;
    let ca = tls.data.and_then(|d| d.get("ca.crt").cloned()).context("ca.crt")?;
    let dir = std::env::temp_dir().join(format!("e2e-post-{}", unique_suffix()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ca.crt"), &ca.0)?;
    std::fs::write(dir.join("body"), body)?;
    let host = format!("lifecycle-webhook.{SYSTEM_NAMESPACE}.svc");
    let out = tokio::task::spawn_blocking({
        let dir = dir.clone();
        let token = token.map(str::to_string);
        let (protocol, path) = (protocol.to_string(), path.to_string());
        move || {
            let mut cmd = std::process::Command::new("curl");
            cmd.args(["-sS", &protocol, "--max-time", "30", "-o", "-", "-w", "\n%{http_version} %{http_code}", "--cacert"])
                .arg(dir.join("ca.crt"))
                .args(["--resolve", &format!("{host}:443:{ip}")]);
            if let Some(token) = token {
                cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
            }
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(format!("@{}", dir.join("body").display()))
                .arg(format!("https://{host}{path}"))
                .output()
        }
    })
    .await??;
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, written) = text.rsplit_once('\n').ok_or_else(|| anyhow!("curl: {stderr}"))?;
    let (version, status) = written.trim().split_once(' ').ok_or_else(|| anyhow!("curl wrote {written:?}: {stderr}"))?;
    Ok(ServerAnswer {
        version: version.to_string(),
        status: status.parse().with_context(|| format!("HTTP status {status:?}: {stderr}"))?,
        body: body.to_string(),
        stderr,
    })
}

// --- objects from JSON -------------------------------------------------------------

/// An object from its JSON form, the way manifests read: `obj(json!({...}))`.
pub fn obj<K: DeserializeOwned>(value: Value) -> K {
    serde_json::from_value(value).expect("test object must match its Kubernetes type")
}

/// A unique, DNS-label-safe suffix (8 hex digits).
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let mixed = (nanos as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: neighbouring inputs give unrelated outputs.
    let mut z = mixed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:08x}", (z ^ (z >> 31)) as u32)
}

// --- namespaces ----------------------------------------------------------------------

/// A namespace that exists for one test and is deleted when dropped (also when
/// the test fails), unless `E2E_KEEP_NAMESPACES` is set and the test panicked.
pub struct TestNamespace {
    name: String,
    client: Client,
    deleted: bool,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<suffix>`.
    pub async fn new(client: &Client, prefix: &str) -> Result<Self> {
        Self::with_labels(client, prefix, &[]).await
    }

    /// Creates `e2e-<prefix>-<suffix>` with extra labels (for example the
    /// environment label, which makes it an environment).
    pub async fn with_labels(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> Result<Self> {
        let mut name = format!("e2e-{prefix}");
        name.truncate(63 - 9);
        let name = format!("{}-{}", name.trim_end_matches('-'), unique_suffix());
        let mut all: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.insert(SUITE_LABEL.to_string(), "true".to_string());
        let ns: Namespace = obj(json!({
            "metadata": { "name": name, "labels": all }
        }));
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        let ns = Self { name, client: client.clone(), deleted: false };
        // Pods are refused until the namespace's default service account exists,
        // and their API-access volume waits for the root CA ConfigMap: both are
        // made by controllers moments after the namespace. Tests start after.
        let (sa, cm) = (ns.api::<ServiceAccount>(), ns.api::<ConfigMap>());
        wait_until(&format!("namespace {} is ready for pods", ns.name), Duration::from_secs(60), || {
            let (sa, cm) = (sa.clone(), cm.clone());
            async move {
                Ok((sa.get_opt("default").await?.is_some() && cm.get_opt("kube-root-ca.crt").await?.is_some()).then_some(()))
            }
        })
        .await?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// An API for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// Creates a namespaced object in this namespace.
    pub async fn create<K>(&self, object: &K) -> Result<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + std::fmt::Debug,
        K: DeserializeOwned + serde::Serialize,
        <K as Resource>::DynamicType: Default,
    {
        self.api::<K>()
            .create(&PostParams::default(), object)
            .await
            .with_context(|| format!("creating {} {}/{}", K::kind(&Default::default()), self.name, object.name_any()))
    }

    /// Deletes the namespace and waits until it is gone (namespace deletion is
    /// itself behaviour the product relies on).
    pub async fn delete_and_wait(mut self, timeout: Duration) -> Result<()> {
        let api = Api::<Namespace>::all(self.client.clone());
        delete_environment(&api, &self.name, &DeleteParams::foreground()).await?;
        self.deleted = true;
        let name = self.name.clone();
        wait_until(&format!("namespace {name} is deleted"), timeout, || {
            let api = api.clone();
            let name = name.clone();
            async move { Ok(api.get_opt(&name).await?.is_none().then_some(())) }
        })
        .await
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if !self.deleted {
            drop(DeleteOnDrop(self.name.clone()));
        }
    }
}

/// A namespace the test did not make through [`TestNamespace`] (`kubectl
/// apply` of an example, the plugin's `env create`): deleted when the test
/// ends, also on failure, the way a person deletes an environment
/// ([`delete_environment`]). `E2E_KEEP_NAMESPACES` keeps it after a failure.
pub struct DeleteOnDrop(pub String);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("E2E_KEEP_NAMESPACES").is_some() {
            eprintln!("keeping namespace {} (E2E_KEEP_NAMESPACES is set)", self.0);
            return;
        }
        // Drop cannot await, and the test's runtime may be single-threaded and
        // busy dropping us: delete from a thread with a runtime and a client of
        // its own (a client is bound to the runtime that made it).
        match delete_namespace_blocking(&self.0) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not delete namespace {}: {e:#}", self.0),
            Err(_) => eprintln!("could not delete namespace {}: the cleanup thread panicked", self.0),
        }
    }
}

/// Deletes namespace `name` (in the background; already gone is fine) from a
/// thread with a runtime and a client of its own, for `Drop`, which cannot await.
pub fn delete_namespace_blocking(name: &str) -> std::thread::Result<Result<()>> {
    let name = name.to_string();
    std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let client = client().await?;
            delete_environment(&Api::<Namespace>::all(client), &name, &DeleteParams::background()).await
        })
    })
    .join()
}

/// Deletes a namespace the way a person does: `kubectl delete namespace`, and
/// when lifecycle-jobs refuses that (an environment with delete jobs), the
/// label `state=deleted` it says to set instead. Already gone is fine.
pub async fn delete_environment(api: &Api<Namespace>, name: &str, params: &DeleteParams) -> Result<()> {
    match api.delete(name, params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(kube::Error::Api(e)) if e.message.contains("lifecycle-jobs") => {
            let patch = serde_json::json!({"metadata": {"labels": {lifecycle_contract::names::LABEL_STATE: "deleted"}}});
            api.patch(name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

// --- waiting --------------------------------------------------------------------------

/// Polls `check` until it returns `Ok(Some(value))`, and returns the value.
/// An `Err` from `check` counts as "not yet" (the cluster may be catching up);
/// on the deadline the error names `what` and the last error seen.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()).max(POLL), check()).await {
            Ok(Ok(Some(value))) => return Ok(value),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            return Err(match last_error {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting until {what}")),
                None => anyhow!("timed out after {timeout:?} waiting until {what}"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn condition_true(conditions: Option<&Vec<k8s_openapi::api::batch::v1::JobCondition>>, kind: &str) -> bool {
    conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// Waits until the Job has completed successfully. A Job that fails instead
/// ends the wait at once, with its pods' states and logs in the error.
pub async fn wait_for_job_complete(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let result = wait_until(&format!("job {ns}/{name} is complete"), timeout, || {
        let api = api.clone();
        async move {
            let job = api.get(name).await?;
            let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
            if condition_true(conditions, "Complete") {
                return Ok(Some(Ok(job)));
            }
            if condition_true(conditions, "Failed") {
                return Ok(Some(Err(job)));
            }
            Ok(None)
        }
    })
    .await;
    match result {
        Ok(Ok(job)) => Ok(job),
        Ok(Err(job)) => {
            let reason = job
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.type_ == "Failed")
                .map(|c| format!("{}: {}", c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
                .unwrap_or_default();
            bail!("job {ns}/{name} failed ({reason})\n{}", describe_job_pods(client, ns, name).await)
        }
        Err(e) => Err(e.context(describe_job_pods(client, ns, name).await)),
    }
}

/// Waits until the Job has failed (its `Failed` condition), for tests of
/// failures; a Job that completes instead ends the wait with an error.
pub async fn wait_for_job_failed(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    wait_until(&format!("job {ns}/{name} has failed"), timeout, || {
        let api = api.clone();
        async move {
            let job = api.get(name).await?;
            let conditions = job.status.as_ref().and_then(|s| s.conditions.as_ref());
            if condition_true(conditions, "Complete") {
                bail!("job {ns}/{name} completed, but it was expected to fail");
            }
            Ok(condition_true(conditions, "Failed").then_some(job))
        }
    })
    .await
}

/// Waits until the pod is Running with every container ready.
pub async fn wait_for_pod_running(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let result = wait_until(&format!("pod {ns}/{name} is running and ready"), timeout, || {
        let api = api.clone();
        async move {
            let pod = api.get(name).await?;
            let status = pod.status.as_ref();
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
            if phase == "Failed" || phase == "Succeeded" {
                bail!("pod {ns}/{name} ended ({phase}) instead of running");
            }
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            Ok((phase == "Running" && ready).then_some(pod))
        }
    })
    .await;
    match result {
        Ok(pod) => Ok(pod),
        Err(e) => Err(e.context(describe_pod(client, ns, name).await)),
    }
}

/// Waits until the pod has ended (phase Succeeded or Failed) and returns it.
pub async fn wait_for_pod_ended(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_until(&format!("pod {ns}/{name} has ended"), timeout, || {
        let api = api.clone();
        async move {
            let pod = api.get(name).await?;
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
            Ok(matches!(phase, "Succeeded" | "Failed").then_some(pod))
        }
    })
    .await
}

/// Waits until every wanted replica of the Deployment is updated and available.
pub async fn wait_for_deployment_available(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<Deployment> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let result = wait_until(&format!("deployment {ns}/{name} is available"), timeout, || {
        let api = api.clone();
        async move {
            let d = api.get(name).await?;
            let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = d.status.clone().unwrap_or_default();
            let generation_seen = status.observed_generation >= d.metadata.generation;
            let done = generation_seen
                && status.updated_replicas.unwrap_or(0) == wanted
                && status.available_replicas.unwrap_or(0) == wanted
                && status.replicas.unwrap_or(0) == wanted;
            Ok(done.then_some(d))
        }
    })
    .await;
    match result {
        Ok(d) => Ok(d),
        Err(e) => {
            let pods = describe_pods(client, ns, &format!("app={name}")).await;
            Err(e.context(pods))
        }
    }
}

// --- pods: logs, exec, diagnostics -----------------------------------------------------

/// The pods of a Job.
pub async fn job_pods(client: &Client, ns: &str, job: &str) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(api.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"))).await?.items)
}

/// The log of one container of a pod (`None`: the pod's only container).
pub async fn pod_logs(client: &Client, ns: &str, pod: &str, container: Option<&str>) -> Result<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let params = LogParams { container: container.map(str::to_string), ..LogParams::default() };
    api.logs(pod, &params).await.with_context(|| format!("logs of pod {ns}/{pod}"))
}

/// The log of a Job's container: of its one pod, or of the last-created one.
pub async fn job_logs(client: &Client, ns: &str, job: &str, container: Option<&str>) -> Result<String> {
    let mut pods = job_pods(client, ns, job).await?;
    pods.sort_by_key(|p| p.metadata.creation_timestamp.clone());
    let pod = pods.last().ok_or_else(|| anyhow!("job {ns}/{job} has no pods"))?;
    pod_logs(client, ns, &pod.name_any(), container).await
}

/// What a command run in a container printed, and how it ended.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The command's exit code (0: success).
    pub exit_code: i32,
}

/// Runs a command in a running container, as `kubectl exec` does.
pub async fn exec(
    client: &Client,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    command: &[&str],
    timeout: Duration,
) -> Result<ExecOutput> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut params = AttachParams::default().stdin(false).stdout(true).stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let run = async {
        let mut process = api
            .exec(pod, command.iter().copied(), &params)
            .await
            .with_context(|| format!("exec {command:?} in pod {ns}/{pod}"))?;
        let mut stdout = process.stdout().context("exec: no stdout")?;
        let mut stderr = process.stderr().context("exec: no stderr")?;
        let status = process.take_status().context("exec: no status")?;
        let (mut out, mut err) = (String::new(), String::new());
        let (r1, r2) = tokio::join!(stdout.read_to_string(&mut out), stderr.read_to_string(&mut err));
        r1?;
        r2?;
        let status = status.await;
        process.join().await?;
        let exit_code = match status {
            Some(s) if s.status.as_deref() == Some("Success") => 0,
            Some(s) => s
                .details
                .and_then(|d| d.causes)
                .unwrap_or_default()
                .into_iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message)
                .and_then(|m| m.parse().ok())
                .ok_or_else(|| anyhow!("exec {command:?} in {ns}/{pod} failed: {:?}", s.message))?,
            None => bail!("exec {command:?} in {ns}/{pod}: no exit status"),
        };
        Ok(ExecOutput { stdout: out, stderr: err, exit_code })
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| anyhow!("exec {command:?} in pod {ns}/{pod} did not end within {timeout:?}"))?
}

/// Events about one object, oldest first (`kubectl describe`'s Events).
pub async fn events_for(client: &Client, ns: &str, kind: &str, name: &str) -> Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
    let mut events = api.list(&ListParams::default().fields(&selector)).await?.items;
    events.sort_by_key(|e| (e.last_timestamp.clone(), e.metadata.creation_timestamp.clone()));
    Ok(events)
}

/// A short report of a pod (phase, container states, recent events, logs):
/// what a person would look at when a wait fails.
pub async fn describe_pod(client: &Client, ns: &str, name: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    match api.get(name).await {
        Ok(pod) => describe_pod_object(client, &pod).await,
        Err(e) => format!("pod {ns}/{name}: {e}"),
    }
}

async fn describe_pods(client: &Client, ns: &str, selector: &str) -> String {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) if list.items.is_empty() => format!("no pods in {ns} match {selector}"),
        Ok(list) => {
            let mut out = String::new();
            for pod in &list.items {
                out.push_str(&describe_pod_object(client, pod).await);
            }
            out
        }
        Err(e) => format!("listing pods {selector} in {ns}: {e}"),
    }
}

async fn describe_job_pods(client: &Client, ns: &str, job: &str) -> String {
    describe_pods(client, ns, &format!("batch.kubernetes.io/job-name={job}")).await
}

async fn describe_pod_object(client: &Client, pod: &Pod) -> String {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let status = pod.status.clone().unwrap_or_default();
    let mut out = format!("--- pod {ns}/{name}: phase {}\n", status.phase.unwrap_or_default());
    let statuses =
        status.init_container_statuses.unwrap_or_default().into_iter().chain(status.container_statuses.unwrap_or_default());
    let mut containers = Vec::new();
    for cs in statuses {
        out.push_str(&format!("  container {}: {}\n", cs.name, serde_json::to_string(&cs.state).unwrap_or_default()));
        containers.push(cs.name);
    }
    if let Ok(events) = events_for(client, &ns, "Pod", &name).await {
        for e in events.iter().rev().take(8).rev() {
            out.push_str(&format!(
                "  event {} {}: {}\n",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            ));
        }
    }
    for c in containers {
        if let Ok(log) = pod_logs(client, &ns, &name, Some(&c)).await {
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            out.push_str(&format!("  log of {c} (last {} lines):\n", tail.len()));
            for line in tail.into_iter().rev() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

// --- workloads ------------------------------------------------------------------------------

/// A Job of one busybox container running a shell script, no retries.
pub fn busybox_job(name: &str, script: &str) -> Job {
    obj(json!({
        "metadata": { "name": name },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main",
                        "image": BUSYBOX,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", script]
                    }]
                }
            }
        }
    }))
}

/// A Deployment (label `app=<name>`) of busybox `httpd` serving `body` at `/`
/// on port 8080, ready once the port accepts connections.
pub fn httpd_deployment(name: &str, replicas: i32, body: &str) -> Deployment {
    let script = "mkdir -p /www && printf '%s' \"$BODY\" > /www/index.html && exec httpd -f -v -p 8080 -h /www";
    obj(json!({
        "metadata": { "name": name, "labels": { "app": name } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "httpd",
                        "image": BUSYBOX,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", script],
                        "env": [{ "name": "BODY", "value": body }],
                        "ports": [{ "name": "http", "containerPort": 8080 }],
                        "readinessProbe": {
                            "tcpSocket": { "port": 8080 },
                            "periodSeconds": 1
                        }
                    }]
                }
            }
        }
    }))
}

/// A ClusterIP Service `name` on port 80 for the pods labelled `app=<name>`,
/// port 8080.
pub fn http_service(name: &str) -> k8s_openapi::api::core::v1::Service {
    obj(json!({
        "metadata": { "name": name },
        "spec": {
            "selector": { "app": name },
            "ports": [{ "name": "http", "port": 80, "targetPort": 8080 }]
        }
    }))
}

/// A shell snippet that fetches `url` with wget and prints the body, making up
/// to `attempts` attempts a second apart: a new Service's endpoints reach the
/// node's proxy within moments, as in any cluster, and real clients retry.
/// (Each attempt is bounded by `timeout`: Debian's busybox 1.35 `wget -T`
/// crashes.)
pub fn wget_with_retries(url: &str, attempts: u32) -> String {
    format!(
        "i=1; until timeout 5 wget -q -O - '{url}'; do \
         if [ $i -ge {attempts} ]; then echo 'giving up on {url}' >&2; exit 1; fi; i=$((i+1)); sleep 1; done"
    )
}
