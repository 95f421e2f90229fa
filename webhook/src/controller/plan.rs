//! The environment controller's decisions, as a pure function: from a snapshot
//! of one environment (its Namespace and its Jobs, read fresh from the API),
//! the next steps to take. The glue executes them and plans again from a new
//! snapshot, until nothing is left to do.
//!
//! Each step is safe to repeat and safe to interrupt: a run Job is found by
//! what only the server writes (its template as controller, labels `event` and
//! `run`), whatever its name, and a process names a run the same way each time
//! it tries (creating one twice yields `AlreadyExists`; the names are keyed so
//! that no tenant can take one first, see [`super::run_job`]), every
//! template records the occurrence it ran in its `last-runs` annotation, and
//! every write of a record is conditional on the resourceVersion it was planned
//! from. A controller that restarts at any moment therefore creates no
//! duplicate run and misses none.
//!
//! Order of one plan:
//! 0. every live template carries the outputs-cleanup finalizer (before any run);
//! 1. runs in flight are observed: their end is recorded and reported, a claimed
//!    forced run is created;
//! 2. then either the transition in flight advances (its runs stage by stage,
//!    then scaling, rolling the workloads whose outputs changed (start) or the
//!    namespace's deletion), or, with none in flight, the next event is taken: a
//!    change of the wanted state first; else a new start template in a started
//!    environment (the current start is taken up again for it), and forced runs.
//!
//! Stages (template annotation `stage`, an integer, default 0): a transition's
//! runs go stage by stage, ascending for start, descending for stop and delete.
//! The runs of a stage are created only when every run of the stages before it
//! has ended, as recorded in the templates' `last-runs`; that record is written
//! (conditionally) before the plan that creates the next stage's runs, so a
//! restart never creates a later stage early nor a run twice.
//!
//! Queue semantics: a new event while runs are in flight waits for them; the
//! wanted state is read again when the transition ends, so intermediate states
//! collapse (stopped then started again during a start's runs is no event at all;
//! three deploy-ids during a start are one more start).
//!
//! Failures. A failed run (backoffLimit, activeDeadlineSeconds, a broken
//! template, a run deleted before it ended, outputs not published) is reported
//! on its template (Warning Event `RunFailed`, `last-runs`) and on the
//! namespace's `status`.
//! - Stop and delete: it counts as ended and the transition continues. Holding
//!   the environment forever on one failed job would be worse: a stop that never
//!   scales down, a delete that never deletes. People see the failure and can
//!   force the event again (`force-run`) once fixed.
//! - Start: once the failed run's stage has ended, the later stages never run
//!   (they may need its outputs), and the namespace gets a Warning Event
//!   (`StartFailed`) saying which job failed and how to retry. By default the
//!   transition is held (recorded `failed` in the `transition` annotation): pods
//!   admitted meanwhile stay gated, since they would run without the outputs, and
//!   only a new event (a new `deploy-id`: `kubectl lifecycle env redeploy`, or
//!   another state) replaces it. With namespace annotation `on-start-failure:
//!   release` the transition goes on instead: scaling, rollouts, gates released.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use lifecycle_contract::Event;
use lifecycle_contract::environment::{Decision, Environment, decide, taken};
use lifecycle_contract::lifecycle_job::{self, JobKind};
use lifecycle_contract::names::{
    ANNOTATION_DEPLOY_ID, ANNOTATION_INJECT_OUTPUTS, ANNOTATION_ON_START_FAILURE, SCHEDULING_GATE_START_JOBS,
};

use super::gate::GatedPod;
use super::keys::FINALIZER_OUTPUTS_CLEANUP;
use super::model::{
    LastRuns, Observed, OnStartFailure, Outcome, Phase, Progress, Rollout, RunRecord, RunResult, Slot, StartFailure, Transition,
    WantedState, job_outcome,
};
use super::run_job::{build_run, is_same_run, run_name, suffix};

/// Longest reason message kept in `last-runs`.
const MAX_MESSAGE: usize = 300;

/// One environment as read from the API.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub ns: NsView,
    pub templates: Vec<Template>,
    /// Every Job of the namespace, by name.
    pub jobs: BTreeMap<String, Job>,
    /// Pods carrying the start-jobs gate label (filled in by the caller).
    pub gated: Vec<GatedPod>,
}

/// The namespace as the plan reads it: the contract's [`Environment`] reader
/// (the one every part uses; its `problems` also get the templates'), plus
/// the object's identity for conditional writes.
#[derive(Debug, Clone)]
pub(crate) struct NsView {
    pub env: Environment,
    pub uid: String,
    pub resource_version: String,
    /// Pods admitted now are gated ([`Environment::gates_pods`]).
    pub gating: bool,
}

/// A lifecycle job (a Job with annotation `on` that is not itself a run).
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub job: Job,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub on: Result<Vec<Event>, String>,
    pub force_run: Option<String>,
    pub records: LastRuns,
    /// Annotation `stage` (an unreadable one counts as 0; admission refuses them).
    pub stage: i32,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Template {
    fn runs_on(&self, event: Event) -> bool {
        self.on.as_ref().is_ok_and(|on| on.contains(&event))
    }
    fn has_finalizer(&self) -> bool {
        self.finalizers.iter().any(|f| f == FINALIZER_OUTPUTS_CLEANUP)
    }
}

impl Snapshot {
    pub(crate) fn new(ns: &Namespace, jobs: Vec<Job>) -> Snapshot {
        let meta = &ns.metadata;
        let env = Environment::read(meta);
        let mut view = NsView {
            gating: env.gates_pods(),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            env,
        };

        let mut templates = Vec::new();
        let mut by_name = BTreeMap::new();
        for job in jobs {
            let m = &job.metadata;
            // The contract's reader of a Job: a template is a Job with `on` that is no run.
            if let JobKind::Template { events } = lifecycle_job::kind(m) {
                let name = m.name.clone().unwrap_or_default();
                let last_runs = lifecycle_job::last_runs(m);
                if let Some(problem) = last_runs.problem {
                    view.env.problems.push(format!("Job {name}: {problem}"));
                }
                let stage = lifecycle_job::stage(m).unwrap_or_else(|e| {
                    view.env.problems.push(format!("Job {name}: {e}; stage 0 is used"));
                    0
                });
                templates.push(Template {
                    name,
                    uid: m.uid.clone().unwrap_or_default(),
                    resource_version: m.resource_version.clone().unwrap_or_default(),
                    on: events.map_err(|e| e.to_string()),
                    force_run: lifecycle_job::force_run(m).map(|f| f.value.to_string()),
                    records: last_runs.record,
                    stage,
                    deleting: m.deletion_timestamp.is_some(),
                    finalizers: m.finalizers.clone().unwrap_or_default(),
                    job: job.clone(),
                });
            }
            if let Some(name) = job.metadata.name.clone() {
                by_name.insert(name, job);
            }
        }
        templates.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot { ns: view, templates, jobs: by_name, gated: Vec::new() }
    }

    fn live(&self) -> impl Iterator<Item = &Template> {
        self.templates.iter().filter(|t| !t.deleting)
    }

    /// The run of template `t` for `event` / `occurrence`, if it exists: the Job
    /// `name` when it is that run, else any Job that is (a run created under
    /// another name, by a process that crashed before recording it).
    fn run(&self, name: &str, t: &Template, event: Event, occurrence: &str) -> Option<&Job> {
        self.jobs
            .get(name)
            .filter(|j| is_same_run(j, &t.uid, event, occurrence))
            .or_else(|| self.jobs.values().find(|j| is_same_run(j, &t.uid, event, occurrence)))
    }

    /// The UID of a Job named `name` that is not the run of `t` for `event` /
    /// `occurrence` (someone else's Job holding the name), if there is one.
    fn stranger(&self, name: &str, t: &Template, event: Event, occurrence: &str) -> Option<String> {
        let j = self.jobs.get(name).filter(|j| !is_same_run(j, &t.uid, event, occurrence))?;
        Some(j.metadata.uid.clone().unwrap_or_default())
    }

    /// The highest environment occurrence ever recorded, so that numbering goes
    /// on even if the namespace's annotations were lost.
    fn last_seq(&self) -> u64 {
        let ns = self.ns.env.observed.as_ref().map_or(0, |o| o.seq).max(self.ns.env.transition.as_ref().map_or(0, |t| t.seq));
        self.templates
            .iter()
            .flat_map(|t| Slot::ALL.iter().filter_map(|s| t.records.get(*s)).map(RunRecord::env_seq).collect::<Vec<_>>())
            .fold(ns, u64::max)
    }
}

/// What to tell people about (Events on the template, metrics).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Report {
    RunStarted { event: Event, run: String, forced: bool },
    RunEnded { event: Event, run: String, forced: bool, outcome: Outcome },
    ForceRunIgnored { value: String, why: String },
}

/// What to tell people about on the namespace (Events).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NsReport {
    /// A start run failed: which job, what happens to the gated pods, how to retry.
    StartFailed { message: String },
}

/// One run to create.
#[derive(Debug, Clone)]
pub(crate) struct Create {
    pub slot: Slot,
    pub event: Event,
    pub occurrence: String,
    pub job: Box<Job>,
}

/// Changes to one template, written with its resourceVersion as precondition.
#[derive(Debug, Clone)]
pub(crate) struct TemplateStep {
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    /// The new finalizer list (adds the outputs-cleanup finalizer).
    pub finalizers: Option<Vec<String>>,
    /// Runs to create first (an existing identical run is fine).
    pub creates: Vec<Create>,
    /// The new `last-runs`.
    pub records: Option<LastRuns>,
    /// Remove annotation `force-run` (taken or refused).
    pub clear_force_run: bool,
    /// Sent once the write succeeded.
    pub reports: Vec<Report>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NsStep {
    /// Take an event in: `observed` and `transition` written together.
    Begin {
        observed: Observed,
        transition: Transition,
    },
    /// A change that is no event (deploy-id while stopped).
    Record {
        observed: Observed,
    },
    /// Next phase, or the end (`None`).
    Advance {
        next: Option<Transition>,
    },
    /// The same phase with new progress, or a start held after a failed run.
    Update {
        transition: Transition,
    },
    /// The end of a start or a stop, once its runs are over, in one step (each
    /// part is idempotent, so a step cut short is simply made again): scale
    /// Deployments and StatefulSets (down for stop, back for start), roll the
    /// workloads whose pods started on other outputs (start), then end the
    /// transition. The start's pods wait at the gate throughout.
    Workloads {
        event: Event,
        scale: bool,
        rollout: Option<Rollout>,
    },
    /// Delete the namespace (delete transition, after its runs).
    DeleteNamespace,
    /// The wanted state left `deleted` during the delete runs: the namespace stays;
    /// the next wanted state is an event whatever it is.
    CancelDelete {
        observed: Observed,
    },
    Status(String),
}

#[derive(Debug, Clone)]
pub(crate) enum Step {
    Template(Box<TemplateStep>),
    Namespace(NsStep),
    /// Remove the start-jobs gate from these pods: the environment no longer gates.
    Release(Vec<GatedPod>),
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    /// The namespace's `status` as of this plan.
    pub status: String,
    /// Runs in flight, a transition, or an event waiting: look again soon.
    pub busy: bool,
    /// Sent once the namespace step succeeded.
    pub ns_reports: Vec<NsReport>,
    /// Why the gated pods wait, when they do (an Event on each).
    pub gated_note: Option<String>,
}

struct Planner<'a> {
    s: &'a Snapshot,
    now: &'a str,
    templates: BTreeMap<String, TemplateStep>,
    ns: Option<NsStep>,
    ns_reports: Vec<NsReport>,
    /// An event waits for runs in flight.
    waiting: bool,
}

impl<'a> Planner<'a> {
    fn step(&mut self, t: &Template) -> &mut TemplateStep {
        self.templates.entry(t.name.clone()).or_insert_with(|| TemplateStep {
            name: t.name.clone(),
            uid: t.uid.clone(),
            resource_version: t.resource_version.clone(),
            finalizers: None,
            creates: Vec::new(),
            records: None,
            clear_force_run: false,
            reports: Vec::new(),
        })
    }

    fn records(&mut self, t: &Template) -> &mut LastRuns {
        let step = self.step(t);
        step.records.get_or_insert_with(|| t.records.clone())
    }

    fn touched(&self, t: &Template) -> bool {
        self.templates.contains_key(&t.name)
    }

    fn record(&self, run: &str, occurrence: &str, event: Option<Event>, result: RunResult) -> RunRecord {
        RunRecord {
            event,
            run: run.to_string(),
            occurrence: occurrence.to_string(),
            result,
            reason: None,
            message: None,
            time: self.now.to_string(),
        }
    }

    /// Creates the run of `t` for `slot` / `event` / `occurrence` and records it
    /// running; a template that cannot make a run is recorded failed.
    fn start_run(&mut self, t: &Template, slot: Slot, event: Event, occurrence: &str, run: &str) {
        let forced = slot == Slot::Force;
        let tag = forced.then_some(event);
        match build_run(&t.job, event, occurrence, run) {
            Ok(job) => {
                let rec = self.record(run, occurrence, tag, RunResult::Running);
                self.records(t).set(slot, rec);
                let step = self.step(t);
                step.creates.push(Create { slot, event, occurrence: occurrence.to_string(), job: Box::new(job) });
                step.reports.push(Report::RunStarted { event, run: run.to_string(), forced });
            }
            Err(e) => {
                let outcome = Outcome { succeeded: false, reason: Some("InvalidTemplate".into()), message: Some(e.to_string()) };
                self.end_run(t, slot, self.record(run, occurrence, tag, RunResult::Pending), event, outcome);
            }
        }
    }

    fn end_run(&mut self, t: &Template, slot: Slot, mut rec: RunRecord, event: Event, outcome: Outcome) {
        rec.result = if outcome.succeeded { RunResult::Succeeded } else { RunResult::Failed };
        rec.reason = outcome.reason.clone();
        rec.message = outcome.message.as_deref().map(|m| crate::runtime::text::cut(m, MAX_MESSAGE));
        rec.time = self.now.to_string();
        let run = rec.run.clone();
        self.records(t).set(slot, rec);
        self.step(t).reports.push(Report::RunEnded { event, run, forced: slot == Slot::Force, outcome });
    }

    /// 0. The outputs-cleanup finalizer on every live template, before any run.
    fn finalizers(&mut self) {
        for t in self.s.live() {
            if !t.has_finalizer() {
                let mut f = t.finalizers.clone();
                f.push(FINALIZER_OUTPUTS_CLEANUP.to_string());
                self.step(t).finalizers = Some(f);
            }
        }
    }

    /// 1. Runs in flight: record their end; create claimed forced runs.
    fn observe(&mut self) {
        for t in self.s.live() {
            for slot in Slot::ALL {
                let Some(rec) = t.records.get(slot).filter(|r| r.result.in_flight()) else { continue };
                let event = match (slot, rec.event) {
                    (Slot::Env(e), _) | (Slot::Force, Some(e)) => e,
                    (Slot::Force, None) => {
                        // Cannot happen unless edited by hand: close it.
                        let outcome = Outcome {
                            succeeded: false,
                            reason: Some("InvalidRecord".into()),
                            message: Some("the forced run's record names no event".into()),
                        };
                        self.end_run(t, slot, rec.clone(), Event::Start, outcome);
                        continue;
                    }
                };
                let found = self.s.run(&rec.run, t, event, &rec.occurrence);
                // Found under another name (created by a process that crashed before
                // recording it): the record follows the Job.
                let rec = match found.and_then(|j| j.metadata.name.as_deref()) {
                    Some(name) if name != rec.run => &RunRecord { run: name.to_string(), ..rec.clone() },
                    _ => rec,
                };
                match found {
                    Some(job) => match (job_outcome(job), rec.result) {
                        (Some(outcome), _) => self.end_run(t, slot, rec.clone(), event, outcome),
                        (None, RunResult::Pending) => {
                            let mut r = rec.clone();
                            r.result = RunResult::Running;
                            r.time = self.now.to_string();
                            self.records(t).set(slot, r);
                            let forced = slot == Slot::Force;
                            self.step(t).reports.push(Report::RunStarted { event, run: rec.run.clone(), forced });
                        }
                        (None, _) => {}
                    },
                    None if rec.result == RunResult::Pending => {
                        let (occurrence, mut run) = (rec.occurrence.clone(), rec.run.clone());
                        // A claimed forced run's name is in `last-runs` before the run
                        // exists: a Job made under it meanwhile is someone else's. The
                        // run takes another name, keyed (unpredictable) and derived from
                        // that Job's UID, rather than failing.
                        if let Some(uid) = self.s.stranger(&run, t, event, &occurrence) {
                            run = run_name(&t.name, event, &suffix(&t.uid, event, &format!("{occurrence}/{uid}")));
                        }
                        self.start_run(t, slot, event, &occurrence, &run);
                    }
                    None => {
                        let outcome = Outcome {
                            succeeded: false,
                            reason: Some("RunDeleted".into()),
                            message: Some(format!("Job {} was deleted before it ended", rec.run)),
                        };
                        self.end_run(t, slot, rec.clone(), event, outcome);
                    }
                }
            }
        }
    }

    /// 2a. The transition in flight. Returns the status.
    fn advance(&mut self, tr: &Transition) -> String {
        let verb = verb(tr.event);
        match tr.phase {
            Phase::Runs => self.runs(tr),
            // A transition left in these phases (by a version that took them
            // one plan each) ends as every one does now, in one step. That step
            // writes the resting status with it, so that the status never says
            // "stopping" once the transition is over.
            Phase::Scale => {
                self.ns = Some(self.end_of_runs(tr));
                idle_base(self.s)
            }
            Phase::Rollout => {
                self.ns = Some(NsStep::Workloads { event: tr.event, scale: false, rollout: Some(self.s.ns.env.rollout) });
                idle_base(self.s)
            }
            Phase::Delete => match &self.s.ns.env.wanted {
                Ok(w) if w.state == WantedState::Deleted => {
                    self.ns = Some(NsStep::DeleteNamespace);
                    format!("{verb}: deleting the namespace")
                }
                _ => {
                    let observed = Observed { seq: tr.seq, state: None, deploy_id: None };
                    self.ns = Some(NsStep::CancelDelete { observed });
                    "delete cancelled: the state is no longer deleted".to_string()
                }
            },
        }
    }

    /// The runs of a transition, stage by stage: ascending for start,
    /// descending for stop and delete. A stage's runs are created only once
    /// every run of the stages before it ended (and so published its outputs:
    /// the server answers the agent only after writing them, before the pod
    /// can end). Returns the status.
    fn runs(&mut self, tr: &Transition) -> String {
        let verb = verb(tr.event);
        let occurrence = tr.occurrence();
        let mut by_stage: BTreeMap<i32, Vec<&Template>> = BTreeMap::new();
        for t in self.s.live().filter(|t| t.runs_on(tr.event)) {
            by_stage.entry(t.stage).or_default().push(t);
        }
        let mut stages: Vec<(i32, Vec<&Template>)> = by_stage.into_iter().collect();
        if tr.event != Event::Start {
            stages.reverse();
        }
        let count = stages.len();
        let (mut all_done, mut all_total, mut failed) = (0, 0, Vec::new());
        for (i, (stage, templates)) in stages.iter().enumerate() {
            let mut done = 0;
            let mut failed_here: Vec<(&Template, RunRecord)> = Vec::new();
            for t in templates {
                match t.records.ran_env(tr.event, tr.seq) {
                    Some(r) if !r.result.in_flight() => {
                        done += 1;
                        if r.result == RunResult::Failed {
                            failed_here.push((t, r.clone()));
                        }
                    }
                    Some(_) => {}
                    // Another run of this slot still in flight (cannot happen: events wait
                    // for runs): wait rather than overwrite its record.
                    None if t.records.get(Slot::Env(tr.event)).is_some_and(|r| r.result.in_flight()) => {}
                    // Created before a crash but never recorded: record it, create nothing.
                    None if let Some(job) = self.s.run("", t, tr.event, &occurrence) => {
                        let run = job.metadata.name.clone().unwrap_or_default();
                        let rec = self.record(&run, &occurrence, None, RunResult::Running);
                        self.records(t).set(Slot::Env(tr.event), rec);
                        self.step(t).reports.push(Report::RunStarted { event: tr.event, run, forced: false });
                    }
                    None => {
                        let run = run_name(&t.name, tr.event, &suffix(&t.uid, tr.event, &occurrence));
                        self.start_run(t, Slot::Env(tr.event), tr.event, &occurrence, &run);
                    }
                }
            }
            all_done += done;
            all_total += templates.len();
            failed.extend(failed_here.iter().map(|(t, _)| t.name.clone()));
            let progress = Progress { stage: *stage, index: i + 1, stages: count, done, total: templates.len() };
            if done < templates.len() {
                if tr.progress.as_ref() != Some(&progress) {
                    self.ns = Some(NsStep::Update { transition: Transition { progress: Some(progress.clone()), ..tr.clone() } });
                }
                let mut status = if count > 1 {
                    format!("{verb}: {progress}")
                } else {
                    format!("{verb}: {done}/{} {} jobs done", templates.len(), tr.event)
                };
                if !failed.is_empty() {
                    status.push_str(&format!(", failed: {}", failed.join(", ")));
                }
                return status;
            }
            if tr.event == Event::Start && !failed_here.is_empty() {
                return self.start_failed(tr, progress, &failed_here);
            }
        }
        self.ns = Some(self.end_of_runs(tr));
        if tr.event != Event::Delete {
            return idle_base(self.s);
        }
        let mut status = format!("{verb}: {all_done}/{all_total} {} jobs done", tr.event);
        if !failed.is_empty() {
            status.push_str(&format!(", failed: {}", failed.join(", ")));
        }
        status
    }

    /// What follows a transition's runs: for a start or a stop, the workloads
    /// and the end, in the same plan (what waits for a start, its gated pods,
    /// waits no longer than it must); for a delete, the namespace's deletion.
    fn end_of_runs(&self, tr: &Transition) -> NsStep {
        match tr.event {
            Event::Delete => NsStep::Advance { next: tr.next() },
            Event::Start => NsStep::Workloads { event: Event::Start, scale: true, rollout: Some(self.s.ns.env.rollout) },
            Event::Stop => NsStep::Workloads { event: Event::Stop, scale: true, rollout: None },
        }
    }

    /// A stage of a start ended with failed runs: its later stages never run.
    /// Held (default): the transition stays, so its gated pods stay gated, until
    /// a new event replaces it. `on-start-failure: release`: the transition goes
    /// on without the later stages (scaling, rollouts, gates released).
    fn start_failed(&mut self, tr: &Transition, progress: Progress, failed: &[(&Template, RunRecord)]) -> String {
        let jobs: Vec<String> = failed.iter().map(|(t, _)| t.name.clone()).collect();
        let reason = failed.iter().find_map(|(_, r)| r.reason.clone());
        let failure = StartFailure { stage: progress.stage, jobs: jobs.clone(), reason: reason.clone() };
        let failed_jobs = format!(
            "{} {} failed{}",
            if jobs.len() == 1 { "job" } else { "jobs" },
            jobs.join(", "),
            reason.map(|r| format!(" ({r})")).unwrap_or_default(),
        );
        let what = if progress.stages > 1 {
            format!("start failed at stage {} of {}: {failed_jobs}; the later stages do not run", progress.index, progress.stages)
        } else {
            format!("start failed: {failed_jobs}")
        };
        let retry = format!(
            "fix the job, then retry with a new {ANNOTATION_DEPLOY_ID} (kubectl lifecycle env redeploy {})",
            self.s.ns.env.namespace
        );
        match self.s.ns.env.on_start_failure {
            OnStartFailure::Release => {
                self.ns = Some(self.end_of_runs(tr));
                let message = format!("{what}; gated pods are released ({ANNOTATION_ON_START_FAILURE}: release); {retry}");
                self.ns_reports.push(NsReport::StartFailed { message: message.clone() });
                message
            }
            OnStartFailure::Hold => {
                let status = format!("{what}; gated pods stay gated; {retry}");
                if tr.failed.as_ref() != Some(&failure) {
                    let held = Transition { progress: Some(progress), failed: Some(failure), ..tr.clone() };
                    self.ns = Some(NsStep::Update { transition: held });
                    self.ns_reports.push(NsReport::StartFailed { message: status.clone() });
                    return status;
                }
                // Held: only a new event (a new deploy-id, another state) replaces it.
                match self.next_event() {
                    Some(taking) => taking,
                    None => status,
                }
            }
        }
    }

    /// Takes the event the wanted state implies, if any (after the runs in
    /// flight). Returns the status when there is one.
    fn next_event(&mut self) -> Option<String> {
        let s = self.s;
        let wanted = s.ns.env.wanted.as_ref().ok()?;
        let observed = s.ns.env.observed.as_ref();
        match decide(observed, wanted) {
            Decision::Event(event) => {
                let busy: Vec<&str> = s.live().filter(|t| t.records.in_flight()).map(|t| t.name.as_str()).collect();
                if busy.is_empty() {
                    let seq = s.last_seq() + 1;
                    let mut observed = taken(observed, wanted, true);
                    observed.seq = seq;
                    self.ns = Some(NsStep::Begin { observed, transition: Transition::new(seq, event) });
                    Some(format!("{}: taking the {event} event", verb(event)))
                } else {
                    self.waiting = true;
                    Some(format!("{event} waits for running jobs: {}", busy.join(", ")))
                }
            }
            Decision::Record => {
                self.ns = Some(NsStep::Record { observed: taken(observed, wanted, false) });
                None
            }
            Decision::Idle => None,
        }
    }

    /// 2b. No transition in flight: take the next event. Returns the status.
    fn idle(&mut self) -> String {
        let s = self.s;
        let wanted = match &s.ns.env.wanted {
            Ok(w) => w,
            Err(e) => return e.clone(),
        };
        let observed = s.ns.env.observed.as_ref();
        let base = idle_base(s);
        match decide(observed, wanted) {
            // The same taking as after a held start; here a wait is shown beside the resting status.
            Decision::Event(_) | Decision::Record => match self.next_event() {
                Some(wait) if self.waiting => join(&[base, wait]),
                Some(taking) => taking,
                None => base,
            },
            Decision::Idle => {
                // A start template new to a started environment is a start event: the
                // current start occurrence is taken up again, so the new templates run
                // in stage order, with pods gated and workloads rolled as in any start.
                // The templates that already ran for it are done and do not run again.
                // After a failed start, new templates wait for the next one.
                if let Some(o) = observed.filter(|o| o.state == Some(WantedState::Started)) {
                    let start_failed =
                        s.live().any(|t| t.records.ran_env(Event::Start, o.seq).is_some_and(|r| r.result == RunResult::Failed));
                    let new = s.live().any(|t| {
                        t.runs_on(Event::Start) && !t.records.in_flight() && t.records.ran_env(Event::Start, o.seq).is_none()
                    });
                    if new && !start_failed {
                        self.ns = Some(NsStep::Begin { observed: o.clone(), transition: Transition::new(o.seq, Event::Start) });
                        return "starting: new start jobs".into();
                    }
                }
                for t in s.live() {
                    let Some(value) = &t.force_run else { continue };
                    if self.touched(t) {
                        continue;
                    }
                    let why = match (value.parse::<Event>(), &t.on) {
                        (Err(e), _) => Some(e.to_string()),
                        (Ok(e), Ok(on)) if !on.contains(&e) => Some(format!(
                            "this job runs only on {}; force one of those events or add {e} to its on annotation",
                            on.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
                        )),
                        (Ok(_), Err(e)) => Some(format!("its on annotation is invalid: {e}")),
                        (Ok(_), Ok(_)) => None,
                    };
                    if let Some(why) = why {
                        let step = self.step(t);
                        step.clear_force_run = true;
                        step.reports.push(Report::ForceRunIgnored { value: value.clone(), why });
                        continue;
                    }
                    if t.records.in_flight() {
                        continue; // waits for this template's run in flight
                    }
                    let event: Event = value.parse().expect("checked above");
                    let n = t.records.force.as_ref().map_or(0, RunRecord::force_seq) + 1;
                    let occurrence = format!("force-{n}");
                    let run = run_name(&t.name, event, &suffix(&t.uid, event, &occurrence));
                    let rec = self.record(&run, &occurrence, Some(event), RunResult::Pending);
                    self.records(t).set(Slot::Force, rec);
                    self.step(t).clear_force_run = true;
                }
                base
            }
        }
    }
}

fn verb(event: Event) -> &'static str {
    match event {
        Event::Start => "starting",
        Event::Stop => "stopping",
        Event::Delete => "deleting",
    }
}

fn join(parts: &[String]) -> String {
    parts.iter().filter(|p| !p.is_empty()).cloned().collect::<Vec<_>>().join("; ")
}

/// The status of an environment with no transition in flight: its state, the
/// failed jobs of the last event, the runs in flight (forced, or new templates).
fn idle_base(s: &Snapshot) -> String {
    let Some(o) = &s.ns.env.observed else { return "new environment".into() };
    let Some(state) = o.state else { return "delete cancelled".into() };
    let event = state.event();
    let failed: Vec<&str> = s
        .live()
        .filter(|t| t.records.get(Slot::Env(event)).is_some_and(|r| r.env_seq() == o.seq && r.result == RunResult::Failed))
        .map(|t| t.name.as_str())
        .collect();
    let running: Vec<String> = s
        .live()
        .flat_map(|t| {
            Slot::ALL.iter().filter_map(move |slot| {
                let r = t.records.get(*slot).filter(|r| r.result.in_flight())?;
                Some(match slot {
                    Slot::Force => format!("{} (forced {})", t.name, r.event.map_or("?", |e| e.as_str())),
                    Slot::Env(e) => format!("{} ({e})", t.name),
                })
            })
        })
        .collect();
    let mut parts = vec![state.as_str().to_string()];
    if !failed.is_empty() {
        parts.push(format!("{event} jobs failed: {}", failed.join(", ")));
    }
    if !running.is_empty() {
        parts.push(format!("running: {}", running.join(", ")));
    }
    join(&parts)
}

/// The next steps for one environment.
pub(crate) fn plan(s: &Snapshot, now: &str) -> Plan {
    let mut p = Planner { s, now, templates: BTreeMap::new(), ns: None, ns_reports: Vec::new(), waiting: false };
    let current = s.ns.env.status.clone().unwrap_or_default();
    let busy_runs = s.live().any(|t| t.records.in_flight());

    p.finalizers();
    if p.templates.is_empty() {
        p.observe();
    }
    if !p.templates.is_empty() {
        // Records first; the next plan sees them.
        let steps = p.templates.into_values().map(|t| Step::Template(Box::new(t))).collect();
        return Plan { steps, status: current, busy: true, ns_reports: Vec::new(), gated_note: gated_note(s) };
    }

    let (status, busy) = match &s.ns.env.transition {
        Some(tr) => (p.advance(tr), true),
        None => {
            let status = p.idle();
            let busy = busy_runs || p.waiting || p.ns.is_some() || !p.templates.is_empty();
            (status, busy)
        }
    };
    let mut steps: Vec<Step> = p.templates.into_values().map(|t| Step::Template(Box::new(t))).collect();
    steps.extend(p.ns.map(Step::Namespace));
    if steps.is_empty() && status != current {
        steps.push(Step::Namespace(NsStep::Status(status.clone())));
    }
    if !s.ns.gating && !s.gated.is_empty() {
        steps.push(Step::Release(s.gated.clone()));
    }
    Plan { steps, status, busy, ns_reports: p.ns_reports, gated_note: gated_note(s) }
}

/// Why the environment's gated pods wait: the start jobs they wait for.
fn gated_note(s: &Snapshot) -> Option<String> {
    if !s.ns.gating || s.gated.is_empty() {
        return None;
    }
    let ns = &s.ns.env.namespace;
    if let Some(f) = s.ns.env.transition.as_ref().and_then(|t| t.failed.as_ref()) {
        return Some(format!(
            "waits for the start jobs of environment {ns}, and the start failed ({} failed): it stays gated until a new \
             start (kubectl lifecycle env redeploy {ns}) or annotation {ANNOTATION_ON_START_FAILURE}=release on the namespace",
            f.jobs.join(", ")
        ));
    }
    let seq = s.ns.env.transition.as_ref().map(|t| t.seq);
    let mut waiting: Vec<(i32, &str)> = s
        .live()
        .filter(|t| t.runs_on(Event::Start))
        .filter(|t| seq.is_none_or(|seq| t.records.ran_env(Event::Start, seq).is_none_or(|r| r.result.in_flight())))
        .map(|t| (t.stage, t.name.as_str()))
        .collect();
    waiting.sort();
    let jobs = if waiting.is_empty() {
        "none left".to_string()
    } else {
        waiting.iter().map(|(stage, name)| format!("{name} (stage {stage})")).collect::<Vec<_>>().join(", ")
    };
    Some(format!(
        "waits for the start jobs of environment {ns} ({SCHEDULING_GATE_START_JOBS} gate): {jobs}; it is released when the \
         start's runs have ended, and starts with their outputs (a pod the start jobs need, e.g. their database, must \
         not wait: annotate it {ANNOTATION_INJECT_OUTPUTS}: \"false\")"
    ))
}

#[cfg(test)]
mod tests;
