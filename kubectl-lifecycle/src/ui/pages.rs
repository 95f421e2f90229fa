//! The HTML of the view, pure: each page is a function of what was read.
//! maud escapes every value it is given, so a name, a log line or an API
//! message never becomes markup. Sensitive values are never here: the reports
//! they come from are masked before they reach these functions.

use std::time::Duration;

use axum::http::StatusCode;
use k8s_openapi::api::batch::v1::Job;
use lifecycle_contract::transition::Transition;
use lifecycle_contract::{Event, names};
use maud::{DOCTYPE, Markup, html};

use super::actions::{Flash, FlashKind};
use super::read::{EnvironmentView, Filters, JobView, Page};
use crate::env::{EnvList, EnvRow, RunRow, TemplateRow};
use crate::jobs::{self, LastRun};
use crate::outputs::OutputVariable;
use crate::table::{age, human_duration};
use crate::vars::InjectedVariable;

/// Characters kept as they are in a path segment; the rest is percent-encoded.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) fn env_href(ns: &str) -> String {
    format!("/env/{}", encode_segment(ns))
}

pub(crate) fn job_href(ns: &str, job: &str) -> String {
    format!("/env/{}/jobs/{}", encode_segment(ns), encode_segment(job))
}

fn run_href(ns: &str, job: &str, run: &str) -> String {
    format!("{}?run={}", job_href(ns, job), encode_segment(run))
}

pub(crate) fn logs_href(ns: &str, run: &str) -> String {
    format!("/logs/{}/{}", encode_segment(ns), encode_segment(run))
}

impl Page {
    /// The page's address.
    pub(crate) fn href(&self) -> String {
        match self {
            Page::Environments(f) => {
                let q: Vec<String> = [("project", &f.project), ("state", &f.state)]
                    .iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode_segment(v))))
                    .collect();
                if q.is_empty() { "/".into() } else { format!("/?{}", q.join("&")) }
            }
            Page::Environment { ns } => env_href(ns),
            Page::Job { ns, job, run: None } => job_href(ns, job),
            Page::Job { ns, job, run: Some(run) } => run_href(ns, job, run),
        }
    }

    fn live_href(&self) -> String {
        format!("/live?page={}", encode_segment(&self.href()))
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn parse_ts(s: Option<&str>) -> Option<jiff::Timestamp> {
    s.and_then(|s| s.parse().ok())
}

/// "3m ago", with the exact time on hover.
fn ago(t: Option<jiff::Timestamp>) -> Markup {
    match t {
        Some(t) => html! { time datetime=(t.to_string()) title=(t.to_string()) { (age(Some(t), now())) " ago" } },
        None => html! { span.muted { "-" } },
    }
}

fn took(started: Option<jiff::Timestamp>, finished: Option<jiff::Timestamp>) -> Option<String> {
    let (s, f) = (started?, finished?);
    Some(human_duration(Duration::from_secs(f.as_second().saturating_sub(s.as_second()).max(0) as u64)))
}

// --- the frame of every page ---

struct Crumb {
    label: String,
    href: Option<String>,
}

fn layout(title: &str, crumbs: &[Crumb], page: &Page, flash: Option<&Flash>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · lifecycle-jobs" }
                link rel="stylesheet" href="/assets/app.css";
                link rel="icon" href="data:,";
                script src="/assets/app.js" defer {}
            }
            body data-page=(page.href()) {
                a.skip href="#content" { "Skip to content" }
                header.top {
                    a.brand href="/" { span.logo aria-hidden="true" { "◐" } " lifecycle-jobs" }
                    nav aria-label="Breadcrumb" {
                        ol.crumbs {
                            @for c in crumbs {
                                li {
                                    @match &c.href {
                                        Some(h) => a href=(h) { (c.label) },
                                        None => span aria-current="page" { (c.label) },
                                    }
                                }
                            }
                        }
                    }
                    span #live-state .live-state title="Live updates" { "connecting" }
                }
                main #content {
                    div #flash role="status" aria-live="polite" {
                        @if let Some(f) = flash { (flash_markup(f)) }
                    }
                    (main)
                }
            }
        }
    }
}

pub(crate) fn flash_markup(f: &Flash) -> Markup {
    match f.kind {
        FlashKind::Ok => html! { p.ok { (f.message) } },
        FlashKind::Error => html! { p.error { (f.message) } },
    }
}

fn live(page: &Page, content: Markup) -> Markup {
    html! { div #live data-live=(page.live_href()) { (content) } }
}

/// The form of an environment's action (a POST with the form token).
fn action_form(href: &str, token: &str, action: &str, body: Markup) -> Markup {
    html! {
        form.action method="post" action=(href) data-action=(action) {
            input type="hidden" name="csrf" value=(token);
            (body)
        }
    }
}

/// The form that force-runs one event of a lifecycle job.
fn force_form(href: &str, token: &str, event: Event) -> Markup {
    html! {
        form.force method="post" action=(href) data-event=(event.as_str()) {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="event" value=(event.as_str());
            button type="submit" title={ "Run the " (event) " command now, whatever the environment's state" } { "Force " (event) }
        }
    }
}

pub(crate) fn refusal(status: StatusCode, why: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (status.as_u16()) " · lifecycle-jobs" } }
            body { h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) } p style="white-space:pre-line" { (why) } }
        }
    }
}

pub(crate) fn error(page: &Page, _token: &str, message: &str) -> Markup {
    let crumbs = [Crumb { label: "Environments".into(), href: Some("/".into()) }];
    layout(
        "Error",
        &crumbs,
        page,
        None,
        html! {
            div #live {
                section.panel {
                    h1 { "Could not show this page" }
                    pre.message.error { (message) }
                    p { a href=(page.href()) { "Try again" } " · " a href="/" { "All environments" } }
                }
            }
        },
    )
}

// --- environments ---

const STATES: [&str; 3] = ["started", "stopped", "deleted"];

pub(crate) fn environments(page: &Page, filters: &Filters, projects: &[String], list: &EnvList) -> Markup {
    let crumbs = [Crumb { label: "Environments".into(), href: None }];
    layout(
        "Environments",
        &crumbs,
        page,
        None,
        html! {
            div.heading {
                h1 { "Environments" }
                form #filters method="get" action="/" {
                    label { "Project "
                        select name="project" {
                            option value="" selected[filters.project.is_none()] { "all" }
                            @for p in projects { option value=(p) selected[filters.project.as_ref() == Some(p)] { (p) } }
                        }
                    }
                    label { "State "
                        select name="state" {
                            option value="" selected[filters.state.is_none()] { "all" }
                            @for s in STATES { option value=(s) selected[filters.state.as_deref() == Some(s)] { (s) } }
                        }
                    }
                    noscript { button type="submit" { "Filter" } }
                }
            }
            (live(page, environments_live(list, filters)))
        },
    )
}

pub(crate) fn environments_live(list: &EnvList, filters: &Filters) -> Markup {
    let filtered = filters.project.is_some() || filters.state.is_some();
    html! {
        @if list.environments.is_empty() {
            section.panel.empty {
                @if filtered {
                    p { "No environment matches these filters. " a href="/" { "Show all" } }
                } @else {
                    p { "No environments you may list." }
                    p.muted { "Make a namespace an environment with " code { "kubectl lifecycle env create NAMESPACE" } "." }
                }
            }
        } @else {
            table #environments {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Project" } th scope="col" { "State" } th scope="col" { "Status" }
                    th scope="col" { "Deploy-id" } th scope="col" { "Age" } th scope="col" .num { "Jobs" } th scope="col" { "Last failure" }
                } }
                tbody {
                    @for e in &list.environments { (environment_row(e)) }
                }
            }
        }
    }
}

fn status_text(status: Option<&str>, terminating: bool) -> String {
    let s = status.unwrap_or("-").to_string();
    if terminating { format!("{s} (namespace terminating)") } else { s }
}

/// The colour of an environment's status, from its typed state (never the status text): a held
/// failed start, a transition in flight, else where it rests.
fn status_class(transition: Option<&Transition>, state: &str) -> &'static str {
    match transition {
        Some(t) if t.failed.is_some() => "bad",
        Some(_) => "busy",
        None => state_class(state),
    }
}

fn environment_row(e: &EnvRow) -> Markup {
    let progress = e.transition.as_ref().and_then(|t| t.progress.as_ref());
    html! {
        tr data-env=(e.namespace) {
            td.name { a href=(env_href(&e.namespace)) { (e.namespace) }
                @if e.environment != e.namespace { span.muted.small { " " (e.environment) } } }
            td.project { (e.project.as_deref().unwrap_or("-")) }
            td.state { span class={ "pill " (state_class(&e.state)) } { (e.state) } }
            td class={ "status " (status_class(e.transition.as_ref(), &e.state)) } {
                (status_text(e.status.as_deref(), e.terminating))
                @if let Some(p) = progress { span.progress { " · " (p) } }
            }
            td.deploy-id { @match &e.deploy_id { Some(d) => code.small { (d) }, None => span.muted { "-" } } }
            td.age { (ago(parse_ts(e.created.as_deref()))) }
            td.jobs.num { (e.templates.map_or_else(|| "?".to_string(), |n| n.to_string())) }
            td.failure {
                @match &e.last_failure {
                    Some(f) => a.bad href=(run_href(&e.namespace, &f.job, &f.run)) title=(f.run) {
                        (f.job) " " (f.slot) @if let Some(r) = &f.reason { ": " (r) } " · " (ago(parse_ts(Some(&f.time))))
                    },
                    None => span.muted { "-" },
                }
            }
        }
    }
}

fn state_class(state: &str) -> &'static str {
    match state {
        "started" => "good",
        "stopped" => "quiet",
        "deleted" => "bad",
        _ => "busy",
    }
}

// --- an environment ---

pub(crate) fn environment(page: &Page, token: &str, flash: Option<&Flash>, view: &EnvironmentView) -> Markup {
    let r = &view.status;
    let ns = &r.namespace;
    let crumbs = [Crumb { label: "Environments".into(), href: Some("/".into()) }, Crumb { label: ns.clone(), href: None }];
    let act = |action: &str| format!("{}/actions/{action}", env_href(ns));
    let button = |label: &str, title: &str| html! { button type="submit" title=(title) { (label) } };
    html! {
        (layout(ns, &crumbs, page, flash, html! {
            div.heading {
                h1 { (ns) @if r.environment != *ns { span.muted { " · " (r.environment) } } }
                div.actions role="group" aria-label="Actions" {
                    (action_form(&act("start"), token, "start", button("Start", "Run the start jobs, then scale the workloads back up")))
                    (action_form(&act("stop"), token, "stop", button("Stop", "Run the stop jobs, then scale Deployments and StatefulSets to zero")))
                    (action_form(&act("redeploy"), token, "redeploy", button("Redeploy", "Run the start jobs again (new deploy-id)")))
                    details.danger {
                        summary { "Delete…" }
                        (action_form(&act("delete"), token, "delete", html! {
                            label { "Type " code { (ns) } " to delete this environment (its delete jobs run, then the namespace goes)"
                                input type="text" name="confirm" autocomplete="off" spellcheck="false" required; }
                            button.bad type="submit" { "Delete environment" }
                        }))
                    }
                }
            }
            (live(page, environment_live(view)))
        }))
    }
}

pub(crate) fn environment_live(view: &EnvironmentView) -> Markup {
    let r = &view.status;
    let progress = r.transition.as_ref().and_then(|t| t.progress.as_ref());
    let failed = r.transition.as_ref().and_then(|t| t.failed.as_ref());
    html! {
        section.panel.summary aria-label="State" {
            dl.facts {
                div { dt { "Wanted state" } dd #env-state class={ "pill " (state_class(&r.state)) } { (r.state) } }
                div { dt { "Status" } dd #env-status class=(status_class(r.transition.as_ref(), &r.state)) {
                    (status_text(r.status.as_deref(), r.terminating))
                    @if let Some(p) = progress { span.progress { " · " (p) } }
                } }
                div { dt { "Project" } dd { (r.project.as_deref().unwrap_or("-")) } }
                div { dt { "Deploy-id" } dd { @match &r.deploy_id { Some(d) => code { (d) }, None => "-" } } }
                div { dt { "Age" } dd { (ago(parse_ts(r.created.as_deref()))) } }
            }
            @if let Some(f) = failed {
                p.error { "The start failed at stage " (f.stage) ": " (f.jobs.join(", "))
                    @if let Some(reason) = &f.reason { " (" (reason) ")" }
                    ". Its later stages do not run and gated pods stay gated until the next start or redeploy." }
            }
            div.gated aria-labelledby="gated-h" {
                h3 #gated-h { "Gated pods" }
                @match &view.gated {
                    None => p.muted { "You may not list the pods of this namespace." },
                    Some(g) if g.is_empty() => p.muted { "None: no pod waits for the start jobs." },
                    Some(g) => ul #gated {
                        @for p in g { li { code { (p.name) } @if let Some(o) = &p.owner { span.muted { " of " (o) } } " · waiting since " (ago(p.created)) } }
                    },
                }
            }
            @for p in &r.problems { p.warn { (p) } }
            @for n in &view.notes { p.note.small { (n) } }
        }
        (stages(r.namespace.as_str(), &r.templates, &r.runs))
        section.panel aria-labelledby="outputs-h" {
            h2 #outputs-h { "Outputs" }
            (outputs_table(&view.outputs.variables, "No job has published outputs yet."))
        }
        section.panel aria-labelledby="inputs-h" {
            h2 #inputs-h { "Variables every pod gets" }
            @match &view.inputs {
                None => p.muted { "Not readable." },
                Some(i) => (inputs_table(&i.variables)),
            }
        }
        section.panel aria-labelledby="events-h" {
            h2 #events-h { "Events" }
            @match &view.events {
                None => p.muted { "You may not list the Events of this namespace." },
                Some(ev) if ev.is_empty() => p.muted { "No Events (Kubernetes keeps them for an hour)." },
                Some(ev) => ol #events .timeline {
                    @for e in ev {
                        li class=(if e.warning { "warning" } else { "normal" }) {
                            span.when { (ago(e.time)) }
                            strong.reason { (e.reason) }
                            span.object { (e.object) }
                            @if e.count > 1 { span.muted { " ×" (e.count) } }
                            p.note { (e.note) }
                        }
                    }
                },
            }
        }
    }
}

/// The lifecycle jobs by stage, one column per stage, with the last run of each event.
fn stages(ns: &str, templates: &[TemplateRow], runs: &[RunRow]) -> Markup {
    let mut numbers: Vec<i32> = templates.iter().map(|t| t.stage).collect();
    numbers.sort();
    numbers.dedup();
    html! {
        section #stages .panel aria-labelledby="stages-h" {
            h2 #stages-h { "Lifecycle jobs by stage" }
            @if templates.is_empty() {
                p.muted { "This environment has no lifecycle job (a Job with the annotation " code { (names::ANNOTATION_ON) } ")." }
            }
            div.stage-row {
                @for n in &numbers {
                    div.stage data-stage=(n) {
                        h3 { "Stage " (n) }
                        @for t in templates.iter().filter(|t| t.stage == *n) { (template_card(ns, t, runs)) }
                    }
                }
            }
        }
    }
}

fn template_card(ns: &str, t: &TemplateRow, runs: &[RunRow]) -> Markup {
    html! {
        div.job data-job=(t.name) {
            a.job-link href=(job_href(ns, &t.name)) { (t.name) }
            div.muted.small { "JOBID " code { (t.job_id) } " · on " (if t.on.is_empty() { "-".to_string() } else { t.on.join(", ") }) }
            @if let Some(e) = &t.on_error { p.warn.small { (e) } }
            ul.runs {
                @for ev in &t.on {
                    li { span.event { (ev) } (last_run_badge(ns, &t.name, ev, t.last_runs.get(ev), runs)) }
                }
                @if let Some(f) = t.last_runs.get("force") {
                    li { span.event { "forced " (f.event.as_deref().unwrap_or("?")) } (last_run_badge(ns, &t.name, "force", Some(f), runs)) }
                }
            }
            @if let Some(f) = &t.force_run { p.small.busy { "force-run " (f) " requested" } }
        }
    }
}

fn last_run_badge(ns: &str, job: &str, event: &str, last: Option<&LastRun>, runs: &[RunRow]) -> Markup {
    let Some(last) = last else {
        return html! { span.run data-event=(event) data-result="never" { "never" } };
    };
    let result = last.result.as_deref().unwrap_or("?");
    let row = last.run.as_deref().and_then(|name| runs.iter().find(|r| r.name == name));
    let duration = row.and_then(|r| took(parse_ts(r.started.as_deref()), parse_ts(r.finished.as_deref())));
    let body = html! {
        (result)
        @if let Some(d) = duration { " in " (d) }
        @if let Some(reason) = last.reason.as_deref().filter(|r| !r.is_empty()) { ": " (reason) }
    };
    html! {
        span.run data-event=(event) data-result=(result) title=[last.message.as_deref()] {
            @match &last.run {
                Some(run) => a href=(run_href(ns, job, run)) { (body) },
                None => (body),
            }
        }
    }
}

fn value_cell(value: &str, masked: bool) -> Markup {
    html! {
        @if masked { td.value.masked title="sensitive: never shown here" { (value) } }
        @else { td.value { code { (value) } } }
    }
}

fn outputs_table(vars: &[OutputVariable], empty: &str) -> Markup {
    html! {
        @if vars.is_empty() { p.muted { (empty) } }
        @else {
            table #outputs {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } th scope="col" { "Job" } } }
                tbody {
                    @for v in vars {
                        tr data-var=(v.name) class=[v.origin.alias_of.as_ref().map(|_| "alias")] {
                            th scope="row" { code { (v.name) } }
                            (value_cell(&v.value, v.masked))
                            td.small.muted { (v.origin.job_id.as_deref().unwrap_or("-")) @if v.origin.alias_of.is_some() { " (alias)" } }
                        }
                    }
                }
            }
        }
    }
}

fn inputs_table(vars: &[InjectedVariable]) -> Markup {
    html! {
        @if vars.is_empty() { p.muted { "None." } }
        @else {
            table #inputs {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } th scope="col" { "Scope" } th scope="col" { "Source" } } }
                tbody {
                    @for v in vars {
                        tr data-var=(v.name) {
                            th scope="row" { code { (v.name) } }
                            (value_cell(&v.value, v.masked))
                            td.scope { (v.origin.scope) }
                            td.source.small { (v.origin.object) @if let Some(f) = &v.origin.from { span.muted { " from " (f) } }
                                @if !v.origin.overrides.is_empty() { span.muted { " (overrides " (v.origin.overrides.join(", ")) ")" } } }
                        }
                    }
                }
            }
            p.muted.small { "Later sources win: builtin < project < environment < output; a workload's own env wins over all." }
        }
    }
}

// --- a lifecycle job ---

/// The command an event runs: the event's own command and args annotations, else the container's.
fn event_command(template: &Job, event: Event) -> String {
    let ann = |k: &str| template.metadata.annotations.as_ref().and_then(|a| a.get(k)).cloned();
    let spec = template.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let wanted = ann(names::ANNOTATION_CONTAINER);
    let container = spec.and_then(|s| match &wanted {
        Some(w) => s.containers.iter().find(|c| &c.name == w),
        None => s.containers.first(),
    });
    let list = |annotation: Option<String>, own: Option<&Vec<String>>| -> Vec<String> {
        match annotation {
            Some(a) => serde_json::from_str::<Vec<String>>(&a).unwrap_or_else(|_| vec![a]),
            None => own.cloned().unwrap_or_default(),
        }
    };
    let mut words = list(ann(&names::annotation_on_command(event)), container.and_then(|c| c.command.as_ref()));
    words.extend(list(ann(&names::annotation_on_args(event)), container.and_then(|c| c.args.as_ref())));
    if words.is_empty() { "(the image's entrypoint)".into() } else { words.join(" ") }
}

fn resources(template: &Job) -> String {
    let spec = template.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let Some(c) = spec.and_then(|s| s.containers.first()) else { return "-".into() };
    let Some(r) = &c.resources else { return "none set".into() };
    let part =
        |name: &str, m: &Option<std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.as_ref().map(|m| format!("{name} {}", m.iter().map(|(k, v)| format!("{k} {}", v.0)).collect::<Vec<_>>().join(", ")))
        };
    [part("requests", &r.requests), part("limits", &r.limits)].into_iter().flatten().collect::<Vec<_>>().join("; ")
}

pub(crate) fn job(page: &Page, token: &str, flash: Option<&Flash>, view: &JobView) -> Markup {
    let ns = &view.ns;
    let name = jobs::name(&view.template);
    let crumbs = [
        Crumb { label: "Environments".into(), href: Some("/".into()) },
        Crumb { label: ns.clone(), href: Some(env_href(ns)) },
        Crumb { label: name.to_string(), href: None },
    ];
    let events = jobs::template_events(&view.template).unwrap_or_default();
    let pinned = matches!(page, Page::Job { run: Some(_), .. });
    let run_action = format!("{}/run", job_href(ns, name));
    html! {
        (layout(name, &crumbs, page, flash, html! {
            div.heading {
                h1 { (name) span.muted { " · lifecycle job in " a href=(env_href(ns)) { (ns) } } }
                div.actions role="group" aria-label="Force a run" {
                    @for e in &events {
                        (force_form(&run_action, token, *e))
                    }
                }
            }
            section #log .panel data-ns=(ns) data-run=[view.log_run.as_deref()] data-follow=(if pinned { "pinned" } else { "latest" })
                data-src=[view.log_run.as_deref().map(|r| logs_href(ns, r))] data-state="idle" aria-labelledby="log-h" {
                h2 #log-h { "Log" @if let Some(r) = &view.log_run { span.muted { " of " code #log-run { (r) } } } }
                @if view.log_run.is_none() { p.muted #log-empty { "No run yet: force one above." } }
                div.logs {}
                noscript { p.muted { "The log follows the run with JavaScript on; " code { "kubectl lifecycle logs " (name) " -n " (ns) " -f" } " does the same." } }
            }
            (live(page, job_live(view)))
        }))
    }
}

pub(crate) fn job_live(view: &JobView) -> Markup {
    let t = &view.template;
    let ns = &view.ns;
    let name = jobs::name(t);
    let spec = t.spec.as_ref();
    let events = jobs::template_events(t);
    let latest = view.runs.first().map(|r| jobs::name(r).to_string());
    html! {
        section.panel data-latest-run=[latest] aria-labelledby="runs-h" {
            h2 #runs-h { "Runs" }
            @if view.runs.is_empty() { p.muted { "No run yet (runs are deleted with their Job)." } }
            @else {
                table #runs {
                    thead { tr { th scope="col" { "Run" } th scope="col" { "Event" } th scope="col" { "Result" } th scope="col" { "Started" } th scope="col" { "Duration" } } }
                    tbody {
                        @for r in &view.runs {
                            @let st = jobs::state(r);
                            @let rn = jobs::name(r);
                            tr data-run=(rn) class=[(view.log_run.as_deref() == Some(rn)).then_some("current")] {
                                td { a href=(run_href(ns, name, rn)) { code { (rn) } } }
                                td.event { (jobs::run_event(r).map_or("?".to_string(), |e| e.to_string())) }
                                td.result data-result=(st.phase.result()) {
                                    (st.phase.result()) @if let Some(reason) = &st.reason { ": " (reason) }
                                }
                                td { (ago(st.started.or(jobs::created(r)))) }
                                td.duration { (took(st.started, st.finished).unwrap_or_else(|| "-".into())) }
                            }
                        }
                    }
                }
            }
        }
        div.columns {
            section.panel aria-labelledby="settings-h" {
                h2 #settings-h { "Settings" }
                dl #settings .facts {
                    div { dt { "JOBID" } dd { code { (jobs::job_id(t)) } } }
                    div { dt { "Stage" } dd { (jobs::stage(t)) } }
                    @match &events {
                        Ok(evs) => @for e in evs { div { dt { "On " (e) } dd { pre.cmd { (event_command(t, *e)) } } } },
                        Err(e) => div { dt { "On" } dd.warn { (e) } },
                    }
                    div { dt { "Restarts" } dd { (spec.and_then(|s| s.backoff_limit).map_or("6 (default)".to_string(), |b| b.to_string())) } }
                    div { dt { "Max duration" } dd { (spec.and_then(|s| s.active_deadline_seconds).map_or("none".to_string(), |s| human_duration(Duration::from_secs(s.max(0) as u64)))) } }
                    div { dt { "Resources" } dd.small { (resources(t)) } }
                    div { dt { "Output capture" } dd { (if jobs::captures(t) { "on" } else { "off" }) } }
                }
            }
            section.panel aria-labelledby="outputs-h" {
                h2 #outputs-h { "Outputs it published" }
                (outputs_table(&view.outputs.variables, "None yet."))
            }
        }
    }
}

/// The live region when it cannot be read (the namespace is gone, a right was taken away).
pub(crate) fn live_error(message: &str) -> Markup {
    html! {
        section.panel {
            pre.message.error { (message) }
            p { a href="/" { "All environments" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::EnvList;

    #[test]
    fn names_are_escaped_and_encoded() {
        assert_eq!(env_href("a b/<c>"), "/env/a%20b%2F%3Cc%3E");
        assert_eq!(job_href("ns", "seed"), "/env/ns/jobs/seed");
        let page = Page::Environments(Filters { project: Some("x&y".into()), state: None });
        assert_eq!(page.href(), "/?project=x%26y");
        assert_eq!(page.live_href(), "/live?page=%2F%3Fproject%3Dx%2526y");
    }

    #[test]
    fn an_empty_list_says_how_to_make_an_environment() {
        let html = environments_live(&EnvList { environments: vec![] }, &Filters::default()).into_string();
        assert!(html.contains("kubectl lifecycle env create NAMESPACE"), "{html}");
    }

    #[test]
    fn a_row_has_the_cells_tests_and_people_read() {
        let row = EnvRow {
            namespace: "p<1>".into(),
            environment: "p<1>".into(),
            project: Some("shop".into()),
            state: "started".into(),
            status: Some("started".into()),
            templates: Some(2),
            deploy_id: None,
            created: None,
            terminating: false,
            transition: None,
            last_failure: None,
        };
        let html = environment_row(&row).into_string();
        assert!(html.starts_with(r#"<tr data-env="p&lt;1&gt;">"#), "{html}");
        assert!(html.contains(r#"<td class="status good">started</td>"#), "{html}");
        assert!(html.contains(r#"<td class="state"><span class="pill good">started</span></td>"#), "{html}");
    }

    #[test]
    fn forms_carry_the_token_and_say_what_they_do() {
        let f = force_form("/env/p/jobs/db/run", "tok", Event::Stop).into_string();
        assert!(f.starts_with(r#"<form class="force" method="post" action="/env/p/jobs/db/run" data-event="stop">"#), "{f}");
        assert!(f.contains(r#"<input type="hidden" name="csrf" value="tok">"#), "{f}");
        let a = action_form("/env/p/actions/stop", "tok", "stop", html! {}).into_string();
        assert!(a.starts_with(r#"<form class="action" method="post" action="/env/p/actions/stop" data-action="stop">"#), "{a}");
    }

    #[test]
    fn statuses_get_a_colour_by_their_typed_state() {
        let mut t = Transition::new(3, Event::Start);
        assert_eq!(status_class(None, "started"), "good");
        assert_eq!(status_class(None, "stopped"), "quiet");
        assert_eq!(status_class(Some(&t), "started"), "busy");
        t.failed = Some(lifecycle_contract::transition::StartFailure { stage: 1, jobs: vec!["db".into()], reason: None });
        assert_eq!(status_class(Some(&t), "started"), "bad");
    }
}
