//! `POST /validate`: a plain `kubectl delete namespace` of an environment that
//! has delete jobs is refused, with the commands that delete it properly
//! (`kubectl lifecycle env delete`, or the label `state=deleted`): the delete
//! jobs must run first, and pods cannot start in a terminating namespace.
//!
//! This endpoint writes nothing and calls no API: it answers from the request's
//! `oldObject` and the watch-fed job index. Anyone who reaches the server can
//! send it a review; the answer only matters to the API server that asked, so a
//! forged request gets an answer and nothing else. The answer names no job.
//!
//! The controller's own delete, once the delete runs are over, passes: the
//! namespace's `transition` annotation then says so (phase `delete`).
//!
//! Fail open, as the webhook configuration (failurePolicy Ignore).

use k8s_openapi::api::core::v1::Namespace;
use lifecycle_contract::environment::{Environment, WantedState};
use lifecycle_contract::names::LABEL_STATE;

use super::review::{Request, Verdict};
use crate::state::AppState;
use crate::watches::job_index::JobIndex;

/// What the namespace itself says about its delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Not an environment, already terminating, or the controller's own delete after the delete runs.
    Allow,
    /// An environment: its delete jobs run first, if it has any.
    DeleteJobsFirst { already_deleted: bool },
}

/// Read through the contract's [`Environment`] reader, as the controller
/// reads it. The whole `oldObject` is decoded first (in `review`): a namespace
/// DELETE is rare, so this endpoint needs none of the one-pass raw reading that
/// Pod and Job admission use for speed.
pub(crate) fn gate(ns: &Namespace) -> Gate {
    let env = Environment::read(&ns.metadata);
    if !env.is_environment || env.deleting || env.deleting_after_runs() {
        return Gate::Allow;
    }
    let already_deleted = env.wanted.is_ok_and(|w| w.state == WantedState::Deleted);
    Gate::DeleteJobsFirst { already_deleted }
}

/// The refusal, for the person who typed `kubectl delete namespace`: what to
/// run instead. It names no job, so that it tells a forged request nothing
/// about the namespace's jobs.
pub(crate) fn message(namespace: &str, already_deleted: bool) -> String {
    if already_deleted {
        format!(
            "lifecycle-jobs: environment {namespace} is being deleted ({LABEL_STATE}=deleted): its delete jobs run \
             first, then lifecycle-jobs deletes the namespace. Watch: kubectl lifecycle env status {namespace}"
        )
    } else {
        format!(
            "lifecycle-jobs: environment {namespace} has delete jobs, which must run before the namespace goes. \
             Run: kubectl lifecycle env delete {namespace} (or: kubectl label namespace {namespace} \
             {LABEL_STATE}=deleted --overwrite); the namespace is deleted when its delete jobs end"
        )
    }
}

/// The decision, from the namespace as the request carries it and the index.
pub(crate) fn decide(ns: &Namespace, index: &JobIndex) -> Verdict {
    let Gate::DeleteJobsFirst { already_deleted } = gate(ns) else { return Verdict::allow() };
    let name = ns.metadata.name.as_deref().unwrap_or_default();
    if !index.has_delete_templates(name) {
        return Verdict::allow();
    }
    Verdict::deny(message(name, already_deleted))
}

pub(crate) fn review(state: &AppState, req: &Request<'_>) -> Verdict {
    if req.operation != "DELETE" {
        return Verdict::allow();
    }
    // The API server sends the namespace being deleted; without it there is nothing to decide.
    match req.old_object.map(|raw| serde_json::from_str::<Namespace>(raw.get())) {
        Some(Ok(ns)) => decide(&ns, &state.jobs),
        _ => Verdict::allow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;
    use lifecycle_contract::names::{ANNOTATION_TRANSITION, LABEL_ENVIRONMENT};
    use std::collections::BTreeMap;

    fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn ns(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("env1".into()),
                labels: map(labels),
                annotations: map(annotations),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_environments_are_gated() {
        assert_eq!(gate(&ns(&[], &[])), Gate::Allow);
        assert_eq!(gate(&ns(&[(LABEL_ENVIRONMENT, "")], &[])), Gate::DeleteJobsFirst { already_deleted: false });
        assert_eq!(
            gate(&ns(&[(LABEL_ENVIRONMENT, "e"), (LABEL_STATE, "deleted")], &[])),
            Gate::DeleteJobsFirst { already_deleted: true }
        );
        let mut terminating = ns(&[(LABEL_ENVIRONMENT, "")], &[]);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(gate(&terminating), Gate::Allow);
    }

    #[test]
    fn the_controllers_own_delete_passes() {
        let after_runs = r#"{"seq":4,"event":"delete","phase":"delete"}"#;
        let during_runs = r#"{"seq":4,"event":"delete","phase":"runs"}"#;
        let labels = [(LABEL_ENVIRONMENT, ""), (LABEL_STATE, "deleted")];
        assert_eq!(gate(&ns(&labels, &[(ANNOTATION_TRANSITION, after_runs)])), Gate::Allow);
        assert_eq!(gate(&ns(&labels, &[(ANNOTATION_TRANSITION, during_runs)])), Gate::DeleteJobsFirst { already_deleted: true });
        let stop = r#"{"seq":4,"event":"stop","phase":"scale"}"#;
        assert_eq!(
            gate(&ns(&[(LABEL_ENVIRONMENT, "")], &[(ANNOTATION_TRANSITION, stop)])),
            Gate::DeleteJobsFirst { already_deleted: false }
        );
    }

    #[test]
    fn refuses_only_environments_with_delete_jobs_and_names_none() {
        let idx = JobIndex::empty();
        let env = ns(&[(LABEL_ENVIRONMENT, "")], &[]);
        assert!(decide(&env, &idx).denied.is_none(), "no delete jobs: a plain delete");
        idx.record_template("env1", "backup", "u1", lifecycle_contract::JobId::parse("BACKUP").unwrap(), true);
        let msg = decide(&env, &idx).denied.expect("refused");
        assert!(msg.contains("kubectl lifecycle env delete env1") && msg.contains("state=deleted"), "{msg}");
        assert!(!msg.contains("backup") && !msg.contains("BACKUP"), "names no job: {msg}");
        assert!(decide(&ns(&[], &[]), &idx).denied.is_none(), "not an environment");
    }
}
