//! `clone JOB --to NS`: copy a lifecycle job to another environment with Qovery's clone rules.
//! The transformation is pure ([`clone_job`]); [`run`] checks the target and creates the copy.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use lifecycle_contract::{JobId, names};

use crate::cli::{CloneArgs, ObjectFormat};
use crate::client::{Ctx, FIELD_MANAGER, KubeResultExt, get_environment, is_forbidden};
use crate::jobs;

/// Labels Kubernetes generates for a Job and its pods from the Job's uid and name.
const GENERATED_LABELS: [&str; 4] =
    ["controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name"];

/// Annotations that describe the source object, not the job.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const JOB_TRACKING: &str = "batch.kubernetes.io/job-tracking";

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

/// The copy of a lifecycle job for another environment, and the report of what was and was not
/// copied, and why.
pub fn clone_job(src: &Job, opts: &CloneOptions) -> anyhow::Result<Cloned> {
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
    let name = opts.name.clone().unwrap_or_else(|| src_name.to_string());
    let mut copied = Vec::new();
    let mut not_copied = Vec::new();

    // Metadata: labels and annotations, minus what belongs to the source object.
    let mut labels = src.metadata.labels.clone().unwrap_or_default();
    let mut generated: Vec<&str> = Vec::new();
    for l in GENERATED_LABELS {
        if labels.remove(l).is_some() && !generated.contains(&l) {
            generated.push(l);
        }
    }
    for l in [names::LABEL_JOB, names::LABEL_EVENT, names::LABEL_RUN, names::LABEL_CAPTURE] {
        if labels.remove(l).is_some() {
            not_copied.push(item(format!("label {l}"), "set by lifecycle-jobs itself"));
        }
    }
    let mut annotations = src.metadata.annotations.clone().unwrap_or_default();
    let source_job_id = annotations.get(names::ANNOTATION_JOB_ID).cloned();
    let job_id_source = jobs::job_id(src);
    let job_id_copy = if opts.keep_job_id { JobId::derive(source_job_id.as_deref(), &name) } else { JobId::derive(None, &name) };
    let dropped: [(&str, String); 5] = [
        (
            names::ANNOTATION_OUTPUTS,
            format!("the outputs published in the source environment; the copy publishes its own in {}", opts.namespace),
        ),
        (jobs::ANNOTATION_LAST_RUNS, "the record of runs in the source environment".into()),
        (names::ANNOTATION_FORCE_RUN, "a pending request for the source environment".into()),
        (
            LAST_APPLIED,
            format!(
                "describes the source object; if you manage the job with `kubectl apply`, apply its manifest to {} instead",
                opts.namespace
            ),
        ),
        (JOB_TRACKING, "set by the Job controller".into()),
    ];
    for (key, why) in dropped {
        if annotations.remove(key).is_some() {
            not_copied.push(item(format!("annotation {key}"), why));
        }
    }
    if let Some(v) = &source_job_id {
        if opts.keep_job_id {
            copied.push(item(
                format!("annotation {}={v}", names::ANNOTATION_JOB_ID),
                format!(
                    "--keep-job-id: the copy publishes the same variable names, {}",
                    names::variable_name(&job_id_copy, "<KEY>")
                ),
            ));
        } else {
            annotations.remove(names::ANNOTATION_JOB_ID);
            not_copied.push(item(
                format!("annotation {}={v}", names::ANNOTATION_JOB_ID),
                format!(
                    "another environment gets its own JOBID, as a cloned Qovery job gets a new id: the copy publishes {} instead of {} (keep the old names with --keep-job-id)",
                    names::variable_name(&job_id_copy, "<KEY>"),
                    names::variable_name(&job_id_source, "<KEY>")
                ),
            ));
        }
    }
    for (k, v) in &annotations {
        if k.starts_with(&format!("{}/", names::DOMAIN)) && k != names::ANNOTATION_JOB_ID {
            copied.push(item(format!("annotation {k}={}", crate::table::truncate(v, 60)), "lifecycle setting"));
        }
    }
    let others: Vec<&String> = annotations.keys().filter(|k| !k.starts_with(&format!("{}/", names::DOMAIN))).collect();
    if !others.is_empty() {
        copied.push(item(format!("annotations {}", join(&others)), "the job's own"));
    }
    if !labels.is_empty() {
        copied.push(item(format!("labels {}", join(&labels.keys().collect::<Vec<_>>())), "the job's own"));
    }

    // Identity and history of the source object.
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
        not_copied.push(item(identity.join(", "), "identity and history of the source object; the API server sets new ones"));
    }
    if m.owner_references.as_ref().is_some_and(|o| !o.is_empty()) {
        not_copied.push(item("ownerReferences", "the owners live in the source namespace"));
    }
    if m.finalizers.as_ref().is_some_and(|f| !f.is_empty()) {
        not_copied.push(item("finalizers", "set by controllers for the source object; they add their own to the copy"));
    }
    if src.status.is_some() {
        not_copied.push(item("status", "the state of the source Job"));
    }
    not_copied
        .push(item("runs", format!("they belong to the source environment; the copy runs on {}'s own events", opts.namespace)));

    // Spec.
    let mut spec = src.spec.clone().ok_or_else(|| anyhow!("job {src_name} has no spec"))?;
    let mut selector_dropped = false;
    if spec.manual_selector == Some(true) {
        copied.push(item("spec.selector", "manualSelector: the selector is the job's own"));
    } else if spec.selector.take().is_some() {
        spec.manual_selector = None;
        selector_dropped = true;
    }
    if let Some(tm) = spec.template.metadata.as_mut()
        && let Some(l) = tm.labels.as_mut()
    {
        for key in GENERATED_LABELS {
            if l.remove(key).is_some() && !generated.contains(&key) {
                generated.push(key);
            }
        }
        if let Some(v) = l.remove(names::LABEL_CAPTURE) {
            not_copied.push(item(
                format!("pod template label {}={v}", names::LABEL_CAPTURE),
                format!("set by the webhook when the copy is admitted (value: its JOBID, {job_id_copy})"),
            ));
        }
        if l.is_empty() {
            tm.labels = None;
        }
    }
    if selector_dropped || !generated.is_empty() {
        let mut what = Vec::new();
        if selector_dropped {
            what.push("spec.selector".to_string());
        }
        if !generated.is_empty() {
            what.push(format!("labels {} (Job and pod template)", generated.join(", ")));
        }
        not_copied.push(item(what.join(" and "), "generated by Kubernetes from the new Job's uid and name"));
    }
    spec.suspend = Some(true);
    copied.push(item("spec.suspend=true", "a lifecycle job is a template that never runs itself (the webhook sets it too)"));
    copied.push(item(
        format!("spec.template: {}", describe_pod(spec.template.spec.as_ref())),
        "the job itself: image, command and args, resources, env and envFrom, volumes",
    ));
    if let Some(b) = spec.backoff_limit {
        copied.push(item(format!("spec.backoffLimit={b}"), "restarts"));
    }
    if let Some(d) = spec.active_deadline_seconds {
        copied.push(item(format!("spec.activeDeadlineSeconds={d}"), "max duration"));
    }
    if let Some(t) = spec.ttl_seconds_after_finished {
        copied.push(item(format!("spec.ttlSecondsAfterFinished={t}"), "clean-up of finished runs"));
    }

    let references = spec.template.spec.as_ref().map(references).unwrap_or_default();

    let job = Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(opts.namespace.clone()),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    Ok(Cloned { job, copied, not_copied, references, job_id_source, job_id_copy })
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

/// Whether a referenced object exists in the target namespace (`None`: cannot tell).
async fn exists(client: &Client, ns: &str, r: &Reference) -> Option<bool> {
    let found = match r.kind {
        "Secret" => Api::<Secret>::namespaced(client.clone(), ns).get_metadata_opt(&r.name).await.map(|o| o.is_some()),
        "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), ns).get_metadata_opt(&r.name).await.map(|o| o.is_some()),
        _ => Api::<ServiceAccount>::namespaced(client.clone(), ns).get_metadata_opt(&r.name).await.map(|o| o.is_some()),
    };
    found.ok()
}

pub async fn run(ctx: &Ctx, args: &CloneArgs) -> anyhow::Result<()> {
    let src_ns = &ctx.namespace;
    let to = &args.to;
    let src = Api::<Job>::namespaced(ctx.client.clone(), src_ns)
        .get_opt(&args.job)
        .await
        .doing(format_args!("get job {} in namespace {src_ns}", args.job))?
        .ok_or_else(|| anyhow!("job {} not found in namespace {src_ns}\n  hint: give the source namespace with -n", args.job))?;
    let opts = CloneOptions { namespace: to.clone(), name: args.name.clone(), keep_job_id: args.keep_job_id };
    let cloned = clone_job(&src, &opts)?;
    let new_name = jobs::name(&cloned.job).to_string();
    if to == src_ns && new_name == args.job {
        bail!("the copy would replace job {} in its own namespace\n  hint: give the copy another name with --name", args.job);
    }
    let target_ns = get_environment(&ctx.client, to).await?;

    let target_jobs = Api::<Job>::namespaced(ctx.client.clone(), to);
    if target_jobs.get_metadata_opt(&new_name).await.doing(format_args!("get job {new_name} in namespace {to}"))?.is_some() {
        bail!("a job {new_name} already exists in namespace {to}\n  hint: give the copy another name with --name");
    }
    match target_jobs.list(&ListParams::default()).await {
        Ok(list) => {
            if let Some(other) = list.items.iter().find(|j| jobs::run_of(j).is_none() && jobs::job_id(j) == cloned.job_id_copy) {
                bail!(
                    "job {} in namespace {to} already has JOBID {}: the webhook would refuse the copy\n  hint: give the copy another name with --name{}",
                    jobs::name(other),
                    cloned.job_id_copy,
                    if args.keep_job_id { ", or drop --keep-job-id" } else { "" }
                );
            }
        }
        Err(e) if is_forbidden(&e) => {}
        Err(e) => return Err(crate::client::explain(e, format_args!("list jobs in namespace {to}"))),
    }

    let mut presence = Vec::new();
    for r in &cloned.references {
        presence.push(exists(&ctx.client, to, r).await);
    }

    if !args.dry_run {
        target_jobs
            .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &cloned.job)
            .await
            .doing(format_args!("create job {new_name} in namespace {to}"))?;
    }

    let report = render_report(&args.job, src_ns, &cloned, &presence, args.dry_run);
    match args.output {
        Some(format) => {
            eprint!("{report}");
            let text = match format {
                ObjectFormat::Json => crate::output::json(&cloned.job)?,
                ObjectFormat::Yaml => crate::output::yaml(&cloned.job)?,
            };
            print!("{text}");
        }
        None => print!("{report}"),
    }

    let missing: Vec<String> = cloned
        .references
        .iter()
        .zip(&presence)
        .filter(|(r, p)| **p != Some(true) && !r.optional)
        .map(|(r, _)| format!("{} {}", r.kind, r.name))
        .collect();
    let started =
        target_ns.metadata.labels.as_ref().and_then(|l| l.get(names::LABEL_STATE)).is_none_or(|s| s.is_empty() || s == "started");
    let on_start = jobs::template_events(&cloned.job).is_ok_and(|on| on.contains(&lifecycle_contract::Event::Start));
    if started && on_start && !args.dry_run {
        eprintln!(
            "note: {to} is started: its controller runs the copy's start command now (a lifecycle job with start created in a started environment is a start event)"
        );
    }
    if !missing.is_empty() {
        eprintln!(
            "warning: not copied, and not (known to be) in {to}: {}: create them in {to} before the job runs",
            missing.join(", ")
        );
    }
    Ok(())
}

fn render_report(src_name: &str, src_ns: &str, c: &Cloned, presence: &[Option<bool>], dry_run: bool) -> String {
    let to = c.job.metadata.namespace.as_deref().unwrap_or_default();
    let name = jobs::name(&c.job);
    let mut out = format!(
        "{} lifecycle job {src_name} (namespace {src_ns}) to namespace {to} as {name}\n",
        if dry_run { "Would clone (dry run, nothing created)" } else { "Cloned" }
    );
    out.push_str("\nCopied:\n");
    for i in &c.copied {
        out.push_str(&format!("  {}: {}\n", i.what, i.why));
    }
    out.push_str("\nNot copied:\n");
    for i in &c.not_copied {
        out.push_str(&format!("  {}: {}\n", i.what, i.why));
    }
    if !c.references.is_empty() {
        out.push_str(&format!(
            "\nReferenced, NOT copied (Secrets, ConfigMaps and ServiceAccounts stay per environment): create them in {to} before the job runs\n"
        ));
        for (r, p) in c.references.iter().zip(presence.iter().copied().chain(std::iter::repeat(None))) {
            let state = match p {
                Some(true) => format!("exists in {to}"),
                Some(false) if r.optional => format!("missing in {to} (optional)"),
                Some(false) => format!("MISSING in {to}"),
                None => format!("cannot tell whether it exists in {to}"),
            };
            out.push_str(&format!("  {} {} ({}): {state}\n", r.kind, r.name, r.used_by.join("; ")));
        }
    }
    out.push_str(&format!(
        "\nJOBID in {to}: {} (variables {}){}\n",
        c.job_id_copy,
        names::variable_name(&c.job_id_copy, "<KEY>"),
        if c.job_id_copy == c.job_id_source { String::new() } else { format!("; in {src_ns}: {}", c.job_id_source) }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobSpec, JobStatus};
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapVolumeSource, EnvFromSource, EnvVar, EnvVarSource, LocalObjectReference, PodTemplateSpec,
        ResourceRequirements, SecretEnvSource, SecretKeySelector, Volume,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ManagedFieldsEntry, OwnerReference, Time};

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn source() -> Job {
        let uid = "1234-abcd";
        Job {
            metadata: ObjectMeta {
                name: Some("seed".into()),
                namespace: Some("preview-1".into()),
                uid: Some(uid.into()),
                resource_version: Some("42".into()),
                generation: Some(1),
                creation_timestamp: Some(Time("2025-01-01T00:00:00Z".parse().unwrap())),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                owner_references: Some(vec![OwnerReference { name: "x".into(), ..Default::default() }]),
                finalizers: Some(vec!["lifecycle-jobs.dev/outputs".into()]),
                labels: Some(map(&[("app", "shop"), ("batch.kubernetes.io/controller-uid", uid), ("controller-uid", uid)])),
                annotations: Some(map(&[
                    (names::ANNOTATION_ON, "start,stop"),
                    ("lifecycle-jobs.dev/on-stop-command", r#"["sh","-c","echo bye"]"#),
                    (names::ANNOTATION_CONTAINER, "main"),
                    (names::ANNOTATION_JOB_ID, "zf138d9c8"),
                    (names::ANNOTATION_OUTPUTS, "{}"),
                    (jobs::ANNOTATION_LAST_RUNS, "{}"),
                    (names::ANNOTATION_FORCE_RUN, "stop"),
                    (LAST_APPLIED, "{...}"),
                    ("team", "data"),
                ])),
                ..Default::default()
            },
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
                    spec: Some(PodSpec {
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
                                        secret_key_ref: Some(SecretKeySelector {
                                            name: "db-creds".into(),
                                            key: "pass".into(),
                                            optional: None,
                                        }),
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
                                    config_map_ref: Some(ConfigMapEnvSource {
                                        name: names::OUTPUTS_OBJECT.into(),
                                        optional: Some(true),
                                    }),
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
                    }),
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
        assert!(
            job_id.why.contains("QOVERY_OUTPUT_JOB_SEED_<KEY> instead of QOVERY_OUTPUT_JOB_ZF138D9C8_<KEY>"),
            "{}",
            job_id.why
        );
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
        run.metadata.labels.as_mut().unwrap().insert(names::LABEL_JOB.into(), "seed".into());
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
}
