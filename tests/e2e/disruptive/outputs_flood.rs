//! One environment floods the outputs API (issue 19, Done when (c)): both
//! replicas stay up, admission in another environment keeps answering, and
//! the server's memory stays under its 64 MiB request meanwhile.
//!
//! The flood is the attack of `tests/e2e/outputs_fairness.rs`: 300 clients
//! (150 per replica) each sending, again and again over its own connection,
//! an authenticated upload with the agent token of a captured pod whose main
//! container still runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::SYSTEM_NAMESPACE;
use lifecycle_e2e::lifecycle::{environment, live_and_ready, output_job};
use lifecycle_e2e::{client, wait_until};

#[path = "../outputs_fairness/flood.rs"]
pub(crate) mod flood;

use flood::{Flood, agent_token, running_captured_pod, server_addrs, tls_connector};

const SERVER_PODS: &str = "app.kubernetes.io/name=lifecycle-webhook";
/// The server container's memory request (manifests/base/deployment.yaml).
const MEMORY_REQUEST: u64 = 64 * 1024 * 1024;
const FLOODERS: usize = 300;
const FLOOD_FOR: Duration = Duration::from_secs(45);

async fn two_ready(client: &Client) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    wait_until("the server runs two ready replicas", Duration::from_secs(120), || async {
        let list = pods.list(&ListParams::default().labels(SERVER_PODS)).await?.items;
        Ok((list.len() == 2 && list.iter().all(live_and_ready)).then_some(list))
    })
    .await
}

fn restarts(p: &Pod) -> i32 {
    p.status.as_ref().and_then(|s| s.container_statuses.as_ref()).map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
}

#[tokio::test]
async fn both_replicas_keep_admitting_with_bounded_memory_while_one_environment_floods_the_outputs_api() -> Result<()> {
    let client = client().await?;
    let before = two_ready(&client).await?;
    let attacker = environment(&client, "flood-outputs").await?;
    attacker.create(&output_job("flooder", None, Some("sleep 3600"), r#"{"FLOOD": {"value": "x"}}"#)).await?;
    let pod = running_captured_pod(&client, attacker.name(), "flooder").await?;
    let token = agent_token(&client, &pod).await?;
    let addrs = server_addrs(&client).await?;
    ensure!(addrs.len() == 2, "expected two server pods: {addrs:?}");

    let baseline = crate::bounded::server_memory(&client).await.context("the kubelet's stats summary")?;
    let flood = Flood::start(tls_connector(&client).await?, &addrs, &token, FLOODERS, Duration::from_secs(1));
    let until = Instant::now() + FLOOD_FOR;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Meanwhile, pods keep being admitted into another environment, and the
    // server's memory is sampled.
    let ns = environment(&client, "flood-admit").await?;
    let (mut admitted, mut peak) = (0, BTreeMap::<String, u64>::new());
    let mut next_sample = Instant::now();
    while Instant::now() + Duration::from_secs(2) < until {
        crate::bounded::admit_pod(&ns, admitted).await?;
        admitted += 1;
        if Instant::now() >= next_sample {
            for (pod, ws) in crate::bounded::server_memory(&client).await? {
                let p = peak.entry(pod).or_insert(0);
                *p = (*p).max(ws);
            }
            next_sample = Instant::now() + Duration::from_secs(3);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let answers = flood.stop().await?;
    let mib = |m: &BTreeMap<String, u64>| -> BTreeMap<String, String> {
        m.iter().map(|(k, v)| (k.clone(), format!("{:.1} MiB", *v as f64 / 1048576.0))).collect()
    };
    eprintln!(
        "{FLOODERS} flooders for {}s: answers {answers:?}; admitted {admitted} pods; server working set before {:?}, peak during {:?}",
        FLOOD_FOR.as_secs(),
        mib(&baseline),
        mib(&peak)
    );
    ensure!(admitted >= 20, "only {admitted} pods admitted during the flood");
    ensure!(answers.get("429").copied().unwrap_or(0) > 0, "the flood was not turned away by its share: {answers:?}");
    ensure!(!answers.contains_key("200"), "the running pod published: {answers:?}");

    // Both replicas are the same ones, ready, never restarted, under their request.
    let after = two_ready(&client).await?;
    let names = |l: &[Pod]| l.iter().map(ResourceExt::name_any).collect::<Vec<_>>();
    ensure!(names(&after) == names(&before), "the server pods changed: {:?} -> {:?}", names(&before), names(&after));
    for p in &after {
        ensure!(restarts(p) == 0, "server pod {} restarted {} times", p.name_any(), restarts(p));
        let ws = peak.get(&p.name_any()).copied().with_context(|| format!("no memory sample of {}", p.name_any()))?;
        ensure!(ws < MEMORY_REQUEST, "server pod {} used {ws} bytes during the flood, over its 64 MiB request", p.name_any());
    }
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    attacker.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(())
}
