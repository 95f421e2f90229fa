//! The decisions of `env`, pure: what an environment is (name, wanted state),
//! the reports `env list` and `env status` show, and what an action does.

use std::collections::{BTreeMap, HashSet};

use anyhow::bail;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lifecycle_contract::environment::WantedState;
use lifecycle_contract::last_runs::{RunResult, Slot};
use lifecycle_contract::lifecycle_job::{self, JobKind};
use lifecycle_contract::transition::Transition;
use lifecycle_contract::{Event, JobId, names};
use serde::Serialize;

use crate::environment::{self, Environment, EnvironmentExt};
use crate::jobs::{self, LastRun, Phase};
use crate::wait::Target;

pub fn ns_name(ns: &Namespace) -> &str {
    ns.metadata.name.as_deref().unwrap_or_default()
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
    /// The controller's transition in flight (its stage progress, a held failed start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transition: Option<Transition>,
    /// The latest run that failed among the last runs of its lifecycle jobs (none when the
    /// last run of every event succeeded, or the Jobs could not be listed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<FailedRun>,
}

/// A lifecycle job's last run of a slot (an event, or forced) that failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedRun {
    pub job: String,
    /// `start`, `stop`, `delete`, or `force`.
    pub slot: String,
    pub run: String,
    pub reason: Option<String>,
    pub time: String,
}

/// What `env list` reads of an environment's lifecycle jobs (their metadata).
#[derive(Debug, Clone, Default)]
pub struct TemplatesRead {
    pub count: usize,
    pub last_failure: Option<FailedRun>,
}

impl TemplatesRead {
    /// Counts a lifecycle job and keeps its latest failed last run, if later than the one kept.
    pub fn add(&mut self, template: &ObjectMeta) {
        self.count += 1;
        let record = lifecycle_job::last_runs(template).record;
        for slot in Slot::ALL {
            let Some(r) = record.get(slot).filter(|r| r.result == RunResult::Failed) else { continue };
            if self.last_failure.as_ref().is_none_or(|f| f.time < r.time) {
                self.last_failure = Some(FailedRun {
                    job: template.name.clone().unwrap_or_default(),
                    slot: slot.to_string(),
                    run: r.run.clone(),
                    reason: r.reason.clone(),
                    time: r.time.clone(),
                });
            }
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EnvList {
    pub environments: Vec<EnvRow>,
}

/// One row of `env list`; `templates`: what was read of its lifecycle jobs, if they could be listed.
pub fn env_row(ns: &Namespace, templates: Option<TemplatesRead>) -> EnvRow {
    let env = environment::read(ns);
    let (templates, last_failure) = match templates {
        Some(t) => (Some(t.count), t.last_failure),
        None => (None, None),
    };
    EnvRow {
        transition: env.transition.clone(),
        last_failure,
        state: env.wanted_text(),
        deploy_id: env.deploy_id().map(Into::into),
        namespace: env.namespace,
        environment: env.name,
        project: env.project,
        status: env.status,
        templates,
        created: ns.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()),
        terminating: env.deleting,
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
    /// What could not be read of the environment (an invalid `state`, unreadable annotations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
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

fn ts(t: Option<jiff::Timestamp>) -> Option<String> {
    t.map(|t| t.to_string())
}

pub fn build_status(ns: &Namespace, all: &[Job], cm_keys: &[String], secret_keys: Option<&[String]>) -> EnvStatus {
    let ids = jobs::held_job_ids(all);
    let cm_full: Vec<&str> = cm_keys.iter().map(String::as_str).filter(|k| k.starts_with(names::VARIABLE_PREFIX)).collect();
    let secret_full: Option<Vec<&str>> =
        secret_keys.map(|keys| keys.iter().map(String::as_str).filter(|k| k.starts_with(names::VARIABLE_PREFIX)).collect());
    let mut keys = cm_full.clone();
    keys.extend(secret_full.iter().flatten());
    let per_job = variables_per_job(&keys, &ids);
    let count = |id: &JobId| Some(per_job.get(id.as_str()).copied().unwrap_or(0));

    let (mut templates, mut runs, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for job in all {
        match jobs::kind(job) {
            JobKind::Run(_) => runs.push(run_row(job)),
            JobKind::Template { .. } => templates.push(template_row(job, all, &count)),
            _ => plain.push(plain_row(job, &count)),
        }
    }
    runs.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)));

    let env = environment::read(ns);
    EnvStatus {
        state: env.wanted_text(),
        deploy_id: env.deploy_id().map(Into::into),
        problems: env.read_problems(),
        namespace: env.namespace,
        environment: env.name,
        project: env.project,
        status: env.status,
        transition: env.transition,
        created: ts(ns.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        terminating: env.deleting,
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

fn run_row(job: &Job) -> RunRow {
    let st = jobs::state(job);
    RunRow {
        name: jobs::name(job).to_string(),
        job: jobs::run_of(job).unwrap_or_default().to_string(),
        event: jobs::run_event(job).map(|e| e.to_string()),
        phase: st.phase,
        reason: st.reason,
        created: ts(jobs::created(job)),
        started: ts(st.started),
        finished: ts(st.finished),
    }
}

/// A lifecycle job's row; `count`: how many variables a JOBID published.
fn template_row(job: &Job, all: &[Job], count: &dyn Fn(&JobId) -> Option<usize>) -> TemplateRow {
    let (on, on_error) = match jobs::template_events(job) {
        Ok(on) => (on.iter().map(ToString::to_string).collect(), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let id = jobs::job_id(job);
    let last_runs = jobs::last_run_per_event(job, all);
    TemplateRow {
        name: jobs::name(job).to_string(),
        variables: count(&id),
        job_id: id.to_string(),
        on,
        on_error,
        last_runs: last_runs.shown.into_iter().map(|(slot, r)| (slot.to_string(), r)).collect(),
        last_runs_problems: last_runs.problems,
        force_run: jobs::force_run(job).map(|f| f.value.to_string()),
        stage: jobs::stage(job),
    }
}

fn plain_row(job: &Job, count: &dyn Fn(&JobId) -> Option<usize>) -> PlainJobRow {
    let id = jobs::job_id(job);
    PlainJobRow {
        name: jobs::name(job).to_string(),
        variables: count(&id),
        job_id: id.to_string(),
        capture: jobs::captures(job),
        phase: jobs::state(job).phase,
        created: ts(jobs::created(job)),
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

    /// The wanted state this action sets (none for redeploy).
    pub fn state(self) -> Option<WantedState> {
        match self {
            Action::Start => Some(WantedState::Started),
            Action::Stop => Some(WantedState::Stopped),
            Action::Delete => Some(WantedState::Deleted),
            Action::Redeploy => None,
        }
    }
}

/// Whether `action` may happen to the environment now; the error says why not and what to do.
pub(crate) fn check_transition(action: Action, env: &Environment) -> anyhow::Result<()> {
    let name = &env.namespace;
    if env.deleting && action != Action::Delete {
        bail!(
            "environment {name} is being deleted (namespace terminating): nothing else can happen to it\n  hint: wait for it to go with `kubectl lifecycle env delete {name} --wait`"
        );
    }
    if env.wanted_state() == Some(WantedState::Deleted) && action != Action::Delete {
        bail!(
            "environment {name} is being deleted (state deleted): its delete jobs run, then the namespace goes\n  hint: wait for it with `kubectl lifecycle env delete {name} --wait`"
        );
    }
    if action == Action::Redeploy && env.wanted_state() != Some(WantedState::Started) {
        let is = match &env.wanted {
            Ok(w) => format!(" is {}", w.state.as_str()),
            Err(invalid) => format!(": {invalid}"),
        };
        bail!(
            "environment {name}{is}: only a started environment is redeployed\n  hint: start it with `kubectl lifecycle env start {name}` (its start jobs run)"
        );
    }
    Ok(())
}

/// The change an action writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// The environment already wants that state: nothing to write; `settled`: it rests there too.
    Already { state: WantedState, settled: bool },
    /// Set the `state` label; `was`: the wanted state before, for people.
    SetState { state: WantedState, was: String },
    /// Set a new `deploy-id` (redeploy).
    Redeploy,
}

/// What an action does to an environment, decided from it and its Jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransitionPlan<'a> {
    pub(crate) step: Step,
    /// The lifecycle jobs that run on the action's event.
    pub(crate) templates: Vec<&'a str>,
    /// The runs that exist before the request (UIDs): a wait does not count them.
    pub(crate) before: HashSet<String>,
    /// The environment's last event occurrence before the request (`observed.seq`).
    pub(crate) baseline_seq: u64,
}

impl TransitionPlan<'_> {
    /// How many new runs a wait expects: none when the transition was already under way.
    pub(crate) fn expected_runs(&self) -> usize {
        match self.step {
            Step::Already { .. } => 0,
            _ => self.templates.len(),
        }
    }
}

/// The plan of an action that [`check_transition`] allowed.
pub(crate) fn plan_transition<'a>(action: Action, env: &Environment, all: &'a [Job]) -> TransitionPlan<'a> {
    let event = action.event();
    let templates = all
        .iter()
        .filter(|j| jobs::run_of(j).is_none() && jobs::template_events(j).is_ok_and(|on| on.contains(&event)))
        .map(jobs::name)
        .collect();
    let before = all.iter().filter(|j| jobs::run_of(j).is_some()).filter_map(|j| j.metadata.uid.clone()).collect();
    let step = match action.state() {
        Some(state) if env.wanted_state() == Some(state) => {
            Step::Already { state, settled: action.target().state().is_some_and(|s| env.settled(s)) }
        }
        Some(state) => Step::SetState { state, was: env.wanted_text() },
        None => Step::Redeploy,
    };
    TransitionPlan { step, templates, before, baseline_seq: env.observed.as_ref().map_or(0, |o| o.seq) }
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
