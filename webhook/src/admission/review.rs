//! AdmissionReview v1, read and written by hand: the object stays raw JSON
//! (`RawValue`), each handler reads only the fields it needs, and the answer
//! is a JSON patch of targeted operations. Decoding whole objects into typed
//! structs would be slower and would drop fields the crate does not know.

use std::borrow::Cow;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewIn<'a> {
    #[serde(borrow)]
    pub request: Option<Request<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    pub kind: GroupVersionKind<'a>,
    #[serde(borrow)]
    pub operation: Cow<'a, str>,
    #[serde(default, borrow)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub sub_resource: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub object: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub old_object: Option<&'a RawValue>,
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Who sent the request to the API server. Filled by the API server; a
    /// forged review can say anything, which is harmless because an answer
    /// only matters to the API server that asked (no answer causes a write).
    #[serde(default, borrow)]
    pub user_info: Option<UserInfo<'a>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct UserInfo<'a> {
    #[serde(default, borrow)]
    pub username: Cow<'a, str>,
}

impl Request<'_> {
    /// The requesting user's name, empty when absent.
    pub fn username(&self) -> &str {
        self.user_info.as_ref().map(|u| u.username.as_ref()).unwrap_or("")
    }
}

#[derive(Debug, Deserialize)]
pub struct GroupVersionKind<'a> {
    #[serde(default, borrow)]
    pub group: Cow<'a, str>,
    #[serde(default, borrow)]
    pub version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

/// One JSON-patch operation (RFC 6902): `add`, `replace` or `remove`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Op {
    pub op: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<OpValue>,
}

/// The value of an operation: built JSON, or JSON serialised once and reused
/// (the agent container, the same for every job pod but its JOBID).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum OpValue {
    Json(serde_json::Value),
    Raw(Box<RawValue>),
}

impl PartialEq for OpValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (OpValue::Json(a), OpValue::Json(b)) => a == b,
            _ => serde_json::to_string(self).ok() == serde_json::to_string(other).ok(),
        }
    }
}

impl Op {
    pub fn add(path: impl Into<String>, value: serde_json::Value) -> Op {
        Op { op: "add", path: path.into(), value: Some(OpValue::Json(value)) }
    }
    /// An `add` whose value is already serialised JSON.
    pub fn add_raw(path: impl Into<String>, value: Box<RawValue>) -> Op {
        Op { op: "add", path: path.into(), value: Some(OpValue::Raw(value)) }
    }
    pub fn replace(path: impl Into<String>, value: serde_json::Value) -> Op {
        Op { op: "replace", path: path.into(), value: Some(OpValue::Json(value)) }
    }
    pub fn remove(path: impl Into<String>) -> Op {
        Op { op: "remove", path: path.into(), value: None }
    }
}

/// Escapes one JSON-pointer reference token (`~` → `~0`, `/` → `~1`).
pub fn escape(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) { Cow::Owned(token.replace('~', "~0").replace('/', "~1")) } else { Cow::Borrowed(token) }
}

/// What a handler decided.
#[derive(Debug, Default)]
pub struct Verdict {
    /// `Some(message)` refuses the request with that message.
    pub denied: Option<String>,
    pub patch: Vec<Op>,
    /// Shown by kubectl to the person who sent the request.
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn allow() -> Verdict {
        Verdict::default()
    }
    pub fn deny(message: impl Into<String>) -> Verdict {
        Verdict { denied: Some(message.into()), ..Verdict::default() }
    }
    pub fn patched(patch: Vec<Op>) -> Verdict {
        Verdict { patch, ..Verdict::default() }
    }
    /// The metrics label of this verdict.
    pub fn result(&self) -> &'static str {
        match (&self.denied, self.patch.is_empty()) {
            (Some(_), _) => "denied",
            (None, true) => "unchanged",
            (None, false) => "patched",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<StatusOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    /// Base64 of the JSON patch, as the API specifies for `[]byte` fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

#[derive(Serialize)]
struct StatusOut<'a> {
    code: u16,
    message: &'a str,
    reason: &'static str,
}

/// Serialises the AdmissionReview response for `uid`.
pub fn respond(uid: &str, verdict: &Verdict) -> Vec<u8> {
    let (allowed, status) = match &verdict.denied {
        Some(message) => (false, Some(StatusOut { code: 403, message, reason: "Forbidden" })),
        None => (true, None),
    };
    let (patch_type, patch) = if allowed && !verdict.patch.is_empty() {
        let json = serde_json::to_vec(&verdict.patch).expect("a patch always serialises");
        (Some("JSONPatch"), Some(base64::engine::general_purpose::STANDARD.encode(json)))
    } else {
        (None, None)
    };
    let out = ReviewOut {
        api_version: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        response: ResponseOut { uid, allowed, status, patch_type, patch, warnings: &verdict.warnings },
    };
    serde_json::to_vec(&out).expect("a review always serialises")
}
