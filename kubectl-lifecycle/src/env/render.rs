//! What `env list` and `env status` print for people (JSON and YAML print the
//! reports as they are).

use std::time::Duration;

use lifecycle_contract::last_runs::Slot;
use lifecycle_contract::transition::Phase as TransitionPhase;
use lifecycle_contract::{Event, names};

use super::decide::{EnvList, EnvStatus, OutputCounts, PlainJobRow, RunRow, TemplateRow};
use crate::jobs::LastRun;
use crate::table::{Table, age, human_duration};

pub fn or_none(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "<none>".to_string(),
    }
}

pub fn render_list(list: &EnvList, wide: bool, now: jiff::Timestamp) -> String {
    let mut headers = vec!["NAME", "ENVIRONMENT", "PROJECT", "STATE", "STATUS", "TEMPLATES", "AGE"];
    if wide {
        headers.push("DEPLOY-ID");
    }
    let mut t = Table::new(&headers);
    for e in &list.environments {
        let status = if e.terminating {
            format!("{} (namespace terminating)", or_none(e.status.as_deref()))
        } else {
            or_none(e.status.as_deref())
        };
        let mut row = vec![
            e.namespace.clone(),
            e.environment.clone(),
            or_none(e.project.as_deref()),
            e.state.clone(),
            status,
            e.templates.map_or_else(|| "?".to_string(), |n| n.to_string()),
            age(e.created.as_deref().and_then(|c| c.parse().ok()), now),
        ];
        if wide {
            row.push(or_none(e.deploy_id.as_deref()));
        }
        t.row(row);
    }
    t.render()
}

fn last_run_cell(on: &[String], event: Event, last: Option<&LastRun>, wide: bool, now: jiff::Timestamp) -> String {
    let Some(last) = last else {
        return if on.iter().any(|e| e == event.as_str()) { "never".into() } else { "-".into() };
    };
    run_cell(last, wide, now)
}

/// A recorded run: its result, with its reason and name when wide, and its age.
fn run_cell(last: &LastRun, wide: bool, now: jiff::Timestamp) -> String {
    let mut cell = last.result.clone().unwrap_or_else(|| "?".into());
    if wide {
        if let Some(reason) = last.reason.as_deref().filter(|r| !r.is_empty()) {
            cell.push_str(&format!(": {reason}"));
        }
        if let Some(run) = &last.run {
            cell.push_str(&format!(" {run}"));
        }
    }
    if let Some(t) = last.time() {
        cell.push_str(&format!(" ({} ago)", age(Some(t), now)));
    }
    cell
}

/// The last forced run (wide only): its event, then as [`run_cell`].
fn forced_cell(last: Option<&LastRun>, now: jiff::Timestamp) -> String {
    match last {
        None => "-".into(),
        Some(last) => format!("{} {}", last.event.as_deref().unwrap_or("?"), run_cell(last, true, now)),
    }
}

fn parse_ts(s: &Option<String>) -> Option<jiff::Timestamp> {
    s.as_deref().and_then(|s| s.parse().ok())
}

pub fn render_status(s: &EnvStatus, wide: bool, now: jiff::Timestamp) -> String {
    let mut out = status_fields(s, now);
    out.push_str("\nLifecycle jobs:\n");
    out.push_str(&templates_section(&s.templates, wide, now));
    out.push_str("\nRuns:\n");
    out.push_str(&runs_section(&s.runs, wide, now));
    if !s.jobs.is_empty() {
        out.push_str("\nOther jobs (captured at once, no lifecycle):\n");
        out.push_str(&plain_jobs_section(&s.jobs, now));
    }
    out.push_str(&outputs_section(&s.outputs, &s.namespace));
    out
}

/// The environment's fields: name, project, state, status, the stage of a
/// transition's runs and a held failed start, deploy-id, age.
fn status_fields(s: &EnvStatus, now: jiff::Timestamp) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: &str| out.push_str(&format!("{:<13}{v}\n", format!("{k}:")));
    let env = if s.environment == s.namespace {
        s.environment.clone()
    } else {
        format!("{} (namespace {})", s.environment, s.namespace)
    };
    field("Environment", &env);
    field("Project", &or_none(s.project.as_deref()));
    field("State", &s.state);
    let status = or_none(s.status.as_deref());
    field("Status", &if s.terminating { format!("{status} (namespace terminating)") } else { status });
    if let Some(t) = s.transition.as_ref().filter(|t| t.phase == TransitionPhase::Runs) {
        if let Some(p) = t.progress.as_ref().filter(|p| p.stages > 1) {
            let stage = names::ANNOTATION_STAGE;
            let (index, stages, at, done, total, event) = (p.index, p.stages, p.stage, p.done, p.total, t.event);
            field("Stage", &format!("{index} of {stages} ({stage}={at}), {done}/{total} {event} jobs done"));
        }
        if let Some(f) = &t.failed {
            let reason = f.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            field(
                "Failed",
                &format!(
                    "{} failed{reason} at stage {}: later stages do not run, gated pods wait; fix it, then `kubectl lifecycle env redeploy {}`",
                    f.jobs.join(", "),
                    f.stage,
                    s.namespace
                ),
            );
        }
    }
    for problem in &s.problems {
        field("Warning", problem);
    }
    field("Deploy ID", &or_none(s.deploy_id.as_deref()));
    field("Age", &age(parse_ts(&s.created), now));
    out
}

/// The lifecycle jobs: one row each (the last run of each event; the pending
/// and the last forced run when wide), then what could not be read of them.
fn templates_section(templates: &[TemplateRow], wide: bool, now: jiff::Timestamp) -> String {
    if templates.is_empty() {
        return "  none: a Job with the annotation lifecycle-jobs.dev/on (start, stop, delete) is one\n".into();
    }
    let staged = templates.iter().any(|t| t.stage != 0);
    let mut headers = vec!["NAME", "JOBID", "ON"];
    if staged {
        headers.push("STAGE");
    }
    headers.extend(["START", "STOP", "DELETE", "VARIABLES"]);
    if wide {
        headers.extend(["FORCE-RUN", "FORCED"]);
    }
    let mut t = Table::new(&headers);
    for tpl in templates {
        let on = match &tpl.on_error {
            Some(_) => "<invalid>".to_string(),
            None => tpl.on.join(","),
        };
        let mut row = vec![tpl.name.clone(), tpl.job_id.clone(), on];
        if staged {
            row.push(tpl.stage.to_string());
        }
        for event in Event::ALL {
            row.push(last_run_cell(&tpl.on, event, tpl.last_runs.get(event.as_str()), wide, now));
        }
        row.push(tpl.variables.map_or_else(|| "?".into(), |n| n.to_string()));
        if wide {
            row.push(or_none(tpl.force_run.as_deref()));
            row.push(forced_cell(tpl.last_runs.get(&Slot::Force.to_string()), now));
        }
        t.row(row);
    }
    let mut out = t.render();
    for tpl in templates {
        for warning in tpl.on_error.iter().chain(&tpl.last_runs_problems) {
            out.push_str(&format!("  warning: {warning}\n"));
        }
    }
    out
}

fn runs_section(runs: &[RunRow], wide: bool, now: jiff::Timestamp) -> String {
    if runs.is_empty() {
        return "  none\n".into();
    }
    let mut headers = vec!["NAME", "JOB", "EVENT", "STATUS", "DURATION", "AGE"];
    if wide {
        headers.push("REASON");
    }
    let mut t = Table::new(&headers);
    for r in runs {
        let duration = match (parse_ts(&r.started), parse_ts(&r.finished)) {
            (Some(a), Some(b)) => human_duration(Duration::from_secs((b.as_second() - a.as_second()).max(0) as u64)),
            (Some(a), None) => human_duration(Duration::from_secs((now.as_second() - a.as_second()).max(0) as u64)),
            _ => "-".into(),
        };
        let mut row = vec![
            r.name.clone(),
            r.job.clone(),
            r.event.clone().unwrap_or_else(|| "?".into()),
            r.phase.as_str().to_string(),
            duration,
            age(parse_ts(&r.created), now),
        ];
        if wide {
            row.push(or_none(r.reason.as_deref()));
        }
        t.row(row);
    }
    t.render()
}

fn plain_jobs_section(jobs: &[PlainJobRow], now: jiff::Timestamp) -> String {
    let mut t = Table::new(&["NAME", "JOBID", "STATUS", "VARIABLES", "AGE"]);
    for j in jobs {
        let vars = if j.capture { j.variables.map_or_else(|| "?".into(), |n| n.to_string()) } else { "capture off".into() };
        t.row([j.name.clone(), j.job_id.clone(), j.phase.as_str().into(), vars, age(parse_ts(&j.created), now)]);
    }
    t.render()
}

fn outputs_section(o: &OutputCounts, namespace: &str) -> String {
    let mut out = String::from("\nOutputs: ");
    match o.sensitive {
        Some(0) if o.non_sensitive == 0 => out.push_str("none yet (no job has published outputs)\n"),
        Some(sensitive) => out.push_str(&format!(
            "{} variable{} from {} job{} ({} in ConfigMap {obj}, {} sensitive in Secret {obj}), each with its <KEY> alias\n",
            o.non_sensitive + sensitive,
            plural(o.non_sensitive + sensitive),
            o.jobs,
            plural(o.jobs),
            o.non_sensitive,
            sensitive,
            obj = names::OUTPUTS_OBJECT
        )),
        None => out.push_str(&format!(
            "{} non-sensitive variable{} in ConfigMap {obj}; sensitive ones unknown (you may not read Secret {obj})\n",
            o.non_sensitive,
            plural(o.non_sensitive),
            obj = names::OUTPUTS_OBJECT
        )),
    }
    out.push_str(&format!("  see them with `kubectl lifecycle outputs {namespace}`\n"));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
