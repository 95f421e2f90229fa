//! The trust boundary, tested as the attacker: raw requests to the server,
//! users with only the rights named (`kubectl --as`), Jobs and Pods made by
//! hand. Each attack fails and writes nothing; the legitimate path beside it
//! still works. docs/security.md describes the model these tests hold it to.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{ANNOTATION_JOB_ID, LABEL_CAPTURE, LABEL_ENVIRONMENT, LABEL_RUN, LABEL_STATE};
use lifecycle_e2e::lifecycle::{environment, lifecycle_job, output_job, published, runs, small_deployment, wait_published};
use lifecycle_e2e::{
    BUSYBOX, TIMEOUT, TestNamespace, client, client_as, events_for, obj, server_post, unique_suffix, wait_for_job_complete,
    wait_until,
};
use serde_json::json;

use crate::capture::{create_job_retrying, wait_event};

/// The refusal message of an API error, or a failure if the request passed.
pub(crate) fn refused<T>(what: &str, r: Result<T, kube::Error>) -> Result<String> {
    match r {
        Ok(_) => bail!("{what} was accepted"),
        Err(kube::Error::Api(e)) => Ok(e.message),
        Err(e) => Err(e.into()),
    }
}

async fn label(client: &Client, ns: &str, key: &str, value: Option<&str>) -> Result<Namespace, kube::Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(ns, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {key: value}}}))).await
}

#[tokio::test]
async fn security_a_forged_namespace_delete_writes_nothing() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "sec-forged").await?;
    let name = ns.name().to_string();
    ns.create(&lifecycle_job("teardown", "delete", "echo tearing down", false)).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let live = namespaces.get(&name).await?;

    // Any client that reaches the server's Service, with no credential: a
    // hand-made AdmissionReview for `DELETE namespace <name>`.
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "forged-1", "kind": {"group": "", "version": "v1", "kind": "Namespace"},
        "resource": {"group": "", "version": "v1", "resource": "namespaces"},
        "operation": "DELETE", "name": name, "oldObject": live, "dryRun": false,
        "userInfo": {"username": "system:admin", "groups": ["system:masters"]}
    }});
    // The server answers from its watch: wait until it knows the template.
    let answer = wait_until("the server refuses the forged delete", TIMEOUT, || async {
        let (code, body) = server_post(&client, "/validate", None, &review.to_string()).await?;
        ensure!(code == 200, "HTTP {code}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body)?;
        Ok((v["response"]["allowed"] == false).then_some(v))
    })
    .await?;
    let message = answer["response"]["status"]["message"].as_str().unwrap_or_default().to_string();
    assert!(message.contains(&format!("kubectl lifecycle env delete {name}")), "says what to run: {message}");
    assert!(!message.contains("teardown"), "names no job: {message}");

    // A server-side dry run, through the real API server: refused, nothing written.
    let dry = DeleteParams { dry_run: true, ..DeleteParams::default() };
    let message = refused("a dry-run delete", namespaces.delete(&name, &dry).await)?;
    assert!(message.contains("has delete jobs"), "{message}");

    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = namespaces.get(&name).await?;
    assert_eq!(after.labels().get(LABEL_STATE), None, "no state label was written");
    assert!(after.metadata.deletion_timestamp.is_none(), "the namespace stays");
    assert!(runs(&client, &name, "teardown", "delete").await?.is_empty(), "no delete run was started");
    Ok(())
}

/// A user `name` who may read and patch namespaces (cluster-wide) and nothing else.
async fn namespace_patcher(client: &Client, name: &str) -> Result<()> {
    let rules = json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch", "patch", "update"]}]);
    crate::trust::cluster_grant(client, name, rules).await
}

#[tokio::test]
async fn security_labels_need_the_rights_they_stand_for() -> Result<()> {
    let client = client().await?;
    let user = format!("mallory-{}", unique_suffix());
    namespace_patcher(&client, &user).await?;
    let result = labels_need_rights(&client, &user).await;
    crate::trust::remove_cluster_grant(&client, &user).await;
    result
}

async fn labels_need_rights(client: &Client, user: &str) -> Result<()> {
    let ns = environment(client, "sec-labels").await?;
    let name = ns.name().to_string();
    ns.create(&small_deployment("web", 1, &["sleep", "3600"])).await?;
    let plain = TestNamespace::new(client, "sec-plain").await?;
    let mallory = client_as(user).await?;

    // Only the right to patch namespaces: stopping, deleting, or making an
    // environment (which the controller then scales) are refused.
    for (target, key, value, want) in [
        (name.as_str(), LABEL_STATE, Some("stopped"), "deployments/scale"),
        (name.as_str(), LABEL_STATE, Some("deleted"), "right to delete that namespace"),
        (name.as_str(), LABEL_ENVIRONMENT, None, "deployments/scale"),
        (plain.name(), LABEL_ENVIRONMENT, Some(""), "deployments/scale"),
    ] {
        let message = refused(&format!("{user} setting {key}={value:?} on {target}"), label(&mallory, target, key, value).await)?;
        assert!(message.contains(want) && message.contains(user), "{message}");
    }
    // Nobody makes the cluster's own namespaces environments, not even an admin.
    let message =
        refused("labelling kube-public an environment", label(client, "kube-public", LABEL_ENVIRONMENT, Some("")).await)?;
    assert!(message.contains("never an environment"), "{message}");
    // A state that is not one is refused with the values to write.
    let message = refused("state=paused", label(client, &name, LABEL_STATE, Some("paused")).await)?;
    assert!(message.contains("started, stopped or deleted"), "{message}");
    // Other labels stay free.
    label(&mallory, &name, "team", Some("blue")).await?;

    // With the scale rights in that namespace, the same user stops it, and the controller scales to zero.
    let role: Role = obj(json!({"metadata": {"name": "scaler"}, "rules": [{"apiGroups": ["apps"],
        "resources": ["deployments/scale", "statefulsets/scale"], "verbs": ["update"]}]}));
    let binding: RoleBinding = obj(json!({"metadata": {"name": "scaler"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "scaler"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}));
    ns.create(&role).await?;
    ns.create(&binding).await?;
    wait_until("the scaler stops the environment", Duration::from_secs(30), || async {
        Ok(label(&mallory, &name, LABEL_STATE, Some("stopped")).await.ok().map(|_| ()))
    })
    .await?;
    let deployments = ns.api::<k8s_openapi::api::apps::v1::Deployment>();
    wait_until("the controller scales web to zero", TIMEOUT, || async {
        let d = deployments.get("web").await?;
        Ok((d.spec.and_then(|s| s.replicas) == Some(0)).then_some(()))
    })
    .await
}

#[tokio::test]
async fn security_nobody_writes_another_jobs_outputs() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "sec-jobid").await?;
    let name = ns.name().to_string();
    ns.create(&output_job("victim", None, None, r#"{"VICTIM_KEY": {"value": "original"}}"#)).await?;
    let victim = wait_for_job_complete(&client, &name, "victim", TIMEOUT).await?;
    wait_published(&ns, "the victim publishes", |cm, _| cm.get("VICTIM_KEY").is_some_and(|v| v == "original")).await?;
    let stolen = r#"{"VICTIM_KEY": {"value": "stolen"}}"#;

    // 1. A Job that calls itself a run.
    let mut fake_run = output_job("fake-run", Some("VICTIM"), None, stolen);
    fake_run.labels_mut().insert(LABEL_RUN.into(), "1".into());
    let message = refused("a Job with the run label", ns.api::<Job>().create(&PostParams::default(), &fake_run).await)?;
    assert!(message.contains("reserved for the runs"), "{message}");

    // 2. A Job whose job-id is changed after admission.
    let mut sleeper = output_job("sleeper", Some("SLEEPER"), None, stolen);
    sleeper.spec.as_mut().unwrap().suspend = Some(true);
    ns.create(&sleeper).await?;
    let repoint = json!({"metadata": {"annotations": {ANNOTATION_JOB_ID: "VICTIM"}}});
    let message =
        refused("changing job-id", ns.api::<Job>().patch("sleeper", &PatchParams::default(), &Patch::Merge(&repoint)).await)?;
    assert!(message.contains("cannot change"), "{message}");

    // 3. A hand-made pod with the victim's capture label and the victim as controller,
    //    at creation or by a later edit.
    let owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "victim", "uid": victim.uid(), "controller": true}]);
    let forged: Pod = obj(json!({"metadata": {"name": "forged", "labels": {LABEL_CAPTURE: "VICTIM"}, "ownerReferences": owner},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "echo '{}' > /qovery-output/qovery-output.json"]}]}}));
    let message = refused("a hand-made pod of the victim Job", ns.api::<Pod>().create(&PostParams::default(), &forged).await)?;
    assert!(message.contains("only the Job controller"), "{message}");
    let mut unlabelled = forged.clone();
    unlabelled.labels_mut().clear();
    unlabelled.metadata.name = Some("forged-later".into());
    ns.create(&unlabelled).await?;
    let relabel = json!({"metadata": {"labels": {LABEL_CAPTURE: "VICTIM"}}});
    let message = refused(
        "labelling a hand-made pod of the victim Job",
        ns.api::<Pod>().patch("forged-later", &PatchParams::default(), &Patch::Merge(&relabel)).await,
    )?;
    assert!(message.contains("only the Job controller"), "{message}");

    // 4. Two Jobs with one JOBID created at the same moment (inside the watch's lag):
    //    at most the first publishes.
    let a = output_job("race-a", Some("RACE"), None, r#"{"RACE_KEY": {"value": "a"}}"#);
    let b = output_job("race-b", Some("RACE"), None, r#"{"RACE_KEY": {"value": "b"}}"#);
    let jobs = ns.api::<Job>();
    let pp = PostParams::default();
    let (ra, rb) = tokio::join!(jobs.create(&pp, &a), jobs.create(&pp, &b));
    let admitted: Vec<Job> = [ra, rb].into_iter().filter_map(Result::ok).collect();
    ensure!(!admitted.is_empty(), "neither racing Job was admitted");
    let first = admitted.iter().min_by_key(|j| (j.creation_timestamp().map(|t| t.0), j.name_any())).context("first")?.name_any();
    for j in &admitted {
        let _ = wait_for_job_complete(&client, &name, &j.name_any(), TIMEOUT).await;
    }
    let want = if first == "race-a" { "a" } else { "b" };
    wait_published(&ns, "the first racer publishes", |cm, _| cm.get("RACE_KEY").is_some_and(|v| v == want)).await?;
    if admitted.len() == 2 {
        let loser = if first == "race-a" { "race-b" } else { "race-a" };
        let event = wait_event(&client, &name, loser, "OutputsRejected").await?;
        assert!(event.message.unwrap_or_default().contains("created first"), "the loser is told why");
    }

    // The victim's outputs are untouched, and nobody took them over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cm, _) = published(&ns).await?;
    assert_eq!(cm.get("VICTIM_KEY").map(String::as_str), Some("original"));
    assert_eq!(cm.get("QOVERY_OUTPUT_JOB_VICTIM_VICTIM_KEY").map(String::as_str), Some("original"));
    let events = events_for(&client, &name, "Job", "victim").await?;
    assert!(!events.iter().any(|e| e.reason.as_deref() == Some("OutputAliasTakenOver")), "no takeover of the victim");
    Ok(())
}

#[tokio::test]
async fn security_unusable_job_ids_are_refused_and_generate_name_publishes_under_its_prefix() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "sec-names").await?;
    for (id, rule) in [("a".repeat(64), "at most 63"), ("-edge".to_string(), "start and end with a letter or digit")] {
        let job = output_job("bad", Some(&id), None, "{}");
        let message = refused(&format!("job-id {id:?}"), ns.api::<Job>().create(&PostParams::default(), &job).await)?;
        assert!(message.contains(rule), "{message}");
    }
    let mut generated = output_job("", None, None, r#"{"K": {"value": "v"}}"#);
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("genid-".into());
    let created = ns.api::<Job>().create(&PostParams::default(), &generated).await?;
    assert_eq!(created.annotations().get(ANNOTATION_JOB_ID).map(String::as_str), Some("GENID"), "recorded at admission");
    wait_published(&ns, "the generateName Job publishes", |cm, _| cm.get("QOVERY_OUTPUT_JOB_GENID_K").is_some_and(|v| v == "v"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn security_reserved_names_get_no_alias() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "sec-reserved").await?;
    let file = r#"{"PATH": {"value": "/evil"}, "LD_PRELOAD": {"value": "/evil.so"}, "DB_HOST": {"value": "db"}}"#;
    create_job_retrying(&ns, &output_job("res", None, None, file)).await?;
    let (cm, _) =
        wait_published(&ns, "res publishes", |cm, _| cm.get("QOVERY_OUTPUT_JOB_RES_PATH").is_some_and(|v| v == "/evil")).await?;
    assert_eq!(cm.get("DB_HOST").map(String::as_str), Some("db"), "an ordinary alias is published");
    assert!(!cm.contains_key("PATH") && !cm.contains_key("LD_PRELOAD"), "no reserved alias: {:?}", cm.keys());
    assert!(cm.contains_key("QOVERY_OUTPUT_JOB_RES_LD_PRELOAD"));
    let event = wait_event(&client, ns.name(), "res", "OutputAliasReserved").await?;
    let note = event.message.unwrap_or_default();
    assert!(note.contains("PATH") && note.contains("LD_PRELOAD"), "{note}");
    Ok(())
}

#[tokio::test]
async fn security_a_cron_jobs_jobs_publish_under_the_cron_jobs_job_id() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "sec-cron").await?;
    let cron: CronJob = obj(json!({"metadata": {"name": "nightly", "annotations": {ANNOTATION_JOB_ID: "backup"}},
        "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo '{\"LAST\": {\"value\": \"done\"}}' > /qovery-output/qovery-output.json"]}]}}}}}}));
    let created = ns.create(&cron).await?;
    let handed = created.spec.as_ref().and_then(|s| s.job_template.metadata.as_ref()).and_then(|m| m.annotations.as_ref());
    assert_eq!(handed.and_then(|a| a.get(ANNOTATION_JOB_ID)).map(String::as_str), Some("BACKUP"));
    // The CronJob controller's first Job (within a minute) publishes as BACKUP, not under its own name.
    wait_until("the CronJob's Job publishes", Duration::from_secs(150), || async {
        let (cm, _) = published(&ns).await?;
        Ok(cm.get("QOVERY_OUTPUT_JOB_BACKUP_LAST").is_some_and(|v| v == "done").then_some(()))
    })
    .await?;
    let jobs = ns.api::<Job>().list(&Default::default()).await?;
    for j in &jobs.items {
        assert_eq!(j.annotations().get(ANNOTATION_JOB_ID).map(String::as_str), Some("BACKUP"), "{}", j.name_any());
    }
    let (cm, _) = published(&ns).await?;
    assert!(cm.keys().all(|k| !k.starts_with("QOVERY_OUTPUT_JOB_NIGHTLY")), "no JOBID per run: {:?}", cm.keys());
    let stop = json!({"spec": {"suspend": true}});
    ns.api::<CronJob>().patch("nightly", &PatchParams::default(), &Patch::Merge(&stop)).await?;
    Ok(())
}
