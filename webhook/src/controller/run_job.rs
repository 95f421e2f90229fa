//! A run: the Job created from a template for one event occurrence.
//!
//! Finding a run. A run is recognised by what only the server can write
//! ([`is_same_run`]): the template as its controller owner and the labels
//! `event` and `run` (admission and policy `lifecycle-jobs-server-owned-jobs`
//! refuse the `run` label from anyone else). A restarted controller finds the
//! run it created before a crash by those, whatever its name, so exactly-once
//! never rests on the name alone.
//!
//! Naming a run. Its name is deterministic per (template, event, occurrence)
//! *within one controller process*, so two tries of the same creation get
//! `AlreadyExists` instead of a second run. It must not be predictable by a
//! tenant: a Job created first under the next run's name would take that name
//! and fail the run (issue 19; a start then holds its gated pods). So the
//! suffix is a hash keyed by [`NAME_KEY`], random per process and never
//! written anywhere: a tenant sees a run's name only once the run exists.
//! Another process (a restart, a new leader) names the runs it has not found
//! differently, which is harmless since it finds the existing ones by identity.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use lifecycle_contract::builtins::run_variables;
use lifecycle_contract::job_copy::fresh_copy;
use lifecycle_contract::names::{
    ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_CONTAINER, ANNOTATION_JOB_ID, DOMAIN, LABEL_EVENT, LABEL_JOB, LABEL_RUN,
    annotation_on_args, annotation_on_command,
};
use lifecycle_contract::{Event, lifecycle_job};
use sha2::{Digest, Sha256};

/// Longest Job name: Job names become pod label values.
pub(crate) const MAX_NAME: usize = 63;
/// Length of the occurrence suffix of a run's name.
pub(crate) const SUFFIX_LEN: usize = 8;
/// Characters of the suffix (those Kubernetes uses for generated names: no
/// vowels, no look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Finished runs are kept at least this long (`ttlSecondsAfterFinished` of a
/// template below it is raised to it): the controller must see a run's end to
/// record it, even across a leader change.
pub(crate) const MIN_TTL_AFTER_FINISHED: i32 = 300;

/// The key of this process's run names: 32 random bytes, in memory only.
static NAME_KEY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(rand::random);

/// The suffix of a run's name: a hash, keyed by this process's [`NAME_KEY`],
/// of the template's UID (a re-created template with the same name gets other
/// names), the event and the occurrence.
pub(crate) fn suffix(template_uid: &str, event: Event, occurrence: &str) -> String {
    suffix_with(&NAME_KEY[..], template_uid, event, occurrence)
}

/// [`suffix`] with the key given (pure, for tests).
pub(crate) fn suffix_with(key: &[u8], template_uid: &str, event: Event, occurrence: &str) -> String {
    let mut h = Sha256::new();
    // Length-prefixed key, then NUL-separated parts: no two inputs hash alike.
    h.update((key.len() as u64).to_be_bytes());
    h.update(key);
    for part in [template_uid, event.as_str(), occurrence] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    // 8 bytes → 64 bits, enough for 8 characters of a 27-letter alphabet (~38 bits).
    let mut n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let mut out = String::with_capacity(SUFFIX_LEN);
    for _ in 0..SUFFIX_LEN {
        out.push(ALPHABET[(n % ALPHABET.len() as u64) as usize] as char);
        n /= ALPHABET.len() as u64;
    }
    out
}

/// `<template>-<event>-<suffix>`, the template part cut so that the whole fits
/// in 63 characters (and still ends with a letter or digit).
pub(crate) fn run_name(template: &str, event: Event, suffix: &str) -> String {
    let tail = format!("-{event}-{suffix}");
    let room = MAX_NAME.saturating_sub(tail.len());
    let mut cut = template.len().min(room);
    while !template.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = template[..cut].trim_end_matches(['-', '.']);
    format!("{head}{tail}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BuildError {
    #[error("the template has no name, namespace or uid")]
    Unnamed,
    #[error("the template has no containers")]
    NoContainers,
    #[error("annotation {annotation}={name:?} names no container of the template; its containers are {names:?}")]
    NoSuchContainer { annotation: &'static str, name: String, names: Vec<String> },
    #[error("annotation {annotation} must be a JSON array of strings, e.g. [\"sh\",\"-c\",\"echo hello\"]: {error}")]
    BadCommand { annotation: String, error: String },
}

/// What a run is told of its environment besides what its template says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RunFacts<'a> {
    /// The environment's `deploy-id` the run is made for (the occurrence's,
    /// as the controller took it in: annotation `observed`).
    pub deploy_id: Option<&'a str>,
}

/// [`build_run_with`], without the facts of the environment: the run's pods
/// get the event and the JOBID but no `deploy-id`.
pub(crate) fn build_run(template: &Job, event: Event, occurrence: &str, name: &str) -> Result<Job, BuildError> {
    build_run_with(template, event, occurrence, name, RunFacts::default())
}

/// The run of `template` for `event`, occurrence `occurrence`, named `name`:
/// - a fresh copy of the template (`job_copy::fresh_copy`, as `kubectl
///   lifecycle clone` makes), not suspended, and without a selector even a
///   manual one (runs of one template must not select each other's pods);
/// - owned by the template (controller, blockOwnerDeletion): it goes with it;
/// - labels `job`, `event`, `run` (`run` on its pod template too: its pods are
///   never gated); annotation `job-id` = the template's JOBID, so
///   that the run publishes its outputs under the template's variables;
/// - no template annotations (`on`, `force-run`, `outputs`, …): a run is no template;
/// - run by the built-in Job controller: no `spec.managedBy`, no `parallelism: 0`;
/// - the event's `on-<event>-command` / `on-<event>-args` in the chosen container;
/// - the run's built-in variables ([`run_variables`]: event, `deploy-id` from
///   `facts`, JOBID) first in every container's `env` ([`prepend_env`]).
pub(crate) fn build_run_with(
    template: &Job,
    event: Event,
    occurrence: &str,
    name: &str,
    facts: RunFacts<'_>,
) -> Result<Job, BuildError> {
    let meta = &template.metadata;
    let (Some(tname), Some(namespace), Some(uid)) = (&meta.name, &meta.namespace, &meta.uid) else {
        return Err(BuildError::Unnamed);
    };
    let annotations = meta.annotations.clone().unwrap_or_default();
    // The template's JOBID as admission recorded it (the contract's reader).
    let job_id = lifecycle_job::job_id(meta).into_id();
    let mut run = fresh_copy(template, name, namespace).job;

    let labels = run.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(LABEL_JOB.into(), tname.clone());
    labels.insert(LABEL_EVENT.into(), event.as_str().into());
    labels.insert(LABEL_RUN.into(), occurrence.into());

    let run_annotations = run.metadata.annotations.get_or_insert_with(Default::default);
    run_annotations
        .retain(|k, _| !k.starts_with(&format!("{DOMAIN}/")) || k == ANNOTATION_CAPTURE_OUTPUT || k == ANNOTATION_CONTAINER);
    run_annotations.insert(ANNOTATION_JOB_ID.into(), job_id.as_str().into());
    run.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: tname.clone(),
        uid: uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);

    let spec = run.spec.get_or_insert_with(Default::default);
    spec.suspend = Some(false);
    spec.selector = None;
    spec.manual_selector = None;
    // A run is the built-in Job controller's to run and this controller's to
    // watch end. `managedBy` would hand it to another controller (the built-in
    // one then skips it, and if nothing else runs it the run never ends and a
    // start holds its gated pods); `parallelism: 0` would leave it without a
    // pod until its deadline. Both are the template's business while it is
    // suspended, not its runs'.
    spec.managed_by = None;
    if spec.parallelism == Some(0) {
        spec.parallelism = None;
    }
    if let Some(ttl) = spec.ttl_seconds_after_finished.as_mut() {
        *ttl = (*ttl).max(MIN_TTL_AFTER_FINISHED);
    }
    let pod_labels = spec.template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(Default::default);
    // The run's pods are what the environment's gated pods wait for: admission
    // never gates a pod with this label.
    pod_labels.insert(LABEL_RUN.into(), occurrence.into());

    if let Some(pod) = spec.template.spec.as_mut() {
        prepend_env(pod, &run_variables(&job_id, event, facts.deploy_id));
    }

    set_command(spec, &annotations, event)?;
    Ok(run)
}

/// The event's `on-<event>-command` / `on-<event>-args`, in the container the
/// annotation `container` names (else the first).
fn set_command(spec: &mut JobSpec, annotations: &BTreeMap<String, String>, event: Event) -> Result<(), BuildError> {
    let command = json_list(annotations, annotation_on_command(event))?;
    let args = json_list(annotations, annotation_on_args(event))?;
    if command.is_none() && args.is_none() {
        return Ok(());
    }
    let containers = &mut spec.template.spec.get_or_insert_with(Default::default).containers;
    if containers.is_empty() {
        return Err(BuildError::NoContainers);
    }
    let index = match annotations.get(ANNOTATION_CONTAINER) {
        None => 0,
        Some(wanted) => containers.iter().position(|c| &c.name == wanted).ok_or_else(|| BuildError::NoSuchContainer {
            annotation: ANNOTATION_CONTAINER,
            name: wanted.clone(),
            names: containers.iter().map(|c| c.name.clone()).collect(),
        })?,
    };
    let c = &mut containers[index];
    if let Some(command) = command {
        c.command = Some(command);
    }
    if let Some(args) = args {
        c.args = Some(args);
    }
    Ok(())
}

/// Puts `vars` first in the `env` of every container and init container, so
/// that the container's own entries, which come after, win, and may refer to
/// them (`$(LIFECYCLE_EVENT)`). A name the container sets itself is not added
/// (its own value wins anyway, and the API warns of a duplicate).
pub(crate) fn prepend_env(pod: &mut PodSpec, vars: &[(&'static str, String)]) {
    let containers = pod.containers.iter_mut().chain(pod.init_containers.iter_mut().flatten());
    for c in containers {
        prepend_to(c, vars);
    }
}

fn prepend_to(c: &mut Container, vars: &[(&'static str, String)]) {
    let own = c.env.take().unwrap_or_default();
    let mut env: Vec<EnvVar> = vars
        .iter()
        .filter(|(name, _)| !own.iter().any(|e| e.name == *name))
        .map(|(name, value)| EnvVar { name: name.to_string(), value: Some(value.clone()), value_from: None })
        .collect();
    env.extend(own);
    c.env = (!env.is_empty()).then_some(env);
}

fn json_list(annotations: &BTreeMap<String, String>, key: String) -> Result<Option<Vec<String>>, BuildError> {
    match annotations.get(&key) {
        None => Ok(None),
        Some(v) => serde_json::from_str::<Vec<String>>(v)
            .map(Some)
            .map_err(|e| BuildError::BadCommand { annotation: key, error: e.to_string() }),
    }
}

/// The existing Job is that run: owned by the template and labelled with
/// the same event and occurrence (the `run` label is the server's alone). (Anything else is a name
/// collision, reported rather than taken for the run.)
pub(crate) fn is_same_run(existing: &Job, template_uid: &str, event: Event, occurrence: &str) -> bool {
    let owned = existing.metadata.owner_references.iter().flatten().any(|o| o.uid == template_uid);
    let labels = existing.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    owned && label(LABEL_EVENT) == Some(event.as_str()) && label(LABEL_RUN) == Some(occurrence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    use lifecycle_contract::job_copy::LAST_APPLIED;
    use lifecycle_contract::names::{ANNOTATION_FORCE_RUN, ANNOTATION_ON, ANNOTATION_OUTPUTS, LABEL_CAPTURE};

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn template(annotations: &[(&str, &str)]) -> Job {
        let controller_labels = [
            ("controller-uid", "u-1"),
            ("batch.kubernetes.io/controller-uid", "u-1"),
            ("job-name", "migrate"),
            ("batch.kubernetes.io/job-name", "migrate"),
        ];
        let mut pod_labels = controller_labels.to_vec();
        pod_labels.push((LABEL_CAPTURE, "MIGRATE"));
        pod_labels.push(("app", "db"));
        let mut job_labels = controller_labels.to_vec();
        job_labels.push(("team", "data"));
        Job {
            metadata: ObjectMeta {
                name: Some("migrate".into()),
                namespace: Some("env1".into()),
                uid: Some("u-1".into()),
                resource_version: Some("42".into()),
                labels: Some(map(&job_labels)),
                annotations: Some(map(annotations)),
                finalizers: Some(vec!["lifecycle-jobs.dev/outputs-cleanup".into()]),
                ..Default::default()
            },
            spec: Some(JobSpec {
                suspend: Some(true),
                manual_selector: Some(false),
                selector: Some(LabelSelector {
                    match_labels: Some(map(&[("batch.kubernetes.io/controller-uid", "u-1")])),
                    ..Default::default()
                }),
                backoff_limit: Some(2),
                active_deadline_seconds: Some(600),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(map(&pod_labels)), ..Default::default() }),
                    spec: Some(PodSpec {
                        containers: vec![
                            Container {
                                name: "main".into(),
                                image: Some("busybox:local".into()),
                                command: Some(vec!["sh".into()]),
                                args: Some(vec!["-c".into(), "echo default".into()]),
                                ..Default::default()
                            },
                            Container { name: "helper".into(), ..Default::default() },
                        ],
                        restart_policy: Some("Never".into()),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }

    /// Issue 19: a tenant who reads the template (its UID, the occurrence in
    /// `last-runs`) cannot compute the next run's name without the key.
    #[test]
    fn suffixes_depend_on_a_key_no_tenant_reads() {
        let mine = suffix("uid-1", Event::Start, "3");
        assert_eq!(mine, suffix_with(&NAME_KEY[..], "uid-1", Event::Start, "3"));
        assert_ne!(mine, suffix_with(b"", "uid-1", Event::Start, "3"), "the unkeyed hash is not the name");
        assert_ne!(suffix_with(b"key-a", "uid-1", Event::Start, "3"), suffix_with(b"key-b", "uid-1", Event::Start, "3"));
        assert_eq!(suffix_with(b"key-a", "uid-1", Event::Start, "3"), suffix_with(b"key-a", "uid-1", Event::Start, "3"));
        // The key is random: not all zeroes (1 in 2^256).
        assert!(NAME_KEY.iter().any(|b| *b != 0));
    }

    #[test]
    fn suffixes_are_deterministic_and_distinct() {
        let a = suffix("uid-1", Event::Start, "3");
        assert_eq!(a, suffix("uid-1", Event::Start, "3"));
        assert_eq!(a.len(), SUFFIX_LEN);
        assert!(a.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(a, suffix("uid-1", Event::Start, "4"));
        assert_ne!(a, suffix("uid-1", Event::Stop, "3"));
        assert_ne!(a, suffix("uid-2", Event::Start, "3"));
        // No ambiguity from concatenation.
        assert_ne!(suffix("uid-1", Event::Start, "13"), suffix("uid-11", Event::Start, "3"));
        let many: std::collections::HashSet<_> = (0..5000).map(|i| suffix("u", Event::Start, &i.to_string())).collect();
        assert_eq!(many.len(), 5000);
    }

    #[test]
    fn names_fit_in_63_characters() {
        assert_eq!(run_name("migrate", Event::Start, "bcdfghjk"), "migrate-start-bcdfghjk");
        let long = "a".repeat(63);
        for event in Event::ALL {
            let n = run_name(&long, event, "bcdfghjk");
            assert_eq!(n.len(), 63, "{n}");
            assert!(n.ends_with(&format!("-{event}-bcdfghjk")));
        }
        // The cut never leaves a dash or a dot before the event.
        let tricky = format!("{}-.-b", "a".repeat(47));
        let n = run_name(&tricky, Event::Delete, "bcdfghjk");
        assert!(n.len() <= 63);
        assert!(!n.contains("--delete") && !n.contains(".-delete"), "{n}");
        assert!(n.starts_with(&"a".repeat(47)));
    }

    #[test]
    fn builds_a_run_from_a_template() {
        let t = template(&[
            (ANNOTATION_ON, "start,stop"),
            (ANNOTATION_FORCE_RUN, "stop"),
            (ANNOTATION_OUTPUTS, "{}"),
            ("lifecycle-jobs.dev/on-stop-command", r#"["sh","-c"]"#),
            ("lifecycle-jobs.dev/on-stop-args", r#"["echo stopping"]"#),
            ("lifecycle-jobs.dev/last-runs", "{}"),
            (LAST_APPLIED, "{...}"),
            ("example.com/owner", "team-a"),
        ]);
        let run = build_run(&t, Event::Stop, "5", "migrate-stop-bcdfghjk").unwrap();
        let m = &run.metadata;
        assert_eq!(m.name.as_deref(), Some("migrate-stop-bcdfghjk"));
        assert_eq!(m.namespace.as_deref(), Some("env1"));
        assert_eq!(m.resource_version, None);
        assert_eq!(m.uid, None);
        assert_eq!(m.finalizers, None);
        assert_eq!(
            m.labels.as_ref().unwrap(),
            &map(&[("team", "data"), (LABEL_JOB, "migrate"), (LABEL_EVENT, "stop"), (LABEL_RUN, "5")])
        );
        assert_eq!(m.annotations.as_ref().unwrap(), &map(&[("example.com/owner", "team-a"), (ANNOTATION_JOB_ID, "MIGRATE")]));
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("Job", "migrate", "u-1"));
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));

        let spec = run.spec.unwrap();
        assert_eq!(spec.suspend, Some(false));
        assert_eq!(spec.selector, None);
        assert_eq!(spec.manual_selector, None);
        assert_eq!(spec.backoff_limit, Some(2));
        assert_eq!(spec.active_deadline_seconds, Some(600));
        assert_eq!(spec.ttl_seconds_after_finished, None);
        let pod = spec.template;
        assert_eq!(pod.metadata.unwrap().labels.unwrap(), map(&[(LABEL_CAPTURE, "MIGRATE"), ("app", "db"), (LABEL_RUN, "5")]));
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.command.as_ref().unwrap(), &vec!["sh".to_string(), "-c".to_string()]);
        assert_eq!(c.args.as_ref().unwrap(), &vec!["echo stopping".to_string()]);
        assert_eq!(c.image.as_deref(), Some("busybox:local"));
    }

    #[test]
    fn default_command_and_chosen_container() {
        let t = template(&[
            (ANNOTATION_ON, "start,stop"),
            (ANNOTATION_CONTAINER, "helper"),
            ("lifecycle-jobs.dev/on-start-args", r#"["seed"]"#),
            (ANNOTATION_JOB_ID, "zf138d9c8"),
            (ANNOTATION_CAPTURE_OUTPUT, "true"),
        ]);
        // Stop has no per-event command: the template's own.
        let stop = build_run(&t, Event::Stop, "2", "n").unwrap();
        let cs = &stop.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers;
        assert_eq!(cs[0].args.as_ref().unwrap(), &vec!["-c".to_string(), "echo default".to_string()]);
        assert_eq!(cs[1].args, None);
        let ann = stop.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann.get(ANNOTATION_JOB_ID).map(String::as_str), Some("ZF138D9C8"));
        assert_eq!(ann.get(ANNOTATION_CONTAINER).map(String::as_str), Some("helper"));
        assert_eq!(ann.get(ANNOTATION_CAPTURE_OUTPUT).map(String::as_str), Some("true"));
        // Start: args in the helper container only, its command untouched.
        let start = build_run(&t, Event::Start, "2", "n").unwrap();
        let cs = &start.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers;
        assert_eq!(cs[1].args.as_ref().unwrap(), &vec!["seed".to_string()]);
        assert_eq!(cs[1].command, None);
        assert_eq!(cs[0].args.as_ref().unwrap(), &vec!["-c".to_string(), "echo default".to_string()]);
    }

    #[test]
    fn ttl_is_raised_to_the_minimum() {
        let mut t = template(&[(ANNOTATION_ON, "start")]);
        t.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(0);
        let run = build_run(&t, Event::Start, "1", "n").unwrap();
        assert_eq!(run.spec.unwrap().ttl_seconds_after_finished, Some(MIN_TTL_AFTER_FINISHED));
        t.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(86400);
        let run = build_run(&t, Event::Start, "1", "n").unwrap();
        assert_eq!(run.spec.unwrap().ttl_seconds_after_finished, Some(86400));
    }

    #[test]
    fn broken_templates_are_reported() {
        let t = template(&[(ANNOTATION_ON, "stop"), ("lifecycle-jobs.dev/on-stop-command", "sh -c")]);
        let e = build_run(&t, Event::Stop, "1", "n").unwrap_err();
        assert!(matches!(e, BuildError::BadCommand { .. }));
        assert!(e.to_string().contains("lifecycle-jobs.dev/on-stop-command"), "{e}");
        // A broken annotation of another event does not matter.
        assert!(build_run(&t, Event::Start, "1", "n").is_ok());

        let t = template(&[(ANNOTATION_ON, "stop"), (ANNOTATION_CONTAINER, "nope"), ("lifecycle-jobs.dev/on-stop-args", "[]")]);
        let e = build_run(&t, Event::Stop, "1", "n").unwrap_err();
        assert!(e.to_string().contains("\"nope\"") && e.to_string().contains("helper"), "{e}");

        let mut t = template(&[(ANNOTATION_ON, "stop")]);
        t.metadata.uid = None;
        assert_eq!(build_run(&t, Event::Stop, "1", "n").unwrap_err(), BuildError::Unnamed);
    }

    #[test]
    fn recognises_its_own_run() {
        let t = template(&[(ANNOTATION_ON, "start")]);
        let mut run = build_run(&t, Event::Start, "3", "n").unwrap();
        assert!(is_same_run(&run, "u-1", Event::Start, "3"));
        assert!(!is_same_run(&run, "u-2", Event::Start, "3"));
        assert!(!is_same_run(&run, "u-1", Event::Start, "4"));
        assert!(!is_same_run(&run, "u-1", Event::Stop, "3"));
        run.metadata.owner_references = None;
        assert!(!is_same_run(&run, "u-1", Event::Start, "3"));
    }

    fn env_of(c: &Container) -> Vec<(String, String)> {
        c.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
    }

    #[test]
    fn run_pods_get_the_event_deploy_id_and_job_id_first_and_their_own_env_wins() {
        let mut t = template(&[(ANNOTATION_ON, "start,delete"), (ANNOTATION_JOB_ID, "tofu")]);
        let pod = t.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
        pod.containers[0].env = Some(vec![
            EnvVar { name: "TF_IN_AUTOMATION".into(), value: Some("1".into()), value_from: None },
            EnvVar { name: "LIFECYCLE_EVENT".into(), value: Some("mine".into()), value_from: None },
        ]);
        pod.init_containers = Some(vec![Container { name: "init".into(), ..Default::default() }]);
        let run = build_run_with(&t, Event::Delete, "4", "n", RunFacts { deploy_id: Some("v7") }).unwrap();
        let pod = run.spec.unwrap().template.spec.unwrap();
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        // Its own LIFECYCLE_EVENT stays, after ours would have been: ours is left out.
        assert_eq!(
            env_of(&pod.containers[0]),
            [
                s("LIFECYCLE_DEPLOY_ID", "v7"),
                s("QOVERY_JOB_ID", "TOFU"),
                s("TF_IN_AUTOMATION", "1"),
                s("LIFECYCLE_EVENT", "mine")
            ]
        );
        let all = [s("LIFECYCLE_EVENT", "delete"), s("LIFECYCLE_DEPLOY_ID", "v7"), s("QOVERY_JOB_ID", "TOFU")];
        assert_eq!(env_of(&pod.containers[1]), all);
        assert_eq!(env_of(&pod.init_containers.as_ref().unwrap()[0]), all);
        // No deploy-id known: none given.
        let run = build_run(&t, Event::Start, "4", "n").unwrap();
        let c = &run.spec.unwrap().template.spec.unwrap().containers[1];
        assert_eq!(env_of(c), [s("LIFECYCLE_EVENT", "start"), s("QOVERY_JOB_ID", "TOFU")]);
    }

    /// Issue 19: a template with `spec.managedBy` (or `parallelism: 0`) made
    /// runs that the built-in Job controller never ran, so they never ended.
    #[test]
    fn runs_are_the_builtin_job_controllers() {
        let mut t = template(&[(ANNOTATION_ON, "start")]);
        let spec = t.spec.as_mut().unwrap();
        spec.managed_by = Some("example.com/not-the-job-controller".into());
        spec.parallelism = Some(0);
        let run = build_run(&t, Event::Start, "1", "n").unwrap();
        let spec = run.spec.unwrap();
        assert_eq!(spec.managed_by, None);
        assert_eq!(spec.parallelism, None);
        assert_eq!(spec.suspend, Some(false));
        // A parallelism of its own is the template's choice and stays.
        t.spec.as_mut().unwrap().parallelism = Some(3);
        assert_eq!(build_run(&t, Event::Start, "1", "n").unwrap().spec.unwrap().parallelism, Some(3));
    }
}
