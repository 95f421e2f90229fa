//! Issue 19, the smaller holes, each played as the attack beside the
//! legitimate path: outputs named like the variables that redirect traffic or
//! change what TLS trusts, a pod bound to its node during a start, a template
//! handing its runs to another controller, terminal escape sequences in what
//! the plugin prints.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use lifecycle_contract::names::{ANNOTATION_STATUS, LABEL_GATED, SCHEDULING_GATE_START_JOBS};
use lifecycle_e2e::lifecycle::{
    Runs, annotate, environment, lifecycle_job, output_job, wait_published, wait_runs_complete, wait_status,
};
use lifecycle_e2e::process::{self, Ran};
use lifecycle_e2e::{BUSYBOX, TIMEOUT, client, obj, pod_logs, wait_for_pod_ended, wait_until};
use serde_json::json;

use crate::capture::{create_job_retrying, wait_event};

/// A pod of one busybox container that prints its environment and ends.
fn env_printer(name: &str, env: serde_json::Value) -> Pod {
    obj(json!({
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["env"], "env": env,
            "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"memory": "32Mi"}}
        }]}
    }))
}

/// The variables a pod printed with `env`, as `NAME=value` lines.
fn has_var(env: &str, name: &str) -> Option<String> {
    env.lines().find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
}

/// A job publishes `HTTPS_PROXY` and `NODE_EXTRA_CA_CERTS`: the environment's
/// workloads get them only under their full names (nobody's traffic goes
/// through the job's proxy, nobody trusts its CA), an ordinary output keeps its
/// alias, the job gets a Warning naming the keys, and a workload that opts in
/// through its own `env` gets exactly what it asked for.
#[tokio::test]
async fn hardening_proxy_and_ca_outputs_reach_workloads_only_under_their_full_names() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "hard-alias").await?;
    let file = r#"{"HTTPS_PROXY": {"value": "http://attacker.example:3128"},
                   "NODE_EXTRA_CA_CERTS": {"value": "/tmp/attacker-ca.pem"},
                   "DB_HOST": {"value": "db"}}"#;
    create_job_retrying(&ns, &output_job("egress", Some("EGRESS"), None, file)).await?;
    let (cm, _) =
        wait_published(&ns, "egress publishes", |cm, _| cm.contains_key("QOVERY_OUTPUT_JOB_EGRESS_HTTPS_PROXY")).await?;
    assert!(!cm.contains_key("HTTPS_PROXY") && !cm.contains_key("NODE_EXTRA_CA_CERTS"), "no bare alias: {:?}", cm.keys());
    assert_eq!(cm.get("DB_HOST").map(String::as_str), Some("db"));
    let note = wait_event(&client, ns.name(), "egress", "OutputAliasReserved").await?.message.unwrap_or_default();
    assert!(note.contains("HTTPS_PROXY") && note.contains("NODE_EXTRA_CA_CERTS"), "{note}");

    // A workload of the environment.
    ns.create(&env_printer("workload", json!([]))).await?;
    wait_for_pod_ended(&client, ns.name(), "workload", TIMEOUT).await?;
    let env = pod_logs(&client, ns.name(), "workload", Some("main")).await?;
    assert_eq!(has_var(&env, "QOVERY_OUTPUT_JOB_EGRESS_HTTPS_PROXY").as_deref(), Some("http://attacker.example:3128"), "{env}");
    assert_eq!(has_var(&env, "QOVERY_OUTPUT_JOB_EGRESS_NODE_EXTRA_CA_CERTS").as_deref(), Some("/tmp/attacker-ca.pem"));
    assert_eq!(has_var(&env, "DB_HOST").as_deref(), Some("db"));
    for bare in ["HTTPS_PROXY", "https_proxy", "NODE_EXTRA_CA_CERTS"] {
        assert_eq!(has_var(&env, bare), None, "{bare} reached the workload:\n{env}");
    }

    // The deliberate path: the workload names it in its own env.
    let opt_in = json!([{"name": "HTTPS_PROXY", "valueFrom": {"configMapKeyRef": {
        "name": "lifecycle-outputs", "key": "QOVERY_OUTPUT_JOB_EGRESS_HTTPS_PROXY", "optional": true}}}]);
    ns.create(&env_printer("opted-in", opt_in)).await?;
    wait_for_pod_ended(&client, ns.name(), "opted-in", TIMEOUT).await?;
    let env = pod_logs(&client, ns.name(), "opted-in", Some("main")).await?;
    assert_eq!(has_var(&env, "HTTPS_PROXY").as_deref(), Some("http://attacker.example:3128"), "{env}");
    assert_eq!(has_var(&env, "NODE_EXTRA_CA_CERTS"), None, "only what it asked for");
    Ok(())
}

/// A pod that names its node at creation (what `kubectl debug node/NODE`
/// makes) is created during a start, not gated: the API server refuses a
/// scheduling gate on it. An ordinary pod created at the same time is gated.
#[tokio::test]
async fn hardening_a_pod_bound_to_a_node_is_created_during_a_start_and_not_gated() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "hard-node").await?;
    // A start job that runs long enough for the whole test.
    ns.create(&lifecycle_job("slow-seed", "start", "sleep 600", false)).await?;
    let pods = ns.api::<Pod>();
    // The start is in flight once an ordinary pod is gated (the webhook learns
    // of the transition from its namespace watch).
    let mut n = 0;
    let gated = wait_until("an ordinary pod is gated by the start", TIMEOUT, || {
        n += 1;
        let (pods, name) = (pods.clone(), format!("ordinary-{n}"));
        async move {
            let pod: Pod = obj(json!({"metadata": {"name": name}, "spec": {"terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "600"]}]}}));
            let created = pods.create(&PostParams::default(), &pod).await?;
            let gates = created.spec.as_ref().and_then(|s| s.scheduling_gates.clone()).unwrap_or_default();
            Ok(gates.iter().any(|g| g.name == SCHEDULING_GATE_START_JOBS).then_some(created))
        }
    })
    .await?;
    assert_eq!(gated.labels().get(LABEL_GATED).map(String::as_str), Some(lifecycle_contract::names::GATED_START_JOBS));

    let node =
        Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items.into_iter().next().context("no node")?;
    let bound: Pod = obj(json!({"metadata": {"name": "node-debugger"}, "spec": {
        "nodeName": node.name_any(), "terminationGracePeriodSeconds": 1, "restartPolicy": "Never",
        "containers": [{"name": "debugger", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "600"]}]}}));
    let created =
        pods.create(&PostParams::default(), &bound).await.context("a pod with spec.nodeName is created during a start")?;
    assert!(created.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref()).is_none_or(|g| g.is_empty()), "{:?}", created.spec);
    assert!(!created.labels().contains_key(LABEL_GATED));
    assert!(
        created.spec.as_ref().and_then(|s| s.containers[0].env_from.as_ref()).is_some_and(|e| !e.is_empty()),
        "variables still injected"
    );
    // The start is in flight (its job sleeps for the whole test), so the bound
    // pod was admitted during it: the controller reports it starting. A new
    // environment gates pods before the controller has taken its start in, so
    // its status may not be written yet when the pods above are created.
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    let status = wait_until("the controller reports the environment starting", TIMEOUT, || async {
        let status = namespaces.get(ns.name()).await?.annotations().get(ANNOTATION_STATUS).cloned().unwrap_or_default();
        Ok(status.starts_with("starting").then_some(status))
    })
    .await?;
    assert!(status.starts_with("starting"), "{status}");
    Ok(())
}

/// A template with `spec.managedBy` naming another controller (allowed on a
/// suspended Job, and immutable): its runs are the built-in Job controller's
/// and complete; the environment starts.
#[tokio::test]
async fn hardening_a_template_managed_by_another_controller_still_runs() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "hard-managed").await?;
    let mut t = lifecycle_job("seed", "start", "true", false);
    t.spec.as_mut().unwrap().managed_by = Some("example.com/another-controller".into());
    let created = ns.create(&t).await?;
    assert_eq!(created.spec.as_ref().and_then(|s| s.managed_by.as_deref()), Some("example.com/another-controller"));
    let runs = wait_runs_complete(&client, ns.name(), "seed", "start", Runs::Exactly(1), TIMEOUT).await?;
    assert_eq!(runs[0].spec.as_ref().and_then(|s| s.managed_by.as_deref()), None, "the run is the Job controller's");
    wait_status(&client, ns.name(), "started", TIMEOUT).await?;
    Ok(())
}

// --- the plugin --------------------------------------------------------------------------------

async fn plugin(args: &[&str]) -> Result<Ran> {
    process::kubectl_lifecycle(Duration::from_secs(90), args).await
}

/// Output values and annotations carrying escape sequences (clear screen, a
/// title, OSC 52 to the clipboard, a C1 CSI, a carriage return, a bidi
/// override): whatever the plugin prints, in every format, has no ESC, no C1,
/// no CR and the values are still readable (JSON keeps them exactly).
#[tokio::test]
async fn hardening_the_plugin_prints_no_escape_sequences_from_the_cluster() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "hard-esc").await?;
    // C1 characters and DEL too: the server escapes them in its apply body (the API server reads it
    // as YAML, which refuses them raw), so they are published like any other value.
    let evil = "ok\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]52;c;ZWNobyBwd25k\u{7}\rFAILED\u{202e}\u{9b}31m\u{7f}";
    let evil_annotation = evil.to_string();
    let file = serde_json::to_string(&json!({"BANNER": {"value": evil}, "TOKEN": {"value": evil, "sensitive": true}}))?;
    let job = annotate(output_job("esc", Some("ESC"), None, &file), &[("example.com/note", &evil_annotation)]);
    create_job_retrying(&ns, &job).await?;
    wait_published(&ns, "esc publishes", |cm, _| cm.get("QOVERY_OUTPUT_JOB_ESC_BANNER").is_some_and(|v| v == evil)).await?;
    // And a lifecycle job (a template) with the same annotation, which clone prints.
    ns.create(&annotate(lifecycle_job("noisy", "stop", "true", false), &[("example.com/note", &evil_annotation)])).await?;

    let name = ns.name().to_string();
    let mut seen = 0;
    for args in [
        vec!["outputs", "esc", "-n", &name],
        vec!["outputs", "esc", "-n", &name, "--show-sensitive"],
        vec!["outputs", "esc", "-n", &name, "-o", "wide"],
        vec!["outputs", "esc", "-n", &name, "-o", "yaml", "--show-sensitive"],
        vec!["env", "vars", &name, "--show-sensitive"],
        vec!["env", "vars", &name, "-o", "wide"],
        vec!["env", "status", &name],
        vec!["env", "status", &name, "-o", "wide"],
        vec!["env", "list"],
        vec!["clone", "noisy", "-n", &name, "--to", &name, "--name", "noisy-copy", "--dry-run", "-o", "yaml"],
        vec!["clone", "noisy", "-n", &name, "--to", &name, "--name", "noisy-copy", "--dry-run"],
    ] {
        let ran = plugin(&args).await?;
        let all = ran.all();
        for bad in ['\u{1b}', '\u{9b}', '\u{7f}', '\r', '\u{7}', '\u{202e}'] {
            ensure!(!all.contains(bad), "{:?} printed by `kubectl lifecycle {}`: {ran}", bad, args.join(" "));
        }
        if all.contains("\\u001b") {
            seen += 1;
        }
    }
    ensure!(seen >= 3, "the values were shown, escaped, by the commands that print them");
    // Machine output keeps the value exactly.
    let ran = plugin(&["outputs", "esc", "-n", &name, "-o", "json", "--show-sensitive"]).await?.success()?;
    ensure!(!ran.stdout.contains('\u{1b}') && !ran.stdout.contains('\u{9b}') && !ran.stdout.contains('\u{202e}'), "{ran}");
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(m) => m.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    strings(&ran.json()?, &mut all);
    ensure!(all.iter().any(|s| s == evil), "the JSON carries the value exactly: {ran}");
    Ok(())
}
