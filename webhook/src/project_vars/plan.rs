//! Pure decisions of the project variables mirror: how sources merge, which
//! namespaces get a mirror, what to write and what to delete. No I/O here;
//! [`super::sync`] feeds it watch events and executes its actions.
//!
//! What it remembers is names only (namespaces, source objects, one digest
//! per mirror), never values: memory stays bounded by the number of
//! environments and source objects, whatever their size.

use std::collections::{BTreeMap, BTreeSet};

use lifecycle_contract::names::SourceKind;
use sha2::{Digest, Sha256};

// Namespaces that are never environments (DESIGN "Trust"), besides the
// server's own and the variables source namespaces: no mirror goes there.
use lifecycle_contract::names::NEVER_ENVIRONMENTS;

/// One labelled source object with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source<V> {
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, V>,
}

/// A key defined by two sources: `winner` is mirrored, `loser` ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shadowed {
    pub key: String,
    pub winner: String,
    pub loser: String,
}

/// The merged data of one kind (ConfigMaps or Secrets) of one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Merged<V> {
    pub data: BTreeMap<String, V>,
    /// Key → `<namespace>/<name>` of the source it came from.
    pub origin: BTreeMap<String, String>,
    pub shadowed: Vec<Shadowed>,
}

/// Merges a project's sources of one kind.
///
/// Order: by the source namespace's position in the configured list, then by
/// object name; a later source wins a key over an earlier one (as a later
/// `envFrom` entry wins in a pod). So with the default single source
/// namespace: of two objects defining the same key, the one whose name sorts
/// last wins. The order never depends on watch timing, so every mirror of
/// the project gets the same result.
pub(crate) fn merge<V>(mut sources: Vec<Source<V>>, namespace_order: &[String]) -> Merged<V> {
    let rank = |ns: &str| namespace_order.iter().position(|n| n == ns).unwrap_or(usize::MAX);
    sources.sort_by(|a, b| (rank(&a.namespace), &a.name).cmp(&(rank(&b.namespace), &b.name)));
    let mut data = BTreeMap::new();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let mut shadowed = Vec::new();
    for s in sources {
        let from = format!("{}/{}", s.namespace, s.name);
        for (key, value) in s.data {
            if let Some(previous) = origin.insert(key.clone(), from.clone()) {
                shadowed.push(Shadowed { key: key.clone(), winner: from.clone(), loser: previous });
            }
            data.insert(key, value);
        }
    }
    Merged { data, origin, shadowed }
}

/// Digest of what a mirror holds: project, kind, every key, value and origin.
/// Written on the mirror, so a restarted server skips unchanged mirrors.
pub(crate) fn mirror_hash<V: AsRef<[u8]>>(project: &str, kind: SourceKind, merged: &Merged<V>) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(project.as_bytes());
    field(format!("{kind:?}").as_bytes());
    for (k, v) in &merged.data {
        field(k.as_bytes());
        field(v.as_ref());
        field(merged.origin.get(k).map(String::as_bytes).unwrap_or_default());
    }
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A write the glue must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Server-side apply of `lifecycle-project` of `kind` in `namespace`
    /// with the project's merged data (whose digest is `hash`).
    Apply { namespace: String, kind: SourceKind, hash: String },
    /// Delete `lifecycle-project` of `kind` in `namespace`.
    Delete { namespace: String, kind: SourceKind },
}

/// What the mirror knows of the cluster: environments and their project,
/// source objects and their project, the mirrors that exist.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// Environment namespace → its project (`None`: no or empty label).
    envs: BTreeMap<String, Option<String>>,
    /// (kind, namespace, name) of a source → its project.
    sources: BTreeMap<(SourceKind, String, String), String>,
    /// (namespace, kind) of an existing mirror → the digest it carries
    /// (`None`: present but unknown, e.g. written by hand with our label).
    mirrors: BTreeMap<(String, SourceKind), Option<String>>,
    /// Namespaces that never get a mirror.
    excluded: BTreeSet<String>,
    /// Projects to reconcile.
    dirty: BTreeSet<String>,
}

fn project_of(label: Option<&str>) -> Option<String> {
    label.filter(|p| !p.is_empty()).map(str::to_string)
}

impl World {
    pub(crate) fn new(excluded: impl IntoIterator<Item = String>) -> Self {
        let mut excluded: BTreeSet<String> = excluded.into_iter().collect();
        excluded.extend(NEVER_ENVIRONMENTS.iter().map(|s| s.to_string()));
        World { excluded, ..Default::default() }
    }

    /// An environment namespace was seen (`project`: its project label;
    /// `terminating`: it is being deleted, so it gets no new mirror).
    pub(crate) fn env_applied(&mut self, namespace: &str, project: Option<&str>, terminating: bool) {
        let project = if terminating { None } else { project_of(project) };
        if let Some(p) = &project {
            self.dirty.insert(p.clone());
        }
        self.envs.insert(namespace.to_string(), project);
    }

    /// A namespace stopped being an environment, or is gone.
    pub(crate) fn env_deleted(&mut self, namespace: &str) {
        self.envs.remove(namespace);
    }

    /// The environment watch restarted: its complete list.
    pub(crate) fn envs_reset(&mut self, envs: impl IntoIterator<Item = (String, Option<String>, bool)>) {
        self.envs.clear();
        for (ns, project, terminating) in envs {
            self.env_applied(&ns, project.as_deref(), terminating);
        }
    }

    /// A source object was created or changed; `project`: its label value.
    pub(crate) fn source_applied(&mut self, kind: SourceKind, namespace: &str, name: &str, project: Option<&str>) {
        let key = (kind, namespace.to_string(), name.to_string());
        // Its data may have changed: the project it belongs to is dirty, and
        // the one it left (a relabelled source) too.
        let old = match project_of(project) {
            Some(p) => {
                self.dirty.insert(p.clone());
                self.sources.insert(key, p)
            }
            None => self.sources.remove(&key),
        };
        if let Some(old) = old {
            self.dirty.insert(old);
        }
    }

    pub(crate) fn source_deleted(&mut self, kind: SourceKind, namespace: &str, name: &str) {
        if let Some(old) = self.sources.remove(&(kind, namespace.to_string(), name.to_string())) {
            self.dirty.insert(old);
        }
    }

    /// A source watch (one kind, one namespace) restarted: its complete list.
    pub(crate) fn sources_reset(
        &mut self,
        kind: SourceKind,
        namespace: &str,
        list: impl IntoIterator<Item = (String, Option<String>)>,
    ) {
        let gone: Vec<_> = self.sources.keys().filter(|(k, ns, _)| *k == kind && ns == namespace).cloned().collect();
        for key in gone {
            if let Some(p) = self.sources.remove(&key) {
                self.dirty.insert(p);
            }
        }
        for (name, project) in list {
            self.source_applied(kind, namespace, &name, project.as_deref());
        }
    }

    /// The mirrors that exist, as listed from the cluster (a full resync).
    pub(crate) fn mirrors_reset(&mut self, list: impl IntoIterator<Item = (String, SourceKind, Option<String>)>) {
        self.mirrors = list.into_iter().map(|(ns, kind, hash)| ((ns, kind), hash)).collect();
    }

    /// Every project with an environment or a source.
    pub(crate) fn mark_all_dirty(&mut self) {
        let all: Vec<String> = self.envs.values().flatten().chain(self.sources.values()).cloned().collect();
        self.dirty.extend(all);
    }

    pub(crate) fn mark_dirty(&mut self, project: &str) {
        self.dirty.insert(project.to_string());
    }

    pub(crate) fn take_dirty(&mut self) -> Vec<String> {
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// The environments of `project` that get its mirror.
    pub(crate) fn targets(&self, project: &str) -> Vec<String> {
        self.envs
            .iter()
            .filter(|(ns, p)| p.as_deref() == Some(project) && !self.excluded.contains(*ns))
            .map(|(ns, _)| ns.clone())
            .collect()
    }

    /// What brings `project`'s environments in step. `desired`: per kind, the
    /// digest of the merged data, `None` when the project has no data of
    /// that kind (then its mirror is deleted rather than left empty).
    pub(crate) fn plan(&self, project: &str, desired: &[(SourceKind, Option<String>)]) -> Vec<Action> {
        let mut actions = Vec::new();
        for namespace in self.targets(project) {
            for (kind, hash) in desired {
                let current = self.mirrors.get(&(namespace.clone(), *kind));
                match hash {
                    None if current.is_some() => actions.push(Action::Delete { namespace: namespace.clone(), kind: *kind }),
                    None => {}
                    Some(h) if current.is_some_and(|c| c.as_ref() == Some(h)) => {}
                    Some(h) => actions.push(Action::Apply { namespace: namespace.clone(), kind: *kind, hash: h.clone() }),
                }
            }
        }
        actions
    }

    /// Mirrors in namespaces that are no longer environments of a project:
    /// the namespace left its project, or stopped being an environment.
    pub(crate) fn orphans(&self) -> Vec<Action> {
        self.mirrors
            .keys()
            .filter(|(ns, _)| self.excluded.contains(ns) || !self.envs.get(ns).is_some_and(|p| p.is_some()))
            .map(|(ns, kind)| Action::Delete { namespace: ns.clone(), kind: *kind })
            .collect()
    }

    /// An action succeeded (or found its namespace gone).
    pub(crate) fn done(&mut self, action: &Action) {
        match action {
            Action::Apply { namespace, kind, hash } => {
                self.mirrors.insert((namespace.clone(), *kind), Some(hash.clone()));
            }
            Action::Delete { namespace, kind } => {
                self.mirrors.remove(&(namespace.clone(), *kind));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SourceKind::{ConfigMap, Secret};

    fn src(ns: &str, name: &str, kv: &[(&str, &str)]) -> Source<String> {
        Source { namespace: ns.into(), name: name.into(), data: kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn merge_is_by_namespace_order_then_name_and_the_later_wins() {
        let order = vec!["vars".to_string(), "more".to_string()];
        let m = merge(
            vec![
                src("more", "a-extra", &[("REGION", "eu-2")]),
                src("vars", "z-last", &[("DB_HOST", "z")]),
                src("vars", "a-first", &[("DB_HOST", "a"), ("PORT", "5432")]),
            ],
            &order,
        );
        assert_eq!(m.data["DB_HOST"], "z");
        assert_eq!(m.data["PORT"], "5432");
        assert_eq!(m.data["REGION"], "eu-2");
        assert_eq!(m.origin["DB_HOST"], "vars/z-last");
        assert_eq!(m.origin["REGION"], "more/a-extra");
        assert_eq!(
            m.shadowed,
            vec![Shadowed { key: "DB_HOST".into(), winner: "vars/z-last".into(), loser: "vars/a-first".into() }]
        );
        // Same result whatever order the sources arrive in.
        let again = merge(
            vec![
                src("vars", "a-first", &[("DB_HOST", "a"), ("PORT", "5432")]),
                src("more", "a-extra", &[("REGION", "eu-2")]),
                src("vars", "z-last", &[("DB_HOST", "z")]),
            ],
            &order,
        );
        assert_eq!(again, m);
    }

    #[test]
    fn a_later_namespace_wins_over_an_earlier_one_whatever_the_names() {
        let order = vec!["first".to_string(), "second".to_string()];
        let m = merge(vec![src("second", "a", &[("K", "2")]), src("first", "z", &[("K", "1")])], &order);
        assert_eq!(m.data["K"], "2");
    }

    #[test]
    fn hash_changes_with_value_origin_and_project_only() {
        let order = vec!["vars".to_string()];
        let base = merge(vec![src("vars", "a", &[("K", "1")])], &order);
        let h = mirror_hash("p", Secret, &base);
        assert_eq!(h, mirror_hash("p", Secret, &base.clone()));
        assert_eq!(h.len(), 32);
        assert_ne!(h, mirror_hash("q", Secret, &base));
        assert_ne!(h, mirror_hash("p", ConfigMap, &base));
        assert_ne!(h, mirror_hash("p", Secret, &merge(vec![src("vars", "a", &[("K", "2")])], &order)));
        assert_ne!(h, mirror_hash("p", Secret, &merge(vec![src("vars", "b", &[("K", "1")])], &order)));
        // Length-prefixed: moving a byte from key to value is a change.
        let a = merge(vec![src("vars", "a", &[("KA", "B")])], &order);
        let b = merge(vec![src("vars", "a", &[("K", "AB")])], &order);
        assert_ne!(mirror_hash("p", Secret, &a), mirror_hash("p", Secret, &b));
    }

    fn world() -> World {
        let mut w = World::new(["lifecycle-jobs-system".to_string()]);
        w.envs_reset([
            ("shop-1".into(), Some("shop".into()), false),
            ("shop-2".into(), Some("shop".into()), false),
            ("blog-1".into(), Some("blog".into()), false),
            ("loose".into(), None, false),
            ("default".into(), Some("shop".into()), false),
        ]);
        w.take_dirty();
        w
    }

    #[test]
    fn targets_are_the_projects_environments_never_a_system_namespace() {
        let w = world();
        assert_eq!(w.targets("shop"), ["shop-1", "shop-2"]);
        assert_eq!(w.targets("blog"), ["blog-1"]);
        assert!(w.targets("none").is_empty());
    }

    #[test]
    fn plan_applies_what_differs_and_deletes_a_kind_with_no_data() {
        let mut w = world();
        w.mirrors_reset([
            ("shop-1".into(), ConfigMap, Some("h1".into())),
            ("shop-1".into(), Secret, Some("old".into())),
            ("shop-2".into(), Secret, None),
        ]);
        let actions = w.plan("shop", &[(ConfigMap, Some("h1".into())), (Secret, Some("h2".into()))]);
        assert_eq!(
            actions,
            vec![
                Action::Apply { namespace: "shop-1".into(), kind: Secret, hash: "h2".into() },
                Action::Apply { namespace: "shop-2".into(), kind: ConfigMap, hash: "h1".into() },
                Action::Apply { namespace: "shop-2".into(), kind: Secret, hash: "h2".into() },
            ]
        );
        for a in &actions {
            w.done(a);
        }
        assert!(w.plan("shop", &[(ConfigMap, Some("h1".into())), (Secret, Some("h2".into()))]).is_empty(), "in step");
        let deletes = w.plan("shop", &[(ConfigMap, Some("h1".into())), (Secret, None)]);
        assert_eq!(
            deletes,
            vec![
                Action::Delete { namespace: "shop-1".into(), kind: Secret },
                Action::Delete { namespace: "shop-2".into(), kind: Secret },
            ]
        );
    }

    #[test]
    fn a_namespace_leaving_its_project_or_the_environments_loses_its_mirror() {
        let mut w = world();
        w.mirrors_reset([
            ("shop-1".into(), ConfigMap, Some("h".into())),
            ("shop-2".into(), Secret, Some("h".into())),
            ("blog-1".into(), Secret, Some("h".into())),
        ]);
        assert!(w.orphans().is_empty());
        w.env_applied("shop-1", None, false);
        w.env_deleted("shop-2");
        w.env_applied("blog-1", Some("blog"), true);
        let orphans = w.orphans();
        assert_eq!(
            orphans,
            vec![
                Action::Delete { namespace: "blog-1".into(), kind: Secret },
                Action::Delete { namespace: "shop-1".into(), kind: ConfigMap },
                Action::Delete { namespace: "shop-2".into(), kind: Secret },
            ]
        );
        for a in &orphans {
            w.done(a);
        }
        assert!(w.orphans().is_empty());
    }

    #[test]
    fn a_mirror_in_an_excluded_namespace_is_removed() {
        let mut w = world();
        w.mirrors_reset([("default".into(), Secret, Some("h".into()))]);
        assert_eq!(w.orphans(), vec![Action::Delete { namespace: "default".into(), kind: Secret }]);
    }

    #[test]
    fn a_namespace_moving_to_another_project_gets_that_projects_data() {
        let mut w = world();
        w.mirrors_reset([("shop-1".into(), Secret, Some("shop-hash".into()))]);
        w.env_applied("shop-1", Some("blog"), false);
        assert_eq!(w.take_dirty(), ["blog"]);
        assert!(w.orphans().is_empty(), "the new project's plan overwrites it");
        assert_eq!(
            w.plan("blog", &[(ConfigMap, None), (Secret, Some("blog-hash".into()))]),
            vec![
                Action::Apply { namespace: "blog-1".into(), kind: Secret, hash: "blog-hash".into() },
                Action::Apply { namespace: "shop-1".into(), kind: Secret, hash: "blog-hash".into() },
            ]
        );
    }

    #[test]
    fn source_changes_mark_their_projects_dirty() {
        let mut w = world();
        w.source_applied(Secret, "vars", "db", Some("shop"));
        assert_eq!(w.take_dirty(), ["shop"]);
        w.source_applied(Secret, "vars", "db", Some("blog"));
        assert_eq!(w.take_dirty(), ["blog", "shop"], "the project it left too");
        w.source_deleted(Secret, "vars", "db");
        assert_eq!(w.take_dirty(), ["blog"]);
        w.source_deleted(Secret, "vars", "db");
        assert!(w.take_dirty().is_empty());
        w.sources_reset(ConfigMap, "vars", [("a".into(), Some("shop".into())), ("b".into(), Some(String::new()))]);
        assert_eq!(w.take_dirty(), ["shop"]);
        w.sources_reset(ConfigMap, "vars", []);
        assert_eq!(w.take_dirty(), ["shop"], "a source gone during a watch restart");
        w.mark_all_dirty();
        assert_eq!(w.take_dirty(), ["blog", "shop"]);
    }
}
