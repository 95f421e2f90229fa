//! Built-in variables end to end (docs/variables.md, "Built-in variables"):
//! every pod of an environment gets the environment's facts under Qovery's
//! names from the ConfigMap `lifecycle-builtins` the server writes, every
//! scope overrides them, a lifecycle run's pods also get the event, the
//! deploy-id and the JOBID, and `kubectl lifecycle env vars` lists them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::builtins::{
    DEPLOY_ID, ENVIRONMENT_ID, ENVIRONMENT_NAME, EVENT, JOB_ID, NAMESPACE_NAME, PROJECT_ID, PROJECT_NAME,
};
use lifecycle_contract::names::{ANNOTATION_DEPLOY_ID, BUILTINS_OBJECT, ENVIRONMENT_OBJECT, LABEL_ENVIRONMENT, LABEL_PROJECT};
use lifecycle_e2e::lifecycle::{Runs, complete, lifecycle_job, patch_namespace, runs, wait_runs_complete, wait_status};
use lifecycle_e2e::process::kubectl_lifecycle;
use lifecycle_e2e::{
    BUSYBOX, TIMEOUT, TestNamespace, client, job_logs, obj, pod_logs, unique_suffix, wait_for_pod_ended, wait_until,
};
use serde_json::{Value, json};

/// How long a new environment may take to get its built-ins: a watch event,
/// the loop's debounce, one apply; with room for a busy test machine.
const BUILTINS_DEADLINE: Duration = Duration::from_secs(30);

/// The variables a container printed with `env`, one `NAME=value` a line.
fn parse_env(logs: &str) -> BTreeMap<String, String> {
    logs.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// An environment named `pr-<suffix>` of project `project`, with a `deploy-id`.
async fn environment(client: &Client, prefix: &str, name: &str, project: &str, deploy_id: &str) -> Result<TestNamespace> {
    let ns = TestNamespace::with_labels(client, prefix, &[(LABEL_ENVIRONMENT, name), (LABEL_PROJECT, project)]).await?;
    patch_namespace(client, ns.name(), json!({"metadata": {"annotations": {ANNOTATION_DEPLOY_ID: deploy_id}}})).await?;
    Ok(ns)
}

/// Waits until the server wrote the environment's built-ins, and returns them.
async fn wait_builtins(client: &Client, ns: &str) -> Result<BTreeMap<String, String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    wait_until(&format!("ConfigMap {ns}/{BUILTINS_OBJECT} is written"), BUILTINS_DEADLINE, || async {
        Ok(api.get_opt(BUILTINS_OBJECT).await?.and_then(|c| c.data).filter(|d| d.contains_key(ENVIRONMENT_ID)))
    })
    .await
}

/// Runs a bare pod whose one container prints its environment (busybox has
/// no printenv applet), with `env` of its own, and returns what it printed.
async fn printed_env(client: &Client, ns: &TestNamespace, name: &str, own_env: Value) -> Result<BTreeMap<String, String>> {
    let pod: Pod = obj(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["env"], "env": own_env
        }]}
    }));
    ns.create(&pod).await?;
    wait_for_pod_ended(client, ns.name(), name, TIMEOUT).await?;
    // The kubelet may report the end a moment before the container's log is complete.
    let logs = wait_until("the pod's environment is in its log", Duration::from_secs(20), || async {
        let logs = pod_logs(client, ns.name(), name, Some("main")).await?;
        Ok(logs.contains("PATH=").then_some(logs))
    })
    .await?;
    Ok(parse_env(&logs))
}

#[tokio::test]
async fn builtins_reach_a_workload_and_every_scope_overrides_them() -> Result<()> {
    let client = client().await?;
    let suffix = unique_suffix();
    let (name, project) = (format!("pr-{suffix}"), format!("e2e-builtins-{suffix}"));
    let ns = environment(&client, "builtins-wl", &name, &project, "d1").await?;
    let uid = Api::<Namespace>::all(client.clone()).get(ns.name()).await?.uid().context("namespace uid")?;

    let data = wait_builtins(&client, ns.name()).await?;
    let expected = BTreeMap::from([
        (ENVIRONMENT_ID.to_string(), uid.clone()),
        (ENVIRONMENT_NAME.to_string(), name.clone()),
        (PROJECT_ID.to_string(), project.clone()),
        (PROJECT_NAME.to_string(), project.clone()),
        (NAMESPACE_NAME.to_string(), ns.name().to_string()),
    ]);
    assert_eq!(data, expected, "the built-ins ConfigMap holds the environment's facts");

    // The environment's own variables override one built-in, the workload's own env another.
    let env_cm: ConfigMap = obj(json!({"metadata": {"name": ENVIRONMENT_OBJECT}, "data": {PROJECT_NAME: "from-environment"}}));
    ns.create(&env_cm).await?;
    let env = printed_env(&client, &ns, "printenv", json!([{"name": ENVIRONMENT_NAME, "value": "own"}])).await?;
    let seen = |k: &str| env.get(k).map(String::as_str);
    let context = format!("variables seen: {:?}", env.keys().collect::<Vec<_>>());
    assert_eq!(seen(ENVIRONMENT_ID), Some(uid.as_str()), "the namespace's UID: {context}");
    assert_eq!(seen(NAMESPACE_NAME), Some(ns.name()), "{context}");
    assert_eq!(seen(PROJECT_ID), Some(project.as_str()), "{context}");
    assert_eq!(seen(PROJECT_NAME), Some("from-environment"), "lifecycle-environment overrides a built-in: {context}");
    assert_eq!(seen(ENVIRONMENT_NAME), Some("own"), "the workload's own env overrides a built-in: {context}");
    for run_only in [EVENT, DEPLOY_ID, JOB_ID] {
        ensure!(!env.contains_key(run_only), "a workload got the run variable {run_only}: {context}");
    }

    // The plugin lists them with scope builtin, and what overrides them.
    let out = kubectl_lifecycle(TIMEOUT, &["env", "vars", ns.name(), "-o", "json"]).await?.success()?;
    let report = out.json()?;
    let vars = report["variables"].as_array().context("variables")?;
    let var = |n: &str| vars.iter().find(|v| v["name"] == n).with_context(|| format!("{n} listed: {report}"));
    let id = var(ENVIRONMENT_ID)?;
    assert_eq!((id["scope"].as_str(), id["object"].as_str()), (Some("builtin"), Some("ConfigMap/lifecycle-builtins")));
    assert_eq!(id["value"], uid.as_str());
    assert_eq!(var(NAMESPACE_NAME)?["scope"], "builtin");
    let overridden = var(PROJECT_NAME)?;
    assert_eq!((overridden["scope"].as_str(), overridden["value"].as_str()), (Some("environment"), Some("from-environment")));
    assert_eq!(overridden["overrides"], json!(["builtin ConfigMap/lifecycle-builtins"]));

    // A new project label rewrites them.
    let moved = format!("{project}-b");
    patch_namespace(&client, ns.name(), json!({"metadata": {"labels": {LABEL_PROJECT: moved}}})).await?;
    wait_until("the built-ins follow the project label", BUILTINS_DEADLINE, || async {
        let data = wait_builtins(&client, ns.name()).await?;
        Ok((data.get(PROJECT_NAME) == Some(&moved)).then_some(()))
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn builtins_reach_a_run_pod_with_its_event_and_jobid() -> Result<()> {
    let client = client().await?;
    let suffix = unique_suffix();
    let (name, project) = (format!("pr-{suffix}"), format!("e2e-builtins-{suffix}"));
    let ns = environment(&client, "builtins-run", &name, &project, "d1").await?;
    let uid = Api::<Namespace>::all(client.clone()).get(ns.name()).await?.uid().context("namespace uid")?;
    wait_builtins(&client, ns.name()).await?;
    wait_status(&client, ns.name(), "started", TIMEOUT).await?;

    ns.create(&lifecycle_job("tofu-db", "start", "env", false)).await?;
    let done = wait_runs_complete(&client, ns.name(), "tofu-db", "start", Runs::Exactly(1), TIMEOUT).await?;
    let run = done[0].name_any();
    let env = parse_env(&job_logs(&client, ns.name(), &run, Some("main")).await?);
    let seen = |k: &str| env.get(k).map(String::as_str);
    let context = format!("variables seen: {:?}", env.keys().collect::<Vec<_>>());
    assert_eq!(seen(EVENT), Some("start"), "{context}");
    assert_eq!(seen(JOB_ID), Some("TOFU_DB"), "{context}");
    assert_eq!(seen(ENVIRONMENT_ID), Some(uid.as_str()), "a run pod gets the environment's built-ins too: {context}");
    assert_eq!(seen(ENVIRONMENT_NAME), Some(name.as_str()), "{context}");
    assert_eq!(seen(PROJECT_NAME), Some(project.as_str()), "{context}");
    Ok(())
}

/// Needs the controller to hand the occurrence's deploy-id to the run
/// builder (`build_run_with`, `RunFacts`): until `controller/reconcile.rs`
/// does, run pods get no `LIFECYCLE_DEPLOY_ID` and this test fails.
#[tokio::test]
async fn builtins_a_run_pod_gets_the_deploy_id_it_was_made_for() -> Result<()> {
    let client = client().await?;
    let suffix = unique_suffix();
    let ns = environment(&client, "builtins-deploy", &format!("pr-{suffix}"), &format!("e2e-builtins-{suffix}"), "d1").await?;
    ns.create(&lifecycle_job("seed", "start", "env", false)).await?;
    wait_runs_complete(&client, ns.name(), "seed", "start", Runs::AtLeast(1), TIMEOUT).await?;
    wait_status(&client, ns.name(), "started", TIMEOUT).await?;

    // A redeploy: its run is told the new deploy-id.
    patch_namespace(&client, ns.name(), json!({"metadata": {"annotations": {ANNOTATION_DEPLOY_ID: "d2"}}})).await?;
    let env = wait_until("a run for deploy-id d2 ended", TIMEOUT, || async {
        let list = runs(&client, ns.name(), "seed", "start").await?;
        let mut found = None;
        for r in list.iter().filter(|r| complete(r)) {
            let env = parse_env(&job_logs(&client, ns.name(), &r.name_any(), Some("main")).await.unwrap_or_default());
            if env.get(DEPLOY_ID).map(String::as_str) == Some("d2") {
                found = Some(env);
            }
        }
        Ok(found)
    })
    .await?;
    assert_eq!(env.get(EVENT).map(String::as_str), Some("start"));
    Ok(())
}
