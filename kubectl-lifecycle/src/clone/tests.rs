//! Tests of the clone decision and its report, on one source job.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapVolumeSource, Container, EnvFromSource, EnvVar, EnvVarSource, LocalObjectReference, PodSpec,
    PodTemplateSpec, ResourceRequirements, SecretEnvSource, SecretKeySelector, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ManagedFieldsEntry, ObjectMeta, OwnerReference, Time};
use lifecycle_contract::job_copy::LAST_APPLIED;
use lifecycle_contract::names;

use super::render::render_report;
use super::{CloneOptions, Target, after_notes, check_target, clone_job};

fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The source's metadata: what lifecycle-jobs, kubectl and Kubernetes set beside the job's own.
fn source_metadata(uid: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some("seed".into()),
        namespace: Some("preview-1".into()),
        uid: Some(uid.into()),
        resource_version: Some("42".into()),
        generation: Some(1),
        creation_timestamp: Some(Time("2025-01-01T00:00:00Z".parse().unwrap())),
        managed_fields: Some(vec![ManagedFieldsEntry::default()]),
        owner_references: Some(vec![OwnerReference { name: "x".into(), ..Default::default() }]),
        finalizers: Some(vec!["lifecycle-jobs.dev/outputs".into()]),
        labels: Some(map(&[
            ("app", "shop"),
            ("batch.kubernetes.io/controller-uid", uid),
            ("controller-uid", uid),
            (names::LABEL_ADMITTED, names::ADMITTED),
        ])),
        annotations: Some(map(&[
            (names::ANNOTATION_ON, "start,stop"),
            ("lifecycle-jobs.dev/on-stop-command", r#"["sh","-c","echo bye"]"#),
            (names::ANNOTATION_CONTAINER, "main"),
            (names::ANNOTATION_JOB_ID, "zf138d9c8"),
            (names::ANNOTATION_OUTPUTS, "{}"),
            (names::ANNOTATION_LAST_RUNS, "{}"),
            (names::ANNOTATION_OUTPUTS_PUBLISHED_BY, "seed-start-x/uid"),
            (names::ANNOTATION_FORCE_RUN, "stop"),
            (LAST_APPLIED, "{...}"),
            ("team", "data"),
        ])),
        ..Default::default()
    }
}

/// The source's pod: a container with env and envFrom from Secrets and ConfigMaps, a volume,
/// a pull secret and a service account.
fn pod_spec() -> PodSpec {
    PodSpec {
        restart_policy: Some("Never".into()),
        containers: vec![Container {
            name: "main".into(),
            image: Some("busybox:local".into()),
            command: Some(vec!["sh".into(), "-c".into(), "echo hi".into()]),
            resources: Some(ResourceRequirements {
                limits: Some([("memory".to_string(), Quantity("512Mi".into()))].into()),
                ..Default::default()
            }),
            env: Some(vec![
                EnvVar { name: "PLAIN".into(), value: Some("x".into()), ..Default::default() },
                EnvVar {
                    name: "DB_PASS".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector { name: "db-creds".into(), key: "pass".into(), optional: None }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            env_from: Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource { name: "settings".into(), optional: Some(true) }),
                    ..Default::default()
                },
                EnvFromSource {
                    secret_ref: Some(SecretEnvSource { name: "db-creds".into(), optional: None }),
                    ..Default::default()
                },
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource { name: names::OUTPUTS_OBJECT.into(), optional: Some(true) }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }],
        volumes: Some(vec![Volume {
            name: "conf".into(),
            config_map: Some(ConfigMapVolumeSource { name: "seed-sql".into(), ..Default::default() }),
            ..Default::default()
        }]),
        image_pull_secrets: Some(vec![LocalObjectReference { name: "registry".into() }]),
        service_account_name: Some("seeder".into()),
        ..Default::default()
    }
}

fn source() -> Job {
    let uid = "1234-abcd";
    Job {
        metadata: source_metadata(uid),
        spec: Some(JobSpec {
            suspend: Some(true),
            backoff_limit: Some(2),
            active_deadline_seconds: Some(600),
            selector: Some(LabelSelector {
                match_labels: Some(map(&[("batch.kubernetes.io/controller-uid", uid)])),
                ..Default::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(map(&[
                        ("app", "shop"),
                        ("batch.kubernetes.io/controller-uid", uid),
                        ("batch.kubernetes.io/job-name", "seed"),
                        ("controller-uid", uid),
                        ("job-name", "seed"),
                        (names::LABEL_CAPTURE, "ZF138D9C8"),
                    ])),
                    ..Default::default()
                }),
                spec: Some(pod_spec()),
            },
            ..Default::default()
        }),
        status: Some(JobStatus::default()),
    }
}

fn opts(keep_job_id: bool) -> CloneOptions {
    CloneOptions { namespace: "preview-2".into(), name: None, keep_job_id }
}

#[test]
fn copies_the_job_and_drops_what_belongs_to_the_source() {
    let c = clone_job(&source(), &opts(false)).unwrap();
    let m = &c.job.metadata;
    assert_eq!(m.name.as_deref(), Some("seed"));
    assert_eq!(m.namespace.as_deref(), Some("preview-2"));
    assert!(m.uid.is_none() && m.resource_version.is_none() && m.managed_fields.is_none());
    assert!(m.owner_references.is_none() && m.finalizers.is_none() && m.creation_timestamp.is_none());
    assert_eq!(m.labels.as_ref().unwrap(), &map(&[("app", "shop")]));
    let a = m.annotations.as_ref().unwrap();
    assert_eq!(
        a.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![names::ANNOTATION_CONTAINER, names::ANNOTATION_ON, "lifecycle-jobs.dev/on-stop-command", "team"]
    );
    assert!(c.job.status.is_none());

    let spec = c.job.spec.as_ref().unwrap();
    assert!(spec.selector.is_none());
    assert_eq!(spec.suspend, Some(true));
    assert_eq!(spec.backoff_limit, Some(2));
    assert_eq!(spec.active_deadline_seconds, Some(600));
    let tm = spec.template.metadata.as_ref().unwrap();
    assert_eq!(tm.labels.as_ref().unwrap(), &map(&[("app", "shop")]));
    let src_spec = source().spec.unwrap().template.spec;
    assert_eq!(spec.template.spec, src_spec, "the pod spec is copied as is");

    assert_eq!(c.job_id_source.as_str(), "ZF138D9C8");
    assert_eq!(c.job_id_copy.as_str(), "SEED");
    let not: Vec<&str> = c.not_copied.iter().map(|i| i.what.as_str()).collect();
    for expected in [
        "annotation lifecycle-jobs.dev/outputs",
        "annotation lifecycle-jobs.dev/last-runs",
        "annotation lifecycle-jobs.dev/outputs-published-by",
        "label lifecycle-jobs.dev/admitted",
        "annotation lifecycle-jobs.dev/force-run",
        "annotation lifecycle-jobs.dev/job-id=zf138d9c8",
        "uid, resourceVersion, generation, creationTimestamp, managedFields",
        "spec.selector and labels controller-uid, batch.kubernetes.io/controller-uid, job-name, batch.kubernetes.io/job-name (Job and pod template)",
        "ownerReferences",
        "finalizers",
        "status",
        "runs",
        "pod template label lifecycle-jobs.dev/capture=ZF138D9C8",
    ] {
        assert!(not.contains(&expected), "{expected} missing from {not:?}");
    }
    let job_id = c.not_copied.iter().find(|i| i.what.contains("job-id")).unwrap();
    assert!(job_id.why.contains("QOVERY_OUTPUT_JOB_SEED_<KEY> instead of QOVERY_OUTPUT_JOB_ZF138D9C8_<KEY>"), "{}", job_id.why);
}

#[test]
fn keeps_the_job_id_when_asked_and_renames() {
    let o = CloneOptions { namespace: "preview-2".into(), name: Some("seed-copy".into()), keep_job_id: true };
    let c = clone_job(&source(), &o).unwrap();
    assert_eq!(c.job.metadata.name.as_deref(), Some("seed-copy"));
    assert_eq!(c.job.metadata.annotations.as_ref().unwrap()[names::ANNOTATION_JOB_ID], "zf138d9c8");
    assert_eq!(c.job_id_copy.as_str(), "ZF138D9C8");
    assert_eq!(c.copied.iter().filter(|i| i.what.contains("job-id")).count(), 1);
    let without = clone_job(&source(), &CloneOptions { keep_job_id: false, ..o }).unwrap();
    assert_eq!(without.job_id_copy.as_str(), "SEED_COPY");
}

#[test]
fn lists_referenced_objects_but_not_lifecycle_outputs() {
    let c = clone_job(&source(), &opts(false)).unwrap();
    let refs: Vec<(&str, &str, bool)> = c.references.iter().map(|r| (r.kind, r.name.as_str(), r.optional)).collect();
    assert_eq!(
        refs,
        vec![
            ("ConfigMap", "seed-sql", false),
            ("ConfigMap", "settings", true),
            ("Secret", "db-creds", false),
            ("Secret", "registry", false),
            ("ServiceAccount", "seeder", false),
        ]
    );
    let creds = c.references.iter().find(|r| r.name == "db-creds").unwrap();
    assert_eq!(creds.used_by, vec!["env DB_PASS of container main", "envFrom of container main"]);
}

#[test]
fn refuses_runs_and_plain_jobs() {
    let mut run = source();
    // A run as the controller makes it: labelled, and controlled by its template.
    run.metadata.labels.as_mut().unwrap().insert(names::LABEL_JOB.into(), "seed".into());
    run.metadata.labels.as_mut().unwrap().insert(names::LABEL_RUN.into(), "1".into());
    run.metadata.owner_references =
        Some(vec![OwnerReference { kind: "Job".into(), name: "seed".into(), controller: Some(true), ..Default::default() }]);
    assert!(clone_job(&run, &opts(false)).unwrap_err().to_string().contains("clone the lifecycle job"));
    let mut plain = source();
    plain.metadata.annotations.as_mut().unwrap().remove(names::ANNOTATION_ON);
    assert!(clone_job(&plain, &opts(false)).unwrap_err().to_string().contains("not a lifecycle job"));
}

#[test]
fn report_says_what_and_why() {
    let c = clone_job(&source(), &opts(false)).unwrap();
    let presence = vec![Some(true), Some(false), Some(false), None, Some(true)];
    let text = render_report("seed", "preview-1", &c, &presence, true);
    assert!(
        text.starts_with(
            "Would clone (dry run, nothing created) lifecycle job seed (namespace preview-1) to namespace preview-2 as seed\n"
        ),
        "{text}"
    );
    assert!(text.contains("  spec.backoffLimit=2: restarts\n"), "{text}");
    assert!(
        text.contains("  Secret db-creds (env DB_PASS of container main; envFrom of container main): MISSING in preview-2\n"),
        "{text}"
    );
    assert!(text.contains("  ConfigMap settings (envFrom of container main): missing in preview-2 (optional)\n"), "{text}");
    assert!(text.contains("create them in preview-2 before the job runs"), "{text}");
    assert!(
        text.ends_with("JOBID in preview-2: SEED (variables QOVERY_OUTPUT_JOB_SEED_<KEY>); in preview-1: ZF138D9C8\n"),
        "{text}"
    );
}

#[test]
fn the_target_must_not_have_the_copys_name_or_jobid() {
    let c = clone_job(&source(), &opts(false)).unwrap();
    assert!(check_target(&c, &Target::default(), false).is_ok());
    let taken = Target { name_taken: true, ..Target::default() };
    let e = check_target(&c, &taken, false).unwrap_err().to_string();
    assert!(e.starts_with("a job seed already exists in namespace preview-2"), "{e}");
    let same = Target { same_job_id: Some("other".into()), ..Target::default() };
    let e = check_target(&c, &same, true).unwrap_err().to_string();
    assert!(e.contains("job other in namespace preview-2 already has JOBID SEED") && e.ends_with("or drop --keep-job-id"), "{e}");
}

#[test]
fn after_the_copy_people_hear_of_its_start_run_and_of_missing_objects() {
    let c = clone_job(&source(), &opts(false)).unwrap();
    // References, in order: ConfigMap seed-sql, ConfigMap settings (optional), Secret db-creds, Secret registry, ServiceAccount seeder.
    let target =
        Target { started: true, presence: vec![Some(true), Some(false), Some(false), None, Some(true)], ..Target::default() };
    let notes = after_notes(&c, &target, false);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].starts_with("note: preview-2 is started: its controller runs the copy's start command now"), "{notes:?}");
    assert_eq!(
        notes[1],
        "warning: not copied, and not (known to be) in preview-2: Secret db-creds, Secret registry: create them in preview-2 before the job runs"
    );
    // A dry run starts nothing; a stopped target runs no start command.
    assert_eq!(after_notes(&c, &target, true).len(), 1);
    let stopped = Target { started: false, presence: vec![Some(true); 5], ..Target::default() };
    assert!(after_notes(&c, &stopped, false).is_empty());
}
