//! What `env list` and `env status` print for people (JSON and YAML print the
//! reports as they are).

use std::time::Duration;

use lifecycle_contract::transition::Phase as TransitionPhase;
use lifecycle_contract::{Event, names};

use super::decide::{EnvList, EnvStatus};
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

fn parse_ts(s: &Option<String>) -> Option<jiff::Timestamp> {
    s.as_deref().and_then(|s| s.parse().ok())
}

pub fn render_status(s: &EnvStatus, wide: bool, now: jiff::Timestamp) -> String {
    let mut out = String::new();
    let field = |out: &mut String, k: &str, v: &str| out.push_str(&format!("{:<13}{v}\n", format!("{k}:")));
    let env = if s.environment == s.namespace {
        s.environment.clone()
    } else {
        format!("{} (namespace {})", s.environment, s.namespace)
    };
    field(&mut out, "Environment", &env);
    field(&mut out, "Project", &or_none(s.project.as_deref()));
    field(&mut out, "State", &s.state);
    let status = or_none(s.status.as_deref());
    field(&mut out, "Status", &if s.terminating { format!("{status} (namespace terminating)") } else { status });
    if let Some(t) = s.transition.as_ref().filter(|t| t.phase == TransitionPhase::Runs) {
        if let Some(p) = t.progress.as_ref().filter(|p| p.stages > 1) {
            field(
                &mut out,
                "Stage",
                &format!(
                    "{} of {} ({}={}), {}/{} {} jobs done",
                    p.index,
                    p.stages,
                    names::ANNOTATION_STAGE,
                    p.stage,
                    p.done,
                    p.total,
                    t.event
                ),
            );
        }
        if let Some(f) = &t.failed {
            let reason = f.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            field(
                &mut out,
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
    field(&mut out, "Deploy ID", &or_none(s.deploy_id.as_deref()));
    field(&mut out, "Age", &age(parse_ts(&s.created), now));

    out.push_str("\nLifecycle jobs:\n");
    if s.templates.is_empty() {
        out.push_str("  none: a Job with the annotation lifecycle-jobs.dev/on (start, stop, delete) is one\n");
    } else {
        let staged = s.templates.iter().any(|t| t.stage != 0);
        let mut headers = vec!["NAME", "JOBID", "ON"];
        if staged {
            headers.push("STAGE");
        }
        headers.extend(["START", "STOP", "DELETE", "VARIABLES"]);
        if wide {
            headers.push("FORCE-RUN");
        }
        let mut t = Table::new(&headers);
        for tpl in &s.templates {
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
            }
            t.row(row);
        }
        out.push_str(&t.render());
        for tpl in &s.templates {
            if let Some(e) = &tpl.on_error {
                out.push_str(&format!("  warning: {e}\n"));
            }
        }
    }

    out.push_str("\nRuns:\n");
    if s.runs.is_empty() {
        out.push_str("  none\n");
    } else {
        let mut headers = vec!["NAME", "JOB", "EVENT", "STATUS", "DURATION", "AGE"];
        if wide {
            headers.push("REASON");
        }
        let mut t = Table::new(&headers);
        for r in &s.runs {
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
        out.push_str(&t.render());
    }

    if !s.jobs.is_empty() {
        out.push_str("\nOther jobs (captured at once, no lifecycle):\n");
        let mut t = Table::new(&["NAME", "JOBID", "STATUS", "VARIABLES", "AGE"]);
        for j in &s.jobs {
            let vars = if j.capture { j.variables.map_or_else(|| "?".into(), |n| n.to_string()) } else { "capture off".into() };
            t.row([j.name.clone(), j.job_id.clone(), j.phase.as_str().into(), vars, age(parse_ts(&j.created), now)]);
        }
        out.push_str(&t.render());
    }

    let o = &s.outputs;
    out.push_str("\nOutputs: ");
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
    out.push_str(&format!("  see them with `kubectl lifecycle outputs {}`\n", s.namespace));
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
