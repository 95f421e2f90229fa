//! The planner on hand-made snapshots. (Whole lives, with crashes, are in
//! `reconcile/tests.rs`.)

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use lifecycle_contract::names::{LABEL_ENVIRONMENT, LABEL_EVENT, LABEL_JOB};

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
            transition: Transition { seq: 1, event: Event::Start, phase: Phase::Runs },
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
    assert!(ns_steps(&p).is_empty(), "no advance while runs are due");

    // a succeeded, b failed: the stop goes on to scaling.
    let done = |j: Job, result: &str| {
        with(j, records(&format!(r#"{{"stop":{{"run":"x","occurrence":"2","result":"{result}","time":"t"}}}}"#)))
    };
    let p = plan(&Snapshot::new(&ns, vec![done(a, "succeeded"), done(b, "failed"), c]), NOW);
    assert_eq!(p.status, "stopping: 2/2 stop jobs done, failed: b");
    assert_eq!(
        ns_steps(&p),
        vec![NsStep::Advance { next: Some(Transition { seq: 2, event: Event::Stop, phase: Phase::Scale }) }]
    );
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
    let scale = namespace(&[], &[(ANNOTATION_TRANSITION, r#"{"seq":3,"event":"start","phase":"scale"}"#)]);
    let p = plan(&Snapshot::new(&scale, vec![]), NOW);
    assert_eq!(ns_steps(&p), vec![NsStep::Scale { event: Event::Start, next: None }]);
    assert_eq!(p.status, "starting: scaling workloads back up");

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
    let p = plan(&Snapshot::new(&ns, vec![old, new, stop_only]), NOW);
    let steps = template_steps(&p);
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].name, "new");
    assert_eq!(steps[0].creates[0].occurrence, "4");
    assert!(ns_steps(&p).is_empty());
    assert!(p.busy);

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
    assert_eq!(
        ns_steps(&p),
        vec![NsStep::Advance { next: Some(Transition { seq: 1, event: Event::Start, phase: Phase::Scale }) }]
    );
}

#[test]
fn lost_annotations_do_not_reuse_occurrences() {
    let ns = namespace(&[], &[(ANNOTATION_OBSERVED, "{broken")]);
    let t = with(
        template("seed", "start", &[]),
        records(r#"{"start":{"run":"x","occurrence":"7","result":"succeeded","time":"t"}}"#),
    );
    let s = Snapshot::new(&ns, vec![t]);
    assert_eq!(s.ns.problems.len(), 1);
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
