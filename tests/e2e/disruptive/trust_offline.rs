//! The trust rules under load and while the server is away: Jobs that
//! tenants make outside environments, however many and however large, cost
//! the server nothing (nobody can label them for its watch), and an
//! environment can still be deleted while no server replica runs.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use lifecycle_contract::names::{FINALIZER_OUTPUTS_CLEANUP, LABEL_ADMITTED};
use lifecycle_e2e::lifecycle::{environment, lifecycle_job};
use lifecycle_e2e::{TestNamespace, busybox_job, client, wait_until};
use serde_json::json;

use crate::bounded::server_memory;
use crate::operations::{SERVER, kubectl_blocking, system_api, wait_server_settled};

/// The server container's memory request (manifests/base/deployment.yaml).
const MEMORY_REQUEST: u64 = 64 * 1024 * 1024;
const JOBS: usize = 1000;
const BLOB: usize = 100 * 1024;

#[tokio::test]
async fn a_thousand_self_labelled_big_jobs_outside_environments_are_refused_and_cost_the_server_nothing() -> Result<()> {
    let client = client().await?;
    let restarts = |pods: &[k8s_openapi::api::core::v1::Pod]| -> BTreeMap<String, i32> {
        pods.iter()
            .map(|p| {
                let statuses = p.status.clone().unwrap_or_default().container_statuses.unwrap_or_default();
                (p.name_any(), statuses.iter().map(|c| c.restart_count).sum())
            })
            .collect()
    };
    let restarts_before = restarts(&wait_server_settled(&client, Duration::from_secs(180)).await?);
    let before = server_memory(&client).await.unwrap_or_default();
    let ns = TestNamespace::new(&client, "tenant-jobs").await?;
    let blob = "x".repeat(BLOB);
    let api = ns.api::<Job>();
    let mut created = tokio::task::JoinSet::new();
    for chunk in 0..8 {
        let (api, blob) = (api.clone(), blob.clone());
        created.spawn(async move {
            let mut refused = 0;
            for i in (chunk * JOBS / 8)..((chunk + 1) * JOBS / 8) {
                let mut job = busybox_job(&format!("big-{i}"), "true");
                job.metadata.annotations = Some(BTreeMap::from([("example.com/blob".to_string(), blob.clone())]));
                job.spec.as_mut().unwrap().suspend = Some(true);
                // The attack: labelled for the server's Job watch.
                let mut labelled = job.clone();
                labelled.labels_mut().insert(LABEL_ADMITTED.into(), "true".into());
                match api.create(&PostParams::default(), &labelled).await {
                    Err(kube::Error::Api(e)) if e.message.contains("outside an environment") => refused += 1,
                    other => anyhow::bail!("a self-labelled Job outside an environment was not refused: {other:?}"),
                }
                api.create(&PostParams::default(), &job).await.with_context(|| format!("creating job big-{i}"))?;
            }
            Ok::<_, anyhow::Error>(refused)
        });
    }
    let mut refused = 0;
    while let Some(r) = created.join_next().await {
        refused += r??;
    }
    ensure!(refused == JOBS, "{refused} of {JOBS} self-labelled Jobs refused");

    // Admission in an environment keeps answering, from both replicas' point of view.
    let env = environment(&client, "tenant-jobs-env").await?;
    for i in 0..10 {
        let admitted = env.create(&lifecycle_job(&format!("probe-{i}"), "stop", "true", false)).await?;
        ensure!(admitted.labels().contains_key(LABEL_ADMITTED), "admitted: {:?}", admitted.labels());
    }
    let after = server_memory(&client).await.unwrap_or_default();
    eprintln!(
        "server working set (bytes) before / after {JOBS} refused self-labelled Jobs and {JOBS} x {} KiB Jobs elsewhere: {before:?} / {after:?}",
        BLOB / 1024
    );
    let pods = wait_server_settled(&client, Duration::from_secs(60)).await?;
    ensure!(restarts(&pods) == restarts_before, "both replicas stay up: {restarts_before:?} then {:?}", restarts(&pods));
    for p in &pods {
        if let Some(ws) = after.get(&p.name_any()) {
            ensure!(*ws < MEMORY_REQUEST, "server pod {} uses {ws} bytes, over its 64 MiB request", p.name_any());
        }
    }
    ns.delete_and_wait(Duration::from_secs(300)).await?;
    Ok(())
}

/// Scales the server back to its two replicas however the test ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        let _ =
            kubectl_blocking(&["-n", lifecycle_contract::names::SYSTEM_NAMESPACE, "scale", "deployment", SERVER, "--replicas=2"]);
    }
}

#[tokio::test]
async fn an_environment_can_be_deleted_while_the_server_is_away() -> Result<()> {
    let client = client().await?;
    wait_server_settled(&client, Duration::from_secs(180)).await?;
    let ns = environment(&client, "offline-delete").await?;
    let name = ns.name().to_string();
    ns.create(&lifecycle_job("report", "stop", "true", false)).await?;
    wait_until("the controller put its finalizer on the template", Duration::from_secs(120), || async {
        Ok(ns.api::<Job>().get("report").await?.finalizers().iter().any(|f| f == FINALIZER_OUTPUTS_CLEANUP).then_some(()))
    })
    .await?;

    let _restore = Restore;
    kubectl_blocking(&["-n", lifecycle_contract::names::SYSTEM_NAMESPACE, "scale", "deployment", SERVER, "--replicas=0"])?;
    wait_until("no server replica runs", Duration::from_secs(120), || async {
        let pods = system_api::<k8s_openapi::api::core::v1::Pod>(&client)
            .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name=lifecycle-webhook"))
            .await?;
        Ok(pods.items.is_empty().then_some(()))
    })
    .await?;

    // The namespace-delete webhook fails open; the template waits for its cleanup.
    kubectl_blocking(&["delete", "namespace", &name, "--wait=false"])?;
    let jobs = ns.api::<Job>();
    wait_until("the template is being deleted, held by its finalizer", Duration::from_secs(60), || async {
        let j = jobs.get("report").await?;
        Ok(j.metadata.deletion_timestamp.is_some().then_some(()))
    })
    .await?;
    // What docs/security.md tells an operator to run: the Job webhook is not
    // called for a Job being deleted, and the policy lets anyone who may
    // update it remove the finalizer then.
    let remove = json!([{"op": "remove", "path": "/metadata/finalizers"}]);
    jobs.patch("report", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(remove)?)).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_until("the environment is gone", Duration::from_secs(180), || async {
        Ok(namespaces.get_opt(&name).await?.is_none().then_some(()))
    })
    .await?;
    drop(_restore);
    wait_server_settled(&client, Duration::from_secs(180)).await?;
    Ok(())
}
