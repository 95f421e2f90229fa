//! Fuzzes admission: the pod and Job mutators, as the API server calls them.
//!
//! Invariants: any bytes as an object never panic the mutators; for any object
//! the mutators admit, the JSON patch applies cleanly (with `json-patch`), the
//! result keeps every field the input had (but those the patch itself writes:
//! a hand-set `capture` label or `job-id` is replaced by the decided JOBID), and admitting the result again
//! yields an empty patch (reinvocation, `reinvocationPolicy: IfNeeded`); a pod
//! read in one pass with its review is admitted as from its raw JSON.
//! Inputs that are not JSON objects are also tried inside a pod and a Job
//! template, so the fuzzer reaches the fields the mutators read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifecycle_webhook::admit::job::{self, JobSettings};
use lifecycle_webhook::admit::pod::{self, PodSettings};
use lifecycle_webhook::admit::review::{self, Verdict};
use lifecycle_webhook::JobIndex;
use serde_json::Value;

static AGENT: pod::AgentTemplate = pod::AgentTemplate::new();
const POD: PodSettings<'static> = PodSettings {
    agent_image: "lifecycle-agent:fuzz",
    agent_image_pull_policy: "IfNotPresent",
    server_url: "https://lifecycle-webhook.lifecycle-jobs-system.svc:443",
    server_addr: "10.96.12.34:443",
    ca_bundle: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    agent_template: &AGENT,
};

fn job_settings() -> JobSettings<'static> {
    JobSettings {
        default_cpu: "500m",
        default_memory: "512Mi",
        server_user: "system:serviceaccount:lifecycle-jobs-system:lifecycle-webhook",
        cronjob_controllers: &[],
    }
}

fuzz_target!(|data: &[u8]| {
    // Any bytes as a review: an answer or an error, never a panic.
    let _ = review::parse(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    check_pod(text);
    check_job(text);
    if text.len() < 4096 {
        for tpl in [
            r#"{"metadata": {"labels": {"lifecycle-jobs.dev/capture": "SEED"}}, "spec": @}"#,
            r#"{"metadata": @, "spec": {"containers": [{"name": "main", "image": "x"}]}}"#,
            r#"{"spec": {"containers": [@], "initContainers": [@]}}"#,
        ] {
            check_pod(&tpl.replace('@', text));
        }
        for tpl in [
            r#"{"metadata": {"name": "seed", "annotations": @}, "spec": {"template": {"spec": {"containers": [{"name": "main"}]}}}}"#,
            r#"{"metadata": {"name": "seed"}, "spec": {"template": @}}"#,
        ] {
            check_job(&tpl.replace('@', text));
        }
    }
});

/// Applies an admitted verdict's patch to `raw`; `None` when the object is not
/// a JSON object or the verdict refused it.
fn apply(raw: &str, v: &Verdict, required: &[&str]) -> Option<(Value, Value)> {
    if v.denied.is_some() {
        return None;
    }
    let before: Value = serde_json::from_str(raw).ok()?;
    if !decodable(&before, required) {
        return None;
    }
    let patch: json_patch::Patch = serde_json::from_slice(&review::patch_json(&v.patch)).unwrap();
    let mut after = before.clone();
    json_patch::patch(&mut after, &patch).unwrap_or_else(|e| panic!("the patch does not apply: {e}\n{patch:?}"));
    Some((before, after))
}

/// Whether `v` has the shape of an object the API server sends a webhook: it
/// decodes the request into its Go type first (so the objects and lists the
/// mutators write into have their types) and re-encodes that, so the members
/// `required` name are always there: Go's `omitempty` never drops a struct
/// (`Pod.spec`, `Job.spec.template`, `PodTemplateSpec.metadata`/`.spec`), only
/// empty maps and lists (labels, annotations, volumes...). Inputs of any other
/// shape are still run through the mutators (they must not panic), but their
/// patch is not checked against them.
/// (serde would read `"spec": []` as an empty struct; the API server never
/// sends that, nor a `null` there.)
fn decodable(v: &Value, required: &[&str]) -> bool {
    let object_or_absent = |p: &str| v.pointer(p).is_none_or(Value::is_object);
    let objects_or_absent = |p: &str| v.pointer(p).is_none_or(|x| x.as_array().is_some_and(|a| a.iter().all(Value::is_object)));
    v.is_object()
        && required.iter().all(|p| v.pointer(p).is_some_and(Value::is_object))
        && [
            "/metadata",
            "/metadata/labels",
            "/metadata/annotations",
            "/spec",
            "/spec/template",
            "/spec/template/metadata",
            "/spec/template/metadata/labels",
            "/spec/template/spec",
        ]
        .iter()
        .all(|p| object_or_absent(p))
        && [
            "/spec/containers",
            "/spec/initContainers",
            "/spec/volumes",
            "/spec/schedulingGates",
            "/spec/template/spec/containers",
        ]
        .iter()
        .all(|p| objects_or_absent(p))
}

/// Members the API server always sends (non-pointer structs of the Go types).
const POD_REQUIRED: &[&str] = &["/metadata", "/spec"];
const JOB_REQUIRED: &[&str] = &["/metadata", "/spec", "/spec/template", "/spec/template/metadata", "/spec/template/spec"];

/// Every leaf of `before` is in `after` with the same value, except under `removed`.
fn keeps_fields(before: &Value, after: &Value, path: &str, removed: &[String]) {
    if removed.iter().any(|r| r == path) {
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
                let got = a.get(k).unwrap_or_else(|| panic!("field {p} was lost"));
                keeps_fields(v, got, &p, removed);
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            assert!(a.len() >= b.len(), "array {path} lost items");
            // Items may be inserted before the input's (envFrom first, the agent first).
            let offset = a.len() - b.len();
            let aligned = b.iter().enumerate().all(|(i, v)| a.get(i) == Some(v) || a.get(i + offset) == Some(v));
            assert!(aligned || b.iter().all(|v| a.contains(v) || v.is_object()), "array {path} changed");
        }
        _ => assert_eq!(before, after, "value at {path} changed"),
    }
}

/// The paths the patch writes: an `add` onto an existing member replaces it
/// (admission overwrites a hand-set `capture` label or `job-id` with the
/// decided JOBID), and a `remove` drops it; every other field must survive.
fn removed_paths(v: &Verdict) -> Vec<String> {
    v.patch.iter().map(|op| op.path.clone()).collect()
}

fn check_pod(raw: &str) {
    let first = pod::mutate(raw, &POD);
    same_as_one_pass(raw);
    let Some((before, after)) = apply(raw, &first, POD_REQUIRED) else { return };
    keeps_fields(&before, &after, "", &removed_paths(&first));
    let again = pod::mutate(&after.to_string(), &POD);
    assert!(again.denied.is_none(), "the mutated pod is refused: {:?}", again.denied);
    assert!(again.patch.is_empty(), "reinvocation patches again: {:?}", again.patch);
}

/// The review read in one pass (the pod read as the review is) admits the pod
/// exactly as the pod mutator does from its raw JSON (the object as the
/// review holds it: without the JSON whitespace around it, which would move
/// the positions a refusal names).
fn same_as_one_pass(raw: &str) {
    // Only one JSON value can stand for the object (other text would add
    // members to the request around it).
    if serde_json::from_str::<&serde_json::value::RawValue>(raw).is_err() {
        return;
    }
    let from_raw = &pod::mutate(raw.trim_matches([' ', '\t', '\n', '\r']), &POD);
    let body = format!(r#"{{"request": {{"uid": "f", "kind": {{"kind": "Pod"}}, "operation": "CREATE", "object": {raw}}}}}"#);
    let Ok(parsed) = review::parse(body.as_bytes()) else { return };
    let req = parsed.request.expect("the review has a request");
    let Some(object) = &req.object else { return };
    let one_pass = pod::mutate_object(object, &POD, false);
    assert_eq!(one_pass.denied, from_raw.denied);
    assert_eq!(one_pass.patch, from_raw.patch);
    assert_eq!(one_pass.warnings, from_raw.warnings);
}

fn check_job(raw: &str) {
    let index = JobIndex::empty();
    let s = job_settings();
    let first = job::mutate_create(raw, "env", &index, s, "alice");
    let Some((before, after)) = apply(raw, &first, JOB_REQUIRED) else { return };
    keeps_fields(&before, &after, "", &removed_paths(&first));
    let again = job::mutate_create(&after.to_string(), "env", &index, s, "alice");
    assert!(again.denied.is_none(), "the mutated Job is refused: {:?}", again.denied);
    assert!(again.patch.is_empty(), "reinvocation patches again: {:?}", again.patch);
}
