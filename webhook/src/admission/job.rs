//! Job admission: the JOBID decided once and recorded on the Job, the capture
//! label, the refusal of a duplicate or unusable JOBID, runs verified, lifecycle
//! templates admitted suspended with checked annotations and default resources.
//!
//! Who may claim what is decided from the request itself (its user, filled by
//! the API server) and the watch-fed [`crate::watches::job_index::JobIndex`]: no API call
//! here either.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use lifecycle_contract::lifecycle_job::{self, Controller, JobFacts, JobIdRead, JobKind};
use lifecycle_contract::names::{
    ADMITTED, ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_CONTAINER, ANNOTATION_FORCE_RUN, ANNOTATION_JOB_ID, ANNOTATION_ON,
    ANNOTATION_STAGE, LABEL_ADMITTED, LABEL_CAPTURE, LABEL_EVENT, LABEL_JOB, LABEL_RUN, TEMPLATE_MANAGED_BY, annotation_on_args,
    annotation_on_command,
};
use lifecycle_contract::transition::parse_stage;
use lifecycle_contract::{Event, JobId};

use super::review::{Op, Request, Verdict, escape};
use crate::state::AppState;
use crate::watches::job_index::{Claimant, JobIndex};

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
    #[serde(default, borrow)]
    owner_references: Vec<OwnerIn<'a>>,
}

#[derive(Debug, Deserialize)]
struct OwnerIn<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    uid: Cow<'a, str>,
    #[serde(default)]
    controller: Option<bool>,
}

impl MetaIn<'_> {
    fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(|v| v.as_ref())
    }
    fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(|v| v.as_ref())
    }
    /// What the contract's Job rules read ([`lifecycle_job::JobFacts`]),
    /// borrowed from the request: this one-pass reader never decodes the
    /// whole object into an `ObjectMeta`, so it applies the same rules as the
    /// typed reader to the same values instead of writing them again.
    fn facts(&self) -> JobFacts<'_> {
        JobFacts {
            name: lifecycle_job::job_name(self.name.as_deref(), self.generate_name.as_deref()),
            on: self.annotation(ANNOTATION_ON),
            job_id: self.annotation(ANNOTATION_JOB_ID),
            capture_output: self.annotation(ANNOTATION_CAPTURE_OUTPUT),
            run: self.label(LABEL_RUN),
            template: self.label(LABEL_JOB),
            event: self.label(LABEL_EVENT),
            controller: self.owner_references.iter().find(|o| o.controller == Some(true)).map(|o| Controller {
                kind: o.kind.as_ref(),
                name: o.name.as_ref(),
                uid: o.uid.as_ref(),
            }),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
struct SpecIn<'a> {
    #[serde(default)]
    suspend: Option<bool>,
    #[serde(default, rename = "managedBy", borrow)]
    managed_by: Option<Cow<'a, str>>,
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
    /// The server's own username: the only creator of runs.
    pub server_user: &'a str,
}

pub fn review(state: &AppState, req: &Request<'_>) -> Verdict {
    if req.sub_resource.is_some() {
        return Verdict::allow();
    }
    let Some(raw) = req.raw_object() else {
        return Verdict::allow();
    };
    let server_user = state.config.server_username();
    let settings = JobSettings {
        default_cpu: &state.config.default_cpu,
        default_memory: &state.config.default_memory,
        server_user: &server_user,
    };
    let namespace = req.namespace.as_deref().unwrap_or("");
    match req.operation.as_ref() {
        "CREATE" => mutate_create(raw.get(), namespace, &state.jobs, settings, req.username()),
        "UPDATE" => mutate_update(raw.get(), req.old_object.map(|o| o.get())),
        _ => Verdict::allow(),
    }
}

fn parse(raw: &str) -> Result<JobIn<'_>, Verdict> {
    serde_json::from_str(raw).map_err(|e| Verdict::deny(format!("lifecycle-jobs: cannot read the Job: {e}")))
}

/// Where a new Job's JOBID comes from, and on whose behalf it holds it.
enum Origin {
    /// A run the server created from a template of this environment: the template's JOBID.
    Run(JobId),
    /// A Job, or a CronJob's Job: its own claim.
    Claim(Claimant),
}

/// Decides who a new Job is. A `run` label is honoured only on a Job the
/// server itself creates under a template of the same environment (anyone can
/// write the label; nobody but the server sends that request, and policy
/// `lifecycle-jobs-server-owned-jobs` refuses it from anyone else). A CronJob
/// owner makes the Job that CronJob's: policy `lifecycle-jobs-cronjob-jobs`
/// admits such a Job only from the CronJob controller or from a user who may
/// update that CronJob (`kubectl create job --from=cronjob/NAME`), a check
/// that needs the authorizer, which admission does not call.
fn origin(facts: &JobFacts<'_>, namespace: &str, index: &JobIndex, s: JobSettings<'_>, user: &str) -> Result<Origin, String> {
    let refused = || {
        format!(
            "lifecycle-jobs: label {LABEL_RUN} is reserved for the runs lifecycle-jobs creates from a lifecycle job \
             of this environment; remove it (to run a lifecycle job now, set annotation {ANNOTATION_FORCE_RUN}=<event> on it)"
        )
    };
    match facts.kind() {
        JobKind::Run(run) => match index.template(namespace, run.template.uid) {
            Some(t) if user == s.server_user => Ok(Origin::Run(t.job_id)),
            _ => Err(refused()),
        },
        JobKind::StrayRun => Err(refused()),
        // Not labelled `run`: a claimant, the CronJob's or its own.
        _ => facts.claimant().map(Origin::Claim).ok_or_else(refused),
    }
}

/// A new Job in an environment.
pub fn mutate_create(raw: &str, namespace: &str, index: &JobIndex, settings: JobSettings<'_>, user: &str) -> Verdict {
    let job = match parse(raw) {
        Ok(j) => j,
        Err(v) => return v,
    };
    let mut ops = Vec::new();
    let mut warnings = Vec::new();
    let meta = &job.metadata;
    let facts = meta.facts();
    admitted_label(meta, &mut ops);
    let template_labels = job.spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());

    if matches!(facts.kind(), JobKind::Template { .. }) {
        if let Err(message) = check_template(&job) {
            return Verdict::deny(message);
        }
        if job.spec.suspend != Some(true) {
            ops.push(Op::add("/spec/suspend", json!(true)));
        }
        // The built-in Job controller then never looks at it (a template never
        // runs): 10,000 suspended templates would otherwise each cost it a status
        // write and an Event, at its rate limit, ahead of every Job of the
        // cluster. Only at creation: the field is immutable. One set by its
        // author is left alone (the template still never runs; its runs drop it).
        if job.spec.managed_by.is_none() {
            ops.push(Op::add("/spec/managedBy", json!(TEMPLATE_MANAGED_BY)));
        }
        default_resources(&job, settings, &mut ops);
    }

    // Who it is, checked whether it captures or not: a `run` label is the
    // server's on any Job (a run of an opted-out template is opted out too).
    let origin = match origin(&facts, namespace, index, settings, user) {
        Ok(origin) => origin,
        Err(message) => return Verdict::deny(message),
    };
    if !facts.captures() {
        // Nobody may claim a JOBID through a hand-set label on an opted-out Job.
        if template_labels.is_some_and(|l| l.contains_key(LABEL_CAPTURE)) {
            ops.push(Op::remove(format!("/spec/template/metadata/labels/{}", escape(LABEL_CAPTURE))));
        }
        return Verdict { denied: None, patch: ops, warnings };
    }

    let job_id = match origin {
        Origin::Run(id) => id,
        Origin::Claim(claimant) => match claimed_job_id(&facts, meta, namespace, index, &claimant, &mut warnings) {
            Ok(id) => id,
            Err(message) => return Verdict::deny(message),
        },
    };
    record_job_id(&job, &job_id, &mut ops);
    Verdict { denied: None, patch: ops, warnings }
}

/// The JOBID a Job that is not a run claims: decided by the contract from its
/// source (the annotation, else the CronJob's name, or the Job's own or its
/// prefix), refused when another Job of the environment holds it.
fn claimed_job_id(
    facts: &JobFacts<'_>,
    meta: &MetaIn<'_>,
    namespace: &str,
    index: &JobIndex,
    claimant: &Claimant,
    warnings: &mut Vec<String>,
) -> Result<JobId, String> {
    let job_id = JobId::decide(facts.job_id, facts.job_id_source()).map_err(|e| format!("lifecycle-jobs: {e}"))?;
    if let Some(first) = index.other_owner(namespace, &job_id, claimant) {
        return Err(format!(
            "lifecycle-jobs: JOBID {job_id} is already used by {} in this environment; two Jobs would \
             publish the same variables (QOVERY_OUTPUT_JOB_{job_id}_*). Set annotation {ANNOTATION_JOB_ID} \
             to another value, or delete Job {:?} first",
            first.claimant.describe(),
            first.name
        ));
    }
    if meta.name.as_deref().is_none_or(str::is_empty) && meta.annotation(ANNOTATION_JOB_ID).is_none() {
        warnings.push(format!(
            "lifecycle-jobs: this Job has no name yet (generateName); its JOBID is {job_id}, from the prefix. \
             Set annotation {ANNOTATION_JOB_ID} to choose it"
        ));
    }
    Ok(job_id)
}

/// Records the decision on the Job (annotation `job-id`, and the pod
/// template's `capture` label): every other part reads it from there.
fn record_job_id(job: &JobIn<'_>, job_id: &JobId, ops: &mut Vec<Op>) {
    let meta = &job.metadata;
    if meta.annotation(ANNOTATION_JOB_ID) != Some(job_id.as_str()) {
        let path = format!("/metadata/annotations/{}", escape(ANNOTATION_JOB_ID));
        if meta.annotations.is_empty() {
            ops.push(Op::add("/metadata/annotations", json!({ANNOTATION_JOB_ID: job_id.as_str()})));
        } else {
            ops.push(Op::add(path, json!(job_id.as_str())));
        }
    }
    let template_labels = job.spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CronJobIn<'a> {
    #[serde(default, borrow)]
    metadata: MetaIn<'a>,
    #[serde(default, borrow)]
    spec: CronSpecIn<'a>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CronSpecIn<'a> {
    #[serde(default, borrow)]
    job_template: Option<JobTemplateIn<'a>>,
}

#[derive(Debug, Deserialize, Default)]
struct JobTemplateIn<'a> {
    #[serde(default, borrow)]
    metadata: Option<JobTemplateMeta<'a>>,
}

#[derive(Debug, Deserialize, Default)]
struct JobTemplateMeta<'a> {
    #[serde(default, borrow)]
    annotations: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
}

/// A CronJob in an environment: its Jobs all publish under one JOBID, the
/// CronJob's. A `job-id` annotation on the CronJob is checked and handed to
/// its Jobs through the Job template (the CronJob controller copies it), so
/// that each Job records it; without one, Job admission takes the CronJob's name.
pub fn review_cronjob(req: &Request<'_>) -> Verdict {
    if req.sub_resource.is_some() || !matches!(req.operation.as_ref(), "CREATE" | "UPDATE") {
        return Verdict::allow();
    }
    let Some(raw) = req.raw_object() else { return Verdict::allow() };
    let cron: CronJobIn<'_> = match serde_json::from_str(raw.get()) {
        Ok(c) => c,
        Err(e) => return Verdict::deny(format!("lifecycle-jobs: cannot read the CronJob: {e}")),
    };
    let Some(wanted) = cron.metadata.annotation(ANNOTATION_JOB_ID) else { return Verdict::allow() };
    let name = lifecycle_job::job_name(cron.metadata.name.as_deref(), cron.metadata.generate_name.as_deref());
    let job_id = match JobId::decide(Some(wanted), name) {
        Ok(id) => id,
        Err(e) => return Verdict::deny(format!("lifecycle-jobs: {e}")),
    };
    let template = cron.spec.job_template.as_ref();
    let meta = template.and_then(|t| t.metadata.as_ref());
    let annotations = meta.and_then(|m| m.annotations.as_ref());
    if annotations.and_then(|a| a.get(ANNOTATION_JOB_ID)).is_some_and(|v| v == job_id.as_str()) {
        return Verdict::allow();
    }
    let op = match (template, meta, annotations) {
        (None, _, _) => return Verdict::allow(), // no Job template: the API server refuses it anyway
        (Some(_), None, _) => Op::add("/spec/jobTemplate/metadata", json!({"annotations": {ANNOTATION_JOB_ID: job_id.as_str()}})),
        (Some(_), Some(_), None) => {
            Op::add("/spec/jobTemplate/metadata/annotations", json!({ANNOTATION_JOB_ID: job_id.as_str()}))
        }
        (Some(_), Some(_), Some(_)) => {
            Op::add(format!("/spec/jobTemplate/metadata/annotations/{}", escape(ANNOTATION_JOB_ID)), json!(job_id.as_str()))
        }
    };
    Verdict::patched(vec![op])
}

/// What admission decided at creation and nobody may change afterwards: the
/// JOBID, whether the Job captures its outputs, and whether it is a run.
///
/// The JOBID is read by the contract's rule ([`JobFacts::job_id`]): a recorded
/// one stays as it is; a Job with none recorded (opted out, or admitted
/// before JOBIDs were recorded) may record only the one it derives. Two
/// derived ones are no decision to keep (they follow the owner, which the
/// garbage collector removes when it orphans a Job).
fn changed_identity(old: &JobIn<'_>, new: &JobIn<'_>) -> Option<String> {
    let (before, after) = (old.metadata.facts().job_id(), new.metadata.facts().job_id());
    let kept = match (&before, &after) {
        (JobIdRead::Derived(_), JobIdRead::Derived(_)) => true,
        _ => before.id() == after.id(),
    };
    if !kept {
        let (before, after) = (before.id(), after.id());
        return Some(format!(
            "lifecycle-jobs: the JOBID of a Job cannot change (annotation {ANNOTATION_JOB_ID} is {before}, the request \
             makes it {after}): it names the variables the Job publishes. Create a new Job to publish under another JOBID"
        ));
    }
    let capture = |j: &JobIn<'_>| j.metadata.facts().captures();
    if capture(old) != capture(new) {
        return Some(format!(
            "lifecycle-jobs: annotation {ANNOTATION_CAPTURE_OUTPUT} cannot change after a Job is created: \
             create a new Job instead"
        ));
    }
    let run = |j: &JobIn<'_>| j.metadata.facts().run.map(str::to_string);
    if run(old) != run(new) {
        return Some(format!(
            "lifecycle-jobs: label {LABEL_RUN} is set by lifecycle-jobs when it creates a run and cannot change"
        ));
    }
    None
}

/// An edited Job: its identity stays, a template stays suspended and its
/// annotations stay valid.
pub fn mutate_update(raw: &str, old: Option<&str>) -> Verdict {
    let job = match parse(raw) {
        Ok(j) => j,
        Err(v) => return v,
    };
    if let Some(old) = old.and_then(|o| parse(o).ok())
        && let Some(message) = changed_identity(&old, &job)
    {
        return Verdict::deny(message);
    }
    // No label is added here: a Job this webhook did not admit (made before
    // its namespace became an environment) stays outside the server's watch,
    // so a `job-id` or `run` written on it outside an environment is never
    // taken for a decision of admission.
    let mut v = Verdict::default();
    if !matches!(job.metadata.facts().kind(), JobKind::Template { .. }) {
        return v;
    }
    if let Err(message) = check_template(&job) {
        return Verdict::deny(message);
    }
    if job.spec.suspend != Some(true) {
        v.patch.push(Op::add("/spec/suspend", json!(true)));
        v.warnings.push(format!(
            "lifecycle-jobs: a lifecycle job is a template and stays suspended; to run it now set annotation \
             {ANNOTATION_FORCE_RUN}=<event>"
        ));
    }
    v
}

/// Puts the Job in the server's one Job watch (label [`LABEL_ADMITTED`]):
/// the server watches only the Jobs of environments, never the cluster's.
fn admitted_label(meta: &MetaIn<'_>, ops: &mut Vec<Op>) {
    if meta.labels.get(LABEL_ADMITTED).is_some_and(|v| v == ADMITTED) {
        return;
    }
    if meta.labels.is_empty() {
        ops.push(Op::add("/metadata/labels", json!({LABEL_ADMITTED: ADMITTED})));
    } else {
        ops.push(Op::add(format!("/metadata/labels/{}", escape(LABEL_ADMITTED)), json!(ADMITTED)));
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

    const SERVER: &str = "system:serviceaccount:lifecycle-jobs-system:lifecycle-webhook";
    const CRON: &str = "system:serviceaccount:kube-system:cronjob-controller";
    const USER: &str = "alice";

    fn settings() -> JobSettings<'static> {
        JobSettings { default_cpu: "500m", default_memory: "512Mi", server_user: SERVER }
    }

    fn apply(job: &Value, v: &Verdict) -> Value {
        let mut doc = job.clone();
        let patch: json_patch::Patch = serde_json::from_slice(&super::super::review::patch_json(&v.patch)).unwrap();
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
        create_as(j, index, USER)
    }

    fn create_as(j: &Value, index: &JobIndex, user: &str) -> (Value, Verdict) {
        let v = mutate_create(&j.to_string(), "env", index, settings(), user);
        let out = if v.denied.is_none() { apply(j, &v) } else { j.clone() };
        (out, v)
    }

    #[test]
    fn every_new_job_gets_the_admitted_label_and_an_update_never_adds_it() {
        let opted_out = job("seed", json!({ANNOTATION_CAPTURE_OUTPUT: "false"}));
        for j in [job("seed", json!({})), opted_out] {
            let (out, _) = create(&j, &JobIndex::empty());
            assert_eq!(out["metadata"]["labels"][LABEL_ADMITTED], ADMITTED, "{out}");
        }
        // A Job made before its namespace became an environment was never
        // admitted: an update does not make it look as if it had been.
        let mut early = job("seed", json!({ANNOTATION_JOB_ID: "VICTIM"}));
        early["metadata"]["labels"] = json!({"team": "data"});
        let v = mutate_update(&early.to_string(), Some(&early.to_string()));
        assert!(v.denied.is_none() && v.patch.is_empty(), "{v:?}");
    }

    #[test]
    fn plain_job_gets_capture_label() {
        let (out, v) = create(&job("seed-db", json!({})), &JobIndex::empty());
        assert!(v.denied.is_none());
        assert_eq!(out["spec"]["template"]["metadata"]["labels"][LABEL_CAPTURE], "SEED_DB");
        assert!(out["spec"].get("suspend").is_none(), "a plain Job runs at once");
        assert!(out["spec"].get("managedBy").is_none(), "and the built-in Job controller runs it");
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
        assert_eq!(out["spec"]["managedBy"], TEMPLATE_MANAGED_BY, "the built-in Job controller leaves it alone");
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
        let v = mutate_create(&job("other", json!({ANNOTATION_JOB_ID: "SEED"})).to_string(), "env2", &idx, settings(), USER);
        assert!(v.denied.is_none());
    }

    fn run_of(template_uid: &str) -> Value {
        let mut run = job("migrate-start-abc12", json!({ANNOTATION_JOB_ID: "MIGRATE"}));
        run["metadata"]["labels"] = json!({LABEL_RUN: "3"});
        run["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate", "uid": template_uid, "controller": true}]);
        run
    }

    #[test]
    fn runs_take_their_templates_job_id_and_claim_nothing() {
        let idx = JobIndex::empty();
        idx.record_template("env", "migrate", "u1", JobId::parse("MIGRATE_V2").unwrap(), false);
        let (out, v) = create_as(&run_of("u1"), &idx, SERVER);
        assert!(v.denied.is_none(), "{:?}", v.denied);
        assert_eq!(out["spec"]["template"]["metadata"]["labels"][LABEL_CAPTURE], "MIGRATE_V2");
        assert_eq!(out["metadata"]["annotations"][ANNOTATION_JOB_ID], "MIGRATE_V2", "the template's, recorded");
    }

    #[test]
    fn a_run_label_is_refused_unless_the_server_creates_it_under_a_template() {
        let idx = JobIndex::empty();
        idx.record_template("env", "migrate", "u1", JobId::parse("MIGRATE").unwrap(), false);
        for (run, user) in [(run_of("u1"), USER), (run_of("u-other"), SERVER)] {
            let (_, v) = create_as(&run, &idx, user);
            let msg = v.denied.expect("refused");
            assert!(msg.contains("is reserved for the runs"), "{msg}");
        }
    }

    #[test]
    fn an_opted_out_job_is_a_run_only_under_the_same_rule() {
        let idx = JobIndex::empty();
        idx.record_template("env", "migrate", "u1", JobId::parse("MIGRATE").unwrap(), false);
        let mut run = run_of("u1");
        run["metadata"]["annotations"] = json!({ANNOTATION_CAPTURE_OUTPUT: "false"});
        let (_, v) = create_as(&run, &idx, SERVER);
        assert!(v.denied.is_none(), "a run of an opted-out template: {:?}", v.denied);
        let (_, v) = create_as(&run, &idx, USER);
        assert!(v.denied.expect("refused").contains("is reserved for the runs"));
    }

    #[test]
    fn a_cron_jobs_jobs_share_its_job_id() {
        let idx = JobIndex::empty();
        let mut j = job("nightly-29118", json!({}));
        j["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "c1", "controller": true}]);
        let (out, v) = create_as(&j, &idx, CRON);
        assert!(v.denied.is_none());
        assert_eq!(out["metadata"]["annotations"][ANNOTATION_JOB_ID], "NIGHTLY");
        // A manual run (`kubectl create job --from=cronjob/nightly`) is the
        // CronJob's too: policy lifecycle-jobs-cronjob-jobs admits it only from
        // a user who may update the CronJob.
        let (out, v) = create_as(&j, &idx, USER);
        assert!(v.denied.is_none());
        assert_eq!(out["metadata"]["annotations"][ANNOTATION_JOB_ID], "NIGHTLY");
    }

    #[test]
    fn unusable_job_ids_are_refused_naming_the_rule() {
        for (ann, want) in
            [(json!({ANNOTATION_JOB_ID: "a".repeat(64)}), "at most 63"), (json!({ANNOTATION_JOB_ID: "-x"}), "start and end")]
        {
            let (_, v) = create(&job("t", ann), &JobIndex::empty());
            let msg = v.denied.expect("refused");
            assert!(msg.contains(want), "{msg}");
        }
    }

    #[test]
    fn the_job_id_is_recorded_normalised() {
        let (out, _) = create(&job("seed", json!({ANNOTATION_JOB_ID: "zf138d9c8"})), &JobIndex::empty());
        assert_eq!(out["metadata"]["annotations"][ANNOTATION_JOB_ID], "ZF138D9C8");
        let mut bare = job("seed-db", json!({}));
        bare["metadata"].as_object_mut().unwrap().remove("annotations");
        let (out, _) = create(&bare, &JobIndex::empty());
        assert_eq!(out["metadata"]["annotations"], json!({ANNOTATION_JOB_ID: "SEED_DB"}));
    }

    #[test]
    fn identity_cannot_change_on_update() {
        let old = job("seed", json!({ANNOTATION_JOB_ID: "ZF1"}));
        let cases = [
            (json!({ANNOTATION_JOB_ID: "VICTIM"}), "cannot change"),
            (json!({}), "cannot change"),
            (json!({ANNOTATION_JOB_ID: "ZF1", ANNOTATION_CAPTURE_OUTPUT: "false"}), "capture-output"),
        ];
        for (ann, want) in cases {
            let new = job("seed", ann);
            let v = mutate_update(&new.to_string(), Some(&old.to_string()));
            assert!(v.denied.as_deref().is_some_and(|m| m.contains(want)), "{:?}", v.denied);
        }
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({LABEL_RUN: "1"});
        assert!(mutate_update(&relabelled.to_string(), Some(&old.to_string())).denied.is_some());
        // Same identity, other changes: fine; a legacy Job without the annotation keeps its name's JOBID.
        assert!(mutate_update(&old.to_string(), Some(&old.to_string())).denied.is_none());
        let legacy = job("seed", json!({}));
        let recorded = job("seed", json!({ANNOTATION_JOB_ID: "SEED"}));
        assert!(mutate_update(&recorded.to_string(), Some(&legacy.to_string())).denied.is_none());
    }

    #[test]
    fn an_orphaned_job_with_no_recorded_job_id_may_be_updated() {
        // The garbage collector orphans the Jobs of a CronJob deleted with
        // --cascade=orphan: an opted-out one has no JOBID recorded, and its
        // derived one followed the CronJob; nothing admission decided changes.
        let mut old = job("nightly-2911", json!({ANNOTATION_CAPTURE_OUTPUT: "false"}));
        old["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "c1", "controller": true}]);
        let mut orphan = old.clone();
        orphan["metadata"].as_object_mut().unwrap().remove("ownerReferences");
        assert!(mutate_update(&orphan.to_string(), Some(&old.to_string())).denied.is_none());
        // A recorded one stays what it is.
        let mut recorded = old.clone();
        recorded["metadata"]["annotations"] = json!({ANNOTATION_JOB_ID: "NIGHTLY"});
        let mut other = recorded.clone();
        other["metadata"]["annotations"] = json!({ANNOTATION_JOB_ID: "OTHER"});
        assert!(mutate_update(&other.to_string(), Some(&recorded.to_string())).denied.is_some());
    }

    #[test]
    fn the_raw_reader_reads_what_the_typed_reader_reads() {
        // Admission fills the contract's facts from the raw request; the
        // server's other parts from an ObjectMeta: same values, same rules.
        let mut j =
            job("seed-start-x1", json!({ANNOTATION_JOB_ID: "SEED", ANNOTATION_ON: "start", ANNOTATION_CAPTURE_OUTPUT: "false"}));
        j["metadata"]["labels"] = json!({LABEL_RUN: "force-1", LABEL_JOB: "seed", LABEL_EVENT: "stop"});
        j["metadata"]["generateName"] = json!("seed-");
        j["metadata"]["ownerReferences"] = json!([
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "d1"},
            {"apiVersion": "batch/v1", "kind": "Job", "name": "seed", "uid": "t1", "controller": true}
        ]);
        let raw = j.to_string();
        let typed: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(j["metadata"].clone()).unwrap();
        let parsed = parse(&raw).unwrap();
        assert_eq!(parsed.metadata.facts(), JobFacts::of(&typed));
        assert!(matches!(parsed.metadata.facts().kind(), JobKind::Run(r) if r.template.uid == "t1"));
        let mut unnamed = job("", json!({}));
        unnamed["metadata"] = json!({"generateName": "seed-"});
        let typed: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(unnamed["metadata"].clone()).unwrap();
        let raw = unnamed.to_string();
        assert_eq!(parse(&raw).unwrap().metadata.facts(), JobFacts::of(&typed));
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
        assert!(mutate_update(&j.to_string(), None).denied.unwrap().contains(ANNOTATION_STAGE), "an edit is checked too");
    }

    #[test]
    fn update_keeps_template_suspended() {
        let mut j = job("t", json!({ANNOTATION_ON: "start"}));
        j["spec"]["suspend"] = json!(false);
        let v = mutate_update(&j.to_string(), None);
        assert_eq!(apply(&j, &v)["spec"]["suspend"], true);
        j["spec"]["suspend"] = json!(true);
        j["metadata"]["labels"] = json!({LABEL_ADMITTED: ADMITTED});
        assert!(mutate_update(&j.to_string(), None).patch.is_empty());
    }

    #[test]
    fn generate_name_uses_prefix() {
        let mut j = job("", json!({}));
        j["metadata"] = json!({"generateName": "seed-"});
        let (out, v) = create(&j, &JobIndex::empty());
        assert_eq!(out["spec"]["template"]["metadata"]["labels"][LABEL_CAPTURE], "SEED");
        assert_eq!(v.warnings.len(), 1);
    }

    #[test]
    fn a_cron_jobs_job_id_is_handed_to_its_jobs() {
        let review = |cron: Value| {
            json!({"request": {"uid": "1", "kind": {"group": "batch", "version": "v1", "kind": "CronJob"},
                "operation": "CREATE", "namespace": "env", "object": cron}})
            .to_string()
        };
        let cron = json!({"metadata": {"name": "nightly", "annotations": {ANNOTATION_JOB_ID: "zf138d9c8"}},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {}}}});
        let raw = review(cron.clone());
        let r = super::super::review::parse(raw.as_bytes()).unwrap();
        let v = review_cronjob(r.request.as_ref().unwrap());
        let out = apply(&cron, &v);
        assert_eq!(out["spec"]["jobTemplate"]["metadata"]["annotations"][ANNOTATION_JOB_ID], "ZF138D9C8");

        let bad = json!({"metadata": {"name": "nightly", "annotations": {ANNOTATION_JOB_ID: "_x"}}, "spec": {"jobTemplate": {}}});
        let raw = review(bad);
        let r = super::super::review::parse(raw.as_bytes()).unwrap();
        assert!(review_cronjob(r.request.as_ref().unwrap()).denied.is_some_and(|m| m.contains("start and end")));
    }
}
