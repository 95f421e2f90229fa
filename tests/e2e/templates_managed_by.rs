//! Templates cost the cluster's Job controller nothing (issue 21): a lifecycle
//! template is admitted with `spec.managedBy` naming the server's controller,
//! so the built-in Job controller never writes its status nor an Event about
//! it; the server shows it `Suspended` itself, so that `kubectl get jobs` still
//! tells people what it is. Its runs are ordinary Jobs, which the built-in
//! Job controller runs as any other.
//!
//! What is checked is what a user sees: the real kubectl's STATUS column, the
//! Job's spec, the Events `kubectl describe` lists. (How fast a new Job gets
//! its pod beside 10,000 templates is measured by `make scale-test`.)

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use lifecycle_contract::names::{ANNOTATION_FORCE_RUN, TEMPLATE_MANAGED_BY};
use lifecycle_e2e::lifecycle::{Runs, environment, lifecycle_job, wait_published, wait_runs_complete};
use lifecycle_e2e::process::{self, Ran};
use lifecycle_e2e::{TIMEOUT, client, events_for, job_pods, kubeconfig_path, wait_until};
use serde_json::json;

/// Deadline of a run (a pod, its agent publishing) on a small, busy machine.
const RUN: Duration = Duration::from_secs(240);

/// The component that reports the built-in Job controller's Events.
const JOB_CONTROLLER: &str = "job-controller";

/// `kubectl get jobs -n NS` as a terminal shows it (kubectl on PATH in the e2e runner).
async fn kubectl_get_jobs(ns: &str) -> Result<Ran> {
    let ns = ns.to_string();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(kubeconfig_path()).args(["get", "jobs", "-n", &ns]);
        process::run(cmd, format!("kubectl get jobs -n {ns}"), Duration::from_secs(30))?.success()
    })
    .await?
}

/// The STATUS column of Job `name` in `kubectl get jobs`' table, found by its header.
fn status_column(table: &str, name: &str) -> Option<String> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    let at = header.iter().position(|h| *h == "STATUS")?;
    lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))?
        .get(at)
        .map(|s| s.to_string())
}

/// Whether the built-in Job controller reported the Event.
fn from_job_controller(e: &Event) -> bool {
    e.reporting_component.as_deref() == Some(JOB_CONTROLLER)
        || e.source.as_ref().and_then(|s| s.component.as_deref()) == Some(JOB_CONTROLLER)
}

/// One line per Event, for messages.
fn describe(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let source = e.reporting_component.clone().or_else(|| e.source.as_ref().and_then(|s| s.component.clone()));
            format!(
                "{} {} ({})",
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or(""),
                source.unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn templates_managed_by_the_server_are_shown_suspended_and_their_runs_are_plain_jobs() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "tpl-managed").await?;
    let name = ns.name().to_string();
    let script = r#"printf '{"COLOR": {"value": "blue"}}' > /qovery-output/qovery-output.json"#;
    ns.create(&lifecycle_job("seed", "start", script, true)).await?;
    let jobs = ns.api::<Job>();

    // What the template is, as `kubectl get jobs` shows it: Suspended (the
    // server writes that condition, soon after it first sees the template).
    let table = wait_until("kubectl get jobs shows the template Suspended", TIMEOUT, || async {
        let ran = kubectl_get_jobs(&name).await?;
        Ok((status_column(&ran.stdout, "seed").as_deref() == Some("Suspended")).then_some(ran.stdout))
    })
    .await?;
    let template = jobs.get("seed").await?;
    let spec = template.spec.as_ref().context("the template has a spec")?;
    ensure!(
        spec.managed_by.as_deref() == Some(TEMPLATE_MANAGED_BY),
        "the template is managed by {TEMPLATE_MANAGED_BY}, not by the built-in Job controller: managedBy {:?}",
        spec.managed_by
    );

    // Its runs: the environment's start, then one forced by the user. Each is
    // an ordinary Job (no managedBy): the built-in Job controller runs it, and
    // its outputs are published.
    wait_runs_complete(&client, &name, "seed", "start", Runs::Exactly(1), RUN).await?;
    let patch = json!({"metadata": {"annotations": {ANNOTATION_FORCE_RUN: "start"}}});
    jobs.patch("seed", &PatchParams::default(), &Patch::Merge(&patch)).await?;
    let runs = wait_runs_complete(&client, &name, "seed", "start", Runs::Exactly(2), RUN).await?;
    for run in &runs {
        let run_name = run.name_any();
        let managed_by = run.spec.as_ref().and_then(|s| s.managed_by.as_deref());
        ensure!(managed_by.is_none(), "run {run_name} is an ordinary Job, but has managedBy {managed_by:?}");
        let pods = job_pods(&client, &name, &run_name).await?;
        let phases: Vec<_> = pods.iter().map(|p| p.status.as_ref().and_then(|s| s.phase.clone())).collect();
        ensure!(
            !pods.is_empty() && phases.iter().all(|p| p.as_deref() == Some("Succeeded")),
            "run {run_name} ran in pods that succeeded: {phases:?}"
        );
        // The check below can see the Job controller's Events: it reports the runs it creates pods for.
        let events = events_for(&client, &name, "Job", &run_name).await?;
        ensure!(
            events.iter().any(from_job_controller),
            "the Job controller reported run {run_name} (it runs it): {:?}",
            describe(&events)
        );
    }
    wait_published(&ns, "the runs' output", |cm, _| cm.contains_key("QOVERY_OUTPUT_JOB_SEED_COLOR")).await?;

    // By now the built-in Job controller has handled two runs in this
    // namespace; it never touched the template: no pod, no Event of its own,
    // and the template is still shown Suspended.
    ensure!(job_pods(&client, &name, "seed").await?.is_empty(), "the template itself never has pods");
    let events = events_for(&client, &name, "Job", "seed").await?;
    ensure!(
        !events.iter().any(from_job_controller),
        "the built-in Job controller left the template alone, but reported on it: {:?}",
        describe(&events)
    );
    let ran = kubectl_get_jobs(&name).await?;
    ensure!(
        status_column(&ran.stdout, "seed").as_deref() == Some("Suspended"),
        "after its runs, the template is still shown Suspended:\n{}\n(first seen as:\n{table})",
        ran.stdout
    );
    for run in &runs {
        let run_name = run.name_any();
        ensure!(
            status_column(&ran.stdout, &run_name).as_deref() == Some("Complete"),
            "kubectl get jobs shows run {run_name} Complete:\n{}",
            ran.stdout
        );
    }
    Ok(())
}
