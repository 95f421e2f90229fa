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
    /// JSON serialised once for the server's lifetime (the injected `envFrom` entries).
    Static(&'static RawValue),
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
    /// An `add` of JSON serialised once, for the server's lifetime.
    pub fn add_static(path: impl Into<String>, value: &'static RawValue) -> Op {
        Op { op: "add", path: path.into(), value: Some(OpValue::Static(value)) }
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
struct StatusOut<'a> {
    code: u16,
    message: &'a str,
    reason: &'static str,
}

/// Serialises the AdmissionReview response for `uid`.
///
/// Written by hand into one buffer: the patch is serialised once and
/// base64-encoded in place (it is most of the answer), instead of building a
/// base64 `String` that a serializer then copies and scans again.
pub fn respond(uid: &str, verdict: &Verdict) -> Vec<u8> {
    let patch = match &verdict.denied {
        None if !verdict.patch.is_empty() => Some(serde_json::to_vec(&verdict.patch).expect("a patch always serialises")),
        _ => None,
    };
    let mut out = Vec::with_capacity(160 + patch.as_ref().map_or(0, |p| p.len().div_ceil(3) * 4));
    out.extend_from_slice(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"#);
    serde_json::to_writer(&mut out, uid).expect("writing to a Vec cannot fail");
    match &verdict.denied {
        Some(message) => {
            out.extend_from_slice(br#","allowed":false,"status":"#);
            let status = StatusOut { code: 403, message, reason: "Forbidden" };
            serde_json::to_writer(&mut out, &status).expect("writing to a Vec cannot fail");
        }
        None => out.extend_from_slice(br#","allowed":true"#),
    }
    if let Some(patch) = patch {
        // Base64 of the JSON patch, as the API specifies for `[]byte` fields.
        out.extend_from_slice(br#","patchType":"JSONPatch","patch":""#);
        let start = out.len();
        out.resize(start + patch.len().div_ceil(3) * 4, 0);
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(&patch, &mut out[start..])
            .expect("the buffer holds the padded encoding");
        out.truncate(start + n);
        out.push(b'"');
    }
    if !verdict.warnings.is_empty() {
        out.extend_from_slice(br#","warnings":"#);
        serde_json::to_writer(&mut out, &verdict.warnings).expect("writing to a Vec cannot fail");
    }
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(uid: &str, v: &Verdict) -> serde_json::Value {
        serde_json::from_slice(&respond(uid, v)).expect("the answer is JSON")
    }

    #[test]
    fn answers_are_admission_reviews() {
        let allowed = parsed("u\"1", &Verdict::allow());
        assert_eq!(
            allowed,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "u\"1", "allowed": true}})
        );
        let denied = parsed("u2", &Verdict::deny("no \"way\"\n"));
        assert_eq!(denied["response"]["allowed"], false);
        assert_eq!(denied["response"]["status"], json!({"code": 403, "message": "no \"way\"\n", "reason": "Forbidden"}));
        assert!(denied["response"].get("patch").is_none());

        for n in 0..5 {
            // Every padding length of base64.
            let mut v = Verdict::patched(vec![Op::add("/metadata/labels/x", json!("y".repeat(n)))]);
            v.warnings.push("careful".into());
            let r = parsed("u3", &v);
            assert_eq!(r["response"]["patchType"], "JSONPatch");
            let bytes = base64::engine::general_purpose::STANDARD.decode(r["response"]["patch"].as_str().unwrap()).unwrap();
            let patch: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(patch, json!([{"op": "add", "path": "/metadata/labels/x", "value": "y".repeat(n)}]));
            assert_eq!(r["response"]["warnings"], json!(["careful"]));
        }
        // A denial carries no patch, even if ops were collected.
        let mut v = Verdict::patched(vec![Op::remove("/x")]);
        v.denied = Some("no".into());
        assert!(parsed("u4", &v)["response"].get("patchType").is_none());
    }

    #[test]
    fn static_values_serialise_as_their_json() {
        let raw: &'static RawValue = Box::leak(RawValue::from_string(r#"{"a":[1]}"#.into()).unwrap());
        let ops = vec![Op::add_static("/x", raw)];
        assert_eq!(serde_json::to_value(&ops).unwrap(), json!([{"op": "add", "path": "/x", "value": {"a": [1]}}]));
    }
}
