//! Pod admission: variables for every pod of an environment (built-in, project,
//! environment and output scopes, see [`env_from_ops`]), and the output
//! volume plus the agent sidecar for pods of captured Jobs.
//!
//! Reads only the fields it needs from the raw pod and answers with targeted
//! JSON-patch operations. No API call: this runs on every pod creation.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use lifecycle_contract::JobId;
use lifecycle_contract::lifecycle_job;
use lifecycle_contract::names::{
    ANNOTATION_INJECT_OUTPUTS, INJECTED_SOURCES, LABEL_CAPTURE, OUTPUT_DIR, SourceKind, TOKEN_AUDIENCE, agent_env,
    captured_pod_grace, injected, opts_out,
};
use lifecycle_contract::names::{GATED_START_JOBS, LABEL_GATED, LABEL_RUN, SCHEDULING_GATE_START_JOBS};

use super::review::{Object, Op, Request, Verdict, escape};
use crate::state::AppState;

/// Seconds of the agent's projected token; the kubelet refreshes it at 80%.
const TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// The fields of a pod the mutator reads, borrowed from the request body.
#[derive(Debug, Deserialize, Default)]
pub struct PodIn<'a> {
    #[serde(default, borrow)]
    metadata: MetaIn<'a>,
    #[serde(default, borrow)]
    spec: SpecIn<'a>,
}

#[derive(Debug, Deserialize, Default)]
struct MetaIn<'a> {
    #[serde(default, borrow)]
    labels: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    #[serde(default, borrow)]
    annotations: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SpecIn<'a> {
    #[serde(default, borrow)]
    containers: Vec<ContainerIn<'a>>,
    #[serde(default, borrow)]
    init_containers: Option<Vec<ContainerIn<'a>>>,
    #[serde(default, borrow)]
    volumes: Option<Vec<Named<'a>>>,
    #[serde(default)]
    termination_grace_period_seconds: Option<i64>,
    #[serde(default, borrow)]
    scheduling_gates: Option<Vec<Named<'a>>>,
    /// Set on a pod bound at creation (`kubectl debug node/…`, static-like pods,
    /// some operators): the API server refuses scheduling gates on it.
    #[serde(default, borrow)]
    node_name: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    env_from: Option<Vec<EnvFromIn<'a>>>,
    #[serde(default, borrow)]
    volume_mounts: Option<Vec<MountIn<'a>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvFromIn<'a> {
    #[serde(default, borrow)]
    config_map_ref: Option<Named<'a>>,
    #[serde(default, borrow)]
    secret_ref: Option<Named<'a>>,
}

#[derive(Debug, Deserialize)]
struct Named<'a> {
    #[serde(default, borrow)]
    name: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MountIn<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    mount_path: Cow<'a, str>,
}

/// What the pod mutator needs besides the pod: server settings of the moment.
#[derive(Debug, Clone)]
pub struct PodSettings<'a> {
    pub agent_image: &'a str,
    pub agent_image_pull_policy: &'a str,
    pub server_url: &'a str,
    /// `IP:port` the agent dials (empty: the URL's host, which must be an IP).
    pub server_addr: &'a str,
    /// PEM bundle the agent trusts for the server.
    pub ca_bundle: &'a str,
    /// The agent container's JSON for these settings, made once ([`AgentTemplate`]).
    pub agent_template: &'a AgentTemplate,
}

pub fn review(state: &AppState, req: &Request<'_>) -> Verdict {
    if req.operation != "CREATE" || req.sub_resource.is_some() {
        return Verdict::allow();
    }
    let Some(object) = &req.object else {
        return Verdict::allow();
    };
    let certs = state.certs.current();
    let settings = PodSettings {
        agent_image: &state.config.agent_image,
        agent_image_pull_policy: &state.config.agent_image_pull_policy,
        server_url: &state.config.server_url,
        server_addr: state.config.server_addr.as_deref().unwrap_or(""),
        ca_bundle: certs.as_ref().map(|c| c.ca_bundle.as_str()).unwrap_or(""),
        agent_template: &state.agent_template,
    };
    let gate = state.envs.gates(req.namespace.as_deref().unwrap_or(""));
    mutate_object(object, &settings, gate)
}

/// The patch for a pod as [`super::review::parse`] read it.
pub fn mutate_object(object: &Object<'_>, settings: &PodSettings<'_>, gate: bool) -> Verdict {
    match object {
        Object::Pod(pod) => mutate_pod(pod, settings, gate),
        Object::Raw(raw) => mutate_gated(raw.get(), settings, gate),
    }
}

/// The patch for one pod, from its raw JSON, in an environment that gates no pod now.
pub fn mutate(raw: &str, settings: &PodSettings<'_>) -> Verdict {
    mutate_gated(raw, settings, false)
}

/// The patch for one pod, from its raw JSON; `gate`: the environment's start is
/// pending or running (see [`crate::controller::gate`]).
pub fn mutate_gated(raw: &str, settings: &PodSettings<'_>, gate: bool) -> Verdict {
    let pod: PodIn<'_> = match serde_json::from_str(raw) {
        Ok(p) => p,
        // The API server has already validated the object's shape; a pod we
        // cannot read is one we must not guess about.
        Err(e) => return Verdict::deny(format!("lifecycle-jobs: cannot read the pod: {e}")),
    };
    mutate_pod(&pod, settings, gate)
}

fn mutate_pod(pod: &PodIn<'_>, settings: &PodSettings<'_>, gate: bool) -> Verdict {
    let mut ops = Vec::new();
    let mut warnings = Vec::new();
    let inject = !opts_out(pod.metadata.annotations.get(ANNOTATION_INJECT_OUTPUTS).map(|v| v.as_ref()));
    let capture = pod.metadata.labels.get(LABEL_CAPTURE).map(|v| v.as_ref());

    if inject {
        for (list, containers) in containers_of(&pod.spec) {
            for (i, c) in containers.iter().enumerate() {
                if c.name != injected::AGENT_CONTAINER {
                    env_from_ops(list, i, c, &mut ops);
                }
            }
        }
    }

    // The pods of lifecycle runs carry the label `run` (from their Job's pod
    // template): they are what the others wait for. A pod created with
    // `spec.nodeName` is bound already: the API server refuses a scheduling gate
    // on it (`kubectl debug node/…` would fail during every start), so it is not
    // gated and starts with whatever outputs exist at that moment.
    if gate && inject && !lifecycle_job::pod_of_a_run(pod.metadata.labels.get(LABEL_RUN).map(|v| v.as_ref())) && !bound(pod) {
        gate_ops(pod, &mut ops);
    }

    if let Some(label) = capture {
        match JobId::parse(label) {
            Some(job_id) => capture_ops(&pod.spec, &job_id, settings, &mut ops, &mut warnings),
            None => warnings.push(format!(
                "lifecycle-jobs: label {LABEL_CAPTURE}={label:?} is not a JOBID; outputs of this pod are not captured"
            )),
        }
    }
    Verdict { denied: None, patch: ops, warnings }
}

/// Whether the pod names its node at creation (an empty name is no node).
fn bound(pod: &PodIn<'_>) -> bool {
    pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
}

/// The start-jobs scheduling gate, and the label the controller finds gated pods by.
fn gate_ops(pod: &PodIn<'_>, ops: &mut Vec<Op>) {
    let gate = json!({"name": SCHEDULING_GATE_START_JOBS});
    match &pod.spec.scheduling_gates {
        Some(gates) if gates.iter().any(|g| g.name == SCHEDULING_GATE_START_JOBS) => {}
        Some(_) => ops.push(Op::add("/spec/schedulingGates/-", gate)),
        None => ops.push(Op::add("/spec/schedulingGates", json!([gate]))),
    }
    if pod.metadata.labels.is_empty() {
        ops.push(Op::add("/metadata/labels", json!({LABEL_GATED: GATED_START_JOBS})));
    } else if !pod.metadata.labels.contains_key(LABEL_GATED) {
        ops.push(Op::add(format!("/metadata/labels/{}", escape(LABEL_GATED)), json!(GATED_START_JOBS)));
    }
}

fn containers_of<'s, 'a>(spec: &'s SpecIn<'a>) -> impl Iterator<Item = (&'static str, &'s [ContainerIn<'a>])> {
    [("containers", spec.containers.as_slice()), ("initContainers", spec.init_containers.as_deref().unwrap_or(&[]))].into_iter()
}

/// One `envFrom` entry of the injected list (all optional: a missing object is
/// no error, e.g. an environment with no project or no outputs yet).
fn injected_entry(kind: SourceKind, name: &str) -> Value {
    match kind {
        SourceKind::ConfigMap => json!({"configMapRef": {"name": name, "optional": true}}),
        SourceKind::Secret => json!({"secretRef": {"name": name, "optional": true}}),
    }
}

/// The injected entries serialised once: every container of every pod of an
/// environment gets them, and building them as `Value`s per pod showed in
/// profiles. `[i]`: entry `i` of [`INJECTED_SOURCES`]; `.1`: the whole list.
static INJECTED_JSON: std::sync::LazyLock<(Vec<&'static RawValue>, &'static RawValue)> = std::sync::LazyLock::new(|| {
    let entries: Vec<Value> = INJECTED_SOURCES.iter().map(|&(_, kind, name)| injected_entry(kind, name)).collect();
    let leak = |v: &Value| -> &'static RawValue { Box::leak(raw(v.to_string())) };
    (entries.iter().map(leak).collect(), leak(&Value::Array(entries.clone())))
});

fn refers_to(e: &EnvFromIn<'_>, kind: SourceKind, name: &str) -> bool {
    let r = match kind {
        SourceKind::ConfigMap => &e.config_map_ref,
        SourceKind::Secret => &e.secret_ref,
    };
    r.as_ref().is_some_and(|r| r.name == name)
}

/// Puts the injected sources ([`INJECTED_SOURCES`]: built-ins, project,
/// environment, outputs) first in `envFrom`, in their order, so that the
/// narrower scope wins and the container's own `env` and `envFrom` win over
/// all of them (later sources override earlier ones).
///
/// Idempotent: an entry already present is not added again. A missing entry
/// goes right after the injected entries that lead the list, so a pod that
/// already carries some of them (reinvocation, a spec copied from a mutated
/// pod) ends with the full list in order. An injected name that the workload
/// placed itself further down the list is left where it is (its position is
/// the workload's choice) and a fresh entry still goes first.
fn env_from_ops(list: &str, i: usize, c: &ContainerIn<'_>, ops: &mut Vec<Op>) {
    let Some(existing) = &c.env_from else {
        ops.push(Op::add_static(format!("/spec/{list}/{i}/envFrom"), INJECTED_JSON.1));
        return;
    };
    // Positions in the list as it evolves: `Some(source)` for an injected
    // entry found or added, `None` for one of the workload's entries. JSON
    // patch ops apply in order, so each index refers to the list after the
    // previous op.
    let mut current: Vec<Option<(SourceKind, &str)>> = existing
        .iter()
        .map(|e| INJECTED_SOURCES.iter().find(|&&(_, kind, name)| refers_to(e, kind, name)).map(|&(_, kind, name)| (kind, name)))
        .collect();
    let mut cursor = 0;
    for (j, &(_, kind, name)) in INJECTED_SOURCES.iter().enumerate() {
        match current.iter().position(|e| *e == Some((kind, name))) {
            Some(p) if p == cursor => cursor += 1,
            _ => {
                ops.push(Op::add_static(format!("/spec/{list}/{i}/envFrom/{cursor}"), INJECTED_JSON.0[j]));
                current.insert(cursor, Some((kind, name)));
                cursor += 1;
            }
        }
    }
}

fn capture_ops(spec: &SpecIn<'_>, job_id: &JobId, s: &PodSettings<'_>, ops: &mut Vec<Op>, warnings: &mut Vec<String>) {
    // Volumes: the shared output directory and the agent's audience-bound token.
    let volumes = spec.volumes.as_deref().unwrap_or(&[]);
    let mut new_volumes = Vec::new();
    if !volumes.iter().any(|v| v.name == injected::OUTPUT_VOLUME) {
        new_volumes.push(json!({"name": injected::OUTPUT_VOLUME, "emptyDir": {"sizeLimit": "16Mi"}}));
    }
    if !volumes.iter().any(|v| v.name == injected::TOKEN_VOLUME) {
        new_volumes.push(json!({
            "name": injected::TOKEN_VOLUME,
            "projected": {"defaultMode": 0o444, "sources": [{"serviceAccountToken": {
                "audience": TOKEN_AUDIENCE, "expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"
            }}]}
        }));
    }
    append_all(ops, "/spec/volumes", spec.volumes.is_some(), new_volumes);

    // The output directory in every container of the job.
    for (list, containers) in containers_of(spec) {
        for (i, c) in containers.iter().enumerate() {
            if c.name == injected::AGENT_CONTAINER {
                continue;
            }
            let mounts = c.volume_mounts.as_deref().unwrap_or(&[]);
            if mounts.iter().any(|m| m.name == injected::OUTPUT_VOLUME) {
                continue;
            }
            if mounts.iter().any(|m| m.mount_path.trim_end_matches('/') == OUTPUT_DIR) {
                warnings.push(format!(
                    "lifecycle-jobs: container {:?} mounts its own volume at {OUTPUT_DIR}; the agent cannot see its output file",
                    c.name
                ));
                continue;
            }
            let mount = json!({"name": injected::OUTPUT_VOLUME, "mountPath": OUTPUT_DIR});
            match c.volume_mounts {
                None => ops.push(Op::add(format!("/spec/{list}/{i}/volumeMounts"), json!([mount]))),
                Some(_) => ops.push(Op::add(format!("/spec/{list}/{i}/volumeMounts/-"), mount)),
            }
        }
    }

    // The agent, first among init containers so it watches before anything runs.
    let inits = spec.init_containers.as_deref().unwrap_or(&[]);
    if !inits.iter().any(|c| c.name == injected::AGENT_CONTAINER) {
        // Time for the agent's retries: raised (never lowered) to its minimum.
        let grace = captured_pod_grace(spec.termination_grace_period_seconds);
        if spec.termination_grace_period_seconds != Some(grace) {
            ops.push(Op::add("/spec/terminationGracePeriodSeconds", json!(grace)));
        }
        match spec.init_containers {
            None => ops.push(Op::add_built("/spec/initContainers", agent_container_json(job_id, grace, s, true))),
            Some(_) => ops.push(Op::add_built("/spec/initContainers/0", agent_container_json(job_id, grace, s, false))),
        }
    }
}

fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).expect("serialised JSON is valid JSON")
}

/// Placeholders in the cached agent container JSON; neither needs escaping
/// once replaced (a JOBID is `[A-Z0-9_]+`, a grace period digits).
const JOB_ID_SLOT: &str = "@@LIFECYCLE_JOB_ID@@";
const GRACE_SLOT: &str = "@@LIFECYCLE_GRACE@@";

struct AgentJson {
    key: [String; 5],
    /// The container's JSON cut where the grace period and the JOBID go, in that order.
    parts: [String; 3],
}

/// The agent container serialised once per server settings and CA bundle and
/// cut at its two slots: it is most of the patch, and escaping the CA bundle
/// on every pod showed up as a fifth of the admission time in profiles. The
/// server keeps one in its state; it is made again when the settings it was
/// made from change (a CA rotation).
#[derive(Default)]
pub struct AgentTemplate(std::sync::RwLock<Option<std::sync::Arc<AgentJson>>>);

impl std::fmt::Debug for AgentTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTemplate").finish_non_exhaustive()
    }
}

impl AgentTemplate {
    pub const fn new() -> Self {
        AgentTemplate(std::sync::RwLock::new(None))
    }

    fn for_settings(&self, s: &PodSettings<'_>) -> std::sync::Arc<AgentJson> {
        let key = [s.ca_bundle, s.agent_image, s.agent_image_pull_policy, s.server_url, s.server_addr];
        let cached = self.0.read().ok().and_then(|g| g.as_ref().filter(|a| a.key == key).cloned());
        if let Some(t) = cached {
            return t;
        }
        // The slots are written where the values go, by name: no position in the env list is assumed.
        let value = agent_container_with(JOB_ID_SLOT, GRACE_SLOT, s);
        let t = std::sync::Arc::new(AgentJson { key: key.map(str::to_string), parts: cut_at_slots(&value.to_string()) });
        if let Ok(mut g) = self.0.write() {
            *g = Some(t.clone());
        }
        t
    }
}

/// The agent container's JSON (`in_list`: as a list of that one container).
fn agent_container_json(job_id: &JobId, grace_seconds: i64, s: &PodSettings<'_>, in_list: bool) -> String {
    let template = s.agent_template.for_settings(s);
    // Pieces put together, no search: it runs for every job pod.
    let [before_grace, before_job_id, rest] = &template.parts;
    let grace = grace_seconds.to_string();
    let mut json = String::with_capacity(before_grace.len() + before_job_id.len() + rest.len() + 96);
    if in_list {
        json.push('[');
    }
    for part in [before_grace, &grace, before_job_id, job_id.as_str(), rest] {
        json.push_str(part);
    }
    if in_list {
        json.push(']');
    }
    json
}

/// The agent template's JSON cut at its two slots (grace period first, as
/// the env list has them; neither slot needs escaping in JSON).
fn cut_at_slots(json: &str) -> [String; 3] {
    let (before_grace, after) = json.split_once(GRACE_SLOT).expect("the agent template has the grace slot");
    let (before_job_id, rest) = after.split_once(JOB_ID_SLOT).expect("the JOBID slot follows the grace slot");
    [before_grace.to_string(), before_job_id.to_string(), rest.to_string()]
}

/// Adds `items` to the array at `path`, creating it when absent.
fn append_all(ops: &mut Vec<Op>, path: &str, exists: bool, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if exists {
        ops.extend(items.into_iter().map(|v| Op::add(format!("{path}/-"), v)));
    } else {
        ops.push(Op::add(path, Value::Array(items)));
    }
}

/// The agent as a native sidecar: an init container with `restartPolicy: Always`.
pub fn agent_container(job_id: &JobId, grace_seconds: i64, s: &PodSettings<'_>) -> Value {
    agent_container_with(job_id.as_str(), &grace_seconds.to_string(), s)
}

fn agent_container_with(job_id: &str, grace_seconds: &str, s: &PodSettings<'_>) -> Value {
    json!({
        "name": injected::AGENT_CONTAINER,
        "image": s.agent_image,
        "imagePullPolicy": s.agent_image_pull_policy,
        "args": ["run"],
        "restartPolicy": "Always",
        "env": [
            {"name": agent_env::SERVER_URL, "value": s.server_url},
            {"name": agent_env::SERVER_CA, "value": s.ca_bundle},
            {"name": agent_env::GRACE_SECONDS, "value": grace_seconds},
            {"name": agent_env::JOB_ID, "value": job_id},
            {"name": agent_env::SERVER_ADDR, "value": s.server_addr},
        ],
        "resources": {
            "requests": {"cpu": "5m", "memory": "8Mi"},
            "limits": {"cpu": "100m", "memory": "32Mi"},
        },
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "privileged": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": injected::OUTPUT_VOLUME, "mountPath": OUTPUT_DIR, "readOnly": true},
            {"name": injected::TOKEN_VOLUME, "mountPath": injected::TOKEN_DIR, "readOnly": true},
        ],
        "terminationMessagePolicy": "File",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static AGENT: AgentTemplate = AgentTemplate::new();

    fn settings() -> PodSettings<'static> {
        PodSettings {
            agent_image: "agent:dev",
            agent_image_pull_policy: "IfNotPresent",
            server_url: "https://lifecycle-webhook.lifecycle-jobs-system.svc:443",
            server_addr: "10.96.12.34:443",
            agent_template: &AGENT,
            ca_bundle: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
        }
    }

    /// Applies the verdict's patch with the json-patch crate, as the API server would.
    fn apply(pod: &Value, v: &Verdict) -> Value {
        let mut doc = pod.clone();
        let patch: json_patch::Patch = serde_json::from_slice(&super::super::review::patch_json(&v.patch)).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        doc
    }

    fn run(pod: &Value) -> (Value, Verdict) {
        let v = mutate(&pod.to_string(), &settings());
        assert!(v.denied.is_none(), "{:?}", v.denied);
        (apply(pod, &v), v)
    }

    fn job_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "seed-abc", "labels": {LABEL_CAPTURE: "SEED", "job-name": "seed"}},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 75,
                "containers": [
                    {"name": "main", "image": "busybox:local", "env": [{"name": "A", "value": "1"}],
                     "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]},
                    {"name": "second", "image": "busybox:local", "envFrom": [{"configMapRef": {"name": "mine"}}]},
                ],
                "initContainers": [
                    {"name": "mesh", "image": "proxy", "restartPolicy": "Always", "unknownFutureField": {"x": 1}}
                ],
                "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}]
            }
        })
    }

    /// The injected list, in order, as `kind/name` strings.
    fn injected_names() -> Vec<String> {
        INJECTED_SOURCES.iter().map(|&(_, kind, name)| format!("{kind:?}/{name}")).collect()
    }

    /// A container's `envFrom` as `kind/name` strings.
    fn env_from_names(c: &Value) -> Vec<String> {
        c["envFrom"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or(&[])
            .iter()
            .map(|e| match (e.get("configMapRef"), e.get("secretRef")) {
                (Some(r), _) => format!("ConfigMap/{}", r["name"].as_str().unwrap()),
                (_, Some(r)) => format!("Secret/{}", r["name"].as_str().unwrap()),
                _ => "?".into(),
            })
            .collect()
    }

    #[test]
    fn injected_order_is_builtins_project_environment_outputs_configmap_before_secret() {
        assert_eq!(
            injected_names(),
            [
                "ConfigMap/lifecycle-builtins",
                "ConfigMap/lifecycle-project",
                "Secret/lifecycle-project",
                "ConfigMap/lifecycle-environment",
                "Secret/lifecycle-environment",
                "ConfigMap/lifecycle-outputs",
                "Secret/lifecycle-outputs",
            ]
        );
    }

    #[test]
    fn plain_workload_gets_env_from_first() {
        let pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [
            {"name": "a", "image": "x", "env": [{"name": "OWN", "value": "1"}]},
            {"name": "b", "image": "x", "envFrom": [{"secretRef": {"name": "own"}}, {"configMapRef": {"name": "mine"}}]},
        ]}});
        let (out, v) = run(&pod);
        let a = &out["spec"]["containers"][0];
        assert_eq!(env_from_names(a), injected_names());
        for e in a["envFrom"].as_array().unwrap() {
            let r = e.get("configMapRef").or(e.get("secretRef")).unwrap();
            assert_eq!(r["optional"], true, "{e}");
        }
        assert_eq!(a["env"][0]["name"], "OWN", "env is untouched");
        let mut want = injected_names();
        want.extend(["Secret/own".to_string(), "ConfigMap/mine".to_string()]);
        assert_eq!(env_from_names(&out["spec"]["containers"][1]), want, "the workload's own envFrom comes last");
        assert!(out["spec"].get("initContainers").is_none(), "no agent without the capture label");
        assert!(v.warnings.is_empty());
        // One op for a container without envFrom, one targeted insert per source otherwise.
        assert_eq!(v.patch.len(), 1 + INJECTED_SOURCES.len());
    }

    #[test]
    fn job_pod_containers_get_every_source_and_the_agent_none() {
        let (out, _) = run(&job_pod());
        for c in out["spec"]["containers"].as_array().unwrap() {
            assert_eq!(env_from_names(c)[..INJECTED_SOURCES.len()], injected_names()[..], "{}", c["name"]);
        }
        let inits = out["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(inits[0]["name"], injected::AGENT_CONTAINER);
        assert!(inits[0].get("envFrom").is_none());
        assert_eq!(env_from_names(&inits[1]), injected_names(), "other init containers get them");
    }

    #[test]
    fn pod_with_the_older_outputs_only_injection_gets_the_inputs_before_them() {
        let pod = json!({"spec": {"containers": [{"name": "a", "envFrom": [
            {"configMapRef": {"name": "lifecycle-outputs", "optional": true}},
            {"secretRef": {"name": "lifecycle-outputs", "optional": true}},
            {"configMapRef": {"name": "own"}},
        ]}]}});
        let (out, v) = run(&pod);
        let mut want = injected_names();
        want.push("ConfigMap/own".into());
        assert_eq!(env_from_names(&out["spec"]["containers"][0]), want);
        assert_eq!(v.patch.len(), 5, "only the five missing entries are added");
    }

    #[test]
    fn partial_prefix_is_completed_in_order() {
        let pod = json!({"spec": {"containers": [{"name": "a", "envFrom": [
            {"configMapRef": {"name": "lifecycle-project", "optional": true}},
            {"secretRef": {"name": "lifecycle-project", "optional": true}},
            {"secretRef": {"name": "own"}},
        ]}]}});
        let (out, _) = run(&pod);
        let mut want = injected_names();
        want.push("Secret/own".into());
        assert_eq!(env_from_names(&out["spec"]["containers"][0]), want);
    }

    #[test]
    fn an_injected_name_the_workload_placed_itself_stays_and_the_list_still_leads() {
        let pod = json!({"spec": {"containers": [{"name": "a", "envFrom": [
            {"configMapRef": {"name": "own"}},
            {"secretRef": {"name": "lifecycle-environment"}},
        ]}]}});
        let (out, v) = run(&pod);
        let mut want = injected_names();
        want.extend(["ConfigMap/own".to_string(), "Secret/lifecycle-environment".to_string()]);
        assert_eq!(env_from_names(&out["spec"]["containers"][0]), want);
        // Its own entry is not made optional behind its back.
        assert!(out["spec"]["containers"][0]["envFrom"][INJECTED_SOURCES.len() + 1]["secretRef"].get("optional").is_none());
        let again = mutate(&out.to_string(), &settings());
        assert!(again.patch.is_empty(), "{:?}", again.patch);
        assert!(!v.patch.is_empty());
    }

    #[test]
    fn plain_workload_reinvocation_adds_no_duplicate() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "envFrom": [{"secretRef": {"name": "own"}}]}]}});
        let (once, _) = run(&pod);
        let v = mutate(&once.to_string(), &settings());
        assert!(v.patch.is_empty(), "{:?}", v.patch);
    }

    #[test]
    fn opt_out_of_injection() {
        let pod = json!({"metadata": {"annotations": {ANNOTATION_INJECT_OUTPUTS: "false"}},
                         "spec": {"containers": [{"name": "a"}]}});
        let (_, v) = run(&pod);
        assert!(v.patch.is_empty());
    }

    #[test]
    fn job_pod_gets_agent_volume_and_mounts_and_keeps_unknown_fields() {
        let (out, _) = run(&job_pod());
        let inits = out["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(inits[0]["name"], injected::AGENT_CONTAINER);
        assert_eq!(inits[0]["restartPolicy"], "Always");
        assert!(inits[0].get("envFrom").is_none(), "the agent gets no variables");
        assert_eq!(inits[1]["restartPolicy"], "Always", "another sidecar keeps its restartPolicy");
        assert_eq!(inits[1]["unknownFutureField"]["x"], 1);
        let env = inits[0]["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == agent_env::GRACE_SECONDS && e["value"] == "75"));
        assert_eq!(out["spec"]["terminationGracePeriodSeconds"], 75, "a longer grace period is kept");
        assert!(env.iter().any(|e| e["name"] == agent_env::JOB_ID && e["value"] == "SEED"));
        let vols = out["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 3);
        let token = vols.iter().find(|v| v["name"] == injected::TOKEN_VOLUME).unwrap();
        assert_eq!(token["projected"]["sources"][0]["serviceAccountToken"]["audience"], TOKEN_AUDIENCE);
        for c in out["spec"]["containers"].as_array().unwrap() {
            let mounts = c["volumeMounts"].as_array().unwrap();
            assert!(mounts.iter().any(|m| m["mountPath"] == OUTPUT_DIR), "{}", c["name"]);
        }
        // The other sidecar also sees the directory.
        assert!(inits[1]["volumeMounts"].as_array().unwrap().iter().any(|m| m["mountPath"] == OUTPUT_DIR));
    }

    #[test]
    fn cached_agent_json_is_the_agent_container() {
        let id = JobId::derive(None, "seed-db");
        for grace in [30, 7] {
            let cached: Value = serde_json::from_str(&agent_container_json(&id, grace, &settings(), false)).unwrap();
            assert_eq!(cached, agent_container(&id, grace, &settings()));
        }
        let mut other = settings();
        other.ca_bundle = "another CA";
        let cached: Value = serde_json::from_str(&agent_container_json(&id, 30, &other, false)).unwrap();
        assert_eq!(cached, agent_container(&id, 30, &other), "a new CA bundle refreshes the cache");
    }

    #[test]
    fn reinvocation_is_idempotent() {
        let (once, _) = run(&job_pod());
        let v = mutate(&once.to_string(), &settings());
        assert!(v.patch.is_empty(), "second pass must change nothing: {:?}", v.patch);
    }

    #[test]
    fn pod_without_init_containers_or_volumes() {
        let pod = json!({"metadata": {"labels": {LABEL_CAPTURE: "X1"}}, "spec": {"containers": [{"name": "m"}]}});
        let (out, _) = run(&pod);
        assert_eq!(out["spec"]["initContainers"][0]["name"], injected::AGENT_CONTAINER);
        assert_eq!(out["spec"]["volumes"].as_array().unwrap().len(), 2);
        let env = out["spec"]["initContainers"][0]["env"].as_array().unwrap();
        // No grace period (30 s) is raised to the agent's minimum.
        let min = lifecycle_contract::names::AGENT_MIN_GRACE_SECONDS;
        assert!(env.iter().any(|e| e["name"] == agent_env::GRACE_SECONDS && e["value"] == min.to_string().as_str()));
        assert_eq!(out["spec"]["terminationGracePeriodSeconds"], min);
    }

    #[test]
    fn own_volume_at_output_dir_is_kept_with_a_warning() {
        let pod = json!({"metadata": {"labels": {LABEL_CAPTURE: "X"}}, "spec": {"containers": [
            {"name": "m", "volumeMounts": [{"name": "mine", "mountPath": "/qovery-output/"}]}
        ], "volumes": [{"name": "mine", "emptyDir": {}}]}});
        let (out, v) = run(&pod);
        assert_eq!(out["spec"]["containers"][0]["volumeMounts"].as_array().unwrap().len(), 1);
        assert_eq!(v.warnings.len(), 1);
    }

    #[test]
    fn bad_capture_label_warns_and_injects_no_agent() {
        let pod = json!({"metadata": {"labels": {LABEL_CAPTURE: "lower"}}, "spec": {"containers": [{"name": "m"}]}});
        let (out, v) = run(&pod);
        assert!(out["spec"].get("initContainers").is_none());
        assert_eq!(v.warnings.len(), 1);
    }

    // ---- the start-jobs gate ----

    fn gated(pod: &Value) -> (Value, Verdict) {
        let v = mutate_gated(&pod.to_string(), &settings(), true);
        assert!(v.denied.is_none(), "{:?}", v.denied);
        (apply(pod, &v), v)
    }

    #[test]
    fn pods_of_a_starting_environment_are_gated_and_labelled() {
        let pod = json!({"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "a"}]}});
        let (out, _) = gated(&pod);
        assert_eq!(out["spec"]["schedulingGates"], json!([{"name": SCHEDULING_GATE_START_JOBS}]));
        assert_eq!(out["metadata"]["labels"], json!({"app": "web", LABEL_GATED: GATED_START_JOBS}));
        assert_eq!(out["spec"]["containers"][0]["envFrom"].as_array().unwrap().len(), INJECTED_SOURCES.len());
        // Re-invocation adds nothing.
        assert!(mutate_gated(&out.to_string(), &settings(), true).patch.is_empty());
        // Not gating: nothing about gates.
        let (out, _) = run(&pod);
        assert!(out["spec"].get("schedulingGates").is_none());
    }

    #[test]
    fn own_gates_and_no_labels_are_kept() {
        let pod =
            json!({"metadata": {}, "spec": {"schedulingGates": [{"name": "example.com/quota"}], "containers": [{"name": "a"}]}});
        let (out, _) = gated(&pod);
        assert_eq!(out["spec"]["schedulingGates"], json!([{"name": "example.com/quota"}, {"name": SCHEDULING_GATE_START_JOBS}]));
        assert_eq!(out["metadata"]["labels"], json!({LABEL_GATED: GATED_START_JOBS}));
    }

    #[test]
    fn run_pods_and_opted_out_pods_are_never_gated() {
        let mut run_pod = job_pod();
        run_pod["metadata"]["labels"][LABEL_RUN] = json!("3");
        let (out, _) = gated(&run_pod);
        assert!(out["spec"].get("schedulingGates").is_none());
        assert!(out["metadata"]["labels"].get(LABEL_GATED).is_none());
        // A plain Job's pod is a workload: it waits.
        let (out, _) = gated(&job_pod());
        assert_eq!(out["spec"]["schedulingGates"][0]["name"], SCHEDULING_GATE_START_JOBS);
        let opted_out =
            json!({"metadata": {"annotations": {ANNOTATION_INJECT_OUTPUTS: "false"}}, "spec": {"containers": [{"name": "a"}]}});
        assert!(mutate_gated(&opted_out.to_string(), &settings(), true).patch.is_empty());
    }

    #[test]
    fn pods_bound_to_a_node_are_never_gated_but_get_their_variables() {
        // `kubectl debug node/NODE` creates such a pod; the API server refuses
        // `schedulingGates` on a pod with `spec.nodeName`.
        let pod = json!({"metadata": {"name": "node-debugger-x"}, "spec": {"nodeName": "worker-1", "containers": [{"name": "debugger"}]}});
        let (out, v) = gated(&pod);
        assert!(out["spec"].get("schedulingGates").is_none(), "{:?}", v.patch);
        assert!(out["metadata"].get("labels").is_none());
        assert_eq!(env_from_names(&out["spec"]["containers"][0]), injected_names(), "it still gets the variables that exist");
        // An empty nodeName is no node: gated like any pod.
        let pod = json!({"metadata": {}, "spec": {"nodeName": "", "containers": [{"name": "a"}]}});
        let (out, _) = gated(&pod);
        assert_eq!(out["spec"]["schedulingGates"][0]["name"], SCHEDULING_GATE_START_JOBS);
    }
}
