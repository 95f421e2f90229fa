//! AdmissionReview v1, read and written by hand: each handler reads only the
//! fields it needs, and the answer is a JSON patch of targeted operations.
//! Decoding whole objects into typed structs would be slower and would drop
//! fields the crate does not know.
//!
//! The review is read in one pass ([`parse`]): a pod's review, the request
//! every pod creation in the cluster makes, has its object read into the pod
//! mutator's borrowed view right there; any other object stays raw JSON
//! (`RawValue`) for its handler to read.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

// The one import cycle the crate keeps, on purpose: the review is decoded in
// one pass, and a Pod's borrowed view (`PodIn`, which pod admission owns and
// reads) is built by the same pass rather than decoded again from a raw value.
use super::pod::PodIn;

#[derive(Debug)]
pub struct ReviewIn<'a> {
    pub request: Option<Request<'a>>,
}

#[derive(Debug)]
pub struct Request<'a> {
    pub uid: Cow<'a, str>,
    pub kind: GroupVersionKind<'a>,
    pub operation: Cow<'a, str>,
    pub namespace: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub sub_resource: Option<Cow<'a, str>>,
    pub object: Option<Object<'a>>,
    pub old_object: Option<&'a RawValue>,
    pub dry_run: Option<bool>,
    /// Who sent the request to the API server. Filled by the API server; a
    /// forged review can say anything, which is harmless because an answer
    /// only matters to the API server that asked (no answer causes a write).
    pub user_info: Option<UserInfo<'a>>,
}

/// The request's object as [`parse`] read it.
#[derive(Debug)]
pub enum Object<'a> {
    /// Raw JSON, for the handler to read.
    Raw(&'a RawValue),
    /// A pod, already read into the pod mutator's view.
    Pod(Box<PodIn<'a>>),
}

#[derive(Debug, Deserialize, Default)]
pub struct UserInfo<'a> {
    #[serde(default, borrow)]
    pub username: Cow<'a, str>,
}

impl<'a> Request<'a> {
    /// The requesting user's name, empty when absent.
    pub fn username(&self) -> &str {
        self.user_info.as_ref().map(|u| u.username.as_ref()).unwrap_or("")
    }

    /// The object as raw JSON; `None` when absent or read as a pod.
    pub fn raw_object(&self) -> Option<&'a RawValue> {
        match self.object {
            Some(Object::Raw(raw)) => Some(raw),
            _ => None,
        }
    }
}

/// Reads an AdmissionReview in one pass over `body`.
///
/// A pod's object is read into the pod view as the review is read (the API
/// server writes `kind` before `object`; otherwise it stays raw). When that
/// fails, the review is read again with every object raw, so the pod
/// mutator reads the pod itself and refuses it with the reason, exactly as
/// for any object it cannot read: only a body that is no AdmissionReview at
/// all is an error here.
pub fn parse(body: &[u8]) -> Result<ReviewIn<'_>, serde_json::Error> {
    parse_with(body, true).or_else(|_| parse_with(body, false))
}

fn parse_with(body: &[u8], pods: bool) -> Result<ReviewIn<'_>, serde_json::Error> {
    // Checked as UTF-8 once, whole, rather than string by string as a
    // reader of bytes does (every key of the pod is one): a third of the
    // cost of the check in profiles.
    let text = std::str::from_utf8(body).map_err(|e| {
        serde::de::Error::custom(format_args!("the body is not UTF-8 (byte {} of {})", e.valid_up_to(), body.len()))
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    let review = de.deserialize_map(ReviewSeed { pods })?;
    de.end()?;
    Ok(review)
}

/// Reads a review; `pods`: read a pod's object into the pod view.
#[derive(Clone, Copy)]
struct ReviewSeed {
    pods: bool,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum ReviewField {
    Request,
    #[serde(other)]
    Other,
}

impl<'de> Visitor<'de> for ReviewSeed {
    type Value = ReviewIn<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an AdmissionReview object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReviewIn<'de>, A::Error> {
        let mut request = None;
        while let Some(key) = map.next_key()? {
            match key {
                ReviewField::Request => once(&mut request, "request", map.next_value_seed(OptionalRequest(self))?)?,
                ReviewField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(ReviewIn { request: request.flatten() })
    }
}

/// `request`, which may be `null`.
struct OptionalRequest(ReviewSeed);

impl<'de> DeserializeSeed<'de> for OptionalRequest {
    type Value = Option<Request<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalRequest {
    type Value = Option<Request<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an admission request or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(RequestVisitor(self.0)).map(Some)
    }
}

struct RequestVisitor(ReviewSeed);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum RequestField {
    Uid,
    Kind,
    Operation,
    Namespace,
    Name,
    SubResource,
    Object,
    OldObject,
    DryRun,
    UserInfo,
    #[serde(other)]
    Other,
}

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = Request<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an admission request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Request<'de>, A::Error> {
        let mut uid: Option<Borrowed<'de>> = None;
        let mut kind: Option<GroupVersionKind<'de>> = None;
        let mut operation: Option<Borrowed<'de>> = None;
        let mut namespace: Option<Option<Borrowed<'de>>> = None;
        let mut name: Option<Option<Borrowed<'de>>> = None;
        let mut sub_resource: Option<Option<Borrowed<'de>>> = None;
        let mut object: Option<Option<Object<'de>>> = None;
        let mut old_object: Option<Option<&'de RawValue>> = None;
        let mut dry_run: Option<Option<bool>> = None;
        let mut user_info: Option<Option<UserInfo<'de>>> = None;
        while let Some(key) = map.next_key()? {
            match key {
                RequestField::Uid => once(&mut uid, "uid", map.next_value()?)?,
                RequestField::Kind => once(&mut kind, "kind", map.next_value()?)?,
                RequestField::Operation => once(&mut operation, "operation", map.next_value()?)?,
                RequestField::Namespace => once(&mut namespace, "namespace", map.next_value()?)?,
                RequestField::Name => once(&mut name, "name", map.next_value()?)?,
                RequestField::SubResource => once(&mut sub_resource, "subResource", map.next_value()?)?,
                RequestField::Object => {
                    // Whatever the operation (serialisers that sort keys put
                    // `object` before `operation`): the view reads any pod.
                    let pod = self.0.pods && kind.as_ref().is_some_and(|k| k.kind == "Pod");
                    let value = if pod {
                        map.next_value::<Option<PodIn<'de>>>()?.map(|p| Object::Pod(Box::new(p)))
                    } else {
                        map.next_value::<Option<&'de RawValue>>()?.map(Object::Raw)
                    };
                    once(&mut object, "object", value)?
                }
                RequestField::OldObject => once(&mut old_object, "oldObject", map.next_value()?)?,
                RequestField::DryRun => once(&mut dry_run, "dryRun", map.next_value()?)?,
                RequestField::UserInfo => once(&mut user_info, "userInfo", map.next_value()?)?,
                RequestField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let opt = |v: Option<Option<Borrowed<'de>>>| v.flatten().map(|b| b.0);
        Ok(Request {
            uid: uid.ok_or_else(|| de::Error::missing_field("uid"))?.0,
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            operation: operation.ok_or_else(|| de::Error::missing_field("operation"))?.0,
            namespace: opt(namespace),
            name: opt(name),
            sub_resource: opt(sub_resource),
            object: object.flatten(),
            old_object: old_object.flatten(),
            dry_run: dry_run.flatten(),
            user_info: user_info.flatten(),
        })
    }
}

/// A string borrowed from the body when it has no escapes.
struct Borrowed<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Borrowed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Inner<'a>(#[serde(borrow)] Cow<'a, str>);
        Inner::deserialize(d).map(|i| Borrowed(i.0))
    }
}

/// Sets a field seen once; a second occurrence is an error, as serde's derive has it.
fn once<T, E: de::Error>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(value);
    Ok(())
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
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub op: &'static str,
    pub path: String,
    pub value: Option<OpValue>,
}

/// The value of an operation: built JSON, or JSON the server wrote itself,
/// copied into the patch as it is.
#[derive(Debug, Clone)]
pub enum OpValue {
    Json(serde_json::Value),
    /// JSON written by this server for this pod (the agent container, from its
    /// template): not parsed again.
    Built(String),
    /// JSON serialised once for the server's lifetime (the injected `envFrom` entries).
    Static(&'static RawValue),
}

impl OpValue {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            OpValue::Json(v) => serde_json::to_writer(out, v).expect("writing to a Vec cannot fail"),
            OpValue::Built(json) => out.extend_from_slice(json.as_bytes()),
            OpValue::Static(raw) => out.extend_from_slice(raw.get().as_bytes()),
        }
    }
}

impl PartialEq for OpValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (OpValue::Json(a), OpValue::Json(b)) => a == b,
            _ => {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                self.write(&mut a);
                other.write(&mut b);
                serde_json::from_slice::<serde_json::Value>(&a).ok() == serde_json::from_slice::<serde_json::Value>(&b).ok()
            }
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
    /// An `add` of JSON this server has just written (valid by construction;
    /// checked in debug builds, which the tests and the fuzzer use).
    pub fn add_built(path: impl Into<String>, json: String) -> Op {
        debug_assert!(serde_json::from_str::<IgnoredAny>(&json).is_ok(), "built JSON is not JSON: {json}");
        Op { op: "add", path: path.into(), value: Some(OpValue::Built(json)) }
    }
    pub fn replace(path: impl Into<String>, value: serde_json::Value) -> Op {
        Op { op: "replace", path: path.into(), value: Some(OpValue::Json(value)) }
    }
    pub fn remove(path: impl Into<String>) -> Op {
        Op { op: "remove", path: path.into(), value: None }
    }
}

/// The JSON patch of `ops`, written by hand into `out`: values the server
/// wrote beforehand are copied, not walked by a serialiser.
pub fn write_patch(ops: &[Op], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"op":""#);
        out.extend_from_slice(op.op.as_bytes());
        out.extend_from_slice(br#"","path":"#);
        serde_json::to_writer(&mut *out, &op.path).expect("writing to a Vec cannot fail");
        if let Some(value) = &op.value {
            out.extend_from_slice(br#","value":"#);
            value.write(out);
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// [`write_patch`] into a new buffer.
pub fn patch_json(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_patch(ops, &mut out);
    out
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
        None if !verdict.patch.is_empty() => Some(patch_json(&verdict.patch)),
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

    fn review(request: serde_json::Value) -> String {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}).to_string()
    }

    fn pod_request(object: serde_json::Value) -> serde_json::Value {
        json!({"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
               "namespace": "env", "userInfo": {"username": "alice"}, "object": object})
    }

    fn verdict_json(object: &Object<'_>) -> serde_json::Value {
        let settings = super::super::pod::PodSettings {
            agent_image: "agent:test",
            agent_image_pull_policy: "IfNotPresent",
            server_url: "https://lifecycle-webhook.lifecycle-jobs-system.svc:443",
            server_addr: "10.96.0.9:443",
            ca_bundle: "CA",
            agent_template: &Default::default(),
        };
        let v = super::super::pod::mutate_object(object, &settings, false);
        let patch: serde_json::Value = serde_json::from_slice(&patch_json(&v.patch)).unwrap();
        json!({"denied": v.denied, "patch": patch, "warnings": v.warnings})
    }

    #[test]
    fn a_pod_creation_is_read_in_one_pass_and_admitted_as_from_raw_json() {
        let pod = json!({"metadata": {"name": "p", "labels": {"lifecycle-jobs.dev/capture": "SEED"}, "uid": "x"},
            "spec": {"containers": [{"name": "main", "image": "busybox", "envFrom": [{"secretRef": {"name": "mine"}}]}],
                     "volumes": [{"name": "data", "emptyDir": {}}]}});
        let body = review(pod_request(pod.clone()));
        let parsed = parse(body.as_bytes()).unwrap();
        let req = parsed.request.unwrap();
        assert!(matches!(req.object, Some(Object::Pod(_))), "{:?}", req.object);
        assert_eq!((req.uid.as_ref(), req.operation.as_ref(), req.username()), ("u1", "CREATE", "alice"));
        assert!(matches!(req.uid, Cow::Borrowed(_)), "strings without escapes are borrowed from the body");
        let raw = RawValue::from_string(pod.to_string()).unwrap();
        let from_raw = verdict_json(&Object::Raw(&raw));
        assert_eq!(verdict_json(req.object.as_ref().unwrap()), from_raw);
        assert!(from_raw["patch"].as_array().is_some_and(|p| !p.is_empty()));
    }

    #[test]
    fn other_objects_and_orders_stay_raw() {
        // `kind` after `object`: the object is not known to be a pod yet.
        let body = r#"{"request": {"uid": "u", "object": {"spec": {"containers": []}}, "operation": "CREATE",
            "kind": {"kind": "Pod"}}}"#;
        let req = parse(body.as_bytes()).unwrap().request.unwrap();
        assert!(req.raw_object().is_some_and(|r| r.get().contains("containers")));
        // Not a pod.
        for (kind, op) in [("Job", "CREATE"), ("Namespace", "DELETE")] {
            let mut r = pod_request(json!({"spec": {}}));
            r["kind"]["kind"] = json!(kind);
            r["operation"] = json!(op);
            r["oldObject"] = json!({"spec": {}});
            let body = review(r);
            let req = parse(body.as_bytes()).unwrap().request.unwrap();
            assert!(matches!(req.object, Some(Object::Raw(_))), "{kind} {op}");
            assert_eq!(req.old_object.map(RawValue::get), Some(r#"{"spec":{}}"#));
        }
    }

    #[test]
    fn a_pod_the_view_cannot_read_is_refused_with_the_reason_not_a_bad_request() {
        let pod = json!({"spec": {"containers": "not a list"}});
        let body = review(pod_request(pod));
        let req = parse(body.as_bytes()).unwrap().request.unwrap();
        let v = verdict_json(req.object.as_ref().unwrap());
        assert!(v["denied"].as_str().is_some_and(|m| m.starts_with("lifecycle-jobs: cannot read the pod: invalid type")), "{v}");
    }

    #[test]
    fn what_is_no_admission_review_is_an_error() {
        for (body, why) in [
            ("", "EOF"),
            ("[]", "expected an AdmissionReview object"),
            (r#"{"request": {"kind": {"kind": "Pod"}, "operation": "CREATE"}}"#, "missing field `uid`"),
            (r#"{"request": {"uid": "a", "uid": "b", "kind": {"kind": "Pod"}, "operation": "CREATE"}}"#, "duplicate field `uid`"),
            (r#"{"request": {"uid": "a", "kind": {"kind": "Pod"}, "operation": "CREATE"}} trailing"#, "trailing characters"),
            (r#"{"request": {"uid": 1, "kind": {"kind": "Pod"}, "operation": "CREATE"}}"#, "invalid type: integer"),
        ] {
            let e = parse(body.as_bytes()).expect_err(body).to_string();
            assert!(e.contains(why), "{body}: {e}");
        }
        let e = parse(b"{\"request\": \"\xff\"}").expect_err("not UTF-8").to_string();
        assert!(e.contains("not UTF-8 (byte 13 of 16)"), "{e}");
        // No request, or a null one: a review the handler answers with 400.
        assert!(parse(br#"{"kind": "AdmissionReview"}"#).unwrap().request.is_none());
        assert!(parse(br#"{"request": null}"#).unwrap().request.is_none());
        // Escaped strings are read, not borrowed.
        let req = parse(br#"{"request": {"uid": "u\"1", "kind": {"kind": "Pod"}, "operation": "DELETE", "name": null}}"#)
            .unwrap()
            .request
            .unwrap();
        assert_eq!((req.uid.as_ref(), req.name.as_deref()), ("u\"1", None));
    }

    #[test]
    fn patches_are_written_with_every_kind_of_value() {
        let raw: &'static RawValue = Box::leak(RawValue::from_string(r#"{"a":[1]}"#.into()).unwrap());
        let ops = vec![
            Op::add_static("/x", raw),
            Op::add_built("/y~1\"z\"", r#"[{"name":"agent"}]"#.into()),
            Op::replace("/n", json!(3)),
            Op::remove("/old"),
        ];
        let patch: serde_json::Value = serde_json::from_slice(&patch_json(&ops)).unwrap();
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/x", "value": {"a": [1]}},
                   {"op": "add", "path": "/y~1\"z\"", "value": [{"name": "agent"}]},
                   {"op": "replace", "path": "/n", "value": 3},
                   {"op": "remove", "path": "/old"}])
        );
        assert_eq!(patch_json(&[]), b"[]");
        // Values compare as JSON, whatever their kind.
        assert_eq!(Op::add_built("/x", r#"{"a": [1]}"#.into()), Op::add_static("/x", raw));
        assert_ne!(Op::add_built("/x", "[]".into()), Op::add("/x", json!({})));
    }
}
