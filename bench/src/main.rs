//! Admission benchmark.
//!
//! `serve` runs the server's real TLS application (`lifecycle_webhook::app`,
//! the same router, handlers, rustls configuration and certificate store) on
//! loopback, without a Kubernetes API behind it: the admission path makes no
//! API call, so none is needed. `load` drives it with keep-alive HTTPS
//! connections posting a realistic pod AdmissionReview (three containers,
//! about 8 KiB, a captured job pod so the whole mutation runs) and prints
//! throughput and latency percentiles. `bench/run.sh` pins each to its own
//! core and adds the server's CPU time and peak RSS.

mod lifecycle;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::json;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the admission application over TLS; writes the CA to --ca-out.
    Serve {
        #[arg(long, default_value = "127.0.0.1:18443")]
        listen: std::net::SocketAddr,
        #[arg(long)]
        ca_out: std::path::PathBuf,
    },
    /// The admission logic alone, in process (parse, mutate, respond), no HTTP or TLS.
    Pure {
        #[arg(long, default_value_t = 200_000)]
        iterations: u32,
    },
    /// Write the AdmissionReview the load generators post (for h2load -d).
    Body {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Create COUNT pods one after another in NAMESPACE through the API server
    /// (KUBECONFIG), unscheduled (a node selector no node has); print the
    /// create latencies, one per line, in microseconds. The caller deletes them.
    Pods {
        #[arg(long)]
        namespace: String,
        #[arg(long, default_value_t = 100)]
        count: u32,
        /// Name prefix of the pods.
        #[arg(long, default_value = "bench")]
        prefix: String,
    },
    /// Drive the server with our own HTTP/1.1 client and print one table row
    /// (`bench/run.sh` uses h2load; this stays as a cross-check).
    Load {
        #[arg(long, default_value = "127.0.0.1:18443")]
        addr: std::net::SocketAddr,
        #[arg(long)]
        ca: std::path::PathBuf,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Print the request body size and exit.
        #[arg(long)]
        print_size: bool,
    },
    /// How fast an environment gets ready on the cluster (KUBECONFIG): staged
    /// start jobs and a gated Deployment applied at once, then a redeploy;
    /// prints a Markdown table (`bench/lifecycle.sh`).
    Lifecycle(lifecycle::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve { listen, ca_out } => {
            // One worker thread: the goal is stated for the server on one core.
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(serve(listen, ca_out))
        }
        Cmd::Pure { iterations } => pure(iterations),
        Cmd::Body { out } => std::fs::write(&out, review_body()).context("writing the body"),
        Cmd::Pods { namespace, count, prefix } => {
            anyhow::ensure!((1..=1000).contains(&count), "--count: 1 to 1000 pods");
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(pods(&namespace, count, &prefix))
        }
        Cmd::Load { addr, ca, connections, seconds, print_size } => {
            if print_size {
                println!("{}", review_body().len());
                return Ok(());
            }
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            rt.block_on(load(addr, ca, connections, Duration::from_secs(seconds)))
        }
        Cmd::Lifecycle(args) => lifecycle::main(args),
    }
}

async fn serve(listen: std::net::SocketAddr, ca_out: std::path::PathBuf) -> anyhow::Result<()> {
    use lifecycle_webhook::{AppState, CertStore, JobIndex, Metrics, config::Config};
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Logs as in production (JSON, info), so per-request spans cost what they cost there.
    lifecycle_webhook::telemetry::init(lifecycle_webhook::config::LogFormat::Json);
    let (ca_pem, pem) = self_signed()?;
    std::fs::write(&ca_out, &ca_pem).context("writing the CA")?;
    let certs = CertStore::new();
    certs.set(pem)?;
    // As installed: the server URL and names follow from its namespace.
    let config = <Config as clap::Parser>::parse_from([
        "lifecycle-webhook",
        "--agent-image",
        "lifecycle-agent:bench",
        "--namespace",
        "lifecycle-jobs-system",
    ])
    .resolve()?;
    // Never contacted: the admission path makes no API call.
    let client = kube::Client::try_from(kube::Config::new("https://127.0.0.1:1".parse()?))?;
    let state = AppState::new(
        Arc::new(config),
        client,
        Arc::new(Metrics::new()),
        certs.clone(),
        JobIndex::empty(),
        lifecycle_webhook::EnvIndex::empty(),
    );
    let app = lifecycle_webhook::app(state);
    eprintln!("serving on {listen}");
    // The production listener: TLS, HTTP/1.1 and HTTP/2, every connection limit.
    lifecycle_webhook::tls_server(axum_server::bind(listen), &certs).serve(app.into_make_service()).await?;
    Ok(())
}

fn pure(iterations: u32) -> anyhow::Result<()> {
    use lifecycle_webhook::admit::{pod, review};
    let body = review_body();
    let ca = "-----BEGIN CERTIFICATE-----\n".to_string() + &"A".repeat(600) + "\n-----END CERTIFICATE-----\n";
    let settings = pod::PodSettings {
        agent_image: "lifecycle-agent:bench",
        agent_image_pull_policy: "IfNotPresent",
        server_url: "https://lifecycle-webhook.lifecycle-jobs-system.svc:443",
        server_addr: "10.96.12.34:443",
        ca_bundle: &ca,
        agent_template: &pod::AgentTemplate::new(),
    };
    let mut bytes = 0usize;
    let cpu_before = thread_cpu_ns();
    let started = Instant::now();
    for _ in 0..iterations {
        let review = review::parse(&body)?;
        let req = review.request.context("request")?;
        let verdict = pod::mutate_object(req.object.as_ref().context("object")?, &settings, false);
        bytes += review::respond(&req.uid, &verdict).len();
    }
    let per = started.elapsed() / iterations;
    let cpu = (thread_cpu_ns() - cpu_before) / u64::from(iterations);
    println!(
        "admission logic alone (parse, mutate, answer; in process): {:.1} µs CPU per pod review ({per:?} wall, {} bytes answered each)",
        cpu as f64 / 1000.0,
        bytes / iterations as usize
    );
    Ok(())
}

/// CPU time of this thread, in ns (/proc/thread-self/schedstat): a busy machine
/// inflates wall time, much less CPU time.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Pods through the real API server: each create is timed from the request
/// to the answer (authentication, admission webhooks, storage), sequentially on
/// one keep-alive connection.
async fn pods(namespace: &str, count: u32, prefix: &str) -> anyhow::Result<()> {
    use kube::api::{Api, PostParams};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default().await.context("a client from KUBECONFIG")?;
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, namespace);
    let mut out = String::new();
    for i in 0..count {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("{prefix}-{i}"), "labels": {"bench.lifecycle-jobs.dev/pod": "true"}},
            "spec": {
                "nodeSelector": {"bench.lifecycle-jobs.dev/never": "true"},
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {"name": "main", "image": "busybox:local", "command": ["sleep", "3600"],
                     "env": (0..12).map(|i| json!({"name": format!("APP_SETTING_{i}"), "value": "x"})).collect::<Vec<_>>()},
                    {"name": "side", "image": "busybox:local", "command": ["sleep", "3600"]}
                ]
            }
        }))?;
        let t = Instant::now();
        api.create(&PostParams::default(), &pod).await.with_context(|| format!("creating pod {prefix}-{i}"))?;
        out.push_str(&format!("{}\n", t.elapsed().as_micros()));
    }
    print!("{out}");
    Ok(())
}

fn self_signed() -> anyhow::Result<(String, lifecycle_webhook::CertPem)> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "bench CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
    let leaf = params.signed_by(&key, &issuer)?;
    let pem = lifecycle_webhook::CertPem { chain: leaf.pem(), key: key.serialize_pem(), ca_bundle: ca.pem() };
    Ok((ca.pem(), pem))
}

/// A pod of a captured Job as the API server sends it: three containers with
/// env, probes, mounts, resources and the service-account volume, ~8 KiB.
fn review_body() -> Vec<u8> {
    let container = |name: &str| {
        json!({
            "name": name,
            "image": format!("registry.example.com/team/{name}:1.24.3"),
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/sh", "-c"],
            "args": ["exec /app/run --config /etc/app/config.yaml --log-level info --metrics-port 9100"],
            "env": (0..12).map(|i| json!({"name": format!("APP_SETTING_{i}"), "value": format!("value-{i}-abcdefghijklmnop")})).collect::<Vec<_>>(),
            "envFrom": [{"configMapRef": {"name": format!("{name}-config")}}],
            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "livenessProbe": {"httpGet": {"path": "/live", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/app", "readOnly": true},
                {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
            ],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}
        })
    };
    let pod = json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "generateName": "seed-db-", "namespace": "preview-42",
            "labels": {"batch.kubernetes.io/controller-uid": "3f0a4a5e-8c1b-4f0e-9d5e-2b7c6d1e9a01", "batch.kubernetes.io/job-name": "seed-db",
                       "controller-uid": "3f0a4a5e-8c1b-4f0e-9d5e-2b7c6d1e9a01", "job-name": "seed-db", "lifecycle-jobs.dev/capture": "SEED_DB"},
            "annotations": {"kubectl.kubernetes.io/default-container": "main"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "seed-db", "uid": "3f0a4a5e-8c1b-4f0e-9d5e-2b7c6d1e9a01", "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "volumes": [
                {"name": "config", "configMap": {"name": "app-config", "defaultMode": 420}},
                {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]}}
            ],
            "containers": [container("main"), container("migrate"), container("metrics")],
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "securityContext": {"fsGroup": 2000},
            "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {}
    });
    let review = json!({
        "kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "preview-42", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:job-controller", "uid": "a0b1c2", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": pod, "oldObject": null, "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    });
    serde_json::to_vec(&review).expect("serialises")
}

async fn load(addr: std::net::SocketAddr, ca: std::path::PathBuf, connections: usize, duration: Duration) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(&ca).context("reading the CA")?;
    for der in rustls_pemfile_certs(&pem) {
        roots.add(der)?;
    }
    let cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let body = Bytes::from(review_body());
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let connector = connector.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
            let (mut sender, conn) = http1::handshake(TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            let mut lat = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let req = http::Request::post("/mutate")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(body.clone()))?;
                let t = Instant::now();
                let resp = sender.send_request(req).await?;
                let status = resp.status();
                let bytes = resp.into_body().collect().await?.to_bytes();
                lat.push(t.elapsed().as_micros() as u32);
                anyhow::ensure!(status.is_success(), "HTTP {status}");
                anyhow::ensure!(bytes.windows(9).any(|w| w == b"JSONPatch"), "no patch in the answer");
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    let rps = all.len() as f64 / duration.as_secs_f64();
    println!(
        "| {connections:>5} | {rps:>10.0} | {:>8.3} | {:>8.3} | {:>8.3} |",
        pct(0.50),
        pct(0.99),
        *all.last().unwrap_or(&0) as f64 / 1000.0
    );
    Ok(())
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect()
}
