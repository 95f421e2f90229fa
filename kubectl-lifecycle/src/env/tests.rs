//! Tests of what `env` decides and prints.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lifecycle_contract::names;
use serde_json::json;

use super::decide::{Action, EnvList, EnvRow, Step, build_status, check_transition, plan_transition, then_what};
use super::render::{render_list, render_status};
use crate::environment::{self, Environment, EnvironmentExt};
use crate::jobs::tests::{job, meta, run, ts, with_condition};

fn namespace(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
    Namespace { metadata: meta(name, labels, annotations), ..Default::default() }
}

#[test]
fn environment_fields_have_defaults() {
    let ns = namespace("preview", &[(names::LABEL_ENVIRONMENT, "")], &[]);
    assert_eq!(environment::read(&ns).name, "preview");
    assert_eq!(environment::read(&ns).wanted_text(), "started");
    let ns = namespace("preview", &[(names::LABEL_ENVIRONMENT, "pr-1"), (names::LABEL_STATE, "stopped")], &[]);
    assert_eq!(environment::read(&ns).name, "pr-1");
    assert_eq!(environment::read(&ns).wanted_text(), "stopped");
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
            transition: None,
            last_failure: None,
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
    let mut done =
        with_condition(run("seed-start-1", "seed", "start", "2025-01-01T00:00:00Z"), "Complete", None, "2025-01-01T00:00:30Z");
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

#[test]
fn status_shows_the_last_forced_run_and_what_it_could_not_read() {
    let ns = namespace("preview", &[(names::LABEL_ENVIRONMENT, "")], &[(names::ANNOTATION_STATUS, "started")]);
    let record = r#"{"force":{"event":"stop","run":"seed-stop-p0","occurrence":"force-1","result":"failed",
        "reason":"OutputsNotPublished","message":"outputs not published: away","time":"2025-01-01T00:05:00Z"}}"#;
    let all = vec![
        job("seed", &[], &[(names::ANNOTATION_ON, "start,stop"), (names::ANNOTATION_LAST_RUNS, record)]),
        job("db", &[], &[(names::ANNOTATION_ON, "start"), (names::ANNOTATION_LAST_RUNS, r#"{"start":"garbage"}"#)]),
        // The forced run's Job: its pods succeeded, the controller recorded it failed.
        with_condition(run("seed-stop-p0", "seed", "stop", "2025-01-01T00:04:00Z"), "Complete", None, "2025-01-01T00:04:30Z"),
    ];
    let s = build_status(&ns, &all, &[], Some(&[]));
    let now = ts("2025-01-01T00:10:00Z");
    let text = render_status(&s, false, now);
    assert!(text.contains("seed   SEED    start,stop   never   failed (5m ago)   -        0\n"), "{text}");
    assert!(!text.contains("FORCED"), "{text}");
    assert!(text.contains("  warning: job db: annotation lifecycle-jobs.dev/last-runs is unreadable ("), "{text}");
    let wide = render_status(&s, true, now);
    assert!(wide.contains("FORCE-RUN   FORCED\n"), "{wide}");
    assert!(wide.contains("<none>      stop failed: OutputsNotPublished seed-stop-p0 (5m ago)\n"), "{wide}");
    let json = serde_json::to_value(&s).unwrap();
    let seed = &json["templates"][0];
    assert_eq!(seed["lastRuns"]["force"]["event"], "stop", "{json}");
    assert_eq!(seed["lastRuns"]["stop"]["result"], "failed", "{json}");
    assert!(seed.get("lastRunsProblems").is_none(), "{json}");
    assert!(json["templates"][1]["lastRunsProblems"][0].as_str().unwrap().contains("entry start"), "{json}");
}

/// An environment wanting `state` (label as written), with what the controller took in and its transition.
fn env(state: Option<&str>, observed: Option<&str>, transition: Option<&str>) -> Environment {
    let labels: Vec<(&str, &str)> = state.map(|s| (names::LABEL_STATE, s)).into_iter().collect();
    let mut annotations = vec![(names::ANNOTATION_STATUS, "some status")];
    annotations.extend(observed.map(|o| (names::ANNOTATION_OBSERVED, o)));
    annotations.extend(transition.map(|t| (names::ANNOTATION_TRANSITION, t)));
    environment::read(&namespace("preview", &[&[(names::LABEL_ENVIRONMENT, "")], &labels[..]].concat(), &annotations))
}

#[test]
fn an_action_is_refused_when_the_environment_cannot_take_it() {
    let mut going = env(None, None, None);
    going.deleting = true;
    let e = check_transition(Action::Start, &going).unwrap_err().to_string();
    assert!(e.contains("is being deleted (namespace terminating)") && e.contains("env delete preview --wait"), "{e}");
    assert!(check_transition(Action::Delete, &going).is_ok());
    let deleted = env(Some("deleted"), None, None);
    let e = check_transition(Action::Stop, &deleted).unwrap_err().to_string();
    assert!(e.contains("is being deleted (state deleted)"), "{e}");
    assert!(check_transition(Action::Delete, &deleted).is_ok());
    let e = check_transition(Action::Redeploy, &env(Some("stopped"), None, None)).unwrap_err().to_string();
    assert!(e.starts_with("environment preview is stopped: only a started environment is redeployed"), "{e}");
    let e = check_transition(Action::Redeploy, &env(Some("paused"), None, None)).unwrap_err().to_string();
    assert!(e.starts_with("environment preview: invalid state \"paused\""), "an invalid state says why: {e}");
    assert!(check_transition(Action::Redeploy, &env(None, None, None)).is_ok());
}

#[test]
fn an_action_sets_the_state_or_waits_for_the_one_under_way() {
    let all = vec![
        job("seed", &[], &[(names::ANNOTATION_ON, "start,stop")]),
        job("db", &[], &[(names::ANNOTATION_ON, "start")]),
        job("migrate", &[], &[]),
        {
            let mut r = run("seed-stop-1", "seed", "stop", "2025-01-01T00:00:00Z");
            r.metadata.uid = Some("uid-1".into());
            r
        },
    ];
    let stopped = r#"{"seq":4,"state":"stopped"}"#;
    // Stopped, and resting there: start sets the state; its two start jobs run.
    let plan = plan_transition(Action::Start, &env(Some("stopped"), Some(stopped), None), &all);
    assert_eq!(plan.step, Step::SetState { state: lifecycle_contract::environment::WantedState::Started, was: "stopped".into() });
    assert_eq!(plan.templates, ["seed", "db"]);
    assert_eq!(plan.expected_runs(), 2);
    assert_eq!(plan.baseline_seq, 4);
    assert_eq!(plan.before, ["uid-1".to_string()].into());
    // Already stopped and resting: nothing to do.
    let plan = plan_transition(Action::Stop, &env(Some("stopped"), Some(stopped), None), &all);
    assert!(matches!(plan.step, Step::Already { settled: true, .. }), "{:?}", plan.step);
    // Stopped, but the stop is under way: wait for its end, with no new run expected.
    let moving = r#"{"seq":4,"event":"stop","phase":"runs"}"#;
    let plan = plan_transition(Action::Stop, &env(Some(" stopped "), Some(stopped), Some(moving)), &all);
    assert!(matches!(plan.step, Step::Already { settled: false, .. }), "{:?}", plan.step);
    assert_eq!((plan.templates.len(), plan.expected_runs()), (1, 0));
    // Delete is never settled: it ends with the namespace gone.
    let plan = plan_transition(Action::Delete, &env(Some("deleted"), Some(r#"{"seq":5,"state":"deleted"}"#), None), &all);
    assert!(matches!(plan.step, Step::Already { settled: false, .. }), "{:?}", plan.step);
    // Redeploy writes a new deploy-id; an unreadable state is replaced by the action's.
    assert_eq!(plan_transition(Action::Redeploy, &env(None, None, None), &all).step, Step::Redeploy);
    let plan = plan_transition(Action::Start, &env(Some("paused"), None, None), &all);
    assert!(matches!(&plan.step, Step::SetState { was, .. } if was == "<invalid>"), "{:?}", plan.step);
    assert_eq!(plan.baseline_seq, 0);
}

#[test]
fn status_says_what_it_could_not_read_of_the_environment() {
    let ns = namespace(
        "preview",
        &[(names::LABEL_ENVIRONMENT, ""), (names::LABEL_STATE, "paused")],
        &[(names::ANNOTATION_STATUS, "invalid state"), (names::ANNOTATION_TRANSITION, "{")],
    );
    let s = build_status(&ns, &[], &[], Some(&[]));
    assert_eq!(s.state, "<invalid>");
    let text = render_status(&s, false, ts("2025-01-01T00:10:00Z"));
    assert!(text.contains("State:       <invalid>\n"), "{text}");
    assert!(text.contains("Warning:     invalid state \"paused\": expected started, stopped or deleted\n"), "{text}");
    assert!(text.contains("Warning:     annotation lifecycle-jobs.dev/transition is unreadable ("), "{text}");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["problems"].as_array().map(Vec::len), Some(2), "{json}");
    let fine = build_status(&namespace("preview", &[(names::LABEL_ENVIRONMENT, "")], &[]), &[], &[], Some(&[]));
    assert!(serde_json::to_value(&fine).unwrap().get("problems").is_none());
}

#[test]
fn the_list_keeps_the_latest_failed_last_run_of_the_lifecycle_jobs() {
    use super::decide::TemplatesRead;
    let template = |name: &str, last_runs: &str| crate::jobs::tests::meta(name, &[], &[(names::ANNOTATION_LAST_RUNS, last_runs)]);
    let mut read = TemplatesRead::default();
    read.add(&template(
        "db",
        r#"{"start":{"run":"db-start-1","occurrence":"1","result":"failed","reason":"BackoffLimitExceeded","time":"2025-01-01T00:01:00Z"},
            "stop":{"run":"db-stop-2","occurrence":"2","result":"succeeded","time":"2025-01-01T00:09:00Z"}}"#,
    ));
    read.add(&template(
        "seed",
        r#"{"force":{"event":"stop","run":"seed-stop-3","occurrence":"force-1","result":"failed","reason":"DeadlineExceeded","time":"2025-01-01T00:05:00Z"}}"#,
    ));
    read.add(&template("web", "not json"));
    assert_eq!(read.count, 3);
    let f = read.last_failure.expect("a failure");
    assert_eq!((f.job.as_str(), f.slot.as_str(), f.run.as_str()), ("seed", "force", "seed-stop-3"));
    assert_eq!(f.reason.as_deref(), Some("DeadlineExceeded"));

    let mut ok = TemplatesRead::default();
    ok.add(&template(
        "db",
        r#"{"start":{"run":"db-start-1","occurrence":"1","result":"succeeded","time":"2025-01-01T00:01:00Z"}}"#,
    ));
    assert_eq!((ok.count, ok.last_failure), (1, None));
}
