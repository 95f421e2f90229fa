//! The local cluster itself: what every later scenario relies on works as in
//! any real cluster. Pods get addresses and reach each other through Services
//! by DNS name, in their namespace and across namespaces; Jobs complete or fail;
//! native sidecars end with their Job; projected service-account tokens carry
//! an audience that TokenReview checks; namespaces delete.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use lifecycle_e2e::{
    BUSYBOX, TIMEOUT, TestNamespace, busybox_job, client, exec, http_service, httpd_deployment, job_logs, obj,
    wait_for_deployment_available, wait_for_job_complete, wait_for_job_failed, wait_for_pod_running, wget_with_retries,
};
use serde_json::json;

/// The token audience the product's server checks (DESIGN.md, Publishing).
const AUDIENCE: &str = "lifecycle-jobs.dev";

#[tokio::test]
async fn deployment_answers_through_its_service_by_dns_name() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "service-dns").await?;
    ns.create(&httpd_deployment("web", 2, "hello from web")).await?;
    ns.create(&http_service("web")).await?;
    wait_for_deployment_available(&client, ns.name(), "web", TIMEOUT).await?;

    // A client pod reaches the Service by its short name and by its full name.
    let fqdn = format!("web.{}.svc.cluster.local", ns.name());
    let script =
        format!("{} && echo && {}", wget_with_retries("http://web/", 30), wget_with_retries(&format!("http://{fqdn}/"), 30));
    ns.create(&busybox_job("client", &script)).await?;
    wait_for_job_complete(&client, ns.name(), "client", TIMEOUT).await?;
    let log = job_logs(&client, ns.name(), "client", None).await?;
    assert_eq!(log.matches("hello from web").count(), 2, "client output:\n{log}");

    // And a person can look inside a serving pod, as with `kubectl exec`.
    let pods: Api<Pod> = ns.api();
    let pod = pods.list(&kube::api::ListParams::default().labels("app=web")).await?.items.remove(0);
    let out = exec(&client, ns.name(), &pod.name_any(), None, &["cat", "/www/index.html"], TIMEOUT).await?;
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, "hello from web"), "stderr: {}", out.stderr);
    let out = exec(&client, ns.name(), &pod.name_any(), None, &["sh", "-c", "exit 3"], TIMEOUT).await?;
    assert_eq!(out.exit_code, 3);
    Ok(())
}

#[tokio::test]
async fn job_runs_to_completion() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "job").await?;
    ns.create(&busybox_job("hello", "echo started; sleep 1; echo done")).await?;

    let job = wait_for_job_complete(&client, ns.name(), "hello", TIMEOUT).await?;
    let status = job.status.unwrap_or_default();
    assert_eq!(status.succeeded, Some(1));
    assert!(status.completion_time.is_some(), "a complete Job records its completion time");
    assert_eq!(job_logs(&client, ns.name(), "hello", None).await?, "started\ndone\n");
    Ok(())
}

#[tokio::test]
async fn failing_job_is_reported_failed() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "job-fails").await?;
    ns.create(&busybox_job("broken", "echo about to fail; exit 7")).await?;

    let job = wait_for_job_failed(&client, ns.name(), "broken", TIMEOUT).await?;
    assert_eq!(job.status.unwrap_or_default().failed, Some(1));
    let pods = lifecycle_e2e::job_pods(&client, ns.name(), "broken").await?;
    let terminated = pods[0]
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs[0].state.as_ref().and_then(|s| s.terminated.as_ref()).map(|t| t.exit_code));
    assert_eq!(terminated, Some(7), "the container's exit code is reported");
    Ok(())
}

#[tokio::test]
async fn pod_reaches_a_service_in_another_namespace() -> Result<()> {
    let client = client().await?;
    let server = TestNamespace::new(&client, "server").await?;
    let other = TestNamespace::new(&client, "caller").await?;
    server.create(&httpd_deployment("api", 1, "served across namespaces")).await?;
    server.create(&http_service("api")).await?;
    wait_for_deployment_available(&client, server.name(), "api", TIMEOUT).await?;

    let url = format!("http://api.{}.svc.cluster.local/", server.name());
    let script = format!("nslookup api.{}.svc.cluster.local && {}", server.name(), wget_with_retries(&url, 30));
    other.create(&busybox_job("call", &script)).await?;
    wait_for_job_complete(&client, other.name(), "call", TIMEOUT).await?;
    let log = job_logs(&client, other.name(), "call", None).await?;
    assert!(log.contains("served across namespaces"), "caller output:\n{log}");
    Ok(())
}

/// Native sidecars (init containers with `restartPolicy: Always`) share an
/// emptyDir with the main container, outlive it, and do not keep the Job from
/// completing: the shape of every captured job pod.
#[tokio::test]
async fn native_sidecar_shares_an_empty_dir_and_ends_with_its_job() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "sidecar").await?;
    let job: Job = obj(json!({
        "metadata": { "name": "with-sidecar" },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "volumes": [{ "name": "shared", "emptyDir": {} }],
                    "initContainers": [{
                        "name": "sidecar",
                        "image": BUSYBOX,
                        "restartPolicy": "Always",
                        "command": ["sh", "-c",
                            "trap 'echo sidecar saw: $(cat /shared/out); exit 0' TERM; \
                             while :; do sleep 0.2; done"],
                        "volumeMounts": [{ "name": "shared", "mountPath": "/shared" }]
                    }],
                    "containers": [{
                        "name": "main",
                        "image": BUSYBOX,
                        "command": ["sh", "-c", "echo written-by-main > /shared/out"],
                        "volumeMounts": [{ "name": "shared", "mountPath": "/shared" }]
                    }]
                }
            }
        }
    }));
    ns.create(&job).await?;
    wait_for_job_complete(&client, ns.name(), "with-sidecar", TIMEOUT).await?;
    // The kubelet stops the sidecar once the main container has ended; the
    // sidecar then reads what main left in the shared volume.
    let log = lifecycle_e2e::wait_until("the sidecar has logged what main wrote", TIMEOUT, || {
        let client = client.clone();
        let ns = ns.name().to_string();
        async move {
            let log = job_logs(&client, &ns, "with-sidecar", Some("sidecar")).await?;
            Ok(log.contains("sidecar saw").then_some(log))
        }
    })
    .await?;
    assert_eq!(log.trim(), "sidecar saw: written-by-main");
    Ok(())
}

/// A projected service-account token requested for our audience is accepted
/// by TokenReview for that audience only, and names the pod it is bound to:
/// what the server's outputs API relies on.
#[tokio::test]
async fn projected_token_with_audience_passes_token_review() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "token").await?;
    let pod: Pod = obj(json!({
        "metadata": { "name": "holder" },
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "containers": [{
                "name": "main",
                "image": BUSYBOX,
                "command": ["sleep", "3600"],
                "volumeMounts": [{ "name": "token", "mountPath": "/var/run/secrets/lifecycle", "readOnly": true }]
            }],
            "volumes": [{
                "name": "token",
                "projected": { "sources": [{
                    "serviceAccountToken": { "audience": AUDIENCE, "expirationSeconds": 600, "path": "token" }
                }]}
            }]
        }
    }));
    ns.create(&pod).await?;
    let pod = wait_for_pod_running(&client, ns.name(), "holder", TIMEOUT).await?;
    let out = exec(&client, ns.name(), "holder", None, &["cat", "/var/run/secrets/lifecycle/token"], TIMEOUT).await?;
    assert_eq!(out.exit_code, 0, "stderr: {}", out.stderr);
    let token = out.stdout.trim().to_string();

    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = |audience: &str| -> TokenReview { obj(json!({ "spec": { "token": token, "audiences": [audience] } })) };
    let ours = reviews.create(&PostParams::default(), &review(AUDIENCE)).await?.status.unwrap_or_default();
    assert_eq!(ours.authenticated, Some(true), "error: {:?}", ours.error);
    assert_eq!(ours.audiences.as_deref(), Some(&[AUDIENCE.to_string()][..]));
    let user = ours.user.unwrap_or_default();
    assert_eq!(user.username.as_deref(), Some(format!("system:serviceaccount:{}:default", ns.name()).as_str()));
    let extra = user.extra.unwrap_or_default();
    assert_eq!(extra.get("authentication.kubernetes.io/pod-name"), Some(&vec!["holder".to_string()]));
    assert_eq!(extra.get("authentication.kubernetes.io/pod-uid"), Some(&vec![pod.uid().unwrap_or_default()]));

    let other = reviews.create(&PostParams::default(), &review("someone-else")).await?.status.unwrap_or_default();
    assert_ne!(other.authenticated, Some(true), "a token for {AUDIENCE} must not pass for another audience");
    Ok(())
}

#[tokio::test]
async fn namespace_deletion_completes() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::new(&client, "delete").await?;
    ns.create(&httpd_deployment("web", 1, "soon gone")).await?;
    wait_for_deployment_available(&client, ns.name(), "web", TIMEOUT).await?;
    // Deleting a namespace removes its workloads (their pods terminate) and then
    // the namespace itself.
    ns.delete_and_wait(Duration::from_secs(180)).await
}
