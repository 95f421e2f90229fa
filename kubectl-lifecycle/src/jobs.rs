//! What a Job is to lifecycle-jobs (template, run, plain Job) and how its runs went, as the
//! plugin shows it: pure functions over the contract's readers (`lifecycle_job` for the kind,
//! JOBID, capture, `stage`, `force-run` and the `last-runs` record; `run::outcome` for how a Job
//! ended). What the plugin adds is for people: a Job's [`Phase`], the last run of each event
//! ([`last_run_per_event`]), an unreadable `last-runs` shown as far as it reads.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use lifecycle_contract::last_runs::{LastRuns, RunRecord, Slot};
use lifecycle_contract::lifecycle_job::{self, ForceRun, JobKind};
use lifecycle_contract::names::ANNOTATION_LAST_RUNS;
use lifecycle_contract::{Event, JobId, names, run};
use serde::Serialize;

fn annotation<'a>(job: &'a Job, key: &str) -> Option<&'a str> {
    job.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

pub fn name(job: &Job) -> &str {
    job.metadata.name.as_deref().unwrap_or_default()
}

pub fn created(job: &Job) -> Option<jiff::Timestamp> {
    job.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// What a Job is to lifecycle-jobs (template, run, CronJob's, plain), as the contract reads it.
pub(crate) fn kind(job: &Job) -> JobKind<'_> {
    lifecycle_job::kind(&job.metadata)
}

/// A lifecycle job (template).
pub fn is_template(job: &Job) -> bool {
    matches!(kind(job), JobKind::Template { .. })
}

/// The template a run was created from (the Job that controls it).
pub fn run_of(job: &Job) -> Option<&str> {
    match kind(job) {
        JobKind::Run(run) => Some(run.template.name),
        _ => None,
    }
}

/// The event of a run (its `event` label).
pub fn run_event(job: &Job) -> Option<Event> {
    match kind(job) {
        JobKind::Run(run) => run.event,
        _ => None,
    }
}

/// The events of a template's `on` (none for another Job), or the error text for a malformed one.
pub fn template_events(job: &Job) -> Result<Vec<Event>, String> {
    match kind(job) {
        JobKind::Template { events } => {
            events.map_err(|e| format!("annotation {} of job {}: {e}", names::ANNOTATION_ON, name(job)))
        }
        _ => Ok(Vec::new()),
    }
}

/// Whether a Job's outputs are captured: not when it opts out (the contract's rule).
pub(crate) fn captures(job: &Job) -> bool {
    lifecycle_job::captures(&job.metadata)
}

/// The JOBID of a Job, as the contract reads it: the one admission recorded
/// (a run's is its template's), else the one its name gives.
pub fn job_id(job: &Job) -> JobId {
    lifecycle_job::job_id(&job.metadata).into_id()
}

/// The JOBID a Job holds in its environment, as the contract reads its claim:
/// none for a run, a stray run or a Job opted out of capture.
pub(crate) fn held_job_id(job: &Job) -> Option<JobId> {
    lifecycle_job::claim(&job.metadata).map(|c| c.job_id.into_id())
}

/// The JOBIDs Jobs hold in their environment: whose a published variable is.
pub(crate) fn held_job_ids(jobs: &[Job]) -> Vec<JobId> {
    jobs.iter().filter_map(held_job_id).collect()
}

/// A template's `force-run` request not yet taken by the controller.
pub(crate) fn force_run(job: &Job) -> Option<ForceRun<'_>> {
    lifecycle_job::force_run(&job.metadata)
}

/// A template's `stage` (0 when absent or not an integer).
pub(crate) fn stage(job: &Job) -> i32 {
    lifecycle_job::stage(&job.metadata).unwrap_or(0)
}

/// How a Job is going.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Suspended,
}

impl Phase {
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Suspended => "Suspended",
        }
    }

    /// The run result this phase is, in the controller's `last-runs` vocabulary (`pending`,
    /// `running`, `succeeded`, `failed`): a suspended run has not started, so it is `pending`.
    pub fn result(self) -> &'static str {
        match self {
            Phase::Pending | Phase::Suspended => "pending",
            Phase::Running => "running",
            Phase::Succeeded => "succeeded",
            Phase::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    pub phase: Phase,
    /// The reason of the terminal condition (e.g. `BackoffLimitExceeded`, `DeadlineExceeded`).
    pub reason: Option<String>,
    pub message: Option<String>,
    pub started: Option<jiff::Timestamp>,
    pub finished: Option<jiff::Timestamp>,
}

/// The state of a Job from its status. How a Job ended is the contract's one
/// rule ([`lifecycle_contract::run::outcome`]): only `Complete` and `Failed`
/// end it, and a `Complete` Job whose outputs the server could not publish has
/// failed (the controller counts the run failed too). A Job that is ending
/// (`SuccessCriteriaMet` / `FailureTarget`) is still `Running`.
pub fn state(job: &Job) -> JobState {
    let status = job.status.as_ref();
    let started = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    if let Some(o) = run::outcome(job) {
        let changed = o.condition.as_ref().and_then(|c| c.last_transition_time.as_ref());
        return if o.succeeded {
            let finished = status.and_then(|s| s.completion_time.as_ref()).or(changed).map(|t| t.0);
            JobState { phase: Phase::Succeeded, reason: None, message: None, started, finished }
        } else {
            let finished = changed.map(|t| t.0);
            JobState { phase: Phase::Failed, reason: o.reason, message: o.message, started, finished }
        };
    }
    if run::ending(job) {
        return JobState { phase: Phase::Running, reason: None, message: None, started, finished: None };
    }
    let active = status.and_then(|s| s.active).unwrap_or(0);
    let suspended = job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
    let phase = if active > 0 {
        Phase::Running
    } else if suspended {
        Phase::Suspended
    } else {
        Phase::Pending
    };
    JobState { phase, reason: None, message: None, started, finished: None }
}

/// One run as `env status` shows it: a record of the template's `last-runs`
/// annotation, or a run Job when the annotation has none for that event.
/// `result` is always one of the controller's lowercase words (`pending`,
/// `running`, `succeeded`, `failed`), except for an entry that does not follow
/// the contract, shown as far as it reads (lowercased).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    /// The event of a forced run (slot `force`); the other slots are named after theirs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl LastRun {
    pub fn time(&self) -> Option<jiff::Timestamp> {
        self.time.as_deref()?.parse().ok()
    }
}

impl From<&RunRecord> for LastRun {
    fn from(r: &RunRecord) -> LastRun {
        LastRun {
            event: r.event.map(|e| e.to_string()),
            run: Some(r.run.clone()),
            result: Some(r.result.as_str().to_string()),
            reason: r.reason.clone(),
            message: r.message.clone(),
            time: Some(r.time.clone()),
        }
    }
}

/// What the plugin read of a template's `last-runs` annotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LastRunsRead {
    /// The record as the controller reads it (the contract's [`LastRuns`]): an
    /// annotation that does not follow the contract counts as none. What a
    /// wait decides on.
    pub(crate) record: LastRuns,
    /// What can be shown of each slot: the records of [`Self::record`], else,
    /// for an annotation the controller cannot read, each entry as far as it reads.
    pub(crate) shown: BTreeMap<Slot, LastRun>,
    /// What could not be read, for people (the controller reads none of an unreadable annotation).
    pub(crate) problems: Vec<String>,
}

impl LastRunsRead {
    /// How many slots are shown.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shown.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    /// The last run of an environment event, if shown.
    pub(crate) fn event(&self, event: Event) -> Option<&LastRun> {
        self.shown.get(&Slot::Env(event))
    }
}

/// The last run of an environment event (panics when none is shown, as a map does).
impl std::ops::Index<&Event> for LastRunsRead {
    type Output = LastRun;

    fn index(&self, event: &Event) -> &LastRun {
        self.event(*event).unwrap_or_else(|| panic!("no last run of {event} is shown"))
    }
}

/// Reads the `last-runs` annotation through the contract's reader
/// ([`lifecycle_job::last_runs`], the controller's). The plugin is a display
/// tool: an annotation the controller cannot read (it counts as no record) is
/// still shown entry by entry as far as it reads, and what could not be read
/// is said in [`LastRunsRead::problems`].
pub(crate) fn last_runs(job: &Job) -> LastRunsRead {
    let read = lifecycle_job::last_runs(&job.metadata);
    let Some(problem) = read.problem else {
        let shown = Slot::ALL.into_iter().filter_map(|s| Some((s, LastRun::from(read.record.get(s)?)))).collect();
        return LastRunsRead { record: read.record, shown, problems: Vec::new() };
    };
    let text = annotation(job, ANNOTATION_LAST_RUNS).unwrap_or_default();
    let mut shown = BTreeMap::new();
    let mut unreadable = Vec::new();
    // Keys that name no slot are left out, as the controller leaves them.
    if let Ok(entries) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
        for slot in Slot::ALL {
            let Some(entry) = entries.get(&slot.to_string()) else { continue };
            match serde_json::from_value::<RunRecord>(entry.clone()) {
                Ok(r) => {
                    shown.insert(slot, LastRun::from(&r));
                }
                Err(e) => {
                    unreadable.push(format!("entry {slot}: {e}"));
                    shown.extend(partial_record(entry).map(|r| (slot, r)));
                }
            }
        }
    }
    let entries = if unreadable.is_empty() { String::new() } else { format!(" [{}]", unreadable.join("; ")) };
    let problems = vec![format!("job {}: {problem}{entries}", name(job))];
    LastRunsRead { record: read.record, shown, problems }
}

/// An entry that does not follow the contract, as far as it reads: its text fields
/// (numbers and booleans written out), the result lowercased.
fn partial_record(entry: &serde_json::Value) -> Option<LastRun> {
    let serde_json::Value::Object(entry) = entry else { return None };
    let field = |k: &str| match entry.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    };
    Some(LastRun {
        event: field("event"),
        run: field("run"),
        result: field("result").map(|r| r.to_ascii_lowercase()),
        reason: field("reason"),
        message: field("message"),
        time: field("time"),
    })
}

/// The last run of `template` (for `event` if given) among `jobs`: by creation time, then name.
pub fn latest_run<'a>(jobs: &'a [Job], template: &str, event: Option<Event>) -> Option<&'a Job> {
    jobs.iter()
        .filter(|j| run_of(j) == Some(template))
        .filter(|j| event.is_none() || run_event(j) == event)
        .max_by(|a, b| created(a).cmp(&created(b)).then_with(|| name(a).cmp(name(b))))
}

/// The last runs of a template: what its `last-runs` annotation shows, and, for
/// an environment event it shows nothing of, the last run Job of that event
/// that still exists (a forced run as the controller recorded it).
pub(crate) fn last_run_per_event(template: &Job, jobs: &[Job]) -> LastRunsRead {
    let mut read = last_runs(template);
    for event in Event::ALL {
        if read.shown.contains_key(&Slot::Env(event)) {
            continue;
        }
        if let Some(run) = latest_run(jobs, name(template), Some(event)) {
            // A forced run's result is the controller's record of it, once it has one.
            if let Some(forced) = read.record.force.as_ref().filter(|r| r.run == name(run)) {
                read.shown.insert(Slot::Env(event), LastRun::from(forced));
                continue;
            }
            let st = state(run);
            let shown = LastRun {
                run: Some(name(run).to_string()),
                result: Some(st.phase.result().to_string()),
                reason: st.reason,
                time: st.finished.or(st.started).or(created(run)).map(|t| t.to_string()),
                ..LastRun::default()
            };
            read.shown.insert(Slot::Env(event), shown);
        }
    }
    read
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

    pub fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    /// Metadata of a test object: its name, labels, annotations and a fixed creation time.
    pub fn meta(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map =
            |kv: &[(&str, &str)]| (!kv.is_empty()).then(|| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        ObjectMeta {
            name: Some(name.into()),
            labels: map(labels),
            annotations: map(annotations),
            creation_timestamp: Some(Time(ts("2025-01-01T00:00:00Z"))),
            ..Default::default()
        }
    }

    pub fn job(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Job {
        Job { metadata: meta(name, labels, annotations), spec: Some(JobSpec::default()), status: None }
    }

    pub fn with_condition(mut j: Job, type_: &str, reason: Option<&str>, time: &str) -> Job {
        j.status = Some(JobStatus {
            conditions: Some(vec![JobCondition {
                type_: type_.into(),
                status: "True".into(),
                reason: reason.map(Into::into),
                message: reason.map(|r| format!("because {r}")),
                last_transition_time: Some(Time(ts(time))),
                ..Default::default()
            }]),
            ..Default::default()
        });
        j
    }

    /// A run as the controller creates it: labelled, and controlled by its template.
    pub fn run(name: &str, template: &str, event: &str, created: &str) -> Job {
        let labels = [(names::LABEL_JOB, template), (names::LABEL_EVENT, event), (names::LABEL_RUN, "1")];
        let mut j = job(name, &labels, &[]);
        j.metadata.creation_timestamp = Some(Time(ts(created)));
        j.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: template.into(),
            uid: format!("{template}-uid"),
            controller: Some(true),
            ..Default::default()
        }]);
        j
    }

    #[test]
    fn kinds_of_jobs() {
        let t = job("seed", &[], &[(names::ANNOTATION_ON, "start, stop")]);
        assert!(is_template(&t));
        assert_eq!(template_events(&t).unwrap(), vec![Event::Start, Event::Stop]);
        let bad = job("seed", &[], &[(names::ANNOTATION_ON, "deploy")]);
        assert!(template_events(&bad).unwrap_err().contains("deploy"));
        let r = run("seed-start-x", "seed", "start", "2025-01-01T00:00:00Z");
        assert!(!is_template(&r));
        assert_eq!(run_of(&r), Some("seed"));
        assert_eq!(run_event(&r), Some(Event::Start));
        assert_eq!(job_id(&job("seed-db", &[], &[])).as_str(), "SEED_DB");
        assert_eq!(job_id(&job("seed-db", &[], &[(names::ANNOTATION_JOB_ID, "zabc")])).as_str(), "ZABC");
    }

    #[test]
    fn states() {
        let mut j = job("a", &[], &[]);
        assert_eq!(state(&j).phase, Phase::Pending);
        j.spec.as_mut().unwrap().suspend = Some(true);
        assert_eq!(state(&j).phase, Phase::Suspended);
        j.status = Some(JobStatus { active: Some(1), ..Default::default() });
        assert_eq!(state(&j).phase, Phase::Running);
        let failed = with_condition(job("a", &[], &[]), "Failed", Some("BackoffLimitExceeded"), "2025-01-01T00:01:00Z");
        let st = state(&failed);
        assert_eq!(st.phase, Phase::Failed);
        assert_eq!(st.reason.as_deref(), Some("BackoffLimitExceeded"));
        assert_eq!(st.finished, Some(ts("2025-01-01T00:01:00Z")));
        let done = with_condition(job("a", &[], &[]), "Complete", None, "2025-01-01T00:02:00Z");
        assert_eq!(state(&done).phase, Phase::Succeeded);
        assert!(state(&done).phase.is_finished());
        // Its pods succeeded, but the server recorded that its outputs were lost: failed, as the controller counts it.
        let why = "outputs not published: the agent could not reach the server before its grace period ended";
        let lost = with_condition(job("a", &[], &[(names::ANNOTATION_OUTPUTS, why)]), "Complete", None, "2025-01-01T00:02:00Z");
        let st = state(&lost);
        assert_eq!(st.phase, Phase::Failed);
        assert_eq!(st.reason.as_deref(), Some(lifecycle_contract::run::OUTPUTS_NOT_PUBLISHED_REASON));
        assert_eq!(st.message.as_deref(), Some(why));
    }

    #[test]
    fn success_criteria_are_no_end_and_a_failure_target_is() {
        // Kubernetes 1.35 sets SuccessCriteriaMet / FailureTarget before Complete / Failed.
        let meeting =
            with_condition(job("a", &[], &[]), "SuccessCriteriaMet", Some("CompletionsReached"), "2025-01-01T00:01:00Z");
        assert_eq!(state(&meeting).phase, Phase::Running);
        assert!(!state(&meeting).phase.is_finished());
        assert_eq!(state(&meeting).finished, None);
        // FailureTarget: the Job controller decided the Job fails (its pods are terminating): failed for good.
        let target = with_condition(job("a", &[], &[]), "FailureTarget", Some("DeadlineExceeded"), "2025-01-01T00:01:00Z");
        assert_eq!(state(&target).phase, Phase::Failed);
        assert_eq!(state(&target).reason.as_deref(), Some("DeadlineExceeded"));
        // Once the terminal condition is added next to the intermediate one, the run has ended.
        let mut complete = meeting.clone();
        let mut c = complete.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].clone();
        c.type_ = "Complete".into();
        complete.status.as_mut().unwrap().conditions.as_mut().unwrap().push(c);
        assert_eq!(state(&complete).phase, Phase::Succeeded);
        let mut failed = target.clone();
        let mut c = failed.status.as_ref().unwrap().conditions.as_ref().unwrap()[0].clone();
        c.type_ = "Failed".into();
        failed.status.as_mut().unwrap().conditions.as_mut().unwrap().push(c);
        let st = state(&failed);
        assert_eq!(st.phase, Phase::Failed);
        assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    }

    #[test]
    fn phases_as_run_results() {
        let results: Vec<&str> =
            [Phase::Pending, Phase::Running, Phase::Succeeded, Phase::Failed, Phase::Suspended].map(Phase::result).into();
        assert_eq!(results, ["pending", "running", "succeeded", "failed", "pending"]);
    }

    #[test]
    fn last_runs_are_read_tolerantly() {
        let t = job(
            "seed",
            &[],
            &[(
                ANNOTATION_LAST_RUNS,
                r#"{"start": {"run": "seed-start-1", "result": "Succeeded", "time": "2025-01-01T00:00:00Z"},
                   "stop": "garbage", "deploy": {}, "delete": {"result": "Failed", "reason": "DeadlineExceeded", "extra": 1}}"#,
            )],
        );
        let lr = last_runs(&t);
        assert_eq!(lr.len(), 2);
        assert_eq!(lr[&Event::Start].run.as_deref(), Some("seed-start-1"));
        assert_eq!(lr[&Event::Start].time(), Some(ts("2025-01-01T00:00:00Z")));
        assert_eq!(lr[&Event::Delete].reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(lr[&Event::Start].result.as_deref(), Some("succeeded"), "results are lowercased");
        assert_eq!(lr[&Event::Delete].result.as_deref(), Some("failed"));
        assert!(last_runs(&job("seed", &[], &[(ANNOTATION_LAST_RUNS, "not json")])).is_empty());
        assert!(last_runs(&job("seed", &[], &[])).is_empty());
        // What is shown of an annotation the controller cannot read, and why it reads no record from it.
        assert_eq!(lr.record, LastRuns::default(), "the controller reads no record from it");
        assert_eq!(lr.problems.len(), 1, "{:?}", lr.problems);
        let problem = &lr.problems[0];
        assert!(problem.contains("entry start: unknown variant `Succeeded`"), "{problem}");
        assert!(problem.contains("entry stop: invalid type: string \"garbage\""), "{problem}");
        assert!(problem.starts_with("job seed: annotation lifecycle-jobs.dev/last-runs is unreadable ("), "{problem}");
        assert!(problem.contains("); ignored [entry start"), "the controller reads no record from it: {problem}");
        let not_json = last_runs(&job("seed", &[], &[(ANNOTATION_LAST_RUNS, "not json")]));
        assert!(not_json.problems[0].contains("is unreadable (expected"), "{:?}", not_json.problems);
        assert!(last_runs(&job("seed", &[], &[])).problems.is_empty());
    }

    #[test]
    fn last_runs_are_the_contracts_records_forced_run_included() {
        let text = r#"{"start":{"run":"seed-start-k2","occurrence":"3","result":"succeeded","time":"2025-01-01T00:00:00Z"},
            "force":{"event":"stop","run":"seed-stop-p0","occurrence":"force-2","result":"failed",
                     "reason":"OutputsNotPublished","message":"outputs not published: away","time":"2025-01-01T00:05:00Z"}}"#;
        let lr = last_runs(&job("seed", &[], &[(ANNOTATION_LAST_RUNS, text)]));
        assert!(lr.problems.is_empty(), "{:?}", lr.problems);
        assert_eq!(lr.record, serde_json::from_str::<LastRuns>(text).unwrap(), "as the controller reads it");
        assert_eq!(lr.len(), 2);
        assert_eq!(lr[&Event::Start].result.as_deref(), Some("succeeded"));
        let forced = &lr.shown[&Slot::Force];
        assert_eq!(forced.event.as_deref(), Some("stop"));
        assert_eq!(forced.result.as_deref(), Some("failed"));
        assert_eq!(forced.reason.as_deref(), Some(run::OUTPUTS_NOT_PUBLISHED_REASON));
        assert_eq!(forced.message.as_deref(), Some("outputs not published: away"));
        assert_eq!(forced.time(), Some(ts("2025-01-01T00:05:00Z")));
        // A run Job shows an event the record has nothing of; the forced run stays in its slot.
        let jobs = vec![run("seed-stop-p0", "seed", "stop", "2025-01-01T00:04:00Z")];
        let all = last_run_per_event(&job("seed", &[], &[(ANNOTATION_LAST_RUNS, text)]), &jobs);
        assert_eq!(all.event(Event::Stop).and_then(|r| r.run.as_deref()), Some("seed-stop-p0"));
        assert_eq!(all.event(Event::Stop).and_then(|r| r.result.as_deref()), Some("failed"), "the controller's result");
        assert_eq!(all.shown[&Slot::Force].run.as_deref(), Some("seed-stop-p0"));
    }

    #[test]
    fn latest_runs_fall_back_to_run_jobs() {
        let t = job(
            "seed",
            &[],
            &[(names::ANNOTATION_ON, "start,stop"), (ANNOTATION_LAST_RUNS, r#"{"stop": {"result": "Succeeded"}}"#)],
        );
        let jobs = vec![
            run("seed-start-a", "seed", "start", "2025-01-01T00:00:00Z"),
            with_condition(
                run("seed-start-b", "seed", "start", "2025-01-01T00:05:00Z"),
                "Failed",
                Some("BackoffLimitExceeded"),
                "2025-01-01T00:06:00Z",
            ),
            run("other-start-c", "other", "start", "2025-01-01T00:09:00Z"),
            run("seed-stop-d", "seed", "stop", "2025-01-01T00:09:00Z"),
        ];
        assert_eq!(latest_run(&jobs, "seed", None).map(name), Some("seed-stop-d"));
        assert_eq!(latest_run(&jobs, "seed", Some(Event::Start)).map(name), Some("seed-start-b"));
        assert_eq!(latest_run(&jobs, "seed", Some(Event::Delete)), None);
        let lr = last_run_per_event(&t, &jobs);
        assert_eq!(lr[&Event::Start].run.as_deref(), Some("seed-start-b"));
        assert_eq!(lr[&Event::Start].result.as_deref(), Some("failed"), "derived results use the controller's words");
        assert_eq!(lr[&Event::Start].time.as_deref(), Some("2025-01-01T00:06:00Z"));
        assert_eq!(lr[&Event::Stop].run, None, "the annotation wins over run Jobs");
        assert_eq!(lr[&Event::Stop].result.as_deref(), Some("succeeded"));
        assert!(lr.event(Event::Delete).is_none());
    }
}
