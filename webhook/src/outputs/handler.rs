//! `POST /v1/outputs`: an agent hands over its job's output file.
//!
//! Order of the checks: declared body size (413), the agent's error header,
//! the bearer token (401), the pod's fair share (429: one request in flight
//! per pod, a few per namespace, see [`super::fair`]), the pod, its namespace
//! and its Job (403), only then the body (413 over 1 MiB, 400 if both a body
//! and the error header), the main containers' exit codes and the Job's
//! failure (409, or 503 while the kubelet's status lags), the agent's error
//! (422), the file rules (422), a replay by the same pod (200 or 409), then
//! the publication: the ConfigMap and Secret, the summary on the Job, Events.
//!
//! A global slot ([`super::fair::Gate::slot`]) is held only around Kubernetes API
//! calls: never while waiting for the kubelet nor while reading the upload,
//! whose length the caller decides.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, Client};
use lifecycle_contract::names::{AGENT_ERROR_HEADER, ANNOTATION_OUTPUTS, OUTPUT_FILE_MAX_BYTES, field_manager};
use lifecycle_contract::output::{self, Output};
use serde::Serialize;
use serde_json::json;
use tracing::Instrument;
use tracing::field::Empty;

use super::error::Error;
use super::events::{self, REASON_PUBLISHED, REASON_REJECTED, REASON_RESERVED, REASON_TAKEN_OVER};
use super::exit::{job_failure, verdict, wait_for_main_containers};
use super::fair::Refusal;
use super::identity::{self, Subject, job_ref, one_line};
use super::plan::{plan, same_as_published};
use super::retry::retry;
use super::{store, summary};
use crate::runtime::limits::{self, BodyError, HeldBody};
use crate::runtime::metrics::ReasonLabels;
use crate::state::AppState;

use lifecycle_contract::names::ANNOTATION_OUTPUTS_PUBLISHED_BY;

/// Field manager of the summary annotations on Jobs.
pub(crate) const SUMMARY_FIELD_MANAGER: &str = "lifecycle-jobs.dev/outputs-api";

/// The answer to an accepted submission.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct Accepted {
    pub message: String,
    /// Outputs published (0: nothing changed).
    pub outputs: usize,
    /// Ignored parts of the file (unknown fields); never values.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        (StatusCode::OK, Json(self)).into_response()
    }
}

pub(crate) async fn post_outputs(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let span = tracing::info_span!("outputs", namespace = Empty, pod = Empty, job = Empty, job_id = Empty);
    async move {
        let started = Instant::now();
        let result = handle(&state, &headers, body).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(accepted) => {
                tracing::info!(outputs = accepted.outputs, elapsed_ms, message = %accepted.message, "accepted");
                accepted.into_response()
            }
            Err(Refused::Throttled(r)) => {
                state.metrics.outputs_throttled.get_or_create(&ReasonLabels { reason: r.reason() }).inc();
                tracing::info!(status = r.status().as_u16(), elapsed_ms, reason = r.reason(), "throttled");
                r.into_response()
            }
            Err(Refused::Error(e)) => {
                if let Some(reason) = e.metric_reason() {
                    state.metrics.outputs_rejected.get_or_create(&ReasonLabels { reason }).inc();
                }
                let status = e.status().as_u16();
                if e.status().is_server_error() {
                    tracing::warn!(status, elapsed_ms, message = %e, "not published");
                } else {
                    tracing::info!(status, elapsed_ms, message = %e, errors = e.errors().len(), "refused");
                }
                e.into_response()
            }
        }
    }
    .instrument(span)
    .await
}

/// Why a request got no [`Accepted`]: turned away before any work (the
/// agent retries), or refused by a check.
#[derive(Debug)]
enum Refused {
    Throttled(Refusal),
    Error(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::Error(e)
    }
}

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        Refused::Throttled(r)
    }
}

async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Accepted, Refused> {
    // Everything that needs no body first: an unauthenticated client never
    // makes the server hold an upload (crate::runtime::limits).
    if declared_length(headers).is_some_and(|n| n > OUTPUT_FILE_MAX_BYTES as u64) {
        return Err(Error::TooLarge { limit: OUTPUT_FILE_MAX_BYTES }.into());
    }
    let agent_error = agent_error(headers)?;
    let token = identity::bearer_token(headers)?;
    // Who calls is known only after the TokenReview: that one call is made
    // under a global slot, first come first served; the fair share follows.
    let id = {
        let _slot = state.outputs_gate.slot().await?;
        identity::authenticate(&state.client, token).await?
    };
    let span = tracing::Span::current();
    span.record("namespace", id.namespace.as_str());
    span.record("pod", id.pod_name.as_str());
    // Held until the answer: a flood from one pod or one environment is
    // turned away here, at once, and holds nothing while it waits to retry.
    let _share = state.outputs_gate.share(&id.namespace, &id.pod_uid)?;
    let subject = {
        let _slot = state.outputs_gate.slot().await?;
        identity::resolve(&state.client, &state.jobs, id, &state.config.namespace).await?
    };
    span.record("job", subject.job_name());
    span.record("job_id", subject.job_id.as_str());

    let result = checked(state, &subject, headers, body, agent_error).await;
    if let Err(Refused::Error(e)) = &result
        && e.warrants_event()
    {
        // The refusal stands without its Event when the server is too busy to write one.
        match state.outputs_gate.slot().await {
            Ok(_slot) => {
                let refs = subject.job_refs();
                let note = events::rejected_note(e);
                events::emit(&state.client, &state.config.pod_name, &refs, EventType::Warning, REASON_REJECTED, note).await;
            }
            Err(r) => tracing::info!(reason = r.reason(), "no slot free to record the refusal as an Event"),
        }
    }
    result
}

/// The upload and the job's success, then the publication under a global slot.
async fn checked(
    state: &AppState,
    subject: &Subject,
    headers: &HeaderMap,
    body: Body,
    agent_error: Option<String>,
) -> Result<Accepted, Refused> {
    // Read under the share only: the outputs pool's budget bounds the memory
    // of all uploads, the namespace's share how much of it one environment
    // holds. Read before any answer, so that an agent sending a large file
    // gets that answer rather than a connection reset.
    let held = read_body(&state.bodies.outputs, headers, body).await?;
    let body = &held.bytes;
    if agent_error.is_some() && !body.is_empty() {
        return Err(Error::BadRequest(format!(
            "send either the output file as the body or the {AGENT_ERROR_HEADER} header with an empty body, not both"
        ))
        .into());
    }
    // The kubelet may report the main containers' end a moment after the
    // agent's SIGTERM: this wait holds the pod's and namespace's shares only
    // (so its reads of the pod are bounded by those shares), never a slot.
    let id = &subject.identity;
    let containers = wait_for_main_containers(&state.client, id, &subject.pod).await?;
    verdict(&containers, job_failure(&subject.job).as_deref(), subject.job_name(), &id.pod())?;

    let _slot = state.outputs_gate.slot().await?;
    Ok(for_job(state, subject, body, agent_error).await?)
}

/// Everything after the caller is known to be a pod of `subject.job`, whose
/// main containers all ended with 0.
async fn for_job(state: &AppState, subject: &Subject, body: &[u8], agent_error: Option<String>) -> Result<Accepted, Error> {
    let client = &state.client;
    let id = &subject.identity;

    if let Some(reason) = agent_error {
        return Err(Error::AgentRefused(format!(
            "the agent could not read the output file: {reason}. Nothing was published and the job's earlier outputs stay"
        )));
    }
    if body.is_empty() {
        record_end(client, subject).await?;
        return Ok(nothing("no output file (or an empty one): nothing published, the job's earlier outputs stay", vec![]));
    }
    let outputs = output::parse(body).map_err(|r| Error::Invalid {
        message: format!(
            "output file rejected ({} error{}): nothing was published and the job's earlier outputs stay; fix the file (`lifecycle-agent validate FILE` checks it) and run the job again",
            r.errors.len(),
            if r.errors.len() == 1 { "" } else { "s" }
        ),
        errors: r.errors.iter().map(ToString::to_string).collect(),
    })?;
    let warnings: Vec<String> = outputs.warnings.iter().map(ToString::to_string).collect();
    for w in &warnings {
        tracing::info!(warning = %w, "output file warning");
    }
    if outputs.is_empty() {
        record_end(client, subject).await?;
        return Ok(nothing("the output file holds no outputs: nothing published, the job's earlier outputs stay", warnings));
    }

    let ns = id.namespace.as_str();
    let job_id = &subject.job_id;
    let plan = plan(job_id, &outputs.entries);
    let mut warnings = warnings;
    if !plan.reserved_aliases.is_empty() {
        warnings.push(events::reserved_note(job_id, &plan.reserved_aliases));
    }
    let current = store::load(client, ns).await?;
    if let Some((pod_name, pod_uid)) = published_by(&subject.job)
        && pod_uid == id.pod_uid
    {
        if same_as_published(&plan, &field_manager(job_id), &current) {
            return Ok(Accepted {
                message: format!("already published by this pod: {} outputs of job {job_id}, unchanged", outputs.entries.len()),
                outputs: outputs.entries.len(),
                warnings,
            });
        }
        return Err(Error::Replayed(format!(
            "pod {ns}/{pod_name} already published the outputs of job {job_id}, and this submission differs from what is published now \
             (different content, or a later publish replaced it): a pod publishes once; nothing changed"
        )));
    }

    let published = store::publish(client, ns, job_id, &plan, &current).await?;
    record_summary(client, subject, &outputs.entries).await?;
    state.metrics.outputs_published.inc();
    tell_published(state, subject, &outputs.entries, &plan.reserved_aliases, &published.takeovers).await;

    let sensitive = outputs.sensitive_count();
    Ok(Accepted {
        message: format!(
            "published {} output{} of job {job_id} ({sensitive} sensitive) to ConfigMap and Secret {ns}/{}",
            outputs.entries.len(),
            if outputs.entries.len() == 1 { "" } else { "s" },
            lifecycle_contract::names::OUTPUTS_OBJECT
        ),
        outputs: outputs.entries.len(),
        warnings,
    })
}

/// The Events of a publication: published, reserved names left without an
/// alias, and variables taken over from another job (on both Jobs).
async fn tell_published(
    state: &AppState,
    subject: &Subject,
    entries: &[lifecycle_contract::output::Output],
    reserved_aliases: &[String],
    takeovers: &[super::plan::Takeover],
) {
    let (client, ns, job_id) = (&state.client, subject.identity.namespace.as_str(), &subject.job_id);
    let refs = subject.job_refs();
    let instance = state.config.pod_name.as_str();
    events::emit(client, instance, &refs, EventType::Normal, REASON_PUBLISHED, events::published_note(job_id, entries)).await;
    if !reserved_aliases.is_empty() {
        let note = events::reserved_note(job_id, reserved_aliases);
        events::emit(client, instance, &refs, EventType::Warning, REASON_RESERVED, note).await;
    }
    for (previous, keys) in events::group_takeovers(takeovers) {
        // No claimant is the empty Job name: this is any Job that claims `previous`.
        let other = state.jobs.other_owner(ns, &previous, &crate::watches::job_index::Claimant::Job(String::new()));
        let note = events::takeover_note(
            &keys,
            &previous,
            other.as_ref().map(|o| format!("{ns}/{}", o.name)).as_deref(),
            job_id,
            &format!("{ns}/{}", subject.job_name()),
        );
        tracing::info!(previous = %previous, variables = keys.len(), "variables taken over from another job");
        let mut targets = refs.clone();
        if let Some(o) = &other {
            targets.push(job_ref(ns, &o.name, &o.uid));
        }
        events::emit(client, instance, &targets, EventType::Warning, REASON_TAKEN_OVER, note).await;
    }
}

fn nothing(message: &str, warnings: Vec<String>) -> Accepted {
    Accepted { message: message.into(), outputs: 0, warnings }
}

/// Reads the body within the outputs pool's limits (size, time, memory budget).
async fn read_body(pool: &limits::Pool, headers: &HeaderMap, body: Body) -> Result<HeldBody, Error> {
    pool.read(headers, body).await.map_err(|e| match e {
        BodyError::TooLarge { limit } => Error::TooLarge { limit },
        e => Error::BadRequest(e.to_string()),
    })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// The agent's `lifecycle-agent-error` header, made one safe line.
pub(crate) fn agent_error(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get(AGENT_ERROR_HEADER) else { return Ok(None) };
    let reason = one_line(&String::from_utf8_lossy(value.as_bytes()));
    if reason.is_empty() {
        return Err(Error::BadRequest(format!(
            "the {AGENT_ERROR_HEADER} header is empty: give the reason the file could not be read"
        )));
    }
    Ok(Some(reason))
}

/// Pure: the pod recorded as the publisher of `job`'s current outputs, as
/// (name, uid): the contract's reader.
pub(crate) fn published_by(job: &Job) -> Option<(String, String)> {
    lifecycle_contract::run::publisher(job).map(|(name, uid)| (name.to_string(), uid.to_string()))
}

/// Pure: the merge patch of the Job's annotations (with its UID as a precondition).
pub(crate) fn summary_patch(job_uid: &str, entries: &[Output], publisher: Option<(&str, &str)>) -> serde_json::Value {
    let mut annotations = json!({ ANNOTATION_OUTPUTS: summary::summary(entries) });
    if let Some((name, uid)) = publisher {
        annotations[ANNOTATION_OUTPUTS_PUBLISHED_BY] = json!(format!("{name}/{uid}"));
    }
    json!({ "metadata": { "uid": job_uid, "annotations": annotations } })
}

/// Pure: the merge patch that records `pod` (name, uid) as the pod whose end
/// the server noted, with no outputs (the Job's summary stays).
pub(crate) fn end_patch(job_uid: &str, pod: (&str, &str)) -> serde_json::Value {
    json!({ "metadata": { "uid": job_uid, "annotations": { ANNOTATION_OUTPUTS_PUBLISHED_BY: format!("{}/{}", pod.0, pod.1) } } })
}

/// A pod of the Job ended with no outputs: it is recorded as the Job's
/// publisher all the same (`outputs-published-by`), the record that ends a
/// lifecycle run at once (`lifecycle_contract::run::outcome`) without waiting
/// for the Job controller's `Complete`. Once per pod.
async fn record_end(client: &Client, subject: &Subject) -> Result<(), Error> {
    let id = &subject.identity;
    if published_by(&subject.job).is_some_and(|(_, uid)| uid == id.pod_uid) {
        return Ok(());
    }
    let patch = end_patch(subject.job_uid(), (&id.pod_name, &id.pod_uid));
    patch_jobs(client, subject, vec![(subject.job_name().to_string(), patch)], "recording the end of the job's pod").await
}

/// Writes the summary (and the publisher) on the Job, and the summary on its
/// template for a run. A Job deleted meanwhile is not an error: the outputs
/// are published.
async fn record_summary(client: &Client, subject: &Subject, entries: &[Output]) -> Result<(), Error> {
    let id = &subject.identity;
    let mut targets =
        vec![(subject.job_name().to_string(), summary_patch(subject.job_uid(), entries, Some((&id.pod_name, &id.pod_uid))))];
    if let Some(t) = &subject.template {
        targets.push((t.name.clone(), summary_patch(&t.uid, entries, None)));
    }
    patch_jobs(client, subject, targets, "recording the outputs summary").await
}

/// Merge patches of Jobs of the subject's namespace, each retried; a Job gone
/// or replaced (its UID precondition) is skipped.
async fn patch_jobs(
    client: &Client,
    subject: &Subject,
    targets: Vec<(String, serde_json::Value)>,
    what: &str,
) -> Result<(), Error> {
    let ns = subject.identity.namespace.as_str();
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let params = PatchParams { field_manager: Some(SUMMARY_FIELD_MANAGER.into()), ..Default::default() };
    for (name, patch) in targets {
        let patch = Patch::Merge(patch);
        match retry(what, || jobs.patch(&name, &params, &patch)).await {
            Ok(_) => {}
            // 404: deleted; 422 "metadata.uid: field is immutable": replaced
            // by a Job of the same name (the UID precondition).
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 || s.code == 422 => {
                tracing::info!(job = %name, status = s.code, message = %one_line(&s.message), "{what}: not recorded on the Job (gone or replaced?)");
            }
            Err(e) => return Err(Error::from_kube(&format!("{what} on Job {ns}/{name}"), e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    fn pool() -> limits::Pool {
        crate::runtime::limits::BodyPools::default().outputs
    }

    use super::*;
    use kube::core::ObjectMeta;
    use std::collections::BTreeMap;

    fn job_with(annotation: Option<&str>) -> Job {
        Job {
            metadata: ObjectMeta {
                annotations: annotation.map(|v| BTreeMap::from([(ANNOTATION_OUTPUTS_PUBLISHED_BY.to_string(), v.to_string())])),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn reads_the_publisher_record() {
        assert_eq!(published_by(&job_with(Some("seed-abc/1234-uid"))), Some(("seed-abc".into(), "1234-uid".into())));
        assert_eq!(published_by(&job_with(Some("garbage"))), None);
        assert_eq!(published_by(&job_with(Some("pod/"))), None);
        assert_eq!(published_by(&job_with(Some("/uid"))), None);
        assert_eq!(published_by(&job_with(None)), None);
    }

    #[test]
    fn summary_patch_has_the_uid_precondition_and_masks_values() {
        let entries = [Output { key: "PASS".into(), value: "mypassword".into(), sensitive: true }];
        let p = summary_patch("job-uid", &entries, Some(("seed-abc", "pod-uid")));
        assert_eq!(
            p,
            json!({ "metadata": { "uid": "job-uid", "annotations": {
                ANNOTATION_OUTPUTS: r#"{"PASS":"******"}"#,
                ANNOTATION_OUTPUTS_PUBLISHED_BY: "seed-abc/pod-uid",
            }}})
        );
        assert!(!p.to_string().contains("mypassword"));
        let p = summary_patch("tpl-uid", &entries, None);
        assert!(p["metadata"]["annotations"].get(ANNOTATION_OUTPUTS_PUBLISHED_BY).is_none());
    }

    #[test]
    fn the_end_of_a_pod_without_outputs_is_recorded_alone() {
        let p = end_patch("job-uid", ("seed-abc", "pod-uid"));
        assert_eq!(
            p,
            json!({ "metadata": { "uid": "job-uid", "annotations": { ANNOTATION_OUTPUTS_PUBLISHED_BY: "seed-abc/pod-uid" }}}),
            "the summary of earlier outputs is left as it is"
        );
    }

    #[test]
    fn agent_error_header_is_one_safe_line() {
        let mut h = HeaderMap::new();
        assert_eq!(agent_error(&h).unwrap(), None);
        h.insert(AGENT_ERROR_HEADER, "output file is a symbolic link: refusing to follow it".parse().unwrap());
        assert_eq!(agent_error(&h).unwrap().as_deref(), Some("output file is a symbolic link: refusing to follow it"));
        h.insert(AGENT_ERROR_HEADER, "   ".parse().unwrap());
        assert_eq!(agent_error(&h).unwrap_err().status(), 400);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, (OUTPUT_FILE_MAX_BYTES + 1).to_string().parse().unwrap());
        assert_eq!(read_body(&pool(), &h, Body::empty()).await.unwrap_err().status(), 413);
        let big = vec![b' '; OUTPUT_FILE_MAX_BYTES + 1];
        assert_eq!(read_body(&pool(), &HeaderMap::new(), Body::from(big)).await.unwrap_err().status(), 413);
        let ok = vec![b' '; OUTPUT_FILE_MAX_BYTES];
        assert_eq!(read_body(&pool(), &HeaderMap::new(), Body::from(ok)).await.unwrap().bytes.len(), OUTPUT_FILE_MAX_BYTES);
    }
}
