//! Output capture end to end: a Job in an environment writes
//! `/qovery-output/qovery-output.json`, the injected agent hands it to the
//! server, and workloads admitted afterwards get the variables.
//!
//! Everything here is real: the webhook and the outputs API run as pods behind
//! their Service (`make deploy`), agents reach them by DNS, tokens are
//! projected by the kubelet and checked with TokenReview.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{ANNOTATION_OUTPUTS, LABEL_CAPTURE, SYSTEM_NAMESPACE, TOKEN_AUDIENCE};
use lifecycle_e2e::lifecycle::{environment, output_job, published, wait_published};
use lifecycle_e2e::{
    BUSYBOX, TIMEOUT, TestNamespace, client, events_for, job_pods, obj, pod_logs, server_post, unique_suffix,
    wait_for_deployment_available, wait_for_job_complete, wait_for_pod_running, wait_until,
};
use serde_json::json;

/// Creates a Job, retrying while admission still sees a deleted predecessor
/// with the same JOBID (the server's job index follows a watch).
pub async fn create_job_retrying(ns: &TestNamespace, job: &Job) -> Result<Job> {
    let api = ns.api::<Job>();
    wait_until(&format!("job {} is admitted", job.name_any()), Duration::from_secs(30), || async {
        match api.create(&PostParams::default(), job).await {
            Ok(j) => Ok(Some(j)),
            Err(kube::Error::Api(e)) if e.message.contains("already used by Job") => Ok(None),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// Waits for an Event with `reason` on a Job and returns its message.
pub async fn wait_event(client: &Client, ns: &str, job: &str, reason: &str) -> Result<Event> {
    wait_until(&format!("event {reason} on job {ns}/{job}"), TIMEOUT, || async {
        let events = events_for(client, ns, "Job", job).await?;
        Ok(events.into_iter().find(|e| e.reason.as_deref() == Some(reason)))
    })
    .await
}

fn postgres_file(password: &str) -> String {
    format!(
        r#"{{
  "POSTGRES_DB_HOST": {{ "sensitive": false, "value": "zf138d9c8-postgresql" }},
  "POSTGRES_DB_PORT": {{ "sensitive": false, "value": 5432 }},
  "POSTGRES_DB_USER": {{ "sensitive": false, "value": "qovery" }},
  "POSTGRES_DB_NAME": {{ "value": "app" }},
  "POSTGRES_DB_PASS": {{ "sensitive": true, "value": "{password}" }}
}}"#
    )
}

#[tokio::test]
async fn plain_job_publishes_the_postgres_example_and_a_deployment_gets_ten_variables() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "seed").await?;
    let password = format!("pw-{}-{}", unique_suffix(), unique_suffix());
    ns.create(&output_job("seed", Some("zf138d9c8"), None, &postgres_file(&password))).await?;
    wait_for_job_complete(&client, ns.name(), "seed", TIMEOUT).await?;

    let (cm, secret) = wait_published(&ns, "the seed's outputs are published", |cm, _| cm.len() == 8).await?;
    let full = |k: &str| format!("QOVERY_OUTPUT_JOB_ZF138D9C8_{k}");
    let mut want_cm = BTreeMap::new();
    for (k, v) in [
        ("POSTGRES_DB_HOST", "zf138d9c8-postgresql"),
        ("POSTGRES_DB_PORT", "5432"),
        ("POSTGRES_DB_USER", "qovery"),
        ("POSTGRES_DB_NAME", "app"),
    ] {
        want_cm.insert(full(k), v.to_string());
        want_cm.insert(k.to_string(), v.to_string());
    }
    assert_eq!(cm, want_cm, "the ConfigMap holds the four non-sensitive values, full names and aliases");
    let want_secret: BTreeMap<String, String> =
        [(full("POSTGRES_DB_PASS"), password.clone()), ("POSTGRES_DB_PASS".to_string(), password.clone())].into();
    assert_eq!(secret, want_secret, "the Secret holds the password and nothing else");

    let job = ns.api::<Job>().get("seed").await?;
    let summary = job.annotations().get(ANNOTATION_OUTPUTS).context("the Job carries the outputs summary")?;
    assert!(summary.contains("POSTGRES_DB_HOST") && summary.contains("POSTGRES_DB_PASS"), "{summary}");
    assert!(!summary.contains(&password), "the summary masks the password");
    wait_event(&client, ns.name(), "seed", "OutputsPublished").await?;

    // A Deployment created afterwards has all ten variables; its own env wins over an alias.
    let deploy: Deployment = obj(json!({
        "metadata": {"name": "app"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", "env | grep -E '^(QOVERY_OUTPUT_JOB_|POSTGRES_)' | sort; echo END; exec sleep 3600"],
                    "env": [{"name": "POSTGRES_DB_HOST", "value": "my-own-host"}]
                }]}
            }
        }
    }));
    ns.create(&deploy).await?;
    wait_for_deployment_available(&client, ns.name(), "app", TIMEOUT).await?;
    let pod =
        ns.api::<Pod>().list(&ListParams::default().labels("app=app")).await?.items.into_iter().next().context("app pod")?;
    let logs = wait_until("the app printed its environment", TIMEOUT, || async {
        let logs = pod_logs(&client, ns.name(), &pod.name_any(), None).await?;
        Ok(logs.contains("END").then_some(logs))
    })
    .await?;
    let env: BTreeMap<&str, &str> = logs.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(env.len(), 10, "ten variables: {:?}", env.keys().collect::<Vec<_>>());
    assert_eq!(env["POSTGRES_DB_HOST"], "my-own-host", "the workload's own env wins over the alias");
    assert_eq!(env[full("POSTGRES_DB_HOST").as_str()], "zf138d9c8-postgresql");
    assert_eq!(env["POSTGRES_DB_PASS"], password);
    assert_eq!(env[full("POSTGRES_DB_PASS").as_str()], password);
    assert_eq!(env["POSTGRES_DB_PORT"], "5432");

    // No component printed, recorded or annotated the password.
    assert_no_secret_anywhere(&client, &ns, &password).await
}

/// The password appears in no log of the server or of an agent, no Event and
/// no annotation of the environment.
async fn assert_no_secret_anywhere(client: &Client, ns: &TestNamespace, secret: &str) -> Result<()> {
    let mut places = Vec::new();
    let system: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    for pod in system.list(&ListParams::default()).await?.items {
        let logs = pod_logs(client, SYSTEM_NAMESPACE, &pod.name_any(), None).await.unwrap_or_default();
        places.push((format!("log of {}", pod.name_any()), logs));
    }
    for pod in ns.api::<Pod>().list(&ListParams::default()).await?.items {
        if let Ok(logs) = pod_logs(client, ns.name(), &pod.name_any(), Some("lifecycle-agent")).await {
            places.push((format!("agent log of {}", pod.name_any()), logs));
        }
        places.push((format!("annotations of pod {}", pod.name_any()), format!("{:?}", pod.annotations())));
    }
    for job in ns.api::<Job>().list(&ListParams::default()).await?.items {
        places.push((format!("annotations of job {}", job.name_any()), format!("{:?}", job.annotations())));
    }
    for e in ns.api::<Event>().list(&ListParams::default()).await?.items {
        places.push((format!("event {}", e.name_any()), format!("{:?} {:?}", e.reason, e.message)));
    }
    ensure!(places.len() > 3, "found too few places to check: {places:?}");
    for (place, text) in places {
        ensure!(!text.contains(secret), "the sensitive value appears in the {place}");
    }
    Ok(())
}

#[tokio::test]
async fn python_false_is_rejected_with_line_and_fix_and_earlier_outputs_stay() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "reject").await?;
    ns.create(&output_job("gen-1", Some("gen"), None, r#"{"COLOR": {"value": "blue"}}"#)).await?;
    wait_for_job_complete(&client, ns.name(), "gen-1", TIMEOUT).await?;
    wait_published(&ns, "the first outputs", |cm, _| cm.get("COLOR").is_some_and(|v| v == "blue")).await?;

    ns.api::<Job>().delete("gen-1", &DeleteParams::background()).await?;
    let bad = "{\n  \"COLOR\": {\"value\": \"red\",\n            \"sensitive\": False},\n  \"TOKEN\": {\"value\": \"s3cr3t-value\", \"sensitive\": true}\n}\n";
    create_job_retrying(&ns, &output_job("gen-2", Some("gen"), None, bad)).await?;
    wait_for_job_complete(&client, ns.name(), "gen-2", TIMEOUT).await?;
    let event = wait_event(&client, ns.name(), "gen-2", "OutputsRejected").await?;
    let message = event.message.unwrap_or_default();
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(message.contains("line 3"), "the Event names the line: {message}");
    assert!(message.contains("`false`"), "the Event gives the fix: {message}");
    assert!(!message.contains("s3cr3t-value") && !message.contains("red"), "no value in the Event: {message}");

    let (cm, secret) = published(&ns).await?;
    assert_eq!(cm.get("COLOR").map(String::as_str), Some("blue"), "the job's earlier outputs stay");
    assert!(!cm.contains_key("TOKEN") && !secret.contains_key("TOKEN"), "nothing of the rejected file is published");
    assert_no_secret_anywhere(&client, &ns, "s3cr3t-value").await
}

#[tokio::test]
async fn a_key_dropped_by_the_next_run_disappears_and_ttl_deletion_keeps_outputs() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "keys").await?;
    let mut first =
        output_job("keys-1", Some("keys"), None, r#"{"K1": {"value": "one"}, "K2": {"value": "two", "sensitive": true}}"#);
    first.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(3);
    ns.create(&first).await?;
    wait_published(&ns, "K1 and K2", |cm, s| cm.contains_key("K1") && s.contains_key("K2")).await?;
    // The TTL controller deletes the finished Job; its outputs stay.
    let jobs = ns.api::<Job>();
    wait_until("the TTL controller deleted keys-1", TIMEOUT, || async {
        Ok(jobs.get_opt("keys-1").await?.is_none().then_some(()))
    })
    .await?;
    let (cm, secret) = published(&ns).await?;
    assert_eq!(cm.get("QOVERY_OUTPUT_JOB_KEYS_K1").map(String::as_str), Some("one"));
    assert_eq!(secret.get("K2").map(String::as_str), Some("two"), "outputs stay when a plain Job is deleted");

    create_job_retrying(&ns, &output_job("keys-2", Some("keys"), None, r#"{"K1": {"value": "uno"}}"#)).await?;
    wait_for_job_complete(&client, ns.name(), "keys-2", TIMEOUT).await?;
    let (cm, secret) =
        wait_published(&ns, "K2 is gone", |cm, s| cm.get("K1").is_some_and(|v| v == "uno") && !s.contains_key("K2")).await?;
    assert_eq!(cm.get("QOVERY_OUTPUT_JOB_KEYS_K1").map(String::as_str), Some("uno"));
    assert!(!secret.contains_key("QOVERY_OUTPUT_JOB_KEYS_K2"), "the dropped key is removed: {secret:?}");
    Ok(())
}

/// Answer of the outputs API to a request sent from the test host through the
/// server's Service, as any pod could send it.
async fn post_outputs(client: &Client, token: &str, body: &str) -> Result<(u16, String)> {
    server_post(client, "/v1/outputs", Some(token), body).await
}

/// A token of the namespace's default service account bound to `pod`, with
/// the agent's audience: exactly what that pod could project for itself.
async fn pod_token(client: &Client, ns: &str, pod: &Pod, audience: &str) -> Result<String> {
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let req: TokenRequest = obj(json!({"spec": {
        "audiences": [audience], "expirationSeconds": 600,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name_any(), "uid": pod.uid()}
    }}));
    let out = sa.create_token_request("default", &PostParams::default(), &req).await?;
    Ok(out.status.context("token status")?.token)
}

fn sleeper(name: &str, labels: serde_json::Value) -> Pod {
    obj(json!({"metadata": {"name": name, "labels": labels}, "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]
    }}))
}

#[tokio::test]
async fn only_a_finished_jobs_own_agent_may_publish() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "authz").await?;
    let body = r#"{"STOLEN": {"value": "x"}}"#;

    // A workload pod of the environment, with a token of the right audience.
    ns.create(&sleeper("workload", json!({"app": "w"}))).await?;
    let workload = wait_for_pod_running(&client, ns.name(), "workload", TIMEOUT).await?;
    let token = pod_token(&client, ns.name(), &workload, TOKEN_AUDIENCE).await?;
    let (code, answer) = post_outputs(&client, &token, body).await?;
    assert_eq!(code, 403, "a workload pod is refused: {answer}");
    // The same pod with its ordinary API token (another audience).
    let api_token = pod_token(&client, ns.name(), &workload, "https://kubernetes.default.svc.cluster.local").await?;
    let (code, answer) = post_outputs(&client, &api_token, body).await?;
    assert_eq!(code, 401, "a token for another audience is refused: {answer}");
    // A pod that claims the capture label but belongs to no Job.
    ns.create(&sleeper("forger", json!({LABEL_CAPTURE: "STOLEN"}))).await?;
    let forger = wait_for_pod_running(&client, ns.name(), "forger", TIMEOUT).await?;
    let token = pod_token(&client, ns.name(), &forger, TOKEN_AUDIENCE).await?;
    let (code, answer) = post_outputs(&client, &token, body).await?;
    assert_eq!(code, 403, "a pod owned by no Job is refused: {answer}");
    // A forged token.
    let forged = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZvcmdlZCJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6eDp5In0.c2lnbmF0dXJl";
    let (code, answer) = post_outputs(&client, forged, body).await?;
    assert_eq!(code, 401, "a forged token is refused: {answer}");
    // A pod of another namespace, not an environment.
    let other = TestNamespace::new(&client, "authz-other").await?;
    other.create(&sleeper("outsider", json!({LABEL_CAPTURE: "STOLEN"}))).await?;
    let outsider = wait_for_pod_running(&client, other.name(), "outsider", TIMEOUT).await?;
    let token = pod_token(&client, other.name(), &outsider, TOKEN_AUDIENCE).await?;
    let (code, answer) = post_outputs(&client, &token, body).await?;
    assert_eq!(code, 403, "a pod outside the environments is refused: {answer}");

    // A job that links its output file to the agent's own token publishes nothing.
    let link: Job = {
        let mut j = output_job("link", None, None, "");
        let c = &mut j.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0];
        c.command = Some(vec![
            "sh".into(),
            "-c".into(),
            "ln -s /var/run/secrets/lifecycle-jobs.dev/token /qovery-output/qovery-output.json".into(),
        ]);
        j
    };
    ns.create(&link).await?;
    wait_for_job_complete(&client, ns.name(), "link", TIMEOUT).await?;
    let event = wait_event(&client, ns.name(), "link", "OutputsRejected").await?;
    let message = event.message.unwrap_or_default();
    assert!(message.contains("link"), "the Event says the file is a link: {message}");
    let agent_pod = job_pods(&client, ns.name(), "link").await?.into_iter().next().context("link pod")?;
    let terminated = agent_pod
        .status
        .and_then(|s| s.init_container_statuses)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "lifecycle-agent")
        .and_then(|c| c.state.and_then(|s| s.terminated))
        .context("the agent ended")?;
    assert!(terminated.message.unwrap_or_default().contains("link"), "the agent's termination message says why");

    let (cm, secret) = published(&ns).await?;
    assert!(cm.is_empty() && secret.is_empty(), "nothing was published: {cm:?} {:?}", secret.keys());
    Ok(())
}
