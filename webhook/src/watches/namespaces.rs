//! The one watch of environment Namespaces (label `environment`), shared by
//! every reader of environments on a replica, as the Job watch is for Jobs:
//! admission's gating index ([`EnvIndex`](super::env_index::EnvIndex), on every
//! replica) and, on the leader, the environment controller and the mirroring
//! of project variables and built-in variables. Metadata only, stripped on arrival ([`slim`]) to the
//! contract's names the readers use, each value cut: what is kept of a
//! namespace is bounded whatever its labels and annotations.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use lifecycle_contract::names::{
    ANNOTATION_DEPLOY_ID, ANNOTATION_OBSERVED, ANNOTATION_ON_START_FAILURE, ANNOTATION_ROLLOUT, ANNOTATION_STATUS,
    ANNOTATION_TRANSITION, LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_STATE,
};

use super::shared::{Observer, SharedWatch};

/// A Namespace as the watch keeps it: metadata, stripped by [`slim`].
pub(crate) type NsMeta = PartialObjectMeta<Namespace>;

/// The readers' handle on the namespace watch.
pub(crate) type NamespaceWatch = SharedWatch<NsMeta>;

/// The annotations and labels some reader uses; every other one is dropped.
const KEPT_ANNOTATIONS: [&str; 6] = [
    ANNOTATION_OBSERVED,
    ANNOTATION_TRANSITION,
    ANNOTATION_STATUS,
    ANNOTATION_DEPLOY_ID,
    ANNOTATION_ON_START_FAILURE,
    ANNOTATION_ROLLOUT,
];
const KEPT_LABELS: [&str; 3] = [LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_STATE];
/// Longest kept value. The controller's own records (`observed`,
/// `transition`) stay well under it; a longer value is cut and so unreadable,
/// which every reader already takes as absent.
pub(crate) const MAX_KEPT_VALUE: usize = 16 * 1024;

/// Which Namespaces are watched: the environments.
pub(crate) fn watch_config() -> watcher::Config {
    crate::runtime::kube_client::watch_config().labels(LABEL_ENVIRONMENT)
}

/// Starts the watch; `index` is kept from the same events.
pub(crate) fn start(
    client: kube::Client,
    index: impl Observer<NsMeta>,
) -> (NamespaceWatch, impl std::future::Future<Output = ()> + Send + 'static) {
    // Metadata only: an `Api` of PartialObjectMeta makes metadata requests.
    SharedWatch::start(Api::all(client), watch_config(), slim, index, "namespace")
}

/// Keeps of a Namespace's metadata its identity, version, deletion, and the
/// contract's names listed above, each value cut to [`MAX_KEPT_VALUE`].
pub(crate) fn slim(ns: &mut NsMeta) {
    let m = &mut ns.metadata;
    m.managed_fields = None;
    m.owner_references = None;
    m.finalizers = None;
    let keep = |map: &mut Option<std::collections::BTreeMap<String, String>>, kept: &[&str]| {
        if let Some(all) = map.take() {
            let kept = all
                .into_iter()
                .filter(|(k, _)| kept.contains(&k.as_str()))
                .map(|(k, v)| (k, crate::runtime::text::capped(v, MAX_KEPT_VALUE)))
                .collect();
            *map = Some(kept);
        }
    };
    keep(&mut m.annotations, &KEPT_ANNOTATIONS);
    keep(&mut m.labels, &KEPT_LABELS);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    #[test]
    fn slim_keeps_the_contract_names_bounded() {
        let mut ns: NsMeta = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {
                "name": "env1", "uid": "u1", "resourceVersion": "9",
                "labels": {LABEL_ENVIRONMENT: "", LABEL_PROJECT: "shop", "team": "a"},
                "annotations": {ANNOTATION_OBSERVED: r#"{"seq":1}"#, ANNOTATION_DEPLOY_ID: "x".repeat(100_000), "big": "y".repeat(100_000)},
                "managedFields": [{"manager": "kubectl"}],
            }
        }))
        .unwrap();
        slim(&mut ns);
        assert_eq!(
            (ns.name_any(), ns.uid().as_deref(), ns.resource_version().as_deref()),
            ("env1".into(), Some("u1"), Some("9"))
        );
        assert_eq!(ns.labels().keys().collect::<Vec<_>>(), [LABEL_ENVIRONMENT, LABEL_PROJECT]);
        assert_eq!(ns.annotations().keys().collect::<Vec<_>>(), [ANNOTATION_DEPLOY_ID, ANNOTATION_OBSERVED]);
        assert!(ns.annotations()[ANNOTATION_DEPLOY_ID].len() <= MAX_KEPT_VALUE);
        assert!(ns.metadata.managed_fields.is_none());
    }
}
