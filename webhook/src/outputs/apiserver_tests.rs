//! The outputs API's Kubernetes glue against a real API server, without a
//! kubelet: pods are created by hand and their container statuses written
//! through the status subresource; tokens are requested bound to those pods.
//!
//! Ignored by default. Run with an admin kubeconfig of a throwaway API server
//! (1.33+; no controllers needed):
//!
//! ```sh
//! LIFECYCLE_TEST_KUBECONFIG=/path/to/kubeconfig \
//!   cargo test -p lifecycle-webhook outputs::apiserver_tests -- --ignored --nocapture
//! ```
//!
//! The end-to-end suite (`tests/e2e`) covers the same paths on a full cluster
//! with the real agent.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::JobId;
use lifecycle_contract::names::{
    AGENT_ERROR_HEADER, ANNOTATION_OUTPUTS, LABEL_CAPTURE, LABEL_ENVIRONMENT, OUTPUTS_OBJECT, TOKEN_AUDIENCE,
};
use serde_json::{Value, json};

use super::handler::{ANNOTATION_OUTPUTS_PUBLISHED_BY, post_outputs};
use super::store::remove_job_outputs;
use crate::state::AppState;

async fn client() -> Client {
    let path = std::env::var("LIFECYCLE_TEST_KUBECONFIG")
        .expect("set LIFECYCLE_TEST_KUBECONFIG to a throwaway API server's admin kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

fn state(client: Client) -> AppState {
    use clap::Parser;
    AppState {
        config: Arc::new(crate::config::Config::parse_from(["lifecycle-webhook"])),
        client,
        metrics: Arc::new(crate::metrics::Metrics::new()),
        certs: crate::tls::CertStore::new(),
        jobs: crate::index::JobIndex::empty(),
        envs: crate::env_index::EnvIndex::empty(),
    }
}

struct Env {
    client: Client,
    ns: String,
}

impl Env {
    async fn new(client: Client, environment: bool) -> Env {
        let ns = format!("outputs-test-{}", rand::random::<u32>());
        let mut labels = BTreeMap::new();
        if environment {
            labels.insert(LABEL_ENVIRONMENT.to_string(), String::new());
        }
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.unwrap();
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "runner"}})).unwrap();
        Api::<ServiceAccount>::namespaced(client.clone(), &ns).create(&PostParams::default(), &sa).await.unwrap();
        Env { client, ns }
    }

    async fn job(&self, name: &str, annotations: Value) -> Job {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:local"}]}}}
        }))
        .unwrap();
        Api::<Job>::namespaced(self.client.clone(), &self.ns).create(&PostParams::default(), &job).await.unwrap()
    }

    /// A pod of `job` whose main container ended with `exit` (`None`: still running).
    async fn pod(&self, job: &Job, name: &str, exit: Option<i32>) -> Pod {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": {LABEL_CAPTURE: "X"},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job.name_any(), "uid": job.uid().unwrap(), "controller": true}]
            },
            "spec": {"serviceAccountName": "runner", "restartPolicy": "Never", "automountServiceAccountToken": false,
                     "containers": [{"name": "main", "image": "busybox:local"}]}
        }))
        .unwrap();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let pod = pods.create(&PostParams::default(), &pod).await.unwrap();
        let state = match exit {
            Some(code) => json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}),
            None => json!({"running": {}}),
        };
        let status = json!({"status": {"containerStatuses": [{"name": "main", "image": "busybox:local", "imageID": "", "ready": false, "restartCount": 0, "state": state}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        pod
    }

    async fn token(&self, pod: Option<&Pod>, audience: &str) -> String {
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![audience.to_string()],
                bound_object_ref: pod.map(|p| BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(p.name_any()),
                    uid: p.uid(),
                }),
                expiration_seconds: Some(600),
            },
            ..Default::default()
        };
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &self.ns);
        sas.create_token_request("runner", &PostParams::default(), &request).await.unwrap().status.unwrap().token
    }

    async fn config_map(&self) -> BTreeMap<String, String> {
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        cms.get_opt(OUTPUTS_OBJECT).await.unwrap().and_then(|c| c.data).unwrap_or_default()
    }

    async fn secret(&self) -> BTreeMap<String, String> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let data = secrets.get_opt(OUTPUTS_OBJECT).await.unwrap().and_then(|s| s.data).unwrap_or_default();
        data.into_iter().map(|(k, v)| (k, String::from_utf8(v.0).unwrap())).collect()
    }

    async fn annotations(&self, job: &str) -> BTreeMap<String, String> {
        Api::<Job>::namespaced(self.client.clone(), &self.ns).get(job).await.unwrap().metadata.annotations.unwrap_or_default()
    }

    /// `reason: note` of the Events on `job`.
    async fn events(&self, job: &str) -> Vec<String> {
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), &self.ns);
        let mut list: Vec<K8sEvent> = events.list(&ListParams::default()).await.unwrap().items;
        list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        list.into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(job))
            .map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    async fn delete(self) {
        let _ = Api::<Namespace>::all(self.client.clone()).delete(&self.ns, &Default::default()).await;
    }
}

async fn post(state: &AppState, token: Option<&str>, body: &str, agent_error: Option<&str>) -> (StatusCode, Value) {
    let mut headers = HeaderMap::new();
    if let Some(t) = token {
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
    }
    if let Some(e) = agent_error {
        headers.insert(AGENT_ERROR_HEADER, HeaderValue::from_str(e).unwrap());
    }
    let response = post_outputs(State(state.clone()), headers, Body::from(body.to_string())).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    println!("{status}: {}", String::from_utf8_lossy(&bytes));
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

const SEED_FILE: &str = r#"{ "POSTGRES_DB_HOST": { "sensitive": false, "value": "zf138d9c8-postgresql" },
  "POSTGRES_DB_PASS": { "sensitive": true,  "value": "mypassword" },
  "PORT": { "value": 5432 } }"#;

#[tokio::test]
#[ignore = "needs a throwaway API server: LIFECYCLE_TEST_KUBECONFIG"]
async fn publishes_replaces_takes_over_and_removes() {
    let client = client().await;
    let state = state(client.clone());
    let env = Env::new(client.clone(), true).await;
    let ns = env.ns.clone();

    // A successful pod publishes: full names and aliases, split by sensitivity.
    let seed = env.job("seed", json!({})).await;
    let pod1 = env.pod(&seed, "seed-1", Some(0)).await;
    let token1 = env.token(Some(&pod1), TOKEN_AUDIENCE).await;
    let (status, body) = post(&state, Some(&token1), SEED_FILE, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outputs"], 3);
    let cm = env.config_map().await;
    assert_eq!(cm["QOVERY_OUTPUT_JOB_SEED_POSTGRES_DB_HOST"], "zf138d9c8-postgresql");
    assert_eq!(cm["POSTGRES_DB_HOST"], "zf138d9c8-postgresql");
    assert_eq!(cm["PORT"], "5432");
    assert_eq!(cm.len(), 4, "{cm:?}");
    let secret = env.secret().await;
    assert_eq!(secret["QOVERY_OUTPUT_JOB_SEED_POSTGRES_DB_PASS"], "mypassword");
    assert_eq!(secret.len(), 2, "{secret:?}");
    let ann = env.annotations("seed").await;
    assert_eq!(
        ann[ANNOTATION_OUTPUTS],
        r#"{"PORT":"5432","POSTGRES_DB_HOST":"zf138d9c8-postgresql","POSTGRES_DB_PASS":"<sensitive>"}"#
    );
    assert_eq!(ann[ANNOTATION_OUTPUTS_PUBLISHED_BY], format!("seed-1/{}", pod1.uid().unwrap()));

    // The same pod again: idempotent; with other content: refused.
    let (status, body) = post(&state, Some(&token1), SEED_FILE, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["message"].as_str().unwrap().contains("already published"), "{body}");
    let (status, body) = post(&state, Some(&token1), r#"{"A": {"value": "1"}}"#, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // An invalid file: 422 with every error, a Warning Event, nothing changes.
    let pod2 = env.pod(&seed, "seed-2", Some(0)).await;
    let token2 = env.token(Some(&pod2), TOKEN_AUDIENCE).await;
    let (status, body) = post(&state, Some(&token2), "{\n  \"A\": {\"value\": \"x\", \"sensitive\": False}\n}", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["errors"][0].as_str().unwrap().contains("line 2"), "{body}");
    assert_eq!(env.config_map().await, cm);
    // The agent's error header: 422 and an Event.
    let (status, body) = post(&state, Some(&token2), "", Some("the output file is a symbolic link")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // An empty file: nothing changes.
    let (status, body) = post(&state, Some(&token2), "", None).await;
    assert_eq!((status, body["outputs"].as_u64()), (StatusCode::OK, Some(0)), "{body}");

    // Another job takes the alias PORT over (the later publish wins), and
    // makes POSTGRES_DB_PASS non-sensitive: the Secret's alias goes.
    let other = env.job("other", json!({})).await;
    state.jobs.record(&ns, "seed", &seed.uid().unwrap(), JobId::parse("SEED").unwrap());
    let pod3 = env.pod(&other, "other-1", Some(0)).await;
    let token3 = env.token(Some(&pod3), TOKEN_AUDIENCE).await;
    let (status, body) =
        post(&state, Some(&token3), r#"{"PORT": {"value": "6543"}, "POSTGRES_DB_PASS": {"value": "visible"}}"#, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cm = env.config_map().await;
    assert_eq!(cm["PORT"], "6543");
    assert_eq!(cm["QOVERY_OUTPUT_JOB_SEED_PORT"], "5432");
    assert_eq!(cm["POSTGRES_DB_PASS"], "visible");
    let secret = env.secret().await;
    assert!(!secret.contains_key("POSTGRES_DB_PASS"), "{secret:?}");
    assert!(secret.contains_key("QOVERY_OUTPUT_JOB_SEED_POSTGRES_DB_PASS"));

    // SEED publishes again without PORT and without the password: they go,
    // OTHER's alias PORT stays.
    let (status, body) = post(&state, Some(&token2), r#"{"POSTGRES_DB_HOST": {"value": "h2"}}"#, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cm = env.config_map().await;
    assert_eq!(
        cm.keys().collect::<Vec<_>>(),
        [
            "PORT",
            "POSTGRES_DB_HOST",
            "POSTGRES_DB_PASS",
            "QOVERY_OUTPUT_JOB_OTHER_PORT",
            "QOVERY_OUTPUT_JOB_OTHER_POSTGRES_DB_PASS",
            "QOVERY_OUTPUT_JOB_SEED_POSTGRES_DB_HOST"
        ]
    );
    assert_eq!(cm["PORT"], "6543");
    assert!(env.secret().await.is_empty());

    // Removing SEED's outputs leaves OTHER's.
    remove_job_outputs(&client, &ns, &JobId::parse("SEED").unwrap()).await.unwrap();
    let cm = env.config_map().await;
    assert_eq!(
        cm.keys().collect::<Vec<_>>(),
        ["PORT", "POSTGRES_DB_PASS", "QOVERY_OUTPUT_JOB_OTHER_PORT", "QOVERY_OUTPUT_JOB_OTHER_POSTGRES_DB_PASS"]
    );
    remove_job_outputs(&client, &ns, &JobId::parse("SEED").unwrap()).await.unwrap();
    remove_job_outputs(&client, "no-such-namespace", &JobId::parse("SEED").unwrap()).await.unwrap();

    let seed_events = env.events("seed").await;
    println!("events on seed:\n  {}", seed_events.join("\n  "));
    let other_events = env.events("other").await;
    println!("events on other:\n  {}", other_events.join("\n  "));
    assert!(
        seed_events.iter().any(|e| e.starts_with(
            "OutputsRejected: output file rejected (1 error), nothing published, the job's earlier outputs stay: line 2"
        )),
        "{seed_events:?}"
    );
    assert!(seed_events.iter().any(|e| e.contains("symbolic link")));
    assert!(
        seed_events.iter().any(|e| e.starts_with("OutputAliasTakenOver: variables PORT, POSTGRES_DB_PASS, written by job SEED"))
    );
    assert!(other_events.iter().any(|e| e.starts_with("OutputAliasTakenOver: variable")));
    for e in seed_events.iter().chain(&other_events) {
        assert!(!e.contains("mypassword"), "{e}");
    }
    env.delete().await;
}

#[tokio::test]
#[ignore = "needs a throwaway API server: LIFECYCLE_TEST_KUBECONFIG"]
async fn refuses_strangers_and_unsuccessful_jobs() {
    let client = client().await;
    let state = state(client.clone());
    let env = Env::new(client.clone(), true).await;
    let job = env.job("seed", json!({})).await;

    // No token, a forged one, one for another audience, one not bound to a pod.
    assert_eq!(post(&state, None, SEED_FILE, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(post(&state, Some("eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), SEED_FILE, None).await.0, StatusCode::UNAUTHORIZED);
    let ok = env.pod(&job, "seed-ok", Some(0)).await;
    let (status, body) = post(&state, Some(&env.token(Some(&ok), "https://kubernetes.default.svc").await), SEED_FILE, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = post(&state, Some(&env.token(None, TOKEN_AUDIENCE).await), SEED_FILE, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not bound to a pod"), "{body}");

    // A failed main container: 409 and an Event.
    let failed = env.pod(&job, "seed-failed", Some(3)).await;
    let (status, body) = post(&state, Some(&env.token(Some(&failed), TOKEN_AUDIENCE).await), SEED_FILE, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("main container main exited with code 3"), "{body}");

    // Still running after the wait: 503 with Retry-After (takes STATUS_WAIT).
    let running = env.pod(&job, "seed-running", None).await;
    let (status, body) = post(&state, Some(&env.token(Some(&running), TOKEN_AUDIENCE).await), SEED_FILE, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // A Job that opted out.
    let opted_out = env.job("quiet", json!({"lifecycle-jobs.dev/capture-output": "false"})).await;
    let pod = env.pod(&opted_out, "quiet-1", Some(0)).await;
    let (status, body) = post(&state, Some(&env.token(Some(&pod), TOKEN_AUDIENCE).await), SEED_FILE, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A pod of a namespace that is not an environment.
    let plain = Env::new(client.clone(), false).await;
    let job2 = plain.job("seed", json!({})).await;
    let pod = plain.pod(&job2, "seed-1", Some(0)).await;
    let (status, body) = post(&state, Some(&plain.token(Some(&pod), TOKEN_AUDIENCE).await), SEED_FILE, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not an environment"), "{body}");

    assert!(env.config_map().await.is_empty());
    println!("events on seed:\n  {}", env.events("seed").await.join("\n  "));
    env.delete().await;
    plain.delete().await;
}

#[tokio::test]
#[ignore = "needs a throwaway API server: LIFECYCLE_TEST_KUBECONFIG"]
async fn a_run_publishes_as_its_template_and_reports_there_too() {
    let client = client().await;
    let state = state(client.clone());
    let env = Env::new(client.clone(), true).await;
    let template = env.job("seed", json!({"lifecycle-jobs.dev/on": "start"})).await;
    let run: Job = serde_json::from_value(json!({
        "metadata": {
            "name": "seed-start-x1",
            "annotations": {"lifecycle-jobs.dev/job-id": "SEED"},
            "labels": {"lifecycle-jobs.dev/run": "r1", "lifecycle-jobs.dev/job": "seed", "lifecycle-jobs.dev/event": "start"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "seed", "uid": template.uid().unwrap(), "controller": true}]
        },
        "spec": {"suspend": true, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:local"}]}}}
    }))
    .unwrap();
    let run = Api::<Job>::namespaced(client.clone(), &env.ns).create(&PostParams::default(), &run).await.unwrap();
    let pod = env.pod(&run, "seed-start-x1-abc", Some(0)).await;
    let (status, body) = post(&state, Some(&env.token(Some(&pod), TOKEN_AUDIENCE).await), SEED_FILE, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(env.config_map().await.contains_key("QOVERY_OUTPUT_JOB_SEED_PORT"));
    let on_template = env.annotations("seed").await;
    assert_eq!(on_template[ANNOTATION_OUTPUTS], env.annotations("seed-start-x1").await[ANNOTATION_OUTPUTS]);
    assert!(!on_template.contains_key(ANNOTATION_OUTPUTS_PUBLISHED_BY));
    assert!(env.events("seed").await.iter().any(|e| e.starts_with("OutputsPublished: published 3 outputs of job SEED")));
    assert!(env.events("seed-start-x1").await.iter().any(|e| e.starts_with("OutputsPublished")));
    env.delete().await;
}
