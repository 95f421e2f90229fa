//! One environment cannot starve the others' uploads (DESIGN.md, Trust: "one
//! environment cannot take more than its share of connections, of the outputs
//! API or of the controller's time").
//!
//! The attack, as issue 19 reproduced it: a pod of a captured Job whose main
//! container still runs sends 300 concurrent authenticated uploads with its
//! own agent token, again and again. Before the fair shares, each of them held
//! one of the 32 outputs slots for up to 10 s (waiting for the kubelet to
//! report the main container's end), and every other environment's agents
//! timed out. Beside it, the legitimate path: a plain captured Job of another
//! environment publishes, and its outputs appear.

pub(crate) mod flood;

use std::time::Duration;

use anyhow::{Result, ensure};
use lifecycle_e2e::lifecycle::{environment, output_job, published, wait_published};
use lifecycle_e2e::{TIMEOUT, client, wait_for_job_complete};

use flood::{Flood, agent_token, running_captured_pod, server_addrs, tls_connector};

/// Concurrent uploads of the flood, as in the issue.
const FLOODERS: usize = 300;

#[tokio::test]
async fn security_one_environment_flooding_the_outputs_api_does_not_starve_another() -> Result<()> {
    let client = client().await?;
    let attacker = environment(&client, "fair-flood").await?;
    let victim = environment(&client, "fair-victim").await?;

    // A captured Job whose main container keeps running: its agent's token is
    // valid, and every upload it makes is one the server cannot publish yet.
    attacker.create(&output_job("flooder", None, Some("sleep 3600"), r#"{"FLOOD": {"value": "x"}}"#)).await?;
    let pod = running_captured_pod(&client, attacker.name(), "flooder").await?;
    let token = agent_token(&client, &pod).await?;

    let flood =
        Flood::start(tls_connector(&client).await?, &server_addrs(&client).await?, &token, FLOODERS, Duration::from_secs(1));
    // Let the flood fill whatever it can.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Meanwhile, another environment's plain captured Job publishes normally.
    let started = std::time::Instant::now();
    victim.create(&output_job("fair", None, None, r#"{"FAIR_SHARE": {"value": "kept"}}"#)).await?;
    let published_ok = async {
        wait_for_job_complete(&client, victim.name(), "fair", TIMEOUT).await?;
        wait_published(&victim, "the victim's outputs are published during the flood", |cm, _| {
            cm.get("FAIR_SHARE").is_some_and(|v| v == "kept")
        })
        .await
    }
    .await;
    let elapsed = started.elapsed();
    let answers = flood.stop().await?;
    eprintln!("the flood's answers: {answers:?}; the other environment's Job ran and published in {elapsed:.1?}");
    let (cm, _) = published_ok?;
    assert_eq!(cm.get("QOVERY_OUTPUT_JOB_FAIR_FAIR_SHARE").map(String::as_str), Some("kept"), "{cm:?}");

    // The flood was turned away by its pod's share (429), and published nothing.
    let throttled = answers.get("429").copied().unwrap_or(0);
    ensure!(throttled > 0, "no upload of the flood was refused by its share: {answers:?}");
    ensure!(!answers.contains_key("200"), "the running pod published: {answers:?}");
    let (cm, secret) = published(&attacker).await?;
    ensure!(
        !cm.keys().chain(secret.keys()).any(|k| k.contains("FLOOD")),
        "the flooding environment has outputs: {cm:?} {secret:?}"
    );
    Ok(())
}
