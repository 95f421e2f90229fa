//! The example environment (`examples/preview-environment`), exactly as `make run` shows it:
//! applied with `scripts/example.sh apply` into a namespace of its own, its outputs checked where
//! a user would look (the outputs objects, the web pod's own environment, its page), then every
//! command that `scripts/example.sh next` prints run as printed, in order, each checked against
//! what the printed text says to expect. A change to the printed steps fails here until the test
//! knows what to expect of it, so the steps a newcomer copies never rot.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::LABEL_STATE;
use lifecycle_e2e::lifecycle::{live_and_ready, patch_namespace, published_of, runs};
use lifecycle_e2e::process::{self, Ran, read_all};
use lifecycle_e2e::{DeleteOnDrop, SUITE_LABEL, client, exec, job_logs, unique_suffix, wait_until};
use serde_json::json;

/// Bound on a command that waits for the controller (`--wait` transitions, `apply`).
const SLOW: Duration = Duration::from_secs(300);
/// Bound on the checks after a step: what the step waited for is already there, or nearly.
const SETTLE: Duration = Duration::from_secs(120);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

// --- running commands as a user would ----------------------------------------------------------

/// The environment of every command (see [`process::user_env`]).
fn command_env() -> Result<Vec<(String, String)>> {
    process::user_env()
}

fn spawn_shell(line: &str, dir: &Path) -> Result<Child> {
    Command::new("sh")
        .args(["-c", line])
        .current_dir(dir)
        .envs(command_env()?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{line}`"))
}

/// Runs a shell command line from the repository's root, within `timeout`.
fn run_blocking(line: &str, timeout: Duration) -> Result<Ran> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", line]).current_dir(repo()).envs(command_env()?);
    process::run(cmd, line.to_string(), timeout)
}

async fn run(line: &str, timeout: Duration) -> Result<Ran> {
    let line = line.to_string();
    tokio::task::spawn_blocking(move || run_blocking(&line, timeout)).await?
}

/// `kubectl port-forward ...` as printed: started, then the page fetched through it, then stopped.
fn fetch_through_port_forward(line: &str, local_port: u16) -> Result<String> {
    let mut child = spawn_shell(&format!("exec {line}"), &repo())?;
    let err = read_all(child.stderr.take());
    let result = (|| {
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut first = String::new();
        stdout.read_line(&mut first)?;
        ensure!(first.contains("Forwarding from"), "port-forward said {first:?}");
        // Keep reading: kubectl writes a line per connection, and dies of a closed pipe.
        drop(read_all(Some(stdout)));
        let mut conn = TcpStream::connect(("127.0.0.1", local_port))?;
        conn.set_read_timeout(Some(Duration::from_secs(20)))?;
        conn.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut page = String::new();
        conn.read_to_string(&mut page)?;
        Ok(page)
    })();
    let _ = child.kill();
    let _ = child.wait();
    result.with_context(|| format!("`{line}`: {}", err.join().unwrap_or_default()))
}

// --- what the environment holds ----------------------------------------------------------------

/// The variables the running, ready web pods really have (`env` in each), once every pod of
/// the Deployment is one of them: one map per pod.
async fn web_pod_variables(client: &Client, ns: &str) -> Result<Vec<BTreeMap<String, String>>> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&ListParams::default().labels("app=web")).await?.items;
    let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    ensure!(!live.is_empty() && live.iter().all(|p| live_and_ready(p)), "web pods not all ready: {}", live.len());
    let mut all = Vec::new();
    for p in live {
        // `env` (Debian's busybox has no printenv): one NAME=value per line; ours hold no newline.
        let out = exec(client, ns, &p.name_any(), Some("web"), &["env"], Duration::from_secs(20)).await?;
        ensure!(out.exit_code == 0, "env in {} exited {}: {}", p.name_any(), out.exit_code, out.stderr);
        let vars = out.stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        all.push(vars);
    }
    Ok(all)
}

/// Waits until every web pod runs with exactly the environment's current outputs, and returns them.
async fn wait_web_has_outputs(client: &Client, ns: &str, what: &str) -> Result<(BTreeMap<String, String>, String)> {
    wait_until(what, SETTLE, || async {
        let (cm, secret) = published_of(client, ns).await?;
        let password = secret.get("DATABASE_PASSWORD").cloned().unwrap_or_default();
        let pods = web_pod_variables(client, ns).await?;
        let all_current = pods.iter().all(|vars| {
            vars.get("DATABASE_PASSWORD") == Some(&password)
                && ["DATABASE_HOST", "SEED_ROWS", "SEEDED_AT", "QOVERY_OUTPUT_JOB_POSTGRES_DATABASE_HOST"]
                    .iter()
                    .all(|k| vars.get(*k) == cm.get(*k))
        });
        Ok((all_current && !password.is_empty()).then_some((cm, password)))
    })
    .await
}

async fn web_replicas(client: &Client, ns: &str) -> Result<(i32, i32)> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns).get("web").await?;
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
    Ok((wanted, ready))
}

/// The log of the latest run of `template` for `event`.
async fn last_run_log(client: &Client, ns: &str, template: &str, event: &str) -> Result<String> {
    let mut list = runs(client, ns, template, event).await?;
    list.sort_by_key(|j| j.metadata.creation_timestamp.clone());
    let last = list.last().ok_or_else(|| anyhow!("no {event} run of {template}"))?;
    job_logs(client, ns, &last.name_any(), Some("main")).await
}

// --- the test ------------------------------------------------------------------------------------

/// The steps `scripts/example.sh next NS` prints: command lines (two spaces, then `kubectl`).
fn printed_steps(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with("  kubectl ")).map(|l| l.trim().to_string()).collect()
}

#[tokio::test]
async fn the_example_environment_runs_as_make_run_shows_it() -> Result<()> {
    let client = client().await?;
    let ns = format!("e2e-example-{}", unique_suffix());
    let _cleanup = DeleteOnDrop(ns.clone());

    // make run: apply and wait, show, next.
    let applied = run(&format!("scripts/example.sh apply {ns}"), SLOW).await?.success()?;
    patch_namespace(&client, &ns, json!({"metadata": {"labels": {SUITE_LABEL: "true"}}})).await?;

    // Stage 1 published the database, stage 2 saw it and published the seed.
    let host = format!("db-{ns}.postgres.internal");
    let (cm, secret) = published_of(&client, &ns).await?;
    ensure!(cm.get("DATABASE_HOST") == Some(&host), "DATABASE_HOST not published as {host}: {cm:?}\n{}", applied.all());
    ensure!(cm.get("QOVERY_OUTPUT_JOB_POSTGRES_DATABASE_HOST") == Some(&host), "full variable name missing: {cm:?}");
    ensure!(cm.get("SEED_ROWS").map(String::as_str) == Some("42"), "seed did not publish SEED_ROWS: {cm:?}");
    ensure!(!cm.contains_key("DATABASE_PASSWORD"), "the password must not be in the ConfigMap");
    let password = secret.get("DATABASE_PASSWORD").cloned().context("no DATABASE_PASSWORD in the Secret")?;
    ensure!(password.len() == 24, "the password is 18 random bytes in base64: {} characters", password.len());
    let seed_log = last_run_log(&client, &ns, "seed", "start").await?;
    ensure!(seed_log.contains(&format!("connecting to {host}")), "seed (stage 2) did not see stage 1's output: {seed_log}");

    // The outputs reach the web pod, without anyone restarting it.
    wait_web_has_outputs(&client, &ns, "the web pod runs with the example's outputs").await?;

    // What make run prints: runs and results, outputs masked, web's variables; never the password.
    let shown = run(&format!("scripts/example.sh show {ns}"), SLOW).await?.success()?;
    let text = shown.all();
    for piece in ["postgres", "seed", "DATABASE_HOST", &host, "SEED_ROWS", "DATABASE_PASSWORD=<set, 24 characters>"] {
        ensure!(text.contains(piece), "`show` should print {piece:?}: {shown}");
    }
    ensure!(!text.contains(&password), "`show` printed the password: {shown}");

    // The next steps, as printed.
    let next = run(&format!("scripts/example.sh next {ns}"), SLOW).await?.success()?;
    let steps = printed_steps(&next.stdout);
    let expected = [
        format!("kubectl lifecycle run seed --event start -n {ns} --wait --logs"),
        format!("kubectl lifecycle env stop {ns} --wait"),
        format!("kubectl lifecycle env start {ns} --wait"),
        format!("kubectl lifecycle env redeploy {ns} --wait"),
        format!("kubectl -n {ns} port-forward service/web 8080:80"),
        format!("kubectl delete namespace {ns}"),
        format!("kubectl lifecycle env delete {ns} --wait"),
    ];
    ensure!(steps == expected, "the printed steps changed; teach this test what to expect of them:\n{}", next.stdout);

    for step in &steps {
        eprintln!("next step: {step}");
        check_step(&client, &ns, &host, step).await.with_context(|| format!("printed step `{step}`"))?;
    }
    Ok(())
}

/// Runs one printed step and checks what its printed text says to expect.
async fn check_step(client: &Client, ns: &str, host: &str, step: &str) -> Result<()> {
    let words: Vec<&str> = step.split_whitespace().collect();
    match words.as_slice() {
        ["kubectl", "lifecycle", "run", "seed", ..] => {
            let before = published_of(client, ns).await?.0.get("SEEDED_AT").cloned();
            let ran = run(step, SLOW).await?.success()?;
            ensure!(ran.all().contains(&format!("connecting to {host}")), "the forced run's log: {ran}");
            wait_until("SEEDED_AT changes", SETTLE, || async {
                let now = published_of(client, ns).await?.0.get("SEEDED_AT").cloned();
                Ok((now.is_some() && now != before).then_some(()))
            })
            .await?;
        }
        ["kubectl", "lifecycle", "env", "stop", ..] => {
            run(step, SLOW).await?.success()?;
            let log = last_run_log(client, ns, "postgres", "stop").await?;
            ensure!(log.contains(&format!("pausing database db-{ns}")), "postgres stop run log: {log}");
            wait_until("web is scaled to 0", SETTLE, || async { Ok((web_replicas(client, ns).await? == (0, 0)).then_some(())) })
                .await?;
        }
        ["kubectl", "lifecycle", "env", "start" | "redeploy", ..] => {
            let before = published_of(client, ns).await?.1.get("DATABASE_PASSWORD").cloned();
            run(step, SLOW).await?.success()?;
            let (_, password) = wait_web_has_outputs(client, ns, "web runs with the new outputs").await?;
            ensure!(Some(&password) != before.as_ref(), "postgres did not make a new password");
            let (wanted, _) = web_replicas(client, ns).await?;
            ensure!(wanted == 1, "web should be back at 1 replica, wants {wanted}");
        }
        ["kubectl", _, _, "port-forward", ..] => {
            let line = step.to_string();
            let page = tokio::task::spawn_blocking(move || fetch_through_port_forward(&line, 8080)).await??;
            for piece in [format!("DATABASE_HOST={host}"), "DATABASE_PASSWORD=<set, 24 characters>".into(), "SEED_ROWS=42".into()]
            {
                ensure!(page.contains(&piece), "the page should show {piece:?}: {page}");
            }
        }
        ["kubectl", "delete", "namespace", ..] => {
            let ran = run(step, SLOW).await?;
            ensure!(ran.code != 0, "deleting the namespace directly should be refused: {ran}");
            ensure!(
                ran.stderr.contains(&format!("kubectl lifecycle env delete {ns}")),
                "the refusal should say what to run: {ran}"
            );
            let n = Api::<Namespace>::all(client.clone()).get(ns).await?;
            ensure!(n.metadata.deletion_timestamp.is_none(), "the refused delete deleted the namespace anyway");
            ensure!(n.labels().get(LABEL_STATE).map(String::as_str) != Some("deleted"), "the refusal should change nothing");
        }
        ["kubectl", "lifecycle", "env", "delete", ..] => {
            let ran = run(step, SLOW).await?.success()?;
            let gone = Api::<Namespace>::all(client.clone()).get_opt(ns).await?.is_none();
            ensure!(gone, "the namespace should be gone after `env delete --wait`: {ran}");
        }
        _ => bail!("no expectation known for this step"),
    }
    Ok(())
}
