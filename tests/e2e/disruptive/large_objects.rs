//! What a tenant writes costs the server a bounded amount: an environment full
//! of very large workloads does not sink the controller.
//!
//! The attack (issue #19): with the built-in `edit` role in an environment, a
//! tenant creates 200 Deployments at zero replicas, each carrying a 1 MiB
//! environment variable (the API server stores objects up to about 1.5 MiB),
//! then asks for a stop and a start. A controller that lists the workloads
//! as whole objects into one Vec holds hundreds of MiB and is OOM-killed,
//! then its successor. Beside it, the legitimate path: a small Deployment of
//! the same environment is scaled down by the stop and back up by the start.
//!
//! The test prints the replicas' memory (kubelet stats summary: RSS and
//! working set, the highest seen while the transitions ran): docs/limits.md
//! records the numbers.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::SYSTEM_NAMESPACE;
use lifecycle_e2e::lifecycle::{environment, live_and_ready, set_state, small_deployment, wait_status, wanted_replicas};
use lifecycle_e2e::{client, wait_until};
use serde_json::json;

const SERVER_PODS: &str = "app.kubernetes.io/name=lifecycle-webhook";
/// The server container's memory limit and request (manifests/base/deployment.yaml).
const MEMORY_LIMIT: u64 = 256 * 1024 * 1024;
const MEMORY_REQUEST: u64 = 64 * 1024 * 1024;
const WORKLOADS: usize = 200;
const ENV_VAR_BYTES: usize = 1024 * 1024;

async fn server_pods(client: &Client) -> Result<Vec<Pod>> {
    Ok(Api::<Pod>::namespaced(client.clone(), SYSTEM_NAMESPACE).list(&ListParams::default().labels(SERVER_PODS)).await?.items)
}

/// Each server pod's name → (restarts, whether its last end was an OOM kill).
async fn restarts(client: &Client) -> Result<BTreeMap<String, (i32, bool)>> {
    let mut out = BTreeMap::new();
    for p in server_pods(client).await? {
        let statuses = p.status.clone().unwrap_or_default().container_statuses.unwrap_or_default();
        let count = statuses.iter().map(|c| c.restart_count).sum();
        let oom = statuses.iter().any(|c| {
            c.last_state.as_ref().and_then(|s| s.terminated.as_ref()).is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
        });
        out.insert(p.name_any(), (count, oom));
    }
    Ok(out)
}

/// Each server pod's name → (RSS, working set) in bytes, from the kubelets' summaries.
async fn server_memory(client: &Client) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut out = BTreeMap::new();
    for node in Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items {
        let req = http::Request::get(format!("/api/v1/nodes/{}/proxy/stats/summary", node.name_any())).body(Vec::new())?;
        let summary: serde_json::Value = client.request(req).await?;
        for pod in summary["pods"].as_array().into_iter().flatten() {
            let name = pod["podRef"]["name"].as_str().unwrap_or_default();
            if pod["podRef"]["namespace"] != SYSTEM_NAMESPACE || !name.starts_with("lifecycle-webhook") {
                continue;
            }
            let containers = pod["containers"].as_array().into_iter().flatten();
            let (rss, ws) = containers.fold((0, 0), |(r, w), c| {
                (r + c["memory"]["rssBytes"].as_u64().unwrap_or(0), w + c["memory"]["workingSetBytes"].as_u64().unwrap_or(0))
            });
            out.insert(name.to_string(), (rss, ws));
        }
    }
    Ok(out)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// A Deployment at zero replicas whose container carries a `bytes`-long variable.
fn large_deployment(name: &str, bytes: usize) -> Deployment {
    let mut d = small_deployment(name, 0, &["sleep", "3600"]);
    let container = &mut d.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0];
    container.env = Some(vec![serde_json::from_value(json!({"name": "BLOB", "value": "x".repeat(bytes)})).unwrap()]);
    d
}

#[tokio::test]
async fn two_hundred_deployments_of_1_mib_do_not_sink_the_controller_through_a_stop_and_a_start() -> Result<()> {
    let client = client().await?;
    wait_until("the server runs two ready replicas", Duration::from_secs(120), || async {
        let pods = server_pods(&client).await?;
        Ok((pods.len() == 2 && pods.iter().all(live_and_ready)).then_some(()))
    })
    .await?;
    let before = restarts(&client).await?;
    let baseline = server_memory(&client).await.unwrap_or_default();
    let ns = environment(&client, "large-objects").await?;
    ns.create(&small_deployment("web", 1, &["sleep", "3600"])).await?;
    wait_status(&client, ns.name(), "started", Duration::from_secs(120)).await?;

    // The attack: 200 Deployments of 1 MiB each, created 8 at a time.
    let api = ns.api::<Deployment>();
    let mut created = tokio::task::JoinSet::new();
    for chunk in 0..8 {
        let api = api.clone();
        created.spawn(async move {
            for i in (chunk..WORKLOADS).step_by(8) {
                let d = large_deployment(&format!("large-{i}"), ENV_VAR_BYTES);
                api.create(&PostParams::default(), &d).await.with_context(|| format!("creating Deployment large-{i}"))?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = created.join_next().await {
        r??;
    }

    // Memory sampled every 2 s while the controller stops and starts the environment.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut peak: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            loop {
                if let Ok(now) = server_memory(&client).await {
                    for (pod, (rss, ws)) in now {
                        let p = peak.entry(pod).or_default();
                        *p = (p.0.max(rss), p.1.max(ws));
                    }
                }
                tokio::select! {
                    _ = &mut stop_rx => return peak,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        })
    };
    let started = std::time::Instant::now();
    set_state(&client, ns.name(), "stopped").await?;
    wait_status(&client, ns.name(), "stopped", Duration::from_secs(300)).await?;
    let stopped_in = started.elapsed();
    let web = api.get("web").await?;
    ensure!(wanted_replicas(&web) == 0, "the stop did not scale the small Deployment down");
    let started = std::time::Instant::now();
    set_state(&client, ns.name(), "started").await?;
    wait_status(&client, ns.name(), "started", Duration::from_secs(300)).await?;
    let started_in = started.elapsed();
    let web = api.get("web").await?;
    ensure!(wanted_replicas(&web) == 1, "the start did not scale the small Deployment back up");
    let _ = stop_tx.send(());
    let peak = sampler.await?;

    eprintln!("stop took {stopped_in:?}, start took {started_in:?} with {WORKLOADS} Deployments of {ENV_VAR_BYTES} bytes");
    for (pod, (rss, ws)) in &baseline {
        eprintln!("server {pod} before: RSS {}, working set {}", mib(*rss), mib(*ws));
    }
    for (pod, (rss, ws)) in &peak {
        eprintln!("server {pod} highest during the stop and start: RSS {}, working set {}", mib(*rss), mib(*ws));
        ensure!(*ws < MEMORY_LIMIT, "server pod {pod} reached {ws} bytes, over its limit");
        if *ws >= MEMORY_REQUEST {
            eprintln!("note: server {pod} went over its memory request ({})", mib(MEMORY_REQUEST));
        }
    }
    // Both replicas still the same pods, never restarted nor OOM-killed.
    let after = restarts(&client).await?;
    ensure!(after == before, "the server restarted: before {before:?}, after {after:?}");
    ns.delete_and_wait(Duration::from_secs(600)).await?;
    Ok(())
}
