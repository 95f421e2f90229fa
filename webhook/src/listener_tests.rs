//! The real TLS application on loopback, driven over HTTP/1.1 and HTTP/2:
//! both protocols are negotiated and served, the outputs API answers over
//! both, and the limits hold over HTTP/2 (streams, header list, body size).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use serde_json::json;
use tokio_rustls::client::TlsStream;

use super::*;
use crate::certs::pki;
use crate::state::AppState;
use crate::tls::{self, CertPem};

struct Served {
    addr: SocketAddr,
    ca: String,
    metrics: Arc<Metrics>,
}

/// The server's application (`crate::server::app`) behind [`tls_server`], as
/// `server::run` serves it, minus the Kubernetes API: admission makes no API
/// call, and the outputs API refuses a request without a token before any.
async fn serve() -> Served {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 - 60;
    let year = Duration::from_secs(365 * 86400);
    let ca = pki::new_ca(now, year).unwrap();
    let leaf = pki::issue_leaf(&ca, &["localhost".into()], now, year).unwrap();
    let certs = CertStore::new();
    certs.set(CertPem { chain: leaf.cert.pem(), key: leaf.key.0.clone(), ca_bundle: ca.cert.pem() }).unwrap();
    let config = <crate::config::Config as clap::Parser>::parse_from(["lifecycle-webhook", "--agent-image", "agent:test"]);
    let metrics = Arc::new(Metrics::new());
    let state = AppState {
        config: Arc::new(config),
        client: kube::Client::try_from(kube::Config::new("https://127.0.0.1:1".parse().unwrap())).unwrap(),
        metrics: metrics.clone(),
        certs: certs.clone(),
        jobs: crate::index::JobIndex::empty(),
        envs: crate::env_index::EnvIndex::empty(),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tls_server(axum_server::from_tcp(listener).unwrap(), &certs);
    tokio::spawn(server.serve(crate::server::app(state).into_make_service()));
    Served { addr, ca: ca.cert.pem(), metrics }
}

/// A TLS connection offering `alpn`, and the protocol the server chose.
async fn connect(s: &Served, alpn: &[&[u8]]) -> (TlsStream<tokio::net::TcpStream>, Option<Vec<u8>>) {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls_pki_types::CertificateDer::pem_slice_iter(s.ca.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let tls =
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let chosen = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    (tls, chosen)
}

fn post(path: &str, body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
    let body = body.into();
    http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Full::new(body))
        .unwrap()
}

async fn h1(s: &Served, req: http::Request<Full<Bytes>>) -> (u16, Bytes) {
    let (tls, _) = connect(s, &[b"http/1.1"]).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

async fn h2_sender(s: &Served) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let (tls, chosen) = connect(s, &tls::ALPN).await;
    assert_eq!(chosen.as_deref(), Some(&b"h2"[..]), "a client offering both gets HTTP/2");
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    send
}

async fn h2(send: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>, req: http::Request<Full<Bytes>>) -> (u16, Bytes) {
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

/// A captured job pod's review: the whole pod mutation runs.
fn pod_review() -> Vec<u8> {
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "seed-x", "labels": {"lifecycle-jobs.dev/capture": "SEED"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:local"}]}});
    serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
        "namespace": "env-a", "object": pod}}))
    .unwrap()
}

fn patched(body: &[u8]) -> bool {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["response"]["uid"] == "u-1" && v["response"]["allowed"] == true && v["response"]["patchType"] == "JSONPatch"
}

fn counted(s: &Served, protocol: &'static str, endpoint: &'static str) -> u64 {
    s.metrics.http_requests.get_or_create(&ProtocolLabels { protocol, endpoint }).get()
}

#[tokio::test]
async fn alpn_prefers_http2_and_still_offers_http11() {
    let s = serve().await;
    assert_eq!(connect(&s, &[b"http/1.1", b"h2"]).await.1.as_deref(), Some(&b"h2"[..]), "the server's preference");
    assert_eq!(connect(&s, &[b"http/1.1"]).await.1.as_deref(), Some(&b"http/1.1"[..]));
    // Agents offer no ALPN: no protocol is chosen, and HTTP/1.1 is served.
    assert_eq!(connect(&s, &[]).await.1, None);
}

#[tokio::test]
async fn both_protocols_serve_admission_and_the_outputs_api() {
    let s = serve().await;
    let (status, body) = h1(&s, post("/mutate", pod_review())).await;
    assert_eq!(status, 200);
    assert!(patched(&body), "{}", String::from_utf8_lossy(&body));

    let mut send = h2_sender(&s).await;
    // Several admissions multiplexed on one connection.
    let answers = futures::future::join_all((0..8).map(|_| {
        let mut send = send.clone();
        async move { h2(&mut send, post("/mutate", pod_review())).await }
    }))
    .await;
    for (status, body) in answers {
        assert_eq!(status, 200);
        assert!(patched(&body), "{}", String::from_utf8_lossy(&body));
    }

    // The outputs API over both: no token, refused before any API call.
    assert_eq!(h1(&s, post("/v1/outputs", "{}")).await.0, 401);
    assert_eq!(h2(&mut send, post("/v1/outputs", "{}")).await.0, 401);

    assert_eq!(counted(&s, "HTTP/1.1", "mutate"), 1);
    assert_eq!(counted(&s, "HTTP/2", "mutate"), 8);
    assert_eq!(counted(&s, "HTTP/1.1", "outputs"), 1);
    assert_eq!(counted(&s, "HTTP/2", "outputs"), 1);
    let text = s.metrics.encode();
    assert!(text.contains(r#"lifecycle_http_requests_total{protocol="HTTP/2",endpoint="mutate"} 8"#), "{text}");
}

#[tokio::test]
async fn body_limits_hold_over_http2() {
    let s = serve().await;
    let mut send = h2_sender(&s).await;
    let too_big = vec![b' '; limits::ADMISSION_MAX_BODY + 1];
    assert_eq!(h2(&mut send, post("/mutate", too_big)).await.0, 413);
    // The connection is still usable.
    assert_eq!(h2(&mut send, post("/mutate", pod_review())).await.0, 200);
}

#[tokio::test]
async fn header_list_over_the_limit_is_refused_over_http2() {
    let s = serve().await;
    let mut send = h2_sender(&s).await;
    let mut req = post("/mutate", pod_review());
    let big = "x".repeat(limits::HTTP2_MAX_HEADER_LIST_SIZE as usize);
    req.headers_mut().insert("x-big", big.parse().unwrap());
    // The server refuses the stream (hyper's client sends it: it does not
    // hold itself to the announced size).
    assert_eq!(send.send_request(req).await.unwrap().status(), 431);
    // Other streams of the connection are unaffected.
    assert_eq!(h2(&mut send, post("/mutate", pod_review())).await.0, 200);
}

/// The server announces its stream limit in its SETTINGS; a client holds
/// itself to it (read with the h2 crate, which exposes the peer's setting).
#[tokio::test]
async fn the_stream_limit_is_announced() {
    let s = serve().await;
    let (tls, chosen) = connect(&s, &[b"h2"]).await;
    assert_eq!(chosen.as_deref(), Some(&b"h2"[..]));
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    // One request: the server's SETTINGS have arrived once it is answered.
    let req = http::Request::post("https://localhost/mutate").body(()).unwrap();
    let (resp, mut stream) = send.clone().ready().await.unwrap().send_request(req, false).unwrap();
    stream.send_data(pod_review().into(), true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    assert_eq!(send.current_max_send_streams(), limits::HTTP2_MAX_CONCURRENT_STREAMS as usize);
}

/// An answer given before the body is read (the outputs API refuses a request
/// without a token first) arrives whole, and the stream is then reset with
/// NO_ERROR, as RFC 9113 §8.1 specifies for an early answer. (curl before 8.1
/// still reports such a reset as error 92 and drops the answer: see
/// docs/performance.md.)
#[tokio::test]
async fn an_early_answer_resets_the_unread_upload_without_error() {
    let s = serve().await;
    let (tls, _) = connect(&s, &[b"h2"]).await;
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("https://localhost/v1/outputs").body(()).unwrap();
    let (resp, mut upload) = send.ready().await.unwrap().send_request(req, false).unwrap();
    // More than the stream window: the client is still sending when the answer comes.
    upload.send_data(vec![b'x'; 4 * limits::HTTP2_STREAM_WINDOW as usize].into(), true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 401);
    let mut body = resp.into_body();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    let reason = futures::future::poll_fn(|cx| upload.poll_reset(cx)).await.unwrap();
    assert_eq!(reason, h2::Reason::NO_ERROR);
}
