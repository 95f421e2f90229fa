//! A real headless Chromium driven through chromedriver (WebDriver), the plugin's web view
//! (`kubectl lifecycle ui`) run as a child process, and a small HTTP/1.1 client for the
//! checks a browser does not let a page make (no cookie, a foreign `Origin`, raw bodies).
//!
//! Chromium and chromedriver are Debian's (`tests/cluster/install-deps.sh`):
//! `/usr/bin/chromium` and `/usr/bin/chromedriver`, or `$CHROMIUM` and `$CHROMEDRIVER`.
//! Everything started here is stopped when its handle is dropped (also when a test fails):
//! chromedriver with the browser it started (its own process group), the plugin, the
//! browser's profile directory.

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use kube::config::Kubeconfig;
use serde_json::{Value, json};

use crate::process::plugin_binary;

/// How long a wait on the page polls before it fails (the page's live stream brings
/// changes in well under a second; the cluster may take seconds).
pub const PAGE_WAIT: Duration = Duration::from_secs(30);
/// How often the waits on the page poll.
const PAGE_POLL: Duration = Duration::from_millis(200);
/// At most this much of the page's HTML goes into an error message.
const HTML_IN_ERRORS: usize = 40_000;

// --- helpers ------------------------------------------------------------------------------------------

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", crate::unique_suffix()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free TCP port on the loopback interface (bound, then released for the caller to bind).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn program(var: &str, default: &str) -> Result<PathBuf> {
    let path = std::env::var_os(var).filter(|p| !p.is_empty()).map_or_else(|| PathBuf::from(default), PathBuf::from);
    ensure!(
        path.is_file(),
        "no {} (install Debian's chromium and chromium-driver: tests/cluster/install-deps.sh as root; or set {var})",
        path.display()
    );
    Ok(path)
}

/// Text cut to at most `max` bytes (at a character boundary), saying so.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes]", &text[..end], text.len() - end)
}

/// Reads a pipe line by line into `sink` on a thread of its own, sending the first line to `first`.
fn drain_lines(pipe: impl Read + Send + 'static, sink: Arc<Mutex<String>>, first: Option<mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        let mut first = first;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = first.take() {
                let _ = tx.send(line.clone());
            }
            let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
            s.push_str(&line);
            s.push('\n');
        }
    });
}

// --- the browser ---------------------------------------------------------------------------------------

/// chromedriver (and the Chromium it starts, in its process group) and the browser's profile:
/// killed and removed when dropped.
struct Driver {
    child: Child,
    profile: TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is its leader's: chromedriver's (started with process_group(0)).
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromedriver.log")).unwrap_or_default()
    }
}

/// Headless Chromium in a session of its own (fresh profile), through a chromedriver of its own.
pub struct Browser {
    client: Client,
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session (1280x900).
    pub async fn start() -> Result<Browser> {
        let chromedriver = program("CHROMEDRIVER", "/usr/bin/chromedriver")?;
        let chromium = program("CHROMIUM", "/usr/bin/chromium")?;
        let profile = TempDir::new("e2e-chromium")?;
        let port = free_port()?;
        let log = std::fs::File::create(profile.path().join("chromedriver.log"))?;
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let mut driver = Driver { child, profile };

        // chromedriver answers /status once it listens.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(reply) = http_get_simple(port, "/status")
                && reply.status == 200
                && reply.body.contains("\"ready\":true")
            {
                break;
            }
            if let Some(status) = driver.child.try_wait()? {
                bail!("chromedriver exited {status}:\n{}", driver.log());
            }
            ensure!(Instant::now() < deadline, "chromedriver did not answer on port {port} within 30 s:\n{}", driver.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        let user_data = driver.profile.path().join("profile");
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", user_data.display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let client = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(HttpConnector::new()).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .map_err(|_| anyhow!("no Chromium session within 60 s:\n{}", driver.log()))?
        .map_err(|e| anyhow!("no Chromium session: {e}\n{}", driver.log()))?;
        Ok(Browser { client, driver })
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub async fn close(self) -> Result<()> {
        let Browser { client, driver } = self;
        let closed = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        drop(driver);
        match closed {
            Ok(r) => r.map_err(|e| anyhow!("closing the session: {e}")),
            Err(_) => Ok(()),
        }
    }

    /// Opens `url` and waits for it to load (`document.readyState` complete).
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client.goto(url).await.map_err(|e| anyhow!("opening {url}: {e}"))
    }

    pub async fn url(&self) -> Result<String> {
        Ok(self.client.current_url().await.map_err(|e| anyhow!("current URL: {e}"))?.to_string())
    }

    /// The page's current HTML (the DOM as it is now, scripts' changes included).
    pub async fn html(&self) -> Result<String> {
        let v = self.js("return document.documentElement.outerHTML;").await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// Runs a script in the page and returns what it returns.
    pub async fn js(&self, script: &str) -> Result<Value> {
        self.client.execute(script, vec![]).await.map_err(|e| anyhow!("script {script:?}: {e}"))
    }

    /// The first element matching `css`, if any, now.
    pub async fn find(&self, css: &str) -> Result<Option<Element>> {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => Ok(Some(e)),
            Err(e) if e.is_no_such_element() => Ok(None),
            Err(e) => Err(anyhow!("finding {css}: {e}")),
        }
    }

    /// Every element matching `css`, now.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        self.client.find_all(Locator::Css(css)).await.map_err(|e| anyhow!("finding {css}: {e}"))
    }

    /// The visible text of the first element matching `css` (None: no such element). Read in one
    /// script, so that a live region replaced between finding and reading cannot make it stale.
    pub async fn text(&self, css: &str) -> Result<Option<String>> {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;";
        let v = self.client.execute(script, vec![Value::from(css)]).await.map_err(|e| anyhow!("text of {css}: {e}"))?;
        Ok(v.as_str().map(str::to_string))
    }

    /// An attribute of the first element matching `css` (None: no element or no attribute), read
    /// in one script like [`Browser::text`].
    pub async fn attr(&self, css: &str, name: &str) -> Result<Option<String>> {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null;";
        let v = self
            .client
            .execute(script, vec![Value::from(css), Value::from(name)])
            .await
            .map_err(|e| anyhow!("attribute {name} of {css}: {e}"))?;
        Ok(v.as_str().map(str::to_string))
    }

    /// Polls `check` until it returns `Some` or `timeout` passes; errors count as "not yet"
    /// (the live region may be replaced under our feet). On the deadline the error says what
    /// was awaited, the last error, the URL and the page's HTML.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let deadline = Instant::now() + timeout;
        let mut last_err = None;
        loop {
            match check().await {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => last_err = Some(e),
            }
            if Instant::now() >= deadline {
                let url = self.url().await.unwrap_or_else(|e| format!("({e})"));
                let html = self.html().await.unwrap_or_else(|e| format!("({e})"));
                let last = last_err.map(|e| format!("\nlast error: {e:#}")).unwrap_or_default();
                bail!(
                    "timed out after {timeout:?} waiting for {what}{last}\nat {url}\n--- page HTML:\n{}\n---",
                    cut(&html, HTML_IN_ERRORS)
                );
            }
            tokio::time::sleep(PAGE_POLL).await;
        }
    }

    /// Waits (up to [`PAGE_WAIT`]) for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> Result<Element> {
        self.wait_until(&format!("an element {css}"), PAGE_WAIT, || self.find(css)).await
    }

    /// Waits for the text of `css` to satisfy `ok`, and returns it.
    pub async fn wait_text(&self, css: &str, what: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> Result<String> {
        self.wait_until(&format!("{css}: {what}"), timeout, || async {
            Ok(self.text(css).await?.filter(|t| ok(t.trim())).map(|t| t.trim().to_string()))
        })
        .await
    }

    /// Waits for attribute `name` of `css` to satisfy `ok`, and returns it.
    pub async fn wait_attr(
        &self,
        css: &str,
        name: &str,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Result<String> {
        self.wait_until(&format!("{css}[{name}]: {what}"), timeout, || async {
            Ok(self.attr(css, name).await?.filter(|v| ok(v)))
        })
        .await
    }

    /// Clicks the first element matching `css`, waiting for it to exist (again, when the live
    /// region was replaced between finding and clicking it).
    pub async fn click(&self, css: &str) -> Result<()> {
        self.wait_until(&format!("clicking {css}"), PAGE_WAIT, || async {
            let Some(e) = self.find(css).await? else { return Ok(None) };
            e.click().await.map_err(|e| anyhow!("clicking {css}: {e}"))?;
            Ok(Some(()))
        })
        .await
    }

    /// Types `text` into the first element matching `css` (waiting for it to exist).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let e = self.wait_for(css).await?;
        e.send_keys(text).await.map_err(|e| anyhow!("typing into {css}: {e}"))
    }

    /// Cookie `name` of the current page's site (HttpOnly ones included).
    pub async fn cookie(&self, name: &str) -> Result<BrowserCookie> {
        let cookies = self.client.get_all_cookies().await.map_err(|e| anyhow!("cookies: {e}"))?;
        let names: Vec<String> = cookies.iter().map(|c| c.name().to_string()).collect();
        let c = cookies.into_iter().find(|c| c.name() == name).ok_or_else(|| anyhow!("no cookie {name} (cookies: {names:?})"))?;
        Ok(BrowserCookie {
            value: c.value().to_string(),
            http_only: c.http_only().unwrap_or(false),
            same_site: c.same_site().map(|s| s.to_string()).unwrap_or_default(),
            path: c.path().unwrap_or_default().to_string(),
        })
    }

    /// A PNG of the whole page (the window made as tall as the page, up to `max_height` pixels,
    /// for the shot; then 1280x900 again), written to `path` (its directory made if missing).
    pub async fn screenshot(&self, path: &Path, max_height: u32) -> Result<()> {
        let size = self
            .js("return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight, window.outerWidth];")
            .await?;
        let get = |i: usize| size.get(i).and_then(Value::as_u64).unwrap_or(0) as u32;
        let (page, chrome, width) = (get(0), get(1), get(2).max(1280));
        let height = (page + chrome).clamp(900, max_height.max(900));
        self.client.set_window_size(width, height).await.map_err(|e| anyhow!("window size: {e}"))?;
        // No scroll bar in the picture (a page taller than the cap is cut); let the page lay
        // out at its new size before the shot.
        self.js("document.documentElement.style.scrollbarWidth = 'none'; \
             return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))));")
            .await?;
        let png = self.client.screenshot().await.map_err(|e| anyhow!("screenshot: {e}"));
        self.client.set_window_size(width, 900).await.map_err(|e| anyhow!("window size: {e}"))?;
        self.js("document.documentElement.style.scrollbarWidth = ''; return true;").await?;
        let png = png?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// chromedriver's log so far (for failures of the browser itself).
    pub fn driver_log(&self) -> String {
        self.driver.log()
    }
}

/// A cookie as the browser holds it.
#[derive(Debug, Clone)]
pub struct BrowserCookie {
    pub value: String,
    pub http_only: bool,
    /// `Strict`, `Lax`, `None`, or empty when unset.
    pub same_site: String,
    pub path: String,
}

// --- the plugin's web view ---------------------------------------------------------------------------

/// `kubectl lifecycle ui` running as a child process; killed when dropped.
pub struct UiServer {
    child: Child,
    /// The URL it printed, with its one-time `?token=`.
    pub login_url: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub port: u16,
    output: Arc<Mutex<String>>,
}

impl Drop for UiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl UiServer {
    /// Starts `kubectl-lifecycle --kubeconfig KUBECONFIG ui --port 0 --no-browser ARGS` and
    /// reads the URL from the first line of its stdout (within 60 s).
    pub fn start(kubeconfig: &Path, args: &[&str]) -> Result<UiServer> {
        let binary = plugin_binary()?;
        let mut child = Command::new(&binary)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["ui", "--port", "0", "--no-browser"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} ui", binary.display()))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        drain_lines(child.stdout.take().context("stdout")?, output.clone(), Some(tx));
        drain_lines(child.stderr.take().context("stderr")?, output.clone(), None);
        let mut server = UiServer { child, login_url: String::new(), base: String::new(), port: 0, output };
        let first = rx.recv_timeout(Duration::from_secs(60));
        let first = match first {
            Ok(line) => line,
            Err(_) => bail!("`kubectl lifecycle ui` printed no URL within 60 s (or exited):\n{}", server.output()),
        };
        let rest = first
            .strip_prefix("http://127.0.0.1:")
            .ok_or_else(|| anyhow!("the first line should be the URL http://127.0.0.1:PORT/?token=...: {first:?}"))?;
        let port: u16 = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("port in {first:?}"))?;
        ensure!(first.contains("token="), "the URL should hold a token: {first:?}");
        server.login_url = first.trim().to_string();
        server.base = format!("http://127.0.0.1:{port}");
        server.port = port;
        Ok(server)
    }

    /// The process id (for its memory use).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The token of the printed URL.
    pub fn token(&self) -> &str {
        self.login_url.split("token=").nth(1).unwrap_or_default()
    }
}

/// A kubeconfig (written as JSON, which kubeconfig readers take as YAML) that is the cluster's
/// admin kubeconfig with every user impersonating `user`: `users[].user.as`, what
/// `kubectl --as=USER` does. Returned with the directory holding it (removed on drop).
pub fn impersonating_kubeconfig(user: &str) -> Result<(TempDir, PathBuf)> {
    let source = crate::kubeconfig_path();
    let mut config = Kubeconfig::read_from(&source).with_context(|| format!("reading {}", source.display()))?;
    for named in &mut config.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.to_string());
        }
    }
    let dir = TempDir::new("e2e-kubeconfig")?;
    let path = dir.path().join("kubeconfig");
    let text = serde_json::to_string_pretty(&config)?;
    let mut file = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    file.write(true).create_new(true).open(&path)?.write_all(text.as_bytes())?;
    Ok((dir, path))
}

// --- raw HTTP/1.1 on loopback ---------------------------------------------------------------------------

/// One HTTP answer: status, headers (names lower-cased) and the body (chunked encoding undone).
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// Sends one request to 127.0.0.1:`port` (`Connection: close`) and reads the answer for at
/// most `read_for`: to its end, or what came by then (a stream: SSE). `Host` is
/// `127.0.0.1:PORT` unless `headers` give one; a body is sent with its `Content-Length`.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    read_for: Duration,
) -> Result<HttpReply> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    conn.write_all(req.as_bytes())?;
    let deadline = Instant::now() + read_for;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        conn.set_read_timeout(Some(left))?;
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(e) => return Err(e).context(format!("reading the answer to {method} {path}")),
        }
    }
    parse_reply(&raw).with_context(|| format!("the answer to {method} {path}: {:?}", cut(&String::from_utf8_lossy(&raw), 2000)))
}

/// GET `path` without a cookie or anything else (chromedriver's /status).
fn http_get_simple(port: u16, path: &str) -> Result<HttpReply> {
    http_request(port, "GET", path, &[], None, Duration::from_secs(2))
}

fn parse_reply(raw: &[u8]) -> Result<HttpReply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| anyhow!("no complete response head"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("status line {status_line:?}"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    Ok(HttpReply { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Undoes chunked transfer encoding as far as the data goes (a stream read for a while ends
/// mid-chunk: what came of that chunk is kept).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16) else { break };
        if size == 0 {
            break;
        }
        data = &data[eol + 2..];
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        if take < size || data.len() < size + 2 {
            break;
        }
        data = &data[size + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined_also_when_cut_short() {
        assert_eq!(dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), b"hello world");
        assert_eq!(dechunk(b"5\r\nhello\r\nA\r\n wor"), b"hello wor");
        let reply = parse_reply(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nX-A: b\r\n\r\nno").unwrap();
        assert_eq!((reply.status, reply.body.as_str(), reply.header("x-a")), (401, "no", Some("b")));
    }
}
