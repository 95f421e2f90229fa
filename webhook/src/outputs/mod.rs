//! The outputs API (`POST /v1/outputs`). Placeholder until implemented.

use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
