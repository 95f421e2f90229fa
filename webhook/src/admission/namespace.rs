//! `POST /validate`: a plain `kubectl delete namespace` of an environment that
//! has delete jobs. The webhook refuses that delete, sets `state=deleted` and
//! says so; the controller runs the delete jobs and then deletes the namespace
//! itself — a delete this webhook allows, because the namespace's `transition`
//! annotation then says the delete runs are over (phase `delete`). That check
//! reads the object being deleted (`oldObject`), so it holds whoever sends the
//! request and needs no identity configuration.
//!
//! Fail open, as the webhook configuration (failurePolicy Ignore): when the
//! templates cannot be listed or the label cannot be set, the delete is allowed
//! with a warning rather than blocked.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use lifecycle_contract::Event;
use lifecycle_contract::names::{ANNOTATION_ON, LABEL_ENVIRONMENT, LABEL_RUN, LABEL_STATE};
use serde_json::json;

use super::review::{Request, Verdict};
use crate::controller::keys::ANNOTATION_TRANSITION;
use crate::controller::model::{Phase, Transition, parse_json};
use crate::state::AppState;

/// Budget of each API call (the webhook's own timeout is 10 s by default).
const CALL_TIMEOUT: Duration = Duration::from_secs(4);

/// What the namespace itself says about its delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Not an environment, already terminating, or the controller's own delete after the delete runs.
    Allow,
    /// An environment: its delete jobs run first, if it has any.
    DeleteJobsFirst { already_deleted: bool },
}

pub fn gate(ns: &Namespace) -> Gate {
    let meta = &ns.metadata;
    let labels = meta.labels.as_ref();
    if !labels.is_some_and(|l| l.contains_key(LABEL_ENVIRONMENT)) || meta.deletion_timestamp.is_some() {
        return Gate::Allow;
    }
    let transition = meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION_TRANSITION)).map(String::as_str);
    if let Ok(Some(Transition { event: Event::Delete, phase: Phase::Delete, .. })) = parse_json::<Transition>(transition) {
        return Gate::Allow;
    }
    let already_deleted = labels.and_then(|l| l.get(LABEL_STATE)).is_some_and(|s| s.trim() == "deleted");
    Gate::DeleteJobsFirst { already_deleted }
}

/// The lifecycle templates of the namespace that run on delete (sorted).
pub fn delete_templates(jobs: &[PartialObjectMeta<Job>]) -> Vec<String> {
    let mut names: Vec<String> = jobs
        .iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .filter(|j| !j.metadata.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_RUN)))
        .filter(|j| {
            let on = j.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_ON));
            on.and_then(|v| Event::parse_list(v).ok()).is_some_and(|events| events.contains(&Event::Delete))
        })
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    names.sort();
    names
}

/// The refusal, for the person who typed `kubectl delete namespace`.
pub fn message(namespace: &str, templates: &[String], already_deleted: bool, dry_run: bool) -> String {
    let jobs = templates.join(", ");
    let label = format!("{LABEL_STATE}=deleted");
    if already_deleted {
        format!(
            "environment {namespace} is being deleted: its delete jobs ({jobs}) run first; the namespace is deleted \
             when they end ({label}). Watch: kubectl get jobs -n {namespace}"
        )
    } else {
        let set = if dry_run { "would be set" } else { "set" };
        format!(
            "environment {namespace} has delete jobs ({jobs}): they run first; the namespace is deleted when they \
             end ({label} {set}). Watch: kubectl get jobs -n {namespace}"
        )
    }
}

fn allow_with_warning(warning: String) -> Verdict {
    tracing::warn!("{warning}");
    Verdict { warnings: vec![warning], ..Verdict::allow() }
}

pub async fn review(state: &AppState, req: &Request<'_>) -> Verdict {
    if req.operation != "DELETE" {
        return Verdict::allow();
    }
    let Some(name) = req.name.as_deref() else { return Verdict::allow() };
    let namespaces: Api<Namespace> = Api::all(state.client.clone());
    let ns = match req.old_object.map(|raw| serde_json::from_str::<Namespace>(raw.get())) {
        Some(Ok(ns)) => ns,
        _ => match tokio::time::timeout(CALL_TIMEOUT, namespaces.get_opt(name)).await {
            Ok(Ok(Some(ns))) => ns,
            Ok(Ok(None)) => return Verdict::allow(),
            Ok(Err(e)) => {
                return allow_with_warning(format!("lifecycle-jobs: could not read namespace {name} ({e}); delete jobs skipped"));
            }
            Err(_) => {
                return allow_with_warning(format!("lifecycle-jobs: reading namespace {name} timed out; delete jobs skipped"));
            }
        },
    };
    let Gate::DeleteJobsFirst { already_deleted } = gate(&ns) else { return Verdict::allow() };

    let jobs: Api<PartialObjectMeta<Job>> = Api::namespaced(state.client.clone(), name);
    let templates = match tokio::time::timeout(CALL_TIMEOUT, jobs.list(&ListParams::default())).await {
        Ok(Ok(list)) => delete_templates(&list.items),
        Ok(Err(e)) => {
            return allow_with_warning(format!(
                "lifecycle-jobs: could not list the jobs of environment {name} ({e}); its delete jobs do not run"
            ));
        }
        Err(_) => {
            return allow_with_warning(format!(
                "lifecycle-jobs: listing the jobs of environment {name} timed out; its delete jobs do not run"
            ));
        }
    };
    if templates.is_empty() {
        return Verdict::allow();
    }
    let dry_run = req.dry_run.unwrap_or(false);
    if !already_deleted && !dry_run {
        let patch = json!({"metadata": {"labels": {LABEL_STATE: "deleted"}}});
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        match tokio::time::timeout(CALL_TIMEOUT, namespaces.patch(name, &params, &patch)).await {
            Ok(Ok(_)) => {
                tracing::info!(namespace = name, "namespace delete refused: state=deleted set, delete jobs run first")
            }
            Ok(Err(e)) => {
                return allow_with_warning(format!(
                    "lifecycle-jobs: could not set {LABEL_STATE}=deleted on {name} ({e}); its delete jobs do not run"
                ));
            }
            Err(_) => {
                return allow_with_warning(format!(
                    "lifecycle-jobs: setting {LABEL_STATE}=deleted on {name} timed out; its delete jobs do not run"
                ));
            }
        }
    }
    Verdict::deny(message(name, &templates, already_deleted, dry_run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::ObjectMeta;
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

    fn job(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> PartialObjectMeta<Job> {
        PartialObjectMeta {
            metadata: ObjectMeta {
                name: Some(name.into()),
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
    fn finds_delete_templates() {
        let mut deleting = job("old", &[], &[(ANNOTATION_ON, "delete")]);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let jobs = vec![
            job("teardown", &[], &[(ANNOTATION_ON, "stop, delete")]),
            job("backup", &[], &[(ANNOTATION_ON, "delete")]),
            job("seed", &[], &[(ANNOTATION_ON, "start")]),
            job("plain", &[], &[]),
            job("backup-delete-bcdfghjk", &[(LABEL_RUN, "3")], &[]),
            job("broken", &[], &[(ANNOTATION_ON, "delete,explode")]),
            deleting,
        ];
        assert_eq!(delete_templates(&jobs), vec!["backup".to_string(), "teardown".to_string()]);
        assert!(delete_templates(&jobs[2..4]).is_empty());
    }

    #[test]
    fn messages_say_what_happens() {
        let t = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            message("env1", &t, false, false),
            "environment env1 has delete jobs (a, b): they run first; the namespace is deleted when they end \
             (lifecycle-jobs.dev/state=deleted set). Watch: kubectl get jobs -n env1"
        );
        assert!(message("env1", &t, false, true).contains("would be set"));
        assert!(message("env1", &t, true, false).starts_with("environment env1 is being deleted"));
    }
}
