//! What a Job is to lifecycle-jobs, read from its metadata in one place: its
//! kind ([`kind`]), whether it captures its outputs ([`captures`]), its JOBID
//! and where that comes from ([`job_id`]), the JOBID it holds in its
//! environment and on whose behalf ([`claim`]), a template's record of runs
//! ([`last_runs`]), `stage` ([`stage`]) and `force-run` ([`force_run`]), and
//! how it ended ([`outcome`], the contract's rule in [`crate::run`]).
//!
//! The readers take an [`ObjectMeta`], so that the server's slim watched types
//! (metadata only, a few annotations kept) and whole Jobs read alike. The
//! rules themselves are written once, over the few values they read
//! ([`JobFacts`]): admission's one-pass reader, which never decodes a whole
//! object, fills a [`JobFacts`] from the request's raw JSON and applies the
//! very same rules.
//!
//! The rules (`docs/contract.md`, DESIGN's Jobs section):
//! - a Job labelled `run` is a run of the template that controls it (a Job,
//!   as controller owner); admission admits the label only on a Job the server
//!   creates under a template of the same environment, so a stored one is
//!   trusted. Labelled `run` with no Job controlling it (its owner reference
//!   removed since), it is a [`JobKind::StrayRun`]: no run, and no claimant;
//! - else a Job with annotation `on` is a lifecycle template;
//! - else a Job controlled by a CronJob is that CronJob's;
//! - else it is a plain Job.
//!
//! Capture is another question than the kind: a template or a run may opt out
//! of capture (`capture-output: "false"`) and still runs on its events.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::event::UnknownEvent;
use crate::last_runs::{LastRuns, Slot};
use crate::names::{
    ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_FORCE_RUN, ANNOTATION_JOB_ID, ANNOTATION_LAST_RUNS, ANNOTATION_ON, ANNOTATION_STAGE,
    LABEL_EVENT, LABEL_JOB, LABEL_RUN, opts_out,
};
use crate::run::Outcome;
use crate::{Event, JobId};

/// The object that controls a Job: its owner reference with `controller: true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Controller<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// The template a run was created from (its controller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateRef<'a> {
    pub name: &'a str,
    pub uid: &'a str,
}

/// A run of a template: what the controller wrote on it when it created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOf<'a> {
    /// The template that controls it.
    pub template: TemplateRef<'a>,
    /// Label `event`; `None` when missing or not an event.
    pub event: Option<Event>,
    /// Label `run`: the event occurrence (the environment's `seq`, or `force-<n>` for a forced run).
    pub occurrence: &'a str,
}

impl RunOf<'_> {
    /// Where its template records it: [`Slot::Force`] for a forced run
    /// (occurrence `force-<n>`), else its event's slot; `None` when the
    /// event label does not name an event.
    pub fn slot(&self) -> Option<Slot> {
        if self.occurrence.starts_with("force-") {
            return Some(Slot::Force);
        }
        self.event.map(Slot::Env)
    }
}

/// What a Job is to lifecycle-jobs (see the module's doc for the rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind<'a> {
    /// A lifecycle template (annotation `on`): the events it runs on, or why
    /// `on` does not read (admission refuses such a Job; a watch that cut a
    /// too long value keeps it unreadable).
    Template { events: Result<Vec<Event>, UnknownEvent> },
    /// A run the controller created from a template.
    Run(RunOf<'a>),
    /// A Job of a CronJob (`kubectl create job --from=cronjob/…` included): its Jobs share the CronJob's JOBID.
    CronJob { cron_job: &'a str },
    /// Any other Job of an environment.
    Plain,
    /// Labelled `run`, but no Job controls it: no run (admission never admits
    /// one; its owner reference was removed since). It runs nothing and holds no JOBID.
    StrayRun,
}

impl JobKind<'_> {
    /// A template or one of its runs: what the environment controller acts on.
    pub fn is_lifecycle(&self) -> bool {
        matches!(self, JobKind::Template { .. } | JobKind::Run(_))
    }

    /// A template whose `on` reads: what admission's index keeps as one
    /// (a run must be controlled by one).
    pub fn template_events(&self) -> Option<&[Event]> {
        match self {
            JobKind::Template { events: Ok(events) } => Some(events),
            _ => None,
        }
    }
}

/// Where a Job's JOBID comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobIdRead {
    /// Recorded in annotation `job-id`: what admission decided (normalised, so
    /// a recorded JOBID reads as itself). Every Job admitted in an environment
    /// and capturing its outputs has one.
    Recorded(JobId),
    /// Nothing recorded yet (a Job opted out of capture, or admitted before
    /// admission recorded JOBIDs): derived from the name the rule names
    /// ([`JobFacts::job_id_source`]).
    Derived(JobId),
}

impl JobIdRead {
    pub fn id(&self) -> &JobId {
        match self {
            JobIdRead::Recorded(id) | JobIdRead::Derived(id) => id,
        }
    }
    pub fn into_id(self) -> JobId {
        match self {
            JobIdRead::Recorded(id) | JobIdRead::Derived(id) => id,
        }
    }
    pub fn recorded(&self) -> Option<&JobId> {
        match self {
            JobIdRead::Recorded(id) => Some(id),
            JobIdRead::Derived(_) => None,
        }
    }
}

/// Who holds a JOBID in an environment. A run counts as its template and
/// claims nothing; the Jobs of one CronJob all count as that CronJob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Claimant {
    /// A Job by its name (empty for a `generateName` Job not yet named).
    Job(String),
    /// The Jobs of a CronJob, by the CronJob's name.
    CronJob(String),
}

impl Claimant {
    /// How a person finds the claimant: `Job "seed"`, `CronJob "nightly"`.
    pub fn describe(&self) -> String {
        match self {
            Claimant::Job(n) => format!("Job {n:?}"),
            Claimant::CronJob(n) => format!("CronJob {n:?}"),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Claimant::Job(n) | Claimant::CronJob(n) => n,
        }
    }
}

/// The JOBID a Job holds in its environment, and on whose behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub job_id: JobIdRead,
    pub claimant: Claimant,
}

/// The `force-run` annotation of a template: its value, and the event it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForceRun<'a> {
    pub value: &'a str,
    pub event: Result<Event, UnknownEvent>,
}

/// A template's `last-runs` as the controller reads it: an annotation that
/// does not read counts as no record, and says why in `problem`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastRunsRead {
    pub record: LastRuns,
    /// Why the annotation does not read (for logs and people; never a value of the Job's outputs).
    pub problem: Option<String>,
}

/// The values of a Job's metadata the rules read. [`JobFacts::of`] fills it
/// from an [`ObjectMeta`]; admission fills it from the raw request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobFacts<'a> {
    /// Its name; for a `generateName` Job not named yet, the prefix (see [`job_name`]).
    pub name: &'a str,
    /// Annotation `on`.
    pub on: Option<&'a str>,
    /// Annotation `job-id`.
    pub job_id: Option<&'a str>,
    /// Annotation `capture-output`.
    pub capture_output: Option<&'a str>,
    /// Label `run`.
    pub run: Option<&'a str>,
    /// Label `job` (a run's template's name).
    pub template: Option<&'a str>,
    /// Label `event`.
    pub event: Option<&'a str>,
    pub controller: Option<Controller<'a>>,
}

/// The name a Job goes by before and after the API server names it: its
/// name, else its `generateName` prefix without the trailing `-`.
pub fn job_name<'a>(name: Option<&'a str>, generate_name: Option<&'a str>) -> &'a str {
    match (name, generate_name) {
        (Some(n), _) if !n.is_empty() => n,
        (_, Some(g)) => g.trim_end_matches('-'),
        _ => "",
    }
}

impl<'a> JobFacts<'a> {
    /// The facts of a Job's metadata.
    pub fn of(meta: &'a ObjectMeta) -> JobFacts<'a> {
        let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).map(String::as_str);
        let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str);
        JobFacts {
            name: job_name(meta.name.as_deref(), meta.generate_name.as_deref()),
            on: annotation(ANNOTATION_ON),
            job_id: annotation(ANNOTATION_JOB_ID),
            capture_output: annotation(ANNOTATION_CAPTURE_OUTPUT),
            run: label(LABEL_RUN),
            template: label(LABEL_JOB),
            event: label(LABEL_EVENT),
            controller: controller(meta),
        }
    }

    /// The rule of [`kind`].
    pub fn kind(&self) -> JobKind<'a> {
        if let Some(occurrence) = self.run {
            return match self.controller {
                Some(c) if c.kind == "Job" => JobKind::Run(RunOf {
                    template: TemplateRef { name: c.name, uid: c.uid },
                    event: self.event.and_then(|e| e.parse().ok()),
                    occurrence,
                }),
                _ => JobKind::StrayRun,
            };
        }
        if let Some(on) = self.on {
            return JobKind::Template { events: Event::parse_list(on) };
        }
        match self.controller {
            Some(c) if c.kind == "CronJob" => JobKind::CronJob { cron_job: c.name },
            _ => JobKind::Plain,
        }
    }

    /// The rule of [`captures`].
    pub fn captures(&self) -> bool {
        !opts_out(self.capture_output)
    }

    /// On whose behalf a Job would hold a JOBID, whether or not it captures:
    /// `None` for anything labelled `run` (a run counts as its template); the
    /// CronJob that controls it (a template one would make included, as
    /// admission decides); else the Job itself by [`JobFacts::name`].
    pub fn claimant(&self) -> Option<Claimant> {
        if self.run.is_some() {
            return None;
        }
        Some(match self.controller {
            Some(c) if c.kind == "CronJob" => Claimant::CronJob(c.name.to_string()),
            _ => Claimant::Job(self.name.to_string()),
        })
    }

    /// The name a JOBID is derived from when none is recorded: for a Job
    /// labelled `run`, its template's (label `job`, else its controller's);
    /// for a CronJob's Job, the CronJob's; else the Job's own
    /// ([`JobFacts::name`]). Admission decides from it ([`JobId::decide`]).
    pub fn job_id_source(&self) -> &'a str {
        if self.run.is_some() {
            return self.template.filter(|t| !t.is_empty()).or(self.controller.map(|c| c.name)).unwrap_or(self.name);
        }
        match self.controller {
            Some(c) if c.kind == "CronJob" => c.name,
            _ => self.name,
        }
    }

    /// The rule of [`job_id`].
    pub fn job_id(&self) -> JobIdRead {
        match self.job_id.filter(|v| !v.trim().is_empty()) {
            Some(recorded) => JobIdRead::Recorded(JobId::derive(Some(recorded), self.name)),
            None => JobIdRead::Derived(JobId::derive(None, self.job_id_source())),
        }
    }

    /// The rule of [`claim`].
    pub fn claim(&self) -> Option<Claim> {
        if !self.captures() {
            return None;
        }
        Some(Claim { claimant: self.claimant()?, job_id: self.job_id() })
    }
}

/// The owner that controls an object.
pub fn controller(meta: &ObjectMeta) -> Option<Controller<'_>> {
    meta.owner_references.as_deref().unwrap_or_default().iter().find(|o| o.controller == Some(true)).map(|o| Controller {
        kind: o.kind.as_str(),
        name: o.name.as_str(),
        uid: o.uid.as_str(),
    })
}

/// Whether a pod is a run's, from its label `run`: the controller puts the
/// label on a run's pod template, so the run's pods carry it. Admission never
/// gates them: they are what the environment's gated pods wait for.
pub fn pod_of_a_run(run_label: Option<&str>) -> bool {
    run_label.is_some()
}

/// What a Job is: a template, a run, a CronJob's Job, a plain Job (see the module's doc).
pub fn kind(meta: &ObjectMeta) -> JobKind<'_> {
    JobFacts::of(meta).kind()
}

/// Whether a Job's outputs are captured: not when it opts out (annotation
/// `capture-output: "false"`, [`opts_out`]).
pub fn captures(meta: &ObjectMeta) -> bool {
    JobFacts::of(meta).captures()
}

/// A Job's JOBID: the recorded one when there is one, else the one its name
/// gives ([`JobIdRead`] says which).
pub fn job_id(meta: &ObjectMeta) -> JobIdRead {
    JobFacts::of(meta).job_id()
}

/// The JOBID a Job holds in its environment and for whom: `None` when it holds
/// none (opted out of capture, a run, a [`JobKind::StrayRun`]).
pub fn claim(meta: &ObjectMeta) -> Option<Claim> {
    JobFacts::of(meta).claim()
}

/// A template's record of its runs (annotation `last-runs`); absent or blank
/// is no record, and one that does not read is no record with a problem.
pub fn last_runs(meta: &ObjectMeta) -> LastRunsRead {
    let value = meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION_LAST_RUNS)).map(String::as_str);
    match crate::annotation::parse_json::<LastRuns>(value) {
        Ok(record) => LastRunsRead { record: record.unwrap_or_default(), problem: None },
        Err(e) => LastRunsRead {
            record: LastRuns::default(),
            problem: Some(format!("annotation {ANNOTATION_LAST_RUNS} is unreadable ({e}); ignored")),
        },
    }
}

/// A template's `stage` (default 0), or why it is not an integer
/// ([`crate::transition::parse_stage`]).
pub fn stage(meta: &ObjectMeta) -> Result<i32, String> {
    crate::transition::parse_stage(meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION_STAGE)).map(String::as_str))
}

/// A template's `force-run` request, if any.
pub fn force_run(meta: &ObjectMeta) -> Option<ForceRun<'_>> {
    let value = meta.annotations.as_ref()?.get(ANNOTATION_FORCE_RUN)?;
    Some(ForceRun { value, event: value.parse() })
}

/// How a Job ended, once it has: the contract's one rule ([`crate::run::outcome`]),
/// a `Complete` Job whose outputs were not published included.
pub fn outcome(job: &Job) -> Option<Outcome> {
    crate::run::outcome(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(name: &str, annotations: &[(&str, &str)], labels: &[(&str, &str)], owner: Option<(&str, &str)>) -> ObjectMeta {
        let map = |p: &[(&str, &str)]| Some(p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        ObjectMeta {
            name: Some(name.into()),
            annotations: map(annotations),
            labels: map(labels),
            owner_references: owner.map(|(kind, n)| {
                vec![
                    OwnerReference { kind: "Deployment".into(), name: "not-controller".into(), ..Default::default() },
                    OwnerReference {
                        kind: kind.into(),
                        name: n.into(),
                        uid: format!("uid-{n}"),
                        controller: Some(true),
                        ..Default::default()
                    },
                ]
            }),
            ..Default::default()
        }
    }

    fn run(occurrence: &str, event: &str) -> ObjectMeta {
        meta(
            "seed-start-x1",
            &[(ANNOTATION_JOB_ID, "SEED_V2")],
            &[(LABEL_RUN, occurrence), (LABEL_EVENT, event), (LABEL_JOB, "seed")],
            Some(("Job", "seed")),
        )
    }

    #[test]
    fn each_kind() {
        let t = meta("seed", &[(ANNOTATION_ON, "start, stop")], &[], None);
        assert_eq!(kind(&t), JobKind::Template { events: Ok(vec![Event::Start, Event::Stop]) });
        assert_eq!(kind(&t).template_events(), Some(&[Event::Start, Event::Stop][..]));
        let bad = meta("seed", &[(ANNOTATION_ON, "deploy")], &[], None);
        assert!(matches!(kind(&bad), JobKind::Template { events: Err(_) }));
        assert_eq!(kind(&bad).template_events(), None, "an unreadable on makes no template for admission");

        let r = run("3", "start");
        let JobKind::Run(of) = kind(&r) else { panic!("{:?}", kind(&r)) };
        assert_eq!(of.template, TemplateRef { name: "seed", uid: "uid-seed" });
        assert_eq!((of.event, of.occurrence, of.slot()), (Some(Event::Start), "3", Some(Slot::Env(Event::Start))));
        let forced = run("force-2", "stop");
        let JobKind::Run(of) = kind(&forced) else { panic!() };
        assert_eq!(of.slot(), Some(Slot::Force));
        let unknown = run("3", "deploy");
        let JobKind::Run(of) = kind(&unknown) else { panic!() };
        assert_eq!((of.event, of.slot()), (None, None));
        // The `run` label wins over `on`: a run is no template.
        let mut both = run("3", "start");
        both.annotations.as_mut().unwrap().insert(ANNOTATION_ON.into(), "start".into());
        assert!(matches!(kind(&both), JobKind::Run(_)));

        let cron = meta("nightly-2911", &[], &[], Some(("CronJob", "nightly")));
        assert_eq!(kind(&cron), JobKind::CronJob { cron_job: "nightly" });
        assert_eq!(kind(&meta("seed", &[], &[], None)), JobKind::Plain);
        assert_eq!(kind(&meta("seed", &[], &[], Some(("Deployment", "web")))), JobKind::Plain);
        // Labelled `run` with no Job as controller: no run.
        assert_eq!(kind(&meta("x", &[], &[(LABEL_RUN, "1")], None)), JobKind::StrayRun);
        assert_eq!(kind(&meta("x", &[], &[(LABEL_RUN, "1")], Some(("CronJob", "c")))), JobKind::StrayRun);

        assert!(kind(&t).is_lifecycle() && kind(&r).is_lifecycle());
        assert!(!kind(&cron).is_lifecycle() && !kind(&meta("x", &[], &[(LABEL_RUN, "1")], None)).is_lifecycle());
    }

    #[test]
    fn capture_is_another_question_than_the_kind() {
        let t = meta("seed", &[(ANNOTATION_ON, "start"), (ANNOTATION_CAPTURE_OUTPUT, " False ")], &[], None);
        assert!(matches!(kind(&t), JobKind::Template { events: Ok(_) }), "an opted-out template still runs");
        assert!(!captures(&t));
        assert_eq!(claim(&t), None);
        assert!(captures(&meta("seed", &[(ANNOTATION_CAPTURE_OUTPUT, "true")], &[], None)));
    }

    #[test]
    fn each_job_id_source() {
        // Recorded: what admission decided, whatever the names.
        let recorded = job_id(&meta("seed", &[(ANNOTATION_JOB_ID, "zf138d9c8")], &[], Some(("CronJob", "nightly"))));
        assert_eq!(recorded, JobIdRead::Recorded(JobId::parse("ZF138D9C8").unwrap()));
        assert_eq!(job_id(&run("3", "start")), JobIdRead::Recorded(JobId::parse("SEED_V2").unwrap()));
        // Nothing recorded (blank counts as nothing): derived from the name the rule names.
        let derived = |m: &ObjectMeta| match job_id(m) {
            JobIdRead::Derived(id) => id.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(derived(&meta("seed-db", &[(ANNOTATION_JOB_ID, " ")], &[], None)), "SEED_DB");
        assert_eq!(derived(&meta("t", &[(ANNOTATION_ON, "start")], &[], None)), "T");
        assert_eq!(derived(&meta("nightly-2911", &[], &[], Some(("CronJob", "nightly")))), "NIGHTLY");
        assert_eq!(derived(&meta("seed-start-x1", &[], &[(LABEL_RUN, "3"), (LABEL_JOB, "seed")], None)), "SEED");
        assert_eq!(derived(&meta("seed-start-x1", &[], &[(LABEL_RUN, "3")], Some(("Job", "tpl")))), "TPL");
        let mut unnamed = meta("", &[], &[], None);
        unnamed.generate_name = Some("seed-".into());
        assert_eq!(derived(&unnamed), "SEED");
        assert_eq!(job_name(Some(""), Some("a-b-")), "a-b");
        assert_eq!(job_name(None, None), "");
    }

    #[test]
    fn claims() {
        let c = claim(&meta("seed", &[(ANNOTATION_JOB_ID, "SEED")], &[], None)).unwrap();
        assert_eq!((c.claimant, c.job_id.id().as_str()), (Claimant::Job("seed".into()), "SEED"));
        let c = claim(&meta("nightly-1", &[], &[], Some(("CronJob", "nightly")))).unwrap();
        assert_eq!((c.claimant.describe(), c.job_id.id().as_str()), ("CronJob \"nightly\"".into(), "NIGHTLY"));
        assert_eq!(claim(&run("3", "start")), None, "a run counts as its template");
        assert_eq!(claim(&meta("x", &[], &[(LABEL_RUN, "1")], None)), None);
    }

    #[test]
    fn last_runs_stage_and_force_run() {
        let none = meta("seed", &[(ANNOTATION_ON, "start")], &[], None);
        assert_eq!(last_runs(&none), LastRunsRead::default());
        assert_eq!((stage(&none), force_run(&none)), (Ok(0), None));

        let text = r#"{"start":{"run":"seed-start-a","occurrence":"3","result":"succeeded","time":"t"}}"#;
        let read = last_runs(&meta("seed", &[(ANNOTATION_LAST_RUNS, text), (ANNOTATION_STAGE, " -2 ")], &[], None));
        assert_eq!((read.record.start.unwrap().run.as_str(), read.problem), ("seed-start-a", None));
        assert_eq!(last_runs(&meta("s", &[(ANNOTATION_LAST_RUNS, "  ")], &[], None)), LastRunsRead::default());
        let broken = last_runs(&meta("s", &[(ANNOTATION_LAST_RUNS, "not json")], &[], None));
        assert_eq!(broken.record, LastRuns::default());
        assert!(broken.problem.unwrap().contains("annotation lifecycle-jobs.dev/last-runs is unreadable"));

        let m = meta("s", &[(ANNOTATION_STAGE, "two"), (ANNOTATION_FORCE_RUN, "Stop")], &[], None);
        assert!(stage(&m).unwrap_err().contains("not an integer"));
        assert_eq!(force_run(&m), Some(ForceRun { value: "Stop", event: Ok(Event::Stop) }));
        let m = meta("s", &[(ANNOTATION_FORCE_RUN, "deploy")], &[], None);
        assert!(force_run(&m).unwrap().event.is_err());
        assert_eq!(stage(&meta("s", &[(ANNOTATION_STAGE, " -2 ")], &[], None)), Ok(-2));
    }

    #[test]
    fn outcome_is_the_contracts_rule() {
        use crate::names::ANNOTATION_OUTPUTS;
        use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
        let mut job = Job::default();
        assert_eq!(outcome(&job), None);
        job.status = Some(JobStatus {
            conditions: Some(vec![JobCondition { type_: "Complete".into(), status: "True".into(), ..Default::default() }]),
            ..Default::default()
        });
        assert!(outcome(&job).unwrap().succeeded);
        job.metadata.annotations = Some([(ANNOTATION_OUTPUTS.to_string(), "outputs not published: x".to_string())].into());
        assert!(!outcome(&job).unwrap().succeeded, "lost outputs fail a complete Job");
    }
}
