//! What each page shows, read from the API with the person's credentials,
//! through the readers the commands use; and the pages' handlers.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event as CoreEvent, Pod};
use kube::Api;
use kube::api::ListParams;
use lifecycle_contract::names;
use serde::Deserialize;

use super::{Shared, pages};
use crate::client::{KubeResultExt, is_forbidden};
use crate::env::{self, EnvList, EnvStatus};
use crate::{jobs, outputs, vars};

/// A page of the view: what its address says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Page {
    Environments(Filters),
    Environment { ns: String },
    Job { ns: String, job: String, run: Option<String> },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Filters {
    #[serde(default)]
    pub(crate) project: Option<String>,
    #[serde(default)]
    pub(crate) state: Option<String>,
}

impl Filters {
    fn normalized(self) -> Filters {
        let keep = |v: Option<String>| v.filter(|v| !v.is_empty());
        Filters { project: keep(self.project), state: keep(self.state) }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobQuery {
    #[serde(default)]
    run: Option<String>,
    #[serde(default)]
    flash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FlashQuery {
    #[serde(default)]
    flash: Option<String>,
}

impl Page {
    /// Reads a page's address (path and query), as the live stream is given it.
    pub(crate) fn parse(path_and_query: &str) -> Option<Page> {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let params: BTreeMap<String, String> = url_decode_pairs(query);
        let segments: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
        match segments.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            [""] => Some(Page::Environments(
                Filters { project: params.get("project").cloned(), state: params.get("state").cloned() }.normalized(),
            )),
            ["env", ns] => Some(Page::Environment { ns: ns.to_string() }),
            ["env", ns, "jobs", job] => Some(Page::Job {
                ns: ns.to_string(),
                job: job.to_string(),
                run: params.get("run").cloned().filter(|r| !r.is_empty()),
            }),
            _ => None,
        }
    }
}

fn url_decode_pairs(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` and `+` (form encoding); invalid escapes stay as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A pod held by the start's scheduling gate.
#[derive(Debug, Clone)]
pub(crate) struct GatedPod {
    pub(crate) name: String,
    /// `Kind/name` of its owner.
    pub(crate) owner: Option<String>,
    pub(crate) created: Option<jiff::Timestamp>,
}

/// One Event of the environment's timeline.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) time: Option<jiff::Timestamp>,
    pub(crate) warning: bool,
    pub(crate) reason: String,
    pub(crate) object: String,
    pub(crate) note: String,
    pub(crate) count: i32,
}

/// Everything the environment page shows.
pub(crate) struct EnvironmentView {
    pub(crate) status: EnvStatus,
    pub(crate) outputs: outputs::Report,
    /// `None` when the input variables could not be read (the reason is in `notes`).
    pub(crate) inputs: Option<vars::Report>,
    pub(crate) notes: Vec<String>,
    pub(crate) gated: Option<Vec<GatedPod>>,
    pub(crate) events: Option<Vec<EventRow>>,
}

/// Everything a lifecycle job's page shows.
pub(crate) struct JobView {
    pub(crate) ns: String,
    pub(crate) template: Job,
    /// Its runs, newest first.
    pub(crate) runs: Vec<Job>,
    pub(crate) outputs: outputs::Report,
    /// The run whose log the page shows: the one asked for, else the newest.
    pub(crate) log_run: Option<String>,
}

/// How many Events the timeline shows (the newest).
const TIMELINE: usize = 40;

pub(crate) async fn environments(ui: &Shared, filters: &Filters) -> anyhow::Result<(EnvList, Vec<String>)> {
    let mut list = env::read_list(&ui.client).await?;
    let mut projects: Vec<String> = list.environments.iter().filter_map(|e| e.project.clone()).collect();
    projects.sort();
    projects.dedup();
    list.environments.retain(|e| {
        filters.project.as_ref().is_none_or(|p| e.project.as_ref() == Some(p))
            && filters.state.as_ref().is_none_or(|s| &e.state == s)
    });
    Ok((list, projects))
}

pub(crate) async fn environment(ui: &Shared, ns: &str) -> anyhow::Result<EnvironmentView> {
    let client = &ui.client;
    let (status, gathered, inputs, gated, events) = futures::join!(
        env::read_status(client, ns),
        outputs::gather(client, ns.to_string(), None, false),
        vars::read_report(client, ns, false),
        gated_pods(ui, ns),
        timeline(ui, ns),
    );
    let status = status?;
    let (outputs, mut notes) = outputs::decide(&gathered?, false);
    let inputs = match inputs {
        Ok((report, more)) => {
            notes.extend(more);
            Some(report)
        }
        Err(e) => {
            notes.push(format!("{e:#}"));
            None
        }
    };
    Ok(EnvironmentView { status, outputs, inputs, notes, gated: gated.ok(), events: events.ok() })
}

pub(crate) async fn job(ui: &Shared, ns: &str, name: &str, run: Option<&str>) -> anyhow::Result<JobView> {
    let client = &ui.client;
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let template = api
        .get_opt(name)
        .await
        .doing(format_args!("get job {name} in namespace {ns}"))?
        .ok_or_else(|| anyhow::anyhow!("job {name} not found in namespace {ns}"))?;
    if !jobs::is_template(&template) {
        anyhow::bail!("job {name} is not a lifecycle job (it has no annotation {})", names::ANNOTATION_ON);
    }
    let selector = format!("{}={name}", names::LABEL_JOB);
    let params = ListParams::default().labels(&selector);
    let (runs, gathered) =
        futures::join!(api.list(&params), outputs::gather(client, ns.to_string(), Some(template.clone()), false),);
    let mut runs: Vec<Job> = runs
        .doing(format_args!("list the runs of {name} in namespace {ns}"))?
        .items
        .into_iter()
        .filter(|r| jobs::run_of(r) == Some(name))
        .collect();
    runs.sort_by(|a, b| jobs::created(b).cmp(&jobs::created(a)).then_with(|| jobs::name(b).cmp(jobs::name(a))));
    let (outputs, _) = outputs::decide(&gathered?, false);
    let log_run = run.map(str::to_string).or_else(|| runs.first().map(|r| jobs::name(r).to_string()));
    Ok(JobView { ns: ns.to_string(), template, runs, outputs, log_run })
}

async fn gated_pods(ui: &Shared, ns: &str) -> anyhow::Result<Vec<GatedPod>> {
    let pods = Api::<Pod>::namespaced(ui.client.clone(), ns).list(&ListParams::default()).await;
    let pods = match pods {
        Ok(p) => p.items,
        Err(e) if is_forbidden(&e) => anyhow::bail!("forbidden"),
        Err(e) => return Err(e.into()),
    };
    Ok(pods
        .into_iter()
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.scheduling_gates.as_ref())
                .is_some_and(|g| g.iter().any(|g| g.name == names::SCHEDULING_GATE_START_JOBS))
        })
        .map(|p| GatedPod {
            owner: p.metadata.owner_references.as_ref().and_then(|o| o.first()).map(|o| format!("{}/{}", o.kind, o.name)),
            created: p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            name: p.metadata.name.unwrap_or_default(),
        })
        .collect())
}

async fn timeline(ui: &Shared, ns: &str) -> anyhow::Result<Vec<EventRow>> {
    let events = Api::<CoreEvent>::namespaced(ui.client.clone(), ns).list(&ListParams::default()).await?.items;
    let mut rows: Vec<EventRow> = events
        .into_iter()
        .map(|e| {
            let time = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            let o = &e.involved_object;
            EventRow {
                time,
                warning: e.type_.as_deref() == Some("Warning"),
                reason: e.reason.unwrap_or_default(),
                object: format!("{}/{}", o.kind.as_deref().unwrap_or("?"), o.name.as_deref().unwrap_or("?")),
                note: e.message.unwrap_or_default(),
                count: e.count.unwrap_or(1).max(1),
            }
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.time));
    rows.truncate(TIMELINE);
    Ok(rows)
}

// --- handlers ---

fn page_response(status: StatusCode, markup: maud::Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// The status of a page that could not be read: the API server's refusal as such, else a bad gateway.
pub(crate) fn failed_read_status(e: &anyhow::Error) -> StatusCode {
    match crate::client::api_code(e) {
        Some(403) => StatusCode::FORBIDDEN,
        Some(404) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn error_page(ui: &Shared, page: &Page, e: &anyhow::Error) -> Response {
    page_response(failed_read_status(e), pages::error(page, ui.auth.form_token(), &format!("{e:#}")))
}

pub(crate) async fn environments_page(State(ui): State<Shared>, Query(filters): Query<Filters>) -> Response {
    let filters = filters.normalized();
    let page = Page::Environments(filters.clone());
    match environments(&ui, &filters).await {
        Ok((list, projects)) => page_response(StatusCode::OK, pages::environments(&page, &filters, &projects, &list)),
        Err(e) => error_page(&ui, &page, &e),
    }
}

pub(crate) async fn environment_page(State(ui): State<Shared>, Path(ns): Path<String>, Query(q): Query<FlashQuery>) -> Response {
    let page = Page::Environment { ns: ns.clone() };
    let flash = q.flash.and_then(|id| ui.flashes.take(&id));
    match environment(&ui, &ns).await {
        Ok(view) => page_response(StatusCode::OK, pages::environment(&page, ui.auth.form_token(), flash.as_ref(), &view)),
        Err(e) => error_page(&ui, &page, &e),
    }
}

pub(crate) async fn job_page(
    State(ui): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<JobQuery>,
) -> Response {
    let page = Page::Job { ns: ns.clone(), job: name.clone(), run: q.run.clone().filter(|r| !r.is_empty()) };
    let flash = q.flash.and_then(|id| ui.flashes.take(&id));
    let pinned = q.run.as_deref().filter(|r| !r.is_empty());
    match job(&ui, &ns, &name, pinned).await {
        Ok(view) => page_response(StatusCode::OK, pages::job(&page, ui.auth.form_token(), flash.as_ref(), &view)),
        Err(e) => error_page(&ui, &page, &e),
    }
}

pub(crate) async fn not_found(State(ui): State<Shared>) -> Response {
    page_response(
        StatusCode::NOT_FOUND,
        pages::error(&Page::Environments(Filters::default()), ui.auth.form_token(), "no such page"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_read_from_their_address() {
        assert_eq!(Page::parse("/"), Some(Page::Environments(Filters::default())));
        assert_eq!(
            Page::parse("/?project=shop&state="),
            Some(Page::Environments(Filters { project: Some("shop".into()), state: None }))
        );
        assert_eq!(Page::parse("/env/preview-1"), Some(Page::Environment { ns: "preview-1".into() }));
        assert_eq!(
            Page::parse("/env/p/jobs/seed?run=seed-start-x"),
            Some(Page::Job { ns: "p".into(), job: "seed".into(), run: Some("seed-start-x".into()) })
        );
        assert_eq!(Page::parse("/env/p/jobs/seed?run="), Some(Page::Job { ns: "p".into(), job: "seed".into(), run: None }));
        assert_eq!(Page::parse("/etc/passwd"), None);
        assert_eq!(Page::parse("/env/a/b"), None);
    }

    #[test]
    fn a_page_the_api_server_refused_says_so_with_its_status() {
        let refused = |code: u16| {
            let status: kube::core::Status =
                serde_json::from_value(serde_json::json!({"code": code, "message": "namespaces is forbidden: User \"u\" cannot list", "reason": "Forbidden"}))
                    .unwrap();
            crate::client::explain(kube::Error::Api(Box::new(status)), "list namespaces")
        };
        let e = refused(403);
        assert_eq!(failed_read_status(&e), StatusCode::FORBIDDEN);
        assert!(
            format!("{e:#}").starts_with("cannot list namespaces: forbidden: namespaces is forbidden: User \"u\" cannot list")
        );
        assert_eq!(failed_read_status(&refused(404)), StatusCode::NOT_FOUND);
        assert_eq!(failed_read_status(&refused(500)), StatusCode::BAD_GATEWAY);
        assert_eq!(failed_read_status(&anyhow::anyhow!("namespace x is not an environment")), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("%zz%"), "%zz%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
