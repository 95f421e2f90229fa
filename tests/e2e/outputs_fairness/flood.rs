//! The attacker's tools for the outputs-fairness tests (main and disruptive
//! suites): a captured pod's agent token, and a flood of authenticated
//! uploads against the server's pods.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::{LABEL_CAPTURE, OUTPUTS_API_PATH, SYSTEM_NAMESPACE, TOKEN_AUDIENCE, injected};
use lifecycle_e2e::lifecycle::live_and_ready;
use lifecycle_e2e::{TIMEOUT, obj, wait_until};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const SERVER_PODS: &str = "app.kubernetes.io/name=lifecycle-webhook";
const SERVER_NAME: &str = "lifecycle-webhook.lifecycle-jobs-system.svc";

/// A pod of `job` that runs with its injected agent (a captured pod).
pub(crate) async fn running_captured_pod(client: &Client, ns: &str, job: &str) -> Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_until(&format!("a pod of job {job} runs with its agent"), TIMEOUT, || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels(&format!("job-name={job}"))).await?.items;
            Ok(list.into_iter().find(|p| {
                p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    && p.labels().contains_key(LABEL_CAPTURE)
                    && p.spec
                        .as_ref()
                        .is_some_and(|s| s.init_containers.iter().flatten().any(|c| c.name == injected::AGENT_CONTAINER))
            }))
        }
    })
    .await
}

/// The agent's token of `pod`: bound to the pod, the agent's audience, the
/// pod's service account (what the kubelet projects into its agent, and what
/// anyone who can exec into the pod can read).
pub(crate) async fn agent_token(client: &Client, pod: &Pod) -> Result<String> {
    let ns = pod.namespace().context("pod namespace")?;
    let sa = pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into());
    let req: TokenRequest = obj(json!({"spec": {
        "audiences": [TOKEN_AUDIENCE], "expirationSeconds": 600,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.name_any(), "uid": pod.uid()}
    }}));
    let out =
        Api::<ServiceAccount>::namespaced(client.clone(), &ns).create_token_request(&sa, &PostParams::default(), &req).await?;
    Ok(out.status.context("token status")?.token)
}

/// The server pods' addresses (`ip:8443`), to flood both replicas evenly.
pub(crate) async fn server_addrs(client: &Client) -> Result<Vec<String>> {
    let pods = Api::<Pod>::namespaced(client.clone(), SYSTEM_NAMESPACE).list(&ListParams::default().labels(SERVER_PODS)).await?;
    // Ready ones only: a replica of a previous rollout may still be terminating.
    let addrs: Vec<String> = pods
        .items
        .iter()
        .filter(|p| live_and_ready(p))
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .map(|ip| format!("{ip}:8443"))
        .collect();
    ensure!(!addrs.is_empty(), "the server pods have no addresses");
    Ok(addrs)
}

/// A TLS client trusting the server's CA (from its Secret).
pub(crate) async fn tls_connector(client: &Client) -> Result<tokio_rustls::TlsConnector> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls: Secret = Api::namespaced(client.clone(), SYSTEM_NAMESPACE).get("lifecycle-webhook-tls").await?;
    let ca = tls.data.and_then(|d| d.get("ca.crt").cloned()).context("ca.crt")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.0.as_slice()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A flood of authenticated uploads: `clients` clients, each with its own
/// keep-alive connection, each sending the upload again as soon as it is
/// answered (after `pause`), without heeding `Retry-After`.
pub(crate) struct Flood {
    stop: Arc<AtomicBool>,
    clients: tokio::task::JoinSet<BTreeMap<String, u32>>,
}

impl Flood {
    pub(crate) fn start(
        connector: tokio_rustls::TlsConnector,
        addrs: &[String],
        token: &str,
        clients: usize,
        pause: Duration,
    ) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        let body = r#"{"FLOOD": {"value": "x"}}"#;
        let request = format!(
            "POST {OUTPUTS_API_PATH} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        for i in 0..clients {
            let (connector, addr, request, stop) =
                (connector.clone(), addrs[i % addrs.len()].clone(), request.clone(), stop.clone());
            set.spawn(async move {
                let mut answers = BTreeMap::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = flooder(&connector, &addr, &request, &stop, pause, &mut answers).await {
                        *answers.entry(format!("error: {}", e.root_cause())).or_insert(0) += 1;
                        tokio::time::sleep(pause).await;
                    }
                }
                answers
            });
        }
        Flood { stop, clients: set }
    }

    /// Stops the flood; returns how often each answer came (`429`, `503`,
    /// `error: ...`), all clients together.
    pub(crate) async fn stop(mut self) -> Result<BTreeMap<String, u32>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = BTreeMap::new();
        while let Some(answers) = self.clients.join_next().await {
            for (k, n) in answers? {
                *all.entry(k).or_insert(0) += n;
            }
        }
        Ok(all)
    }
}

/// One connection: uploads until `stop`, the connection ends, or an error.
async fn flooder(
    connector: &tokio_rustls::TlsConnector,
    addr: &str,
    request: &str,
    stop: &AtomicBool,
    pause: Duration,
    answers: &mut BTreeMap<String, u32>,
) -> Result<()> {
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await??;
    let name = rustls_pki_types::ServerName::try_from(SERVER_NAME)?;
    let mut tls = BufReader::new(connector.connect(name, tcp).await?);
    while !stop.load(Ordering::Relaxed) {
        tls.get_mut().write_all(request.as_bytes()).await?;
        tls.get_mut().flush().await?;
        // The status line, the headers, then the body by its length.
        let mut line = String::new();
        let mut status = None;
        let mut length = 0usize;
        let mut close = false;
        loop {
            line.clear();
            if tokio::time::timeout(Duration::from_secs(90), tls.read_line(&mut line)).await?? == 0 {
                return Err(anyhow!("connection closed by the server"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status.is_none() {
                status = l.split(' ').nth(1).map(str::to_string);
            } else if let Some((k, v)) = l.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = v.trim().parse()?,
                    "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; length];
        tls.read_exact(&mut body).await?;
        *answers.entry(status.unwrap_or_default()).or_insert(0) += 1;
        if close {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
    }
    Ok(())
}
