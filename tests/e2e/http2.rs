//! The API server calls the webhook over HTTP/2: the server offers `h2` in
//! its TLS handshake and counts its requests by protocol
//! (`lifecycle_http_requests_total{protocol, endpoint}` on the admin port,
//! read here through the API server's pod proxy, as `kubectl get --raw` would).
//! The e2e helpers that post to the server themselves (`server_post`) speak
//! HTTP/1.1, so the HTTP/2 calls of `/mutate` counted here are the API
//! server's own. Every other admission test runs over the same connections.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::SYSTEM_NAMESPACE;
use lifecycle_e2e::lifecycle::environment;
use lifecycle_e2e::{BUSYBOX, TIMEOUT, client, obj, unique_suffix, wait_until};
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

#[tokio::test]
async fn http2_the_api_server_calls_admission_over_http2() -> Result<()> {
    let client = client().await?;
    let ns = environment(&client, "http2").await?;
    let before = requests(&client, "HTTP/2", "mutate").await?;

    // A few pods at once: the API server multiplexes their admissions.
    const PODS: u64 = 4;
    let creations = (0..PODS).map(|i| {
        let pod: Pod = obj(json!({
            "metadata": {"name": format!("web-{i}")},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]
            }]}
        }));
        let ns = &ns;
        async move { ns.create(&pod).await }
    });
    for created in futures::future::join_all(creations).await {
        let pod = created?;
        let env_from = pod.spec.as_ref().and_then(|s| s.containers[0].env_from.clone()).unwrap_or_default();
        ensure!(!env_from.is_empty(), "pod {} was admitted without its variables: {env_from:?}", pod.name_any());
    }

    // Counters are read from every replica; other tests add to them, never subtract.
    let after = wait_until("the server counts the API server's HTTP/2 admissions", TIMEOUT, || async {
        let now = requests(&client, "HTTP/2", "mutate").await?;
        Ok((now >= before + PODS).then_some(now))
    })
    .await?;
    assert!(after >= before + PODS, "HTTP/2 admissions went from {before} to {after}");
    Ok(())
}

/// The outputs API answers over HTTP/2 as well (agents use HTTP/1.1): a
/// request without a token is refused, whatever the protocol.
#[tokio::test]
async fn http2_the_outputs_api_answers_over_both_protocols() -> Result<()> {
    let client = client().await?;
    let svc: Service = Api::namespaced(client.clone(), SYSTEM_NAMESPACE).get("lifecycle-webhook").await?;
    let ip = svc.spec.and_then(|s| s.cluster_ip).context("service IP")?;
    let tls: Secret = Api::namespaced(client.clone(), SYSTEM_NAMESPACE).get("lifecycle-webhook-tls").await?;
    let ca = tls.data.and_then(|d| d.get("ca.crt").cloned()).context("ca.crt")?;
    let dir = std::env::temp_dir().join(format!("e2e-http2-{}", unique_suffix()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("ca.crt"), &ca.0)?;
    let host = format!("lifecycle-webhook.{SYSTEM_NAMESPACE}.svc");
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", flag, "--cacert"])
            .arg(dir.join("ca.crt"))
            .args(["--resolve", &format!("{host}:443:{ip}"), "--data-binary", "{}"])
            .arg(format!("https://{host}/v1/outputs"));
        let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
        let answer = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(answer, format!("{version} 401"), "curl {flag}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(&dir);
    // Counted on the replica that answered (any of them).
    wait_until("the outputs API's HTTP/2 request is counted", Duration::from_secs(30), || async {
        Ok((requests(&client, "HTTP/2", "outputs").await? > 0).then_some(()))
    })
    .await?;
    Ok(())
}
