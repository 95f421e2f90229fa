//! Waiting for a transition or a run: watches the namespace and the run Jobs, shows progress
//! (a redrawn line on a terminal, plain lines otherwise) and decides, with pure verdict functions,
//! when it is over.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures::stream::BoxStream;
use futures::{StreamExt, stream};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use lifecycle_contract::Event;
use lifecycle_contract::environment::{Observed as Taken, WantedState};
use lifecycle_contract::last_runs::{RunRecord, RunResult, Slot};
use lifecycle_contract::transition::Transition;

use crate::environment::{self, settled};
use crate::jobs::{self, JobState, Phase};
use crate::table::human_duration;

/// How long a start/redeploy with no start job may show no new occurrence before the state is believed.
pub const SETTLE: Duration = Duration::from_secs(10);

/// Progress on stderr: permanent lines for changes, plus a spinner line on a terminal.
pub struct Progress {
    tty: bool,
    start: Instant,
    spin: usize,
    drawn: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    pub fn new() -> Progress {
        Progress { tty: std::io::stderr().is_terminal(), start: Instant::now(), spin: 0, drawn: false }
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }

    fn stamp(&self) -> String {
        format!("[{:>5}]", human_duration(self.start.elapsed()))
    }

    /// A permanent line.
    pub fn line(&mut self, msg: &str) {
        self.clear();
        crate::errln!("{} {msg}", self.stamp());
    }

    /// Redraws the spinner line (terminal only).
    pub fn spinner(&mut self, summary: &str) {
        if !self.tty {
            return;
        }
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        self.spin = (self.spin + 1) % FRAMES.len();
        let mut err = std::io::stderr().lock();
        // The spinner's own escape (erase the line) is ours; the summary is the cluster's.
        let summary = crate::sanitize::terminal(summary);
        let _ = write!(err, "\r\x1b[2K{} {} {summary}", FRAMES[self.spin], self.stamp());
        let _ = err.flush();
        self.drawn = true;
    }

    pub fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

/// A run Job seen while waiting (created after the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub name: String,
    pub template: String,
    pub event: Option<Event>,
    pub state: JobState,
    pub created: Option<jiff::Timestamp>,
}

impl RunInfo {
    pub fn from_job(job: &Job) -> RunInfo {
        RunInfo {
            name: jobs::name(job).to_string(),
            template: jobs::run_of(job).unwrap_or_else(|| jobs::name(job)).to_string(),
            event: jobs::run_event(job),
            state: jobs::state(job),
            created: jobs::created(job),
        }
    }
}

/// What has been seen so far.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// `None` until known.
    pub namespace_exists: Option<bool>,
    /// The human status line, shown as progress (never decided on).
    pub status: Option<String>,
    /// What the controller took in (annotation `observed`) and the transition in flight
    /// (annotation `transition`): what the verdict decides on.
    pub taken: Option<Taken>,
    pub transition: Option<Transition>,
    /// Whether the namespace was seen terminating.
    pub terminating: bool,
    /// New runs, by name.
    pub runs: BTreeMap<String, RunInfo>,
    /// What the controller recorded of runs (the template's `last-runs`), by
    /// run name, when the template is watched ([`Watch::template`]).
    pub records: BTreeMap<String, RunRecord>,
    /// The template is watched: a run has succeeded only once the controller says so.
    pub records_watched: bool,
    pub elapsed: Duration,
}

impl Observed {
    /// One line: the status (with `with_status`) and the runs.
    pub fn summary(&self, with_status: bool) -> String {
        let status = match &self.status {
            _ if !with_status => String::new(),
            Some(s) if !s.is_empty() => format!("status: {s}; "),
            _ => "status: (none yet); ".to_string(),
        };
        if self.runs.is_empty() {
            return format!("{status}no run yet");
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for r in self.runs.values() {
            *counts.entry(r.state.phase.as_str()).or_default() += 1;
        }
        let runs: Vec<String> = counts.iter().map(|(p, n)| format!("{n} {}", p.to_lowercase())).collect();
        format!("{status}runs: {}", runs.join(", "))
    }

    fn unfinished(&self) -> Vec<&str> {
        self.runs.values().filter(|r| !r.state.phase.is_finished()).map(|r| r.name.as_str()).collect()
    }
}

#[derive(Debug)]
pub enum Verdict {
    Continue,
    Done(String),
    Fail(anyhow::Error),
}

/// Where an environment transition ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Started,
    Stopped,
    Gone,
}

impl Target {
    /// The wanted state that ends here (`None` for a deleted environment: it ends gone).
    pub fn state(self) -> Option<WantedState> {
        match self {
            Target::Started => Some(WantedState::Started),
            Target::Stopped => Some(WantedState::Stopped),
            Target::Gone => None,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Target::Started => "started",
            Target::Stopped => "stopped",
            Target::Gone => "deleted",
        }
    }
}

/// An environment transition being waited for.
#[derive(Debug, Clone)]
pub struct TransitionGoal {
    pub namespace: String,
    pub target: Target,
    pub event: Event,
    /// The environment's last event occurrence before the request (`observed.seq`).
    pub baseline_seq: u64,
    /// For a redeploy, the `deploy-id` it set.
    pub deploy_id: Option<String>,
    /// How many templates run on the event (at the time of the request).
    pub expected_runs: usize,
}

/// The message for a failed run, with what to do next.
pub fn run_failed(namespace: &str, run: &RunInfo) -> anyhow::Error {
    let why = match (&run.state.reason, &run.state.message) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => "no reason given".to_string(),
    };
    let event = run.event.map(|e| format!(" --event {e}")).unwrap_or_default();
    anyhow!(
        "run {} of lifecycle job {} failed ({why})\n  hint: see its logs with `kubectl lifecycle logs {}{event} -n {namespace}` (or `kubectl logs -n {namespace} job/{} --all-containers`)",
        run.name,
        run.template,
        run.template,
        run.name
    )
}

/// Whether an environment transition is over.
pub fn transition_verdict(goal: &TransitionGoal, obs: &Observed) -> Verdict {
    if let Some(failed) = obs.runs.values().find(|r| r.state.phase == Phase::Failed) {
        let ns = &goal.namespace;
        let next = match goal.event {
            // A failed start run holds the start: later stages do not run, gated pods wait.
            Event::Start => format!(
                "the start of environment {ns} failed: its later stages do not run and its gated pods wait; fix the job, then \
                 `kubectl lifecycle env redeploy {ns}` (see `kubectl lifecycle env status {ns}`)"
            ),
            event => format!(
                "the {event} of environment {ns} had a failed run; the controller goes on with it: follow with `kubectl lifecycle env status {ns}`"
            ),
        };
        return Verdict::Fail(run_failed(ns, failed).context(next));
    }
    let succeeded = obs.runs.values().filter(|r| r.state.phase == Phase::Succeeded).count();
    let runs_done = if succeeded == 0 {
        String::new()
    } else {
        format!(" ({succeeded} {} run{} succeeded)", goal.event, if succeeded == 1 { "" } else { "s" })
    };
    if goal.target == Target::Gone {
        return if obs.namespace_exists == Some(false) {
            Verdict::Done(format!("environment {} is deleted: namespace gone{runs_done}", goal.namespace))
        } else {
            Verdict::Continue
        };
    }
    if obs.namespace_exists == Some(false) {
        return Verdict::Fail(anyhow!(
            "namespace {} was deleted while waiting for it to be {}",
            goal.namespace,
            goal.target.word()
        ));
    }
    if let Some(t) = obs.transition.as_ref().filter(|t| t.event == Event::Start)
        && let Some(failed) = &t.failed
    {
        return Verdict::Fail(anyhow!(
            "the start of environment {} failed at stage {}: {} failed{}; its later stages do not run and its new pods \
             stay gated\n  hint: fix the job, then `kubectl lifecycle env redeploy {}`; see `kubectl lifecycle env status {}`",
            goal.namespace,
            failed.stage,
            failed.jobs.join(", "),
            failed.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
            goal.namespace,
            goal.namespace
        ));
    }
    let Some(state) = goal.target.state() else { return Verdict::Continue };
    let deploy_taken = goal.deploy_id.as_ref().is_none_or(|d| obs.taken.as_ref().and_then(|t| t.deploy_id.as_ref()) == Some(d));
    if settled(obs.taken.as_ref(), obs.transition.as_ref(), state) && deploy_taken && obs.unfinished().is_empty() {
        let new_occurrence = obs.taken.as_ref().is_some_and(|t| t.seq > goal.baseline_seq);
        if new_occurrence || (goal.expected_runs == 0 && obs.elapsed >= SETTLE) {
            return Verdict::Done(format!("environment {} is {}{runs_done}", goal.namespace, goal.target.word()));
        }
    }
    Verdict::Continue
}

/// Whether a forced run is over: `Done(run name)` once the first new run exists (`until_finished`
/// false) or has succeeded; `Fail` when it failed. The result is the controller's when it watches
/// the template ([`Observed::records_watched`]): a run whose pods succeeded has succeeded only once
/// the controller recorded it so (its outputs published; lost outputs fail it), so a run whose
/// agent could not reach the server is never reported as a success.
pub fn run_verdict(namespace: &str, obs: &Observed, until_finished: bool) -> Verdict {
    let Some(run) = obs.runs.values().min_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name))) else {
        return Verdict::Continue;
    };
    if !until_finished {
        return Verdict::Done(run.name.clone());
    }
    match obs.records.get(&run.name).map(|r| r.result) {
        Some(RunResult::Succeeded) => return Verdict::Done(run.name.clone()),
        Some(RunResult::Failed) => {
            let record = &obs.records[&run.name];
            let mut failed = run.clone();
            failed.state.phase = Phase::Failed;
            failed.state.reason = record.reason.clone();
            failed.state.message = record.message.clone();
            return Verdict::Fail(run_failed(namespace, &failed));
        }
        _ => {}
    }
    match run.state.phase {
        Phase::Failed => Verdict::Fail(run_failed(namespace, run)),
        Phase::Succeeded if !obs.records_watched => Verdict::Done(run.name.clone()),
        _ => Verdict::Continue,
    }
}

/// What to watch.
pub struct Watch {
    pub client: Client,
    pub namespace: String,
    /// Watch the Namespace object too (status annotation, existence).
    pub watch_namespace: bool,
    /// Label selector of the runs to watch.
    pub run_selector: String,
    /// Runs that existed before the request (UIDs): not counted.
    pub before: HashSet<String>,
    /// Only runs of this event.
    pub event: Option<Event>,
    /// The template whose `last-runs` record says how its runs ended (forced runs).
    pub template: Option<String>,
    pub baseline_status: Option<String>,
    pub deadline: Instant,
    pub timeout: Duration,
    /// What is waited for, for the timeout message ("environment X to be stopped").
    pub what: String,
    /// What to do after a timeout.
    pub hint: String,
}

enum Update {
    Namespace(Box<watcher::Event<Namespace>>),
    Job(Box<watcher::Event<Job>>),
    Template(Box<watcher::Event<Job>>),
    Error(watcher::Error),
}

/// The watches a wait needs, merged: the namespace (when watched), the run
/// Jobs, and the template whose record says how a forced run ended.
fn updates(w: &Watch, obs: &mut Observed) -> BoxStream<'static, Update> {
    let ns_stream = if w.watch_namespace {
        let api: Api<Namespace> = Api::all(w.client.clone());
        let cfg = watcher::Config::default().fields(&format!("metadata.name={}", w.namespace));
        watcher(api, cfg).default_backoff().map(|r| r.map_or_else(Update::Error, |e| Update::Namespace(Box::new(e)))).boxed()
    } else {
        stream::pending().boxed()
    };
    let jobs_api: Api<Job> = Api::namespaced(w.client.clone(), &w.namespace);
    let job_stream = watcher(jobs_api, watcher::Config::default().labels(&w.run_selector))
        .default_backoff()
        .map(|r| r.map_or_else(Update::Error, |e| Update::Job(Box::new(e))))
        .boxed();
    let template_stream = match &w.template {
        Some(name) => {
            obs.records_watched = true;
            let api: Api<Job> = Api::namespaced(w.client.clone(), &w.namespace);
            let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
            watcher(api, cfg).default_backoff().map(|r| r.map_or_else(Update::Error, |e| Update::Template(Box::new(e)))).boxed()
        }
        None => stream::pending().boxed(),
    };
    stream::select(stream::select(ns_stream, job_stream), template_stream).boxed()
}

/// The error of a wait whose deadline passed: what was waited for (`w.what`),
/// where it is, what to do (`w.hint`).
pub(crate) fn timed_out(what: &str, hint: &str, timeout: Duration, obs: &Observed, with_status: bool) -> anyhow::Error {
    let unfinished = obs.unfinished();
    let runs = if unfinished.is_empty() { String::new() } else { format!("; runs not finished: {}", unfinished.join(", ")) };
    anyhow!("timed out after {} waiting for {what} ({}{runs})\n  hint: {hint}", human_duration(timeout), obs.summary(with_status))
}

/// What a wait keeps between watch updates.
#[derive(Default)]
struct WatchState {
    /// The namespace was listed since the watch's last (re)start.
    ns_seen: bool,
    /// The last watch error shown, so that a repeated one is shown once.
    last_error: String,
}

/// Takes in one watch update; an error ends the wait (the watch cannot go on).
fn apply(
    update: Option<Update>,
    w: &Watch,
    obs: &mut Observed,
    progress: &mut Progress,
    st: &mut WatchState,
) -> anyhow::Result<()> {
    match update {
        None => return Err(anyhow!("the watch on namespace {} ended unexpectedly", w.namespace)),
        Some(Update::Namespace(ev)) => match *ev {
            watcher::Event::Init => st.ns_seen = false,
            watcher::Event::InitApply(ns) | watcher::Event::Apply(ns) => {
                st.ns_seen = true;
                on_namespace(&ns, w, obs, progress);
            }
            watcher::Event::InitDone => {
                if !st.ns_seen {
                    gone(w, obs, progress);
                }
            }
            watcher::Event::Delete(_) => gone(w, obs, progress),
        },
        Some(Update::Job(ev)) => {
            if let watcher::Event::InitApply(job) | watcher::Event::Apply(job) = *ev {
                on_job(&job, w, obs, progress);
            }
        }
        Some(Update::Template(ev)) => {
            if let watcher::Event::InitApply(job) | watcher::Event::Apply(job) = *ev {
                on_template(&job, obs);
            }
        }
        Some(Update::Error(e)) => {
            if let Some(api) = api_error(&e)
                && (api.code == 403 || api.code == 401)
            {
                progress.clear();
                return Err(anyhow!(
                    "cannot watch namespace {} and its jobs: {}\n  hint: waiting needs list/watch on the namespace and on jobs; check with `kubectl auth can-i watch jobs -n {}`",
                    w.namespace,
                    api.message,
                    w.namespace
                ));
            }
            let msg = e.to_string();
            if msg != st.last_error {
                progress.line(&format!("watch interrupted, retrying: {msg}"));
                st.last_error = msg;
            }
        }
    }
    Ok(())
}

/// Watches until `verdict` says it is over, the deadline passes, or a watch fails for good.
pub async fn wait<F>(w: &Watch, obs: &mut Observed, progress: &mut Progress, mut verdict: F) -> anyhow::Result<String>
where
    F: FnMut(&Observed) -> Verdict,
{
    let started = Instant::now();
    let mut updates = updates(w, obs);
    let mut tick = tokio::time::interval(if progress.is_tty() { Duration::from_millis(150) } else { Duration::from_secs(1) });
    let deadline = tokio::time::sleep_until(tokio::time::Instant::from_std(w.deadline));
    tokio::pin!(deadline);
    let mut st = WatchState::default();
    if obs.status.is_none() {
        obs.status = w.baseline_status.clone();
    }
    loop {
        tokio::select! {
            _ = &mut deadline => {
                progress.clear();
                return Err(timed_out(&w.what, &w.hint, w.timeout, obs, w.watch_namespace));
            }
            _ = tick.tick() => progress.spinner(&obs.summary(w.watch_namespace)),
            update = updates.next() => apply(update, w, obs, progress, &mut st)?,
        }
        obs.elapsed = started.elapsed();
        match verdict(obs) {
            Verdict::Continue => {}
            Verdict::Done(msg) => {
                progress.clear();
                return Ok(msg);
            }
            Verdict::Fail(e) => {
                progress.clear();
                return Err(e);
            }
        }
    }
}

fn api_error(e: &watcher::Error) -> Option<&kube::core::Status> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => Some(s),
        _ => None,
    }
}

fn gone(w: &Watch, obs: &mut Observed, progress: &mut Progress) {
    if obs.namespace_exists != Some(false) {
        obs.namespace_exists = Some(false);
        progress.line(&format!("namespace {} is gone", w.namespace));
    }
}

fn on_namespace(ns: &Namespace, w: &Watch, obs: &mut Observed, progress: &mut Progress) {
    let env = environment::read(ns);
    if env.deleting && !obs.terminating {
        obs.terminating = true;
        progress.line(&format!("namespace {} is terminating", w.namespace));
    }
    obs.namespace_exists = Some(true);
    if env.status != obs.status {
        if let Some(s) = &env.status {
            progress.line(&format!("status: {s}"));
        }
        obs.status = env.status;
    }
    (obs.taken, obs.transition) = (env.observed, env.transition);
}

/// The controller's record of the template's runs, by run name.
fn on_template(template: &Job, obs: &mut Observed) {
    let records = jobs::last_runs(template).record;
    for slot in Slot::ALL {
        if let Some(r) = records.get(slot) {
            obs.records.insert(r.run.clone(), r.clone());
        }
    }
}

fn on_job(job: &Job, w: &Watch, obs: &mut Observed, progress: &mut Progress) {
    let uid = job.metadata.uid.clone().unwrap_or_default();
    if w.before.contains(&uid) {
        return;
    }
    if w.event.is_some() && jobs::run_event(job) != w.event {
        return;
    }
    let info = RunInfo::from_job(job);
    let event = info.event.map(|e| e.to_string()).unwrap_or_else(|| "?".into());
    let previous = obs.runs.get(&info.name).map(|r| r.state.phase);
    if previous.is_none() {
        progress.line(&format!("run {} created (lifecycle job {}, event {event})", info.name, info.template));
    }
    if previous != Some(info.state.phase) {
        let took = match (info.state.started, info.state.finished) {
            (Some(s), Some(f)) => {
                format!(" in {}", human_duration(Duration::from_secs((f.as_second() - s.as_second()).max(0) as u64)))
            }
            _ => String::new(),
        };
        match info.state.phase {
            Phase::Running if previous.is_some() || info.state.started.is_some() => {
                progress.line(&format!("run {} running", info.name))
            }
            Phase::Succeeded if obs.records_watched => progress.line(&format!(
                "run {}: its pods succeeded{took}; waiting for lifecycle-jobs to record its outcome (its outputs published)",
                info.name
            )),
            Phase::Succeeded => progress.line(&format!("run {} succeeded{took}", info.name)),
            Phase::Failed => progress.line(&format!(
                "run {} failed{took}: {}",
                info.name,
                info.state.reason.as_deref().unwrap_or("no reason given")
            )),
            _ => {}
        }
    }
    obs.runs.insert(info.name.clone(), info);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, phase: Phase) -> RunInfo {
        RunInfo {
            name: name.into(),
            template: "seed".into(),
            event: Some(Event::Start),
            state: JobState { phase, reason: Some("BackoffLimitExceeded".into()), message: None, started: None, finished: None },
            created: None,
        }
    }

    fn goal(target: Target, baseline_seq: u64, expected_runs: usize) -> TransitionGoal {
        TransitionGoal {
            namespace: "env".into(),
            target,
            event: match target {
                Target::Started => Event::Start,
                Target::Stopped => Event::Stop,
                Target::Gone => Event::Delete,
            },
            baseline_seq,
            deploy_id: None,
            expected_runs,
        }
    }

    /// What the namespace says: `observed` (seq, state) and the transition in flight, if any.
    fn obs(seq: u64, state: WantedState, in_flight: Option<Event>, runs: &[RunInfo]) -> Observed {
        Observed {
            namespace_exists: Some(true),
            status: None,
            taken: Some(Taken { seq, state: Some(state), deploy_id: None }),
            transition: in_flight.map(|e| Transition::new(seq, e)),
            terminating: false,
            runs: runs.iter().map(|r| (r.name.clone(), r.clone())).collect(),
            records: BTreeMap::new(),
            records_watched: false,
            elapsed: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_forced_run_has_succeeded_only_once_the_controller_recorded_it() {
        let record = |result: RunResult| RunRecord {
            event: Some(Event::Stop),
            run: "a".into(),
            occurrence: "force-1".into(),
            result,
            reason: (result == RunResult::Failed).then(|| "OutputsNotPublished".into()),
            message: (result == RunResult::Failed).then(|| "outputs not published: the agent could not reach the server".into()),
            time: "2026-01-01T00:00:00Z".into(),
        };
        let mut o = obs(1, WantedState::Started, None, &[run("a", Phase::Succeeded)]);
        o.records_watched = true;
        // Its pods succeeded, but nothing is recorded yet (the server may be away): not over.
        assert!(matches!(run_verdict("env", &o, true), Verdict::Continue));
        o.records.insert("a".into(), record(RunResult::Running));
        assert!(matches!(run_verdict("env", &o, true), Verdict::Continue));
        // The controller's verdict decides, lost outputs included.
        o.records.insert("a".into(), record(RunResult::Failed));
        let Verdict::Fail(e) = run_verdict("env", &o, true) else { panic!("should fail") };
        let text = format!("{e:#}");
        assert!(text.contains("OutputsNotPublished: outputs not published"), "{text}");
        o.records.insert("a".into(), record(RunResult::Succeeded));
        assert!(matches!(run_verdict("env", &o, true), Verdict::Done(n) if n == "a"));
        // A failed Job has failed, whatever is recorded yet.
        let mut f = obs(1, WantedState::Started, None, &[run("a", Phase::Failed)]);
        f.records_watched = true;
        assert!(matches!(run_verdict("env", &f, true), Verdict::Fail(_)));
    }

    fn is_done(v: Verdict) -> bool {
        matches!(v, Verdict::Done(_))
    }

    #[test]
    fn stop_ends_when_stopped_is_taken_in_and_nothing_is_in_flight() {
        let g = goal(Target::Stopped, 4, 1);
        assert!(matches!(transition_verdict(&g, &obs(4, WantedState::Started, None, &[])), Verdict::Continue));
        let running = [run("a", Phase::Running)];
        assert!(matches!(transition_verdict(&g, &obs(5, WantedState::Stopped, Some(Event::Stop), &running)), Verdict::Continue));
        assert!(is_done(transition_verdict(&g, &obs(5, WantedState::Stopped, None, &[run("a", Phase::Succeeded)]))));
    }

    #[test]
    fn redeploy_of_a_started_environment_waits_for_a_new_occurrence() {
        // Already started at occurrence 4: not done until occurrence 5 is taken in and over.
        let g = goal(Target::Started, 4, 1);
        assert!(matches!(transition_verdict(&g, &obs(4, WantedState::Started, None, &[])), Verdict::Continue));
        assert!(matches!(transition_verdict(&g, &obs(5, WantedState::Started, Some(Event::Start), &[])), Verdict::Continue));
        assert!(is_done(transition_verdict(&g, &obs(5, WantedState::Started, None, &[run("a", Phase::Succeeded)]))));
        // The deploy-id it set must be the one taken in.
        let mut g = goal(Target::Started, 4, 0);
        g.deploy_id = Some("v2".into());
        let mut o = obs(5, WantedState::Started, None, &[]);
        assert!(matches!(transition_verdict(&g, &o), Verdict::Continue));
        o.taken.as_mut().unwrap().deploy_id = Some("v2".into());
        assert!(is_done(transition_verdict(&g, &o)));
        // Nothing to do at all: the resting state is believed after SETTLE.
        let g0 = goal(Target::Started, 4, 0);
        let mut o = obs(4, WantedState::Started, None, &[]);
        assert!(matches!(transition_verdict(&g0, &o), Verdict::Continue));
        o.elapsed = SETTLE;
        assert!(is_done(transition_verdict(&g0, &o)));
    }

    #[test]
    fn a_failed_run_fails_the_wait_with_a_logs_hint() {
        let g = goal(Target::Started, 1, 1);
        let failed = [run("seed-start-1", Phase::Failed)];
        let Verdict::Fail(e) = transition_verdict(&g, &obs(2, WantedState::Started, Some(Event::Start), &failed)) else {
            panic!("should fail")
        };
        let text = format!("{e:#}");
        assert!(text.contains("run seed-start-1 of lifecycle job seed failed (BackoffLimitExceeded)"), "{text}");
        assert!(text.contains("kubectl lifecycle logs seed --event start -n env"), "{text}");
    }

    #[test]
    fn a_held_start_failure_fails_with_the_way_out() {
        let g = goal(Target::Started, 1, 0);
        let mut o = obs(2, WantedState::Started, Some(Event::Start), &[]);
        o.transition.as_mut().unwrap().failed = Some(lifecycle_contract::transition::StartFailure {
            stage: 1,
            jobs: vec!["create-db".into()],
            reason: Some("BackoffLimitExceeded".into()),
        });
        let Verdict::Fail(e) = transition_verdict(&g, &o) else { panic!("should fail") };
        let text = format!("{e:#}");
        assert!(text.contains("failed at stage 1: create-db failed") && text.contains("env redeploy env"), "{text}");
    }

    #[test]
    fn delete_ends_when_the_namespace_is_gone() {
        let g = goal(Target::Gone, 1, 1);
        let ran = [run("a", Phase::Succeeded)];
        assert!(matches!(transition_verdict(&g, &obs(2, WantedState::Deleted, Some(Event::Delete), &ran)), Verdict::Continue));
        let mut o = obs(2, WantedState::Deleted, None, &ran);
        o.namespace_exists = Some(false);
        let Verdict::Done(msg) = transition_verdict(&g, &o) else { panic!("should be done") };
        assert_eq!(msg, "environment env is deleted: namespace gone (1 delete run succeeded)");
    }

    #[test]
    fn forced_runs() {
        let none = obs(1, WantedState::Started, None, &[]);
        assert!(matches!(run_verdict("env", &none, true), Verdict::Continue));
        let running = obs(1, WantedState::Started, None, &[run("a", Phase::Running)]);
        assert!(matches!(run_verdict("env", &running, false), Verdict::Done(n) if n == "a"));
        assert!(matches!(run_verdict("env", &running, true), Verdict::Continue));
        assert!(matches!(
            run_verdict("env", &obs(1, WantedState::Started, None, &[run("a", Phase::Succeeded)]), true),
            Verdict::Done(_)
        ));
        assert!(matches!(
            run_verdict("env", &obs(1, WantedState::Started, None, &[run("a", Phase::Failed)]), true),
            Verdict::Fail(_)
        ));
    }

    #[test]
    fn a_timeout_says_what_was_waited_for_where_it_is_and_what_to_do() {
        let mut o = obs(2, WantedState::Stopped, Some(Event::Stop), &[run("a", Phase::Running), run("b", Phase::Succeeded)]);
        o.status = Some("stopping".into());
        let e = timed_out("environment env to be stopped", "look at it", Duration::from_secs(90), &o, true).to_string();
        assert_eq!(
            e,
            "timed out after 90s waiting for environment env to be stopped (status: stopping; runs: 1 running, 1 succeeded; \
             runs not finished: a)\n  hint: look at it"
        );
    }

    #[test]
    fn summaries() {
        let mut o = obs(2, WantedState::Stopped, Some(Event::Stop), &[run("a", Phase::Running), run("b", Phase::Succeeded)]);
        o.status = Some("stopping: 1/2".into());
        assert_eq!(o.summary(true), "status: stopping: 1/2; runs: 1 running, 1 succeeded");
        assert_eq!(o.summary(false), "runs: 1 running, 1 succeeded");
        assert_eq!(obs(1, WantedState::Started, None, &[]).summary(true), "status: (none yet); no run yet");
    }
}
