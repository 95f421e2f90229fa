//! Who is publishing: the bearer token is reviewed by the API server
//! (TokenReview, audience `lifecycle-jobs.dev`), the pod it is bound to must
//! exist with that UID, carry the `capture` label and be owned by a Job of an
//! environment. The JOBID is recomputed from that Job, never taken from the
//! caller.
//!
//! The checks are pure functions over typed objects; [`authenticate`] and
//! [`resolve`] are the API glue.

use axum::http::{HeaderMap, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Pod};
use kube::api::PostParams;
use kube::{Api, Client};
use lifecycle_contract::JobId;
use lifecycle_contract::lifecycle_job::{self, JobKind};
use lifecycle_contract::names::{
    ANNOTATION_CAPTURE_OUTPUT, ANNOTATION_JOB_ID, LABEL_CAPTURE, LABEL_ENVIRONMENT, TOKEN_AUDIENCE, never_environment,
};

use super::error::{Error, is_transient};
use super::retry::retry;
use crate::watches::job_index::{Claimant, JobEntry, JobIndex};

/// `user.extra` key of a pod-bound service-account token: the pod's name.
pub(crate) const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// `user.extra` key of a pod-bound service-account token: the pod's UID.
pub(crate) const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// Username prefix of service accounts: `system:serviceaccount:<ns>:<name>`.
pub(crate) const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";
/// Longest bearer token accepted (projected tokens are about 1 KiB).
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;

const HINT: &str =
    "the agent must send the projected token mounted by the webhook (audience lifecycle-jobs.dev, bound to its pod)";

/// The caller, as the API server vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub namespace: String,
    pub service_account: String,
    pub pod_name: String,
    pub pod_uid: String,
}

impl Identity {
    pub(crate) fn pod(&self) -> String {
        format!("{}/{}", self.namespace, self.pod_name)
    }
}

/// The Job that controls a pod (from the pod's owner reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub name: String,
    pub uid: String,
}

/// A verified publisher: the pod, its Job, the JOBID and, for a run, its template.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub identity: Identity,
    pub pod: Pod,
    pub job: Job,
    pub job_id: JobId,
    /// The lifecycle job template a run Job was created from.
    pub template: Option<Owner>,
}

impl Subject {
    pub(crate) fn job_name(&self) -> &str {
        self.job.metadata.name.as_deref().unwrap_or_default()
    }

    pub(crate) fn job_uid(&self) -> &str {
        self.job.metadata.uid.as_deref().unwrap_or_default()
    }

    /// The Jobs that hear about this publication: the Job itself and, for a
    /// run, its template (which is where people look).
    pub(crate) fn job_refs(&self) -> Vec<ObjectReference> {
        let ns = &self.identity.namespace;
        let mut refs = vec![job_ref(ns, self.job_name(), self.job_uid())];
        if let Some(t) = &self.template {
            refs.push(job_ref(ns, &t.name, &t.uid));
        }
        refs
    }
}

/// Reference to a Job, for Events.
pub(crate) fn job_ref(namespace: &str, name: &str, uid: &str) -> ObjectReference {
    crate::runtime::kube_client::object_ref::<k8s_openapi::api::batch::v1::Job>(namespace, name, uid)
}

/// The bearer token of the request. Never echoed in an error.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, Error> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Error::Unauthenticated(format!("no Authorization header: {HINT}, as `Authorization: Bearer <token>`")));
    };
    if values.next().is_some() {
        return Err(Error::Unauthenticated("more than one Authorization header: send exactly one".into()));
    }
    let value = value
        .to_str()
        .map_err(|_| Error::Unauthenticated("the Authorization header is not ASCII: expected `Bearer <token>`".into()))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::Unauthenticated("the Authorization header is not a bearer token: expected `Bearer <token>`".into()));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Error::Unauthenticated(format!("the bearer token is empty: {HINT}")));
    }
    if token.len() > MAX_TOKEN_BYTES || token.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(Error::Unauthenticated(format!("the bearer token is malformed: {HINT}")));
    }
    Ok(token)
}

/// The caller's identity from a TokenReview's status: authenticated for our
/// audience, a service account, bound to a pod.
pub(crate) fn identity_from_review(status: Option<&TokenReviewStatus>) -> Result<Identity, Error> {
    let Some(status) = status else {
        return Err(Error::Unauthenticated(format!("the token could not be reviewed: {HINT}")));
    };
    if status.authenticated != Some(true) {
        let why = status.error.as_deref().map(one_line).filter(|e| !e.is_empty()).unwrap_or_else(|| "not authenticated".into());
        return Err(Error::Unauthenticated(format!("the token was not accepted ({why}): {HINT}")));
    }
    if !status.audiences.as_deref().unwrap_or_default().iter().any(|a| a == TOKEN_AUDIENCE) {
        return Err(Error::Unauthenticated(format!("the token is not valid for the audience {TOKEN_AUDIENCE}: {HINT}")));
    }
    let user = status.user.as_ref();
    let username = user.and_then(|u| u.username.as_deref()).unwrap_or_default();
    let (namespace, service_account) = username
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
        .ok_or_else(|| Error::Unauthenticated(format!("the token does not belong to a service account: {HINT}")))?;
    let extra = |key: &str| -> Option<String> {
        match user.and_then(|u| u.extra.as_ref()).and_then(|e| e.get(key)).map(Vec::as_slice) {
            Some([one]) if !one.is_empty() => Some(one.clone()),
            _ => None,
        }
    };
    let (Some(pod_name), Some(pod_uid)) = (extra(EXTRA_POD_NAME), extra(EXTRA_POD_UID)) else {
        return Err(Error::Unauthenticated(format!("the token is not bound to a pod: {HINT}")));
    };
    Ok(Identity { namespace: namespace.into(), service_account: service_account.into(), pod_name, pod_uid })
}

/// The pod checks: the token's pod, with the `capture` label, run by the
/// token's service account, controlled by a Job. Returns that Job.
pub(crate) fn check_pod(pod: &Pod, id: &Identity) -> Result<Owner, Error> {
    let who = id.pod();
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    if uid != id.pod_uid {
        return Err(Error::Forbidden(format!(
            "pod {who} has UID {uid}, but the token was issued to the pod with UID {}: only the pod the token is bound to may publish",
            id.pod_uid
        )));
    }
    if !pod.metadata.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_CAPTURE)) {
        return Err(Error::Forbidden(format!(
            "pod {who} has no label {LABEL_CAPTURE}: only pods of Jobs captured by lifecycle-jobs publish outputs"
        )));
    }
    let pod_sa = pod.spec.as_ref().and_then(|s| s.service_account_name.as_deref()).unwrap_or("default");
    if pod_sa != id.service_account {
        return Err(Error::Forbidden(format!(
            "pod {who} runs as service account {pod_sa}, but the token belongs to {}: use the pod's own token",
            id.service_account
        )));
    }
    controller_job(&pod.metadata)
        .ok_or_else(|| Error::Forbidden(format!("pod {who} is not controlled by a Job: only the pods of a Job publish outputs")))
}

/// The Job named as controller in `meta`'s owner references.
pub(crate) fn controller_job(meta: &kube::core::ObjectMeta) -> Option<Owner> {
    meta.owner_references.as_deref().unwrap_or_default().iter().find_map(|o| {
        (o.controller == Some(true) && o.kind == "Job" && o.api_version.starts_with("batch/"))
            .then(|| Owner { name: o.name.clone(), uid: o.uid.clone() })
    })
}

/// The namespace must be an environment.
pub(crate) fn check_namespace(ns: &Namespace, server_namespace: &str) -> Result<(), Error> {
    let name = ns.metadata.name.as_deref().unwrap_or_default();
    if never_environment(name, server_namespace) {
        return Err(Error::Forbidden(format!("namespace {name} is never an environment: outputs are not published there")));
    }
    if ns.metadata.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_ENVIRONMENT)) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "namespace {name} is not an environment (no label {LABEL_ENVIRONMENT}): outputs are only published in environments"
        )))
    }
}

/// The Job checks: the very Job that controls the pod, not opted out of
/// capture. Returns its JOBID, read by the contract's one rule
/// ([`lifecycle_job::job_id`]): the one admission recorded (for a run, the
/// controller records its template's); with none recorded, the one its
/// name gives (a run's template's name, from its `job` label).
pub(crate) fn check_job(job: &Job, owner: &Owner, namespace: &str) -> Result<JobId, Error> {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    if job.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
        return Err(Error::Forbidden(format!(
            "the Job {namespace}/{name} that controlled the pod was deleted and replaced by another of the same name: its pods no longer publish"
        )));
    }
    if !lifecycle_job::captures(&job.metadata) {
        return Err(Error::Forbidden(format!(
            "Job {namespace}/{name} opted out of output capture ({ANNOTATION_CAPTURE_OUTPUT}: \"false\"): remove that annotation to publish outputs"
        )));
    }
    let id = lifecycle_job::job_id(&job.metadata).into_id();
    id.check().map_err(|e| Error::Forbidden(format!("Job {namespace}/{name} cannot publish: {e}")))?;
    Ok(id)
}

/// The pod must carry its Job's JOBID as its `capture` label: a pod template
/// relabelled after admission (a suspended Job's template can be) publishes nothing.
pub(crate) fn check_capture_label(pod: &Pod, id: &Identity, job_id: &JobId) -> Result<(), Error> {
    let label = pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_CAPTURE)).map(String::as_str).unwrap_or_default();
    if label != job_id.as_str() {
        return Err(Error::Forbidden(format!(
            "pod {} has label {LABEL_CAPTURE}={label}, but its Job's JOBID is {job_id}: only pods of the Job's own \
             template publish, under the Job's JOBID",
            id.pod()
        )));
    }
    Ok(())
}

/// Publish-time check of JOBID uniqueness, against the Jobs that hold it now
/// (`holders`, from the server's watch-fed [`crate::watches::job_index::JobIndex`]: no
/// API call per upload): admission refuses a second Job with a JOBID already
/// held, but two creates within the watch's lag can both pass it; by the time
/// a pod of either publishes, the watch has seen both. Of the claimants
/// holding one JOBID, the first created (then the first by name) publishes;
/// the others are refused, so the race cannot let a later Job write another's
/// variables.
pub(crate) fn check_unique(job_id: &JobId, me: &Claimant, my_created: Option<&str>, holders: &[JobEntry]) -> Result<(), Error> {
    let mine = (my_created.unwrap_or(""), me.name());
    for other in holders {
        let claimant = &other.claimant;
        if claimant == me {
            continue;
        }
        let created = other.created.as_deref().unwrap_or_default();
        if (created, claimant.name()) < mine {
            return Err(Error::Forbidden(format!(
                "JOBID {job_id} is also held by {}, created first: only it publishes QOVERY_OUTPUT_JOB_{job_id}_*. \
                 Give this Job another JOBID (annotation {ANNOTATION_JOB_ID})",
                claimant.describe()
            )));
        }
    }
    Ok(())
}

/// The template of a run Job (label `run`, controlled by a Job: [`lifecycle_job::kind`]).
pub(crate) fn template_of(job: &Job) -> Option<Owner> {
    match lifecycle_job::kind(&job.metadata) {
        JobKind::Run(run) => Some(Owner { name: run.template.name.to_string(), uid: run.template.uid.to_string() }),
        _ => None,
    }
}

/// Asks the API server who holds `token`. The token is in the request only;
/// errors never include it (nor the API server's message, to be safe).
pub(crate) async fn authenticate(client: &Client, token: &str) -> Result<Identity, Error> {
    let review = TokenReview {
        spec: TokenReviewSpec { token: Some(token.to_string()), audiences: Some(vec![TOKEN_AUDIENCE.to_string()]) },
        ..Default::default()
    };
    let api: Api<TokenReview> = Api::all(client.clone());
    let params = PostParams::default();
    let reviewed = retry("reviewing the token", || api.create(&params, &review)).await.map_err(|e| {
        let code = match &e {
            kube::Error::Api(s) => s.code,
            _ => 0,
        };
        if is_transient(&e) {
            Error::Unavailable("the Kubernetes API could not review the token just now; try again".into())
        } else if code == 403 {
            Error::Internal(
                "the server is not allowed to create TokenReviews: check its RBAC (authentication.k8s.io tokenreviews create)"
                    .into(),
            )
        } else {
            tracing::warn!(code, "TokenReview failed");
            Error::Internal(format!("the token could not be reviewed (API status {code})"))
        }
    })?;
    identity_from_review(reviewed.status.as_ref())
}

/// Reads the pod, its namespace and its Job and runs every check.
pub(crate) async fn resolve(client: &Client, index: &JobIndex, id: Identity, server_namespace: &str) -> Result<Subject, Error> {
    let ns = id.namespace.as_str();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = retry("reading the pod", || pods.get_opt(&id.pod_name))
        .await
        .map_err(|e| Error::from_kube(&format!("reading pod {}", id.pod()), e))?
        .ok_or_else(|| Error::Forbidden(format!("pod {} does not exist: only a running pod publishes its outputs", id.pod())))?;
    let owner = check_pod(&pod, &id)?;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = retry("reading the namespace", || namespaces.get_opt(ns))
        .await
        .map_err(|e| Error::from_kube(&format!("reading namespace {ns}"), e))?
        .ok_or_else(|| Error::Forbidden(format!("namespace {ns} does not exist")))?;
    check_namespace(&namespace, server_namespace)?;

    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let job = retry("reading the job", || jobs.get_opt(&owner.name))
        .await
        .map_err(|e| Error::from_kube(&format!("reading Job {ns}/{}", owner.name), e))?
        .ok_or_else(|| {
            Error::Forbidden(format!(
                "the Job {ns}/{} that controlled pod {} no longer exists: its pods no longer publish",
                owner.name,
                id.pod()
            ))
        })?;
    let job_id = check_job(&job, &owner, ns)?;
    check_capture_label(&pod, &id, &job_id)?;
    let template = template_of(&job);

    // The claimant this publication speaks for: a run speaks for its template.
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let (me, created) = match &template {
        Some(t) => {
            let created = retry("reading the template", || jobs.get_metadata_opt(&t.name))
                .await
                .map_err(|e| Error::from_kube(&format!("reading Job {ns}/{}", t.name), e))?
                .and_then(|m| m.metadata.creation_timestamp.map(|c| c.0.to_string()));
            (Claimant::Job(t.name.clone()), created)
        }
        None => {
            let claimant = lifecycle_job::claim(&job.metadata).map(|c| c.claimant).unwrap_or(Claimant::Job(job_name.clone()));
            let created = match &claimant {
                // A CronJob's Jobs all speak for it; the CronJob's creation orders it.
                Claimant::CronJob(_) => None,
                Claimant::Job(_) => job.metadata.creation_timestamp.as_ref().map(|c| c.0.to_string()),
            };
            (claimant, created)
        }
    };
    if !index.is_ready() {
        return Err(Error::Unavailable("the server is starting (its Job watch has not listed the Jobs yet); try again".into()));
    }
    check_unique(&job_id, &me, created.as_deref(), &index.holders(ns, &job_id))?;
    Ok(Subject { identity: id, pod, job, job_id, template })
}

/// A header value or API message fit for a one-line log or message.
pub(crate) use crate::runtime::text::one_line;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::core::ObjectMeta;
    use lifecycle_contract::names::{LABEL_JOB, LABEL_RUN};
    use std::collections::BTreeMap;

    fn status(username: &str, extra: &[(&str, &[&str])]) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(true),
            audiences: Some(vec![TOKEN_AUDIENCE.into()]),
            error: None,
            user: Some(UserInfo {
                username: Some(username.into()),
                extra: Some(extra.iter().map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect())).collect()),
                ..Default::default()
            }),
        }
    }

    const SYSTEM: &str = "lifecycle-jobs-system";

    fn good_status() -> TokenReviewStatus {
        status("system:serviceaccount:env:default", &[(EXTRA_POD_NAME, &["seed-abc"]), (EXTRA_POD_UID, &["uid-1"])])
    }

    fn identity() -> Identity {
        Identity {
            namespace: "env".into(),
            service_account: "default".into(),
            pod_name: "seed-abc".into(),
            pod_uid: "uid-1".into(),
        }
    }

    fn owner_ref(kind: &str, name: &str, uid: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: if kind == "Job" { "batch/v1".into() } else { "apps/v1".into() },
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(controller),
            block_owner_deletion: None,
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("seed-abc".into()),
                namespace: Some("env".into()),
                uid: Some("uid-1".into()),
                labels: Some(BTreeMap::from([(LABEL_CAPTURE.to_string(), "SEED".to_string())])),
                owner_references: Some(vec![owner_ref("Job", "seed", "job-uid", true)]),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: None,
        }
    }

    fn job(name: &str, annotations: &[(&str, &str)], labels: &[(&str, &str)]) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some("job-uid".into()),
                annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_tokens_are_extracted_and_never_echoed() {
        assert_eq!(bearer_token(&headers(&["Bearer abc.def"])).unwrap(), "abc.def");
        assert_eq!(bearer_token(&headers(&["bearer  abc"])).unwrap(), "abc");
        for bad in [&[][..], &["Basic dXNlcjpwYXNz"], &["Bearer "], &["Bearer a b"], &["Bearer a", "Bearer b"]] {
            let e = bearer_token(&headers(bad)).unwrap_err();
            assert_eq!(e.status(), 401, "{bad:?}");
            for v in bad.iter() {
                if let Some(t) = v.split_once(' ').map(|(_, t)| t.trim()).filter(|t| t.len() > 1) {
                    assert!(!e.to_string().contains(t), "token echoed: {e}");
                }
            }
        }
    }

    #[test]
    fn accepts_a_pod_bound_token_for_the_audience() {
        assert_eq!(identity_from_review(Some(&good_status())).unwrap(), identity());
    }

    #[test]
    fn refuses_unauthenticated_wrong_audience_or_unbound_tokens() {
        let mut s = good_status();
        s.authenticated = Some(false);
        s.error = Some("token has expired".into());
        let e = identity_from_review(Some(&s)).unwrap_err();
        assert_eq!(e.status(), 401);
        assert!(e.to_string().contains("token has expired"), "{e}");

        let mut s = good_status();
        s.audiences = Some(vec!["https://kubernetes.default.svc".into()]);
        assert!(identity_from_review(Some(&s)).unwrap_err().to_string().contains("audience"));

        let s = status("system:serviceaccount:env:default", &[]);
        assert!(identity_from_review(Some(&s)).unwrap_err().to_string().contains("not bound to a pod"));

        let s = status("system:serviceaccount:env:default", &[(EXTRA_POD_NAME, &["a", "b"]), (EXTRA_POD_UID, &["u"])]);
        assert!(identity_from_review(Some(&s)).unwrap_err().to_string().contains("not bound to a pod"));

        for user in ["kubernetes-admin", "system:serviceaccount:env", "system:serviceaccount::x", "system:serviceaccount:a:b:c"] {
            let s = status(user, &[(EXTRA_POD_NAME, &["p"]), (EXTRA_POD_UID, &["u"])]);
            assert!(identity_from_review(Some(&s)).unwrap_err().to_string().contains("service account"), "{user}");
        }
        assert_eq!(identity_from_review(None).unwrap_err().status(), 401);
    }

    #[test]
    fn accepts_the_captured_pod_of_a_job() {
        assert_eq!(check_pod(&pod(), &identity()).unwrap(), Owner { name: "seed".into(), uid: "job-uid".into() });
    }

    #[test]
    fn refuses_other_pods() {
        let mut p = pod();
        p.metadata.uid = Some("uid-2".into());
        assert!(check_pod(&p, &identity()).unwrap_err().to_string().contains("UID"));

        let mut p = pod();
        p.metadata.labels = None;
        let e = check_pod(&p, &identity()).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.to_string().contains(LABEL_CAPTURE), "{e}");

        let mut p = pod();
        p.spec.as_mut().unwrap().service_account_name = Some("builder".into());
        assert!(check_pod(&p, &identity()).unwrap_err().to_string().contains("service account"));

        let mut p = pod();
        p.metadata.owner_references =
            Some(vec![owner_ref("ReplicaSet", "web-1", "rs", true), owner_ref("Job", "seed", "j", false)]);
        assert!(check_pod(&p, &identity()).unwrap_err().to_string().contains("not controlled by a Job"));
    }

    #[test]
    fn only_environments_publish() {
        let mut ns = Namespace { metadata: ObjectMeta { name: Some("env".into()), ..Default::default() }, ..Default::default() };
        assert!(check_namespace(&ns, SYSTEM).unwrap_err().to_string().contains(LABEL_ENVIRONMENT));
        ns.metadata.labels = Some(BTreeMap::from([(LABEL_ENVIRONMENT.to_string(), String::new())]));
        check_namespace(&ns, SYSTEM).unwrap();
    }

    #[test]
    fn job_id_is_recomputed_from_the_job() {
        let owner = Owner { name: "seed-db".into(), uid: "job-uid".into() };
        assert_eq!(check_job(&job("seed-db", &[], &[]), &owner, "env").unwrap().as_str(), "SEED_DB");
        assert_eq!(
            check_job(&job("seed-db", &[(ANNOTATION_JOB_ID, "zf138d9c8")], &[]), &owner, "env").unwrap().as_str(),
            "ZF138D9C8"
        );
        // A run: the controller sets job-id to the template's JOBID.
        let run = job("seed-start-x1", &[(ANNOTATION_JOB_ID, "SEED")], &[(LABEL_RUN, "r"), (LABEL_JOB, "seed")]);
        assert_eq!(check_job(&run, &owner, "env").unwrap().as_str(), "SEED");
        // ... and without it, the template's name stands in.
        let run = job("seed-start-x1", &[], &[(LABEL_RUN, "r"), (LABEL_JOB, "seed")]);
        assert_eq!(check_job(&run, &owner, "env").unwrap().as_str(), "SEED");
    }

    #[test]
    fn refuses_replaced_or_opted_out_jobs() {
        let owner = Owner { name: "seed".into(), uid: "other-uid".into() };
        assert!(check_job(&job("seed", &[], &[]), &owner, "env").unwrap_err().to_string().contains("replaced"));
        let owner = Owner { name: "seed".into(), uid: "job-uid".into() };
        let e = check_job(&job("seed", &[(ANNOTATION_CAPTURE_OUTPUT, "False")], &[]), &owner, "env").unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.to_string().contains("opted out"), "{e}");
    }

    #[test]
    fn finds_the_template_of_a_run() {
        let mut run = job("seed-start-x1", &[], &[(LABEL_RUN, "r")]);
        run.metadata.owner_references = Some(vec![owner_ref("Job", "seed", "tpl-uid", true)]);
        assert_eq!(template_of(&run), Some(Owner { name: "seed".into(), uid: "tpl-uid".into() }));
        run.metadata.labels = None;
        assert_eq!(template_of(&run), None);
    }

    #[test]
    fn one_line_strips_controls_and_truncates() {
        assert_eq!(one_line(" a\nb\t "), "a b");
        let long = "é".repeat(400);
        let s = one_line(&long);
        assert!(s.len() <= 304 && s.ends_with('…'));
    }

    /// The index's entry of a Job (as the index makes it: [`lifecycle_job::claim`], its creation).
    fn claimed(name: &str, created: &str, annotations: &[(&str, &str)], cron: Option<&str>) -> JobEntry {
        let meta = ObjectMeta {
            name: Some(name.into()),
            annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            owner_references: cron.map(|c| vec![owner_ref("CronJob", c, "c1", true)]),
            ..Default::default()
        };
        let claimant = lifecycle_job::claim(&meta).unwrap().claimant;
        JobEntry { name: name.into(), uid: format!("uid-{name}"), claimant, created: Some(created.into()) }
    }

    #[test]
    fn the_first_claimant_of_a_job_id_publishes_and_later_ones_do_not() {
        let seed = JobId::parse("SEED").unwrap();
        let jobs = vec![
            claimed("seed", "2026-11-29T10:00:00Z", &[], None),
            claimed("copy", "2026-11-29T10:00:01Z", &[(ANNOTATION_JOB_ID, "SEED")], None),
            claimed("seed-start-x", "2026-11-29T10:00:02Z", &[(ANNOTATION_JOB_ID, "SEED")], None),
        ];
        // (the run above has no `run` label here, so it counts as a Job of its own: later still)
        check_unique(&seed, &Claimant::Job("seed".into()), Some("2026-11-29T10:00:00Z"), &jobs).unwrap();
        let err = check_unique(&seed, &Claimant::Job("copy".into()), Some("2026-11-29T10:00:01Z"), &jobs).unwrap_err();
        assert!(matches!(&err, Error::Forbidden(m) if m.contains("Job \"seed\", created first")), "{err}");
        // Same second: the name decides, so exactly one of two racing Jobs publishes.
        let racing = vec![
            claimed("a", "2026-11-29T10:00:00Z", &[(ANNOTATION_JOB_ID, "SEED")], None),
            claimed("b", "2026-11-29T10:00:00Z", &[(ANNOTATION_JOB_ID, "SEED")], None),
        ];
        assert!(check_unique(&seed, &Claimant::Job("a".into()), Some("2026-11-29T10:00:00Z"), &racing).is_ok());
        assert!(check_unique(&seed, &Claimant::Job("b".into()), Some("2026-11-29T10:00:00Z"), &racing).is_err());
        // The Jobs of one CronJob are one claimant.
        let nightly = JobId::parse("NIGHTLY").unwrap();
        let crons = vec![
            claimed("nightly-1", "2026-11-29T10:00:00Z", &[(ANNOTATION_JOB_ID, "NIGHTLY")], Some("nightly")),
            claimed("nightly-2", "2026-11-29T11:00:00Z", &[(ANNOTATION_JOB_ID, "NIGHTLY")], Some("nightly")),
        ];
        assert!(check_unique(&nightly, &Claimant::CronJob("nightly".into()), None, &crons).is_ok());
    }

    #[test]
    fn the_pod_must_carry_its_jobs_job_id() {
        let mut pod = Pod::default();
        pod.metadata.labels = Some(BTreeMap::from([(LABEL_CAPTURE.to_string(), "VICTIM".to_string())]));
        let err = check_capture_label(&pod, &identity(), &JobId::parse("EVIL").unwrap()).unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)));
        check_capture_label(&pod, &identity(), &JobId::parse("VICTIM").unwrap()).unwrap();
    }
}
