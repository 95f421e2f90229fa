//! The server holds under abuse, at scale and through its own absence:
//! slow uploads do not stop admission, huge Jobs outside environments do not
//! sink it at start, and outputs that could not be published while it was
//! away are reported on their Jobs (and fail their lifecycle runs).
//!
//! Each test leaves the server as it found it: two replicas, ready.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{ANNOTATION_LAST_RUNS, ANNOTATION_OUTPUTS, OUTPUTS_NOT_PUBLISHED, SYSTEM_NAMESPACE};
use lifecycle_e2e::lifecycle::{self, environment, live_and_ready};
use lifecycle_e2e::process::kubectl_lifecycle;
use lifecycle_e2e::{TestNamespace, busybox_job, client, events_for, obj, wait_for_job_complete, wait_until};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::outputs_flood::flood::running_captured_pod;

const SERVER: &str = "lifecycle-webhook";
const SERVER_PODS: &str = "app.kubernetes.io/name=lifecycle-webhook";
const SERVER_NAME: &str = "lifecycle-webhook.lifecycle-jobs-system.svc";
/// The server container's memory limit (manifests/base/deployment.yaml).
const MEMORY_LIMIT: u64 = 256 * 1024 * 1024;

pub(crate) async fn server_pods(client: &Client) -> Result<Vec<Pod>> {
    Ok(Api::<Pod>::namespaced(client.clone(), SYSTEM_NAMESPACE).list(&ListParams::default().labels(SERVER_PODS)).await?.items)
}

/// Waits until exactly two server replicas run, ready.
pub(crate) async fn wait_two_ready(client: &Client, timeout: Duration) -> Result<Vec<Pod>> {
    wait_until("the server runs two ready replicas and nothing else", timeout, || async {
        let list = server_pods(client).await?;
        Ok((list.len() == 2 && list.iter().all(live_and_ready)).then_some(list))
    })
    .await
}

/// Both server replicas are there, ready, and none of their containers ever restarted.
pub(crate) async fn assert_two_ready_never_restarted(client: &Client) -> Result<()> {
    for p in &wait_two_ready(client, Duration::from_secs(30)).await? {
        let restarts: i32 = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum());
        ensure!(restarts == 0, "server pod {} restarted {restarts} times", p.name_any());
    }
    Ok(())
}

/// Scales the server to zero and waits until none of its pods is left.
async fn server_away(client: &Client) -> Result<()> {
    scale_server(client, 0).await?;
    wait_until("no server pod is left", Duration::from_secs(120), || async {
        Ok(server_pods(client).await?.is_empty().then_some(()))
    })
    .await
}

async fn scale_server(client: &Client, replicas: i32) -> Result<()> {
    Api::<Deployment>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .patch(SERVER, &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": replicas}})))
        .await
        .with_context(|| format!("scaling the server to {replicas}"))?;
    Ok(())
}

/// Scales the server back to two replicas however the test ends.
struct RestoreServer;

impl Drop for RestoreServer {
    fn drop(&mut self) {
        let _ = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                if let Ok(c) = client().await {
                    let _ = scale_server(&c, 2).await;
                    let _ = wait_two_ready(&c, Duration::from_secs(180)).await;
                }
            })
        })
        .join();
    }
}

/// Creates pod `p<i>` in the environment `ns` and checks that admission gave it its variables.
pub(crate) async fn admit_pod(ns: &TestNamespace, i: usize) -> Result<()> {
    let name = format!("p{i}");
    let pod: Pod = obj(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": lifecycle_e2e::BUSYBOX, "command": ["true"]}],
                 "restartPolicy": "Never", "terminationGracePeriodSeconds": 1}
    }));
    let created = ns.api::<Pod>().create(&PostParams::default(), &pod).await.with_context(|| format!("admitting pod {name}"))?;
    let env_from = created.spec.as_ref().and_then(|s| s.containers[0].env_from.as_ref()).map_or(0, Vec::len);
    ensure!(env_from > 0, "pod {name} was admitted without its variables");
    Ok(())
}

// --- slow uploads --------------------------------------------------------------------------------

/// A TLS client trusting the webhook configuration's CA bundle, offering `alpn`.
pub(crate) async fn tls_connector(client: &Client, alpn: &[&[u8]]) -> Result<tokio_rustls::TlsConnector> {
    let m = Api::<MutatingWebhookConfiguration>::all(client.clone()).get("lifecycle-jobs").await?;
    let bundle = m
        .webhooks
        .unwrap_or_default()
        .into_iter()
        .find_map(|w| w.client_config.ca_bundle)
        .ok_or_else(|| anyhow!("the mutating webhook configuration has no caBundle"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut bundle.0.as_slice()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One slow client against `addr` until `until`: it sends an outputs upload's
/// headers one byte a second, or full headers announcing 1 MiB and then the
/// body one byte a second; when the server closes it, it starts again.
/// Returns how many connections the server closed.
async fn slow_uploader(connector: tokio_rustls::TlsConnector, addr: String, slow_headers: bool, until: Instant) -> u32 {
    let mut closed = 0u32;
    while Instant::now() < until {
        let attempt = async {
            let tcp = tokio::net::TcpStream::connect(&addr).await?;
            let name = rustls_pki_types::ServerName::try_from(SERVER_NAME)?;
            let mut tls = connector.connect(name, tcp).await?;
            let head = "POST /v1/outputs HTTP/1.1\r\nHost: lifecycle-webhook\r\nAuthorization: Bearer not-a-token\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n";
            let (first, rest) = if slow_headers { ("", head) } else { (head, "") };
            tls.write_all(first.as_bytes()).await?;
            tls.flush().await?;
            for b in rest.bytes().chain(std::iter::repeat(b' ')) {
                if Instant::now() >= until {
                    return Ok::<_, anyhow::Error>(());
                }
                tls.write_all(&[b]).await?;
                tls.flush().await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(())
        };
        if attempt.await.is_err() {
            closed += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    closed
}

#[tokio::test]
async fn both_replicas_keep_admitting_pods_while_64_slow_uploads_are_held_open() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client().await?;
    let pods = wait_two_ready(&client, Duration::from_secs(120)).await?;
    let addrs: Vec<String> =
        pods.iter().filter_map(|p| p.status.as_ref()?.pod_ip.clone()).map(|ip| format!("{ip}:8443")).collect();
    ensure!(addrs.len() == 2, "the server pods have no addresses: {addrs:?}");
    let connector = tls_connector(&client, &[]).await?;

    // 64 slow clients, 32 per replica, for a fixed 40 s.
    let until = Instant::now() + Duration::from_secs(40);
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..64 {
        slow.spawn(slow_uploader(connector.clone(), addrs[i % 2].clone(), i % 4 == 0, until));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Meanwhile, pods keep being admitted into an environment (the API server
    // spreads them over both replicas through the Service).
    let ns = environment(&client, "bounded-slow").await?;
    let mut admitted = 0;
    while Instant::now() + Duration::from_secs(2) < until {
        admit_pod(&ns, admitted).await?;
        admitted += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut closed = 0;
    while let Some(r) = slow.join_next().await {
        closed += r?;
    }
    eprintln!("admitted {admitted} pods while 64 slow uploads were held; the server closed {closed} slow connections");
    ensure!(admitted >= 20, "only {admitted} pods admitted");
    assert_two_ready_never_restarted(&client).await?;
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(())
}

// --- huge Jobs outside environments ------------------------------------------------------

/// Working set of the server's containers, from the kubelets' summaries.
pub(crate) async fn server_memory(client: &Client) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for node in Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items {
        let req = http::Request::get(format!("/api/v1/nodes/{}/proxy/stats/summary", node.name_any())).body(Vec::new())?;
        let summary: serde_json::Value = client.request(req).await?;
        for pod in summary["pods"].as_array().into_iter().flatten() {
            if pod["podRef"]["namespace"] == SYSTEM_NAMESPACE {
                let ws = pod["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["memory"]["workingSetBytes"].as_u64())
                    .sum();
                out.insert(pod["podRef"]["name"].as_str().unwrap_or_default().to_string(), ws);
            }
        }
    }
    Ok(out)
}

#[tokio::test]
async fn six_hundred_jobs_with_190_kib_annotations_elsewhere_do_not_sink_the_server_at_start() -> Result<()> {
    let client = client().await?;
    wait_two_ready(&client, Duration::from_secs(120)).await?;
    let ns = TestNamespace::new(&client, "bounded-big").await?;
    let big = "x".repeat(190 * 1024);
    let api = ns.api::<Job>();
    let mut created = tokio::task::JoinSet::new();
    for chunk in 0..8 {
        let (api, big) = (api.clone(), big.clone());
        created.spawn(async move {
            for i in (chunk * 75)..((chunk + 1) * 75) {
                let mut job = busybox_job(&format!("big-{i}"), "true");
                job.metadata.annotations = Some(BTreeMap::from([("example.com/blob".to_string(), big.clone())]));
                job.spec.as_mut().unwrap().suspend = Some(true);
                api.create(&PostParams::default(), &job).await.with_context(|| format!("creating job big-{i}"))?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = created.join_next().await {
        r??;
    }

    // A restart makes each replica list every Job of the cluster again.
    let before: Vec<String> = server_pods(&client).await?.iter().map(|p| p.name_any()).collect();
    let now = format!("{:?}", std::time::SystemTime::now());
    Api::<Deployment>::namespaced(client.clone(), SYSTEM_NAMESPACE)
        .patch(
            SERVER,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"template": {"metadata": {"annotations": {"e2e.lifecycle-jobs.dev/restarted": now}}}}}),
            ),
        )
        .await?;
    let after = wait_until("the restarted server runs two new ready replicas", Duration::from_secs(240), || async {
        let list = server_pods(&client).await?;
        Ok((list.len() == 2 && list.iter().all(|p| live_and_ready(p) && !before.contains(&p.name_any()))).then_some(list))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    for p in server_pods(&client).await? {
        let status = p.status.clone().unwrap_or_default();
        for c in status.container_statuses.unwrap_or_default() {
            let oom = c
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
            ensure!(
                c.restart_count == 0 && !oom,
                "server pod {} container {} restarted ({:?})",
                p.name_any(),
                c.name,
                c.last_state
            );
        }
    }
    // The kubelet's summary may be unavailable on some clusters: then the
    // restart count and the OOM check above are the evidence.
    let memory = server_memory(&client).await.unwrap_or_else(|e| {
        eprintln!("no kubelet stats summary: {e:#}");
        BTreeMap::new()
    });
    eprintln!("server working set after a restart with 600 x 190 KiB Jobs: {memory:?}");
    for p in &after {
        if let Some(ws) = memory.get(&p.name_any()) {
            ensure!(*ws < MEMORY_LIMIT, "server pod {} uses {ws} bytes, over its limit", p.name_any());
        }
    }
    ns.delete_and_wait(Duration::from_secs(300)).await?;
    Ok(())
}

// --- outputs lost while the server is away -----------------------------------------------

const PUBLISH_LATE: &str = r#"sleep 25; printf '{"LATE": {"value": "1"}}' > /qovery-output/qovery-output.json"#;

async fn wait_lost_warning(client: &Client, ns: &str, job: &str) -> Result<String> {
    wait_until(&format!("job {job} has an OutputsNotPublished Warning"), Duration::from_secs(120), || async {
        let events = events_for(client, ns, "Job", job).await?;
        Ok(events
            .into_iter()
            .find(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some("OutputsNotPublished"))
            .and_then(|e| e.message))
    })
    .await
}

#[tokio::test]
async fn outputs_not_published_while_the_server_is_away_are_reported_and_fail_the_run() -> Result<()> {
    let client = client().await?;
    wait_two_ready(&client, Duration::from_secs(120)).await?;
    // Two environments: in the one whose start run is pending, the plain
    // Job's pod would wait (gated) until that run has finished.
    let plain_ns = environment(&client, "bounded-lost").await?;
    let ns = environment(&client, "bounded-lost-run").await?;
    let _restore = RestoreServer;

    // A plain captured Job and a start run, both admitted with their agents.
    plain_ns.create(&busybox_job("plain", PUBLISH_LATE)).await?;
    ns.create(&lifecycle::lifecycle_job("seed", "start", PUBLISH_LATE, true)).await?;
    running_captured_pod(&client, plain_ns.name(), "plain").await?;
    let run = wait_until("the start run of seed exists", Duration::from_secs(120), || async {
        Ok(lifecycle::runs(&client, ns.name(), "seed", "start").await?.into_iter().next().map(|j| j.name_any()))
    })
    .await?;
    running_captured_pod(&client, ns.name(), &run).await?;

    // The server goes away before the jobs write their files.
    server_away(&client).await?;

    // The jobs still complete: their agents give up within the grace period.
    wait_for_job_complete(&client, plain_ns.name(), "plain", Duration::from_secs(180)).await?;
    wait_for_job_complete(&client, ns.name(), &run, Duration::from_secs(180)).await?;

    scale_server(&client, 2).await?;
    wait_two_ready(&client, Duration::from_secs(180)).await?;

    for (env, job) in [(&plain_ns, "plain"), (&ns, run.as_str())] {
        let note = wait_lost_warning(&client, env.name(), job).await?;
        ensure!(note.contains(OUTPUTS_NOT_PUBLISHED), "the Warning on {job} does not say why: {note}");
        let recorded = env.api::<Job>().get(job).await?.annotations().get(ANNOTATION_OUTPUTS).cloned().unwrap_or_default();
        ensure!(recorded.starts_with(OUTPUTS_NOT_PUBLISHED), "job {job}'s outputs annotation: {recorded:?}");
        eprintln!("{job}: {note}");
    }
    let record = wait_until("the start run of seed is recorded as failed", Duration::from_secs(120), || async {
        let t = ns.api::<Job>().get("seed").await?;
        let runs: serde_json::Value =
            serde_json::from_str(t.annotations().get(ANNOTATION_LAST_RUNS).map_or("{}", String::as_str))?;
        Ok((runs["start"]["result"] == "failed").then(|| runs["start"].clone()))
    })
    .await?;
    ensure!(
        record["message"].as_str().is_some_and(|m| m.contains(OUTPUTS_NOT_PUBLISHED)),
        "the failed run's record does not say why: {record}"
    );
    // The plugin reads the same rule as the controller: the run failed, and says why.
    let status = kubectl_lifecycle(Duration::from_secs(60), &["env", "status", ns.name(), "-o", "json"]).await?.success()?;
    let doc = status.json()?;
    let row = doc["runs"].as_array().into_iter().flatten().find(|r| r["name"] == run.as_str()).cloned().unwrap_or_default();
    ensure!(
        row["phase"] == "Failed" && row["reason"] == lifecycle_contract::run::OUTPUTS_NOT_PUBLISHED_REASON,
        "the plugin shows run {run} as {row}: {status}"
    );
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    plain_ns.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(())
}

#[tokio::test]
async fn run_wait_reports_a_forced_run_whose_outputs_were_lost_as_failed() -> Result<()> {
    let client = client().await?;
    wait_two_ready(&client, Duration::from_secs(120)).await?;
    let ns = environment(&client, "bounded-lost-wait").await?;
    let _restore = RestoreServer;
    ns.create(&lifecycle::lifecycle_job("report", "stop", PUBLISH_LATE, true)).await?;
    wait_until("the template is known to the controller", Duration::from_secs(120), || async {
        Ok(ns.api::<Job>().get("report").await?.finalizers().iter().any(|f| f.starts_with("lifecycle-jobs.dev/")).then_some(()))
    })
    .await?;

    // A person forces the stop run and waits for it, as the issue did.
    let name = ns.name().to_string();
    let waiting = tokio::spawn(async move {
        kubectl_lifecycle(
            Duration::from_secs(480),
            &["run", "report", "--event", "stop", "-n", &name, "--wait", "--timeout", "7m"],
        )
        .await
    });
    let run = wait_until("the forced run exists", Duration::from_secs(120), || async {
        Ok(lifecycle::runs(&client, ns.name(), "report", "stop").await?.into_iter().next().map(|j| j.name_any()))
    })
    .await?;
    running_captured_pod(&client, ns.name(), &run).await?;

    // The server goes away before the job writes its file; the job still completes.
    server_away(&client).await?;
    wait_for_job_complete(&client, ns.name(), &run, Duration::from_secs(180)).await?;
    if waiting.is_finished() {
        let ran = waiting.await??;
        anyhow::bail!("run --wait ended while the run's outcome was not recorded yet: {ran}");
    }

    scale_server(&client, 2).await?;
    wait_two_ready(&client, Duration::from_secs(180)).await?;
    let ran = waiting.await??;
    ensure!(ran.code == 1, "run --wait must fail: {ran}");
    ran.says(
        false,
        &[&format!("run {run} of lifecycle job report failed"), lifecycle_contract::run::OUTPUTS_NOT_PUBLISHED_REASON],
    )?;
    ensure!(!ran.stdout.contains("succeeded in"), "{ran}");
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(())
}
