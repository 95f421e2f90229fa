//! The OpenTofu example (`examples/opentofu-environment`), as its README walks a user through it:
//! Qovery's Terraform recipe, unchanged, with the real `tofu` binary. The example is applied in one
//! go (into a namespace of its own); its start job runs `tofu apply` with the state in the
//! namespace and `tofu output -json` as its output file; the web pod starts with every kind of
//! output (string, number, list and map as JSON text, the sensitive one from the Secret); a
//! redeploy applies again with no change and rolls nothing; `kubectl lifecycle env delete` runs
//! `tofu destroy` before the namespace goes. The sensitive output appears in no log, Event or
//! annotation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret};
use kube::api::{ListParams, LogParams};
use kube::{Api, Client, Resource, ResourceExt};
use lifecycle_contract::names::injected::AGENT_CONTAINER;
use lifecycle_contract::output::Rule;
use lifecycle_e2e::lifecycle::{Runs, live_and_ready, patch_namespace, published_of, runs, wait_runs_complete, wait_status};
use lifecycle_e2e::process::{self, Ran, kubectl_lifecycle};
use lifecycle_e2e::{
    DeleteOnDrop, SUITE_LABEL, client, exec, job_pods, kubeconfig_path, unique_suffix, wait_for_deployment_available, wait_until,
};
use serde::de::DeserializeOwned;
use serde_json::json;

/// The example's own namespace, replaced by the test's in every object.
const EXAMPLE_NAMESPACE: &str = "opentofu-demo";
/// The lifecycle job (template) that runs tofu.
const TEMPLATE: &str = "opentofu";
/// The state Secret and its lock Lease: `tfstate-<workspace>-<secret_suffix>` (main.tf's backend).
const STATE_SECRET: &str = "tfstate-default-opentofu-example";
const STATE_LEASE: &str = "lock-tfstate-default-opentofu-example";
/// Bound on what waits for tofu runs (a fresh pod: init, then apply or destroy).
const SLOW: Duration = Duration::from_secs(300);
/// Bound on the checks after a step: what the step waited for is already there, or nearly.
const SETTLE: Duration = Duration::from_secs(120);

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/opentofu-environment/local")
}

/// Pure: the rendered example with its namespace replaced by `ns` (the Namespace object's name
/// and every object's namespace: the name only ever appears as a whole value there).
fn with_namespace(rendered: &str, ns: &str) -> String {
    rendered
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            match trimmed.split_once(": ") {
                Some((key @ ("name" | "namespace"), EXAMPLE_NAMESPACE)) => format!("{indent}{key}: {ns}\n"),
                _ => format!("{line}\n"),
            }
        })
        .collect()
}

/// `kubectl ARGS` (on PATH in the e2e runner) with the cluster's kubeconfig, within `timeout`.
async fn kubectl(timeout: Duration, args: &[&str]) -> Result<Ran> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(kubeconfig_path()).args(&args);
        process::run(cmd, format!("kubectl {}", args.join(" ")), timeout)
    })
    .await?
}

/// `kubectl apply` of the whole example (its local variant) into namespace `ns`, in one go.
async fn apply_example(ns: &str) -> Result<Ran> {
    let dir = example_dir();
    let rendered = kubectl(SETTLE, &["kustomize", &dir.to_string_lossy()]).await?.success()?;
    let file = std::env::temp_dir().join(format!("{ns}.yaml"));
    std::fs::write(&file, with_namespace(&rendered.stdout, ns)).with_context(|| format!("writing {}", file.display()))?;
    let applied = kubectl(SETTLE, &["apply", "-f", &file.to_string_lossy()]).await;
    let _ = std::fs::remove_file(&file);
    applied?.success()
}

// --- what the environment holds ----------------------------------------------------------------

/// The one ready web pod and the variables it runs with (`env` in it).
async fn web_pod(client: &Client, ns: &str) -> Result<(Pod, BTreeMap<String, String>)> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default().labels("app=web")).await?.items;
    let live: Vec<Pod> = pods.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    ensure!(live.len() == 1 && live_and_ready(&live[0]), "want one ready web pod, have {}", live.len());
    let pod = live.into_iter().next().context("web pod")?;
    let out = exec(client, ns, &pod.name_any(), Some("web"), &["env"], Duration::from_secs(20)).await?;
    ensure!(out.exit_code == 0, "env in {} exited {}: {}", pod.name_any(), out.exit_code, out.stderr);
    // One NAME=value per line: the outputs hold no newline.
    let vars = out.stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Ok((pod, vars))
}

/// The log of the latest run of the template for `event` (its tofu container, or the agent).
async fn last_run_log(client: &Client, ns: &str, event: &str, container: &str) -> Result<String> {
    let mut list = runs(client, ns, TEMPLATE, event).await?;
    list.sort_by_key(|j| j.metadata.creation_timestamp.clone());
    let last = list.last().ok_or_else(|| anyhow!("no {event} run of {TEMPLATE}"))?;
    lifecycle_e2e::job_logs(client, ns, &last.name_any(), Some(container)).await
}

/// The whole log of the tofu container of the first `event` run, followed from the moment the
/// container starts until it ends: a delete run's pod goes with its namespace right after.
async fn follow_run_log(client: &Client, ns: &str, event: &str) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = wait_until(&format!("the {event} run's tofu container has started"), SLOW, || async {
        let Some(run) = runs(client, ns, TEMPLATE, event).await?.into_iter().next() else { return Ok(None) };
        let Some(pod) = job_pods(client, ns, &run.name_any()).await?.into_iter().next() else { return Ok(None) };
        let started = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == "main"))
            .and_then(|c| c.state.as_ref())
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
        Ok(started.then(|| pod.name_any()))
    })
    .await?;
    // follow: the answer ends when the container does.
    let params = LogParams { container: Some("main".into()), follow: true, ..LogParams::default() };
    pods.logs(&pod, &params).await.with_context(|| format!("following the log of {ns}/{pod}"))
}

/// Every annotation (`kind/name key=value`) of the objects the environment's users and the
/// product write: the namespace, Jobs, Pods, Deployments, ConfigMaps, Secrets, Leases.
async fn all_annotations(client: &Client, ns: &str) -> Result<Vec<String>> {
    async fn of<K>(client: &Client, ns: &str, out: &mut Vec<String>) -> Result<()>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + std::fmt::Debug + DeserializeOwned,
        <K as Resource>::DynamicType: Default,
    {
        for o in Api::<K>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items {
            for (k, v) in o.annotations() {
                out.push(format!("{}/{} {k}={v}", K::kind(&Default::default()), o.name_any()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    let namespace = Api::<Namespace>::all(client.clone()).get(ns).await?;
    out.extend(namespace.annotations().iter().map(|(k, v)| format!("Namespace/{ns} {k}={v}")));
    of::<Job>(client, ns, &mut out).await?;
    of::<Pod>(client, ns, &mut out).await?;
    of::<Deployment>(client, ns, &mut out).await?;
    of::<ConfigMap>(client, ns, &mut out).await?;
    of::<Secret>(client, ns, &mut out).await?;
    of::<Lease>(client, ns, &mut out).await?;
    Ok(out)
}

/// Every Event of the namespace, as `reason: message`.
async fn all_events(client: &Client, ns: &str) -> Result<Vec<String>> {
    let events = Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await?.items;
    Ok(events.into_iter().map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default())).collect())
}

/// The sensitive value is nowhere but where it belongs (the Secret's data, the app's env).
async fn check_secret_kept(client: &Client, ns: &str, password: &str) -> Result<()> {
    for e in all_events(client, ns).await? {
        ensure!(!e.contains(password), "an Event shows the sensitive output: {e}");
    }
    for a in all_annotations(client, ns).await? {
        ensure!(!a.contains(password), "an annotation shows the sensitive output: {a}");
    }
    for container in ["main", AGENT_CONTAINER] {
        let log = last_run_log(client, ns, "start", container).await?;
        ensure!(!log.contains(password), "the start run's {container} log shows the sensitive output:\n{log}");
    }
    let (web, _) = web_pod(client, ns).await?;
    let log = lifecycle_e2e::pod_logs(client, ns, &web.name_any(), Some("web")).await?;
    ensure!(!log.contains(password), "web's log shows the sensitive output:\n{log}");
    Ok(())
}

// --- the test ------------------------------------------------------------------------------------

#[tokio::test]
async fn the_opentofu_example_applies_on_start_redeploys_unchanged_and_destroys_on_delete() -> Result<()> {
    let client = client().await?;
    let ns = format!("e2e-opentofu-{}", unique_suffix());
    let _cleanup = DeleteOnDrop(ns.clone());

    // In one go, as the README says: namespace, RBAC, main.tf, the lifecycle job and web.
    let applied = apply_example(&ns).await?;
    patch_namespace(&client, &ns, json!({"metadata": {"labels": {SUITE_LABEL: "true"}}})).await?;
    let first = wait_runs_complete(&client, &ns, TEMPLATE, "start", Runs::Exactly(1), SLOW)
        .await
        .with_context(|| format!("after {applied}"))?;
    wait_status(&client, &ns, "started", SETTLE).await?;
    let log = last_run_log(&client, &ns, "start", "main").await?;
    ensure!(log.contains("Apply complete! Resources: 1 added, 0 changed, 0 destroyed."), "the start run did not apply:\n{log}");
    let took = first[0].status.as_ref().and_then(|s| Some((s.start_time.clone()?, s.completion_time.clone()?)));
    if let Some((start, end)) = took {
        eprintln!("the first start run took {:.0} s (Job start to completion)", end.0.duration_since(start.0).as_secs_f64());
    }

    // Every kind of output, as Qovery publishes it.
    let host = format!("db-{ns}.postgres.internal");
    let expected: BTreeMap<&str, String> = BTreeMap::from([
        ("DATABASE_HOST", host.clone()),
        ("DATABASE_PORT", "5432".to_string()),
        ("SUBNETS", r#"["subnet-a","subnet-b"]"#.to_string()),
        ("TAGS", format!(r#"{{"environment":"{ns}","managed-by":"opentofu"}}"#)),
    ]);
    let (cm, secret) = published_of(&client, &ns).await?;
    for (key, value) in &expected {
        ensure!(cm.get(*key) == Some(value), "{key} should be published as {value}: {cm:?}");
        let full = format!("QOVERY_OUTPUT_JOB_OPENTOFU_{key}");
        ensure!(cm.get(&full) == Some(value), "{full} should be published as {value}: {cm:?}");
    }
    ensure!(!cm.contains_key("DATABASE_PASSWORD"), "the sensitive output must not be in the ConfigMap: {:?}", cm.keys());
    let password = secret.get("DATABASE_PASSWORD").cloned().context("no DATABASE_PASSWORD in the Secret lifecycle-outputs")?;
    ensure!(password.len() == 32, "the password is 32 hex digits, got {} characters", password.len());

    // The web pod starts with all of them. The controller rolls what it rolls before the start
    // transition ends (waited for above): once web's rollout is done, its pod is the one to keep.
    wait_for_deployment_available(&client, &ns, "web", SETTLE).await?;
    let (web, vars) = wait_until("web runs with the outputs", SETTLE, || async {
        let (pod, vars) = web_pod(&client, &ns).await?;
        let all = expected.iter().all(|(k, v)| vars.get(*k) == Some(v)) && vars.get("DATABASE_PASSWORD") == Some(&password);
        Ok(all.then_some((pod, vars)))
    })
    .await?;
    let web_uid = web.uid().context("web pod uid")?;
    let page = lifecycle_e2e::pod_logs(&client, &ns, &web.name_any(), Some("web")).await?;
    ensure!(page.contains(&format!("SUBNETS={}", expected["SUBNETS"])), "web's log should show the list: {page}");
    ensure!(page.contains("DATABASE_PASSWORD=<set, 32 characters>"), "web's log should show the password's length: {page}");
    ensure!(vars.get("QOVERY_OUTPUT_JOB_OPENTOFU_TAGS") == Some(&expected["TAGS"]), "web lacks the full name of TAGS");

    // Terraform's `type` field is accepted silently: no warning about it anywhere.
    let unknown = Rule::UnknownField.as_str();
    for e in all_events(&client, &ns).await? {
        ensure!(!e.to_lowercase().contains(unknown), "an Event warns about {unknown}: {e}");
    }

    // The state lives in the namespace; the lock is free.
    let state = Api::<Secret>::namespaced(client.clone(), &ns).get(STATE_SECRET).await.context("the state Secret")?;
    ensure!(state.labels().get("tfstate").map(String::as_str) == Some("true"), "state Secret labels: {:?}", state.labels());
    let lease = Api::<Lease>::namespaced(client.clone(), &ns).get(STATE_LEASE).await.context("the state lock Lease")?;
    ensure!(lease.spec.and_then(|s| s.holder_identity).is_none(), "the state is still locked after the run");
    check_secret_kept(&client, &ns, &password).await?;

    // A redeploy applies again: no change, the same outputs, nothing rolled.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let generation = deployments.get("web").await?.metadata.generation;
    kubectl_lifecycle(SLOW, &["env", "redeploy", &ns, "--wait"]).await?.success()?;
    wait_runs_complete(&client, &ns, TEMPLATE, "start", Runs::Exactly(2), SLOW).await?;
    wait_status(&client, &ns, "started", SETTLE).await?;
    let log = last_run_log(&client, &ns, "start", "main").await?;
    ensure!(
        log.contains("No changes.") && log.contains("0 added, 0 changed, 0 destroyed"),
        "the redeploy changed something:\n{log}"
    );
    let again = published_of(&client, &ns).await?;
    ensure!(again == (cm.clone(), secret.clone()), "the redeploy changed the outputs: {:?}", again.0);
    ensure!(deployments.get("web").await?.metadata.generation == generation, "the redeploy rolled web");
    let (web, _) = web_pod(&client, &ns).await?;
    ensure!(web.uid().as_deref() == Some(web_uid.as_str()), "web's pod was replaced by the redeploy");
    check_secret_kept(&client, &ns, &password).await?;

    // Delete: tofu destroy runs, then the namespace goes.
    let delete = ["env", "delete", &ns, "--wait"];
    let (deleted, destroy_log) = tokio::join!(kubectl_lifecycle(SLOW, &delete), follow_run_log(&client, &ns, "delete"));
    let deleted = deleted?.success()?;
    let destroy_log = destroy_log?;
    ensure!(
        destroy_log.contains("Destroy complete! Resources: 1 destroyed."),
        "the delete run did not destroy the resources:\n{destroy_log}"
    );
    ensure!(!destroy_log.contains(&password), "the delete run's log shows the sensitive output");
    let gone = Api::<Namespace>::all(client.clone()).get_opt(&ns).await?.is_none();
    ensure!(gone, "the namespace should be gone after `env delete --wait`: {deleted}");
    Ok(())
}

#[test]
fn the_namespace_is_replaced_only_where_it_is_a_whole_value() {
    let rendered = "kind: Namespace\nmetadata:\n  name: opentofu-demo\n---\nmetadata:\n  name: web\n  namespace: opentofu-demo\n\
                    data:\n  main.tf: |\n    namespace: opentofu-demo-2\n    # name: opentofu-demo is here\n";
    let out = with_namespace(rendered, "e2e-x");
    assert_eq!(out.matches("e2e-x").count(), 2, "{out}");
    assert!(out.contains("opentofu-demo-2") && out.contains("# name: opentofu-demo is here"), "{out}");
}
