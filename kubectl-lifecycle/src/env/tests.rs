//! Tests of what `env` decides and prints.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use lifecycle_contract::names;
use serde_json::json;

use super::decide::{Action, EnvList, EnvRow, build_status, environment_name, then_what, wanted_state};
use super::render::{render_list, render_status};
use crate::jobs::tests::{job, meta, run, ts, with_condition};

fn namespace(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
    Namespace { metadata: meta(name, labels, annotations), ..Default::default() }
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
    assert!(text.contains("  warning: annotation lifecycle-jobs.dev/last-runs of job db does not follow the contract"), "{text}");
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
