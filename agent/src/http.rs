//! A minimal HTTP/1.1 client for one request per connection: `POST` with a
//! `Content-Length` body over TLS (rustls with ring, trusting only the
//! server's CA) or, for tests only, plain TCP. `httparse` (hyper's parser)
//! reads the response head and chunk sizes; the response is read with caps
//! (16 KiB of headers, 64 KiB of body) and every socket operation is bounded
//! by the request's deadline.
//!
//! The agent resolves no names: it dials the address admission gave it
//! (`LIFECYCLE_SERVER_ADDR`, the server Service's IP and port) and verifies the
//! certificate against the URL's host name, so a static binary needs no NSS and
//! no resolver of its own.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_BODY: usize = 64 * 1024;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// `https://host[:port][/base]` (or `http://` for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing `/` (usually empty).
    pub base: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let s = s.trim();
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("server URL {s:?} must start with https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') || path.contains(['?', '#']) {
            return Err(format!("server URL {s:?} must have no user, query or fragment"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| format!("bad IPv6 address in {s:?}"))?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| format!("bad IPv6 address in {s:?}"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| format!("bad port in server URL {s:?}"))?,
            None => default_port,
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)) {
            return Err(format!("bad host in server URL {s:?}"));
        }
        Ok(Url { tls, host, port, base: path.trim_end_matches('/').to_string() })
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.tls { 443 } else { 80 } { host } else { format!("{host}:{}", self.port) }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", if self.tls { "https" } else { "http" }, self.authority(), self.base)
    }
}

/// Why a request got no response. All of these are worth a retry.
#[derive(Debug)]
pub enum HttpError {
    Connect(String),
    Tls(String),
    Io(io::Error),
    Protocol(&'static str),
    Timeout,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "cannot connect to the server: {e}"),
            HttpError::Tls(e) => write!(f, "TLS error: {e}"),
            HttpError::Io(e) => write!(f, "I/O error: {e}"),
            HttpError::Protocol(e) => write!(f, "bad HTTP response: {e}"),
            HttpError::Timeout => f.write_str("request timed out"),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) {
            return HttpError::Timeout;
        }
        // rustls reports certificate and handshake problems as InvalidData.
        if e.kind() == io::ErrorKind::InvalidData {
            return HttpError::Tls(e.to_string());
        }
        HttpError::Io(e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Builds the TLS configuration trusting only the CA certificates of `pem`.
pub fn tls_config(pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("bad PEM in the server CA: {e}"))?;
        roots.add(cert).map_err(|e| format!("bad certificate in the server CA: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the server CA holds no certificate".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub struct Client {
    pub url: Url,
    /// Where to connect; `None`: the URL's host, which must then be an IP address.
    pub addr: Option<SocketAddr>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// Sends `POST {base}{path}` and reads the response, all before `deadline`.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8], deadline: Instant) -> Result<Response, HttpError> {
        let addr = match (self.addr, self.url.host.parse::<IpAddr>()) {
            (Some(a), _) => a,
            (None, Ok(ip)) => SocketAddr::new(ip, self.url.port),
            (None, Err(_)) => {
                return Err(HttpError::Connect(format!(
                    "no address to dial: the agent resolves no names, and LIFECYCLE_SERVER_ADDR (set by the webhook) is empty \
                     for server {}",
                    self.url.host
                )));
            }
        };
        let tcp = connect(addr, deadline)?;
        let _ = tcp.set_nodelay(true);
        let stream = DeadlineStream { tcp, deadline };
        let mut req = format!(
            "POST {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lifecycle-agent/{}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.url.base,
            self.url.authority(),
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        for (k, v) in headers {
            req.push_str(k);
            req.push_str(": ");
            req.push_str(v);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        let mut msg = req.into_bytes();
        msg.extend_from_slice(body);
        match &self.tls {
            Some(config) => {
                let name = ServerName::try_from(self.url.host.clone()).map_err(|e| HttpError::Tls(e.to_string()))?;
                let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| HttpError::Tls(e.to_string()))?;
                let mut tls = rustls::StreamOwned::new(conn, stream);
                exchange(&mut tls, &msg)
            }
            None => {
                let mut s = stream;
                exchange(&mut s, &msg)
            }
        }
    }
}

fn exchange<S: Read + Write>(s: &mut S, msg: &[u8]) -> Result<Response, HttpError> {
    s.write_all(msg)?;
    s.flush()?;
    read_response(s)
}

fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, HttpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(HttpError::Timeout);
    }
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(left)).map_err(|e| HttpError::Connect(format!("{addr}: {e}")))
}

/// A TCP stream whose every read and write ends by the deadline.
struct DeadlineStream {
    tcp: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(io::ErrorKind::TimedOut.into()) } else { Ok(left) }
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.tcp.set_write_timeout(Some(left))?;
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// Reads one response: status, headers, and a body framed by
/// `Content-Length`, chunked encoding, or the end of the connection.
pub fn read_response<R: Read>(r: &mut R) -> Result<Response, HttpError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Skip interim 1xx responses.
        let (status, headers, head_len) = loop {
            if let Some(parsed) = parse_head(&buf)? {
                break parsed;
            }
            if buf.len() > MAX_HEAD {
                return Err(HttpError::Protocol("response headers too large"));
            }
            let n = read_some(r, &mut chunk)?;
            if n == 0 {
                return Err(HttpError::Protocol("connection closed before the response"));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        buf.drain(..head_len);
        if (100..200).contains(&status) {
            continue;
        }
        let mut resp = Response { status, headers, body: Vec::new() };
        let chunked = resp.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = read_chunked(r, buf)?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.trim().parse().map_err(|_| HttpError::Protocol("bad Content-Length"))?;
            let want = len.min(MAX_BODY);
            while buf.len() < want {
                let n = read_some(r, &mut chunk)?;
                if n == 0 {
                    return Err(HttpError::Protocol("connection closed inside the body"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.truncate(want);
            resp.body = buf;
        } else {
            while buf.len() < MAX_BODY {
                let n = read_some(r, &mut chunk)?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.truncate(MAX_BODY);
            resp.body = buf;
        }
        return Ok(resp);
    }
}

/// A read where a TLS peer closing without `close_notify` counts as the end.
fn read_some<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, HttpError> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Status, headers and the length of the head.
pub type Head = (u16, Vec<(String, String)>, usize);

/// Headers a response may carry (the server sends a handful).
const MAX_HEADERS: usize = 32;

/// `Some((status, headers, head length))` once `buf` holds a whole head.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut slots);
    let len = match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::Version) => return Err(HttpError::Protocol("not an HTTP/1.x response")),
        Err(httparse::Error::Status) => return Err(HttpError::Protocol("bad status code")),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::Protocol("too many headers")),
        Err(_) => return Err(HttpError::Protocol("bad header line")),
    };
    let status = head.code.filter(|c| (100..600).contains(c)).ok_or(HttpError::Protocol("bad status code"))?;
    let mut headers = Vec::with_capacity(head.headers.len());
    for h in head.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| HttpError::Protocol("headers are not UTF-8"))?;
        headers.push((h.name.to_string(), value.trim().to_string()));
    }
    Ok(Some((status, headers, len)))
}

fn read_chunked<R: Read>(r: &mut R, mut buf: Vec<u8>) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut fill = |buf: &mut Vec<u8>, r: &mut R| -> Result<(), HttpError> {
        let n = read_some(r, &mut chunk)?;
        if n == 0 {
            return Err(HttpError::Protocol("connection closed inside a chunked body"));
        }
        if buf.len() > MAX_BODY + MAX_HEAD {
            return Err(HttpError::Protocol("chunked body too large"));
        }
        buf.extend_from_slice(&chunk[..n]);
        Ok(())
    };
    loop {
        let (line_len, size) = loop {
            match httparse::parse_chunk_size(&buf) {
                Ok(httparse::Status::Complete((len, size))) => break (len, size),
                Ok(httparse::Status::Partial) => fill(&mut buf, r)?,
                Err(_) => return Err(HttpError::Protocol("bad chunk size")),
            }
        };
        let size = usize::try_from(size).map_err(|_| HttpError::Protocol("chunk too large"))?;
        buf.drain(..line_len);
        if size == 0 {
            return Ok(body);
        }
        if size > MAX_BODY {
            return Err(HttpError::Protocol("chunk too large"));
        }
        while buf.len() < size + 2 {
            fill(&mut buf, r)?;
        }
        if body.len() < MAX_BODY {
            body.extend_from_slice(&buf[..size.min(MAX_BODY - body.len())]);
        }
        buf.drain(..size + 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(raw: &[u8]) -> Result<Response, HttpError> {
        read_response(&mut &raw[..])
    }

    #[test]
    fn parses_urls() {
        let u = Url::parse("https://lifecycle-webhook.lifecycle-jobs-system.svc:443").unwrap();
        assert_eq!(u, Url { tls: true, host: "lifecycle-webhook.lifecycle-jobs-system.svc".into(), port: 443, base: "".into() });
        assert_eq!(u.authority(), "lifecycle-webhook.lifecycle-jobs-system.svc");
        let u = Url::parse("https://[::1]:8443/api/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.base.as_str()), ("::1", 8443, "/api"));
        assert_eq!(u.authority(), "[::1]:8443");
        assert_eq!(u.to_string(), "https://[::1]:8443/api");
        assert_eq!(Url::parse("http://127.0.0.1").unwrap().port, 80);
        for bad in ["ftp://x", "https://", "https://a:b", "https://u@h", "https://h/p?q", "https://[zz]:1", "x"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_length_body() {
        let r = resp(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"message\":\"ok\"}\nEXTRA",
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"{\"message\":\"ok\"}\n");
    }

    #[test]
    fn chunked_body() {
        let r = resp(b"HTTP/1.1 422 Unprocessable Entity\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.status, 422);
        assert_eq!(r.body, b"hello, world");
    }

    #[test]
    fn body_until_close_and_caps() {
        let r = resp(b"HTTP/1.0 500 Oops\r\n\r\nbody").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"body"[..]));
        let mut raw = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        raw.extend(vec![b'x'; MAX_BODY * 2]);
        assert_eq!(resp(&raw).unwrap().body.len(), MAX_BODY);
    }

    /// Hands out one byte per read: every partial head and chunk line is seen.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else { return Ok(0) };
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn responses_arriving_byte_by_byte() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        let r = read_response(&mut Trickle(raw)).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello, world"[..]));
        let r = read_response(&mut Trickle(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"ok"[..]));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let r = resp(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(r.status, 204);
    }

    #[test]
    fn malformed_responses() {
        assert!(matches!(resp(b""), Err(HttpError::Protocol(_))));
        assert!(matches!(resp(b"SSH-2.0-x\r\n\r\n"), Err(HttpError::Protocol(_))));
        assert!(matches!(resp(b"HTTP/1.1 2000 X\r\n\r\n"), Err(HttpError::Protocol(_))));
        assert!(matches!(resp(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"), Err(HttpError::Protocol(_))));
        assert!(matches!(resp(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), Err(HttpError::Protocol(_))));
        assert!(matches!(resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), Err(HttpError::Protocol(_))));
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge.extend(vec![b'a'; MAX_HEAD + 10]);
        assert!(matches!(resp(&huge), Err(HttpError::Protocol(_))));
    }

    #[test]
    fn tls_config_needs_a_certificate() {
        assert!(tls_config(b"").is_err());
        assert!(tls_config(b"not pem").is_err());
        let ca = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        assert!(tls_config(ca.cert.pem().as_bytes()).is_ok());
    }
}
