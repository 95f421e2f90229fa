//! The view's actions: the same requests as `env start|stop|redeploy|delete`
//! and `run`, made with the person's credentials. What the API server
//! refuses is shown as it said it. The guard has already checked the session
//! and the Origin; here the form token is checked too.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use lifecycle_contract::Event;
use serde::{Deserialize, Serialize};

use super::Shared;
use super::pages::{env_href, job_href};
use crate::env::{self, Action};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlashKind {
    Ok,
    Error,
}

/// What an action said, shown once on the page it leads back to.
#[derive(Debug, Clone)]
pub(crate) struct Flash {
    pub(crate) kind: FlashKind,
    pub(crate) message: String,
}

/// Messages waiting for the page a form POST (without the script) is sent back to.
#[derive(Default)]
pub(crate) struct Flashes(Mutex<HashMap<String, Flash>>);

/// Flashes kept at most: a page that was never loaded leaves its message behind.
const FLASHES_KEPT: usize = 32;

impl Flashes {
    fn put(&self, flash: Flash) -> String {
        let id = format!("{:016x}", rand::random::<u64>());
        if let Ok(mut m) = self.0.lock() {
            if m.len() >= FLASHES_KEPT {
                m.clear();
            }
            m.insert(id.clone(), flash);
        }
        id
    }

    pub(crate) fn take(&self, id: &str) -> Option<Flash> {
        self.0.lock().ok()?.remove(id)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// Delete: the namespace's name, typed.
    #[serde(default)]
    confirm: Option<String>,
    /// Force-run: the event.
    #[serde(default)]
    event: Option<String>,
}

/// The answer to the page's script.
#[derive(Debug, Serialize)]
struct Outcome {
    ok: bool,
    message: String,
}

/// The script asks for JSON; a plain form is sent back to `back` with the message.
fn answer(ui: &Shared, headers: &HeaderMap, back: &str, result: Result<String, (StatusCode, String)>) -> Response {
    let fetch = headers.get("x-lifecycle-ui").is_some_and(|v| v == "fetch");
    let (status, flash) = match result {
        Ok(message) => (StatusCode::OK, Flash { kind: FlashKind::Ok, message }),
        Err((status, message)) => (status, Flash { kind: FlashKind::Error, message }),
    };
    if fetch {
        return (status, Json(Outcome { ok: flash.kind == FlashKind::Ok, message: flash.message })).into_response();
    }
    let id = ui.flashes.put(flash);
    let sep = if back.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{back}{sep}flash={id}")).into_response()
}

/// An action the API server refused answers with its status; one the rules refused (an
/// environment being deleted, a job that does not run on that event) with 409.
fn refused_status(e: &anyhow::Error) -> StatusCode {
    match crate::client::api_code(e) {
        Some(403) => StatusCode::FORBIDDEN,
        Some(404) => StatusCode::NOT_FOUND,
        Some(_) => StatusCode::BAD_GATEWAY,
        None => StatusCode::CONFLICT,
    }
}

fn bad_token() -> (StatusCode, String) {
    (StatusCode::FORBIDDEN, "refused: the form is not one of this web view's pages (reload the page)".into())
}

pub(crate) async fn environment(
    State(ui): State<Shared>,
    Path((ns, action)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let back = env_href(&ns);
    let result = async {
        if !ui.auth.form_token_ok(&form.csrf) {
            return Err(bad_token());
        }
        let action = match action.as_str() {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "redeploy" => Action::Redeploy,
            "delete" => Action::Delete,
            other => return Err((StatusCode::NOT_FOUND, format!("no action {other:?}: start, stop, redeploy or delete"))),
        };
        if action == Action::Delete && form.confirm.as_deref().map(str::trim) != Some(ns.as_str()) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("not deleted: type the namespace's name, {ns}, in the box to confirm"),
            ));
        }
        match env::request(&ui.client, action, &ns).await {
            Ok(req) => {
                let mut message = req.summary();
                if let Some(hint) = req.hint() {
                    message.push_str(&format!("\n  hint: {hint}"));
                }
                if let Some(next) = req.then_what() {
                    message.push_str(&format!("\n  {next}"));
                }
                Ok(message)
            }
            Err(e) => Err((refused_status(&e), format!("{e:#}"))),
        }
    }
    .await;
    answer(&ui, &headers, &back, result)
}

pub(crate) async fn force_run(
    State(ui): State<Shared>,
    Path((ns, job)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let back = job_href(&ns, &job);
    let result = async {
        if !ui.auth.form_token_ok(&form.csrf) {
            return Err(bad_token());
        }
        let event: Event =
            form.event.as_deref().unwrap_or_default().parse().map_err(|e| (StatusCode::BAD_REQUEST, format!("{e}")))?;
        match crate::run::force(&ui.client, &ns, &job, event).await {
            Ok(forced) => Ok(forced.summary()),
            Err(e) => Err((refused_status(&e), format!("{e:#}"))),
        }
    }
    .await;
    answer(&ui, &headers, &back, result)
}
