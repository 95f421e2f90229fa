//! Admission: `POST /mutate` (Jobs, CronJobs and Pods, dispatched by kind) and
//! `POST /validate` (Namespace deletes).

pub mod job;
pub(crate) mod namespace;
pub mod pod;
pub mod review;

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tracing::Instrument;

use lifecycle_contract::names::never_environment;

use crate::runtime::metrics::{AdmissionLabels, KindLabels};
use crate::state::AppState;
use review::{ReviewIn, Verdict};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/mutate", post(mutate)).route("/validate", post(validate))
}

async fn mutate(State(state): State<AppState>, body: Bytes) -> Response {
    handle(&state, &body, Endpoint::Mutate).await
}

async fn validate(State(state): State<AppState>, body: Bytes) -> Response {
    handle(&state, &body, Endpoint::Validate).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Mutate,
    Validate,
}

async fn handle(state: &AppState, body: &[u8], endpoint: Endpoint) -> Response {
    let started = Instant::now();
    let review: ReviewIn<'_> = match review::parse(body) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("not an AdmissionReview: {e}")),
    };
    let Some(req) = review.request else {
        return bad_request("AdmissionReview has no request".into());
    };
    let kind = metric_kind(&req.kind.kind);
    let span = tracing::info_span!(
        "admission",
        uid = %req.uid,
        kind = %req.kind.kind,
        op = %req.operation,
        namespace = req.namespace.as_deref().unwrap_or(""),
        name = req.name.as_deref().unwrap_or(""),
    );
    let never = req.namespace.as_deref().is_some_and(|ns| never_environment(ns, &state.config.namespace))
        || (kind == "Namespace" && req.name.as_deref().is_some_and(|ns| never_environment(ns, &state.config.namespace)));
    let verdict = async {
        let verdict = match (endpoint, kind) {
            // The webhook configurations never send these; a hand-edited one must not make them environments.
            _ if never => Verdict::allow(),
            (Endpoint::Mutate, "Pod") => pod::review(state, &req),
            (Endpoint::Mutate, "Job") => job::review(state, &req),
            (Endpoint::Mutate, "CronJob") => job::review_cronjob(&req),
            (Endpoint::Validate, "Namespace") => namespace::review(state, &req),
            // The webhook configurations route nothing else here; allow rather
            // than break a cluster whose configuration was edited by hand.
            _ => Verdict::allow(),
        };
        match &verdict.denied {
            Some(message) => tracing::info!(%message, "denied"),
            None => tracing::debug!(ops = verdict.patch.len(), "allowed"),
        }
        verdict
    }
    .instrument(span)
    .await;
    let out = review::respond(&req.uid, &verdict);
    state.metrics.admission_requests.get_or_create(&AdmissionLabels { kind, result: verdict.result() }).inc();
    state.metrics.admission_duration.get_or_create(&KindLabels { kind }).observe(started.elapsed().as_secs_f64());
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

fn metric_kind(kind: &str) -> &'static str {
    match kind {
        "Pod" => "Pod",
        "Job" => "Job",
        "CronJob" => "CronJob",
        "Namespace" => "Namespace",
        _ => "other",
    }
}

fn bad_request(message: String) -> Response {
    tracing::warn!(%message, "malformed admission request");
    (StatusCode::BAD_REQUEST, message).into_response()
}
