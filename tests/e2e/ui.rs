//! The web view, `kubectl lifecycle ui`, end to end: the plugin's release binary serving the
//! example environment (`examples/preview-environment`, applied as `make run` does, into a
//! namespace of its own) to a real headless Chromium, as a person uses it; plus the checks a
//! browser cannot make (no cookie, a foreign `Origin`, a foreign `Host`, raw bodies and event
//! streams, none of which may hold the sensitive value).
//!
//! The pages are read through the contract of `kubectl lifecycle ui` (ids, classes and data
//! attributes, not the texts meant for people). `LJ_SCREENSHOTS=1` (`make screenshots`) also
//! saves the three pages as PNG under docs/images/.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use lifecycle_contract::names::LABEL_STATE;
use lifecycle_e2e::browser::{Browser, HttpReply, PAGE_WAIT, UiServer, http_request, impersonating_kubeconfig};
use lifecycle_e2e::lifecycle::{patch_namespace, published_of, runs};
use lifecycle_e2e::process::{self, Ran};
use lifecycle_e2e::{DeleteOnDrop, SUITE_LABEL, client, kubeconfig_path, obj, unique_suffix, wait_until};
use serde_json::json;

/// Bound on applying the example (its start jobs run, web rolls out).
const APPLY: Duration = Duration::from_secs(300);
/// Bound on a stop seen in the page: the stop job's pod runs, then web is scaled down.
const STOP: Duration = Duration::from_secs(90);
/// Bound on a forced run seen in the page: its pod is scheduled, runs, and its log streams.
const FORCED_RUN: Duration = Duration::from_secs(90);
/// How long an event stream is read before the connection is dropped.
const STREAM_READ: Duration = Duration::from_secs(3);
/// The Content-Security-Policy of every page.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// Bound on a page or asset answer.
const ANSWER: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn screenshots_wanted() -> bool {
    std::env::var("LJ_SCREENSHOTS").is_ok_and(|v| v == "1")
}

/// Saves a PNG of the page (at most 1600 pixels tall) as docs/images/NAME when LJ_SCREENSHOTS=1.
async fn screenshot(browser: &Browser, name: &str) -> Result<()> {
    if screenshots_wanted() {
        let path = repo().join("docs/images").join(name);
        browser.screenshot(&path, 1600).await?;
        eprintln!("screenshot: {}", path.display());
    }
    Ok(())
}

// --- the example environment ---------------------------------------------------------------------

/// `scripts/example.sh apply NS`, as `make run` runs it, with the cluster's kubeconfig, kubectl
/// and the plugin.
async fn apply_example(ns: &str) -> Result<Ran> {
    let line = format!("scripts/example.sh apply {ns}");
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &line]).current_dir(repo()).envs(process::user_env()?);
    tokio::task::spawn_blocking(move || process::run(cmd, line, APPLY)).await?
}

/// The example's namespace: `preview-demo` (the example's own name) for the screenshots when it
/// is free, else a name of its own.
async fn example_namespace(client: &Client) -> Result<String> {
    if screenshots_wanted() && Api::<Namespace>::all(client.clone()).get_opt("preview-demo").await?.is_none() {
        return Ok("preview-demo".to_string());
    }
    Ok(format!("e2e-ui-{}", unique_suffix()))
}

// --- a user who may only look -----------------------------------------------------------------------

/// A user bound to the built-in `view` ClusterRole in one namespace, nothing else (the
/// RoleBinding goes with the namespace). `view` in a namespace also lets one read that
/// Namespace object, which holds the environment's state.
struct Viewer {
    user: String,
}

impl Viewer {
    async fn create(client: &Client, ns: &str) -> Result<Viewer> {
        let user = format!("e2e-ui-viewer-{}", unique_suffix());
        let binding: RoleBinding = obj(json!({
            "metadata": { "name": "e2e-ui-viewer" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
        }));
        Api::<RoleBinding>::namespaced(client.clone(), ns).create(&PostParams::default(), &binding).await?;
        Ok(Viewer { user })
    }
}

// --- raw HTTP -----------------------------------------------------------------------------------------

/// One request to the server, off the test's runtime (the client blocks).
async fn raw(
    port: u16,
    method: &str,
    path: &str,
    headers: Vec<(String, String)>,
    body: Option<String>,
    read_for: Duration,
) -> Result<HttpReply> {
    let (method, path) = (method.to_string(), path.to_string());
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http_request(port, &method, &path, &headers, body.as_deref(), read_for)
    })
    .await?
}

fn cookie_header(session: &str) -> (String, String) {
    ("Cookie".to_string(), format!("lj_session={session}"))
}

/// `application/x-www-form-urlencoded` of `fields`.
fn form(fields: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    fields.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// A percent-encoded query value.
fn query_value(s: &str) -> String {
    form(&[("x", s)]).trim_start_matches("x=").to_string()
}

/// Fails if `text` holds the sensitive value (also in the forms JSON or HTML may give it).
fn ensure_no_secret(what: &str, text: &str, secret: &str) -> Result<()> {
    let forms = [secret.to_string(), secret.replace('/', "\\/"), secret.replace('+', "&#43;"), secret.replace('=', "&#61;")];
    for f in &forms {
        ensure!(!text.contains(f.as_str()), "{what} holds the sensitive value DATABASE_PASSWORD:\n{text}");
    }
    Ok(())
}

/// The first word of a status text (`started`, `stopped`, `starting`...).
fn first_word(text: &str) -> &str {
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ',' || c == ':').find(|w| !w.is_empty()).unwrap_or("")
}

// --- in the browser -------------------------------------------------------------------------------------

/// Opens the printed URL: the one-time token gives the session cookie, then the page without it.
async fn log_in(browser: &Browser, server: &UiServer, landing: &str) -> Result<String> {
    browser.goto(&server.login_url).await?;
    let url = browser.url().await?;
    ensure!(!url.contains("token="), "the token should be gone from the address after logging in: {url}");
    ensure!(url == server.url(landing), "logging in should land on {landing}: at {url}");
    let session = browser.cookie("lj_session").await?;
    ensure!(!session.value.is_empty(), "empty session cookie");
    ensure!(
        session.http_only && session.same_site == "Strict" && session.path == "/",
        "the session cookie should be HttpOnly, SameSite=Strict, Path=/: {session:?}"
    );
    Ok(session.value)
}

/// Waits until the page's script has connected its live stream.
async fn wait_ready(browser: &Browser) -> Result<()> {
    browser.wait_attr("body", "data-ready", "the live stream connected", PAGE_WAIT, |v| v == "1").await?;
    Ok(())
}

/// Marks the current document, to tell later that the page changed without a reload.
async fn mark_document(browser: &Browser) -> Result<()> {
    browser.js("window.__e2eNoReload = 'same document'; return true;").await?;
    Ok(())
}

async fn ensure_same_document(browser: &Browser, what: &str) -> Result<()> {
    let v = browser.js("return window.__e2eNoReload || null;").await?;
    ensure!(v.as_str() == Some("same document"), "{what}: the page was reloaded or left (at {})", browser.url().await?);
    Ok(())
}

/// The `data-run` names of the job page's runs table.
async fn run_names(browser: &Browser) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for row in browser.find_all("table#runs tr[data-run]").await? {
        if let Some(n) = row.attr("data-run").await.map_err(|e| anyhow!("data-run: {e}"))? {
            names.insert(n);
        }
    }
    Ok(names)
}

/// Waits for `#flash p.error` and returns its text.
async fn flash_error(browser: &Browser) -> Result<String> {
    browser.wait_text("#flash p.error", "an error shown", PAGE_WAIT, |t| !t.is_empty()).await
}

// --- the test ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ui_shows_and_drives_the_example_environment() -> Result<()> {
    let client = client().await?;
    let ns = example_namespace(&client).await?;
    let _cleanup = DeleteOnDrop(ns.clone());
    let applied = apply_example(&ns).await?.success()?;
    patch_namespace(&client, &ns, json!({"metadata": {"labels": {SUITE_LABEL: "true"}}})).await?;
    let (cm, secret) = published_of(&client, &ns).await?;
    let password = secret.get("DATABASE_PASSWORD").cloned().with_context(|| format!("no DATABASE_PASSWORD: {applied}"))?;
    ensure!(password.len() >= 16, "DATABASE_PASSWORD too short to look for: {}", password.len());
    let host = cm.get("DATABASE_HOST").cloned().context("no DATABASE_HOST")?;
    let browser = Browser::start().await?;

    // --- A user who may only look: the pages, and every action refused with the API server's word.
    {
        let viewer = Viewer::create(&client, &ns).await?;
        let (_dir, kubeconfig) = impersonating_kubeconfig(&viewer.user)?;
        let server = UiServer::start(&kubeconfig, &["-n", &ns])?;
        let env_path = format!("/env/{ns}");
        ensure!(
            server.login_url.starts_with(&format!("{}{env_path}?token=", server.base)),
            "with -n the printed URL should open the environment's page: {}",
            server.login_url
        );
        log_in(&browser, &server, &env_path).await.with_context(|| server.output())?;
        wait_ready(&browser).await?;
        let status = browser.wait_text("#env-status", "started", PAGE_WAIT, |t| first_word(t) == "started").await?;
        mark_document(&browser).await?;
        browser.click("form.action[data-action=stop] button[type=submit]").await?;
        let refused = flash_error(&browser).await?;
        for piece in ["forbidden", &format!("User \"{}\"", viewer.user), "cannot"] {
            ensure!(refused.contains(piece), "the refusal should be the API server's message (with {piece:?}): {refused:?}");
        }
        ensure_same_document(&browser, "a refused stop").await?;
        let n = Api::<Namespace>::all(client.clone()).get(&ns).await?;
        ensure!(n.labels().get(LABEL_STATE).map(String::as_str) != Some("stopped"), "the viewer's stop changed the state");
        ensure!(
            first_word(&browser.text("#env-status").await?.unwrap_or_default()) == "started",
            "the viewer's refused stop changed the status (was {status:?})"
        );

        // Force-running a job: refused too, and no new run.
        let stops_before = runs(&client, &ns, "postgres", "stop").await?.len();
        browser.goto(&server.url(&format!("/env/{ns}/jobs/postgres"))).await?;
        wait_ready(&browser).await?;
        browser.click("form.force[data-event=stop] button").await?;
        let refused = flash_error(&browser).await?;
        for piece in ["forbidden", &format!("User \"{}\"", viewer.user), "cannot"] {
            ensure!(refused.contains(piece), "the forced run's refusal should be the API server's message: {refused:?}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stops_after = runs(&client, &ns, "postgres", "stop").await?.len();
        ensure!(stops_after == stops_before, "the viewer's refused forced run made a run anyway");
    }

    // --- An admin: everything works.
    let server = UiServer::start(&kubeconfig_path(), &[])?;
    let session = log_in(&browser, &server, "/").await.with_context(|| server.output())?;
    let token_path = server.login_url.trim_start_matches(&server.base).to_string();

    // The environments: this one is there, started.
    wait_ready(&browser).await?;
    let row = format!("table#environments tr[data-env=\"{ns}\"]");
    browser.wait_text(&format!("{row} td.state"), "started", PAGE_WAIT, |t| t == "started").await?;
    browser.wait_text(&format!("{row} td.status"), "status started", PAGE_WAIT, |t| first_word(t) == "started").await?;
    for select in ["form#filters select[name=project]", "form#filters select[name=state]"] {
        ensure!(browser.find(select).await?.is_some(), "the environments page should have the filter {select}");
    }
    screenshot(&browser, "ui-environments.png").await?;
    let list_html = browser.html().await?;
    ensure_no_secret("the environments page (DOM)", &list_html, &password)?;

    // Its page, through its link: both stages succeeded, the outputs with the password masked.
    browser.click(&format!("{row} td.name a")).await?;
    browser
        .wait_until("the environment's page", PAGE_WAIT, || async {
            Ok(browser.url().await?.ends_with(&format!("/env/{ns}")).then_some(()))
        })
        .await?;
    wait_ready(&browser).await?;
    browser.wait_text("#env-state", "started", PAGE_WAIT, |t| t == "started").await?;
    browser.wait_text("#env-status", "started", PAGE_WAIT, |t| first_word(t) == "started").await?;
    for (stage, job) in [("1", "postgres"), ("2", "seed")] {
        let run =
            format!("section#stages div.stage[data-stage=\"{stage}\"] div.job[data-job=\"{job}\"] span.run[data-event=start]");
        browser.wait_attr(&run, "data-result", "succeeded", PAGE_WAIT, |v| v == "succeeded").await?;
    }
    let masked = "table#outputs tr[data-var=DATABASE_PASSWORD] td.value";
    browser.wait_text(masked, "masked", PAGE_WAIT, |t| t == "******").await?;
    let class = browser.attr(masked, "class").await?.unwrap_or_default();
    ensure!(class.split_whitespace().any(|c| c == "masked"), "the masked value should have class masked: {class:?}");
    browser.wait_text("table#outputs tr[data-var=DATABASE_HOST] td.value", "the host", PAGE_WAIT, |t| t == host).await?;
    screenshot(&browser, "ui-environment.png").await?;
    ensure_no_secret("the environment's page (DOM)", &browser.html().await?, &password)?;
    let csrf = browser
        .attr("form.action[data-action=stop] input[name=csrf]", "value")
        .await?
        .context("no csrf field in the stop form")?;

    // --- What a browser does not let a page do.
    let no_cookie = raw(server.port, "GET", "/", vec![], None, ANSWER).await?;
    ensure!(no_cookie.status == 401, "GET / without the cookie: {} {}", no_cookie.status, no_cookie.body);
    let no_cookie = raw(server.port, "GET", &format!("/env/{ns}"), vec![], None, ANSWER).await?;
    ensure!(no_cookie.status == 401, "GET /env/NS without the cookie: {}", no_cookie.status);
    let reused = raw(server.port, "GET", &token_path, vec![], None, ANSWER).await?;
    ensure!(
        reused.status == 401 && reused.header("set-cookie").is_none(),
        "the printed link works once; used again: {} {:?}",
        reused.status,
        reused.headers
    );
    // DNS rebinding: a page of another site that resolves to 127.0.0.1 sends its own Host.
    let foreign_host = raw(
        server.port,
        "GET",
        "/",
        vec![("Host".into(), format!("evil.example:{}", server.port)), cookie_header(&session)],
        None,
        ANSWER,
    )
    .await?;
    ensure!(
        foreign_host.status == 421 || foreign_host.status == 400,
        "a foreign Host should be refused: {}",
        foreign_host.status
    );
    let stop_form = form(&[("csrf", &csrf)]);
    let stop_path = format!("/env/{ns}/actions/stop");
    let urlencoded = ("Content-Type".to_string(), "application/x-www-form-urlencoded".to_string());
    let post = |origin: Option<&str>, cookie: bool| {
        let mut h = vec![urlencoded.clone()];
        if cookie {
            h.push(cookie_header(&session));
        }
        if let Some(o) = origin {
            h.push(("Origin".to_string(), o.to_string()));
        }
        raw(server.port, "POST", &stop_path, h, Some(stop_form.clone()), ANSWER)
    };
    let cross = post(Some("http://evil.example"), true).await?;
    ensure!(cross.status == 403, "a cross-origin POST should get 403: {} {}", cross.status, cross.body);
    let other_port = post(Some(&format!("http://127.0.0.1:{}", server.port.wrapping_add(1))), true).await?;
    ensure!(other_port.status == 403, "a POST from another port's origin should get 403: {}", other_port.status);
    let originless = post(None, true).await?;
    ensure!(originless.status == 403, "an origin-less POST should get 403: {}", originless.status);
    let cookieless = post(Some(&server.base), false).await?;
    ensure!(cookieless.status == 401, "a POST without the cookie should get 401: {}", cookieless.status);
    let n = Api::<Namespace>::all(client.clone()).get(&ns).await?;
    ensure!(n.labels().get(LABEL_STATE).map(String::as_str) != Some("stopped"), "a refused POST stopped the environment");

    // --- No body holds the sensitive value: pages, assets, event streams, logs.
    let start_run =
        runs(&client, &ns, "postgres", "start").await?.first().map(|j| j.name_any()).context("no postgres start run")?;
    let seed_run = runs(&client, &ns, "seed", "start").await?.first().map(|j| j.name_any()).context("no seed start run")?;
    let pages = [
        "/".to_string(),
        "/?state=started".to_string(),
        format!("/env/{ns}"),
        format!("/env/{ns}/jobs/postgres"),
        format!("/env/{ns}/jobs/seed"),
        format!("/env/{ns}/jobs/postgres?run={start_run}"),
    ];
    let mut bodies = Vec::new();
    for page in &pages {
        let reply = raw(server.port, "GET", page, vec![cookie_header(&session)], None, ANSWER).await?;
        ensure!(reply.status == 200, "GET {page}: {} {}", reply.status, reply.body);
        let csp = reply.header("content-security-policy").unwrap_or_default();
        ensure!(csp == CSP, "GET {page}: Content-Security-Policy {csp:?}, want {CSP:?}");
        bodies.push((format!("GET {page}"), reply));
    }
    for asset in ["/assets/app.js", "/assets/app.css"] {
        let reply = raw(server.port, "GET", asset, vec![cookie_header(&session)], None, ANSWER).await?;
        ensure!(reply.status == 200, "GET {asset}: {}", reply.status);
        bodies.push((format!("GET {asset}"), reply));
    }
    // Event streams, read for a while each, side by side.
    let mut streams = Vec::new();
    for page in &pages {
        streams.push(format!("/live?page={}", query_value(page)));
    }
    streams.push(format!("/logs/{ns}/{start_run}"));
    streams.push(format!("/logs/{ns}/{seed_run}"));
    let reads = streams.iter().map(|s| {
        let (port, path, cookie) = (server.port, s.clone(), cookie_header(&session));
        async move { raw(port, "GET", &path, vec![cookie], None, STREAM_READ).await }
    });
    let replies = futures_join_all(reads).await;
    for (path, reply) in streams.iter().zip(replies) {
        let reply = reply?;
        ensure!(reply.status == 200, "GET {path}: {} {}", reply.status, reply.body);
        let kind = reply.header("content-type").unwrap_or_default().to_string();
        ensure!(kind.starts_with("text/event-stream"), "GET {path}: content-type {kind:?}");
        bodies.push((format!("GET {path}"), reply));
    }
    let main_events = bodies.iter().filter(|(w, r)| w.starts_with("GET /live") && r.body.contains("event: main")).count();
    ensure!(main_events > 0, "no /live stream sent a main event within {STREAM_READ:?}");
    let log = &bodies.iter().find(|(w, _)| *w == format!("GET /logs/{ns}/{start_run}")).context("postgres log stream")?.1.body;
    ensure!(log.contains("event: line") && log.contains("provisioning database"), "the postgres start run's log stream: {log}");
    for (what, reply) in &bodies {
        ensure_no_secret(what, &reply.body, &password)?;
    }

    // --- Stop, from the page: `stopped` shows without a reload, and web is at 0.
    mark_document(&browser).await?;
    browser.click("form.action[data-action=stop] button[type=submit]").await?;
    browser.wait_text("#env-status", "stopped", STOP, |t| first_word(t) == "stopped").await?;
    ensure_same_document(&browser, "stopping").await?;
    browser.wait_text("#env-state", "stopped", PAGE_WAIT, |t| t == "stopped").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    wait_until("web is scaled to 0", Duration::from_secs(30), || async {
        let d = deployments.get("web").await?;
        Ok((d.spec.and_then(|s| s.replicas) == Some(0)).then_some(()))
    })
    .await?;
    ensure!(browser.find("#flash p.error").await?.is_none(), "the stop showed an error: {:?}", browser.text("#flash").await?);
    // The list's state filter puts it with the stopped ones now.
    let row_attr = format!("data-env=\"{ns}\"");
    for (filter, listed) in [("stopped", true), ("started", false)] {
        let reply = raw(server.port, "GET", &format!("/?state={filter}"), vec![cookie_header(&session)], None, ANSWER).await?;
        ensure!(reply.status == 200, "GET /?state={filter}: {}", reply.status);
        ensure!(
            reply.body.contains(&row_attr) == listed,
            "GET /?state={filter} should {}list {ns}",
            if listed { "" } else { "not " }
        );
    }

    // --- Force-run postgres' stop event from its page: a new run, its log streaming in.
    browser.click("section#stages div.job[data-job=postgres] a.job-link").await?;
    browser
        .wait_until("the postgres job page", PAGE_WAIT, || async {
            Ok(browser.url().await?.ends_with(&format!("/env/{ns}/jobs/postgres")).then_some(()))
        })
        .await?;
    wait_ready(&browser).await?;
    browser.wait_for("table#runs tr[data-run]").await?;
    let before = run_names(&browser).await?;
    mark_document(&browser).await?;
    // Record every (run, state) the log section goes through, to tell it streamed.
    browser
        .js("window.__e2eLogStates = []; setInterval(() => { const l = document.querySelector('section#log'); \
             const s = l ? (l.dataset.run || '') + ' ' + (l.dataset.state || '') : ''; const a = window.__e2eLogStates; \
             if (a[a.length - 1] !== s) a.push(s); }, 10); return true;")
        .await?;
    browser.click("form.force[data-event=stop] button").await?;
    let new_run = browser
        .wait_until("a new run in the runs table", FORCED_RUN, || async {
            let now = run_names(&browser).await?;
            Ok(now.difference(&before).next().cloned())
        })
        .await?;
    let event = browser.text(&format!("table#runs tr[data-run=\"{new_run}\"] td.event")).await?.unwrap_or_default();
    ensure!(event.contains("stop"), "the forced run should be of event stop: {event:?}");
    let log_section = "section#log";
    browser.wait_attr(log_section, "data-run", "the log of the new run", FORCED_RUN, |v| v == new_run).await?;
    let pausing = format!("pausing database db-{ns}");
    browser
        .wait_text(&format!("{log_section} pre.log[data-container=main]"), "the stop command's line", FORCED_RUN, |t| {
            t.contains(&pausing)
        })
        .await?;
    browser.wait_attr(log_section, "data-state", "the log ended", FORCED_RUN, |v| v == "ended").await?;
    browser
        .wait_attr(&format!("table#runs tr[data-run=\"{new_run}\"] td.result"), "data-result", "succeeded", FORCED_RUN, |v| {
            v == "succeeded"
        })
        .await?;
    ensure_same_document(&browser, "the forced run and its log").await?;
    let states = browser.js("return window.__e2eLogStates;").await?;
    let streamed = states.as_array().is_some_and(|a| a.iter().any(|s| s.as_str() == Some(&format!("{new_run} streaming"))));
    ensure!(streamed, "the new run's log should have been streaming before it ended; its section went through {states}");
    let containers = browser.find_all(&format!("{log_section} pre.log[data-container]")).await?;
    ensure!(!containers.is_empty(), "no log containers");
    if screenshots_wanted() {
        // For the picture only: the run's duration, once the Job's completion is recorded.
        let duration = format!("table#runs tr[data-run=\"{new_run}\"] td.duration");
        let _ = browser.wait_text(&duration, "a duration", PAGE_WAIT, |t| !t.is_empty() && t != "-").await;
    }
    screenshot(&browser, "ui-job.png").await?;
    ensure_no_secret("the job page (DOM)", &browser.html().await?, &password)?;

    drop(server);
    browser.close().await
}

/// Runs the futures side by side (each a task) and returns their results in order.
async fn futures_join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<Result<T>>
where
    F: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.map_err(|e| anyhow!("{e}")).and_then(|r| r));
    }
    out
}

/// The harness itself: Chromium starts headless through chromedriver and renders a page.
#[tokio::test]
async fn ui_browser_starts_and_renders_a_page() -> Result<()> {
    let browser = Browser::start().await?;
    browser.goto("data:text/html,<title>t</title><p id=x>hello</p><script>document.body.dataset.ready='1'</script>").await?;
    browser.wait_text("#x", "hello", PAGE_WAIT, |t| t == "hello").await?;
    wait_ready(&browser).await?;
    let dir = lifecycle_e2e::browser::TempDir::new("e2e-shot")?;
    browser.screenshot(&dir.path().join("page.png"), 1600).await?;
    let png = std::fs::read(dir.path().join("page.png"))?;
    ensure!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
    browser.close().await
}
