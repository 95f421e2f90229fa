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
use crate::runtime::tls::{self, CertPem};
use crate::state::AppState;

struct Served {
    addr: SocketAddr,
    ca: String,
    metrics: Arc<Metrics>,
    gate: ConnectionGate,
}

/// The server's application (`crate::server::app`) behind [`tls_server`], as
/// `server::run` serves it, minus the Kubernetes API: admission makes no API
/// call, and the outputs API refuses a request without a token before any.
async fn serve() -> Served {
    serve_with(ConnLimits::TLS).await
}

async fn serve_with(limits: ConnLimits) -> Served {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 - 60;
    let year = Duration::from_secs(365 * 86400);
    let ca = pki::new_ca(now, year).unwrap();
    let leaf = pki::issue_leaf(&ca, &["localhost".into()], now, year).unwrap();
    let certs = CertStore::new();
    certs.set(CertPem { chain: leaf.cert.pem(), key: leaf.key.0.clone(), ca_bundle: ca.cert.pem() }).unwrap();
    let config = <crate::runtime::config::Config as clap::Parser>::parse_from([
        "lifecycle-webhook",
        "--agent-image",
        "agent:test",
        "--namespace",
        "lifecycle-jobs-system",
    ])
    .resolve()
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let state = AppState::new(
        Arc::new(config),
        kube::Client::try_from(kube::Config::new("https://127.0.0.1:1".parse().unwrap())).unwrap(),
        metrics.clone(),
        certs.clone(),
        crate::watches::job_index::JobIndex::empty(),
        crate::watches::env_index::EnvIndex::empty(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = ConnectionGate::new("tls", limits, &metrics);
    let server = tls_server_with(axum_server::from_tcp(listener).unwrap(), &certs, gate.clone());
    tokio::spawn(server.serve(crate::server::app(state).into_make_service()));
    Served { addr, ca: ca.cert.pem(), metrics, gate }
}

/// A TLS connection offering `alpn`, and the protocol the server chose.
async fn connect(s: &Served, alpn: &[&[u8]]) -> (TlsStream<tokio::net::TcpStream>, Option<Vec<u8>>) {
    connect_over(s, tokio::net::TcpStream::connect(s.addr).await.unwrap(), alpn).await
}

async fn connect_over(
    s: &Served,
    tcp: tokio::net::TcpStream,
    alpn: &[&[u8]],
) -> (TlsStream<tokio::net::TcpStream>, Option<Vec<u8>>) {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls_pki_types::CertificateDer::pem_slice_iter(s.ca.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
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

/// Once the server drains, an HTTP/1.1 answer on a kept-alive connection
/// carries `Connection: close` and the connection ends after it; HTTP/2
/// answers are served as before (their connection gets a GOAWAY later).
#[tokio::test]
async fn answers_close_their_http1_connection_once_draining() {
    let s = serve().await;
    let (tls, _) = connect(&s, &[b"http/1.1"]).await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut h2_send = h2_sender(&s).await;

    let resp = send.send_request(post("/mutate", pod_review())).await.unwrap();
    assert_eq!(resp.headers().get(header::CONNECTION), None, "kept alive before the drain");
    assert!(patched(&resp.into_body().collect().await.unwrap().to_bytes()));

    s.gate.drain();
    send.ready().await.unwrap();
    let resp = send.send_request(post("/mutate", pod_review())).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get(header::CONNECTION).unwrap(), "close");
    assert!(patched(&resp.into_body().collect().await.unwrap().to_bytes()));
    let ended = tokio::time::timeout(Duration::from_secs(2), conn).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "the connection ends after the answer: {ended:?}");

    let (status, body) = h2(&mut h2_send, post("/mutate", pod_review())).await;
    assert_eq!(status, 200);
    assert!(patched(&body));
}

// --- connection caps and deadlines ----------------------------------------------------------------

const SMALL: ConnLimits = ConnLimits {
    total: 8,
    per_source: 4,
    busy: 6,
    busy_per_source: 2,
    http2: 1,
    first_request: Duration::from_millis(700),
    request_idle: Duration::from_millis(700),
    byte_idle: Duration::from_secs(30),
};

#[test]
fn caps_in_all_per_source_and_while_busy() {
    assert_eq!(admit(&SMALL, 0, 0), Ok(()));
    assert_eq!(admit(&SMALL, 3, 3), Ok(()));
    assert_eq!(admit(&SMALL, 4, 4), Err(Refusal::PerSource));
    // Busy: a source with its busy share gets none, a new source still one.
    assert_eq!(admit(&SMALL, 6, 2), Err(Refusal::BusySource));
    assert_eq!(admit(&SMALL, 6, 0), Ok(()));
    assert_eq!(admit(&SMALL, 8, 0), Err(Refusal::Total));
    // The defaults: one flooding source leaves the API server's address three quarters of the port.
    let l = ConnLimits::TLS;
    assert!(l.per_source * 4 <= l.total && l.busy_per_source < l.per_source && l.busy < l.total);
}

#[test]
fn caps_fit_the_open_files_limit() {
    assert_eq!(ConnLimits::TLS.within_open_files(1 << 20), ConnLimits::TLS);
    let l = ConnLimits::TLS.within_open_files(512);
    assert_eq!((l.total, l.per_source, l.busy, l.busy_per_source, l.http2), (512, 128, 256, 16, 32));
    assert_eq!(admit(&l, 511, 0), Ok(()));
    assert_eq!(admit(&l, 512, 0), Err(Refusal::Total));
}

#[test]
fn ipv4_mapped_addresses_count_as_their_ipv4_source() {
    let v4: std::net::IpAddr = "10.244.0.7".parse().unwrap();
    let mapped: std::net::IpAddr = "::ffff:10.244.0.7".parse().unwrap();
    assert_eq!(source(mapped), v4);
}

#[tokio::test]
async fn slots_are_counted_per_source_and_given_back() {
    let metrics = Metrics::new();
    let gate = ConnectionGate::new("tls", SMALL, &metrics);
    let a: std::net::IpAddr = "10.244.0.7".parse().unwrap();
    let b: std::net::IpAddr = "10.79.0.1".parse().unwrap();
    let held: Vec<_> = (0..4).map(|_| gate.take(a).unwrap()).collect();
    assert_eq!(gate.take(a).err(), Some(Refusal::PerSource));
    let other = gate.take(b).unwrap();
    assert_eq!(gate.open(a), (5, 4));
    drop(held);
    assert_eq!(gate.open(a), (1, 0));
    drop(other);
    assert_eq!(gate.open(b), (0, 0));
    let refused = metrics.connections_refused.get_or_create(&ConnectionLabels { port: "tls", reason: "per_source" }).get();
    assert_eq!(refused, 1);
    assert!(metrics.encode().contains(r#"lifecycle_connections_open{port="tls"} 0"#));
}

/// Reads until the server closes the connection (EOF or error), or `within` passes.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn closed(s: &Served, reason: &'static str) -> u64 {
    s.metrics.connections_closed.get_or_create(&ConnectionLabels { port: "tls", reason }).get()
}

/// An HTTP/2 client that sends the preface and its SETTINGS, then a PING
/// every 100 ms and never a request: closed at the first-request deadline.
#[tokio::test]
async fn a_connection_without_a_request_is_closed_whatever_it_sends() {
    use tokio::io::AsyncWriteExt;
    let s = serve_with(SMALL).await;
    let (tls, _) = connect(&s, &[b"h2"]).await;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let pinger = tokio::spawn(async move {
        wr.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00").await?;
        loop {
            // PING: length 8, type 6, no flags, stream 0, 8 bytes of data.
            wr.write_all(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00pingping").await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        #[allow(unreachable_code)]
        Ok::<_, io::Error>(())
    });
    assert!(closed_within(&mut rd, Duration::from_secs(5)).await, "still open");
    pinger.abort();
    assert_eq!(closed(&s, "no_first_request"), 1);

    // A TLS connection that sends nothing at all after the handshake: the same.
    let (mut tls, _) = connect(&s, &[b"http/1.1"]).await;
    assert!(closed_within(&mut tls, Duration::from_secs(5)).await, "still open");
    assert_eq!(closed(&s, "no_first_request"), 2);
}

/// After its requests, an HTTP/2 connection kept busy with PINGs is closed
/// once no request was in flight for the idle deadline; requests themselves are served.
#[tokio::test]
async fn pings_do_not_keep_a_connection_without_requests() {
    let s = serve_with(SMALL).await;
    let (tls, _) = connect(&s, &[b"h2"]).await;
    let (send, mut conn) = h2::client::handshake(tls).await.unwrap();
    let mut ping_pong = conn.ping_pong().unwrap();
    let driver = tokio::spawn(conn);
    let mut send = send.ready().await.unwrap();
    let (resp, mut body) = send.send_request(http::Request::post("https://localhost/mutate").body(()).unwrap(), false).unwrap();
    body.send_data(pod_review().into(), true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    let started = std::time::Instant::now();
    let mut pings = 0;
    while ping_pong.ping(h2::Ping::opaque()).await.is_ok() {
        pings += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_secs(5), "still open after {pings} PINGs");
    }
    assert!(pings > 2, "closed too early: {pings} PINGs answered");
    let _ = driver.await;
    assert_eq!(closed(&s, "no_request"), 1);
}

/// Over the HTTP/2 cap, a connection's first request is answered 503 and the
/// connection closed; HTTP/1.1 still works.
#[tokio::test]
async fn http2_connections_over_their_cap_are_refused() {
    let s =
        serve_with(ConnLimits { first_request: Duration::from_secs(10), request_idle: Duration::from_secs(10), ..SMALL }).await;
    let mut first = h2_sender(&s).await;
    assert_eq!(h2(&mut first, post("/mutate", pod_review())).await.0, 200);
    let mut second = h2_sender(&s).await;
    assert_eq!(h2(&mut second, post("/mutate", pod_review())).await.0, 503);
    assert_eq!(h1(&s, post("/mutate", pod_review())).await.0, 200);
    assert_eq!(h2(&mut first, post("/mutate", pod_review())).await.0, 200);
    let refused = s.metrics.connections_refused.get_or_create(&ConnectionLabels { port: "tls", reason: "http2" }).get();
    assert_eq!(refused, 1);
}

/// Connections over a source's cap are closed at accept; another source is served.
#[tokio::test]
async fn one_source_cannot_take_every_connection() {
    let s = serve_with(ConnLimits { first_request: Duration::from_secs(10), ..SMALL }).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&s, &[b"http/1.1"]).await.0);
    }
    // The fifth from 127.0.0.1 is closed before its handshake completes.
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for der in rustls_pki_types::CertificateDer::pem_slice_iter(s.ca.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let r = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(ServerName::try_from("localhost").unwrap(), tcp).await;
    assert!(r.is_err(), "a fifth connection from one source was served");
    // Another source address (loopback is a /8) still gets in.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let tcp = other.connect(s.addr).await.unwrap();
    let (tls, _) = connect_over(&s, tcp, &[b"http/1.1"]).await;
    drop(tls);
    drop(held);
}

/// A slow client against a real server with the same HTTP settings: it
/// is cut off once its headers take longer than the header timeout.
#[tokio::test]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::post(|| async { "ok" }));
    let gate = ConnectionGate::new("tls", ConnLimits::TLS, &Metrics::new());
    let mut server = axum_server::from_tcp(listener).unwrap().acceptor(gate);
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(500))
        .max_buf_size(limits::HTTP1_MAX_BUF);
    tokio::spawn(server.serve(app.into_make_service()));

    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut cut = false;
    for b in b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if c.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(100), c.read(&mut buf)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "still open after {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A stream that moves no byte is failed once the byte idle timeout passes,
/// and gives its slot back when dropped.
#[tokio::test]
async fn idle_streams_are_closed_and_give_their_slot_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let metrics = Metrics::new();
    let limits = ConnLimits { byte_idle: Duration::from_millis(100), first_request: Duration::from_secs(30), ..SMALL };
    let gate = ConnectionGate::new("tls", limits, &metrics);
    let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
    let (mut client, server) = tokio::io::duplex(64);
    let (mut s, _activity) = gate.guard(server, ip).unwrap();
    assert_eq!(gate.open(ip), (1, 1));
    client.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    s.read_exact(&mut buf).await.unwrap();
    let e = s.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    drop(s);
    assert_eq!(gate.open(ip), (0, 0));
    assert_eq!(metrics.connections_closed.get_or_create(&ConnectionLabels { port: "tls", reason: "idle" }).get(), 1);
}

/// The admin port: a source over its cap is closed at once, probes from
/// another address still get through.
#[tokio::test]
async fn the_admin_port_caps_connections_per_source() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = crate::runtime::admin::router(metrics.clone(), crate::runtime::admin::Readiness::default());
    tokio::spawn(async move { axum::serve(crate::runtime::admin::AdminListener::new(listener, &metrics), app).await });

    let mut held = Vec::new();
    for _ in 0..limits::ADMIN_MAX_CONNECTIONS_PER_SOURCE {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_secs(2)).await, "a connection over the source's cap stayed open");

    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut probe = other.connect(addr).await.unwrap();
    probe.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    probe.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
}
