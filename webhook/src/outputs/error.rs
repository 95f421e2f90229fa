//! What can go wrong with an output submission, each case with its HTTP status
//! and a message that says what happened and what to do next.
//!
//! Messages never hold a token, a request body or an output value: they are
//! returned to the agent (which prints them in its termination message), logged,
//! and some become Events on the Job.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Seconds an agent should wait before it tries again after a 503.
pub(crate) const RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// 400: the request is malformed (not the file: the HTTP request itself).
    #[error("{0}")]
    BadRequest(String),

    /// 401: no token, or a token the API server does not accept as a pod-bound
    /// service-account token for the audience `lifecycle-jobs.dev`.
    #[error("{0}")]
    Unauthenticated(String),

    /// 403: an authenticated caller that may not publish (names the failed check).
    #[error("{0}")]
    Forbidden(String),

    /// 409: the job did not succeed, so it publishes nothing.
    #[error("{0}")]
    JobNotSuccessful(String),

    /// 409: this pod already published different outputs.
    #[error("{0}")]
    Replayed(String),

    /// 409: the environment's namespace is being deleted.
    #[error("{0}")]
    NamespaceTerminating(String),

    /// 413: the body is larger than the output file limit.
    #[error(
        "the request body is larger than the output file limit of {limit} bytes: write less to the output file (the agent reports such a file with the `lifecycle-agent-error` header instead)"
    )]
    TooLarge { limit: usize },

    /// 422: the output file breaks the rules; `errors` lists every error found.
    #[error("{message}")]
    Invalid { message: String, errors: Vec<String> },

    /// 422: the agent could not read the output file safely and says why.
    #[error("{0}")]
    AgentRefused(String),

    /// 422: the API server refused to store the outputs (size, admission policy, ...).
    #[error("{0}")]
    StoreRefused(String),

    /// 503: the kubelet has not reported the end of the main containers yet, or
    /// the API server failed transiently. The agent tries again.
    #[error("{0}")]
    Unavailable(String),

    /// 500: the server is misconfigured (RBAC) or hit a bug.
    #[error("{0}")]
    Internal(String),
}

/// The JSON body of every refusal.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Error {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::JobNotSuccessful(_) | Error::Replayed(_) | Error::NamespaceTerminating(_) => StatusCode::CONFLICT,
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Invalid { .. } | Error::AgentRefused(_) | Error::StoreRefused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `reason` label of `outputs_rejected`, or `None` for outcomes that
    /// are not a refusal of the submission (the agent tries again).
    pub(crate) fn metric_reason(&self) -> Option<&'static str> {
        Some(match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthenticated(_) => "unauthenticated",
            Error::Forbidden(_) => "forbidden",
            Error::JobNotSuccessful(_) => "job_failed",
            Error::Replayed(_) => "replayed",
            Error::NamespaceTerminating(_) => "namespace_terminating",
            Error::TooLarge { .. } => "too_large",
            Error::Invalid { .. } => "invalid",
            Error::AgentRefused(_) => "agent_error",
            Error::StoreRefused(_) => "store_refused",
            Error::Unavailable(_) | Error::Internal(_) => return None,
        })
    }

    /// Whether the refusal is worth a Warning Event on the Job: it tells the
    /// job's author something about the job (not about the caller or the server).
    pub(crate) fn warrants_event(&self) -> bool {
        matches!(
            self,
            Error::JobNotSuccessful(_)
                | Error::Replayed(_)
                | Error::Invalid { .. }
                | Error::AgentRefused(_)
                | Error::StoreRefused(_)
        )
    }

    /// The list of individual errors (file rule violations), if any.
    pub(crate) fn errors(&self) -> &[String] {
        match self {
            Error::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }

    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody { message: self.to_string(), errors: self.errors().to_vec() }
    }

    /// Maps a failed Kubernetes API call made while `doing` (e.g. "reading pod
    /// ns/name"). Transient failures become 503, the server's own lack of
    /// permission 500. The API server's message is kept: callers pass only
    /// calls whose errors cannot hold a token or an output value.
    pub(crate) fn from_kube(doing: &str, e: kube::Error) -> Error {
        if is_transient(&e) {
            return Error::Unavailable(format!("the Kubernetes API failed while {doing} ({}); try again", short(&e)));
        }
        match &e {
            kube::Error::Api(s) if s.code == 403 => {
                Error::Internal(format!("the server is not allowed to act while {doing} ({}): check its RBAC", s.message))
            }
            _ => Error::Internal(format!("unexpected Kubernetes API error while {doing}: {}", short(&e))),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// Worth another try: throttling, server errors, timeouts, broken connections.
pub(crate) fn is_transient(e: &kube::Error) -> bool {
    match e {
        // 409 "the object has been modified; please apply your changes to
        // the latest version and try again": optimistic concurrency only.
        kube::Error::Api(s) => s.code == 429 || s.code >= 500 || (s.code == 409 && s.message.contains("try again")),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A one-line description of a kube error (its `Display` for API errors is
/// long and repeats the status).
pub(crate) fn short(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() { "" } else { s.reason.as_str() };
            format!("{} {}: {}", s.code, reason, s.message)
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(kube::core::Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn every_error_has_its_status_code() {
        let cases = [
            (Error::BadRequest("x".into()), 400),
            (Error::Unauthenticated("x".into()), 401),
            (Error::Forbidden("x".into()), 403),
            (Error::JobNotSuccessful("x".into()), 409),
            (Error::Replayed("x".into()), 409),
            (Error::NamespaceTerminating("x".into()), 409),
            (Error::TooLarge { limit: 1 }, 413),
            (Error::Invalid { message: "x".into(), errors: vec![] }, 422),
            (Error::AgentRefused("x".into()), 422),
            (Error::StoreRefused("x".into()), 422),
            (Error::Unavailable("x".into()), 503),
            (Error::Internal("x".into()), 500),
        ];
        for (e, code) in cases {
            assert_eq!(e.status().as_u16(), code, "{e:?}");
            // Refusals are counted; retries and server faults are not.
            assert_eq!(e.metric_reason().is_some(), code != 503 && code != 500, "{e:?}");
        }
    }

    #[tokio::test]
    async fn responses_are_json_with_the_error_list_and_retry_after() {
        let e = Error::Invalid { message: "rejected".into(), errors: vec!["line 1: a".into(), "line 2: b".into()] };
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({"message": "rejected", "errors": ["line 1: a", "line 2: b"]}));

        let r = Error::Unavailable("later".into()).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"message":"later"}"#);
    }

    #[test]
    fn kube_errors_map_to_retry_or_server_fault() {
        assert!(matches!(Error::from_kube("x", api_error(503, "ServiceUnavailable", "busy")), Error::Unavailable(_)));
        assert!(matches!(Error::from_kube("x", api_error(429, "TooManyRequests", "slow down")), Error::Unavailable(_)));
        assert!(matches!(Error::from_kube("x", api_error(403, "Forbidden", "no rbac")), Error::Internal(_)));
        assert!(matches!(Error::from_kube("x", api_error(400, "BadRequest", "bad")), Error::Internal(_)));
        assert!(!is_transient(&api_error(404, "NotFound", "gone")));
        assert!(!is_transient(&api_error(422, "Invalid", "too long")));
    }
}
