//! The outputs API (`POST /v1/outputs`): an agent hands over its job's
//! output file; the server checks who it is, that the job succeeded and that
//! the file is valid, then publishes the outputs to the environment's
//! ConfigMap and Secret `lifecycle-outputs` (server-side apply, one field
//! manager per JOBID), records a summary on the Job and reports with Events.
//!
//! Pure parts (checks, plans, summaries, notes) are apart from the Kubernetes
//! glue ([`identity::authenticate`], [`identity::resolve`],
//! [`exit::wait_for_main_containers`], [`store`], [`events::emit`]).
//!
//! For the controller: [`store::remove_job_outputs`] removes a deleted job's keys.

pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod exit;
pub(crate) mod fair;
pub(crate) mod handler;
pub(crate) mod identity;
pub(crate) mod lost;
pub(crate) mod managed_fields;
pub(crate) mod plan;
pub(crate) mod retry;
pub(crate) mod store;
pub(crate) mod summary;

use axum::Router;
use axum::routing::post;
use lifecycle_contract::names::OUTPUTS_API_PATH;

use crate::state::AppState;

pub(crate) use error::Error;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(OUTPUTS_API_PATH, post(handler::post_outputs))
}
