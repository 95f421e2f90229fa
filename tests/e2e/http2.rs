//! The server offers HTTP/2 and HTTP/1.1 on its TLS port (ALPN) and counts
//! its requests by protocol (`lifecycle_http_requests_total{protocol,
//! endpoint}` on the admin port, read here through the API server's pod proxy,
//! as `kubectl get --raw` would).
//!
//! The API server itself calls service-referenced admission webhooks over
//! HTTP/1.1 whatever the server offers: since Kubernetes 1.16 its webhook
//! client sets `NextProtos = ["http/1.1"]` (k8s.io/apiserver
//! `pkg/util/webhook/client.go`, kubernetes/kubernetes#82090: an HTTP/2 client
//! would put every call on one connection, to one replica), and only a
//! webhook URL on a loopback address may use HTTP/2 (#122558). So these tests
//! show the API server's admissions arriving and being counted, whatever
//! their protocol, and HTTP/2 from a client that takes it (curl) on both the
//! admission and the outputs endpoints of the deployed server.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::SYSTEM_NAMESPACE;
use lifecycle_e2e::lifecycle::environment;
use lifecycle_e2e::{BUSYBOX, TIMEOUT, client, obj, server_request, wait_until};
use serde_json::json;

/// Sum over the server's pods of `lifecycle_http_requests_total` for one
/// protocol and endpoint.
async fn requests(client: &Client, protocol: &str, endpoint: &str) -> Result<u64> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let lp = ListParams::default().labels("app.kubernetes.io/name=lifecycle-webhook");
    let wanted = format!(r#"lifecycle_http_requests_total{{protocol="{protocol}",endpoint="{endpoint}"}} "#);
    let mut sum = 0;
    for pod in pods.list(&lp).await?.items.iter().filter(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()) {
        let path = format!("/api/v1/namespaces/{SYSTEM_NAMESPACE}/pods/{}:9090/proxy/metrics", pod.name_any());
        let text = client
            .request_text(http::Request::get(path).body(Vec::new())?)
            .await
            .with_context(|| format!("metrics of {}", pod.name_any()))?;
        for line in text.lines() {
            if let Some(n) = line.strip_prefix(&wanted) {
                sum += n.trim().parse::<f64>().context("a counter value")? as u64;
            }
        }
    }
    Ok(sum)
}

/// Both protocols' `/mutate` requests, summed over the server's replicas.
async fn admissions(client: &Client) -> Result<u64> {
    Ok(requests(client, "HTTP/1.1", "mutate").await? + requests(client, "HTTP/2", "mutate").await?)
}

#[tokio::test]
async fn http2_the_api_server_admissions_are_counted_by_protocol() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "http2").await?;
    let before = (requests(&client, "HTTP/1.1", "mutate").await?, requests(&client, "HTTP/2", "mutate").await?);

    // A few pods, each admitted by the webhook through the API server.
    const PODS: u64 = 4;
    for i in 0..PODS {
        let pod: Pod = obj(json!({
            "metadata": {"name": format!("web-{i}")},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]
            }]}
        }));
        let pod = ns.create(&pod).await?;
        let env_from = pod.spec.as_ref().and_then(|s| s.containers[0].env_from.clone()).unwrap_or_default();
        ensure!(!env_from.is_empty(), "pod {} was admitted without its variables: {env_from:?}", pod.name_any());
    }

    // Counters are read from every replica; other tests add to them, never subtract.
    let after = wait_until("the server counts the API server's admissions", TIMEOUT, || async {
        let now = admissions(&client).await?;
        Ok((now >= before.0 + before.1 + PODS).then_some(now))
    })
    .await?;
    let by_protocol = (requests(&client, "HTTP/1.1", "mutate").await?, requests(&client, "HTTP/2", "mutate").await?);
    eprintln!("/mutate requests (HTTP/1.1, HTTP/2): before {before:?}, after {by_protocol:?} (total {after})");
    Ok(())
}

/// A client that takes HTTP/2 gets it: an admission answered with its patch,
/// and the outputs API (agents use HTTP/1.1) refusing a request without a
/// token, over both protocols.
#[tokio::test]
async fn http2_admission_and_the_outputs_api_answer_over_both_protocols() -> Result<()> {
    let client = client().await?;
    // A pod review as the API server sends it (answering it writes nothing).
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "http2-1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
        "namespace": "e2e-http2-none", "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
            "spec": {"containers": [{"name": "main", "image": BUSYBOX}]}}}})
    .to_string();
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let answer = server_request(&client, flag, "/mutate", None, &review).await?;
        assert_eq!((answer.version.as_str(), answer.status), (version, 200), "curl {flag} /mutate: {}", answer.stderr);
        let body = &answer.body;
        let answer: serde_json::Value = serde_json::from_str(body).with_context(|| format!("the answer: {body}"))?;
        assert_eq!(answer["response"]["uid"], "http2-1");
        assert_eq!(answer["response"]["patchType"], "JSONPatch", "{body}");
        // No body: the refusal comes before any upload would be read, and
        // curl before 8.1 misreads the reset of an unread upload (docs/performance.md).
        let answer = server_request(&client, flag, "/v1/outputs", None, "").await?;
        assert_eq!((answer.version.as_str(), answer.status), (version, 401), "curl {flag} /v1/outputs: {}", answer.stderr);
    }
    // Counted on the replica that answered (any of them).
    wait_until("HTTP/2 requests are counted", Duration::from_secs(30), || async {
        Ok((requests(&client, "HTTP/2", "outputs").await? > 0 && requests(&client, "HTTP/2", "mutate").await? > 0).then_some(()))
    })
    .await?;
    Ok(())
}
