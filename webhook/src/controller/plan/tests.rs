//! The planner on hand-made snapshots. (Whole lives, with crashes, are in
//! `reconcile/tests.rs`.)

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lifecycle_contract::names::{
    ANNOTATION_FORCE_RUN, ANNOTATION_LAST_RUNS, ANNOTATION_OBSERVED, ANNOTATION_ON, ANNOTATION_STATUS, ANNOTATION_TRANSITION,
    LABEL_ENVIRONMENT, LABEL_EVENT, LABEL_JOB, LABEL_RUN, LABEL_STATE,
};

use super::*;

const NOW: &str = "2025-01-01T00:00:00Z";

fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn namespace(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
    let mut l = map(labels).unwrap();
    l.insert(LABEL_ENVIRONMENT.into(), String::new());
    Namespace {
        metadata: ObjectMeta {
            name: Some("env1".into()),
            uid: Some("ns-uid".into()),
            resource_version: Some("10".into()),
            labels: Some(l),
            annotations: map(annotations),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn template(name: &str, on: &str, annotations: &[(&str, &str)]) -> Job {
    let mut a = map(annotations).unwrap();
    a.insert(ANNOTATION_ON.into(), on.into());
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("env1".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("5".into()),
            annotations: Some(a),
            finalizers: Some(vec![FINALIZER_OUTPUTS_CLEANUP.into()]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            suspend: Some(true),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    containers: vec![Container { name: "main".into(), ..Default::default() }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn records(json: &str) -> (&'static str, String) {
    (ANNOTATION_LAST_RUNS, json.to_string())
}

fn with(mut job: Job, extra: (&str, String)) -> Job {
    job.metadata.annotations.get_or_insert_default().insert(extra.0.into(), extra.1);
    job
}

fn ns_steps(p: &Plan) -> Vec<NsStep> {
    p.steps.iter().filter_map(|s| if let Step::Namespace(n) = s { Some(n.clone()) } else { None }).collect()
}

fn template_steps(p: &Plan) -> Vec<TemplateStep> {
    p.steps.iter().filter_map(|s| if let Step::Template(t) = s { Some((**t).clone()) } else { None }).collect()
}

#[test]
fn a_new_environment_takes_the_start_event() {
    let s = Snapshot::new(&namespace(&[], &[]), vec![template("seed", "start", &[])]);
    let p = plan(&s, NOW);
    assert_eq!(
        ns_steps(&p),
        vec![NsStep::Begin {
            observed: Observed { seq: 1, state: Some(WantedState::Started), deploy_id: None },
            transition: Transition::new(1, Event::Start),
        }]
    );
    assert!(p.busy);
}

#[test]
fn finalizers_come_before_anything() {
    let mut t = template("seed", "start", &[]);
    t.metadata.finalizers = Some(vec!["other/finalizer".into()]);
    let s = Snapshot::new(&namespace(&[], &[]), vec![t]);
    let p = plan(&s, NOW);
    let steps = template_steps(&p);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].finalizers, Some(vec!["other/finalizer".to_string(), FINALIZER_OUTPUTS_CLEANUP.to_string()]));
    assert!(ns_steps(&p).is_empty());
}

#[test]
fn transition_runs_then_advances() {
    let ns = namespace(
        &[(LABEL_STATE, "stopped")],
        &[
            (ANNOTATION_OBSERVED, r#"{"seq":2,"state":"stopped"}"#),
            (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"stop","phase":"runs"}"#),
        ],
    );
    let a = template("a", "stop", &[]);
    let b = template("b", "start,stop", &[]);
    let c = template("c", "start", &[]);
    let p = plan(&Snapshot::new(&ns, vec![a.clone(), b.clone(), c.clone()]), NOW);
    assert_eq!(p.status, "stopping: 0/2 stop jobs done");
    let steps = template_steps(&p);
    assert_eq!(steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    for s in &steps {
        assert_eq!(s.creates.len(), 1);
        let run = &s.creates[0].job;
        assert_eq!(run.metadata.labels.as_ref().unwrap()[LABEL_RUN], "2");
        assert_eq!(run.metadata.labels.as_ref().unwrap()[LABEL_EVENT], "stop");
        let rec = s.records.as_ref().unwrap().stop.clone().unwrap();
        assert_eq!((rec.result, rec.occurrence.as_str()), (RunResult::Running, "2"));
        assert_eq!(Some(rec.run), run.metadata.name.clone());
        assert!(matches!(&s.reports[..], [Report::RunStarted { event: Event::Stop, forced: false, .. }]));
    }
    // No advance while runs are due; the progress is recorded for tools.
    let progress = Progress { stage: 0, index: 1, stages: 1, done: 0, total: 2 };
    let mut with_progress = Transition { phase: Phase::Runs, ..Transition::new(2, Event::Stop) };
    with_progress.progress = Some(progress);
    assert_eq!(ns_steps(&p), vec![NsStep::Update { transition: with_progress }]);

    // a succeeded, b failed: the stop goes on to scaling.
    let done = |j: Job, result: &str| {
        with(j, records(&format!(r#"{{"stop":{{"run":"x","occurrence":"2","result":"{result}","time":"t"}}}}"#)))
    };
    let p = plan(&Snapshot::new(&ns, vec![done(a, "succeeded"), done(b, "failed"), c]), NOW);
    assert_eq!(p.status, "stopped; stop jobs failed: b");
    assert_eq!(ns_steps(&p), vec![NsStep::Workloads { event: Event::Stop, scale: true, rollout: None }]);
}

#[test]
fn a_record_of_an_older_occurrence_does_not_count() {
    let ns = namespace(&[], &[(ANNOTATION_TRANSITION, r#"{"seq":5,"event":"start","phase":"runs"}"#)]);
    let t =
        with(template("a", "start", &[]), records(r#"{"start":{"run":"x","occurrence":"4","result":"succeeded","time":"t"}}"#));
    let p = plan(&Snapshot::new(&ns, vec![t]), NOW);
    assert_eq!(template_steps(&p)[0].creates[0].occurrence, "5");
}

#[test]
fn scale_and_delete_phases() {
    // Left by a version that took these phases one plan each: ended in one step.
    let scale = namespace(&[], &[(ANNOTATION_TRANSITION, r#"{"seq":3,"event":"start","phase":"scale"}"#)]);
    let p = plan(&Snapshot::new(&scale, vec![]), NOW);
    let end = NsStep::Workloads { event: Event::Start, scale: true, rollout: Some(Rollout::OnStart) };
    assert_eq!(ns_steps(&p), vec![end]);
    let rollout = namespace(&[], &[(ANNOTATION_TRANSITION, r#"{"seq":3,"event":"start","phase":"rollout"}"#)]);
    let p = plan(&Snapshot::new(&rollout, vec![]), NOW);
    assert_eq!(ns_steps(&p), vec![NsStep::Workloads { event: Event::Start, scale: false, rollout: Some(Rollout::OnStart) }]);

    let deleting =
        namespace(&[(LABEL_STATE, "deleted")], &[(ANNOTATION_TRANSITION, r#"{"seq":3,"event":"delete","phase":"delete"}"#)]);
    let p = plan(&Snapshot::new(&deleting, vec![]), NOW);
    assert_eq!(ns_steps(&p), vec![NsStep::DeleteNamespace]);

    let cancelled =
        namespace(&[(LABEL_STATE, "started")], &[(ANNOTATION_TRANSITION, r#"{"seq":3,"event":"delete","phase":"delete"}"#)]);
    let p = plan(&Snapshot::new(&cancelled, vec![]), NOW);
    assert_eq!(ns_steps(&p), vec![NsStep::CancelDelete { observed: Observed { seq: 3, state: None, deploy_id: None } }]);
}

#[test]
fn a_redeploy_while_stopped_is_only_recorded() {
    let ns = namespace(
        &[(LABEL_STATE, "stopped")],
        &[(ANNOTATION_OBSERVED, r#"{"seq":2,"state":"stopped","deployId":"v1"}"#), (ANNOTATION_DEPLOY_ID, "v2")],
    );
    let p = plan(&Snapshot::new(&ns, vec![template("a", "start", &[])]), NOW);
    assert_eq!(
        ns_steps(&p),
        vec![NsStep::Record { observed: Observed { seq: 2, state: Some(WantedState::Stopped), deploy_id: Some("v2".into()) } }]
    );
    assert!(template_steps(&p).is_empty());
}

#[test]
fn a_new_start_template_in_a_started_environment_runs_for_the_current_start() {
    let ns = namespace(&[], &[(ANNOTATION_OBSERVED, r#"{"seq":4,"state":"started"}"#), (ANNOTATION_STATUS, "started")]);
    let old =
        with(template("old", "start", &[]), records(r#"{"start":{"run":"x","occurrence":"4","result":"succeeded","time":"t"}}"#));
    let new = template("new", "start,stop", &[]);
    let stop_only = template("stopper", "stop", &[]);
    let p = plan(&Snapshot::new(&ns, vec![old.clone(), new.clone(), stop_only.clone()]), NOW);
    // The current start (occurrence 4) is taken up again...
    assert!(template_steps(&p).is_empty());
    let observed = Observed { seq: 4, state: Some(WantedState::Started), deploy_id: None };
    assert_eq!(ns_steps(&p), vec![NsStep::Begin { observed, transition: Transition::new(4, Event::Start) }]);
    assert!(p.busy);
    // ...and only the new template runs in it.
    let resumed = namespace(
        &[],
        &[
            (ANNOTATION_OBSERVED, r#"{"seq":4,"state":"started"}"#),
            (ANNOTATION_TRANSITION, r#"{"seq":4,"event":"start","phase":"runs"}"#),
        ],
    );
    let p = plan(&Snapshot::new(&resumed, vec![old, new, stop_only]), NOW);
    let steps = template_steps(&p);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].name, "new");
    assert_eq!(steps[0].creates[0].occurrence, "4");

    // In a stopped environment a new start template waits for the next start.
    let stopped = namespace(
        &[(LABEL_STATE, "stopped")],
        &[(ANNOTATION_OBSERVED, r#"{"seq":5,"state":"stopped"}"#), (ANNOTATION_STATUS, "stopped")],
    );
    let p = plan(&Snapshot::new(&stopped, vec![template("new", "start", &[])]), NOW);
    assert!(p.steps.is_empty());
    assert!(!p.busy);
}

#[test]
fn an_event_waits_for_runs_in_flight() {
    let ns = namespace(&[(LABEL_STATE, "stopped")], &[(ANNOTATION_OBSERVED, r#"{"seq":4,"state":"started"}"#)]);
    let running = with(
        template("seed", "start", &[]),
        records(r#"{"force":{"event":"start","run":"seed-start-x","occurrence":"force-1","result":"running","time":"t"}}"#),
    );
    let mut jobs = vec![running];
    // Its run exists and has not ended.
    jobs.push(Job {
        metadata: ObjectMeta {
            name: Some("seed-start-x".into()),
            labels: map(&[(LABEL_JOB, "seed"), (LABEL_EVENT, "start"), (LABEL_RUN, "force-1")]),
            owner_references: Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                uid: "uid-seed".into(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    });
    let p = plan(&Snapshot::new(&ns, jobs), NOW);
    assert_eq!(p.status, "started; running: seed (forced start); stop waits for running jobs: seed");
    assert_eq!(ns_steps(&p), vec![NsStep::Status(p.status.clone())]);
    assert!(p.busy);
}

#[test]
fn force_runs_are_claimed_with_the_annotation_cleared() {
    let ns = namespace(&[], &[(ANNOTATION_OBSERVED, r#"{"seq":1,"state":"started"}"#)]);
    let t = with(
        template("seed", "start,stop", &[(ANNOTATION_FORCE_RUN, "stop")]),
        records(
            r#"{"start":{"run":"x","occurrence":"1","result":"succeeded","time":"t"},"force":{"event":"stop","run":"y","occurrence":"force-3","result":"failed","time":"t"}}"#,
        ),
    );
    let p = plan(&Snapshot::new(&ns, vec![t]), NOW);
    let s = &template_steps(&p)[0];
    assert!(s.clear_force_run);
    assert!(s.creates.is_empty(), "claimed first, created by the next plan");
    let rec = s.records.as_ref().unwrap().force.clone().unwrap();
    assert_eq!((rec.event, rec.occurrence.as_str(), rec.result), (Some(Event::Stop), "force-4", RunResult::Pending));
    assert_eq!(rec.run, run_name("seed", Event::Stop, &suffix("uid-seed", Event::Stop, "force-4")));
    assert_eq!(s.resource_version, "5");

    // The next plan (record pending, no Job yet) creates it.
    let t2 = with(template("seed", "start,stop", &[]), records(&s.records.as_ref().unwrap().to_json()));
    let p = plan(&Snapshot::new(&ns, vec![t2]), NOW);
    let s = &template_steps(&p)[0];
    assert_eq!(s.creates.len(), 1);
    assert_eq!(s.creates[0].occurrence, "force-4");
    assert_eq!(s.records.as_ref().unwrap().force.as_ref().unwrap().result, RunResult::Running);
}

#[test]
fn bad_force_runs_are_refused() {
    let ns = namespace(&[], &[(ANNOTATION_OBSERVED, r#"{"seq":1,"state":"started"}"#)]);
    let ran = records(r#"{"start":{"run":"x","occurrence":"1","result":"succeeded","time":"t"}}"#);
    for (value, needle) in [("delete", "runs only on start"), ("reboot", "unknown event")] {
        let t = with(template("seed", "start", &[(ANNOTATION_FORCE_RUN, value)]), ran.clone());
        let p = plan(&Snapshot::new(&ns, vec![t]), NOW);
        let s = &template_steps(&p)[0];
        assert!(s.clear_force_run);
        assert_eq!(s.records, None);
        assert!(matches!(&s.reports[..], [Report::ForceRunIgnored { why, .. }] if why.contains(needle)), "{:?}", s.reports);
    }
}

#[test]
fn a_broken_template_fails_its_run_without_holding_the_transition() {
    let ns = namespace(&[], &[(ANNOTATION_TRANSITION, r#"{"seq":1,"event":"start","phase":"runs"}"#)]);
    let t = template("seed", "start", &[("lifecycle-jobs.dev/on-start-command", "not json")]);
    let p = plan(&Snapshot::new(&ns, vec![t]), NOW);
    let s = &template_steps(&p)[0];
    assert!(s.creates.is_empty());
    let rec = s.records.as_ref().unwrap().start.clone().unwrap();
    assert_eq!((rec.result, rec.reason.as_deref()), (RunResult::Failed, Some("InvalidTemplate")));
    assert!(rec.message.unwrap().contains("on-start-command"));
}

#[test]
fn deleting_templates_are_left_alone() {
    let ns = namespace(&[], &[(ANNOTATION_TRANSITION, r#"{"seq":1,"event":"start","phase":"runs"}"#)]);
    let mut t = template("seed", "start", &[]);
    t.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    t.metadata.finalizers = None;
    let p = plan(&Snapshot::new(&ns, vec![t]), NOW);
    assert!(template_steps(&p).is_empty());
    assert_eq!(ns_steps(&p), vec![NsStep::Workloads { event: Event::Start, scale: true, rollout: Some(Rollout::OnStart) }]);
}

#[test]
fn lost_annotations_do_not_reuse_occurrences() {
    let ns = namespace(&[], &[(ANNOTATION_OBSERVED, "{broken")]);
    let t = with(
        template("seed", "start", &[]),
        records(r#"{"start":{"run":"x","occurrence":"7","result":"succeeded","time":"t"}}"#),
    );
    let s = Snapshot::new(&ns, vec![t]);
    assert_eq!(s.ns.env.problems.len(), 1);
    let p = plan(&s, NOW);
    assert!(matches!(&ns_steps(&p)[..], [NsStep::Begin { transition, .. }] if transition.seq == 8));
}

#[test]
fn an_invalid_state_is_shown() {
    let ns = namespace(&[(LABEL_STATE, "paused")], &[(ANNOTATION_OBSERVED, r#"{"seq":1,"state":"started"}"#)]);
    let p = plan(&Snapshot::new(&ns, vec![]), NOW);
    assert_eq!(ns_steps(&p), vec![NsStep::Status("invalid state \"paused\": expected started, stopped or deleted".into())]);
}

#[test]
fn runs_are_not_templates() {
    let mut run = template("seed-start-abc", "start", &[]);
    run.metadata.labels = map(&[(LABEL_RUN, "1")]);
    let s = Snapshot::new(&namespace(&[], &[]), vec![run]);
    assert!(s.templates.is_empty());
    assert_eq!(s.jobs.len(), 1);
}

// ---- stages ----

fn staged(name: &str, on: &str, stage: &str) -> Job {
    template(name, on, &[(lifecycle_contract::names::ANNOTATION_STAGE, stage)])
}

fn ran(job: Job, event: &str, seq: u64, result: &str) -> Job {
    let run = format!("{}-run", job.metadata.name.as_deref().unwrap());
    with(job, records(&format!(r#"{{"{event}":{{"run":"{run}","occurrence":"{seq}","result":"{result}","time":"t"}}}}"#)))
}

/// A template whose start run of `seq` is in flight, and that run.
fn running(job: Job, seq: u64) -> [Job; 2] {
    let t = ran(job, "start", seq, "running");
    let name = t.metadata.name.clone().unwrap();
    let run = Job {
        metadata: ObjectMeta {
            name: Some(format!("{name}-run")),
            labels: map(&[(LABEL_JOB, &name), (LABEL_EVENT, "start"), (LABEL_RUN, &seq.to_string())]),
            owner_references: Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                uid: t.metadata.uid.clone().unwrap(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        ..Default::default()
    };
    [t, run]
}

fn starting(seq: u64, extra: &[(&str, &str)]) -> Namespace {
    let observed = format!(r#"{{"seq":{seq},"state":"started"}}"#);
    let transition = format!(r#"{{"seq":{seq},"event":"start","phase":"runs"}}"#);
    let mut a = vec![(ANNOTATION_OBSERVED, observed.as_str()), (ANNOTATION_TRANSITION, transition.as_str())];
    a.extend_from_slice(extra);
    namespace(&[], &a)
}

fn created(p: &Plan) -> Vec<String> {
    template_steps(p).iter().filter(|s| !s.creates.is_empty()).map(|s| s.name.clone()).collect()
}

#[test]
fn start_runs_go_stage_by_stage_ascending() {
    let ns = starting(1, &[]);
    let (d, b, c, a) =
        (template("d", "start", &[]), staged("b", "start", "1"), staged("c", "start,stop", "1"), staged("a", "start", "2"));
    // Stage 0 (no annotation) first, alone.
    let p = plan(&Snapshot::new(&ns, vec![a.clone(), b.clone(), c.clone(), d.clone()]), NOW);
    assert_eq!(created(&p), vec!["d"]);
    assert_eq!(p.status, "starting: stage 1 of 3, 0/1 jobs done");
    // Stage 0 still running: nothing else starts.
    let [d_running, d_run] = running(d.clone(), 1);
    let p = plan(&Snapshot::new(&ns, vec![a.clone(), b.clone(), c.clone(), d_running, d_run]), NOW);
    assert!(created(&p).is_empty());
    // Stage 0 ended: both jobs of stage 1 together, not stage 2.
    let d_done = ran(d, "start", 1, "succeeded");
    let p = plan(&Snapshot::new(&ns, vec![a.clone(), b.clone(), c.clone(), d_done.clone()]), NOW);
    assert_eq!(created(&p), vec!["b", "c"]);
    assert_eq!(p.status, "starting: stage 2 of 3, 0/2 jobs done");
    let update = ns_steps(&p);
    assert!(
        matches!(&update[..], [NsStep::Update { transition }] if transition.progress == Some(Progress { stage: 1, index: 2, stages: 3, done: 0, total: 2 })),
        "{update:?}"
    );
    // One of stage 1 done.
    let b_done = ran(b, "start", 1, "succeeded");
    let [c_running, c_run] = running(c.clone(), 1);
    let p = plan(&Snapshot::new(&ns, vec![a.clone(), b_done.clone(), c_running, c_run, d_done.clone()]), NOW);
    assert!(created(&p).is_empty());
    assert_eq!(p.status, "starting: stage 2 of 3, 1/2 jobs done");
    // Stage 1 ended: stage 2.
    let c_done = ran(c, "start", 1, "succeeded");
    let p = plan(&Snapshot::new(&ns, vec![a.clone(), b_done.clone(), c_done.clone(), d_done.clone()]), NOW);
    assert_eq!(created(&p), vec!["a"]);
    assert_eq!(p.status, "starting: stage 3 of 3, 0/1 jobs done");
    // All ended: the start scales, rolls and ends in the same plan.
    let p = plan(&Snapshot::new(&ns, vec![ran(a, "start", 1, "succeeded"), b_done, c_done, d_done]), NOW);
    assert_eq!(ns_steps(&p), vec![NsStep::Workloads { event: Event::Start, scale: true, rollout: Some(Rollout::OnStart) }]);
    assert_eq!(p.status, "started");
}

#[test]
fn stop_and_delete_runs_go_by_descending_stage_and_failures_do_not_hold_them() {
    let ns = namespace(
        &[(LABEL_STATE, "stopped")],
        &[
            (ANNOTATION_OBSERVED, r#"{"seq":2,"state":"stopped"}"#),
            (ANNOTATION_TRANSITION, r#"{"seq":2,"event":"stop","phase":"runs"}"#),
        ],
    );
    let (low, high) = (staged("low", "stop", "-1"), staged("high", "stop", "3"));
    let p = plan(&Snapshot::new(&ns, vec![low.clone(), high.clone()]), NOW);
    assert_eq!(created(&p), vec!["high"]);
    assert_eq!(p.status, "stopping: stage 1 of 2, 0/1 jobs done");
    // The higher stage failed: a stop goes on.
    let p = plan(&Snapshot::new(&ns, vec![low, ran(high, "stop", 2, "failed")]), NOW);
    assert_eq!(created(&p), vec!["low"]);
    assert_eq!(p.status, "stopping: stage 2 of 2, 0/1 jobs done, failed: high");
}

#[test]
fn a_failed_start_stage_holds_the_start_until_a_new_event() {
    let ns = starting(1, &[]);
    let (seed, migrate, other) = (staged("seed", "start", "1"), staged("migrate", "start", "2"), staged("other", "start", "1"));
    let failed = ran(seed, "start", 1, "failed");
    // Stage 1 not over yet (other runs): no verdict, stage 2 waits.
    let [other_running, other_run] = running(other.clone(), 1);
    let p = plan(&Snapshot::new(&ns, vec![failed.clone(), migrate.clone(), other_running, other_run]), NOW);
    assert!(created(&p).is_empty());
    assert_eq!(p.status, "starting: stage 1 of 2, 1/2 jobs done, failed: seed");
    // Stage 1 over: held, reported once.
    let other_done = ran(other, "start", 1, "succeeded");
    let jobs = vec![failed.clone(), migrate.clone(), other_done.clone()];
    let p = plan(&Snapshot::new(&ns, jobs.clone()), NOW);
    assert!(created(&p).is_empty(), "stage 2 never runs");
    let [NsStep::Update { transition }] = &ns_steps(&p)[..] else { panic!("{:?}", ns_steps(&p)) };
    assert_eq!(transition.failed, Some(StartFailure { stage: 1, jobs: vec!["seed".into()], reason: None }));
    assert_eq!(transition.phase, Phase::Runs);
    assert!(transition.gates_pods(OnStartFailure::Hold));
    assert!(
        p.status.starts_with("start failed at stage 1 of 2: job seed failed; the later stages do not run; gated pods stay gated")
    );
    assert!(p.status.contains("kubectl lifecycle env redeploy env1"), "{}", p.status);
    assert!(matches!(&p.ns_reports[..], [NsReport::StartFailed { message }] if *message == p.status));

    // Once held: nothing more to do, no second report.
    let held = serde_json::to_string(transition).unwrap();
    let held_ns = |extra: &[(&str, &str)]| {
        let mut a = vec![
            (ANNOTATION_OBSERVED, r#"{"seq":1,"state":"started"}"#),
            (ANNOTATION_TRANSITION, held.as_str()),
            (ANNOTATION_STATUS, p.status.as_str()),
        ];
        a.extend_from_slice(extra);
        namespace(&[], &a)
    };
    let again = plan(&Snapshot::new(&held_ns(&[]), jobs.clone()), NOW);
    assert!(again.steps.is_empty(), "{:?}", again.steps);
    assert!(again.ns_reports.is_empty());
    assert!(again.busy);

    // A new deploy-id replaces it with a new start.
    let p = plan(&Snapshot::new(&held_ns(&[(ANNOTATION_DEPLOY_ID, "v2")]), jobs.clone()), NOW);
    assert!(matches!(&ns_steps(&p)[..], [NsStep::Begin { transition, .. }] if *transition == Transition::new(2, Event::Start)));

    // on-start-failure: release lets the start go on without its later stages.
    let release = (lifecycle_contract::names::ANNOTATION_ON_START_FAILURE, "release");
    let p = plan(&Snapshot::new(&held_ns(&[release]), jobs.clone()), NOW);
    assert_eq!(ns_steps(&p), vec![NsStep::Workloads { event: Event::Start, scale: true, rollout: Some(Rollout::OnStart) }]);
    assert!(p.status.contains("gated pods are released"), "{}", p.status);
    assert_eq!(p.ns_reports.len(), 1);
    assert!(created(&p).is_empty());
}

#[test]
fn after_a_failed_start_new_start_templates_wait_for_the_next_start() {
    let ns = namespace(&[], &[(ANNOTATION_OBSERVED, r#"{"seq":3,"state":"started"}"#), (ANNOTATION_STATUS, "x")]);
    let p = plan(
        &Snapshot::new(&ns, vec![ran(template("seed", "start", &[]), "start", 3, "failed"), template("new", "start", &[])]),
        NOW,
    );
    assert!(ns_steps(&p).iter().all(|s| matches!(s, NsStep::Status(_))), "{:?}", p.steps);
}

#[test]
fn an_unreadable_stage_counts_as_zero() {
    let s = Snapshot::new(&starting(1, &[]), vec![staged("a", "start", "first")]);
    assert_eq!(s.templates[0].stage, 0);
    assert_eq!(s.ns.env.problems.len(), 1);
    assert!(s.ns.env.problems[0].contains("not an integer"));
}

/// A run Job of template `t` (as [`build_run`] makes it) named `name`.
fn run_job(t: &Job, event: Event, occurrence: &str, name: &str) -> Job {
    let mut j = build_run(t, event, occurrence, name).unwrap();
    j.metadata.uid = Some(format!("uid-{name}"));
    j
}

/// Issue 19: a restarted controller (another name key) finds the run it
/// created before the crash by identity, not by name, and creates no second one.
#[test]
fn a_run_created_before_a_crash_is_found_whatever_its_name() {
    let ns = starting(1, &[]);
    let t = template("seed", "start", &[]);
    // Created by the previous process under its own key; never recorded.
    let earlier = run_job(&t, Event::Start, "1", "seed-start-zzzzzzzz");
    assert_ne!(Some(run_name("seed", Event::Start, &suffix("uid-seed", Event::Start, "1"))), earlier.metadata.name);
    let p = plan(&Snapshot::new(&ns, vec![t.clone(), earlier]), NOW);
    let s = &template_steps(&p)[0];
    assert!(s.creates.is_empty(), "no second run");
    let rec = s.records.as_ref().unwrap().start.clone().unwrap();
    assert_eq!((rec.run.as_str(), rec.occurrence.as_str(), rec.result), ("seed-start-zzzzzzzz", "1", RunResult::Running));
    assert!(matches!(&s.reports[..], [Report::RunStarted { run, .. }] if run == "seed-start-zzzzzzzz"));

    // A Job of the same name that is not the run (no run label, another owner) is no run.
    let mut stranger = run_job(&t, Event::Start, "1", "seed-start-zzzzzzzz");
    stranger.metadata.labels.as_mut().unwrap().remove(LABEL_RUN);
    let p = plan(&Snapshot::new(&ns, vec![t, stranger]), NOW);
    let s = &template_steps(&p)[0];
    assert_eq!(s.creates.len(), 1);
    assert_ne!(s.creates[0].job.metadata.name.as_deref(), Some("seed-start-zzzzzzzz"));
}

/// Issue 19: a claimed forced run's name is readable in `last-runs` before the
/// run exists. A Job someone creates under it does not fail the run: the run
/// takes another (keyed) name; the record follows it.
#[test]
fn a_forced_run_whose_name_was_taken_gets_another() {
    let ns = namespace(&[], &[(ANNOTATION_OBSERVED, r#"{"seq":1,"state":"started"}"#)]);
    let claimed =
        r#"{"force":{"event":"start","run":"seed-start-pending","occurrence":"force-1","result":"pending","time":"t"}}"#;
    let t = with(template("seed", "start", &[]), records(claimed));
    let squatter = Job {
        metadata: ObjectMeta { name: Some("seed-start-pending".into()), uid: Some("squat-uid".into()), ..Default::default() },
        ..Default::default()
    };
    let p = plan(&Snapshot::new(&ns, vec![t.clone(), squatter.clone()]), NOW);
    let s = &template_steps(&p)[0];
    assert_eq!(s.creates.len(), 1);
    let name = s.creates[0].job.metadata.name.clone().unwrap();
    assert_ne!(name, "seed-start-pending");
    assert_eq!(name, run_name("seed", Event::Start, &suffix("uid-seed", Event::Start, "force-1/squat-uid")));
    let rec = s.records.as_ref().unwrap().force.clone().unwrap();
    assert_eq!((rec.run.as_str(), rec.result), (name.as_str(), RunResult::Running));

    // Created, then a crash before the record: the next plan finds it under its
    // new name and records it, without a second run.
    let created = run_job(&t, Event::Start, "force-1", &name);
    let p = plan(&Snapshot::new(&ns, vec![t, squatter, created]), NOW);
    let s = &template_steps(&p)[0];
    assert!(s.creates.is_empty());
    let rec = s.records.as_ref().unwrap().force.clone().unwrap();
    assert_eq!((rec.run.as_str(), rec.result), (name.as_str(), RunResult::Running));
}
