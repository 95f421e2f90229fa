//! The kubectl plugin, `kubectl lifecycle`, end to end: the release binary run
//! as a person runs it, against the real local cluster with the product
//! installed, its output read as a person (tables) and a script (`-o json`)
//! would read it.
//!
//! The binary is `$KUBECTL_LIFECYCLE`, else `target/release/kubectl-lifecycle`
//! (built on first use if missing). Every command gets `--kubeconfig` of the
//! cluster under test and ends within a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{Api, ResourceExt};
use lifecycle_contract::names::{
    ANNOTATION_DEPLOY_ID, ANNOTATION_FORCE_RUN, ANNOTATION_JOB_ID, ANNOTATION_ON, ANNOTATION_STATUS, LABEL_ENVIRONMENT,
    LABEL_EVENT, LABEL_JOB, LABEL_PROJECT, LABEL_STATE,
};
use lifecycle_e2e::lifecycle::{
    Runs, environment, lifecycle_job, names, output_job, runs, succeeded, wait_published, wait_runs_complete, wait_status_idle,
};
use lifecycle_e2e::process::{self, Ran};
use lifecycle_e2e::{DeleteOnDrop, TIMEOUT, TestNamespace, client, obj, unique_suffix, wait_for_job_complete, wait_until};
use serde_json::{Value, json};

// --- running the plugin ----------------------------------------------------------------------

/// How long a command that does not wait may take.
const QUICK: Duration = Duration::from_secs(90);
/// `--timeout` given to the commands that wait for the controller, and our own bound on them.
const WAIT_FLAG: &str = "3m";
const WAITING: Duration = Duration::from_secs(240);

/// Runs `kubectl lifecycle ARGS` with the cluster's kubeconfig, within `timeout`.
async fn plugin_within(timeout: Duration, args: &[&str]) -> Result<Ran> {
    process::kubectl_lifecycle(timeout, args).await
}

/// Runs a command that does not wait for the cluster to change.
async fn plugin(args: &[&str]) -> Result<Ran> {
    plugin_within(QUICK, args).await
}

// --- reading tables ----------------------------------------------------------------------------

/// The rows of the table whose header line is exactly `headers` (kubectl style: columns start
/// where their header starts), up to the next blank line. Cells are trimmed.
fn table(text: &str, headers: &[&str]) -> Result<Vec<Vec<String>>> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.split_whitespace().eq(headers.iter().copied()))
        .ok_or_else(|| anyhow!("no table with headers {headers:?} in:\n{text}"))?;
    let header = lines[at];
    let mut starts = Vec::new();
    let mut from = 0;
    for h in headers {
        let i = from + header[from..].find(h).context("header position")?;
        starts.push(i);
        from = i + h.len();
    }
    let mut rows = Vec::new();
    for line in &lines[at + 1..] {
        if line.trim().is_empty() {
            break;
        }
        let cell = |i: usize| {
            let a = starts[i].min(line.len());
            let b = starts.get(i + 1).copied().unwrap_or(line.len()).min(line.len());
            line.get(a..b).unwrap_or_default().trim().to_string()
        };
        rows.push((0..headers.len()).map(cell).collect());
    }
    Ok(rows)
}

/// The row of `rows` whose first cell is `name`.
fn row<'a>(rows: &'a [Vec<String>], name: &str) -> Result<&'a Vec<String>> {
    rows.iter().find(|r| r[0] == name).ok_or_else(|| anyhow!("no row {name} in {rows:?}"))
}

/// Text with every run of whitespace made one space (help text wraps where it likes).
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// --- cluster objects ---------------------------------------------------------------------------

/// A plain Job that says so in its log, then writes `content` as its output file.
fn emitting_job(name: &str, content: &str) -> Job {
    let mut job = output_job(name, None, Some("echo 'emitting outputs'"), content);
    job.metadata.annotations = None;
    job
}

fn label(ns: &Namespace, key: &str) -> Option<String> {
    ns.labels().get(key).cloned()
}

// --- help and usage: no cluster needed ---------------------------------------------------------

#[tokio::test]
async fn plugin_help_of_every_command_reads_well() -> Result<()> {
    // (command, what its help must say it does, an example it must show)
    let cases: &[(&[&str], &str, &str)] = &[
        (&[], "Environments, lifecycle jobs and their outputs", "kubectl lifecycle env list"),
        (&["env"], "start, stop, redeploy and delete environments", "kubectl lifecycle env stop preview-42 --wait"),
        (&["env", "list"], "List environments", "kubectl lifecycle env list -o json"),
        (&["env", "status"], "Show an environment", "kubectl lifecycle env status preview-42"),
        (&["env", "create"], "Make a namespace an environment", "kubectl lifecycle env create preview-42"),
        (&["env", "start"], "Start an environment", "kubectl lifecycle env start preview-42"),
        (&["env", "stop"], "Stop an environment", "kubectl lifecycle env stop preview-42"),
        (&["env", "redeploy"], "Redeploy a started environment", "kubectl lifecycle env redeploy preview-42"),
        (&["env", "delete"], "Delete an environment", "kubectl lifecycle env delete preview-42"),
        (&["run"], "Force-run one event of a lifecycle job", "kubectl lifecycle run seed-db --event start"),
        (&["outputs"], "Show the variables a job published", "kubectl lifecycle outputs seed-db -n preview-42"),
        (&["logs"], "Show the logs of a lifecycle job's latest run", "kubectl lifecycle logs seed-db -n preview-42"),
        (&["clone"], "Copy a lifecycle job", "kubectl lifecycle clone seed-db -n preview-42 --to preview-43"),
    ];
    for (command, purpose, example) in cases {
        let mut args = command.to_vec();
        args.push("--help");
        let ran = plugin(&args).await?.success()?;
        let text = flat(&ran.stdout);
        ensure!(text.contains(purpose), "help of {command:?} should say {purpose:?}: {ran}");
        ensure!(text.contains("Examples:") && text.contains(example), "help of {command:?} should show {example:?}: {ran}");
        ensure!(text.contains("Usage: kubectl lifecycle"), "help of {command:?} should show its usage: {ran}");
        ensure!(ran.stderr.is_empty(), "help goes to stdout only: {ran}");
    }
    // The top-level help lists every command, and the exit codes.
    let top = plugin(&["--help"]).await?;
    for c in ["env", "run", "outputs", "logs", "clone"] {
        ensure!(top.stdout.lines().any(|l| l.trim_start().starts_with(&format!("{c} "))), "--help lists {c}: {top}");
    }
    top.says(true, &["Exit codes: 0 success, 1 failure, 2 usage error"])?;
    let env = plugin(&["env", "--help"]).await?;
    for c in ["list", "status", "create", "start", "stop", "redeploy", "delete"] {
        ensure!(env.stdout.lines().any(|l| l.trim_start().starts_with(&format!("{c} "))), "env --help lists {c}: {env}");
    }
    Ok(())
}

#[tokio::test]
async fn plugin_usage_errors_exit_2_and_say_what_is_wrong() -> Result<()> {
    let cases: &[(&[&str], &str)] = &[
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&["run", "seed"], "--event"),
        (&["run", "seed", "--event", "deploy"], "start, stop or delete"),
        (&["env", "stop"], "kubectl lifecycle env stop NAMESPACE"),
        (&["env", "start", "preview-a", "-n", "preview-b"], "two different environments given"),
        (&["env", "stop", "preview", "--wait", "--timeout", "10x"], "unknown unit"),
        (&["outputs"], "JOB|NAMESPACE"),
        (&["clone", "seed"], "--to"),
        (&["env", "list", "-o", "table"], "possible values"),
    ];
    for (args, says) in cases {
        let ran = plugin(args).await?.exit(2)?;
        ran.says(false, &[says])?;
        ensure!(ran.stdout.is_empty(), "a usage error prints nothing on stdout: {ran}");
    }
    // No command at all: the help, on stderr, and exit 2.
    let ran = plugin(&[]).await?.exit(2)?;
    ran.says(false, &["Usage: kubectl lifecycle"])?;
    Ok(())
}

// --- errors that need the cluster --------------------------------------------------------------

#[tokio::test]
async fn plugin_refuses_a_namespace_that_is_not_an_environment_with_a_hint() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "plugin-plain").await?;
    let name = ns.name();
    let hint = format!("kubectl label ns {name} {LABEL_ENVIRONMENT}=");
    let not_env = format!("namespace {name} is not an environment");
    for args in
        [vec!["env", "status", name], vec!["env", "stop", name], vec!["env", "delete", name, "--wait"], vec!["outputs", name]]
    {
        let ran = plugin(&args).await?.exit(1)?;
        ran.says(false, &[&not_env, &hint, &format!("kubectl lifecycle env create {name}")])?;
    }
    // Nothing was changed.
    let n = Api::<Namespace>::all(client.clone()).get(name).await?;
    ensure!(label(&n, LABEL_STATE).is_none(), "the namespace got no state label: {:?}", n.labels());

    // A namespace that does not exist.
    let missing = format!("e2e-plugin-missing-{}", unique_suffix());
    let ran = plugin(&["env", "status", &missing]).await?.exit(1)?;
    ran.says(false, &[&format!("namespace {missing} not found"), "kubectl lifecycle env list"])?;
    Ok(())
}

// --- env create, list, status ------------------------------------------------------------------

#[tokio::test]
async fn plugin_env_create_list_and_status_show_templates_runs_and_outputs() -> Result<()> {
    let client = client().await?;
    let name = format!("e2e-plugin-create-{}", unique_suffix());
    let _cleanup = DeleteOnDrop(name.clone());

    // env create: a new namespace, labelled as an environment of project shop.
    let ran = plugin(&["env", "create", &name, "--project", "shop"]).await?.success()?;
    ran.says(true, &[&format!("namespace {name} created as an environment"), &format!("kubectl lifecycle env status {name}")])?;
    let n = Api::<Namespace>::all(client.clone()).get(&name).await?;
    ensure!(label(&n, LABEL_ENVIRONMENT).as_deref() == Some(""), "environment label: {:?}", n.labels());
    ensure!(label(&n, LABEL_PROJECT).as_deref() == Some("shop"), "project label: {:?}", n.labels());
    let ran = plugin(&["env", "create", &name]).await?.success()?;
    ran.says(true, &["already an environment (nothing to change)"])?;

    // Pods are admitted once the namespace's default service account exists.
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    wait_until("the default service account exists", Duration::from_secs(60), || async {
        Ok(sa.get_opt("default").await?.is_some().then_some(()))
    })
    .await?;
    // A lifecycle job (its creation in a started environment is a start event) and a plain
    // Job that publishes one plain and one sensitive output.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &name);
    jobs.create(&Default::default(), &lifecycle_job("hook", "start,stop", "echo ran", false)).await?;
    jobs.create(
        &Default::default(),
        &emitting_job("emit", r#"{"DB_HOST": {"value": "db.internal"}, "DB_PASS": {"value": "pw-create", "sensitive": true}}"#),
    )
    .await?;
    wait_for_job_complete(&client, &name, "emit", TIMEOUT).await?;
    wait_runs_complete(&client, &name, "hook", "start", Runs::AtLeast(1), TIMEOUT).await?;
    wait_status_idle(&client, &name, "started", TIMEOUT).await?;
    // Outputs are published by the agent as the Job ends: wait for the Job's summary in the
    // environment's objects, through the plugin's own view.
    let status = wait_until("env status counts the outputs", TIMEOUT, || async {
        let s = plugin(&["env", "status", &name, "-o", "json"]).await?.success()?.json()?;
        Ok((s["outputs"]["nonSensitive"] == 1 && s["outputs"]["sensitive"] == 1).then_some(s))
    })
    .await?;

    // env status -o json
    ensure!(status["namespace"] == name.as_str() && status["environment"] == name.as_str(), "{status:#}");
    ensure!(status["project"] == "shop" && status["state"] == "started" && status["terminating"] == false, "{status:#}");
    ensure!(status["status"].as_str().is_some_and(|s| s.starts_with("started")), "status: {status:#}");
    let templates = status["templates"].as_array().context("templates")?;
    ensure!(templates.len() == 1, "one lifecycle job: {status:#}");
    let t = &templates[0];
    ensure!(t["name"] == "hook" && t["jobId"] == "HOOK" && t["on"] == json!(["start", "stop"]), "{t:#}");
    let last_start = &t["lastRuns"]["start"];
    ensure!(
        last_start["result"].as_str().is_some_and(|r| r.eq_ignore_ascii_case("succeeded")),
        "the last start run succeeded: {t:#}"
    );
    ensure!(t["lastRuns"].get("stop").is_none(), "no stop run yet: {t:#}");
    ensure!(t["variables"] == 0, "hook published nothing: {t:#}");
    let runs_json = status["runs"].as_array().context("runs")?;
    ensure!(!runs_json.is_empty(), "the start run is listed: {status:#}");
    let run = &runs_json[0];
    ensure!(run["job"] == "hook" && run["event"] == "start" && run["phase"] == "Succeeded", "{run:#}");
    ensure!(last_start["run"] == run["name"], "lastRuns names the run: {status:#}");
    let plain = status["jobs"].as_array().context("jobs")?;
    ensure!(plain.len() == 1, "one plain job: {status:#}");
    ensure!(plain[0]["name"] == "emit" && plain[0]["jobId"] == "EMIT" && plain[0]["capture"] == true, "{status:#}");
    ensure!(plain[0]["phase"] == "Succeeded" && plain[0]["variables"] == 2, "{status:#}");
    ensure!(status["outputs"]["jobs"] == 1, "{status:#}");

    // env status, for people.
    let ran = plugin(&["env", "status", &name]).await?.success()?;
    let text = &ran.stdout;
    for line in [format!("Environment: {name}"), "Project:     shop".to_string(), "State:       started".to_string()] {
        ensure!(text.lines().any(|l| l == line), "status shows {line:?}: {ran}");
    }
    ensure!(text.lines().any(|l| l.starts_with("Status:      started")), "status line: {ran}");
    let rows = table(text, &["NAME", "JOBID", "ON", "START", "STOP", "DELETE", "VARIABLES"])?;
    let hook = row(&rows, "hook")?;
    ensure!(hook[1] == "HOOK" && hook[2] == "start,stop", "{hook:?}");
    ensure!(hook[3].to_lowercase().starts_with("succeeded"), "START column: {hook:?}");
    ensure!(hook[4] == "never" && hook[5] == "-" && hook[6] == "0", "{hook:?}");
    let rows = table(text, &["NAME", "JOB", "EVENT", "STATUS", "DURATION", "AGE"])?;
    let run_row = row(&rows, run["name"].as_str().unwrap_or_default())?;
    ensure!(run_row[1] == "hook" && run_row[2] == "start" && run_row[3] == "Succeeded", "{run_row:?}");
    let rows = table(text, &["NAME", "JOBID", "STATUS", "VARIABLES", "AGE"])?;
    let emit = row(&rows, "emit")?;
    ensure!(emit[1] == "EMIT" && emit[2] == "Succeeded" && emit[3] == "2", "{emit:?}");
    ran.says(
        true,
        &[
            "Outputs: 2 variables from 1 job (1 in ConfigMap lifecycle-outputs, 1 sensitive in Secret lifecycle-outputs)",
            &format!("kubectl lifecycle outputs {name}"),
        ],
    )?;
    ensure!(!text.contains("pw-create") && !ran.stderr.contains("pw-create"), "status shows no value: {ran}");

    // env list -o json: the environment with its project, state, status and template count.
    let list = plugin(&["env", "list", "-o", "json"]).await?.success()?.json()?;
    let envs = list["environments"].as_array().context("environments")?;
    let e = envs.iter().find(|e| e["namespace"] == name.as_str()).with_context(|| format!("{name} in {list:#}"))?;
    ensure!(e["environment"] == name.as_str() && e["project"] == "shop" && e["state"] == "started", "{e:#}");
    ensure!(e["status"].as_str().is_some_and(|s| s.starts_with("started")), "{e:#}");
    ensure!(e["templates"] == 1 && e["terminating"] == false && e["created"].is_string(), "{e:#}");

    // env list, for people; -o wide adds the deploy id.
    let ran = plugin(&["env", "list"]).await?.success()?;
    let rows = table(&ran.stdout, &["NAME", "ENVIRONMENT", "PROJECT", "STATE", "STATUS", "TEMPLATES", "AGE"])?;
    let r = row(&rows, &name)?;
    ensure!(r[1] == name && r[2] == "shop" && r[3] == "started" && r[4].starts_with("started") && r[5] == "1", "{r:?}");
    let ran = plugin(&["env", "list", "-o", "wide"]).await?.success()?;
    let rows = table(&ran.stdout, &["NAME", "ENVIRONMENT", "PROJECT", "STATE", "STATUS", "TEMPLATES", "AGE", "DEPLOY-ID"])?;
    ensure!(row(&rows, &name)?[7] == "<none>", "no deploy id yet: {ran}");
    Ok(())
}

// --- env stop, start, redeploy, delete against the controller ----------------------------------

#[tokio::test]
async fn plugin_env_stop_start_redeploy_delete_wait_for_the_controller() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "plugin-transitions").await?;
    let name = ns.name().to_string();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    ns.create(&lifecycle_job("hook", "start,stop,delete", "echo ran", false)).await?;
    // Its creation in a started environment is a start event.
    wait_runs_complete(&client, &name, "hook", "start", Runs::AtLeast(1), TIMEOUT).await?;
    wait_status_idle(&client, &name, "started", TIMEOUT).await?;

    // stop
    let ran = plugin_within(WAITING, &["env", "stop", &name, "--wait", "--timeout", WAIT_FLAG]).await?.success()?;
    ran.says(
        true,
        &[
            &format!("environment {name}: state stopped (was started)"),
            "stop jobs: hook; then Deployments and StatefulSets scale to zero",
            &format!("environment {name} is stopped"),
        ],
    )?;
    ran.says(false, &["status: "])?;
    let n = namespaces.get(&name).await?;
    ensure!(label(&n, LABEL_STATE).as_deref() == Some("stopped"), "state label: {:?}", n.labels());
    ensure!(n.annotations().get(ANNOTATION_STATUS).is_some_and(|s| s.starts_with("stopped")), "{:?}", n.annotations());
    let stops = runs(&client, &name, "hook", "stop").await?;
    ensure!(stops.len() == 1 && succeeded(&stops[0]), "one succeeded stop run: {:?}", names(&stops));

    // start
    let before = names(&runs(&client, &name, "hook", "start").await?);
    let ran = plugin_within(WAITING, &["env", "start", &name, "--wait", "--timeout", WAIT_FLAG]).await?.success()?;
    ran.says(true, &[&format!("environment {name}: state started (was stopped)"), &format!("environment {name} is started")])?;
    let n = namespaces.get(&name).await?;
    ensure!(label(&n, LABEL_STATE).as_deref() == Some("started"), "state label: {:?}", n.labels());
    let starts = runs(&client, &name, "hook", "start").await?;
    let new: Vec<&Job> = starts.iter().filter(|j| !before.contains(&j.name_any())).collect();
    ensure!(new.len() == 1 && succeeded(new[0]), "one new, succeeded start run: {:?}", names(&starts));

    // start again: nothing to do, and the plugin says how to rerun the start jobs.
    let ran = plugin(&["env", "start", &name]).await?.success()?;
    ran.says(true, &[&format!("environment {name} is already started")])?;
    ran.says(false, &[&format!("kubectl lifecycle env redeploy {name}")])?;

    // redeploy
    let before = names(&runs(&client, &name, "hook", "start").await?);
    let ran = plugin_within(WAITING, &["env", "redeploy", &name, "--wait", "--timeout", WAIT_FLAG]).await?.success()?;
    ran.says(
        true,
        &[&format!("environment {name}: redeploy requested ({ANNOTATION_DEPLOY_ID} "), &format!("environment {name} is started")],
    )?;
    let n = namespaces.get(&name).await?;
    let deploy_id = n.annotations().get(ANNOTATION_DEPLOY_ID).cloned().context("deploy-id annotation")?;
    ran.says(true, &[&format!("({ANNOTATION_DEPLOY_ID} {deploy_id})")])?;
    ensure!(label(&n, LABEL_STATE).as_deref() == Some("started"), "state label: {:?}", n.labels());
    let starts = runs(&client, &name, "hook", "start").await?;
    let new: Vec<&Job> = starts.iter().filter(|j| !before.contains(&j.name_any())).collect();
    ensure!(new.len() == 1 && succeeded(new[0]), "one new, succeeded start run: {:?}", names(&starts));

    // delete: watch for the delete run meanwhile, since the namespace (and the run) go at the end.
    let seen_delete_runs = std::sync::Arc::new(Mutex::new(BTreeSet::new()));
    let stop_watching = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (client, name, seen, stop) = (client.clone(), name.clone(), seen_delete_runs.clone(), stop_watching.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(list) = runs(&client, &name, "hook", "delete").await {
                    seen.lock().unwrap().extend(list.iter().map(|j| j.name_any()));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    });
    let ran = plugin_within(WAITING, &["env", "delete", &name, "--wait", "--timeout", WAIT_FLAG]).await;
    stop_watching.store(true, Ordering::Relaxed);
    watcher.await?;
    let ran = ran?.success()?;
    ran.says(
        true,
        &[
            &format!("environment {name}: state deleted (was started)"),
            "delete jobs: hook; then the namespace is deleted",
            &format!("environment {name} is deleted: namespace gone"),
        ],
    )?;
    ensure!(namespaces.get_opt(&name).await?.is_none(), "the namespace is gone");
    let seen = seen_delete_runs.lock().unwrap().clone();
    ensure!(seen.len() == 1, "exactly one delete run was seen before the namespace went: {seen:?}");
    Ok(())
}

// --- run and logs ------------------------------------------------------------------------------

#[tokio::test]
async fn plugin_run_forces_a_run_and_prints_its_log_and_refuses_what_cannot_run() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "plugin-run").await?;
    let name = ns.name().to_string();
    ns.create(&lifecycle_job("seed", "start", "echo ran", false)).await?;
    // A plain Job, kept suspended: it never runs, and it is no lifecycle job.
    let mut plain = lifecycle_job("plain", "start", "true", false);
    plain.metadata.annotations = None;
    plain.spec.as_mut().unwrap().suspend = Some(true);
    ns.create(&plain).await?;
    wait_runs_complete(&client, &name, "seed", "start", Runs::AtLeast(1), TIMEOUT).await?;
    let before = names(&runs(&client, &name, "seed", "start").await?);

    // run --wait --logs: the run's log line, then the agent's section, then the verdict.
    let ran =
        plugin_within(WAITING, &["run", "seed", "--event", "start", "-n", &name, "--wait", "--logs", "--timeout", WAIT_FLAG])
            .await?
            .success()?;
    ran.says(
        true,
        &[
            &format!("forced start run of lifecycle job seed requested in namespace {name}"),
            "==> lifecycle-agent (output capture) <==",
            &format!("kubectl lifecycle outputs seed -n {name}"),
        ],
    )?;
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let log_at = lines.iter().position(|l| *l == "ran").with_context(|| format!("the run's log line: {ran}"))?;
    let agent_at = lines.iter().position(|l| l.starts_with("==> lifecycle-agent")).context("agent header")?;
    ensure!(log_at < agent_at, "the main container's log comes first: {ran}");
    let run_name = lines
        .iter()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split_once(" succeeded")).map(|(n, _)| n.to_string()))
        .with_context(|| format!("`run NAME succeeded`: {ran}"))?;
    ensure!(!before.contains(&run_name), "a new run, not the first one: {run_name} in {before:?}");
    let job = ns.api::<Job>().get(&run_name).await?;
    ensure!(succeeded(&job), "the run {run_name} succeeded");
    ensure!(job.labels().get(LABEL_JOB).map(String::as_str) == Some("seed"), "{:?}", job.labels());
    ensure!(job.labels().get(LABEL_EVENT).map(String::as_str) == Some("start"), "{:?}", job.labels());
    let templates = ns.api::<Job>();
    wait_until("the controller cleared force-run", TIMEOUT, || async {
        Ok(templates.get("seed").await?.annotations().get(ANNOTATION_FORCE_RUN).is_none().then_some(()))
    })
    .await?;

    // logs of the template: its latest run of that event.
    let ran = plugin(&["logs", "seed", "--event", "start", "-n", &name]).await?.success()?;
    ensure!(ran.stdout.lines().any(|l| l == "ran"), "the run's log: {ran}");
    ran.says(true, &["==> lifecycle-agent (output capture) <=="])?;
    ran.says(false, &[&format!("run {run_name} (event start")])?;

    // run without --wait: requested, and how to follow it.
    let ran = plugin(&["run", "seed", "-e", "start", "-n", &name]).await?.success()?;
    ran.says(true, &[&format!("kubectl lifecycle logs seed --event start -n {name} -f")])?;

    // What cannot run, and what to do instead.
    let ran = plugin(&["run", "plain", "--event", "start", "-n", &name]).await?.exit(1)?;
    ran.says(false, &["job plain is not a lifecycle job", &format!("{ANNOTATION_ON}: start")])?;
    let ran = plugin(&["run", "seed", "--event", "stop", "-n", &name]).await?.exit(1)?;
    ran.says(false, &["lifecycle job seed runs on start, not on stop", "--event start"])?;
    let ran = plugin(&["run", "nope", "--event", "start", "-n", &name]).await?.exit(1)?;
    ran.says(false, &[&format!("job nope not found in namespace {name}"), &format!("lifecycle jobs in {name}: seed")])?;
    let ran = plugin(&["run", &run_name, "--event", "start", "-n", &name]).await?.exit(1)?;
    ran.says(false, &["not a lifecycle job", &format!("kubectl lifecycle run seed --event start -n {name}")])?;
    let ran = plugin(&["logs", "seed", "--event", "stop", "-n", &name]).await?.exit(1)?;
    ran.says(false, &["lifecycle job seed has no run of event stop"])?;
    Ok(())
}

// --- outputs and logs of a plain job -----------------------------------------------------------

#[tokio::test]
async fn plugin_outputs_mask_sensitive_values_and_logs_show_the_agent() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "plugin-outputs").await?;
    let name = ns.name().to_string();
    let password = format!("pw-{}-{}", unique_suffix(), unique_suffix());
    let content =
        format!(r#"{{"DB_HOST": {{"value": "db.internal"}}, "DB_PASS": {{"value": "{password}", "sensitive": true}}}}"#);
    ns.create(&emitting_job("emit", &content)).await?;
    wait_for_job_complete(&client, &name, "emit", TIMEOUT).await?;
    wait_published(&ns, "emit's outputs", |cm, secret| cm.len() == 2 && secret.len() == 2).await?;
    let full = |k: &str| format!("QOVERY_OUTPUT_JOB_EMIT_{k}");

    // outputs JOB -o json: four variables (two full names, two aliases), the password masked.
    let ran = plugin(&["outputs", "emit", "-n", &name, "-o", "json"]).await?.success()?;
    ensure!(!ran.stdout.contains(&password) && !ran.stderr.contains(&password), "the password is masked: {ran}");
    let report = ran.json()?;
    ensure!(report["namespace"] == name.as_str() && report["job"] == "emit" && report["jobId"] == "EMIT", "{report:#}");
    ensure!(report["sensitiveReadable"] == true && report["sensitiveShown"] == false, "{report:#}");
    let vars: BTreeMap<String, Value> = report["variables"]
        .as_array()
        .context("variables")?
        .iter()
        .map(|v| (v["name"].as_str().unwrap_or_default().to_string(), v.clone()))
        .collect();
    let want: BTreeSet<String> = [full("DB_HOST"), full("DB_PASS"), "DB_HOST".into(), "DB_PASS".into()].into();
    ensure!(vars.keys().cloned().collect::<BTreeSet<_>>() == want, "variables: {report:#}");
    let host = &vars[&full("DB_HOST")];
    ensure!(host["value"] == "db.internal" && host["sensitive"] == false && host["masked"] == false, "{host:#}");
    ensure!(host["source"] == "ConfigMap" && host["jobId"] == "EMIT" && host["aliasOf"].is_null(), "{host:#}");
    let pass = &vars[&full("DB_PASS")];
    ensure!(pass["value"] == "******" && pass["sensitive"] == true && pass["masked"] == true, "{pass:#}");
    ensure!(pass["source"] == "Secret", "{pass:#}");
    let alias = &vars["DB_PASS"];
    ensure!(alias["aliasOf"] == full("DB_PASS").as_str() && alias["value"] == "******", "{alias:#}");
    ensure!(vars["DB_HOST"]["aliasOf"] == full("DB_HOST").as_str() && vars["DB_HOST"]["value"] == "db.internal", "{vars:#?}");

    // outputs JOB, for people.
    let ran = plugin(&["outputs", "emit", "-n", &name]).await?.success()?;
    ran.says(
        true,
        &[&format!("Job emit in namespace {name}: JOBID EMIT, variables QOVERY_OUTPUT_JOB_EMIT_<KEY> and their <KEY> aliases")],
    )?;
    let rows = table(&ran.stdout, &["NAME", "VALUE", "SENSITIVE", "JOB"])?;
    ensure!(rows.len() == 4, "four rows: {ran}");
    ensure!(row(&rows, &full("DB_HOST"))?[1..] == ["db.internal", "no", "EMIT"], "{rows:?}");
    ensure!(row(&rows, &full("DB_PASS"))?[1..] == ["******", "yes", "EMIT"], "{rows:?}");
    ensure!(row(&rows, "DB_PASS")?[1..] == ["******", "yes", "EMIT"], "{rows:?}");
    ensure!(!ran.stdout.contains(&password), "masked: {ran}");

    // outputs NS: the whole environment (the target is no Job of the current namespace).
    let ran = plugin(&["outputs", &name, "-o", "json"]).await?.success()?;
    ensure!(!ran.stdout.contains(&password), "masked: {ran}");
    let env = ran.json()?;
    ensure!(env["namespace"] == name.as_str() && env.get("job").is_none() && env.get("jobId").is_none(), "{env:#}");
    let names: BTreeSet<String> =
        env["variables"].as_array().context("variables")?.iter().filter_map(|v| v["name"].as_str().map(String::from)).collect();
    ensure!(names == want, "{env:#}");
    let ran = plugin(&["outputs", &name]).await?.success()?;
    let rows = table(&ran.stdout, &["NAME", "VALUE", "SENSITIVE", "JOB"])?;
    ensure!(rows.len() == 4 && row(&rows, "DB_PASS")?[1] == "******", "{ran}");

    // --show-sensitive: the admin may read the Secret.
    let ran = plugin(&["outputs", &name, "--show-sensitive", "-o", "json"]).await?.success()?;
    let env = ran.json()?;
    ensure!(env["sensitiveShown"] == true, "{env:#}");
    let pass = env["variables"].as_array().context("variables")?.iter().find(|v| v["name"] == full("DB_PASS").as_str());
    ensure!(pass.is_some_and(|p| p["value"] == password.as_str() && p["masked"] == false), "{env:#}");
    let ran = plugin(&["outputs", "emit", "-n", &name, "--show-sensitive", "-o", "wide"]).await?.success()?;
    let rows = table(&ran.stdout, &["NAME", "VALUE", "SENSITIVE", "JOB", "ALIAS-OF", "SOURCE"])?;
    let r = row(&rows, "DB_PASS")?;
    ensure!(r[1] == password && r[4] == full("DB_PASS") && r[5] == "Secret", "{ran}");

    // logs JOB: the main container, then the agent's section, which says it published.
    let ran = plugin(&["logs", "emit", "-n", &name]).await?.success()?;
    let lines: Vec<&str> = ran.stdout.lines().collect();
    let main_at = lines.iter().position(|l| *l == "emitting outputs").with_context(|| format!("main log: {ran}"))?;
    let agent_at = lines
        .iter()
        .position(|l| *l == "==> lifecycle-agent (output capture) <==")
        .with_context(|| format!("agent header: {ran}"))?;
    ensure!(main_at < agent_at, "main container first: {ran}");
    ensure!(lines[agent_at + 1..].iter().any(|l| l.contains("published")), "the agent says it published: {ran}");
    ensure!(!ran.stdout.contains(&password), "no log shows the password: {ran}");
    let ran = plugin(&["logs", "emit", "-n", &name, "--tail", "1"]).await?.success()?;
    ensure!(ran.stdout.lines().filter(|l| !l.is_empty() && !l.starts_with("==>")).count() == 2, "one line each: {ran}");
    let ran = plugin(&["logs", "nope", "-n", &name]).await?.exit(1)?;
    ran.says(false, &[&format!("job nope not found in namespace {name}")])?;

    // An unknown target: what to give instead.
    let ran = plugin(&["outputs", "nope", "-n", &name]).await?.exit(1)?;
    ran.says(false, &["no job nope", "-n NAMESPACE"])?;
    Ok(())
}

// --- clone -------------------------------------------------------------------------------------

#[tokio::test]
async fn plugin_clone_copies_a_lifecycle_job_and_reports_what_was_not_copied() -> Result<()> {
    let client = client().await?;
    let src = environment(&client, "plugin-clone-src").await?;
    let dst = environment(&client, "plugin-clone-dst").await?;
    let (s, d) = (src.name().to_string(), dst.name().to_string());
    src.create::<Secret>(&obj(json!({
        "metadata": {"name": "db-credentials"},
        "stringData": {"password": "not-copied"}
    })))
    .await?;
    // A lifecycle job on stop only: it does not run while the environments are started.
    let mut seed = lifecycle_job("seed", "stop", "echo ran", false);
    seed.metadata.annotations.get_or_insert_default().insert(ANNOTATION_JOB_ID.into(), "zf138d9c8".into());
    seed.metadata.labels = Some([("app".to_string(), "shop".to_string())].into());
    seed.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0].env = Some(vec![obj(json!({
        "name": "DB_PASS", "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}}
    }))]);
    src.create(&seed).await?;

    let ran = plugin(&["clone", "seed", "-n", &s, "--to", &d]).await?.success()?;
    ran.says(
        true,
        &[
            &format!("Cloned lifecycle job seed (namespace {s}) to namespace {d} as seed"),
            "Copied:",
            &format!("annotation {ANNOTATION_ON}=stop"),
            "Not copied:",
            // admission recorded the JOBID it decided: normalised
            &format!("annotation {ANNOTATION_JOB_ID}=ZF138D9C8"),
            &format!("Secret db-credentials (env DB_PASS of container main): MISSING in {d}"),
            &format!("JOBID in {d}: SEED (variables QOVERY_OUTPUT_JOB_SEED_<KEY>); in {s}: ZF138D9C8"),
        ],
    )?;
    ran.says(false, &[&format!("warning: not copied, and not (known to be) in {d}: Secret db-credentials")])?;
    // The copy is a template in the other environment; the Secret stayed behind.
    let copy = dst.api::<Job>().get("seed").await?;
    ensure!(copy.annotations().get(ANNOTATION_ON).map(String::as_str) == Some("stop"), "{:?}", copy.annotations());
    // The source's job-id is not copied: admission records the copy's own JOBID, from its name.
    ensure!(
        copy.annotations().get(ANNOTATION_JOB_ID).map(String::as_str) == Some("SEED"),
        "job-id not copied: {:?}",
        copy.annotations()
    );
    ensure!(copy.labels().get("app").map(String::as_str) == Some("shop"), "{:?}", copy.labels());
    let spec = copy.spec.clone().context("spec")?;
    ensure!(spec.suspend == Some(true), "the copy is a suspended template");
    let env = spec.template.spec.context("pod spec")?.containers[0].env.clone().unwrap_or_default();
    ensure!(
        env.iter().any(|e| e.name == "DB_PASS"
            && e.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).is_some_and(|r| r.name == "db-credentials")),
        "the env reference is copied: {env:?}"
    );
    ensure!(dst.api::<Secret>().get_opt("db-credentials").await?.is_none(), "the Secret is not copied");

    // --dry-run -o json: the would-be Job on stdout, the report on stderr, nothing created.
    let ran = plugin(&["clone", "seed", "-n", &s, "--to", &d, "--name", "seed-2", "--keep-job-id", "--dry-run", "-o", "json"])
        .await?
        .success()?;
    let job = ran.json()?;
    ensure!(job["metadata"]["name"] == "seed-2" && job["metadata"]["namespace"] == d.as_str(), "{job:#}");
    ensure!(job["metadata"]["annotations"][ANNOTATION_JOB_ID] == "ZF138D9C8", "--keep-job-id: {job:#}");
    ensure!(job["spec"]["suspend"] == true, "{job:#}");
    ran.says(false, &["Would clone (dry run, nothing created)"])?;
    ensure!(dst.api::<Job>().get_opt("seed-2").await?.is_none(), "a dry run creates nothing");

    // Cloning again over the copy is refused, with what to do.
    let ran = plugin(&["clone", "seed", "-n", &s, "--to", &d]).await?.exit(1)?;
    ran.says(false, &[&format!("a job seed already exists in namespace {d}"), "--name"])?;
    // Into a namespace that is not an environment.
    let plain = TestNamespace::new(&client, "plugin-clone-plain").await?;
    let ran = plugin(&["clone", "seed", "-n", &s, "--to", plain.name()]).await?.exit(1)?;
    ran.says(false, &[&format!("namespace {} is not an environment", plain.name())])?;
    Ok(())
}
