//! Workloads run with their environment's outputs (issue 9): start stages,
//! pods gated while a start runs, rollouts when a start ends.
//!
//! Every test has its own environment and real pods. Orders are read from what
//! the cluster shows (runs that exist or not, gates, pod UIDs), never from time
//! spent. Jobs that must wait for the test block on a file the test creates in
//! their pod (`exec touch /tmp/go`), so no sleep decides anything.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{
    ANNOTATION_DEPLOY_ID, ANNOTATION_INJECT_OUTPUTS, ANNOTATION_OBSERVED, ANNOTATION_OUTPUTS_HASH, ANNOTATION_ROLLOUT,
    ANNOTATION_STAGE, ANNOTATION_STATUS, ANNOTATION_TRANSITION, LABEL_ENVIRONMENT, SCHEDULING_GATE_START_JOBS,
    annotation_on_command,
};
use lifecycle_contract::{Event as LifecycleEvent, transition::Transition};
use lifecycle_e2e::lifecycle::{
    Runs, annotate, environment, lifecycle_job, patch_namespace, published_config, runs, small_deployment, wait_published,
    wait_runs_complete,
};
use lifecycle_e2e::{
    BUSYBOX, DeleteOnDrop, SUITE_LABEL, TIMEOUT, client, events_for, exec, job_pods, obj, unique_suffix, wait_for_pod_running,
    wait_until,
};
use serde_json::json;

/// Deadline of a whole start (runs with pods in stages, then rollouts).
const TRANSITION: Duration = Duration::from_secs(300);

// --- objects ------------------------------------------------------------------------------------

/// A start template in `stage` that runs `script` then publishes `key=value`
/// (shell-expanded in the pod).
fn staged_job(name: &str, stage: &str, script: &str, key: &str, value: &str) -> Job {
    let publish = format!(r#"printf '{{"{key}": {{"value": "%s"}}}}' "{value}" > /qovery-output/qovery-output.json"#);
    annotate(lifecycle_job(name, "start", &format!("{script}\n{publish}"), true), &[(ANNOTATION_STAGE, stage)])
}

/// Blocks until the test creates /tmp/go in the pod.
const WAIT_FOR_GO: &str = "until [ -f /tmp/go ]; do sleep 0.2; done";

/// A Deployment whose container refuses to start without `vars` (a restart
/// would show in its restart count), prints them, and sleeps.
fn needs_vars(name: &str, replicas: i32, vars: &[&str]) -> Deployment {
    let checks: String = vars.iter().map(|v| format!("test -n \"${v}\" || {{ echo missing {v}; exit 1; }}; ")).collect();
    let script = format!("{checks}env | sort; exec sleep 3600");
    small_deployment(name, replicas, &["sh", "-c", &script])
}

/// A bare pod printing its environment, then sleeping.
fn probe_pod(name: &str) -> Pod {
    obj(json!({
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "exec sleep 3600"],
            "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}
        }]}
    }))
}

// --- reading the cluster ------------------------------------------------------------------------

fn gated(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduling_gates.as_ref())
        .is_some_and(|g| g.iter().any(|g| g.name == SCHEDULING_GATE_START_JOBS))
}

/// The pod shows as SchedulingGated (condition PodScheduled=False, reason SchedulingGated).
fn shows_scheduling_gated(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|cs| {
        cs.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("SchedulingGated"))
    })
}

/// A container's environment variable, read in the running container.
async fn env_of(client: &Client, ns: &str, pod: &str, var: &str) -> Result<String> {
    let out = exec(client, ns, pod, Some("app"), &["sh", "-c", &format!("printf '%s' \"${var}\"")], TIMEOUT).await?;
    ensure!(out.exit_code == 0, "exec in {pod}: {}", out.stderr);
    Ok(out.stdout)
}

/// The one pod of the single run of `template` for start, once it runs.
async fn running_run_pod(client: &Client, ns: &str, template: &str) -> Result<String> {
    wait_until(&format!("the start run of {template} has a running pod"), TRANSITION, || async {
        let list = runs(client, ns, template, "start").await?;
        let Some(run) = list.first() else { return Ok(None) };
        let pods = job_pods(client, ns, &run.name_any()).await?;
        Ok(pods.iter().find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")).map(|p| p.name_any()))
    })
    .await
}

async fn go(client: &Client, ns: &str, pod: &str) -> Result<()> {
    let out = exec(client, ns, pod, Some("main"), &["touch", "/tmp/go"], TIMEOUT).await?;
    ensure!(out.exit_code == 0, "touch /tmp/go in {pod}: {}", out.stderr);
    Ok(())
}

/// The environment's transition in flight, if any.
async fn transition(client: &Client, ns: &str) -> Result<Option<Transition>> {
    let n = Api::<Namespace>::all(client.clone()).get(ns).await?;
    Ok(n.annotations().get(ANNOTATION_TRANSITION).map(|t| serde_json::from_str(t)).transpose()?)
}

/// Waits until the controller took `deploy_id` in and no transition is in flight.
async fn wait_started_with(client: &Client, ns: &str, deploy_id: Option<&str>) -> Result<String> {
    let api: Api<Namespace> = Api::all(client.clone());
    wait_until(&format!("environment {ns} started (deploy-id {deploy_id:?})"), TRANSITION, || async {
        let n = api.get(ns).await?;
        let a = n.annotations();
        let observed: serde_json::Value = serde_json::from_str(a.get(ANNOTATION_OBSERVED).map_or("{}", String::as_str))?;
        let taken = observed.get("deployId").and_then(|v| v.as_str()) == deploy_id && observed.get("seq").is_some();
        let status = a.get(ANNOTATION_STATUS).cloned().unwrap_or_default();
        Ok((taken && !a.contains_key(ANNOTATION_TRANSITION) && status.starts_with("started")).then_some(status))
    })
    .await
}

/// Waits until every pod of Deployment `app` is one of its current template,
/// running and ready with no container restart, as many as it wants; returns them.
async fn wait_all_current(client: &Client, ns: &str, app: &str) -> Result<Vec<Pod>> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_until(&format!("every pod of {ns}/{app} is current and ready"), TRANSITION, || async {
        let d = deployments.get(app).await?;
        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.clone().unwrap_or_default();
        let settled = status.observed_generation == d.metadata.generation
            && status.updated_replicas == Some(want)
            && status.ready_replicas == Some(want)
            && status.replicas == Some(want);
        if !settled {
            return Ok(None);
        }
        let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await?.items;
        let live: Vec<Pod> = list.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        Ok((live.len() == want as usize).then_some(live))
    })
    .await
}

fn restarts(pod: &Pod) -> i32 {
    pod.status.as_ref().and_then(|s| s.container_statuses.as_ref()).map_or(0, |cs| cs.iter().map(|c| c.restart_count).sum())
}

fn kubectl_apply(manifest: &str) -> Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("kubectl")
        .args(["--kubeconfig", &lifecycle_e2e::kubeconfig_path().to_string_lossy(), "apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running kubectl (is it on PATH?)")?;
    child.stdin.take().context("kubectl stdin")?.write_all(manifest.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

// --- tests --------------------------------------------------------------------------------------

/// GitOps: one `kubectl apply` of a namespace, a Deployment listed first, and
/// two start jobs in stages 1 and 2 where stage 2 derives its output from stage
/// 1's. Every pod of the Deployment ends up running with both variables, and
/// none restarted for want of one; each replica starts once (issue 21): the
/// pods gated during the start are the ones that serve, never replaced by a
/// roll.
#[tokio::test]
async fn stages_one_apply_of_namespace_deployment_and_staged_jobs() -> Result<()> {
    let client = client().await?;
    let ns = format!("e2e-stages-gitops-{}", unique_suffix());
    let _cleanup = DeleteOnDrop(ns.clone());
    let web = needs_vars("web", 2, &["DB_HOST", "DB_URL"]);
    let db = staged_job("db", "1", "echo creating the database", "DB_HOST", "db.$POD_NAMESPACE.svc");
    let seed = staged_job(
        "seed",
        "2",
        r#"test -n "$DB_HOST" || { echo "DB_HOST is missing"; exit 1; }; echo "seeding $DB_HOST""#,
        "DB_URL",
        "postgres://$DB_HOST/app",
    );
    let mut docs = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {LABEL_ENVIRONMENT: "", SUITE_LABEL: "true"}}
    })];
    for (kind, api, mut value) in [
        ("Deployment", "apps/v1", serde_json::to_value(&web)?),
        ("Job", "batch/v1", serde_json::to_value(&db)?),
        ("Job", "batch/v1", serde_json::to_value(&seed)?),
    ] {
        value["apiVersion"] = json!(api);
        value["kind"] = json!(kind);
        value["metadata"]["namespace"] = json!(ns);
        if kind == "Job" {
            // The job knows its namespace through the downward API.
            value["spec"]["template"]["spec"]["containers"][0]["env"] =
                json!([{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]);
        }
        docs.push(value);
    }
    let manifest = docs.iter().map(|d| serde_json::to_string(d).unwrap()).collect::<Vec<_>>().join("\n---\n");
    kubectl_apply(&manifest)?;
    // Both replicas are admitted gated while the start runs: these are the pods that must serve.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let first: BTreeSet<String> = wait_until("web's two pods, gated", TRANSITION, || async {
        let list = pods.list(&ListParams::default().labels("app=web")).await?.items;
        Ok((list.len() == 2 && list.iter().all(gated)).then(|| list.iter().filter_map(|p| p.metadata.uid.clone()).collect()))
    })
    .await?;

    // Stage 2 sees stage 1's output (its script fails without DB_HOST), so it was created after stage 1 published.
    wait_runs_complete(&client, &ns, "db", "start", Runs::Exactly(1), TRANSITION).await?;
    wait_runs_complete(&client, &ns, "seed", "start", Runs::Exactly(1), TRANSITION).await?;
    let status = wait_started_with(&client, &ns, None).await?;
    let host = format!("db.{ns}.svc");
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns).get("lifecycle-outputs").await?;
    let data = cm.data.unwrap_or_default();
    ensure!(data.get("DB_HOST") == Some(&host), "DB_HOST: {data:?}");
    ensure!(data.get("DB_URL") == Some(&format!("postgres://{host}/app")), "stage 2 derived DB_URL from stage 1: {data:?}");

    let serving = wait_all_current(&client, &ns, "web").await?;
    for pod in &serving {
        let name = pod.name_any();
        ensure!(restarts(pod) == 0, "pod {name} restarted (status {status})");
        ensure!(env_of(&client, &ns, &name, "DB_HOST").await? == host);
        ensure!(env_of(&client, &ns, &name, "DB_URL").await? == format!("postgres://{host}/app"));
    }
    // One start per replica: the gated pods serve, and the Deployment was never rolled (one
    // ReplicaSet: its pod template never changed); what they started with is recorded on the
    // Deployment itself.
    let uids: BTreeSet<String> = serving.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    ensure!(uids == first, "web's pods were replaced after the start: {first:?} then {uids:?}");
    let sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns).list(&ListParams::default().labels("app=web")).await?.items;
    ensure!(sets.len() == 1, "web was rolled: ReplicaSets {:?}", sets.iter().map(|r| r.name_any()).collect::<Vec<_>>());
    let d = Api::<Deployment>::namespaced(client.clone(), &ns).get("web").await?;
    ensure!(d.annotations().contains_key(ANNOTATION_OUTPUTS_HASH), "no record of what web started with: {:?}", d.annotations());
    Ok(())
}

/// A redeploy whose start job publishes a new value: the Deployment's pods end
/// up with it by themselves (rolled when the start ends).
#[tokio::test]
async fn stages_redeploy_rolls_workloads_to_the_new_value() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "stages-redeploy").await?;
    let name = ns.name().to_string();
    // A new value on every run: the run pod's name.
    ns.create(&staged_job("gen", "0", "true", "VALUE", "$HOSTNAME")).await?;
    wait_runs_complete(&client, &name, "gen", "start", Runs::Exactly(1), TRANSITION).await?;
    wait_started_with(&client, &name, None).await?;
    ns.create(&needs_vars("web", 2, &["VALUE"])).await?;
    let first = published_config(&ns).await?.get("VALUE").cloned().context("VALUE published")?;
    for pod in wait_all_current(&client, &name, "web").await? {
        ensure!(env_of(&client, &name, &pod.name_any(), "VALUE").await? == first);
    }

    patch_namespace(&client, &name, json!({"metadata": {"annotations": {ANNOTATION_DEPLOY_ID: "v2"}}})).await?;
    wait_runs_complete(&client, &name, "gen", "start", Runs::Exactly(2), TRANSITION).await?;
    wait_started_with(&client, &name, Some("v2")).await?;
    let (cm, _) = wait_published(&ns, "a new VALUE", |cm, _| cm.get("VALUE").is_some_and(|v| *v != first)).await?;
    let second = cm["VALUE"].clone();
    wait_until("every pod of web has the new VALUE", TRANSITION, || async {
        for pod in wait_all_current(&client, &name, "web").await? {
            if env_of(&client, &name, &pod.name_any(), "VALUE").await? != second {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    let d = ns.api::<Deployment>().get("web").await?;
    let hash = d
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(ANNOTATION_OUTPUTS_HASH).cloned());
    ensure!(hash.is_some(), "web was rolled by the controller (outputs-hash on its pod template)");
    Ok(())
}

/// A pod created while a start runs is SchedulingGated, with an Event saying
/// which jobs it waits for, until the last stage ends; then it runs with that
/// start's outputs.
#[tokio::test]
async fn stages_pod_created_during_a_start_waits_for_the_last_stage() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "stages-gated").await?;
    let name = ns.name().to_string();
    ns.create(&staged_job("first", "1", WAIT_FOR_GO, "A", "one")).await?;
    ns.create(&staged_job("second", "2", &format!("{WAIT_FOR_GO}; test \"$A\" = one"), "B", "two-after-$A")).await?;
    let first_pod = running_run_pod(&client, &name, "first").await?;

    ns.create(&probe_pod("probe")).await?;
    let pods: Api<Pod> = ns.api();
    let probe = wait_until("probe shows SchedulingGated", TIMEOUT, || async {
        let p = pods.get("probe").await?;
        Ok((gated(&p) && shows_scheduling_gated(&p)).then_some(p))
    })
    .await?;
    ensure!(probe.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending"));
    let note = wait_until("an Event on probe says what it waits for", TIMEOUT, || async {
        let events = events_for(&client, &name, "Pod", "probe").await?;
        Ok(events.into_iter().filter_map(|e| e.message).find(|m| m.contains("waits for the start jobs")))
    })
    .await?;
    ensure!(note.contains("first (stage 1)") && note.contains("second (stage 2)"), "{note}");

    go(&client, &name, &first_pod).await?;
    let second_pod = running_run_pod(&client, &name, "second").await?;
    let p = pods.get("probe").await?;
    ensure!(gated(&p), "probe must stay gated while stage 2 runs");

    go(&client, &name, &second_pod).await?;
    wait_for_pod_running(&client, &name, "probe", TRANSITION).await?;
    ensure!(env_of(&client, &name, "probe", "A").await? == "one");
    ensure!(env_of(&client, &name, "probe", "B").await? == "two-after-one");
    Ok(())
}

/// A failing stage-1 job: stage 2 never runs, the gated pod stays gated, a
/// Warning on the namespace says why and how to retry; a redeploy with the job
/// fixed releases it.
#[tokio::test]
async fn stages_failed_start_holds_gated_pods_until_a_fixed_redeploy() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "stages-failed").await?;
    let name = ns.name().to_string();
    ns.create(&staged_job("broken", "1", "echo cannot reach the database; exit 3", "A", "one")).await?;
    ns.create(&staged_job("after", "2", "true", "B", "two")).await?;
    // Created while the start runs: gated.
    wait_until("broken's start run exists", TRANSITION, || async {
        Ok((!runs(&client, &name, "broken", "start").await?.is_empty()).then_some(()))
    })
    .await?;
    ns.create(&probe_pod("probe")).await?;

    let api: Api<Namespace> = Api::all(client.clone());
    let held = wait_until("the start is held after its failed run", TRANSITION, || async {
        Ok(transition(&client, &name).await?.filter(|t| t.failed.is_some()))
    })
    .await?;
    ensure!(held.event == LifecycleEvent::Start && held.failed.as_ref().unwrap().jobs == vec!["broken".to_string()]);
    let status = api.get(&name).await?.annotations().get(ANNOTATION_STATUS).cloned().unwrap_or_default();
    ensure!(status.contains("job broken failed") && status.contains("redeploy"), "{status}");
    let warning = wait_until("a StartFailed Warning on the namespace", TIMEOUT, || async {
        let events = events_for(&client, &name, "Namespace", &name).await?;
        Ok(events.into_iter().find(|e| e.reason.as_deref() == Some("StartFailed") && e.type_.as_deref() == Some("Warning")))
    })
    .await?;
    let message = warning.message.unwrap_or_default();
    ensure!(message.contains("broken") && message.contains("kubectl lifecycle env redeploy"), "{message}");
    ensure!(runs(&client, &name, "after", "start").await?.is_empty(), "stage 2 must never run");
    let pods: Api<Pod> = ns.api();
    ensure!(gated(&pods.get("probe").await?), "the gated pod stays gated");

    // Fixed, then redeployed: the start runs again, to the end, and releases the pod.
    let jobs: Api<Job> = ns.api();
    let fix = json!({"metadata": {"annotations": {annotation_on_command(LifecycleEvent::Start): r#"["sh","-c","printf '{\"A\":{\"value\":\"fixed\"}}' > /qovery-output/qovery-output.json"]"#}}});
    jobs.patch("broken", &PatchParams::default(), &Patch::Merge(&fix)).await?;
    patch_namespace(&client, &name, json!({"metadata": {"annotations": {ANNOTATION_DEPLOY_ID: "fixed"}}})).await?;
    wait_runs_complete(&client, &name, "after", "start", Runs::Exactly(1), TRANSITION).await?;
    wait_started_with(&client, &name, Some("fixed")).await?;
    wait_for_pod_running(&client, &name, "probe", TRANSITION).await?;
    ensure!(env_of(&client, &name, "probe", "A").await? == "fixed");
    ensure!(env_of(&client, &name, "probe", "B").await? == "two");
    Ok(())
}

/// `rollout: never` and `inject-outputs: "false"` workloads keep their pods
/// when a start publishes new outputs; a plain one is rolled.
#[tokio::test]
async fn stages_rollout_never_and_opted_out_workloads_are_not_rolled() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "stages-norollout").await?;
    let name = ns.name().to_string();
    ns.create(&staged_job("gen", "0", "true", "VALUE", "$HOSTNAME")).await?;
    wait_runs_complete(&client, &name, "gen", "start", Runs::Exactly(1), TRANSITION).await?;
    wait_started_with(&client, &name, None).await?;
    let plain = small_deployment("plain", 1, &["sh", "-c", "exec sleep 3600"]);
    let mut pinned = small_deployment("pinned", 1, &["sh", "-c", "exec sleep 3600"]);
    pinned.metadata.annotations = Some([(ANNOTATION_ROLLOUT.to_string(), "never".to_string())].into());
    let mut own = small_deployment("own", 1, &["sh", "-c", "exec sleep 3600"]);
    own.spec.as_mut().unwrap().template.metadata.as_mut().unwrap().annotations =
        Some([(ANNOTATION_INJECT_OUTPUTS.to_string(), "false".to_string())].into());
    for d in [&plain, &pinned, &own] {
        ns.create(d).await?;
    }
    let mut before = BTreeSet::new();
    for app in ["plain", "pinned", "own"] {
        before.extend(wait_all_current(&client, &name, app).await?.iter().map(|p| p.uid().unwrap_or_default()));
    }

    patch_namespace(&client, &name, json!({"metadata": {"annotations": {ANNOTATION_DEPLOY_ID: "v2"}}})).await?;
    wait_runs_complete(&client, &name, "gen", "start", Runs::Exactly(2), TRANSITION).await?;
    wait_started_with(&client, &name, Some("v2")).await?;
    let deployments: Api<Deployment> = ns.api();
    let hash_of = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(ANNOTATION_OUTPUTS_HASH).cloned())
    };
    ensure!(hash_of(&deployments.get("plain").await?).is_some(), "plain was rolled");
    for app in ["pinned", "own"] {
        let d = deployments.get(app).await?;
        ensure!(hash_of(&d).is_none(), "{app} must not be rolled");
        for pod in wait_all_current(&client, &name, app).await? {
            ensure!(before.contains(&pod.uid().unwrap_or_default()), "{app}'s pod {} is new", pod.name_any());
        }
    }
    let plain_pods = wait_all_current(&client, &name, "plain").await?;
    if plain_pods.iter().all(|p| before.contains(&p.uid().unwrap_or_default())) {
        bail!("plain kept its old pods");
    }
    Ok(())
}
