//! Killing the controller during a stop and a start (issue 4): every event
//! occurrence still runs each matching template exactly once, and both
//! transitions finish.
//!
//! DISRUPTIVE: the test deletes the leading server pod with
//! `gracePeriodSeconds: 0`. Admissions in flight on that pod fail (the
//! webhooks fail closed), which would break tests running beside it: it lives
//! in the `disruptive` target, run alone after the main suite, and it only
//! kills once the server Deployment is fully available again and a live
//! replica holds the Lease.
//!
//! The kills land at three different moments:
//! 1. during the stop, as soon as a stop run exists (runs created, in flight);
//! 2. the moment the start is requested (the event being taken in);
//! 3. during the start, once one template's start run has completed while the
//!    other's is still in flight (held by a gate the test opens afterwards).
//!
//! The templates are in start stages 1 (alpha) and 2 (beta): beta's runs start
//! only after alpha's ended, stops go the other way, and a pod created during
//! the second start stays behind the start-jobs scheduling gate until it ends,
//! then runs (issue 9).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{
    ANNOTATION_INJECT_OUTPUTS, ANNOTATION_LAST_RUNS, ANNOTATION_STAGE, LABEL_RUN, SCHEDULING_GATE_START_JOBS, SYSTEM_NAMESPACE,
};
use lifecycle_e2e::lifecycle::{
    Runs, annotate, condition, environment, lifecycle_job, live_and_ready, names, runs, set_state, small_deployment,
    wait_runs_complete, wait_status, wanted_replicas, work_ended_at,
};
use lifecycle_e2e::{BUSYBOX, TIMEOUT, client, obj, wait_for_deployment_available, wait_for_pod_running, wait_until};
use serde_json::{Value, json};

/// The controller's Lease and the server's Deployment.
const LEASE: &str = "lifecycle-webhook-controller";
const SERVER: &str = "lifecycle-webhook";
const SERVER_SELECTOR: &str = "app.kubernetes.io/name=lifecycle-webhook";
/// A transition with a leader change in it: the new leader may wait out the
/// Lease (15 s) before it takes over.
const TRANSITION: Duration = Duration::from_secs(300);

// --- objects ------------------------------------------------------------------------------------

/// A plain Pod (never scaled by the controller) serving `/open` on port 8080
/// behind Service `gate`: while it exists, the gate is open. A start job needs
/// it, so it must not wait for the start: it reads no outputs
/// (`inject-outputs: "false"`), which also keeps it out of the start-jobs gate.
fn gate_pod() -> Pod {
    obj(json!({
        "metadata": {"name": "gate", "labels": {"app": "gate"}, "annotations": {ANNOTATION_INJECT_OUTPUTS: "false"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "httpd", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "mkdir -p /www && echo open > /www/open && exec httpd -f -p 8080 -h /www"],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
            "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}
        }]}
    }))
}

fn gate_service() -> Service {
    obj(json!({
        "metadata": {"name": "gate"},
        "spec": {"selector": {"app": "gate"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
}

fn workload(name: &str) -> Deployment {
    small_deployment(name, 1, &["sleep", "3600"])
}

/// A bare pod of the environment (it reads the outputs: it is gated during a start).
fn probe_pod() -> Pod {
    obj(json!({
        "metadata": {"name": "probe"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"],
            "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}
        }]}
    }))
}

// --- reading the cluster ------------------------------------------------------------------------

fn is_gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.name == SCHEDULING_GATE_START_JOBS))
}

async fn replicas(client: &Client, ns: &str, name: &str) -> Result<i32> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns).get(name).await?;
    Ok(wanted_replicas(&d))
}

// --- the server ---------------------------------------------------------------------------------

/// Waits until the server Deployment is fully available again (every replica
/// ready, none of them a killed pod) and one of its live pods holds the Lease;
/// returns that leader.
async fn wait_server_ready(client: &Client, killed: &BTreeSet<String>) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let deployment = wait_for_deployment_available(client, SYSTEM_NAMESPACE, SERVER, Duration::from_secs(180)).await?;
    let wanted = deployment.spec.and_then(|s| s.replicas).unwrap_or(1) as usize;
    wait_until("the server is fully available and a live replica leads", Duration::from_secs(180), || async {
        let all = pods.list(&ListParams::default().labels(SERVER_SELECTOR)).await?.items;
        let live: BTreeSet<String> = all.iter().filter(|p| live_and_ready(p)).map(|p| p.name_any()).collect();
        if live.len() != wanted || all.len() != wanted || live.iter().any(|p| killed.contains(p)) {
            return Ok(None);
        }
        let lease = leases.get(LEASE).await?;
        let holder = lease.spec.and_then(|s| s.holder_identity).unwrap_or_default();
        Ok(live.contains(&holder).then_some(holder))
    })
    .await
}

/// Kills the leading server pod (`gracePeriodSeconds: 0`: the pod object goes
/// at once and the kubelet kills its process; the Deployment makes a new one,
/// the other replica takes the Lease). Only called right after
/// [`wait_server_ready`].
async fn kill_leader(client: &Client, leader: &str, moment: &str, killed: &mut BTreeSet<String>) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    pods.delete(leader, &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
        .await
        .with_context(|| format!("killing leader {leader}"))?;
    eprintln!("killed the controller leader {leader} {moment}");
    killed.insert(leader.to_string());
    Ok(())
}

// --- the test -----------------------------------------------------------------------------------

#[tokio::test]
async fn controller_killed_during_stop_and_start_runs_each_template_once_per_event_and_finishes() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "lc-kill").await?;
    let name = ns.name().to_string();
    let mut killed = BTreeSet::new();

    // Two templates on start and stop, jobs of 2-4 s. beta's start run also
    // waits for the gate: open now, closed before the second start.
    let gate_wait = "until timeout 3 wget -q -O - http://gate/open; do sleep 1; done; sleep 2; echo beta-started";
    ns.create(&gate_service()).await?;
    ns.create(&gate_pod()).await?;
    ns.create(&workload("app")).await?;
    let alpha = lifecycle_job("alpha", "start,stop", "sleep 2; echo alpha", false);
    ns.create(&annotate(alpha, &[(ANNOTATION_STAGE, "1")])).await?;
    let beta_start = serde_json::to_string(&["sh", "-c", gate_wait])?;
    let beta = lifecycle_job("beta", "start,stop", "sleep 4; echo beta", false);
    ns.create(&annotate(beta, &[("lifecycle-jobs.dev/on-start-command", &beta_start), (ANNOTATION_STAGE, "2")])).await?;
    wait_runs_complete(&client, &name, "alpha", "start", Runs::Exactly(1), TRANSITION).await?;
    wait_runs_complete(&client, &name, "beta", "start", Runs::Exactly(1), TRANSITION).await?;
    wait_status(&client, &name, "started", TRANSITION).await?;
    wait_for_deployment_available(&client, &name, "app", TIMEOUT).await?;
    let gate = ns.api::<Pod>();
    gate.delete("gate", &DeleteParams::default()).await?;
    wait_until("the gate is closed", TIMEOUT, || async { Ok(gate.get_opt("gate").await?.is_none().then_some(())) }).await?;

    // --- stop, kill 1: as soon as a stop run exists.
    let leader = wait_server_ready(&client, &killed).await?;
    set_state(&client, &name, "stopped").await?;
    wait_until("a stop run exists", TRANSITION, || async {
        let any =
            !runs(&client, &name, "alpha", "stop").await?.is_empty() || !runs(&client, &name, "beta", "stop").await?.is_empty();
        Ok(any.then_some(()))
    })
    .await?;
    kill_leader(&client, &leader, "during the stop runs", &mut killed).await?;
    wait_server_ready(&client, &killed).await?;
    let status = wait_status(&client, &name, "stopped", TRANSITION).await?;
    ensure!(replicas(&client, &name, "app").await? == 0, "the stop scaled app to zero (status {status})");
    wait_runs_complete(&client, &name, "alpha", "stop", Runs::Exactly(1), TRANSITION).await?;
    wait_runs_complete(&client, &name, "beta", "stop", Runs::Exactly(1), TRANSITION).await?;

    // --- start, kill 2: the moment it is requested.
    let leader = wait_server_ready(&client, &killed).await?;
    set_state(&client, &name, "started").await?;
    kill_leader(&client, &leader, "as the start was requested", &mut killed).await?;
    wait_server_ready(&client, &killed).await?;

    // --- kill 3: alpha's start run done, beta's held at the gate.
    let held = wait_until("alpha's second start run completed, beta's in flight", TRANSITION, || async {
        let alpha = runs(&client, &name, "alpha", "start").await?;
        let beta = runs(&client, &name, "beta", "start").await?;
        ensure!(alpha.len() <= 2 && beta.len() <= 2, "duplicate start runs: {:?} {:?}", names(&alpha), names(&beta));
        let alpha_done = alpha.len() == 2 && alpha.iter().all(|j| condition(j, "Complete"));
        let beta_held = beta.len() == 2 && beta.iter().any(|j| !condition(j, "Complete") && !condition(j, "Failed"));
        Ok((alpha_done && beta_held).then_some(names(&beta)))
    })
    .await?;
    // A pod created now waits behind the start-jobs gate.
    ns.create(&probe_pod()).await?;
    let probe = ns.api::<Pod>().get("probe").await?;
    ensure!(is_gated(&probe), "a pod created during the start is gated");
    // The leader may have changed since: kill the current one.
    let leader = wait_server_ready(&client, &killed).await?;
    kill_leader(&client, &leader, &format!("while beta's start run was held ({held:?})"), &mut killed).await?;
    wait_server_ready(&client, &killed).await?;
    ensure!(replicas(&client, &name, "app").await? == 0, "app stays down while a start run is in flight");

    // Open the gate: the start finishes.
    ns.create(&gate_pod()).await?;
    let status = wait_status(&client, &name, "started", TRANSITION).await?;
    wait_until("app is scaled back to 1", TRANSITION, || async {
        Ok((replicas(&client, &name, "app").await? == 1).then_some(()))
    })
    .await?;
    wait_for_deployment_available(&client, &name, "app", TIMEOUT).await?;

    // Exactly one run per template per event occurrence: the initial start,
    // the stop, the second start.
    for t in ["alpha", "beta"] {
        let starts = wait_runs_complete(&client, &name, t, "start", Runs::Exactly(2), TRANSITION).await?;
        let stops = wait_runs_complete(&client, &name, t, "stop", Runs::Exactly(1), TRANSITION).await?;
        let job = ns.api::<Job>().get(t).await?;
        let records: Value = serde_json::from_str(job.annotations().get(ANNOTATION_LAST_RUNS).context("last-runs")?)?;
        ensure!(records["start"]["result"] == "succeeded" && records["stop"]["result"] == "succeeded", "{t}: {records}");
        ensure!(
            names(&starts).contains(records["start"]["run"].as_str().unwrap_or_default()),
            "{t}: last-runs names one of the runs: {records} {:?}",
            names(&starts)
        );
        eprintln!("{t}: start runs {:?}, stop runs {:?}", names(&starts), names(&stops));
    }
    ensure!(killed.len() == 3, "three leaders were killed: {killed:?}");

    // Stages: each start's beta run was created after alpha's had ended (its pod's
    // work; the controller moves on as soon as that pod has reported, before the Job
    // controller's Complete); each stop's alpha run after beta's.
    let alpha_starts = runs(&client, &name, "alpha", "start").await?;
    let beta_starts = runs(&client, &name, "beta", "start").await?;
    for b in &beta_starts {
        let run = b.labels().get(LABEL_RUN).cloned();
        let a =
            alpha_starts.iter().find(|a| a.labels().get(LABEL_RUN) == run.as_ref()).context("alpha's run of the same start")?;
        let alpha_ended = work_ended_at(&client, &name, &a.name_any()).await?.context("alpha's run ended")?;
        ensure!(
            b.metadata.creation_timestamp >= Some(alpha_ended),
            "beta's start run {} was created before alpha's {} ended",
            b.name_any(),
            a.name_any()
        );
    }
    let (alpha_stop, beta_stop) =
        (&runs(&client, &name, "alpha", "stop").await?[0], &runs(&client, &name, "beta", "stop").await?[0]);
    let beta_ended = work_ended_at(&client, &name, &beta_stop.name_any()).await?.context("beta's stop run ended")?;
    ensure!(alpha_stop.metadata.creation_timestamp >= Some(beta_ended), "stop runs go by descending stage");
    // The gate was removed, and the pod runs.
    wait_for_pod_running(&client, &name, "probe", TRANSITION).await?;
    ensure!(!is_gated(&ns.api::<Pod>().get("probe").await?), "the gate is removed");
    eprintln!("final status: {status}");
    Ok(())
}
