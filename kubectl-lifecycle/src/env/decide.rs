//! The decisions of `env`, pure: what an environment is (name, wanted state),
//! the reports `env list` and `env status` show, and what an action does.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use lifecycle_contract::environment::WantedState;
use lifecycle_contract::transition::{Transition, parse_stage};
use lifecycle_contract::{Event, JobId, names};
use serde::Serialize;

use crate::jobs::{self, LastRun, Phase};
use crate::wait::Target;

pub fn ns_label<'a>(ns: &'a Namespace, key: &str) -> Option<&'a str> {
    ns.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

pub fn ns_annotation<'a>(ns: &'a Namespace, key: &str) -> Option<&'a str> {
    ns.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

pub fn ns_name(ns: &Namespace) -> &str {
    ns.metadata.name.as_deref().unwrap_or_default()
}

/// The environment's name: the label's value, else the namespace's name.
pub fn environment_name(ns: &Namespace) -> String {
    match ns_label(ns, names::LABEL_ENVIRONMENT) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => ns_name(ns).to_string(),
    }
}

/// The wanted state as the controller reads it (`started` when absent); an
/// invalid label is shown as written.
pub fn wanted_state(ns: &Namespace) -> String {
    let label = ns_label(ns, names::LABEL_STATE);
    WantedState::parse(label).map(|s| s.as_str().to_string()).unwrap_or_else(|_| label.unwrap_or_default().to_string())
}

// env list

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvRow {
    pub namespace: String,
    pub environment: String,
    pub project: Option<String>,
    pub state: String,
    pub status: Option<String>,
    /// Number of lifecycle jobs; `None` when the Jobs could not be listed.
    pub templates: Option<usize>,
    pub deploy_id: Option<String>,
    pub created: Option<String>,
    pub terminating: bool,
}

#[derive(Debug, Serialize)]
pub struct EnvList {
    pub environments: Vec<EnvRow>,
}

/// One row of `env list`; `templates`: its number of lifecycle jobs, if known.
pub fn env_row(ns: &Namespace, templates: Option<usize>) -> EnvRow {
    EnvRow {
        namespace: ns_name(ns).to_string(),
        environment: environment_name(ns),
        project: ns_label(ns, names::LABEL_PROJECT).filter(|p| !p.is_empty()).map(Into::into),
        state: wanted_state(ns),
        status: ns_annotation(ns, names::ANNOTATION_STATUS).map(Into::into),
        templates,
        deploy_id: ns_annotation(ns, names::ANNOTATION_DEPLOY_ID).map(Into::into),
        created: ns.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
        terminating: ns.metadata.deletion_timestamp.is_some(),
    }
}

// env status

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRow {
    pub name: String,
    pub job_id: String,
    pub on: Vec<String>,
    /// Set when the `on` annotation cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// Last run of each event, and the last forced run (slot `force`): from the
    /// controller's `last-runs`, else, for an event, from the run Jobs.
    pub last_runs: BTreeMap<String, LastRun>,
    /// What could not be read of the `last-runs` annotation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub last_runs_problems: Vec<String>,
    /// A force-run not yet taken by the controller.
    pub force_run: Option<String>,
    /// Annotation `stage` (0 when absent or unreadable).
    pub stage: i32,
    /// Number of variables (full names) this job published.
    pub variables: Option<usize>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    pub name: String,
    /// The template (lifecycle job) it ran from.
    pub job: String,
    pub event: Option<String>,
    pub phase: Phase,
    pub reason: Option<String>,
    pub created: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlainJobRow {
    pub name: String,
    pub job_id: String,
    pub capture: bool,
    pub phase: Phase,
    pub variables: Option<usize>,
    pub created: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputCounts {
    /// Full variables (`QOVERY_OUTPUT_JOB_<JOBID>_<KEY>`) in the ConfigMap.
    pub non_sensitive: usize,
    /// Full variables in the Secret; `None` when the Secret cannot be read.
    pub sensitive: Option<usize>,
    /// How many jobs have variables.
    pub jobs: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvStatus {
    pub namespace: String,
    pub environment: String,
    pub project: Option<String>,
    pub state: String,
    pub status: Option<String>,
    /// The controller's transition in flight (its stage progress, a held failed start).
    pub transition: Option<Transition>,
    pub deploy_id: Option<String>,
    pub created: Option<String>,
    pub terminating: bool,
    pub templates: Vec<TemplateRow>,
    pub runs: Vec<RunRow>,
    pub jobs: Vec<PlainJobRow>,
    pub outputs: OutputCounts,
}

/// Counts full variable names per JOBID (the longest JOBID a name starts with).
pub fn variables_per_job(keys: &[&str], ids: &[JobId]) -> BTreeMap<String, usize> {
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

pub fn build_status(ns: &Namespace, all: &[Job], cm_keys: &[String], secret_keys: Option<&[String]>) -> EnvStatus {
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
            let last_runs = jobs::last_run_per_event(job, all);
            templates.push(TemplateRow {
                name: jobs::name(job).to_string(),
                variables: count(&id),
                job_id: id.to_string(),
                on,
                on_error,
                last_runs: last_runs.shown.into_iter().map(|(slot, r)| (slot.to_string(), r)).collect(),
                last_runs_problems: last_runs.problems,
                force_run: jobs::annotation(job, names::ANNOTATION_FORCE_RUN).map(Into::into),
                stage: parse_stage(jobs::annotation(job, names::ANNOTATION_STAGE)).unwrap_or(0),
            });
        } else {
            let id = jobs::job_id(job);
            plain.push(PlainJobRow {
                name: jobs::name(job).to_string(),
                variables: count(&id),
                job_id: id.to_string(),
                capture: jobs::captures(job),
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

// env start|stop|delete|redeploy

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Delete,
    Redeploy,
}

impl Action {
    pub fn event(self) -> Event {
        match self {
            Action::Start | Action::Redeploy => Event::Start,
            Action::Stop => Event::Stop,
            Action::Delete => Event::Delete,
        }
    }

    pub fn target(self) -> Target {
        match self {
            Action::Start | Action::Redeploy => Target::Started,
            Action::Stop => Target::Stopped,
            Action::Delete => Target::Gone,
        }
    }

    /// The `state` label value this action sets (none for redeploy).
    pub fn state(self) -> Option<&'static str> {
        match self {
            Action::Start => Some(WantedState::Started.as_str()),
            Action::Stop => Some(WantedState::Stopped.as_str()),
            Action::Delete => Some(WantedState::Deleted.as_str()),
            Action::Redeploy => None,
        }
    }
}

/// What happens after the event's runs, for people.
pub fn then_what(action: Action, templates: &[&str]) -> String {
    let event = action.event();
    let jobs = if templates.is_empty() { format!("no {event} jobs") } else { format!("{event} jobs: {}", templates.join(", ")) };
    let then = match action {
        Action::Start | Action::Redeploy => "then the workloads a stop scaled down scale back up",
        Action::Stop => "then Deployments and StatefulSets scale to zero",
        Action::Delete => "then the namespace is deleted",
    };
    format!("{jobs}; {then}")
}
