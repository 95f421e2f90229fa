//! A fresh copy of a Job: what the controller's runs and the plugin's clones
//! both start from, so that both leave behind the same things.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Labels Kubernetes generates on a Job and its pod template from the Job's uid and name.
pub const GENERATED_LABELS: [&str; 4] =
    ["controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name"];

/// Annotation `kubectl apply` writes: it describes the source object.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Annotation the Job controller sets on the Jobs it tracks.
pub const JOB_TRACKING: &str = "batch.kubernetes.io/job-tracking";
/// Annotations of the source object that a copy never takes.
pub const SOURCE_ANNOTATIONS: [&str; 2] = [LAST_APPLIED, JOB_TRACKING];

/// A copy, and what of the source it left behind (for reports).
#[derive(Debug, Clone)]
pub struct FreshCopy {
    pub job: Job,
    /// [`GENERATED_LABELS`] the source had, on the Job or its pod template.
    pub generated_labels: Vec<&'static str>,
    /// [`SOURCE_ANNOTATIONS`] the source had.
    pub source_annotations: Vec<&'static str>,
    /// The source's selector was generated (no `manualSelector: true`) and is gone.
    pub selector_dropped: bool,
}

/// `src` as a new Job named `name` in `namespace`: its own labels, annotations
/// and spec, without what belongs to the source object: its identity and
/// history (uid, resourceVersion, managedFields, owners, finalizers, status),
/// the labels Kubernetes generated from its uid and name (on the Job and its
/// pod template), [`SOURCE_ANNOTATIONS`], and a generated selector (kept with
/// `manualSelector: true`). The API server generates the copy's own.
pub fn fresh_copy(src: &Job, name: &str, namespace: &str) -> FreshCopy {
    let mut generated_labels = Vec::new();
    let mut drop_generated = |labels: &mut BTreeMap<String, String>| {
        for l in GENERATED_LABELS {
            if labels.remove(l).is_some() && !generated_labels.contains(&l) {
                generated_labels.push(l);
            }
        }
    };
    let mut labels = src.metadata.labels.clone().unwrap_or_default();
    drop_generated(&mut labels);
    let mut annotations = src.metadata.annotations.clone().unwrap_or_default();
    let source_annotations = SOURCE_ANNOTATIONS.into_iter().filter(|a| annotations.remove(*a).is_some()).collect();

    let mut spec = src.spec.clone().unwrap_or_default();
    let mut selector_dropped = false;
    if spec.manual_selector != Some(true) {
        selector_dropped = spec.selector.take().is_some();
        spec.manual_selector = None;
    }
    if let Some(meta) = spec.template.metadata.as_mut()
        && let Some(l) = meta.labels.as_mut()
    {
        drop_generated(l);
        if l.is_empty() {
            meta.labels = None;
        }
    }
    let job = Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    FreshCopy { job, generated_labels, source_annotations, selector_dropped }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobSpec, JobStatus};
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};

    fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn source(manual_selector: Option<bool>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("seed".into()),
                namespace: Some("a".into()),
                uid: Some("u1".into()),
                resource_version: Some("7".into()),
                finalizers: Some(vec!["f".into()]),
                owner_references: Some(vec![OwnerReference { name: "o".into(), ..Default::default() }]),
                labels: map(&[("team", "db"), ("job-name", "seed"), ("batch.kubernetes.io/controller-uid", "u1")]),
                annotations: map(&[("note", "x"), (LAST_APPLIED, "{}"), (JOB_TRACKING, "")]),
                ..Default::default()
            },
            spec: Some(JobSpec {
                manual_selector,
                selector: Some(LabelSelector { match_labels: map(&[("controller-uid", "u1")]), ..Default::default() }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: map(&[("controller-uid", "u1"), ("job-name", "seed")]),
                        ..Default::default()
                    }),
                    spec: None,
                },
                backoff_limit: Some(2),
                ..Default::default()
            }),
            status: Some(JobStatus::default()),
        }
    }

    #[test]
    fn a_copy_keeps_the_jobs_own_and_leaves_the_source_objects_behind() {
        let c = fresh_copy(&source(None), "seed2", "b");
        let m = &c.job.metadata;
        assert_eq!((m.name.as_deref(), m.namespace.as_deref()), (Some("seed2"), Some("b")));
        assert_eq!((&m.uid, &m.resource_version, &m.finalizers, &m.owner_references), (&None, &None, &None, &None));
        assert_eq!(m.labels, map(&[("team", "db")]));
        assert_eq!(m.annotations, map(&[("note", "x")]));
        assert!(c.job.status.is_none());
        let spec = c.job.spec.unwrap();
        assert_eq!((spec.selector, spec.manual_selector, spec.backoff_limit), (None, None, Some(2)));
        assert_eq!(spec.template.metadata.unwrap().labels, None);
        assert_eq!(c.generated_labels, ["batch.kubernetes.io/controller-uid", "job-name", "controller-uid"]);
        assert_eq!(c.source_annotations, SOURCE_ANNOTATIONS);
        assert!(c.selector_dropped);
    }

    #[test]
    fn a_manual_selector_is_the_jobs_own() {
        let c = fresh_copy(&source(Some(true)), "seed", "b");
        let spec = c.job.spec.unwrap();
        assert!(spec.selector.is_some() && spec.manual_selector == Some(true));
        assert!(!c.selector_dropped);
    }
}
