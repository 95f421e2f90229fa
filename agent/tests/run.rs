//! `lifecycle-agent run` end to end on loopback: a TLS server stands in for
//! the outputs API; the agent is started, the job writes its file, SIGTERM
//! comes, and the agent posts (or gives up and says why).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lifecycle-agent");
const SECRET: &str = "S3cr3t-P4ssw0rd";

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lifecycle-agent-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("out")).unwrap();
    d
}

#[derive(Debug, Clone)]
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// A TLS server answering with `answers` in turn (the last one repeats).
struct Server {
    port: u16,
    ca_pem: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

fn server(answers: Vec<(u16, &'static str)>) -> Server {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&leaf_key, &ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap())
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let reqs = requests.clone();
    std::thread::spawn(move || {
        for (i, conn) in listener.incoming().enumerate() {
            let Ok(tcp) = conn else { continue };
            let (status, body) = answers[i.min(answers.len() - 1)];
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let req = loop {
                let Ok(n) = tls.read(&mut chunk) else {
                    break None;
                };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let r = Request { head, body: Vec::new() };
                    let len: usize = r.header("content-length").unwrap().parse().unwrap();
                    if buf.len() >= end + 4 + len {
                        break Some(Request { body: buf[end + 4..end + 4 + len].to_vec(), ..r });
                    }
                }
            };
            let Some(req) = req else { continue };
            reqs.lock().unwrap().push(req);
            let resp =
                format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            let _ = tls.write_all(resp.as_bytes());
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    Server { port, ca_pem: ca.pem(), requests }
}

struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<String>>,
}

impl Agent {
    fn start(dir: &Path, url: &str, ca: &str, grace: u64) -> Agent {
        std::fs::write(dir.join("token"), "tok-123\n").unwrap();
        // As the webhook does: the URL names the server, the address is where to dial.
        let port = url.rsplit(':').next().unwrap();
        let mut child = Command::new(BIN)
            .arg("run")
            .env("LIFECYCLE_SERVER_URL", url)
            .env("LIFECYCLE_SERVER_ADDR", format!("127.0.0.1:{port}"))
            .env("LIFECYCLE_SERVER_CA", ca)
            .env("LIFECYCLE_OUTPUT_FILE", dir.join("out/qovery-output.json"))
            .env("LIFECYCLE_TOKEN_FILE", dir.join("token"))
            .env("LIFECYCLE_GRACE_SECONDS", grace.to_string())
            .env("LIFECYCLE_JOB_ID", "TEST")
            .env("LIFECYCLE_TERMINATION_LOG", dir.join("termination-log"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let line = line.unwrap();
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        let a = Agent { child, lines, log };
        a.wait_for("event=start");
        a
    }

    fn wait_for(&self, what: &str) -> String {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(_) => panic!("no log line with {what:?}; log:\n{}", self.log.lock().unwrap()),
            }
        }
    }

    fn sigterm(&self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// Exit code and the whole log.
    fn wait(mut self) -> (i32, String) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                let log = self.log.lock().unwrap().clone();
                assert!(!log.contains(SECRET), "a value leaked into the log:\n{log}");
                return (s.code().unwrap(), log);
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!("agent did not exit; log:\n{}", self.log.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn write_output(dir: &Path, content: &str) {
    std::fs::write(dir.join("out/qovery-output.json"), content).unwrap();
}

fn termination(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("termination-log")).unwrap_or_default()
}

fn file() -> String {
    format!(r#"{{"DB_HOST": {{"value": "db"}}, "DB_PASS": {{"value": "{SECRET}", "sensitive": true}}}}"#)
}

#[test]
fn publishes_after_sigterm() {
    let dir = tempdir("publish");
    let srv = server(vec![(200, r#"{"message": "2 outputs published"}"#)]);
    let agent = Agent::start(&dir, &format!("https://localhost:{}", srv.port), &srv.ca_pem, 30);
    write_output(&dir, &file());
    let line = agent.wait_for("event=output-valid");
    assert!(line.contains("final=false") && line.contains("keys=DB_HOST,DB_PASS"), "{line}");
    agent.sigterm();
    let (code, log) = agent.wait();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("server_message=\"2 outputs published\""), "{log}");
    let reqs = srv.requests.lock().unwrap();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert!(r.head.starts_with("POST /v1/outputs HTTP/1.1\r\n"), "{}", r.head);
    assert_eq!(r.header("authorization").as_deref(), Some("Bearer tok-123"));
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(r.header("host"), Some(format!("localhost:{}", srv.port)));
    assert_eq!(r.header("lifecycle-agent-error"), None);
    assert_eq!(r.body, file().as_bytes());
    assert_eq!(termination(&dir), "");
}

#[test]
fn retries_server_errors() {
    let dir = tempdir("retry");
    let srv = server(vec![(503, r#"{"message": "not ready"}"#), (500, "oops"), (201, r#"{"message": "ok"}"#)]);
    let agent = Agent::start(&dir, &format!("https://localhost:{}", srv.port), &srv.ca_pem, 30);
    write_output(&dir, &file());
    agent.sigterm();
    let (code, log) = agent.wait();
    assert_eq!(code, 0, "{log}");
    assert_eq!(log.matches("event=publish-retry").count(), 2, "{log}");
    assert_eq!(srv.requests.lock().unwrap().len(), 3);
}

#[test]
fn invalid_file_is_posted_and_refusal_is_final() {
    let dir = tempdir("refused");
    let srv = server(vec![(422, r#"{"message": "output file rejected (1 error): line 1, column 40: ..."}"#)]);
    let agent = Agent::start(&dir, &format!("https://localhost:{}", srv.port), &srv.ca_pem, 30);
    let content = format!(r#"{{"DB_PASS": {{"value": "{SECRET}", "sensitive": False}}}}"#);
    write_output(&dir, &content);
    let line = agent.wait_for("event=output-error");
    assert!(line.contains("write `false`"), "{line}");
    agent.sigterm();
    let (code, log) = agent.wait();
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("event=publish-refused"), "{log}");
    assert_eq!(srv.requests.lock().unwrap()[0].body, content.as_bytes());
    let t = termination(&dir);
    assert!(t.starts_with("outputs not published: server answered 422: output file rejected"), "{t}");
    assert!(!t.contains('\n'));
}

#[test]
fn unreadable_file_is_reported_in_a_header() {
    let dir = tempdir("symlink");
    let srv = server(vec![(422, r#"{"message": "agent could not read the file"}"#)]);
    let agent = Agent::start(&dir, &format!("https://localhost:{}", srv.port), &srv.ca_pem, 30);
    std::os::unix::fs::symlink(dir.join("token"), dir.join("out/qovery-output.json")).unwrap();
    let line = agent.wait_for("event=output-unreadable");
    assert!(line.contains("symbolic link"), "{line}");
    agent.sigterm();
    let (code, log) = agent.wait();
    assert_eq!(code, 1, "{log}");
    let reqs = srv.requests.lock().unwrap();
    assert!(reqs[0].body.is_empty());
    let h = reqs[0].header("lifecycle-agent-error").unwrap();
    assert!(h.contains("is a symbolic link"), "{h}");
    assert!(!String::from_utf8_lossy(&reqs[0].body).contains("tok-123"));
}

#[test]
fn no_file_reports_the_end_with_an_empty_body() {
    let dir = tempdir("nofile");
    let srv = server(vec![(200, "{}"), (200, "{}")]);
    let agent = Agent::start(&dir, &format!("https://localhost:{}", srv.port), &srv.ca_pem, 30);
    agent.sigterm();
    let (code, log) = agent.wait();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("event=no-outputs"), "{log}");
    {
        let reqs = srv.requests.lock().unwrap();
        assert_eq!(reqs.len(), 1, "the server notes the pod's end");
        assert!(reqs[0].body.is_empty() && reqs[0].header("lifecycle-agent-error").is_none());
    }
    // An empty file: the same.
    let agent = Agent::start(&dir, &format!("https://localhost:{}", srv.port), &srv.ca_pem, 30);
    write_output(&dir, "");
    agent.sigterm();
    let (code, log) = agent.wait();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("reason=\"the output file is empty\""), "{log}");
    assert_eq!(srv.requests.lock().unwrap().len(), 2);
}

#[test]
fn no_file_and_no_server_loses_nothing() {
    let dir = tempdir("nofile-down");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let srv = server(vec![]);
    let agent = Agent::start(&dir, &format!("https://127.0.0.1:{port}"), &srv.ca_pem, 30);
    let t = Instant::now();
    agent.sigterm();
    let (code, log) = agent.wait();
    assert_eq!(code, 0, "nothing was lost: {log}");
    assert!(t.elapsed() < Duration::from_secs(10), "a short budget, not the grace period");
    assert!(log.contains("event=end-not-reported"), "{log}");
    assert!(termination(&dir).is_empty(), "no loss reported");
    // Misconfigured: the same.
    let agent = Agent::start(&dir, "https://localhost:1", "not a pem", 4);
    agent.sigterm();
    assert_eq!(agent.wait().0, 0);
}

#[test]
fn gives_up_within_the_grace_period() {
    let dir = tempdir("down");
    // A port with nothing listening.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let srv = server(vec![(200, "{}")]);
    let agent = Agent::start(&dir, &format!("https://127.0.0.1:{port}"), &srv.ca_pem, 4);
    write_output(&dir, &file());
    let t = Instant::now();
    agent.sigterm();
    agent.sigterm(); // a second signal changes nothing
    let (code, log) = agent.wait();
    let took = t.elapsed();
    assert_eq!(code, 1, "{log}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let t = termination(&dir);
    assert!(t.starts_with("outputs not published: gave up after "), "{t}");
    assert!(t.contains("cannot connect"), "{t}");
}

#[test]
fn wrong_ca_is_a_tls_error() {
    let dir = tempdir("wrongca");
    let srv = server(vec![(200, "{}")]);
    let other = server(vec![(200, "{}")]);
    let agent = Agent::start(&dir, &format!("https://localhost:{}", srv.port), &other.ca_pem, 4);
    write_output(&dir, &file());
    agent.sigterm();
    let (code, _) = agent.wait();
    assert_eq!(code, 1);
    assert!(termination(&dir).contains("TLS error"), "{}", termination(&dir));
    assert!(srv.requests.lock().unwrap().is_empty());
}

#[test]
fn misconfiguration_is_reported() {
    let dir = tempdir("misconfig");
    let agent = Agent::start(&dir, "https://localhost:1", "not a pem", 4);
    write_output(&dir, &file());
    agent.sigterm();
    let (code, log) = agent.wait();
    assert_eq!(code, 1);
    assert!(log.contains("event=config"), "{log}");
    assert!(termination(&dir).contains("misconfigured"), "{}", termination(&dir));
}
