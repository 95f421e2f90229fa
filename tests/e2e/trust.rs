//! What the server writes is the server's (docs/security.md, "What the server
//! writes"), tested as the attacker: users with only the rights named
//! (`kubectl --as`), every subresource that can carry a label or an
//! annotation, Jobs made by hand inside and outside environments. Each attack
//! is refused by the API server itself and changes nothing of any
//! environment; the legitimate path beside it still works.

use std::process::Command;
use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{
    ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_JOB_ID, ANNOTATION_LAST_RUNS, ANNOTATION_OBSERVED, ANNOTATION_OUTPUTS,
    ANNOTATION_REPLICAS_BEFORE_STOP, ANNOTATION_STATUS, ANNOTATION_TRANSITION, FINALIZER_OUTPUTS_CLEANUP, LABEL_ADMITTED,
    LABEL_ENVIRONMENT, LABEL_GATED, LABEL_STATE,
};
use lifecycle_e2e::lifecycle::{environment, lifecycle_job, output_job, runs, small_deployment, wait_published};
use lifecycle_e2e::process::run;
use lifecycle_e2e::{BUSYBOX, TIMEOUT, TestNamespace, client, client_as, kubeconfig_path, obj, unique_suffix, wait_until};
use serde_json::{Value, json};

use crate::security::refused;

const SUITE: (&str, &str) = ("e2e.lifecycle-jobs.dev/suite", "trust");

/// A cluster-wide role for `user` with `rules`, and its binding (removed by [`remove_cluster_grant`]).
pub(crate) async fn cluster_grant(client: &Client, user: &str, rules: Value) -> Result<()> {
    let role: ClusterRole = obj(json!({"metadata": {"name": user, "labels": {SUITE.0: SUITE.1}}, "rules": rules}));
    let binding: ClusterRoleBinding = obj(json!({"metadata": {"name": user, "labels": {SUITE.0: SUITE.1}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}));
    Api::<ClusterRole>::all(client.clone()).create(&PostParams::default(), &role).await?;
    Api::<ClusterRoleBinding>::all(client.clone()).create(&PostParams::default(), &binding).await?;
    Ok(())
}

pub(crate) async fn remove_cluster_grant(client: &Client, user: &str) {
    let _ = Api::<ClusterRoleBinding>::all(client.clone()).delete(user, &DeleteParams::default()).await;
    let _ = Api::<ClusterRole>::all(client.clone()).delete(user, &DeleteParams::default()).await;
}

/// A role named `name` in `ns` for `user` with `rules`, and its binding.
async fn grant(ns: &TestNamespace, name: &str, user: &str, rules: Value) -> Result<()> {
    let role: Role = obj(json!({"metadata": {"name": name}, "rules": rules}));
    let binding: RoleBinding = obj(json!({"metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}));
    ns.create(&role).await?;
    ns.create(&binding).await?;
    Ok(())
}

/// The refusal of `attempt` once RBAC knows of a new grant: a refusal by the
/// authorizer (`User "x" cannot patch resource ...`) is retried, any other
/// refusal is returned, and success is a failure.
async fn refused_once_authorized<T, F, Fut>(what: &str, mut attempt: F) -> Result<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    wait_until(what, Duration::from_secs(30), || {
        let fut = attempt();
        async move {
            let message = refused(what, fut.await)?;
            Ok((!(message.contains(" cannot ") && message.contains("resource \""))).then_some(message))
        }
    })
    .await
}

fn merge(v: Value) -> Patch<Value> {
    Patch::Merge(v)
}

fn annotations(pairs: &[(&str, Option<&str>)]) -> Value {
    let map: serde_json::Map<String, Value> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.map_or(Value::Null, |v| Value::String(v.into())))).collect();
    json!({"metadata": {"annotations": map}})
}

fn says_server_only(message: &str, name: &str, user: &str) -> Result<()> {
    ensure!(
        message.contains(name) && message.contains("lifecycle-jobs only") && message.contains(user),
        "the refusal names {name}, the rule and the user: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn trust_nobody_but_the_server_writes_an_environments_bookkeeping() -> Result<()> {
    let client = client().await?;
    let user = format!("mallory-ns-{}", unique_suffix());
    cluster_grant(
        &client,
        &user,
        json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch", "patch", "update"]},
               {"apiGroups": [""], "resources": ["namespaces/status"], "verbs": ["get", "patch", "update"]}]),
    )
    .await?;
    let result = bookkeeping(&client, &user).await;
    remove_cluster_grant(&client, &user).await;
    result
}

async fn bookkeeping(client: &Client, user: &str) -> Result<()> {
    let ns = environment(client, "trust-books").await?;
    let name = ns.name().to_string();
    ns.create(&small_deployment("web", 1, &["sleep", "3600"])).await?;
    ns.create(&lifecycle_job("teardown", "delete", "echo dropping the database", false)).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_until("the controller observed the environment", TIMEOUT, || async {
        Ok(namespaces.get(&name).await?.annotations().contains_key(ANNOTATION_OBSERVED).then_some(()))
    })
    .await?;
    let mallory = client_as(user).await?;
    let as_mallory: Api<Namespace> = Api::all(mallory.clone());
    let pp = PatchParams::default();

    // The attacks of the issue: a forged transition that scales to zero, one
    // that runs the delete jobs, a forged observed that skips a stop, a status.
    let forged = [
        (ANNOTATION_TRANSITION, r#"{"seq":1000,"event":"stop","phase":"scale"}"#),
        (ANNOTATION_TRANSITION, r#"{"seq":2000,"event":"delete","phase":"runs"}"#),
        (ANNOTATION_OBSERVED, r#"{"seq":3000,"state":"stopped"}"#),
        (ANNOTATION_STATUS, "stopped"),
    ];
    for (key, value) in forged {
        let patch = merge(annotations(&[(key, Some(value))]));
        let message = refused_once_authorized(&format!("{key}={value}"), || as_mallory.patch(&name, &pp, &patch)).await?;
        says_server_only(&message, key, user)?;
        // The same through the status subresource.
        let message = refused(
            &format!("{key} through namespaces/status"),
            as_mallory.patch_status(&name, &PatchParams::default(), &patch).await,
        )?;
        says_server_only(&message, key, user)?;
    }
    // Removing the controller's record is a change too; so it is for an admin.
    let message = refused(
        "removing observed",
        as_mallory.patch(&name, &PatchParams::default(), &merge(annotations(&[(ANNOTATION_OBSERVED, None)]))).await,
    )?;
    says_server_only(&message, ANNOTATION_OBSERVED, user)?;
    let message = refused(
        "an admin writing transition",
        namespaces.patch(&name, &PatchParams::default(), &merge(annotations(&[(ANNOTATION_TRANSITION, Some("{}"))]))).await,
    )?;
    ensure!(message.contains("lifecycle-jobs only"), "{message}");

    // Labels through the status subresource need the same rights as through the object.
    for (key, value, want) in [
        (LABEL_STATE, Some("stopped"), "deployments/scale"),
        (LABEL_STATE, Some("deleted"), "right to delete that namespace"),
        (LABEL_ENVIRONMENT, None, "deployments/scale"),
    ] {
        let patch = merge(json!({"metadata": {"labels": {key: value}}}));
        let message = refused(
            &format!("{key}={value:?} through namespaces/status"),
            as_mallory.patch_status(&name, &PatchParams::default(), &patch).await,
        )?;
        ensure!(message.contains(want) && message.contains(user), "{message}");
    }

    // Settings that make the server act later need the rights of what they cause.
    for (key, value, want) in [
        ("lifecycle-jobs.dev/schedule", "Mon-Fri 08:00-19:00 UTC", "deployments/scale"),
        ("lifecycle-jobs.dev/expires-at", "2026-01-01T00:00:00Z", "right to delete that namespace"),
        ("lifecycle-jobs.dev/ttl", "1h", "right to delete that namespace"),
    ] {
        let patch = merge(annotations(&[(key, Some(value))]));
        let message = refused(&format!("{key}={value}"), as_mallory.patch(&name, &pp, &patch).await)?;
        ensure!(message.contains(key) && message.contains(want) && message.contains(user), "{message}");
    }

    // Nothing happened to the environment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deployments = ns.api::<Deployment>();
    let web = deployments.get("web").await?;
    ensure!(web.spec.as_ref().and_then(|s| s.replicas) == Some(1), "web still has its replica");
    ensure!(runs(client, &name, "teardown", "delete").await?.is_empty(), "no delete run was started");
    let live = namespaces.get(&name).await?;
    ensure!(live.metadata.deletion_timestamp.is_none() && live.labels().get(LABEL_STATE).is_none(), "{:?}", live.metadata);

    // Nor can a workload's editor forge what the controller remembered for it.
    let editor = format!("{user}-editor");
    grant(
        &ns,
        "editor",
        &editor,
        json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch", "update"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "patch"]}]),
    )
    .await?;
    let as_editor: Api<Deployment> = Api::namespaced(client_as(&editor).await?, &name);
    let patch = merge(annotations(&[(ANNOTATION_REPLICAS_BEFORE_STOP, Some("50"))]));
    let message = refused_once_authorized("replicas-before-stop", || as_editor.patch("web", &pp, &patch)).await?;
    says_server_only(&message, ANNOTATION_REPLICAS_BEFORE_STOP, &editor)?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client_as(&editor).await?, &name);
    let pod = wait_until("web has a pod", TIMEOUT, || async {
        Ok(ns.api::<k8s_openapi::api::core::v1::Pod>().list(&Default::default()).await?.items.into_iter().next())
    })
    .await?;
    let label = merge(json!({"metadata": {"labels": {LABEL_GATED: "start-jobs"}}}));
    let message = refused("labelling a pod gated", pods.patch(&pod.name_any(), &PatchParams::default(), &label).await)?;
    says_server_only(&message, LABEL_GATED, &editor)?;

    // The server's own writes pass: a stop by someone with the rights runs.
    lifecycle_e2e::lifecycle::set_state(client, &name, "stopped").await?;
    wait_until("the controller scales web to zero", TIMEOUT, || async {
        let d = deployments.get("web").await?;
        let remembered = d.annotations().get(ANNOTATION_REPLICAS_BEFORE_STOP).cloned();
        Ok((d.spec.and_then(|s| s.replicas) == Some(0) && remembered.as_deref() == Some("1")).then_some(()))
    })
    .await
}

#[tokio::test]
async fn trust_a_job_only_role_cannot_touch_another_jobs_outputs() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "trust-jobs").await?;
    let name = ns.name().to_string();
    ns.create(&output_job("victim", Some("VICTIM"), None, r#"{"VICTIM_KEY": {"value": "original"}}"#)).await?;
    wait_published(&ns, "the victim publishes", |cm, _| cm.get("VICTIM_KEY").is_some_and(|v| v == "original")).await?;

    let user = format!("mallory-jobs-{}", unique_suffix());
    grant(
        &ns,
        "jobs",
        &user,
        json!([{"apiGroups": ["batch"], "resources": ["jobs", "jobs/status"],
        "verbs": ["get", "list", "create", "patch", "update", "delete"]}]),
    )
    .await?;
    let jobs: Api<Job> = Api::namespaced(client_as(&user).await?, &name);
    let pp = PostParams::default();

    // The issue's attack: an opted-out Job with the victim's job-id and the
    // cleanup finalizer, deleted to make the server remove VICTIM's keys.
    let mut wiper = output_job("wiper", Some("VICTIM"), None, "{}");
    wiper.annotations_mut().insert(ANNOTATION_CAPTURE_OUTPUT.into(), "false".into());
    wiper.spec.as_mut().unwrap().suspend = Some(true);
    let mut with_finalizer = wiper.clone();
    with_finalizer.metadata.finalizers = Some(vec![FINALIZER_OUTPUTS_CLEANUP.into()]);
    let message = refused_once_authorized("a Job with the cleanup finalizer", || jobs.create(&pp, &with_finalizer)).await?;
    ensure!(message.contains(FINALIZER_OUTPUTS_CLEANUP) && message.contains("may not add it"), "{message}");
    // Without it the Job is admitted; adding it later is refused the same way.
    jobs.create(&pp, &wiper).await?;
    let add = merge(json!({"metadata": {"finalizers": [FINALIZER_OUTPUTS_CLEANUP]}}));
    let message = refused("adding the cleanup finalizer", jobs.patch("wiper", &PatchParams::default(), &add).await)?;
    ensure!(message.contains("may not add it"), "{message}");
    let message = refused("the same through jobs/status", jobs.patch_status("wiper", &PatchParams::default(), &add).await)?;
    ensure!(message.contains("may not add it"), "{message}");
    // Nor rewrite what the server recorded, nor drop the Job out of its sight.
    for (what, patch, key) in [
        ("the outputs summary", annotations(&[(ANNOTATION_OUTPUTS, Some("{}"))]), ANNOTATION_OUTPUTS),
        ("last-runs", annotations(&[(ANNOTATION_LAST_RUNS, Some("{}"))]), ANNOTATION_LAST_RUNS),
        ("the admitted label", json!({"metadata": {"labels": {LABEL_ADMITTED: null}}}), LABEL_ADMITTED),
    ] {
        let message = refused(what, jobs.patch("victim", &PatchParams::default(), &merge(patch)).await)?;
        ensure!(message.contains(key) && message.contains(&user), "{message}");
    }
    jobs.delete("wiper", &DeleteParams::default()).await?;

    // The legitimate path: the same user's own lifecycle job publishes, and
    // deleting it removes its keys (the server's cleanup), not the victim's.
    jobs.create(
        &pp,
        &lifecycle_job("seed", "start", r#"echo '{"SEED_KEY": {"value": "s"}}' > /qovery-output/qovery-output.json"#, true),
    )
    .await?;
    wait_published(&ns, "seed publishes", |cm, _| cm.get("SEED_KEY").is_some_and(|v| v == "s")).await?;
    wait_until("the controller put its finalizer on seed", TIMEOUT, || async {
        Ok(ns.api::<Job>().get("seed").await?.finalizers().iter().any(|f| f == FINALIZER_OUTPUTS_CLEANUP).then_some(()))
    })
    .await?;
    jobs.delete("seed", &DeleteParams::default()).await?;
    let (cm, _) = wait_published(&ns, "seed's keys go", |cm, _| !cm.contains_key("SEED_KEY")).await?;
    ensure!(cm.get("VICTIM_KEY").map(String::as_str) == Some("original"), "the victim's keys stay: {cm:?}");
    ensure!(cm.get("QOVERY_OUTPUT_JOB_VICTIM_VICTIM_KEY").map(String::as_str) == Some("original"), "{cm:?}");
    Ok(())
}

#[tokio::test]
async fn trust_server_labels_mean_nothing_outside_environments_and_early_jobs_claim_nothing() -> Result<()> {
    let client = client().await?;
    let plain = TestNamespace::new(&client, "trust-early").await?;
    let name = plain.name().to_string();

    // Outside environments, nobody (an admin included) writes the labels the
    // server watches Jobs by: they would cost it memory, and claim JOBIDs.
    let mut squatter = output_job("early", Some("SEED"), None, "{}");
    squatter.spec.as_mut().unwrap().suspend = Some(true);
    let mut labelled = squatter.clone();
    labelled.labels_mut().insert(LABEL_ADMITTED.into(), "true".into());
    labelled.annotations_mut().insert(ANNOTATION_JOB_ID.into(), "x".repeat(250_000));
    let message = refused("a self-labelled Job", plain.api::<Job>().create(&PostParams::default(), &labelled).await)?;
    ensure!(message.contains(LABEL_ADMITTED) && message.contains("outside an environment"), "{message}");
    ensure!(!message.contains("xxxxxxxx"), "the refusal does not echo the annotation");

    // A Job made before the namespace becomes an environment is never admitted:
    // its job-id claims nothing, and an update does not admit it.
    plain.create(&squatter).await?;
    Api::<Namespace>::all(client.clone())
        .patch(&name, &PatchParams::default(), &merge(json!({"metadata": {"labels": {LABEL_ENVIRONMENT: ""}}})))
        .await?;
    let template = lifecycle_job(
        "seed",
        "start",
        r#"echo '{"SEED_KEY": {"value": "from-the-template"}}' > /qovery-output/qovery-output.json"#,
        true,
    );
    // The API server's view of the new label reaches its webhook selector within a moment.
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    wait_until("the webhook admits Jobs of the new environment", Duration::from_secs(30), || async {
        let j = plain.api::<Job>().create(&dry, &template).await?;
        Ok(j.labels().contains_key(LABEL_ADMITTED).then_some(()))
    })
    .await?;
    plain.create(&template).await?;
    let early = plain
        .api::<Job>()
        .patch("early", &PatchParams::default(), &merge(json!({"metadata": {"labels": {"team": "a"}}})))
        .await?;
    ensure!(!early.labels().contains_key(LABEL_ADMITTED), "an update does not admit an early Job: {:?}", early.labels());
    wait_published(&plain, "the template publishes under SEED", |cm, _| {
        cm.get("QOVERY_OUTPUT_JOB_SEED_SEED_KEY").is_some_and(|v| v == "from-the-template")
    })
    .await?;
    Ok(())
}

/// `kubectl create job NAME --from=cronjob/nightly --as USER -n NS`, as a person tries a CronJob.
fn kubectl_create_from_cronjob(ns: &str, job: &str, user: &str) -> Result<lifecycle_e2e::process::Ran> {
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", kubeconfig_path());
    cmd.args(["create", "job", job, "--from=cronjob/nightly", "-n", ns, "--as", user]);
    run(cmd, format!("kubectl create job {job} --from=cronjob/nightly -n {ns} --as {user}"), Duration::from_secs(30))
}

#[tokio::test]
async fn trust_a_cron_jobs_manual_run_is_the_cron_jobs_when_its_creator_may_update_it() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "trust-cron").await?;
    let name = ns.name().to_string();
    let cron: CronJob = obj(json!({"metadata": {"name": "nightly", "annotations": {ANNOTATION_JOB_ID: "backup"}},
        "spec": {"schedule": "0 3 * * *", "suspend": true,
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo '{\"LAST\": {\"value\": \"manual\"}}' > /qovery-output/qovery-output.json"]}]}}}}}}));
    ns.create(&cron).await?;
    let user = format!("tester-{}", unique_suffix());
    grant(
        &ns,
        "jobs",
        &user,
        json!([{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "create"]},
        {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get", "list"]}]),
    )
    .await?;

    // Without the right to change the CronJob, its JOBID is not the user's to borrow.
    let ran = wait_until("RBAC knows the tester", Duration::from_secs(30), || async {
        let ran = kubectl_create_from_cronjob(&name, "try-1", &user)?;
        Ok((!ran.stderr.contains("cannot get") && !ran.stderr.contains("cannot create")).then_some(ran))
    })
    .await?;
    let ran = ran.exit(1)?;
    ran.says(false, &["needs update on cronjobs nightly", &user])?;

    // With it, the manual run is the CronJob's: it publishes under BACKUP, not its own name.
    grant(&ns, "cron-editor", &user, json!([{"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["update"]}])).await?;
    wait_until("the tester creates the manual run", Duration::from_secs(30), || async {
        Ok((kubectl_create_from_cronjob(&name, "try-2", &user)?.code == 0).then_some(()))
    })
    .await?;
    let job = ns.api::<Job>().get("try-2").await?;
    ensure!(job.annotations().get(ANNOTATION_JOB_ID).map(String::as_str) == Some("BACKUP"), "{:?}", job.annotations());
    let (cm, _) =
        wait_published(&ns, "the manual run publishes as BACKUP", |cm, _| cm.get("QOVERY_OUTPUT_JOB_BACKUP_LAST").is_some())
            .await?;
    ensure!(cm.keys().all(|k| !k.starts_with("QOVERY_OUTPUT_JOB_TRY_")), "no JOBID per manual run: {:?}", cm.keys());

    // Nobody adds a CronJob owner to an existing Job.
    let mut plain = output_job("plain", None, None, "{}");
    plain.spec.as_mut().unwrap().suspend = Some(true);
    ns.create(&plain).await?;
    let cron_uid = ns.api::<CronJob>().get("nightly").await?.uid().unwrap_or_default();
    let owner = json!({"metadata": {"ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
        "uid": cron_uid, "controller": true}]}});
    let message =
        refused("adding a CronJob owner", ns.api::<Job>().patch("plain", &PatchParams::default(), &merge(owner)).await)?;
    ensure!(message.contains("cannot be added"), "{message}");
    Ok(())
}

#[tokio::test]
async fn trust_the_server_creates_only_the_objects_named_for_it() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "trust-creates").await?;
    // Whatever the server's credentials are made to do (a bug, a stolen
    // token), the API server lets them create only its own objects.
    let server =
        client_as(&format!("system:serviceaccount:{}:lifecycle-webhook", lifecycle_contract::names::SYSTEM_NAMESPACE)).await?;
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(server.clone(), ns.name());
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(server, ns.name());
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    let message =
        refused("a ConfigMap of another name", configmaps.create(&dry, &obj(json!({"metadata": {"name": "app-config"}}))).await)?;
    ensure!(message.contains("may create only") && message.contains("app-config"), "{message}");
    let message =
        refused("a Secret of another name", secrets.create(&dry, &obj(json!({"metadata": {"name": "db-password"}}))).await)?;
    ensure!(message.contains("may create only"), "{message}");
    // Its own objects, as a server-side apply of a missing object makes them.
    configmaps.create(&dry, &obj(json!({"metadata": {"name": lifecycle_contract::names::OUTPUTS_OBJECT}}))).await?;
    Ok(())
}
