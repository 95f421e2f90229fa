//! The Helm chart on the real cluster, the way a platform team uses it:
//! `helm install --wait` in place of `kubectl apply -k` (its install check
//! makes it return once the webhooks answer), output capture and a
//! lifecycle run against it, `helm upgrade` with a changed value while pods
//! are being admitted (none may fail, the certificates stay), and
//! `helm uninstall` leaving no webhook configuration behind; and the chart
//! installed into another namespace than the documented one (`helm install
//! -n platform`), where the server, its policies and its webhooks all follow.
//!
//! Each test replaces the installation every other test uses, so they run
//! alone with the disruptive tests, and leave the product installed from
//! `manifests/overlays/local` again, also when they fail.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use lifecycle_contract::names::{ANNOTATION_ON, ANNOTATION_OUTPUTS, LABEL_ENVIRONMENT, PROJECT_OBJECT, SYSTEM_NAMESPACE};
use lifecycle_e2e::lifecycle::{environment, wait_status_idle};
use lifecycle_e2e::{
    TIMEOUT, TestNamespace, client, client_as, events_for, obj, unique_suffix, wait_for_deployment_available, wait_until,
};
use serde_json::json;

use super::operations::{
    LOCAL_OVERLAY, SERVER, Stream, TLS_SECRET, WEBHOOK_CONFIGURATIONS, assert_nothing_left, job_warnings, kubectl_blocking,
    output_job, repo_root, run_blocking, strict_client, system_api, tls_state, wait_published, wait_server_settled,
};

const RELEASE: &str = "lifecycle-jobs";
/// Where the chart goes as documented (`helm install -n lifecycle-jobs-system
/// --create-namespace`): the release record and every object.
const DEFAULT_NAMESPACE: &str = SYSTEM_NAMESPACE;
/// Another namespace, as a platform team that keeps its tools together types it.
const OTHER_NAMESPACE: &str = "platform";
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

/// `helm --namespace <namespace> <args>`: the release namespace, as a user types `-n`.
fn helm_blocking(namespace: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["--namespace", namespace];
    all.extend_from_slice(args);
    run_blocking(&helm_path()?, &all)
}

async fn helm(namespace: &'static str, args: &[&str]) -> Result<String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || helm_blocking(namespace, &args.iter().map(String::as_str).collect::<Vec<_>>())).await?
}

/// Waits until namespace `name` is gone or active (not terminating).
fn wait_namespace_settled_blocking(name: &str, want_gone: bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let phase = kubectl_blocking(&["get", "namespace", name, "--ignore-not-found", "-o", "jsonpath={.status.phase}"])?;
        let phase = phase.trim();
        if phase.is_empty() || (!want_gone && phase == "Active") {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "namespace {name} is still {phase} after 180 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Removes the manifests' install, so that the chart installs from scratch.
async fn remove_manifests_install() -> Result<()> {
    tokio::task::spawn_blocking(|| -> Result<()> {
        kubectl_blocking(&["delete", "-k", LOCAL_OVERLAY, "--ignore-not-found", "--timeout=180s"])?;
        wait_namespace_settled_blocking(SYSTEM_NAMESPACE, true)
    })
    .await?
}

/// The documented uninstall of the chart: `helm uninstall`, then the
/// namespace (Helm leaves the namespace `--create-namespace` made).
fn uninstall_blocking(namespace: &str) -> Result<()> {
    helm_blocking(namespace, &["uninstall", RELEASE, "--ignore-not-found", "--wait", "--timeout", "180s"])?;
    kubectl_blocking(&["delete", "namespace", namespace, "--ignore-not-found", "--timeout=180s"])?;
    wait_namespace_settled_blocking(namespace, true)
}

/// Puts the product back as every other test expects it (installed from
/// `manifests/overlays/local`) when dropped: the Helm release in `namespace`,
/// if any, is uninstalled first.
struct BackToManifests {
    namespace: &'static str,
}

impl BackToManifests {
    fn restore_blocking(&self) -> Result<String> {
        uninstall_blocking(self.namespace)?;
        wait_namespace_settled_blocking(SYSTEM_NAMESPACE, false)?;
        run_blocking(&repo_root().join("scripts/deploy.sh"), &[LOCAL_OVERLAY])
    }
}

impl Drop for BackToManifests {
    fn drop(&mut self) {
        if let Err(e) = self.restore_blocking() {
            eprintln!("REINSTALL FROM {LOCAL_OVERLAY} FAILED: {e:#}");
        }
    }
}

/// The refusal message of an API error, or a failure if the request passed.
fn refused<T>(what: &str, r: Result<T, kube::Error>) -> Result<String> {
    match r {
        Ok(_) => anyhow::bail!("{what} was accepted"),
        Err(kube::Error::Api(e)) => Ok(e.message),
        Err(e) => Err(e.into()),
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
    let _restore = BackToManifests { namespace: DEFAULT_NAMESPACE };

    // 1. From the manifests install to the chart, as documented.
    let started = Instant::now();
    remove_manifests_install().await?;
    helm(
        DEFAULT_NAMESPACE,
        &["install", RELEASE, CHART, "-f", LOCAL_VALUES, "--create-namespace", "--wait", "--timeout", "300s"],
    )
    .await?;
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
    capture_and_run(&ns).await?;
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
    let upgraded = helm(
        DEFAULT_NAMESPACE,
        &["upgrade", RELEASE, CHART, "-f", LOCAL_VALUES, "--set", "logFormat=text", "--wait", "--timeout", "300s"],
    )
    .await;
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

    // 4. helm uninstall, then the namespace: no webhook configuration, nothing
    //    cluster-wide left.
    helm(DEFAULT_NAMESPACE, &["uninstall", RELEASE, "--wait", "--timeout", "180s"]).await?;
    kubectl_blocking(&["delete", "namespace", DEFAULT_NAMESPACE, "--timeout=180s"])?;
    assert_nothing_left(&client, "helm uninstall").await?;

    // The documented second step frees the lifecycle template of its
    // finalizer, so the environment (and the test namespace) can go.
    run_blocking(&repo_root().join("scripts/uninstall.sh"), &["--only-finalizers"])?;
    Ok(())
}

/// `helm install -n platform`: every object lands in platform and nothing in
/// lifecycle-jobs-system; the server finds its namespace from its pod (its
/// TLS Secret, its Service's address for the agents); the webhooks call it
/// there; a capture and a lifecycle run go through, so the trust policies let
/// the server's own writes pass under its name in platform, and they still
/// refuse everybody else (here the cluster admin) what only the server writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm_install_into_another_namespace() -> Result<()> {
    let client = client().await?;
    wait_server_settled(&client, Duration::from_secs(180)).await?;
    let _restore = BackToManifests { namespace: OTHER_NAMESPACE };

    // 1. The chart into platform, as a user types it.
    remove_manifests_install().await?;
    helm(OTHER_NAMESPACE, &["install", RELEASE, CHART, "-f", LOCAL_VALUES, "--create-namespace", "--wait", "--timeout", "300s"])
        .await?;
    wait_for_deployment_available(&client, OTHER_NAMESPACE, SERVER, Duration::from_secs(180)).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    ensure!(
        namespaces.get_opt(SYSTEM_NAMESPACE).await?.is_none(),
        "helm install -n {OTHER_NAMESPACE} made namespace {SYSTEM_NAMESPACE}"
    );
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone()).get(WEBHOOK_CONFIGURATIONS).await?;
    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone()).get(WEBHOOK_CONFIGURATIONS).await?;
    let called: Vec<Option<String>> = (mutating.webhooks.unwrap_or_default().into_iter().map(|w| w.client_config))
        .chain(validating.webhooks.unwrap_or_default().into_iter().map(|w| w.client_config))
        .map(|c| c.service.map(|s| s.namespace))
        .collect();
    ensure!(
        !called.is_empty() && called.iter().all(|ns| ns.as_deref() == Some(OTHER_NAMESPACE)),
        "the webhooks call the Service in {called:?}, not {OTHER_NAMESPACE}"
    );
    // The server found its namespace from its pod: its self-managed CA and
    // certificate are in platform (the creates policy let it make them there).
    Api::<Secret>::namespaced(client.clone(), OTHER_NAMESPACE)
        .get(TLS_SECRET)
        .await
        .with_context(|| format!("the server's TLS Secret in {OTHER_NAMESPACE}"))?;

    // 2. A capture and a lifecycle run: the agents reach the server at its
    //    Service in platform, and the server's writes (the Jobs' outputs
    //    annotations, the run it creates, the environment's status) pass the
    //    trust policies under its name there.
    let ns = environment(&client, "helm-ns").await?;
    capture_and_run(&ns).await?;
    let status = wait_status_idle(&client, ns.name(), "started", TIMEOUT).await?;
    println!("installed in {OTHER_NAMESPACE}: outputs published, environment status {status:?}");
    for job in ["plain", "seed"] {
        let warnings = job_warnings(&client, ns.name(), job).await?;
        assert!(warnings.is_empty(), "job {job} has Warning events: {warnings:?}");
    }
    let plain = ns.api::<Job>().get("plain").await?;
    ensure!(
        plain.metadata.annotations.unwrap_or_default().contains_key(ANNOTATION_OUTPUTS),
        "the server recorded no outputs on Job plain"
    );

    // 3. The policies know the server by its name in platform: whatever its
    //    credentials are made to do, they create only the server's objects.
    let server = client_as(&format!("system:serviceaccount:{OTHER_NAMESPACE}:{SERVER}")).await?;
    let configmaps: Api<ConfigMap> = Api::namespaced(server, ns.name());
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    let message = refused(
        "the server creating a ConfigMap of another name",
        configmaps.create(&dry, &obj(json!({"metadata": {"name": "app-config"}}))).await,
    )?;
    ensure!(message.contains("may create only") && message.contains("app-config"), "{message}");
    configmaps.create(&dry, &obj(json!({"metadata": {"name": PROJECT_OBJECT}}))).await.context("the server's own ConfigMap")?;

    // 4. And refuse everybody else what only the server writes (the cluster
    //    admin included); the release namespace is never an environment.
    let patch = Patch::Merge(json!({"metadata": {"annotations": {ANNOTATION_OUTPUTS: "{}"}}}));
    let message = refused(
        "the admin rewriting Job plain's outputs",
        ns.api::<Job>().patch("plain", &PatchParams::default(), &patch).await,
    )?;
    ensure!(message.contains(ANNOTATION_OUTPUTS) && message.contains("written by lifecycle-jobs only"), "{message}");
    let label = Patch::Merge(json!({"metadata": {"labels": {LABEL_ENVIRONMENT: ""}}}));
    let message = refused(
        "making the release namespace an environment",
        namespaces.patch(OTHER_NAMESPACE, &PatchParams::default(), &label).await,
    )?;
    ensure!(message.contains("is never an environment"), "{message}");

    // 5. The documented uninstall: nothing cluster-wide left.
    tokio::task::spawn_blocking(|| uninstall_blocking(OTHER_NAMESPACE)).await??;
    assert_nothing_left(&client, "helm uninstall -n platform").await?;
    run_blocking(&repo_root().join("scripts/uninstall.sh"), &["--only-finalizers"])?;
    Ok(())
}

/// A plain captured Job and a lifecycle job on start, in `ns`: both publish
/// (the agents reach the server, the server's writes pass the trust policies).
async fn capture_and_run(ns: &TestNamespace) -> Result<()> {
    let suffix = unique_suffix();
    let plain_value = format!("plain-{suffix}");
    ns.create(&output_job("plain", "plain", "true", &format!(r#"{{"PLAIN": {{"value": "{plain_value}"}}}}"#))).await?;
    let run_value = format!("run-{suffix}");
    let mut template = output_job("seed", "seed", "true", &format!(r#"{{"SEEDED": {{"value": "{run_value}"}}}}"#));
    template.metadata.annotations.get_or_insert_default().insert(ANNOTATION_ON.to_string(), "start".to_string());
    ns.create(&template).await?;
    wait_published(
        ns,
        &[("QOVERY_OUTPUT_JOB_PLAIN_PLAIN".into(), plain_value), ("QOVERY_OUTPUT_JOB_SEED_SEEDED".into(), run_value)],
        TIMEOUT,
    )
    .await
}
