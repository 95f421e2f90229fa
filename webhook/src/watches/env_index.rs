//! Which environments gate the pods admitted to them now, kept from the
//! namespace watch ([`crate::watches::namespaces`]), so that pod admission
//! never calls the API server. Only the names of the gating namespaces are
//! kept; the rule is the contract's [`Environment::gates_pods`].

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use kube::ResourceExt;
use lifecycle_contract::environment::Environment;
use tokio::sync::watch;

use crate::watches::namespaces::NsMeta;
use crate::watches::store::Feed;

/// Shared, cheap to clone.
#[derive(Clone, Debug)]
pub struct EnvIndex {
    gating: Arc<RwLock<HashSet<String>>>,
    ready: watch::Receiver<bool>,
}

impl EnvIndex {
    /// An empty index that is ready at once (tests, benchmarks).
    pub fn empty() -> Self {
        let (_tx, rx) = watch::channel(true);
        EnvIndex { gating: Arc::default(), ready: rx }
    }

    /// The index, and the feed that keeps it from the namespace watch's events
    /// ([`crate::watches::namespaces`]).
    pub(crate) fn new() -> (Self, Feed<NsMeta, HashSet<String>>) {
        let (tx, rx) = watch::channel(false);
        let index = EnvIndex { gating: Arc::default(), ready: rx };
        let forget = |gating: &mut HashSet<String>, ns: &NsMeta| {
            gating.remove(&ns.name_any());
        };
        let feed = Feed::new(index.gating.clone(), tx, apply, forget);
        (index, feed)
    }

    pub async fn wait_until_ready(&self) {
        let mut rx = self.ready.clone();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Pods admitted to `namespace` now get the start-jobs scheduling gate.
    pub fn gates(&self, namespace: &str) -> bool {
        self.gating.read().expect("env index lock").contains(namespace)
    }

    /// Sets a namespace's answer directly (tests; admission does not write the index).
    pub fn set(&self, namespace: &str, gates: bool) {
        let mut g = self.gating.write().expect("env index lock");
        if gates {
            g.insert(namespace.to_string());
        } else {
            g.remove(namespace);
        }
    }
}

fn apply(gating: &mut HashSet<String>, ns: &NsMeta) {
    let name = ns.name_any();
    if Environment::read(&ns.metadata).gates_pods() {
        gating.insert(name);
    } else {
        gating.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_contract::names::LABEL_ENVIRONMENT;

    #[test]
    fn a_namespace_as_the_api_sends_it_gates_while_its_start_runs() {
        let json = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {
                "name": "env1",
                "labels": {LABEL_ENVIRONMENT: "", "kubernetes.io/metadata.name": "env1"},
                "annotations": {
                    "lifecycle-jobs.dev/observed": r#"{"seq":1,"state":"started"}"#,
                    "lifecycle-jobs.dev/transition": r#"{"seq":1,"event":"start","phase":"runs","progress":{"stage":1,"index":1,"stages":2,"done":0,"total":1}}"#,
                }
            },
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
        });
        let ns: NsMeta = serde_json::from_value(json).unwrap();
        let mut set = HashSet::new();
        apply(&mut set, &ns);
        assert!(set.contains("env1"), "{ns:?}");
    }
}
