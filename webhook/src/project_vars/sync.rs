//! Kubernetes glue of the project variables mirror: watches, lists, applies
//! and deletes. The decisions are in [`super::plan`].
//!
//! Watches (metadata only, label-selected, so memory holds names, not data):
//! - Namespaces labelled `lifecycle-jobs.dev/environment` (their `project`
//!   label, and the facts of their built-in variables, [`super::builtins`]),
//!   from the server's one Namespace watch ([`crate::watches::namespaces`]);
//! - in each source namespace, ConfigMaps and Secrets labelled
//!   `lifecycle-jobs.dev/project-variables`.
//!
//! The mirrors themselves are listed (metadata, selected by name and by the
//! managed-by label) at start and every [`RESYNC`]: a restarted leader learns
//! what exists and rewrites only what differs (digest annotation), and a
//! mirror deleted by hand comes back within one resync. So are the
//! `lifecycle-builtins` ConfigMaps, data included (a few short values): one
//! edited or deleted by hand is put back within one resync.
//!
//! A project's data is read (a label-selected list) only while it is being
//! reconciled, one project at a time, and never logged: logs name projects,
//! namespaces, objects and keys, never a value.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use base64::Engine;
use futures::stream::{BoxStream, select_all};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use lifecycle_contract::builtins::EnvironmentFacts;
use lifecycle_contract::names::{
    ANNOTATION_MIRROR_HASH, ANNOTATION_VARIABLE_SOURCES, BUILTINS_FIELD_MANAGER, BUILTINS_OBJECT, LABEL_PROJECT,
    LABEL_PROJECT_VARIABLES, PROJECT_OBJECT, PROJECT_VARIABLES_FIELD_MANAGER, SourceKind,
};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until, timeout};

use super::builtins::{Builtins, BuiltinsAction, Data};
use super::plan::{Action, Merged, Source, World, merge, mirror_hash};
use crate::outputs::error::short;
use crate::outputs::store::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::runtime::kube_client::{list_all, list_all_metadata};
use crate::watches::namespaces::{NamespaceWatch, NsMeta};

/// Full resync: list the mirrors again and reconcile every project.
pub(crate) const RESYNC: Duration = Duration::from_secs(300);
/// Changes arriving together are handled together.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Longest a burst of changes delays the reconcile.
const DEBOUNCE_MAX: Duration = Duration::from_secs(2);
/// A failed write is tried again after this.
const RETRY: Duration = Duration::from_secs(5);
/// Largest `variable-sources` annotation written (the API allows 256 KiB for
/// all annotations together); over it the annotation is left out.
const MAX_SOURCES_ANNOTATION: usize = 32 * 1024;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{doing}: {}", short(.source))]
    Kube {
        doing: String,
        #[source]
        source: kube::Error,
    },
}

fn kube_err(doing: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let doing = doing.into();
    move |source| Error::Kube { doing, source }
}

/// A watch event reduced to what the mirror needs: a name and a label value
/// (and, for namespaces, whether it is terminating and its built-in facts).
#[derive(Debug)]
struct Seen {
    name: String,
    label: Option<String>,
    terminating: bool,
    facts: Option<EnvironmentFacts>,
}

enum Input {
    Env(Event<Seen>),
    Source(SourceKind, String, Event<Seen>),
    WatchError(&'static str, watcher::Error),
}

fn seen<K: kube::Resource>(obj: &PartialObjectMeta<K>, label: &str) -> Seen {
    Seen {
        name: obj.name_any(),
        label: obj.labels().get(label).cloned(),
        terminating: obj.metadata.deletion_timestamp.is_some(),
        facts: None,
    }
}

fn seen_env(obj: &NsMeta) -> Seen {
    let facts = EnvironmentFacts::read(&obj.metadata);
    Seen { facts, ..seen(obj, LABEL_PROJECT) }
}

fn map_event<K, T>(e: Event<K>, f: impl Fn(K) -> T) -> Event<T> {
    match e {
        Event::Apply(k) => Event::Apply(f(k)),
        Event::Delete(k) => Event::Delete(f(k)),
        Event::Init => Event::Init,
        Event::InitApply(k) => Event::InitApply(f(k)),
        Event::InitDone => Event::InitDone,
    }
}

fn source_stream<K>(client: &Client, kind: SourceKind, namespace: &str) -> BoxStream<'static, Input>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let api: Api<PartialObjectMeta<K>> = Api::namespaced(client.clone(), namespace);
    let ns = namespace.to_string();
    watcher::watcher(api, crate::runtime::kube_client::watch_config().labels(LABEL_PROJECT_VARIABLES))
        .default_backoff()
        .map(move |r| match r {
            Ok(e) => Input::Source(kind, ns.clone(), map_event(e, |o| seen(&o, LABEL_PROJECT_VARIABLES))),
            Err(e) => Input::WatchError("project variables sources", e),
        })
        .boxed()
}

fn inputs(client: &Client, namespaces: &NamespaceWatch, sources: &[String]) -> impl Stream<Item = Input> + use<> {
    let mut streams: Vec<BoxStream<'static, Input>> =
        vec![namespaces.events().map(|e| Input::Env(map_event(e, |ns| seen_env(&ns)))).boxed()];
    for ns in sources {
        streams.push(source_stream::<ConfigMap>(client, SourceKind::ConfigMap, ns));
        streams.push(source_stream::<Secret>(client, SourceKind::Secret, ns));
    }
    select_all(streams)
}

/// One source watch: a kind in a source namespace.
type SourceWatch = (SourceKind, String);

/// The mirror's state between events.
struct Mirror {
    client: Client,
    /// Source namespaces, in merge order.
    sources: Vec<String>,
    world: World,
    /// The built-in variables of every environment.
    builtins: Builtins,
    /// Watch restarts in progress: the complete lists being gathered.
    pending_envs: Option<Vec<Seen>>,
    pending_sources: HashMap<SourceWatch, Vec<(String, Option<String>)>>,
    /// Nothing is written before every watch has listed once and the mirrors
    /// have been listed: an incomplete picture would delete good mirrors.
    envs_ready: bool,
    sources_ready: HashSet<SourceWatch>,
    mirrors_ready: bool,
    /// The same for the built-ins: written once the environments and the
    /// existing ConfigMaps are known (they wait for no variables source).
    builtins_listed: bool,
}

/// Runs the mirror until the future is dropped (the leader lost its lease).
pub(crate) async fn run(client: Client, namespaces: NamespaceWatch, sources: Vec<String>, server_namespace: String) {
    let mut excluded = sources.clone();
    excluded.push(server_namespace);
    let mut m = Mirror {
        client: client.clone(),
        sources: sources.clone(),
        world: World::new(excluded.clone()),
        builtins: Builtins::new(excluded),
        pending_envs: None,
        pending_sources: HashMap::new(),
        envs_ready: false,
        sources_ready: HashSet::new(),
        mirrors_ready: false,
        builtins_listed: false,
    };
    tracing::info!(sources = ?sources, "mirroring project variables");
    let mut inputs = std::pin::pin!(inputs(&client, &namespaces, &sources));
    let mut resync = tokio::time::interval(RESYNC);
    let mut retry_at: Option<Instant> = None;
    loop {
        tokio::select! {
            input = inputs.next() => match input {
                Some(i) => m.handle(i),
                None => return,
            },
            _ = resync.tick() => m.resync().await,
            _ = async { sleep_until(retry_at.unwrap_or_else(Instant::now)).await }, if retry_at.is_some() => {}
        }
        // Take in the rest of a burst before writing.
        let burst_end = Instant::now() + DEBOUNCE_MAX;
        while Instant::now() < burst_end {
            match timeout(DEBOUNCE, inputs.next()).await {
                Ok(Some(i)) => m.handle(i),
                Ok(None) => return,
                Err(_) => break,
            }
        }
        let mirrored = !m.ready() || m.reconcile().await;
        let built_in = !m.builtins_ready() || m.reconcile_builtins().await;
        retry_at = (!mirrored || !built_in).then(|| Instant::now() + RETRY);
    }
}

impl Mirror {
    fn ready(&self) -> bool {
        self.envs_ready && self.mirrors_ready && self.sources_ready.len() == 2 * self.sources.len()
    }

    fn builtins_ready(&self) -> bool {
        self.envs_ready && self.builtins_listed
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Env(e) => match e {
                Event::Init => self.pending_envs = Some(Vec::new()),
                Event::InitApply(s) => {
                    if let Some(p) = self.pending_envs.as_mut() {
                        p.push(s);
                    }
                }
                Event::InitDone => {
                    let list = self.pending_envs.take().unwrap_or_default();
                    self.builtins.envs_reset(list.iter().map(|s| (s.name.as_str(), s.facts.as_ref(), s.terminating)));
                    self.world.envs_reset(list.into_iter().map(|s| (s.name, s.label, s.terminating)));
                    self.envs_ready = true;
                }
                Event::Apply(s) => {
                    self.builtins.env_applied(&s.name, s.facts.as_ref(), s.terminating);
                    self.world.env_applied(&s.name, s.label.as_deref(), s.terminating)
                }
                Event::Delete(s) => {
                    self.builtins.env_deleted(&s.name);
                    self.world.env_deleted(&s.name)
                }
            },
            Input::Source(kind, ns, e) => match e {
                Event::Init => {
                    self.pending_sources.insert((kind, ns), Vec::new());
                }
                Event::InitApply(s) => {
                    if let Some(p) = self.pending_sources.get_mut(&(kind, ns)) {
                        p.push((s.name, s.label));
                    }
                }
                Event::InitDone => {
                    let list = self.pending_sources.remove(&(kind, ns.clone())).unwrap_or_default();
                    self.world.sources_reset(kind, &ns, list);
                    self.sources_ready.insert((kind, ns));
                }
                Event::Apply(s) => self.world.source_applied(kind, &ns, &s.name, s.label.as_deref()),
                Event::Delete(s) => self.world.source_deleted(kind, &ns, &s.name),
            },
            Input::WatchError(what, e) => {
                tracing::warn!(error = %e, "project variables: {what} watch error; retrying with backoff")
            }
        }
    }

    /// Lists the mirrors that exist (metadata only) and reconciles every project.
    async fn resync(&mut self) {
        match self.list_mirrors().await {
            Ok(list) => {
                self.world.mirrors_reset(list);
                self.world.mark_all_dirty();
                self.mirrors_ready = true;
            }
            Err(e) => tracing::warn!(error = %e, "project variables: listing the mirrors failed; retrying at the next resync"),
        }
        match self.list_builtins().await {
            Ok(list) => {
                self.builtins.objects_reset(list);
                self.builtins_listed = true;
            }
            Err(e) => tracing::warn!(error = %e, "built-in variables: listing them failed; retrying at the next resync"),
        }
    }

    /// The `lifecycle-builtins` ConfigMaps that exist, with their data,
    /// selected as the mirrors are (by name, then by our label).
    async fn list_builtins(&self) -> Result<Vec<(String, Data)>, Error> {
        let lp = ListParams::default()
            .fields(&format!("metadata.name={BUILTINS_OBJECT}"))
            .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let list = list_all(&Api::<ConfigMap>::all(self.client.clone()), &lp)
            .await
            .map_err(kube_err("listing the lifecycle-builtins ConfigMaps"))?;
        Ok(list.into_iter().map(|cm| (cm.namespace().unwrap_or_default(), cm.data.unwrap_or_default())).collect())
    }

    /// Writes the built-ins that differ and deletes those of former
    /// environments. False when something failed (it is tried again).
    async fn reconcile_builtins(&mut self) -> bool {
        let mut ok = true;
        for action in self.builtins.plan() {
            let result = match &action {
                BuiltinsAction::Apply { namespace, data } => self.apply_builtins(namespace, data).await.inspect(|()| {
                    tracing::info!(namespace = %namespace, keys = data.len(), "built-in variables written");
                }),
                BuiltinsAction::Delete { namespace } => self.delete_builtins(namespace).await.inspect(|()| {
                    tracing::info!(namespace = %namespace, "built-in variables removed: the namespace is no environment any more");
                }),
            };
            match result {
                Ok(()) => self.builtins.done(&action),
                Err(e) => {
                    tracing::warn!(error = %e, "built-in variables: writing failed; retrying");
                    ok = false;
                }
            }
        }
        ok
    }

    async fn apply_builtins(&self, namespace: &str, data: &Data) -> Result<(), Error> {
        let pp = PatchParams::apply(BUILTINS_FIELD_MANAGER).force();
        let body = crate::runtime::kube_client::apply_body(&super::builtins::apply_body(namespace, data));
        match Api::<ConfigMap>::namespaced(self.client.clone(), namespace).patch(BUILTINS_OBJECT, &pp, &Patch::Apply(&body)).await
        {
            Ok(_) => Ok(()),
            // The namespace went (or is going) meanwhile: its watch event follows.
            Err(kube::Error::Api(s))
                if s.code == 404 || (s.code == 403 && s.reason == "Forbidden" && s.message.contains("being terminated")) =>
            {
                Ok(())
            }
            Err(e) => Err(kube_err(format!("writing ConfigMap {namespace}/{BUILTINS_OBJECT}"))(e)),
        }
    }

    /// Deletes a former environment's built-ins; one already gone (or its namespace) is fine.
    async fn delete_builtins(&self, namespace: &str) -> Result<(), Error> {
        match Api::<ConfigMap>::namespaced(self.client.clone(), namespace).delete(BUILTINS_OBJECT, &DeleteParams::default()).await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(kube_err(format!("deleting ConfigMap {namespace}/{BUILTINS_OBJECT}"))(e)),
        }
    }

    async fn list_mirrors(&self) -> Result<Vec<(String, SourceKind, Option<String>)>, Error> {
        // Selected by name (what RBAC's resourceNames allows to list) and by
        // our label (a people-made object of that name is not ours to delete).
        let lp = ListParams::default()
            .fields(&format!("metadata.name={PROJECT_OBJECT}"))
            .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let mut out = Vec::new();
        let hash = |a: &BTreeMap<String, String>| a.get(ANNOTATION_MIRROR_HASH).cloned();
        let cms = list_all_metadata(&Api::<ConfigMap>::all(self.client.clone()), &lp)
            .await
            .map_err(kube_err("listing the lifecycle-project ConfigMaps"))?;
        for o in cms {
            out.push((o.namespace().unwrap_or_default(), SourceKind::ConfigMap, hash(o.annotations())));
        }
        let secrets = list_all_metadata(&Api::<Secret>::all(self.client.clone()), &lp)
            .await
            .map_err(kube_err("listing the lifecycle-project Secrets"))?;
        for o in secrets {
            out.push((o.namespace().unwrap_or_default(), SourceKind::Secret, hash(o.annotations())));
        }
        Ok(out)
    }

    /// Reconciles the dirty projects, then removes orphaned mirrors. False
    /// when something failed (it is tried again).
    async fn reconcile(&mut self) -> bool {
        let mut ok = true;
        for project in self.world.take_dirty() {
            if let Err(e) = self.reconcile_project(&project).await {
                tracing::warn!(project = %project, error = %e, "project variables: mirroring failed; retrying");
                self.world.mark_dirty(&project);
                ok = false;
            }
        }
        for action in self.world.orphans() {
            let Action::Delete { namespace, kind } = &action else { continue };
            match self.delete(namespace, *kind).await {
                Ok(()) => {
                    tracing::info!(namespace = %namespace, kind = ?kind, "project variables: removed the mirror of a namespace that left its project");
                    self.world.done(&action);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "project variables: removing a mirror failed; retrying");
                    ok = false;
                }
            }
        }
        ok
    }

    async fn reconcile_project(&mut self, project: &str) -> Result<(), Error> {
        if self.world.targets(project).is_empty() {
            return Ok(());
        }
        let (config_maps, secrets) = self.read_sources(project).await?;
        for (kind, shadowed) in [(SourceKind::ConfigMap, &config_maps.shadowed), (SourceKind::Secret, &secrets.shadowed)] {
            for s in shadowed {
                tracing::warn!(project = %project, kind = ?kind, key = %s.key, winner = %s.winner, ignored = %s.loser,
                    "project variables: two sources define the same key; the later one (namespace order, then name) wins");
            }
        }
        let desired = [
            (
                SourceKind::ConfigMap,
                (!config_maps.data.is_empty()).then(|| mirror_hash(project, SourceKind::ConfigMap, &config_maps)),
            ),
            (SourceKind::Secret, (!secrets.data.is_empty()).then(|| mirror_hash(project, SourceKind::Secret, &secrets))),
        ];
        let mut first_error = None;
        for action in self.world.plan(project, &desired) {
            let result = match &action {
                Action::Apply { namespace, kind, hash } => {
                    let body = match kind {
                        SourceKind::ConfigMap => apply_body(*kind, namespace, hash, &config_maps),
                        SourceKind::Secret => apply_body(*kind, namespace, hash, &secrets),
                    };
                    self.apply(namespace, *kind, &body).await.inspect(|()| {
                        let keys = if *kind == SourceKind::ConfigMap { config_maps.data.len() } else { secrets.data.len() };
                        tracing::info!(project = %project, namespace = %namespace, kind = ?kind, keys, "project variables mirrored");
                    })
                }
                Action::Delete { namespace, kind } => self.delete(namespace, *kind).await.inspect(|()| {
                    tracing::info!(project = %project, namespace = %namespace, kind = ?kind, "project variables: the project has none of this kind; mirror removed");
                }),
            };
            match result {
                Ok(()) => self.world.done(&action),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The project's labelled ConfigMaps and Secrets, merged.
    async fn read_sources(&self, project: &str) -> Result<(Merged<String>, Merged<Vec<u8>>), Error> {
        let lp = ListParams::default().labels(&format!("{LABEL_PROJECT_VARIABLES}={project}"));
        let mut cms = Vec::new();
        let mut secrets = Vec::new();
        for ns in &self.sources {
            let list = list_all(&Api::<ConfigMap>::namespaced(self.client.clone(), ns), &lp)
                .await
                .map_err(kube_err(format!("listing the ConfigMaps of project {project} in {ns}")))?;
            for cm in list {
                let name = cm.name_any();
                cms.push(Source { namespace: ns.clone(), name, data: cm.data.unwrap_or_default() });
            }
            let list = list_all(&Api::<Secret>::namespaced(self.client.clone(), ns), &lp)
                .await
                .map_err(kube_err(format!("listing the Secrets of project {project} in {ns}")))?;
            for s in list {
                let name = s.name_any();
                let data = s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                secrets.push(Source { namespace: ns.clone(), name, data });
            }
        }
        Ok((merge(cms, &self.sources), merge(secrets, &self.sources)))
    }

    async fn apply(&self, namespace: &str, kind: SourceKind, body: &Value) -> Result<(), Error> {
        let pp = PatchParams::apply(PROJECT_VARIABLES_FIELD_MANAGER).force();
        let doing = format!("writing {kind:?} {namespace}/{PROJECT_OBJECT}");
        let body = crate::runtime::kube_client::apply_body(body);
        let r = match kind {
            SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
                .patch(PROJECT_OBJECT, &pp, &Patch::Apply(&body))
                .await
                .map(drop),
            SourceKind::Secret => Api::<Secret>::namespaced(self.client.clone(), namespace)
                .patch(PROJECT_OBJECT, &pp, &Patch::Apply(&body))
                .await
                .map(drop),
        };
        r.map_err(kube_err(doing))
    }

    /// Deletes a mirror; one already gone (or its namespace) is fine.
    async fn delete(&self, namespace: &str, kind: SourceKind) -> Result<(), Error> {
        let dp = DeleteParams::default();
        let r = match kind {
            SourceKind::ConfigMap => {
                Api::<ConfigMap>::namespaced(self.client.clone(), namespace).delete(PROJECT_OBJECT, &dp).await.map(drop)
            }
            SourceKind::Secret => {
                Api::<Secret>::namespaced(self.client.clone(), namespace).delete(PROJECT_OBJECT, &dp).await.map(drop)
            }
        };
        match r {
            Ok(()) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(kube_err(format!("deleting {kind:?} {namespace}/{PROJECT_OBJECT}"))(e)),
        }
    }
}

/// Pure: the server-side apply body of one mirror. The whole data set is
/// applied each time, so a key no source defines any more disappears.
pub(crate) fn apply_body<V: AsRef<[u8]>>(kind: SourceKind, namespace: &str, hash: &str, merged: &Merged<V>) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert(ANNOTATION_MIRROR_HASH.into(), json!(hash));
    let origin = serde_json::to_string(&merged.origin).unwrap_or_default();
    if origin.len() <= MAX_SOURCES_ANNOTATION {
        annotations.insert(ANNOTATION_VARIABLE_SOURCES.into(), json!(origin));
    }
    let mut body = json!({
        "apiVersion": "v1",
        "kind": format!("{kind:?}"),
        "metadata": {
            "name": PROJECT_OBJECT,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY},
            "annotations": annotations,
        },
    });
    body["data"] = match kind {
        SourceKind::ConfigMap => {
            Value::Object(merged.data.iter().map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v.as_ref())))).collect())
        }
        SourceKind::Secret => {
            body["type"] = json!("Opaque");
            let b64 = base64::engine::general_purpose::STANDARD;
            Value::Object(merged.data.iter().map(|(k, v)| (k.clone(), json!(b64.encode(v.as_ref())))).collect())
        }
    };
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(kv: &[(&str, &str, &str)]) -> Merged<String> {
        Merged {
            data: kv.iter().map(|(k, v, _)| (k.to_string(), v.to_string())).collect(),
            origin: kv.iter().map(|(k, _, o)| (k.to_string(), o.to_string())).collect(),
            shadowed: vec![],
        }
    }

    #[test]
    fn secret_body_is_base64_with_sources_and_hash() {
        let m = merged(&[("DB_PASS", "hunter2", "lifecycle-jobs-system/db")]);
        let body = apply_body(SourceKind::Secret, "shop-1", "abc", &m);
        assert_eq!(body["kind"], "Secret");
        assert_eq!(body["type"], "Opaque");
        assert_eq!(body["metadata"]["name"], PROJECT_OBJECT);
        assert_eq!(body["metadata"]["namespace"], "shop-1");
        assert_eq!(body["data"]["DB_PASS"], "aHVudGVyMg==");
        assert_eq!(body["metadata"]["annotations"][ANNOTATION_MIRROR_HASH], "abc");
        let sources: BTreeMap<String, String> =
            serde_json::from_str(body["metadata"]["annotations"][ANNOTATION_VARIABLE_SOURCES].as_str().unwrap()).unwrap();
        assert_eq!(sources["DB_PASS"], "lifecycle-jobs-system/db");
        assert!(!body["metadata"].to_string().contains("hunter2"), "no value in metadata");
    }

    #[test]
    fn config_map_body_is_plain() {
        let m = merged(&[("REGION", "eu", "vars/settings")]);
        let body = apply_body(SourceKind::ConfigMap, "shop-1", "abc", &m);
        assert_eq!(body["kind"], "ConfigMap");
        assert_eq!(body["data"]["REGION"], "eu");
        assert!(body.get("type").is_none());
        assert_eq!(body["metadata"]["labels"][MANAGED_BY_LABEL], MANAGED_BY);
    }

    #[test]
    fn an_oversized_sources_annotation_is_left_out() {
        let keys: Vec<(String, String, String)> =
            (0..3000).map(|i| (format!("KEY_{i:05}"), "v".into(), "ns/some-object-name".into())).collect();
        let refs: Vec<(&str, &str, &str)> = keys.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
        let body = apply_body(SourceKind::ConfigMap, "ns", "h", &merged(&refs));
        assert!(body["metadata"]["annotations"].get(ANNOTATION_VARIABLE_SOURCES).is_none());
        assert_eq!(body["data"].as_object().unwrap().len(), 3000);
    }
}
