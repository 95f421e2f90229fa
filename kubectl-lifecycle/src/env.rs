//! `env list|status|create|start|stop|redeploy|delete`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use lifecycle_contract::environment::WantedState;
use lifecycle_contract::transition::{Phase as TransitionPhase, Transition, parse_stage};
use lifecycle_contract::{Event, JobId, names};
use serde::Serialize;
use serde_json::json;

use crate::cli::{CreateArgs, ListArgs, OutputFormat, StatusArgs, TransitionArgs};
use crate::client::{Ctx, FIELD_MANAGER, KubeResultExt, explain, get_environment, is_environment, is_forbidden};
use crate::jobs::{self, LastRun, Phase};
use crate::table::{Table, age, human_duration};
use crate::wait::{self, Observed, Progress, Target, TransitionGoal, Watch};

fn ns_label<'a>(ns: &'a Namespace, key: &str) -> Option<&'a str> {
    ns.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn ns_annotation<'a>(ns: &'a Namespace, key: &str) -> Option<&'a str> {
    ns.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

fn ns_name(ns: &Namespace) -> &str {
    ns.metadata.name.as_deref().unwrap_or_default()
}

/// The environment's name: the label's value, else the namespace's name.
fn environment_name(ns: &Namespace) -> String {
    match ns_label(ns, names::LABEL_ENVIRONMENT) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => ns_name(ns).to_string(),
    }
}

/// The wanted state as the controller reads it (`started` when absent); an
/// invalid label is shown as written.
fn wanted_state(ns: &Namespace) -> String {
    let label = ns_label(ns, names::LABEL_STATE);
    WantedState::parse(label).map(|s| s.as_str().to_string()).unwrap_or_else(|_| label.unwrap_or_default().to_string())
}

fn or_none(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => "<none>".to_string(),
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

// ---------------------------------------------------------------------------------------------
// env list

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvRow {
    namespace: String,
    environment: String,
    project: Option<String>,
    state: String,
    status: Option<String>,
    /// Number of lifecycle jobs; `None` when the Jobs could not be listed.
    templates: Option<usize>,
    deploy_id: Option<String>,
    created: Option<String>,
    terminating: bool,
}

#[derive(Debug, Serialize)]
struct EnvList {
    environments: Vec<EnvRow>,
}

pub async fn list(ctx: &Ctx, args: &ListArgs) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut namespaces = api.list(&ListParams::default().labels(names::LABEL_ENVIRONMENT)).await.doing("list namespaces")?.items;
    namespaces.sort_by(|a, b| ns_name(a).cmp(ns_name(b)));
    let counts = template_counts(&ctx.client, &namespaces).await;
    let environments = namespaces
        .iter()
        .map(|ns| EnvRow {
            namespace: ns_name(ns).to_string(),
            environment: environment_name(ns),
            project: ns_label(ns, names::LABEL_PROJECT).filter(|p| !p.is_empty()).map(Into::into),
            state: wanted_state(ns),
            status: ns_annotation(ns, names::ANNOTATION_STATUS).map(Into::into),
            templates: counts.get(ns_name(ns)).copied().flatten(),
            deploy_id: ns_annotation(ns, names::ANNOTATION_DEPLOY_ID).map(Into::into),
            created: ns.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
            terminating: ns.metadata.deletion_timestamp.is_some(),
        })
        .collect();
    let list = EnvList { environments };
    match args.output {
        Some(OutputFormat::Json) => print!("{}", crate::output::json(&list)?),
        Some(OutputFormat::Yaml) => print!("{}", crate::output::yaml(&list)?),
        format => {
            if list.environments.is_empty() {
                eprintln!(
                    "No environments found.\n  hint: make a namespace an environment with `kubectl lifecycle env create NAMESPACE`"
                );
            } else {
                print!("{}", render_list(&list, format == Some(OutputFormat::Wide), now()));
            }
        }
    }
    Ok(())
}

fn render_list(list: &EnvList, wide: bool, now: jiff::Timestamp) -> String {
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

/// Lifecycle jobs per namespace: one cluster-wide list of Job metadata, else one per namespace.
async fn template_counts(client: &Client, namespaces: &[Namespace]) -> HashMap<String, Option<usize>> {
    let is_template = |m: &ObjectMeta| m.annotations.as_ref().is_some_and(|a| a.contains_key(names::ANNOTATION_ON));
    let mut counts: HashMap<String, Option<usize>> = HashMap::new();
    match Api::<Job>::all(client.clone()).list_metadata(&ListParams::default()).await {
        Ok(list) => {
            for ns in namespaces {
                counts.insert(ns_name(ns).to_string(), Some(0));
            }
            for m in list.items.iter().map(|j| &j.metadata).filter(|m| is_template(m)) {
                if let Some(Some(n)) = m.namespace.as_ref().and_then(|ns| counts.get_mut(ns)) {
                    *n += 1;
                }
            }
        }
        Err(_) => {
            for ns in namespaces {
                let name = ns_name(ns);
                let n = Api::<Job>::namespaced(client.clone(), name)
                    .list_metadata(&ListParams::default())
                    .await
                    .ok()
                    .map(|l| l.items.iter().filter(|j| is_template(&j.metadata)).count());
                counts.insert(name.to_string(), n);
            }
        }
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// env status

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TemplateRow {
    name: String,
    job_id: String,
    on: Vec<String>,
    /// Set when the `on` annotation cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    on_error: Option<String>,
    /// Last run of each event (from the controller's `last-runs`, else from the run Jobs).
    last_runs: BTreeMap<String, LastRun>,
    /// A force-run not yet taken by the controller.
    force_run: Option<String>,
    /// Annotation `stage` (0 when absent or unreadable).
    stage: i32,
    /// Number of variables (full names) this job published.
    variables: Option<usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RunRow {
    name: String,
    /// The template (lifecycle job) it ran from.
    job: String,
    event: Option<String>,
    phase: Phase,
    reason: Option<String>,
    created: Option<String>,
    started: Option<String>,
    finished: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlainJobRow {
    name: String,
    job_id: String,
    capture: bool,
    phase: Phase,
    variables: Option<usize>,
    created: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OutputCounts {
    /// Full variables (`QOVERY_OUTPUT_JOB_<JOBID>_<KEY>`) in the ConfigMap.
    non_sensitive: usize,
    /// Full variables in the Secret; `None` when the Secret cannot be read.
    sensitive: Option<usize>,
    /// How many jobs have variables.
    jobs: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvStatus {
    namespace: String,
    environment: String,
    project: Option<String>,
    state: String,
    status: Option<String>,
    /// The controller's transition in flight (its stage progress, a held failed start).
    transition: Option<Transition>,
    deploy_id: Option<String>,
    created: Option<String>,
    terminating: bool,
    templates: Vec<TemplateRow>,
    runs: Vec<RunRow>,
    jobs: Vec<PlainJobRow>,
    outputs: OutputCounts,
}

pub async fn status(ctx: &Ctx, args: &StatusArgs) -> anyhow::Result<()> {
    let name = args.env.clone().unwrap_or_else(|| ctx.namespace.clone());
    let ns = get_environment(&ctx.client, &name).await?;
    let mut all = Api::<Job>::namespaced(ctx.client.clone(), &name)
        .list(&ListParams::default())
        .await
        .doing(format_args!("list jobs in namespace {name}"))?
        .items;
    all.sort_by(|a, b| jobs::name(a).cmp(jobs::name(b)));

    let cm_keys: Vec<String> = Api::<ConfigMap>::namespaced(ctx.client.clone(), &name)
        .get_opt(names::OUTPUTS_OBJECT)
        .await
        .doing(format_args!("get configmap {} in namespace {name}", names::OUTPUTS_OBJECT))?
        .and_then(|c| c.data)
        .map(|d| d.into_keys().collect())
        .unwrap_or_default();
    let secret_keys: Option<Vec<String>> =
        match Api::<Secret>::namespaced(ctx.client.clone(), &name).get_opt(names::OUTPUTS_OBJECT).await {
            Ok(s) => Some(s.and_then(|s| s.data).map(|d| d.into_keys().collect()).unwrap_or_default()),
            Err(e) if is_forbidden(&e) => None,
            Err(e) => return Err(explain(e, format_args!("get secret {} in namespace {name}", names::OUTPUTS_OBJECT))),
        };

    let report = build_status(&ns, &all, &cm_keys, secret_keys.as_deref());
    match args.output {
        Some(OutputFormat::Json) => print!("{}", crate::output::json(&report)?),
        Some(OutputFormat::Yaml) => print!("{}", crate::output::yaml(&report)?),
        format => print!("{}", render_status(&report, format == Some(OutputFormat::Wide), now())),
    }
    Ok(())
}

/// Counts full variable names per JOBID (the longest JOBID a name starts with).
fn variables_per_job(keys: &[&str], ids: &[JobId]) -> BTreeMap<String, usize> {
    let map: BTreeMap<String, String> = keys.iter().map(|k| (k.to_string(), String::new())).collect();
    let mut out = BTreeMap::new();
    for v in crate::outputs::classify(&map, &BTreeMap::new(), ids) {
        if v.origin.alias_of.is_none()
            && let Some(id) = v.origin.job_id
        {
            *out.entry(id).or_default() += 1;
        }
    }
    out
}

fn build_status(ns: &Namespace, all: &[Job], cm_keys: &[String], secret_keys: Option<&[String]>) -> EnvStatus {
    let ts = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string());
    let ids: Vec<JobId> = all.iter().filter(|j| jobs::run_of(j).is_none()).map(jobs::job_id).collect();
    let cm_full: Vec<&str> = cm_keys.iter().map(String::as_str).filter(|k| k.starts_with(names::VARIABLE_PREFIX)).collect();
    let secret_full: Option<Vec<&str>> =
        secret_keys.map(|keys| keys.iter().map(String::as_str).filter(|k| k.starts_with(names::VARIABLE_PREFIX)).collect());
    let mut keys = cm_full.clone();
    keys.extend(secret_full.iter().flatten());
    let per_job = variables_per_job(&keys, &ids);
    let count = |id: &JobId| Some(per_job.get(id.as_str()).copied().unwrap_or(0));

    let mut templates = Vec::new();
    let mut runs = Vec::new();
    let mut plain = Vec::new();
    for job in all {
        if jobs::run_of(job).is_some() {
            let st = jobs::state(job);
            runs.push(RunRow {
                name: jobs::name(job).to_string(),
                job: jobs::run_of(job).unwrap_or_default().to_string(),
                event: jobs::run_event(job).map(|e| e.to_string()),
                phase: st.phase,
                reason: st.reason,
                created: ts(jobs::created(job)),
                started: ts(st.started),
                finished: ts(st.finished),
            });
        } else if jobs::is_template(job) {
            let (on, on_error) = match jobs::template_events(job) {
                Ok(on) => (on.iter().map(ToString::to_string).collect(), None),
                Err(e) => (Vec::new(), Some(e)),
            };
            let id = jobs::job_id(job);
            templates.push(TemplateRow {
                name: jobs::name(job).to_string(),
                variables: count(&id),
                job_id: id.to_string(),
                on,
                on_error,
                last_runs: jobs::last_run_per_event(job, all).into_iter().map(|(e, r)| (e.to_string(), r)).collect(),
                force_run: jobs::annotation(job, names::ANNOTATION_FORCE_RUN).map(Into::into),
                stage: parse_stage(jobs::annotation(job, names::ANNOTATION_STAGE)).unwrap_or(0),
            });
        } else {
            let id = jobs::job_id(job);
            plain.push(PlainJobRow {
                name: jobs::name(job).to_string(),
                variables: count(&id),
                job_id: id.to_string(),
                capture: jobs::annotation(job, names::ANNOTATION_CAPTURE_OUTPUT) != Some("false"),
                phase: jobs::state(job).phase,
                created: ts(jobs::created(job)),
            });
        }
    }
    runs.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)));

    EnvStatus {
        namespace: ns_name(ns).to_string(),
        environment: environment_name(ns),
        project: ns_label(ns, names::LABEL_PROJECT).filter(|p| !p.is_empty()).map(Into::into),
        state: wanted_state(ns),
        status: ns_annotation(ns, names::ANNOTATION_STATUS).map(Into::into),
        transition: ns_annotation(ns, names::ANNOTATION_TRANSITION).and_then(|t| serde_json::from_str(t).ok()),
        deploy_id: ns_annotation(ns, names::ANNOTATION_DEPLOY_ID).map(Into::into),
        created: ts(ns.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        terminating: ns.metadata.deletion_timestamp.is_some(),
        templates,
        runs,
        jobs: plain,
        outputs: OutputCounts {
            non_sensitive: cm_full.len(),
            sensitive: secret_full.as_ref().map(Vec::len),
            jobs: per_job.len(),
        },
    }
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

fn render_status(s: &EnvStatus, wide: bool, now: jiff::Timestamp) -> String {
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

// ---------------------------------------------------------------------------------------------
// env create

pub async fn create(ctx: &Ctx, args: &CreateArgs) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let name = &args.env;
    let env_value = args.environment.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    if let Some(p) = &args.project {
        labels.insert(names::LABEL_PROJECT.to_string(), p.clone());
    }
    match api.get_opt(name).await.doing(format_args!("get namespace {name}"))? {
        None => {
            labels.insert(names::LABEL_ENVIRONMENT.to_string(), env_value);
            let ns = Namespace {
                metadata: ObjectMeta { name: Some(name.clone()), labels: Some(labels), ..Default::default() },
                ..Default::default()
            };
            api.create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &ns)
                .await
                .doing(format_args!("create namespace {name}"))?;
            println!("namespace {name} created as an environment");
        }
        Some(ns) => {
            if ns.metadata.deletion_timestamp.is_some() {
                bail!("namespace {name} is being deleted: wait until it is gone, then create it again");
            }
            let already = is_environment(&ns);
            if !already || args.environment.is_some() {
                labels.insert(names::LABEL_ENVIRONMENT.to_string(), env_value);
            }
            if labels.is_empty() {
                println!("namespace {name} is already an environment (nothing to change)");
                return Ok(());
            }
            patch_namespace(&ctx.client, name, json!({ "metadata": { "labels": labels } })).await?;
            if already {
                println!("environment {name} updated");
            } else {
                println!("namespace {name} is now an environment");
                eprintln!(
                    "note: jobs and workloads created from now on are captured and get the variables; pods already running get them once restarted"
                );
            }
        }
    }
    println!("  see it with `kubectl lifecycle env status {name}`");
    Ok(())
}

async fn patch_namespace(client: &Client, name: &str, patch: serde_json::Value) -> anyhow::Result<Namespace> {
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &Patch::Merge(&patch))
        .await
        .doing(format_args!("update namespace {name}"))
}

// ---------------------------------------------------------------------------------------------
// env start|stop|delete|redeploy

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Delete,
    Redeploy,
}

impl Action {
    fn event(self) -> Event {
        match self {
            Action::Start | Action::Redeploy => Event::Start,
            Action::Stop => Event::Stop,
            Action::Delete => Event::Delete,
        }
    }

    fn target(self) -> Target {
        match self {
            Action::Start | Action::Redeploy => Target::Started,
            Action::Stop => Target::Stopped,
            Action::Delete => Target::Gone,
        }
    }

    /// The `state` label value this action sets (none for redeploy).
    fn state(self) -> Option<&'static str> {
        match self {
            Action::Start => Some(WantedState::Started.as_str()),
            Action::Stop => Some(WantedState::Stopped.as_str()),
            Action::Delete => Some(WantedState::Deleted.as_str()),
            Action::Redeploy => None,
        }
    }
}

/// What happens after the event's runs, for people.
fn then_what(action: Action, templates: &[&str]) -> String {
    let event = action.event();
    let jobs = if templates.is_empty() { format!("no {event} jobs") } else { format!("{event} jobs: {}", templates.join(", ")) };
    let then = match action {
        Action::Start | Action::Redeploy => "then the workloads a stop scaled down scale back up",
        Action::Stop => "then Deployments and StatefulSets scale to zero",
        Action::Delete => "then the namespace is deleted",
    };
    format!("{jobs}; {then}")
}

pub async fn transition(ctx: &Ctx, action: Action, name: &str, args: &TransitionArgs) -> anyhow::Result<()> {
    let name = &name.to_string();
    let ns = get_environment(&ctx.client, name).await?;
    let current = wanted_state(&ns);
    let baseline_status = ns_annotation(&ns, names::ANNOTATION_STATUS).map(String::from);
    let (taken, in_flight) = wait::read_state(&ns);
    if ns.metadata.deletion_timestamp.is_some() && action != Action::Delete {
        bail!(
            "environment {name} is being deleted (namespace terminating): nothing else can happen to it\n  hint: wait for it to go with `kubectl lifecycle env delete {name} --wait`"
        );
    }

    if current == "deleted" && action != Action::Delete {
        bail!(
            "environment {name} is being deleted (state deleted): its delete jobs run, then the namespace goes\n  hint: wait for it with `kubectl lifecycle env delete {name} --wait`"
        );
    }
    let all = Api::<Job>::namespaced(ctx.client.clone(), name)
        .list(&ListParams::default())
        .await
        .doing(format_args!("list jobs in namespace {name}"))?
        .items;
    let event = action.event();
    let templates: Vec<&str> = all
        .iter()
        .filter(|j| jobs::run_of(j).is_none() && jobs::template_events(j).is_ok_and(|on| on.contains(&event)))
        .map(jobs::name)
        .collect();
    let before: HashSet<String> =
        all.iter().filter(|j| jobs::run_of(j).is_some()).filter_map(|j| j.metadata.uid.clone()).collect();

    let mut expected_runs = templates.len();
    let mut deploy_id = None;
    match action.state() {
        Some(state) if current == state => {
            let settled = action.target().state().is_some_and(|state| wait::settled(taken.as_ref(), in_flight.as_ref(), state));
            println!(
                "environment {name} is already {} (status: {})",
                if action == Action::Delete { "being deleted" } else { state },
                or_none(baseline_status.as_deref())
            );
            if action == Action::Start {
                eprintln!("  hint: to run the start jobs again, redeploy: `kubectl lifecycle env redeploy {name}`");
            }
            if settled || !args.wait.wait {
                return Ok(());
            }
            // The transition is under way: wait for its end, with no new run expected.
            expected_runs = 0;
        }
        Some(state) => {
            patch_namespace(&ctx.client, name, json!({ "metadata": { "labels": { names::LABEL_STATE: state } } })).await?;
            println!("environment {name}: state {state} (was {current})");
            println!("  {}", then_what(action, &templates));
        }
        None => {
            if current != WantedState::Started.as_str() {
                return Err(anyhow!(
                    "environment {name} is {current}: only a started environment is redeployed\n  hint: start it with `kubectl lifecycle env start {name}` (its start jobs run)"
                ));
            }
            let id = jiff::Timestamp::now().to_string();
            deploy_id = Some(id.clone());
            let deploy_id = id;
            patch_namespace(
                &ctx.client,
                name,
                json!({ "metadata": { "annotations": { names::ANNOTATION_DEPLOY_ID: deploy_id } } }),
            )
            .await?;
            println!("environment {name}: redeploy requested ({} {deploy_id})", names::ANNOTATION_DEPLOY_ID);
            println!("  {}", then_what(action, &templates));
        }
    }

    if !args.wait.wait {
        println!("  follow it with `kubectl lifecycle env status {name}` (or add --wait)");
        return Ok(());
    }
    let goal = TransitionGoal {
        namespace: name.clone(),
        target: action.target(),
        event,
        baseline_seq: taken.as_ref().map_or(0, |t| t.seq),
        deploy_id,
        expected_runs,
    };
    let watch = Watch {
        client: ctx.client.clone(),
        namespace: name.clone(),
        watch_namespace: true,
        run_selector: names::LABEL_JOB.to_string(),
        before,
        event: Some(event),
        baseline_status,
        deadline: Instant::now() + args.wait.timeout,
        timeout: args.wait.timeout,
        what: match action.target() {
            Target::Gone => format!("environment {name} to be deleted"),
            t => format!("environment {name} to be {}", t.word()),
        },
        hint: format!(
            "the controller goes on: follow it with `kubectl lifecycle env status {name}`, or wait longer with --timeout; is the lifecycle-webhook controller running (`kubectl get pods -n {}`)?",
            names::SYSTEM_NAMESPACE
        ),
    };
    let mut progress = Progress::new();
    let mut obs = Observed::default();
    let done = wait::wait(&watch, &mut obs, &mut progress, |o| wait::transition_verdict(&goal, o)).await?;
    println!("{done} after {}", human_duration(obs.elapsed));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::{job, run, ts, with_condition};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn namespace(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
        let map = |kv: &[(&str, &str)]| Some(kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: map(labels),
                annotations: map(annotations),
                creation_timestamp: Some(Time(ts("2025-01-01T00:00:00Z"))),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn environment_fields_have_defaults() {
        let ns = namespace("preview", &[(names::LABEL_ENVIRONMENT, "")], &[]);
        assert_eq!(environment_name(&ns), "preview");
        assert_eq!(wanted_state(&ns), "started");
        let ns = namespace("preview", &[(names::LABEL_ENVIRONMENT, "pr-1"), (names::LABEL_STATE, "stopped")], &[]);
        assert_eq!(environment_name(&ns), "pr-1");
        assert_eq!(wanted_state(&ns), "stopped");
    }

    #[test]
    fn lists_environments() {
        let list = EnvList {
            environments: vec![EnvRow {
                namespace: "preview".into(),
                environment: "preview".into(),
                project: Some("shop".into()),
                state: "started".into(),
                status: Some("started".into()),
                templates: Some(2),
                deploy_id: None,
                created: Some("2025-01-01T00:00:00Z".into()),
                terminating: false,
            }],
        };
        let text = render_list(&list, false, ts("2025-01-01T01:00:00Z"));
        assert_eq!(
            text,
            "NAME      ENVIRONMENT   PROJECT   STATE     STATUS    TEMPLATES   AGE\npreview   preview       shop      started   started   2           60m\n"
        );
        assert!(render_list(&list, true, ts("2025-01-01T01:00:00Z")).lines().next().unwrap().ends_with("DEPLOY-ID"));
    }

    #[test]
    fn status_sorts_jobs_into_templates_runs_and_plain_jobs() {
        let ns = namespace(
            "preview",
            &[(names::LABEL_ENVIRONMENT, ""), (names::LABEL_STATE, "started")],
            &[(names::ANNOTATION_STATUS, "started")],
        );
        let mut done = with_condition(
            run("seed-start-1", "seed", "start", "2025-01-01T00:00:00Z"),
            "Complete",
            None,
            "2025-01-01T00:00:30Z",
        );
        done.status.as_mut().unwrap().start_time = Some(Time(ts("2025-01-01T00:00:00Z")));
        let all = vec![job("seed", &[], &[(names::ANNOTATION_ON, "start,stop")]), done, job("migrate", &[], &[])];
        let cm = vec!["QOVERY_OUTPUT_JOB_SEED_HOST".to_string(), "HOST".to_string()];
        let secret = vec!["QOVERY_OUTPUT_JOB_SEED_PASS".to_string(), "PASS".to_string()];
        let s = build_status(&ns, &all, &cm, Some(&secret));
        assert_eq!(s.templates.len(), 1);
        assert_eq!(s.templates[0].variables, Some(2));
        assert_eq!(s.runs.len(), 1);
        assert_eq!(s.jobs.len(), 1);
        assert_eq!(s.jobs[0].variables, Some(0));
        assert_eq!(s.outputs.non_sensitive, 1);
        assert_eq!(s.outputs.sensitive, Some(1));
        let text = render_status(&s, false, ts("2025-01-01T00:10:00Z"));
        assert!(text.starts_with("Environment: preview\nProject:     <none>\nState:       started\n"), "{text}");
        assert!(text.contains("seed   SEED    start,stop   succeeded (9m30s ago)   never   -        2\n"), "{text}");
        assert!(text.contains("migrate   MIGRATE   Pending   0           10m\n"), "{text}");
        assert!(text.contains("seed-start-1   seed   start   Succeeded   30s        10m\n"), "{text}");
        assert!(
            text.contains(
                "Outputs: 2 variables from 1 job (1 in ConfigMap lifecycle-outputs, 1 sensitive in Secret lifecycle-outputs)"
            ),
            "{text}"
        );
        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(json["templates"][0]["lastRuns"]["start"]["run"], "seed-start-1");
        assert_eq!(json["templates"][0]["on"], json!(["start", "stop"]));
        assert_eq!(json["templates"][0]["lastRuns"]["start"]["result"], "succeeded");
        assert_eq!(json["runs"][0]["phase"], "Succeeded");

        let hidden = build_status(&ns, &all, &cm, None);
        assert!(render_status(&hidden, false, ts("2025-01-01T00:10:00Z")).contains("sensitive ones unknown"));
    }

    #[test]
    fn status_shows_stages_and_a_held_start() {
        let transition = r#"{"seq":2,"event":"start","phase":"runs","progress":{"stage":5,"index":2,"stages":3,"done":1,"total":2},"failed":{"stage":5,"jobs":["seed"],"reason":"BackoffLimitExceeded"}}"#;
        let ns = namespace(
            "preview",
            &[(names::LABEL_ENVIRONMENT, "")],
            &[(names::ANNOTATION_STATUS, "start failed"), (names::ANNOTATION_TRANSITION, transition)],
        );
        let all = vec![
            job("seed", &[], &[(names::ANNOTATION_ON, "start"), (names::ANNOTATION_STAGE, "5")]),
            job("db", &[], &[(names::ANNOTATION_ON, "start")]),
        ];
        let s = build_status(&ns, &all, &[], Some(&[]));
        let text = render_status(&s, false, ts("2025-01-01T00:10:00Z"));
        assert!(text.contains("Stage:       2 of 3 (lifecycle-jobs.dev/stage=5), 1/2 start jobs done\n"), "{text}");
        assert!(text.contains("Failed:      seed failed (BackoffLimitExceeded) at stage 5"), "{text}");
        assert!(text.contains("kubectl lifecycle env redeploy preview"), "{text}");
        assert!(text.contains("NAME   JOBID   ON      STAGE"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["transition"]["failed"]["jobs"], json!(["seed"]));
        assert_eq!(json["templates"][0]["stage"], 5, "{json}");
    }

    #[test]
    fn explains_what_follows() {
        assert_eq!(then_what(Action::Stop, &["a", "b"]), "stop jobs: a, b; then Deployments and StatefulSets scale to zero");
        assert_eq!(then_what(Action::Delete, &[]), "no delete jobs; then the namespace is deleted");
    }
}
