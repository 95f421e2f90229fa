//! The Helm chart on the real cluster, the way a platform team uses it:
//! `helm install --wait` in place of `kubectl apply -k` (its install check
//! makes it return once the webhooks answer), output capture and a
//! lifecycle run against it, `helm upgrade` with a changed value while pods
//! are being admitted (none may fail, the certificates stay), and
//! `helm uninstall` leaving no webhook configuration behind.
//!
//! It replaces the installation every other test uses, so it runs alone with
//! the disruptive tests, and leaves the product installed from
//! `manifests/overlays/local` again, also when it fails.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use lifecycle_contract::names::{ANNOTATION_ON, SYSTEM_NAMESPACE};
use lifecycle_e2e::lifecycle::environment;
use lifecycle_e2e::{TIMEOUT, client, events_for, unique_suffix, wait_until};

use super::operations::{
    LOCAL_OVERLAY, SERVER, Stream, assert_nothing_left, job_warnings, kubectl_blocking, output_job, repo_root, run_blocking,
    strict_client, system_api, tls_state, wait_published, wait_server_settled,
};

const RELEASE: &str = "lifecycle-jobs";
/// Where the release record lives (the chart creates and owns the system namespace).
const RELEASE_NAMESPACE: &str = "default";
const CHART: &str = "charts/lifecycle-jobs";
/// The chart's values for the local cluster (the images `make images` imports).
const LOCAL_VALUES: &str = "charts/lifecycle-jobs/ci/local-values.yaml";

/// helm: `$HELM`, else the one tests/tools/build-tools.sh builds (cached by version).
fn helm_path() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("HELM").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    let dir = run_blocking(&repo_root().join("tests/tools/build-tools.sh"), &[])?;
    Ok(PathBuf::from(dir.lines().last().context("build-tools.sh printed nothing")?.trim()).join("helm"))
}

fn helm_blocking(args: &[&str]) -> Result<String> {
    let mut all = vec!["--namespace", RELEASE_NAMESPACE];
    all.extend_from_slice(args);
    run_blocking(&helm_path()?, &all)
}

async fn helm(args: &[&str]) -> Result<String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || helm_blocking(&args.iter().map(String::as_str).collect::<Vec<_>>())).await?
}

/// Waits until the system namespace is gone or active (not terminating).
fn wait_namespace_settled_blocking(want_gone: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let phase =
            kubectl_blocking(&["get", "namespace", SYSTEM_NAMESPACE, "--ignore-not-found", "-o", "jsonpath={.status.phase}"])?;
        let phase = phase.trim();
        if phase.is_empty() || (!want_gone && phase == "Active") {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "namespace {SYSTEM_NAMESPACE} is still {phase} after 180 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Puts the product back as every other test expects it (installed from
/// `manifests/overlays/local`) when dropped: the Helm release, if any, is
/// uninstalled first.
struct BackToManifests;

impl BackToManifests {
    fn restore_blocking() -> Result<String> {
        helm_blocking(&["uninstall", RELEASE, "--ignore-not-found", "--wait", "--timeout", "180s"])?;
        wait_namespace_settled_blocking(false)?;
        run_blocking(&repo_root().join("scripts/deploy.sh"), &[LOCAL_OVERLAY])
    }
}

impl Drop for BackToManifests {
    fn drop(&mut self) {
        if let Err(e) = Self::restore_blocking() {
            eprintln!("REINSTALL FROM {LOCAL_OVERLAY} FAILED: {e:#}");
        }
    }
}

fn server_env(d: &Deployment, name: &str) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "server")?
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

/// Installed with the chart, the product captures outputs and runs lifecycle
/// jobs; `helm upgrade` with a changed value fails no admission and keeps the
/// certificates; `helm uninstall` leaves no webhook configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm_install_upgrade_uninstall() -> Result<()> {
    let client = client().await?;
    let strict = strict_client().await?;
    wait_server_settled(&client, Duration::from_secs(180)).await?;
    let _restore = BackToManifests;

    // 1. From the manifests install to the chart.
    let started = Instant::now();
    tokio::task::spawn_blocking(|| -> Result<()> {
        kubectl_blocking(&["delete", "-k", LOCAL_OVERLAY, "--ignore-not-found", "--timeout=180s"])?;
        wait_namespace_settled_blocking(true)
    })
    .await??;
    helm(&["install", RELEASE, CHART, "-f", LOCAL_VALUES, "--wait", "--timeout", "300s"]).await?;
    wait_server_settled(&client, Duration::from_secs(180)).await?;
    let (_, ca_installed, _) = wait_until("the server made its CA", TIMEOUT, || async {
        let state = tls_state(&client).await?;
        Ok((state.0 == "stable").then_some(state))
    })
    .await?;
    println!("manifests -> helm install: {:?}", started.elapsed());
    // `--wait` returned after the chart's install check had seen the Service
    // route (the Job is deleted once it succeeds; its events stay).
    let check = events_for(&client, SYSTEM_NAMESPACE, "Job", "lifecycle-webhook-install-check").await?;
    ensure!(
        check.iter().any(|e| e.reason.as_deref() == Some("Completed")),
        "the install check did not complete: {:?}",
        check.iter().map(|e| (e.reason.clone(), e.message.clone())).collect::<Vec<_>>()
    );

    // 2. Output capture and a lifecycle run against the chart's install.
    let ns = environment(&client, "helm").await?;
    let suffix = unique_suffix();
    let plain_value = format!("plain-{suffix}");
    ns.create(&output_job("plain", "plain", "true", &format!(r#"{{"PLAIN": {{"value": "{plain_value}"}}}}"#))).await?;
    let run_value = format!("run-{suffix}");
    let mut template = output_job("seed", "seed", "true", &format!(r#"{{"SEEDED": {{"value": "{run_value}"}}}}"#));
    template.metadata.annotations.get_or_insert_default().insert(ANNOTATION_ON.to_string(), "start".to_string());
    ns.create(&template).await?;
    wait_published(
        &ns,
        &[("QOVERY_OUTPUT_JOB_PLAIN_PLAIN".into(), plain_value), ("QOVERY_OUTPUT_JOB_SEED_SEEDED".into(), run_value)],
        TIMEOUT,
    )
    .await?;
    for job in ["plain", "seed"] {
        let warnings = job_warnings(&client, ns.name(), job).await?;
        assert!(warnings.is_empty(), "job {job} has Warning events: {warnings:?}");
    }

    // 3. helm upgrade with a changed value (a rolling update of the server)
    //    while pods are being admitted.
    let deployments = system_api::<Deployment>(&client);
    let generation = deployments.get(SERVER).await?.metadata.generation;
    let stream = Stream::start(strict, ns.name());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let upgraded =
        helm(&["upgrade", RELEASE, CHART, "-f", LOCAL_VALUES, "--set", "logFormat=text", "--wait", "--timeout", "300s"]).await;
    let settled = match upgraded {
        Ok(_) => wait_server_settled(&client, Duration::from_secs(180)).await.map(|_| ()),
        Err(e) => Err(e),
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = stream.stop().await?;
    println!("helm upgrade during a stream of admissions: {report}");
    settled?;
    assert!(report.failures.is_empty(), "admissions failed during helm upgrade ({report}):\n{}", report.failures.join("\n"));
    assert!(report.admissions >= 50, "the stream was too thin to mean anything: {report}");
    let d = deployments.get(SERVER).await?;
    assert!(d.metadata.generation > generation, "helm upgrade rolled the Deployment");
    assert_eq!(server_env(&d, "LIFECYCLE_LOG_FORMAT").as_deref(), Some("text"), "the changed value is applied");
    let (_, ca_upgraded, _) = tls_state(&client).await?;
    assert_eq!(ca_upgraded, ca_installed, "helm upgrade keeps the CA");

    // 4. helm uninstall: no webhook configuration, nothing cluster-wide left.
    helm(&["uninstall", RELEASE, "--wait", "--timeout", "180s"]).await?;
    assert_nothing_left(&client, "helm uninstall").await?;

    // The documented second step frees the lifecycle template of its
    // finalizer, so the environment (and the test namespace) can go.
    run_blocking(&repo_root().join("scripts/uninstall.sh"), &["--only-finalizers"])?;
    Ok(())
}
