//! Connection exhaustion without credentials: a client that reaches the
//! server's pods (no token, no certificate) opens 2,000 connections and
//! keeps them as busy as it can without asking anything (HTTP/2 PINGs, or
//! the HTTP/2 preface trickled one byte at a time), reconnecting whenever the
//! server closes one. Meanwhile the API server's admissions, from another
//! address, keep being answered, both replicas stay up, and their memory
//! stays under the container's request.
//!
//! The attacker's sockets are bound to the node's address: on the local
//! cluster the API server reaches pods from the CNI bridge's address, so the
//! attack is a source other than the API server, as a tenant pod would be.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::SYSTEM_NAMESPACE;
use lifecycle_e2e::client;
use lifecycle_e2e::lifecycle::environment;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::bounded::{server_memory, tls_connector, wait_two_ready};

const SERVER_NAME: &str = "lifecycle-webhook.lifecycle-jobs-system.svc";
/// The server container's memory request (manifests/base/deployment.yaml).
const MEMORY_REQUEST: u64 = 64 * 1024 * 1024;
const CONNECTIONS: usize = 2000;

/// The server's connection metrics of one replica (`lifecycle_connections_*`), by series.
async fn connection_metrics(client: &Client, pod: &str) -> Result<BTreeMap<String, f64>> {
    let path = format!("/api/v1/namespaces/{SYSTEM_NAMESPACE}/pods/{pod}:9090/proxy/metrics");
    let text =
        client.request_text(http::Request::get(path).body(Vec::new())?).await.with_context(|| format!("metrics of {pod}"))?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("lifecycle_connections_"))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect())
}

fn metric(m: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    // An empty f64 sum is -0.0, printed "-0".
    m.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum::<f64>() + 0.0
}

/// One attacking client until `until`, its sockets bound to `from`: TLS, then
/// either the HTTP/2 preface, SETTINGS and a PING every 2 s, or the preface
/// one byte every 2 s; never a request. When the server closes or refuses
/// the connection it starts again. Counts connections open now and every
/// connection the server ended.
async fn idle_client(
    connector: tokio_rustls::TlsConnector,
    from: Option<IpAddr>,
    addr: std::net::SocketAddr,
    pings: bool,
    until: Instant,
    open: Arc<AtomicUsize>,
) -> u32 {
    let mut ended = 0u32;
    while Instant::now() < until {
        let attempt = async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            if let Some(ip) = from {
                socket.bind((ip, 0).into())?;
            }
            let tcp = socket.connect(addr).await?;
            let name = rustls_pki_types::ServerName::try_from(SERVER_NAME)?;
            let tls = connector.connect(name, tcp).await?;
            let _open = OpenGuard::new(&open);
            let (mut rd, mut wr) = tokio::io::split(tls);
            let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
            let writer = async {
                if pings {
                    wr.write_all(preface).await?;
                    wr.write_all(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00").await?;
                    wr.flush().await?;
                    loop {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        wr.write_all(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00e2e-ping").await?;
                        wr.flush().await?;
                    }
                } else {
                    for b in preface.iter().cycle() {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        wr.write_all(&[*b]).await?;
                        wr.flush().await?;
                    }
                    Ok::<_, anyhow::Error>(())
                }
            };
            // Read (SETTINGS, PING acks) until the server closes.
            let reader = async {
                let mut buf = [0u8; 4096];
                while rd.read(&mut buf).await? > 0 {}
                Ok::<_, anyhow::Error>(())
            };
            tokio::select! {
                r = writer => r,
                r = reader => r,
                () = tokio::time::sleep_until(until.into()) => Ok(()),
            }
        };
        let _ = attempt.await;
        if Instant::now() < until {
            ended += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    ended
}

struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        OpenGuard(n.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The node's address if this machine holds it (the local cluster's node is this machine).
async fn node_address(client: &Client) -> Result<Option<IpAddr>> {
    let nodes = Api::<Node>::all(client.clone()).list(&ListParams::default()).await?.items;
    let ip = nodes
        .iter()
        .flat_map(|n| n.status.as_ref().and_then(|s| s.addresses.clone()).unwrap_or_default())
        .find(|a| a.type_ == "InternalIP")
        .and_then(|a| a.address.parse::<IpAddr>().ok());
    Ok(ip.filter(|ip| std::net::TcpListener::bind((*ip, 0)).is_ok()))
}

#[tokio::test]
async fn admission_keeps_answering_while_2000_idle_connections_are_held() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = client().await?;
    let pods = wait_two_ready(&client, Duration::from_secs(120)).await?;
    let addrs: Vec<std::net::SocketAddr> = pods
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse::<IpAddr>().ok())
        .map(|ip| (ip, 8443).into())
        .collect();
    ensure!(addrs.len() == 2, "the server pods have no addresses: {addrs:?}");
    let from = node_address(&client).await?;
    eprintln!("attacking from {from:?} (the API server reaches pods from the CNI bridge's address)");
    let memory_before = server_memory(&client).await?;
    let h2 = tls_connector(&client, &[b"h2"]).await?;
    let plain = tls_connector(&client, &[]).await?;

    // 2,000 clients, 1,000 per replica, half of them PINGing over HTTP/2, for 70 s.
    let until = Instant::now() + Duration::from_secs(70);
    let open = Arc::new(AtomicUsize::new(0));
    let mut attack = tokio::task::JoinSet::new();
    for i in 0..CONNECTIONS {
        let connector = if i % 4 < 2 { h2.clone() } else { plain.clone() };
        attack.spawn(idle_client(connector, from, addrs[i % 2], i % 4 < 2, until, open.clone()));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Meanwhile, pods keep being admitted into an environment, and the
    // replicas' memory is sampled.
    let ns = environment(&client, "conn-flood").await?;
    let mut admitted = 0;
    let mut peak: BTreeMap<String, u64> = BTreeMap::new();
    let mut held_peak = 0;
    let mut last_sample = Instant::now() - Duration::from_secs(60);
    while Instant::now() + Duration::from_secs(2) < until {
        crate::bounded::admit_pod(&ns, admitted).await?;
        admitted += 1;
        held_peak = held_peak.max(open.load(Ordering::SeqCst));
        if last_sample.elapsed() >= Duration::from_secs(10) {
            last_sample = Instant::now();
            for (pod, ws) in server_memory(&client).await? {
                let p = peak.entry(pod).or_default();
                *p = (*p).max(ws);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let held_at_end = open.load(Ordering::SeqCst);
    let mut metrics = BTreeMap::new();
    for p in &pods {
        metrics.insert(p.name_any(), connection_metrics(&client, &p.name_any()).await?);
    }
    for (pod, ws) in server_memory(&client).await? {
        let p = peak.entry(pod).or_default();
        *p = (*p).max(ws);
    }
    let mut ended = 0;
    while let Some(r) = attack.join_next().await {
        ended += r?;
    }

    eprintln!(
        "{CONNECTIONS} attacking clients for 70 s: {admitted} pods admitted meanwhile; the attacker held at most {held_peak} \
         TLS connections at once ({held_at_end} at the end) and saw {ended} refused or closed"
    );
    for (pod, m) in &metrics {
        let mib = |b: u64| b as f64 / 1048576.0;
        eprintln!(
            "{pod}: working set {:.1} MiB before, peak {:.1} MiB during (request {} MiB); open {} ; refused per_source {} busy_source {} total {} ; closed no_first_request {} no_request {} idle {}",
            mib(memory_before.get(pod).copied().unwrap_or(0)),
            mib(peak.get(pod).copied().unwrap_or(0)),
            MEMORY_REQUEST >> 20,
            metric(m, r#"lifecycle_connections_open{port="tls"}"#),
            metric(m, r#"lifecycle_connections_refused_total{port="tls",reason="per_source"}"#),
            metric(m, r#"lifecycle_connections_refused_total{port="tls",reason="busy_source"}"#),
            metric(m, r#"lifecycle_connections_refused_total{port="tls",reason="total"}"#),
            metric(m, r#"lifecycle_connections_closed_total{port="tls",reason="no_first_request"}"#),
            metric(m, r#"lifecycle_connections_closed_total{port="tls",reason="no_request"}"#),
            metric(m, r#"lifecycle_connections_closed_total{port="tls",reason="idle"}"#),
        );
    }

    ensure!(admitted >= 20, "only {admitted} pods admitted");
    // The server refused the flood's surplus and closed the connections that asked nothing.
    for (pod, m) in &metrics {
        ensure!(metric(m, r#"lifecycle_connections_refused_total{port="tls""#) > 0.0, "{pod} refused no connection: {m:?}");
        ensure!(
            metric(m, r#"lifecycle_connections_closed_total{port="tls",reason="no_first_request"}"#) > 0.0,
            "{pod} closed no connection without a request: {m:?}"
        );
    }
    for (pod, ws) in &peak {
        ensure!(*ws < MEMORY_REQUEST, "{pod}'s working set reached {ws} bytes, over its request");
    }
    crate::bounded::assert_two_ready_never_restarted(&client).await?;
    ns.delete_and_wait(Duration::from_secs(120)).await?;
    Ok(())
}
