//! Job admission: the capture label and its JOBID, the refusal of a duplicate
//! JOBID, lifecycle templates admitted suspended with checked annotations and
//! default resources.
//!
//! Duplicates are found in the watch-fed [`crate::index::JobIndex`]: no API
//! call here either.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use lifecycle_contract::names::{
    ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_CONTAINER, ANNOTATION_FORCE_RUN, ANNOTATION_JOB_ID, ANNOTATION_ON, ANNOTATION_STAGE,
    LABEL_CAPTURE, LABEL_RUN, annotation_on_args, annotation_on_command, opts_out,
};
use lifecycle_contract::transition::parse_stage;
use lifecycle_contract::{Event, JobId};

use super::review::{Op, Request, Verdict, escape};
use crate::index::JobIndex;
use crate::state::AppState;

#[derive(Debug, Deserialize, Default)]
struct JobIn<'a> {
    #[serde(default, borrow)]
    metadata: MetaIn<'a>,
    #[serde(default, borrow)]
    spec: SpecIn<'a>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaIn<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    generate_name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    labels: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(default, borrow)]
    annotations: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
struct SpecIn<'a> {
    #[serde(default)]
    suspend: Option<bool>,
    #[serde(default, borrow)]
    template: TemplateIn<'a>,
}

#[derive(Debug, Deserialize, Default)]
struct TemplateIn<'a> {
    #[serde(default, borrow)]
    metadata: Option<TemplateMeta<'a>>,
    #[serde(default, borrow)]
    spec: PodSpecIn<'a>,
}

#[derive(Debug, Deserialize, Default)]
struct TemplateMeta<'a> {
    #[serde(default, borrow)]
    labels: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

#[derive(Debug, Deserialize, Default)]
struct PodSpecIn<'a> {
    #[serde(default, borrow)]
    containers: Vec<ContainerIn<'a>>,
}

#[derive(Debug, Deserialize)]
struct ContainerIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    resources: Option<ResourcesIn>,
}

#[derive(Debug, Deserialize, Default)]
struct ResourcesIn {
    #[serde(default)]
    requests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    limits: Option<serde::de::IgnoredAny>,
}

/// Server settings the Job mutator needs.
#[derive(Debug, Clone, Copy)]
pub struct JobSettings<'a> {
    /// Default CPU request and limit of lifecycle job containers; empty: none.
    pub default_cpu: &'a str,
    /// Default memory request and limit; empty: none.
    pub default_memory: &'a str,
}

pub fn review(state: &AppState, req: &Request<'_>) -> Verdict {
    if req.sub_resource.is_some() {
        return Verdict::allow();
    }
    let Some(raw) = req.object else {
        return Verdict::allow();
    };
    let settings = JobSettings { default_cpu: &state.config.default_cpu, default_memory: &state.config.default_memory };
    let namespace = req.namespace.as_deref().unwrap_or("");
    match req.operation.as_ref() {
        "CREATE" => mutate_create(raw.get(), namespace, &state.jobs, settings),
        "UPDATE" => mutate_update(raw.get()),
        _ => Verdict::allow(),
    }
}

fn parse(raw: &str) -> Result<JobIn<'_>, Verdict> {
    serde_json::from_str(raw).map_err(|e| Verdict::deny(format!("lifecycle-jobs: cannot read the Job: {e}")))
}

/// A new Job in an environment.
pub fn mutate_create(raw: &str, namespace: &str, index: &JobIndex, settings: JobSettings<'_>) -> Verdict {
    let job = match parse(raw) {
        Ok(j) => j,
        Err(v) => return v,
    };
    let mut ops = Vec::new();
    let mut warnings = Vec::new();
    let ann = &job.metadata.annotations;
    let template_labels = job.spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());

    let is_template = ann.contains_key(ANNOTATION_ON);
    if is_template {
        if let Err(message) = check_template(&job) {
            return Verdict::deny(message);
        }
        if job.spec.suspend != Some(true) {
            ops.push(Op::add("/spec/suspend", json!(true)));
        }
        default_resources(&job, settings, &mut ops);
    }

    let opted_out = opts_out(ann.get(ANNOTATION_CAPTURE_OUTPUT).map(|v| v.as_ref()));
    if opted_out {
        // Nobody may claim a JOBID through a hand-set label on an opted-out Job.
        if template_labels.is_some_and(|l| l.contains_key(LABEL_CAPTURE)) {
            ops.push(Op::remove(format!("/spec/template/metadata/labels/{}", escape(LABEL_CAPTURE))));
        }
        return Verdict { denied: None, patch: ops, warnings };
    }

    let name = job_name(&job.metadata);
    let job_id = JobId::derive(ann.get(ANNOTATION_JOB_ID).map(|v| v.as_ref()), &name);
    let is_run = job.metadata.labels.contains_key(LABEL_RUN);
    if !is_run && let Some(first) = index.other_owner(namespace, &job_id, &name) {
        return Verdict::deny(format!(
            "lifecycle-jobs: JOBID {job_id} is already used by Job {:?} in this environment; two Jobs would \
             publish the same variables (QOVERY_OUTPUT_JOB_{job_id}_*). Set annotation {ANNOTATION_JOB_ID} to \
             another value, or delete Job {:?} first",
            first.name, first.name
        ));
    }
    if job.metadata.name.is_none() && !ann.contains_key(ANNOTATION_JOB_ID) {
        warnings.push(format!(
            "lifecycle-jobs: this Job has no name yet (generateName); its JOBID is {job_id}, from the prefix. \
             Set annotation {ANNOTATION_JOB_ID} to choose it"
        ));
    }

    let label_ok = template_labels.and_then(|l| l.get(LABEL_CAPTURE)).is_some_and(|v| v == job_id.as_str());
    if !label_ok {
        match (&job.spec.template.metadata, template_labels) {
            (None, _) => ops.push(Op::add("/spec/template/metadata", json!({"labels": {LABEL_CAPTURE: job_id.as_str()}}))),
            (Some(_), None) => ops.push(Op::add("/spec/template/metadata/labels", json!({LABEL_CAPTURE: job_id.as_str()}))),
            (Some(_), Some(_)) => {
                ops.push(Op::add(format!("/spec/template/metadata/labels/{}", escape(LABEL_CAPTURE)), json!(job_id.as_str())))
            }
        }
    }
    Verdict { denied: None, patch: ops, warnings }
}

/// An edited Job: a template stays suspended and its annotations stay valid.
pub fn mutate_update(raw: &str) -> Verdict {
    let job = match parse(raw) {
        Ok(j) => j,
        Err(v) => return v,
    };
    if !job.metadata.annotations.contains_key(ANNOTATION_ON) {
        return Verdict::allow();
    }
    if let Err(message) = check_template(&job) {
        return Verdict::deny(message);
    }
    if job.spec.suspend != Some(true) {
        let mut v = Verdict::patched(vec![Op::add("/spec/suspend", json!(true))]);
        v.warnings.push(format!(
            "lifecycle-jobs: a lifecycle job is a template and stays suspended; to run it now set annotation \
             {ANNOTATION_FORCE_RUN}=<event>"
        ));
        return v;
    }
    Verdict::allow()
}

fn job_name(meta: &MetaIn<'_>) -> String {
    match (&meta.name, &meta.generate_name) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(g)) => g.trim_end_matches('-').to_string(),
        _ => String::new(),
    }
}

/// The annotations of a lifecycle template, checked; the message names the
/// annotation, what is wrong and how to write it.
fn check_template(job: &JobIn<'_>) -> Result<(), String> {
    let ann = &job.metadata.annotations;
    let on_value = ann.get(ANNOTATION_ON).map(|v| v.as_ref()).unwrap_or("");
    let events = Event::parse_list(on_value)
        .map_err(|e| format!("lifecycle-jobs: annotation {ANNOTATION_ON}={on_value:?}: {e}. Example: start,stop"))?;
    if events.is_empty() {
        return Err(format!(
            "lifecycle-jobs: annotation {ANNOTATION_ON} is empty: list the events the job runs on, e.g. start,stop,delete"
        ));
    }
    for event in Event::ALL {
        for key in [annotation_on_command(event), annotation_on_args(event)] {
            if let Some(v) = ann.get(key.as_str()) {
                serde_json::from_str::<Vec<String>>(v).map_err(|e| {
                    format!(
                        "lifecycle-jobs: annotation {key} must be a JSON array of strings, e.g. \
                         [\"sh\",\"-c\",\"echo hello\"]: {e}"
                    )
                })?;
            }
        }
    }
    if let Some(c) = ann.get(ANNOTATION_CONTAINER) {
        let names: Vec<&str> = job.spec.template.spec.containers.iter().map(|c| c.name.as_ref()).collect();
        if !names.contains(&c.as_ref()) {
            return Err(format!(
                "lifecycle-jobs: annotation {ANNOTATION_CONTAINER}={c:?} names no container of this Job; its containers are {names:?}"
            ));
        }
    }
    parse_stage(ann.get(ANNOTATION_STAGE).map(|v| v.as_ref())).map_err(|e| format!("lifecycle-jobs: {e}"))?;
    if let Some(f) = ann.get(ANNOTATION_FORCE_RUN) {
        let event: Event = f.parse().map_err(|e| format!("lifecycle-jobs: annotation {ANNOTATION_FORCE_RUN}: {e}"))?;
        if !events.contains(&event) {
            return Err(format!(
                "lifecycle-jobs: annotation {ANNOTATION_FORCE_RUN}={event} but this job runs only on {on_value:?}; \
                 force one of those events or add {event} to {ANNOTATION_ON}"
            ));
        }
    }
    Ok(())
}

/// Qovery's defaults for lifecycle job containers without resources.
fn default_resources(job: &JobIn<'_>, s: JobSettings<'_>, ops: &mut Vec<Op>) {
    let mut amounts = serde_json::Map::new();
    if !s.default_cpu.is_empty() {
        amounts.insert("cpu".into(), Value::String(s.default_cpu.into()));
    }
    if !s.default_memory.is_empty() {
        amounts.insert("memory".into(), Value::String(s.default_memory.into()));
    }
    if amounts.is_empty() {
        return;
    }
    let amounts = Value::Object(amounts);
    for (i, c) in job.spec.template.spec.containers.iter().enumerate() {
        let has_any = c.resources.as_ref().is_some_and(|r| r.requests.is_some() || r.limits.is_some());
        if !has_any {
            ops.push(Op::add(
                format!("/spec/template/spec/containers/{i}/resources"),
                json!({"requests": amounts.clone(), "limits": amounts.clone()}),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: JobSettings<'static> = JobSettings { default_cpu: "500m", default_memory: "512Mi" };

    fn apply(job: &Value, v: &Verdict) -> Value {
        let mut doc = job.clone();
        let patch: json_patch::Patch = serde_json::from_value(serde_json::to_value(&v.patch).unwrap()).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        doc
    }

    fn job(name: &str, annotations: Value) -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox:local"},
                {"name": "side", "image": "busybox:local", "resources": {"limits": {"cpu": "1"}}}
            ]}}}
        })
    }

    fn create(j: &Value, index: &JobIndex) -> (Value, Verdict) {
        let v = mutate_create(&j.to_string(), "env", index, S);
        let out = if v.denied.is_none() { apply(j, &v) } else { j.clone() };
        (out, v)
    }

    #[test]
    fn plain_job_gets_capture_label() {
        let (out, v) = create(&job("seed-db", json!({})), &JobIndex::empty());
        assert!(v.denied.is_none());
        assert_eq!(out["spec"]["template"]["metadata"]["labels"][LABEL_CAPTURE], "SEED_DB");
        assert!(out["spec"].get("suspend").is_none(), "a plain Job runs at once");
        assert!(out["spec"]["template"]["spec"]["containers"][0].get("resources").is_none());
    }

    #[test]
    fn job_id_annotation_wins() {
        let (out, _) = create(&job("seed", json!({ANNOTATION_JOB_ID: "zf138d9c8"})), &JobIndex::empty());
        assert_eq!(out["spec"]["template"]["metadata"]["labels"][LABEL_CAPTURE], "ZF138D9C8");
    }

    #[test]
    fn template_is_suspended_with_default_resources() {
        let (out, v) = create(&job("migrate", json!({ANNOTATION_ON: "start,stop"})), &JobIndex::empty());
        assert!(v.denied.is_none());
        assert_eq!(out["spec"]["suspend"], true);
        let c = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["resources"]["requests"]["cpu"], "500m");
        assert_eq!(c[0]["resources"]["limits"]["memory"], "512Mi");
        assert_eq!(c[1]["resources"], json!({"limits": {"cpu": "1"}}), "own resources are kept");
    }

    #[test]
    fn duplicate_job_id_is_refused_naming_the_first() {
        let idx = JobIndex::empty();
        idx.record("env", "seed", "u1", JobId::derive(None, "seed"));
        let (_, v) = create(&job("other", json!({ANNOTATION_JOB_ID: "SEED"})), &idx);
        let msg = v.denied.expect("refused");
        assert!(msg.contains("\"seed\""), "{msg}");
        // The same name again (re-admission of the same Job) is fine.
        let (_, v) = create(&job("seed", json!({})), &idx);
        assert!(v.denied.is_none());
        // Another namespace is another environment.
        let v = mutate_create(&job("other", json!({ANNOTATION_JOB_ID: "SEED"})).to_string(), "env2", &idx, S);
        assert!(v.denied.is_none());
    }

    #[test]
    fn runs_do_not_claim_their_template_job_id() {
        let idx = JobIndex::empty();
        idx.record("env", "migrate", "u1", JobId::derive(None, "migrate"));
        let mut run = job("migrate-start-abc12", json!({ANNOTATION_JOB_ID: "MIGRATE"}));
        run["metadata"]["labels"] = json!({LABEL_RUN: "abc12"});
        let (out, v) = create(&run, &idx);
        assert!(v.denied.is_none());
        assert_eq!(out["spec"]["template"]["metadata"]["labels"][LABEL_CAPTURE], "MIGRATE");
    }

    #[test]
    fn opted_out_job_loses_a_forged_label() {
        let mut j = job("x", json!({ANNOTATION_CAPTURE_OUTPUT: "false"}));
        j["spec"]["template"]["metadata"] = json!({"labels": {LABEL_CAPTURE: "OTHER", "app": "x"}});
        let (out, _) = create(&j, &JobIndex::empty());
        assert_eq!(out["spec"]["template"]["metadata"]["labels"], json!({"app": "x"}));
    }

    #[test]
    fn existing_labels_are_kept() {
        let mut j = job("x", json!({}));
        j["spec"]["template"]["metadata"] = json!({"labels": {"app": "x"}});
        let (out, _) = create(&j, &JobIndex::empty());
        assert_eq!(out["spec"]["template"]["metadata"]["labels"], json!({"app": "x", LABEL_CAPTURE: "X"}));
    }

    #[test]
    fn bad_template_annotations_are_refused_with_a_hint() {
        let cases = [
            (json!({ANNOTATION_ON: "deploy"}), "expected start, stop or delete"),
            (json!({ANNOTATION_ON: ""}), "is empty"),
            (json!({ANNOTATION_ON: "start", "lifecycle-jobs.dev/on-start-command": "sh -c x"}), "JSON array of strings"),
            (json!({ANNOTATION_ON: "start", ANNOTATION_CONTAINER: "nope"}), "names no container"),
            (json!({ANNOTATION_ON: "start", ANNOTATION_FORCE_RUN: "stop"}), "runs only on"),
            (json!({ANNOTATION_ON: "start", ANNOTATION_STAGE: "two"}), "lifecycle-jobs.dev/stage=\"two\" is not an integer"),
            (json!({ANNOTATION_ON: "start", ANNOTATION_STAGE: "1.5"}), "write a whole number"),
        ];
        for (ann, want) in cases {
            let (_, v) = create(&job("t", ann.clone()), &JobIndex::empty());
            let msg = v.denied.unwrap_or_else(|| panic!("{ann} accepted"));
            assert!(msg.contains(want), "{ann}: {msg}");
        }
    }

    #[test]
    fn stages_are_integers_negatives_included() {
        for stage in ["0", "2", "-3", " 4 "] {
            let (_, v) = create(&job("t", json!({ANNOTATION_ON: "start", ANNOTATION_STAGE: stage})), &JobIndex::empty());
            assert!(v.denied.is_none(), "{stage}: {:?}", v.denied);
        }
        let mut j = job("t", json!({ANNOTATION_ON: "start", ANNOTATION_STAGE: "later"}));
        j["spec"]["suspend"] = json!(true);
        assert!(mutate_update(&j.to_string()).denied.unwrap().contains(ANNOTATION_STAGE), "an edit is checked too");
    }

    #[test]
    fn update_keeps_template_suspended() {
        let mut j = job("t", json!({ANNOTATION_ON: "start"}));
        j["spec"]["suspend"] = json!(false);
        let v = mutate_update(&j.to_string());
        assert_eq!(apply(&j, &v)["spec"]["suspend"], true);
        j["spec"]["suspend"] = json!(true);
        assert!(mutate_update(&j.to_string()).patch.is_empty());
    }

    #[test]
    fn generate_name_uses_prefix() {
        let mut j = job("", json!({}));
        j["metadata"] = json!({"generateName": "seed-"});
        let (out, v) = create(&j, &JobIndex::empty());
        assert_eq!(out["spec"]["template"]["metadata"]["labels"][LABEL_CAPTURE], "SEED");
        assert_eq!(v.warnings.len(), 1);
    }
}
