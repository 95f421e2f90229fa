//! Lifecycle events end to end (issue 4): the controller, running in the
//! deployed server, turns lifecycle jobs (templates) into runs on start, stop,
//! delete, redeploy and forced runs, orders them against the scaling of the
//! environment's workloads and the deletion of its namespace, and reports what
//! it did on the templates and the namespace.
//!
//! Every test has its own environment namespace and real pods; waits have
//! deadlines, orders are checked from what the cluster shows, never from time
//! spent. Killing the controller is in the `disruptive` target (it disturbs the
//! admissions of tests running beside it).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{
    ANNOTATION_CONTAINER, ANNOTATION_DEPLOY_ID, ANNOTATION_FORCE_RUN, ANNOTATION_LAST_RUNS, ANNOTATION_REPLICAS_BEFORE_STOP,
    LABEL_RUN, LABEL_STATE,
};
use lifecycle_e2e::lifecycle::{
    Runs, annotate, complete, condition, environment, lifecycle_job, names, output_job, patch_namespace, published, runs,
    set_state, small_deployment, succeeded, wait_published, wait_runs_complete, wait_status, wanted_replicas, work_ended_at,
};
use lifecycle_e2e::{TIMEOUT, client, events_for, job_pods, pod_logs, wait_for_deployment_available, wait_until};
use serde_json::{Value, json};

/// Deadline of a whole transition (runs with pods, then scaling) on a small,
/// busy machine.
const TRANSITION: Duration = Duration::from_secs(240);

// --- objects ------------------------------------------------------------------------------------

/// A start template whose run publishes `RUN` = its pod's name: a new value on every run.
fn seed_template(name: &str) -> Job {
    lifecycle_job(
        name,
        "start",
        r#"echo "seeding as $HOSTNAME"; printf '{"RUN": {"value": "%s"}}' "$HOSTNAME" > /qovery-output/qovery-output.json"#,
        true,
    )
}

/// A Deployment (label `app=<name>`) whose container prints its environment,
/// then `END`, then sleeps.
fn env_printer(name: &str, replicas: i32) -> Deployment {
    small_deployment(name, replicas, &["sh", "-c", "env | sort; echo END; exec sleep 3600"])
}

// --- reading the cluster ------------------------------------------------------------------------

/// The name of the one pod of a run.
async fn run_pod(client: &Client, ns: &str, run: &str) -> Result<String> {
    let pods = job_pods(client, ns, run).await?;
    ensure!(pods.len() == 1, "run {run} has {} pods", pods.len());
    Ok(pods[0].name_any())
}

/// The log of container `container` of a run's pod.
async fn run_log(client: &Client, ns: &str, run: &str, container: &str) -> Result<String> {
    let pod = run_pod(client, ns, run).await?;
    pod_logs(client, ns, &pod, Some(container)).await
}

/// The template's `last-runs` record.
async fn last_runs(client: &Client, ns: &str, template: &str) -> Result<Value> {
    let job = Api::<Job>::namespaced(client.clone(), ns).get(template).await?;
    let raw = job.annotations().get(ANNOTATION_LAST_RUNS).with_context(|| format!("{template} has no last-runs"))?;
    serde_json::from_str(raw).with_context(|| format!("last-runs of {template}: {raw}"))
}

/// The reasons of the Events on a template.
async fn event_reasons(client: &Client, ns: &str, template: &str) -> Result<Vec<String>> {
    Ok(events_for(client, ns, "Job", template).await?.into_iter().filter_map(|e| e.reason).collect())
}

/// Waits until the template's Events include every one of `reasons`.
async fn wait_events(client: &Client, ns: &str, template: &str, reasons: &[&str]) -> Result<Vec<String>> {
    wait_until(&format!("events {reasons:?} on template {ns}/{template}"), TIMEOUT, || async {
        let got = event_reasons(client, ns, template).await?;
        Ok(reasons.iter().all(|r| got.iter().any(|g| g == r)).then_some(got))
    })
    .await
}

/// The `KEY=value` lines a pod of `app` printed before `END`, once it has.
async fn app_env(client: &Client, ns: &str, app: &str) -> Result<BTreeMap<String, String>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let logs = wait_until(&format!("a pod of {app} printed its environment"), TIMEOUT, || async {
        let pods = api.list(&ListParams::default().labels(&format!("app={app}"))).await?.items;
        let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        ensure!(live.len() <= 1, "{} live pods of {app}", live.len());
        let Some(pod) = live.first() else { return Ok(None) };
        let logs = pod_logs(client, ns, &pod.name_any(), None).await?;
        Ok(logs.contains("END").then_some(logs))
    })
    .await?;
    Ok(logs.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// Watches a transition of `ns` until Deployment `app` is scaled to `target`,
/// and checks that the runs of `template` for `event` came first: one new run
/// (not in `before`), completed before the Deployment reached its target.
///
/// Each sample reads the Deployment, then the runs: a sample that sees the
/// Deployment at its target and then a run not yet complete (or none) proves
/// the order broken. Returns the new run and the number of samples that saw it
/// in flight while the Deployment had not moved (the order was exercised).
async fn watch_runs_then_scale(
    client: &Client,
    ns: &str,
    app: &str,
    target: i32,
    template: &str,
    event: &str,
    before: &BTreeSet<String>,
) -> Result<(Job, usize)> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let in_flight_samples = Cell::new(0);
    let what = format!("{event} run of {template} then {app} scaled to {target}");
    let run = wait_until(&what, TRANSITION, || {
        let deployments = deployments.clone();
        let in_flight_samples = &in_flight_samples;
        async move {
            let replicas = wanted_replicas(&deployments.get(app).await?);
            let new: Vec<Job> =
                runs(client, ns, template, event).await?.into_iter().filter(|j| !before.contains(&j.name_any())).collect();
            ensure!(new.len() <= 1, "more than one new {event} run of {template}: {:?}", names(&new));
            if let Some(bad) = new.iter().find(|j| condition(j, "Failed")) {
                bail!("run {} failed: {:?}", bad.name_any(), bad.status);
            }
            let done = new.first().is_some_and(complete);
            if replicas == target {
                ensure!(
                    done,
                    "{app} was scaled to {target} while the {event} run of {template} had not completed (runs: {:?})",
                    names(&new)
                );
                return Ok(new.into_iter().next());
            }
            if new.len() == 1 && !done {
                in_flight_samples.set(in_flight_samples.get() + 1);
            }
            Ok(None)
        }
    })
    .await?;
    Ok((run, in_flight_samples.get()))
}

// --- tests ----------------------------------------------------------------------------------------

#[tokio::test]
async fn lifecycle_start_template_runs_once_and_again_on_each_deploy_id() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "lc-start").await?;
    let name = ns.name().to_string();
    ns.create(&lifecycle_job("seed", "start", "echo seeded", false)).await?;

    // A start template new to a started environment runs once.
    let first = wait_runs_complete(&client, &name, "seed", "start", Runs::Exactly(1), TRANSITION).await?;
    let status = wait_status(&client, &name, "started", TRANSITION).await?;
    let seed = ns.api::<Job>().get("seed").await?;
    assert_eq!(seed.spec.as_ref().and_then(|s| s.suspend), Some(true), "the template stays suspended");
    assert!(seed.status.as_ref().and_then(|s| s.active).unwrap_or(0) == 0, "the template itself runs no pod");
    let run = &first[0];
    assert!(run.name_any().starts_with("seed-start-"), "run name <template>-<event>-<suffix>: {}", run.name_any());
    let owner = run.owner_references().iter().find(|o| o.controller == Some(true)).context("the run has an owner")?;
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Job", "seed"), "the run is owned by its template");
    assert!(run.labels().contains_key(LABEL_RUN), "the run is labelled {LABEL_RUN}: {:?}", run.labels());
    assert!(run_log(&client, &name, &run.name_any(), "main").await?.contains("seeded"));
    let records = last_runs(&client, &name, "seed").await?;
    assert_eq!(records["start"]["run"], run.name_any(), "last-runs names the run: {records}");
    assert_eq!(records["start"]["result"], "succeeded", "{records}");
    wait_events(&client, &name, "seed", &["RunStarted", "RunSucceeded"]).await?;
    assert!(status.starts_with("started"), "{status}");

    // Each deploy-id change is a start: once more, not twice.
    patch_namespace(&client, &name, json!({"metadata": {"annotations": {ANNOTATION_DEPLOY_ID: "v2"}}})).await?;
    let both = wait_runs_complete(&client, &name, "seed", "start", Runs::Exactly(2), TRANSITION).await?;
    wait_status(&client, &name, "started", TRANSITION).await?;
    let second = both.iter().find(|j| j.name_any() != run.name_any()).context("a second run")?.name_any();
    wait_until("last-runs records the second run", TIMEOUT, || async {
        let r = last_runs(&client, &name, "seed").await?;
        Ok((r["start"]["run"] == second.as_str() && r["start"]["result"] == "succeeded").then_some(()))
    })
    .await?;
    let all = runs(&client, &name, "seed", "start").await?;
    assert_eq!(all.len(), 2, "two start runs, never three: {:?}", names(&all));
    Ok(())
}

#[tokio::test]
async fn lifecycle_stop_runs_then_scales_down_and_start_runs_then_scales_up_with_fresh_outputs() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "lc-stopstart").await?;
    let name = ns.name().to_string();
    ns.create(&seed_template("seed")).await?;
    ns.create(&lifecycle_job("drain", "stop", "echo draining; sleep 3; echo drained", false)).await?;

    let first = wait_runs_complete(&client, &name, "seed", "start", Runs::Exactly(1), TRANSITION).await?;
    let value1 = run_pod(&client, &name, &first[0].name_any()).await?;
    wait_published(&ns, "the first start run's RUN", |cm, _| cm.get("RUN") == Some(&value1)).await?;
    ns.create(&env_printer("app", 1)).await?;
    wait_for_deployment_available(&client, &name, "app", TIMEOUT).await?;
    let env = app_env(&client, &name, "app").await?;
    assert_eq!(env.get("QOVERY_OUTPUT_JOB_SEED_RUN"), Some(&value1), "the app starts with the first value");
    wait_status(&client, &name, "started", TRANSITION).await?;

    // stop: the stop run first, then the Deployment goes to zero.
    set_state(&client, &name, "stopped").await?;
    let (stop_run, samples) = watch_runs_then_scale(&client, &name, "app", 0, "drain", "stop", &BTreeSet::new()).await?;
    assert!(samples > 0, "the stop run was seen in flight with the Deployment still up");
    assert!(run_log(&client, &name, &stop_run.name_any(), "main").await?.contains("drained"));
    let status = wait_status(&client, &name, "stopped", TRANSITION).await?;
    let app = ns.api::<Deployment>().get("app").await?;
    assert_eq!(wanted_replicas(&app), 0);
    assert_eq!(
        app.annotations().get(ANNOTATION_REPLICAS_BEFORE_STOP).map(String::as_str),
        Some("1"),
        "the replica count is remembered (status {status})"
    );
    assert_eq!(runs(&client, &name, "seed", "start").await?.len(), 1, "a stop runs no start job");

    // start: the start run first (a new value), then the Deployment comes back with it.
    let before = names(&first);
    set_state(&client, &name, "started").await?;
    let (start_run, samples) = watch_runs_then_scale(&client, &name, "app", 1, "seed", "start", &before).await?;
    assert!(samples > 0, "the start run was seen in flight with the Deployment still at zero");
    let value2 = run_pod(&client, &name, &start_run.name_any()).await?;
    assert_ne!(value1, value2);
    let (cm, _) = published(&ns).await?;
    assert_eq!(cm.get("RUN"), Some(&value2), "the start run published before the scale-up");
    wait_for_deployment_available(&client, &name, "app", TIMEOUT).await?;
    let env = app_env(&client, &name, "app").await?;
    assert_eq!(env.get("QOVERY_OUTPUT_JOB_SEED_RUN"), Some(&value2), "the app came back with the new value");
    assert_eq!(env.get("RUN"), Some(&value2), "and its alias");
    wait_status(&client, &name, "started", TRANSITION).await?;
    let app = ns.api::<Deployment>().get("app").await?;
    assert!(!app.annotations().contains_key(ANNOTATION_REPLICAS_BEFORE_STOP), "the count is forgotten");

    assert_eq!(runs(&client, &name, "drain", "stop").await?.len(), 1, "one stop run");
    assert_eq!(runs(&client, &name, "seed", "start").await?.len(), 2, "two start runs");
    assert_eq!(last_runs(&client, &name, "drain").await?["stop"]["result"], "succeeded");
    wait_events(&client, &name, "drain", &["RunStarted", "RunSucceeded"]).await?;
    Ok(())
}

#[tokio::test]
async fn lifecycle_each_event_runs_its_own_command_in_the_chosen_container() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "lc-commands").await?;
    let name = ns.name().to_string();
    // Two containers; the per-event command and args apply to `main`, named by
    // the `container` annotation; `helper` keeps its own command.
    let mut hook = lifecycle_job("hook", "start,stop", "unused", false);
    {
        let pod = hook.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        let mut helper = pod.containers[0].clone();
        helper.name = "helper".into();
        helper.command = Some(vec!["sh".into(), "-c".into(), "echo helper-ran".into()]);
        let main = &mut pod.containers[0];
        main.command = Some(vec!["sh".into(), "-c".into()]);
        main.args = Some(vec!["echo default-cmd".into()]);
        pod.containers.insert(0, helper);
    }
    let hook = annotate(
        hook,
        &[
            (ANNOTATION_CONTAINER, "main"),
            ("lifecycle-jobs.dev/on-start-command", r#"["sh","-c","echo started-cmd"]"#),
            ("lifecycle-jobs.dev/on-stop-args", r#"["echo stopped-args"]"#),
        ],
    );
    ns.create(&hook).await?;

    let start = wait_runs_complete(&client, &name, "hook", "start", Runs::Exactly(1), TRANSITION).await?;
    let log = run_log(&client, &name, &start[0].name_any(), "main").await?;
    assert_eq!(log.trim(), "started-cmd", "the start run runs on-start-command");
    let log = run_log(&client, &name, &start[0].name_any(), "helper").await?;
    assert_eq!(log.trim(), "helper-ran", "the other container is untouched");
    wait_status(&client, &name, "started", TRANSITION).await?;

    set_state(&client, &name, "stopped").await?;
    let stop = wait_runs_complete(&client, &name, "hook", "stop", Runs::Exactly(1), TRANSITION).await?;
    let log = run_log(&client, &name, &stop[0].name_any(), "main").await?;
    assert_eq!(log.trim(), "stopped-args", "the stop run runs the template's command with on-stop-args");
    let log = run_log(&client, &name, &stop[0].name_any(), "helper").await?;
    assert_eq!(log.trim(), "helper-ran");
    wait_status(&client, &name, "stopped", TRANSITION).await?;

    // The template keeps its own command: runs are copies.
    let t = ns.api::<Job>().get("hook").await?;
    let main = t.spec.unwrap().template.spec.unwrap().containers.into_iter().find(|c| c.name == "main").context("main")?;
    assert_eq!(main.args, Some(vec!["echo default-cmd".to_string()]));
    Ok(())
}

/// Watches an environment being deleted: the delete run of `template` must be
/// seen ended successfully (the contract's rule: its pod's end recorded by the
/// server, or `Complete`), then the namespace gone; a namespace seen
/// terminating must have begun its deletion no earlier than the run's main
/// containers ended.
async fn watch_delete(client: &Client, ns: &str, template: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let completed_at = Cell::new(None);
    let seen_runs = RefCell::new(BTreeSet::new());
    let deletion = Cell::new(None);
    wait_until(&format!("the delete run of {template} completes, then namespace {ns} is gone"), TRANSITION, || {
        let (completed_at, seen_runs, deletion) = (&completed_at, &seen_runs, &deletion);
        let namespaces = namespaces.clone();
        async move {
            for run in runs(client, ns, template, "delete").await.unwrap_or_default() {
                seen_runs.borrow_mut().insert(run.name_any());
                ensure!(!condition(&run, "Failed"), "the delete run {} failed: {:?}", run.name_any(), run.status);
                if succeeded(&run) && completed_at.get().is_none() {
                    completed_at.set(work_ended_at(client, ns, &run.name_any()).await.unwrap_or_default().map(|t| t.0));
                }
            }
            ensure!(seen_runs.borrow().len() <= 1, "more than one delete run: {:?}", seen_runs.borrow());
            match namespaces.get_opt(ns).await? {
                Some(n) => {
                    if let (Some(t), None) = (&n.metadata.deletion_timestamp, deletion.get()) {
                        deletion.set(Some(t.0));
                    }
                    Ok(None)
                }
                None => Ok(Some(())),
            }
        }
    })
    .await?;
    let completed_at = completed_at.get().context("the delete run was never seen ended before the namespace went")?;
    if let Some(deleted_at) = deletion.get() {
        ensure!(
            deleted_at >= completed_at,
            "namespace deletion began at {deleted_at}, before the delete run ended at {completed_at}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn lifecycle_state_deleted_runs_the_delete_jobs_then_deletes_the_namespace() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "lc-delete").await?;
    let name = ns.name().to_string();
    ns.create(&lifecycle_job("teardown", "delete", "echo tearing down; sleep 2; echo torn down", false)).await?;
    wait_status(&client, &name, "started", TRANSITION).await?;
    assert!(runs(&client, &name, "teardown", "delete").await?.is_empty(), "no delete run before the delete");

    set_state(&client, &name, "deleted").await?;
    watch_delete(&client, &name, "teardown").await
}

#[tokio::test]
async fn lifecycle_kubectl_delete_namespace_is_refused_until_the_delete_jobs_ran() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "lc-kdelete").await?;
    let name = ns.name().to_string();
    ns.create(&lifecycle_job("teardown", "delete", "echo tearing down; sleep 2; echo torn down", false)).await?;
    wait_status(&client, &name, "started", TRANSITION).await?;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let refusal = match namespaces.delete(&name, &DeleteParams::background()).await {
        Ok(_) => bail!("the delete of environment {name}, which has delete jobs, was accepted"),
        Err(kube::Error::Api(e)) => e.message,
        Err(e) => return Err(e.into()),
    };
    assert!(refusal.contains("has delete jobs"), "the refusal says why: {refusal}");
    assert!(
        refusal.contains(&format!("kubectl lifecycle env delete {name}")) && refusal.contains("state=deleted"),
        "the refusal says what to run instead: {refusal}"
    );
    assert!(!refusal.contains("teardown"), "the refusal names no job: {refusal}");
    let n = namespaces.get(&name).await?;
    assert!(n.metadata.deletion_timestamp.is_none(), "the namespace is not terminating");
    assert_eq!(n.labels().get(LABEL_STATE), None, "the refusal wrote nothing");
    assert!(runs(&client, &name, "teardown", "delete").await?.is_empty(), "no delete run was started");

    // What the refusal says to do: the delete jobs run, then the namespace goes.
    let patch = serde_json::json!({"metadata": {"labels": {LABEL_STATE: "deleted"}}});
    namespaces.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    watch_delete(&client, &name, "teardown").await
}

#[tokio::test]
async fn lifecycle_an_environment_without_delete_jobs_is_deleted_at_once() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "lc-plaindelete").await?;
    let name = ns.name().to_string();
    // Lifecycle jobs, but none for delete.
    ns.create(&lifecycle_job("hook", "start,stop", "echo hook", false)).await?;
    wait_runs_complete(&client, &name, "hook", "start", Runs::Exactly(1), TRANSITION).await?;
    wait_status(&client, &name, "started", TRANSITION).await?;
    // delete_and_wait fails if the delete is refused.
    ns.delete_and_wait(TRANSITION).await?;
    Ok(())
}

#[tokio::test]
async fn lifecycle_force_run_stop_runs_the_stop_command_and_stops_nothing() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "lc-force").await?;
    let name = ns.name().to_string();
    let hook = annotate(
        lifecycle_job("hook", "start,stop", "echo default-cmd", false),
        &[("lifecycle-jobs.dev/on-stop-command", r#"["sh","-c","echo forced-stop-cmd"]"#)],
    );
    ns.create(&hook).await?;
    ns.create(&env_printer("app", 1)).await?;
    wait_runs_complete(&client, &name, "hook", "start", Runs::Exactly(1), TRANSITION).await?;
    wait_for_deployment_available(&client, &name, "app", TIMEOUT).await?;
    wait_status(&client, &name, "started", TRANSITION).await?;

    let jobs = ns.api::<Job>();
    let patch = json!({"metadata": {"annotations": {ANNOTATION_FORCE_RUN: "stop"}}});
    jobs.patch("hook", &PatchParams::default(), &Patch::Merge(&patch)).await?;

    let stop = wait_runs_complete(&client, &name, "hook", "stop", Runs::Exactly(1), TRANSITION).await?;
    let log = run_log(&client, &name, &stop[0].name_any(), "main").await?;
    assert_eq!(log.trim(), "forced-stop-cmd", "the forced run runs the stop command");
    wait_until("the force-run annotation is cleared", TIMEOUT, || async {
        Ok((!jobs.get("hook").await?.annotations().contains_key(ANNOTATION_FORCE_RUN)).then_some(()))
    })
    .await?;
    wait_until("last-runs records the forced stop", TIMEOUT, || async {
        let r = last_runs(&client, &name, "hook").await?;
        Ok((r["force"]["event"] == "stop" && r["force"]["result"] == "succeeded").then_some(r))
    })
    .await?;

    // Nothing was stopped.
    let status = wait_status(&client, &name, "started", TRANSITION).await?;
    let n = Api::<Namespace>::all(client.clone()).get(&name).await?;
    assert!(!n.labels().contains_key(LABEL_STATE), "the wanted state is untouched: {:?}", n.labels());
    let app = ns.api::<Deployment>().get("app").await?;
    assert_eq!(wanted_replicas(&app), 1, "the Deployment keeps its replicas (status {status})");
    assert!(!app.annotations().contains_key(ANNOTATION_REPLICAS_BEFORE_STOP));
    assert_eq!(runs(&client, &name, "hook", "start").await?.len(), 1, "no other run");
    assert_eq!(runs(&client, &name, "hook", "stop").await?.len(), 1, "one forced run");
    Ok(())
}

#[tokio::test]
async fn lifecycle_deleting_a_template_removes_its_outputs_and_its_runs() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "lc-tdelete").await?;
    let name = ns.name().to_string();
    let file = r#"{"COLOR": {"value": "blue"}, "TOKEN": {"value": "tok-123", "sensitive": true}}"#;
    let script = format!("printf '%s' '{file}' > /qovery-output/qovery-output.json");
    ns.create(&lifecycle_job("seed", "start", &script, true)).await?;
    ns.create(&output_job("other", None, None, r#"{"SHAPE": {"value": "round"}}"#)).await?;
    wait_runs_complete(&client, &name, "seed", "start", Runs::Exactly(1), TRANSITION).await?;
    wait_published(&ns, "the template's and the plain job's outputs", |cm, s| {
        cm.contains_key("QOVERY_OUTPUT_JOB_SEED_COLOR")
            && s.contains_key("QOVERY_OUTPUT_JOB_SEED_TOKEN")
            && cm.contains_key("SHAPE")
    })
    .await?;
    wait_status(&client, &name, "started", TRANSITION).await?;

    let jobs = ns.api::<Job>();
    jobs.delete("seed", &DeleteParams::background()).await?;
    let (cm, secret) = wait_published(&ns, "the template's keys are gone", |cm, s| {
        !cm.keys().chain(s.keys()).any(|k| k.contains("SEED") || k == "COLOR" || k == "TOKEN")
    })
    .await?;
    assert_eq!(cm.get("QOVERY_OUTPUT_JOB_OTHER_SHAPE").map(String::as_str), Some("round"), "other jobs' keys stay");
    assert_eq!(cm.get("SHAPE").map(String::as_str), Some("round"));
    assert!(secret.is_empty(), "{:?}", secret.keys());
    wait_until("the template and its runs are gone", TIMEOUT, || async {
        let gone = jobs.get_opt("seed").await?.is_none() && runs(&client, &name, "seed", "start").await?.is_empty();
        Ok(gone.then_some(()))
    })
    .await
}
