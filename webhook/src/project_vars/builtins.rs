//! Pure decisions of the built-in variables (`lifecycle_contract::builtins`):
//! which environment gets which ConfigMap `lifecycle-builtins`, what to write
//! and what to delete. No I/O here; [`super::sync`] feeds it the environment
//! watch and the listed ConfigMaps, and executes its actions.
//!
//! The same leader and loop as the project variables mirror write them, from
//! the same watch of environment Namespaces: a new environment gets its
//! ConfigMap as soon as the watch sees it, and a change of its facts (label
//! `environment` or `project`) rewrites it. What exists is listed at start and
//! at every resync, data included (a few short values each): a ConfigMap
//! edited or deleted by a tenant is put back within one resync. It holds no
//! secret: only the namespace's name, UID and labels, which anyone who may
//! read the namespace reads anyway.

use std::collections::{BTreeMap, BTreeSet};

use lifecycle_contract::builtins::EnvironmentFacts;
use lifecycle_contract::names::{BUILTINS_OBJECT, NEVER_ENVIRONMENTS};
use serde_json::{Value, json};

use crate::outputs::store::{MANAGED_BY, MANAGED_BY_LABEL};

/// A ConfigMap's data.
pub(crate) type Data = BTreeMap<String, String>;

/// A write the glue must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BuiltinsAction {
    /// Server-side apply of `lifecycle-builtins` in `namespace` with `data`.
    Apply { namespace: String, data: Data },
    /// Delete `lifecycle-builtins` in `namespace`: it is no environment any more.
    Delete { namespace: String },
}

/// What the writer knows: the environments' wanted data, and the data of the
/// ConfigMaps that exist (ours: selected by name and managed-by label).
#[derive(Debug, Default)]
pub(crate) struct Builtins {
    /// Environment namespace → the data its ConfigMap must hold.
    wanted: BTreeMap<String, Data>,
    /// Namespace → the data of its existing ConfigMap.
    current: BTreeMap<String, Data>,
    /// Namespaces that never get one (the server's, the variables sources', the cluster's).
    excluded: BTreeSet<String>,
}

impl Builtins {
    pub(crate) fn new(excluded: impl IntoIterator<Item = String>) -> Self {
        let mut excluded: BTreeSet<String> = excluded.into_iter().collect();
        excluded.extend(NEVER_ENVIRONMENTS.iter().map(|s| s.to_string()));
        Builtins { excluded, ..Default::default() }
    }

    /// An environment namespace was seen: `facts` as read from it (`None`:
    /// unreadable, e.g. no UID yet), `terminating` when it is being deleted
    /// (then nothing is written there any more).
    pub(crate) fn env_applied(&mut self, namespace: &str, facts: Option<&EnvironmentFacts>, terminating: bool) {
        match facts {
            Some(f) if !terminating && !self.excluded.contains(namespace) => {
                self.wanted.insert(namespace.to_string(), f.variables());
            }
            _ => {
                self.wanted.remove(namespace);
            }
        }
    }

    /// A namespace stopped being an environment, or is gone.
    pub(crate) fn env_deleted(&mut self, namespace: &str) {
        self.wanted.remove(namespace);
    }

    /// The environment watch restarted: its complete list.
    pub(crate) fn envs_reset<'a>(&mut self, envs: impl IntoIterator<Item = (&'a str, Option<&'a EnvironmentFacts>, bool)>) {
        self.wanted.clear();
        for (namespace, facts, terminating) in envs {
            self.env_applied(namespace, facts, terminating);
        }
    }

    /// The ConfigMaps that exist, as listed from the cluster (a full resync).
    pub(crate) fn objects_reset(&mut self, list: impl IntoIterator<Item = (String, Data)>) {
        self.current = list.into_iter().collect();
    }

    /// What brings every environment in step: an apply where the ConfigMap is
    /// missing or differs (a tenant's edit included), a delete where the
    /// namespace is no environment any more.
    pub(crate) fn plan(&self) -> Vec<BuiltinsAction> {
        let applies = self
            .wanted
            .iter()
            .filter(|(ns, data)| self.current.get(*ns) != Some(*data))
            .map(|(ns, data)| BuiltinsAction::Apply { namespace: ns.clone(), data: data.clone() });
        let deletes = self
            .current
            .keys()
            .filter(|ns| !self.wanted.contains_key(*ns))
            .map(|ns| BuiltinsAction::Delete { namespace: ns.clone() });
        applies.chain(deletes).collect()
    }

    /// An action succeeded (or found its namespace gone).
    pub(crate) fn done(&mut self, action: &BuiltinsAction) {
        match action {
            BuiltinsAction::Apply { namespace, data } => {
                self.current.insert(namespace.clone(), data.clone());
            }
            BuiltinsAction::Delete { namespace } => {
                self.current.remove(namespace);
            }
        }
    }
}

/// Pure: the server-side apply body of an environment's `lifecycle-builtins`.
/// The whole data is applied each time, so a variable that no longer applies
/// (the project label removed) disappears.
pub(crate) fn apply_body(namespace: &str, data: &Data) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": BUILTINS_OBJECT,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
        },
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_contract::builtins::{ENVIRONMENT_ID, ENVIRONMENT_NAME, PROJECT_NAME};

    fn facts(ns: &str, name: &str, project: Option<&str>) -> EnvironmentFacts {
        EnvironmentFacts {
            namespace: ns.into(),
            uid: format!("uid-{ns}"),
            name: name.into(),
            project: project.map(str::to_string),
        }
    }

    fn builtins() -> Builtins {
        let mut b = Builtins::new(["lifecycle-jobs-system".to_string()]);
        let shop = facts("shop-1", "pr-1", Some("shop"));
        let loose = facts("loose", "loose", None);
        let system = facts("lifecycle-jobs-system", "x", None);
        b.envs_reset([
            ("shop-1", Some(&shop), false),
            ("loose", Some(&loose), false),
            ("lifecycle-jobs-system", Some(&system), false),
        ]);
        b
    }

    #[test]
    fn every_environment_gets_its_facts_never_an_excluded_namespace() {
        let b = builtins();
        let actions = b.plan();
        assert_eq!(actions.len(), 2, "{actions:?}");
        let BuiltinsAction::Apply { namespace, data } = &actions[1] else { panic!("{actions:?}") };
        assert_eq!(namespace, "shop-1");
        assert_eq!(data[ENVIRONMENT_ID], "uid-shop-1");
        assert_eq!(data[ENVIRONMENT_NAME], "pr-1");
        assert_eq!(data[PROJECT_NAME], "shop");
        assert!(matches!(&actions[0], BuiltinsAction::Apply { namespace, .. } if namespace == "loose"));
    }

    #[test]
    fn in_step_after_the_writes_and_rewritten_when_a_fact_or_the_object_changes() {
        let mut b = builtins();
        for a in b.plan() {
            b.done(&a);
        }
        assert!(b.plan().is_empty(), "in step");
        // The project label changes: only that environment is rewritten.
        b.env_applied("shop-1", Some(&facts("shop-1", "pr-1", Some("blog"))), false);
        let actions = b.plan();
        assert!(
            matches!(&actions[..], [BuiltinsAction::Apply { namespace, data }] if namespace == "shop-1" && data[PROJECT_NAME] == "blog")
        );
        for a in &actions {
            b.done(a);
        }
        // A tenant edited one: the resync's list shows it, and it is put back.
        let mut edited = facts("loose", "loose", None).variables();
        edited.insert(ENVIRONMENT_NAME.into(), "mine".into());
        let shop = facts("shop-1", "pr-1", Some("blog")).variables();
        b.objects_reset([("loose".to_string(), edited), ("shop-1".to_string(), shop)]);
        let actions = b.plan();
        assert!(
            matches!(&actions[..], [BuiltinsAction::Apply { namespace, data }] if namespace == "loose" && data[ENVIRONMENT_NAME] == "loose")
        );
        // Deleted by hand: written again.
        b.objects_reset([("shop-1".to_string(), facts("shop-1", "pr-1", Some("blog")).variables())]);
        assert!(matches!(&b.plan()[..], [BuiltinsAction::Apply { namespace, .. }] if namespace == "loose"));
    }

    #[test]
    fn a_namespace_that_is_no_environment_any_more_loses_it_a_terminating_one_gets_nothing() {
        let mut b = builtins();
        for a in b.plan() {
            b.done(&a);
        }
        b.env_deleted("loose");
        b.env_applied("shop-1", Some(&facts("shop-1", "pr-1", Some("shop"))), true);
        assert_eq!(
            b.plan(),
            [BuiltinsAction::Delete { namespace: "loose".into() }, BuiltinsAction::Delete { namespace: "shop-1".into() }]
        );
        b.env_applied("new", None, false);
        assert!(
            !b.plan().iter().any(|a| matches!(a, BuiltinsAction::Apply { namespace, .. } if namespace == "new")),
            "no uid yet"
        );
    }

    #[test]
    fn body_is_our_configmap_with_the_whole_data() {
        let data = facts("shop-1", "pr-1", Some("shop")).variables();
        let body = apply_body("shop-1", &data);
        assert_eq!(body["kind"], "ConfigMap");
        assert_eq!(body["metadata"]["name"], BUILTINS_OBJECT);
        assert_eq!(body["metadata"]["namespace"], "shop-1");
        assert_eq!(body["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(body["data"].as_object().unwrap().len(), data.len());
        assert_eq!(body["data"][ENVIRONMENT_ID], "uid-shop-1");
        assert!(body.get("type").is_none() && body["metadata"].get("annotations").is_none());
    }
}
