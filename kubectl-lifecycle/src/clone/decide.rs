//! The decision of `clone`, pure: the copy of a lifecycle job for another
//! environment with Qovery's clone rules, and the report of what was and was
//! not copied, and why. It starts from the same fresh copy of a Job as the
//! controller's runs (`lifecycle_contract::job_copy`).

use std::collections::BTreeMap;

use anyhow::bail;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use lifecycle_contract::job_copy::{self, JOB_TRACKING, LAST_APPLIED};
use lifecycle_contract::lifecycle_job::JobFacts;
use lifecycle_contract::{JobId, names};

use crate::jobs;

#[derive(Debug, Clone)]
pub struct CloneOptions {
    pub namespace: String,
    pub name: Option<String>,
    pub keep_job_id: bool,
}

/// One line of the report: what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub what: String,
    pub why: String,
}

fn item(what: impl Into<String>, why: impl Into<String>) -> Item {
    Item { what: what.into(), why: why.into() }
}

/// An object the job refers to, which is not copied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub kind: &'static str,
    pub name: String,
    /// Where it is used (`env DB_PASS of container main`, ...).
    pub used_by: Vec<String>,
    /// Whether every use is `optional: true`.
    pub optional: bool,
}

#[derive(Debug, Clone)]
pub struct Cloned {
    pub job: Job,
    pub copied: Vec<Item>,
    pub not_copied: Vec<Item>,
    pub references: Vec<Reference>,
    pub job_id_source: JobId,
    pub job_id_copy: JobId,
}

/// What a clone copied and what it left behind, each with why, in the order found.
#[derive(Debug, Default)]
struct Items {
    copied: Vec<Item>,
    not_copied: Vec<Item>,
}

impl Items {
    fn copied(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.copied.push(item(what, why));
    }
    fn not_copied(&mut self, what: impl Into<String>, why: impl Into<String>) {
        self.not_copied.push(item(what, why));
    }
}

/// The copy of a lifecycle job for another environment, and the report of what was and was not
/// copied, and why.
pub fn clone_job(src: &Job, opts: &CloneOptions) -> anyhow::Result<Cloned> {
    check_source(src, opts)?;
    let name = opts.name.clone().unwrap_or_else(|| jobs::name(src).to_string());
    let mut items = Items::default();

    // What belongs to the source object stays behind, as for the controller's runs.
    let fresh = job_copy::fresh_copy(src, &name, &opts.namespace);
    let mut job = fresh.job.clone();
    let mut labels = job.metadata.labels.take().unwrap_or_default();
    let mut annotations = job.metadata.annotations.take().unwrap_or_default();
    let mut spec = job.spec.take().unwrap_or_default();

    drop_server_metadata(&mut labels, &mut annotations, &fresh.source_annotations, &opts.namespace, &mut items);
    let job_id_source = jobs::job_id(src);
    let job_id_copy = job_id_of_copy(&mut annotations, &name, &job_id_source, opts.keep_job_id, &mut items);
    list_own_metadata(&labels, &annotations, &mut items);
    leave_identity(src, &opts.namespace, &mut items);
    copy_spec(&mut spec, &fresh, &job_id_copy, &mut items);
    let references = spec.template.spec.as_ref().map(references).unwrap_or_default();

    job.metadata.labels = (!labels.is_empty()).then_some(labels);
    job.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    job.spec = Some(spec);
    Ok(Cloned { job, copied: items.copied, not_copied: items.not_copied, references, job_id_source, job_id_copy })
}

/// Only a lifecycle job (a template, with a spec) is cloned; the error says what to do instead.
fn check_source(src: &Job, opts: &CloneOptions) -> anyhow::Result<()> {
    let src_name = jobs::name(src);
    if let Some(template) = jobs::run_of(src) {
        bail!(
            "job {src_name} is a run of lifecycle job {template}: runs are not cloned\n  hint: clone the lifecycle job: `kubectl lifecycle clone {template} -n {} --to {}`",
            src.metadata.namespace.as_deref().unwrap_or("SOURCE"),
            opts.namespace
        );
    }
    if !jobs::is_template(src) {
        bail!(
            "job {src_name} is not a lifecycle job (no annotation {}): clone copies lifecycle jobs\n  hint: a plain Job runs once where it is created: apply its manifest to {} instead",
            names::ANNOTATION_ON,
            opts.namespace
        );
    }
    if src.spec.is_none() {
        bail!("job {src_name} has no spec");
    }
    Ok(())
}

/// Metadata lifecycle-jobs sets on the source stays behind (the API server
/// refuses those names from anyone but lifecycle-jobs), and so do the
/// annotations that describe the source object.
fn drop_server_metadata(
    labels: &mut BTreeMap<String, String>,
    annotations: &mut BTreeMap<String, String>,
    source_annotations: &[&str],
    to: &str,
    items: &mut Items,
) {
    let server_labels = names::server_owned::RUN_LABELS.iter().chain(&names::server_owned::ADMISSION_LABELS);
    for l in server_labels {
        if labels.remove(*l).is_some() {
            items.not_copied(format!("label {l}"), "set by lifecycle-jobs itself");
        }
    }
    let dropped: [(&str, String); 4] = [
        (
            names::ANNOTATION_OUTPUTS,
            format!("the outputs published in the source environment; the copy publishes its own in {to}"),
        ),
        (names::ANNOTATION_OUTPUTS_PUBLISHED_BY, "which pod published in the source environment".into()),
        (names::ANNOTATION_LAST_RUNS, "the record of runs in the source environment".into()),
        (names::ANNOTATION_FORCE_RUN, "a pending request for the source environment".into()),
    ];
    for (key, why) in dropped {
        if annotations.remove(key).is_some() {
            items.not_copied(format!("annotation {key}"), why);
        }
    }
    for key in source_annotations {
        let why = match *key {
            LAST_APPLIED => format!(
                "describes the source object; if you manage the job with `kubectl apply`, apply its manifest to {to} instead"
            ),
            JOB_TRACKING => "set by the Job controller".into(),
            _ => "describes the source object".into(),
        };
        items.not_copied(format!("annotation {key}"), why);
    }
}

/// The copy's JOBID: its own name's, as a cloned Qovery job gets a new id,
/// unless `--keep-job-id` keeps the source's `job-id` annotation.
fn job_id_of_copy(
    annotations: &mut BTreeMap<String, String>,
    name: &str,
    job_id_source: &JobId,
    keep: bool,
    items: &mut Items,
) -> JobId {
    let source_job_id = annotations.get(names::ANNOTATION_JOB_ID).cloned();
    if !keep {
        annotations.remove(names::ANNOTATION_JOB_ID);
    }
    // The copy's JOBID as the contract reads the copy (admission records the same).
    let copy = JobFacts { name, job_id: annotations.get(names::ANNOTATION_JOB_ID).map(String::as_str), ..JobFacts::default() };
    let job_id_copy = copy.job_id().into_id();
    let Some(v) = &source_job_id else { return job_id_copy };
    let what = format!("annotation {}={v}", names::ANNOTATION_JOB_ID);
    let copy_names = names::variable_name(&job_id_copy, "<KEY>");
    if keep {
        items.copied(what, format!("--keep-job-id: the copy publishes the same variable names, {copy_names}"));
    } else {
        items.not_copied(
            what,
            format!(
                "another environment gets its own JOBID, as a cloned Qovery job gets a new id: the copy publishes {copy_names} instead of {} (keep the old names with --keep-job-id)",
                names::variable_name(job_id_source, "<KEY>")
            ),
        );
    }
    job_id_copy
}

/// The labels and annotations the copy keeps: lifecycle settings and the job's own.
fn list_own_metadata(labels: &BTreeMap<String, String>, annotations: &BTreeMap<String, String>, items: &mut Items) {
    let ours = |k: &str| k.starts_with(&format!("{}/", names::DOMAIN));
    for (k, v) in annotations {
        if ours(k) && k != names::ANNOTATION_JOB_ID {
            items.copied(format!("annotation {k}={}", crate::table::truncate(v, 60)), "lifecycle setting");
        }
    }
    let others: Vec<&String> = annotations.keys().filter(|k| !ours(k)).collect();
    if !others.is_empty() {
        items.copied(format!("annotations {}", join(&others)), "the job's own");
    }
    if !labels.is_empty() {
        items.copied(format!("labels {}", join(&labels.keys().collect::<Vec<_>>())), "the job's own");
    }
}

/// The identity, history and runs of the source object stay behind.
fn leave_identity(src: &Job, to: &str, items: &mut Items) {
    let m = &src.metadata;
    let identity: Vec<&str> = [
        m.uid.as_ref().map(|_| "uid"),
        m.resource_version.as_ref().map(|_| "resourceVersion"),
        m.generation.map(|_| "generation"),
        m.creation_timestamp.as_ref().map(|_| "creationTimestamp"),
        m.managed_fields.as_ref().map(|_| "managedFields"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !identity.is_empty() {
        items.not_copied(identity.join(", "), "identity and history of the source object; the API server sets new ones");
    }
    if m.owner_references.as_ref().is_some_and(|o| !o.is_empty()) {
        items.not_copied("ownerReferences", "the owners live in the source namespace");
    }
    if m.finalizers.as_ref().is_some_and(|f| !f.is_empty()) {
        items.not_copied("finalizers", "set by controllers for the source object; they add their own to the copy");
    }
    if src.status.is_some() {
        items.not_copied("status", "the state of the source Job");
    }
    items.not_copied("runs", format!("they belong to the source environment; the copy runs on {to}'s own events"));
}

/// The spec is the job itself and is copied, suspended (a template); what the
/// webhook and Kubernetes set on the source's stays behind.
fn copy_spec(spec: &mut JobSpec, fresh: &job_copy::FreshCopy, job_id_copy: &JobId, items: &mut Items) {
    if spec.manual_selector == Some(true) {
        items.copied("spec.selector", "manualSelector: the selector is the job's own");
    }
    if let Some(tm) = spec.template.metadata.as_mut()
        && let Some(l) = tm.labels.as_mut()
    {
        if let Some(v) = l.remove(names::LABEL_CAPTURE) {
            items.not_copied(
                format!("pod template label {}={v}", names::LABEL_CAPTURE),
                format!("set by the webhook when the copy is admitted (value: its JOBID, {job_id_copy})"),
            );
        }
        if l.is_empty() {
            tm.labels = None;
        }
    }
    if fresh.selector_dropped || !fresh.generated_labels.is_empty() {
        let mut what = Vec::new();
        if fresh.selector_dropped {
            what.push("spec.selector".to_string());
        }
        if !fresh.generated_labels.is_empty() {
            what.push(format!("labels {} (Job and pod template)", fresh.generated_labels.join(", ")));
        }
        items.not_copied(what.join(" and "), "generated by Kubernetes from the new Job's uid and name");
    }
    spec.suspend = Some(true);
    items.copied("spec.suspend=true", "a lifecycle job is a template that never runs itself (the webhook sets it too)");
    items.copied(
        format!("spec.template: {}", describe_pod(spec.template.spec.as_ref())),
        "the job itself: image, command and args, resources, env and envFrom, volumes",
    );
    if let Some(b) = spec.backoff_limit {
        items.copied(format!("spec.backoffLimit={b}"), "restarts");
    }
    if let Some(d) = spec.active_deadline_seconds {
        items.copied(format!("spec.activeDeadlineSeconds={d}"), "max duration");
    }
    if let Some(t) = spec.ttl_seconds_after_finished {
        items.copied(format!("spec.ttlSecondsAfterFinished={t}"), "clean-up of finished runs");
    }
}

fn join<S: AsRef<str>>(v: &[S]) -> String {
    v.iter().map(|s| s.as_ref()).collect::<Vec<_>>().join(", ")
}

fn describe_pod(spec: Option<&PodSpec>) -> String {
    let Some(spec) = spec else { return "no pod spec".into() };
    let containers: Vec<String> =
        spec.containers.iter().map(|c| format!("{} ({})", c.name, c.image.as_deref().unwrap_or("no image"))).collect();
    let mut parts = vec![format!("container{} {}", if containers.len() == 1 { "" } else { "s" }, containers.join(", "))];
    let inits = spec.init_containers.as_ref().map_or(0, Vec::len);
    if inits > 0 {
        parts.push(format!("{inits} init container{}", if inits == 1 { "" } else { "s" }));
    }
    let volumes = spec.volumes.as_ref().map_or(0, Vec::len);
    if volumes > 0 {
        parts.push(format!("{volumes} volume{}", if volumes == 1 { "" } else { "s" }));
    }
    parts.join(", ")
}

/// Secrets, ConfigMaps and the ServiceAccount a pod spec refers to (except `lifecycle-outputs`,
/// which every environment has of its own).
pub fn references(spec: &PodSpec) -> Vec<Reference> {
    let mut refs: BTreeMap<(&'static str, String), (Vec<String>, bool)> = BTreeMap::new();
    let mut add = |kind: &'static str, name: &str, used_by: String, optional: Option<bool>| {
        if name.is_empty() || name == names::OUTPUTS_OBJECT {
            return;
        }
        let e = refs.entry((kind, name.to_string())).or_insert((Vec::new(), true));
        e.0.push(used_by);
        e.1 &= optional.unwrap_or(false);
    };
    let containers: Vec<(&str, &Container)> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("init container", c))
        .chain(spec.containers.iter().map(|c| ("container", c)))
        .collect();
    for (what, c) in containers {
        for env in c.env.iter().flatten() {
            let Some(from) = &env.value_from else { continue };
            if let Some(r) = &from.secret_key_ref {
                add("Secret", &r.name, format!("env {} of {what} {}", env.name, c.name), r.optional);
            }
            if let Some(r) = &from.config_map_key_ref {
                add("ConfigMap", &r.name, format!("env {} of {what} {}", env.name, c.name), r.optional);
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.secret_ref {
                add("Secret", &r.name, format!("envFrom of {what} {}", c.name), r.optional);
            }
            if let Some(r) = &from.config_map_ref {
                add("ConfigMap", &r.name, format!("envFrom of {what} {}", c.name), r.optional);
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = &v.secret {
            add("Secret", s.secret_name.as_deref().unwrap_or_default(), format!("volume {}", v.name), s.optional);
        }
        if let Some(c) = &v.config_map {
            add("ConfigMap", &c.name, format!("volume {}", v.name), c.optional);
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(s) = &source.secret {
                add("Secret", &s.name, format!("volume {}", v.name), s.optional);
            }
            if let Some(c) = &source.config_map {
                add("ConfigMap", &c.name, format!("volume {}", v.name), c.optional);
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        add("Secret", &s.name, "imagePullSecrets".into(), None);
    }
    let sa = spec.service_account_name.as_deref().or(spec.service_account.as_deref());
    if let Some(sa) = sa.filter(|s| *s != "default") {
        add("ServiceAccount", sa, "serviceAccountName".into(), None);
    }
    refs.into_iter().map(|((kind, name), (used_by, optional))| Reference { kind, name, used_by, optional }).collect()
}
