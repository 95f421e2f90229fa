//! One watch of a kind, shared by every reader in the process, in the manner
//! of linkerd2's policy-controller `index_list`: the watch feeds, from the same
//! events, an [`Observer`] (an index admission reads), kube-runtime's reflector
//! [`Store`] (which controllers read) and a fan-out of the changes to every
//! reader that follows them ([`SharedWatch::changes`]).
//!
//! A reader that falls behind the fan-out's buffer is not stalled and does not
//! stall the watch: it is handed every stored object again (a resync), which a
//! controller's reconcile takes as any other wake-up. With no reader (no
//! controller on this replica) nothing is sent and nothing is kept but the
//! store.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

/// Changes buffered for a reader before it is resynced instead.
pub(crate) const CHANGES_BUFFER: usize = 256;

/// What the fan-out carries: an object that changed, one that went, or a
/// relist (which may have missed changes: a reader takes every object again).
#[derive(Clone)]
enum Change<K> {
    Applied(Arc<K>),
    Deleted(Arc<K>),
    Relisted,
}

/// An index kept from a watch's events, beside the store.
pub(crate) trait Observer<K>: Send + 'static {
    fn observe(&mut self, event: &Event<K>);
}

/// The readers' handle on one watch; cheap to clone.
pub(crate) struct SharedWatch<K: kube::Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    changes: broadcast::Sender<Change<K>>,
}

impl<K: kube::Resource + 'static> Clone for SharedWatch<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        SharedWatch { store: self.store.clone(), changes: self.changes.clone() }
    }
}

impl<K> SharedWatch<K>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    /// The watch's handle and the watch itself (for the server's supervisor).
    /// `slim` keeps of each object only what the readers use, so what is kept
    /// is bounded whatever a tenant writes; `observer` is fed every event.
    pub(crate) fn start(
        api: Api<K>,
        config: watcher::Config,
        slim: fn(&mut K),
        observer: impl Observer<K>,
        what: &'static str,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let events = watcher::watcher(api, config).default_backoff().modify(slim);
        Self::from_events(events, observer, what)
    }

    /// As [`SharedWatch::start`], from any stream of watch events (tests).
    pub(crate) fn from_events(
        events: impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
        observer: impl Observer<K>,
        what: &'static str,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (store, writer) = reflector::store();
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        let watch = SharedWatch { store, changes };
        (watch.clone(), run(events, writer, observer, watch, what))
    }

    /// The stored objects, for a controller's reads.
    pub(crate) fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// The objects that change from now on (a deleted one as last seen).
    pub(crate) fn changes(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        follow(self.changes.subscribe(), self.store.clone(), Vec::new())
    }

    /// Every stored object, then the ones that change.
    pub(crate) fn current_and_changes(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        // Subscribed before the snapshot: a change in between is seen twice, never missed.
        let rx = self.changes.subscribe();
        follow(rx, self.store.clone(), self.store.state())
    }

    /// The watch as a reader of its own would see it, in kube's watcher
    /// protocol: a list (`Init`, `InitApply` of every stored object,
    /// `InitDone`) once the store is ready, then `Apply` and `Delete`; a relist
    /// of the shared watch, or a reader that fell behind, is handed a whole
    /// list again. For readers that keep their own view (project variables).
    pub(crate) fn events(&self) -> impl Stream<Item = Event<Arc<K>>> + Send + 'static {
        let (changes, store) = (self.changes.clone(), self.store.clone());
        let list = futures::stream::once(async move {
            let _ = store.wait_until_ready().await;
            // Subscribed before the list is taken: a change in between is seen
            // twice, never missed.
            let rx = changes.subscribe();
            (listed(&store), (rx, store))
        });
        list.flat_map(|(first, (rx, store))| {
            let rest = futures::stream::unfold((rx, store), |(mut rx, store)| async move {
                let events = match rx.recv().await {
                    Ok(Change::Applied(o)) => vec![Event::Apply(o)],
                    Ok(Change::Deleted(o)) => vec![Event::Delete(o)],
                    Ok(Change::Relisted) | Err(broadcast::error::RecvError::Lagged(_)) => listed(&store),
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                Some((futures::stream::iter(events), (rx, store)))
            });
            futures::stream::iter(first).chain(rest.flatten())
        })
    }
}

/// The store as a list in the watcher protocol.
fn listed<K>(store: &Store<K>) -> Vec<Event<Arc<K>>>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let mut events = vec![Event::Init];
    events.extend(store.state().into_iter().map(Event::InitApply));
    events.push(Event::InitDone);
    events
}

/// A reader's stream: its backlog, then the changes; when it fell behind, the
/// whole store again.
fn follow<K>(
    rx: broadcast::Receiver<Change<K>>,
    store: Store<K>,
    backlog: Vec<Arc<K>>,
) -> impl Stream<Item = Arc<K>> + Send + 'static
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    futures::stream::unfold((rx, store, backlog), |(mut rx, store, mut backlog)| async move {
        loop {
            if let Some(object) = backlog.pop() {
                return Some((object, (rx, store, backlog)));
            }
            match rx.recv().await {
                Ok(Change::Applied(object) | Change::Deleted(object)) => return Some((object, (rx, store, backlog))),
                // A relist may have missed changes: every object again.
                Ok(Change::Relisted) => backlog = store.state(),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, kind = %K::kind(&Default::default()), "a watch reader fell behind; resyncing it from the store");
                    backlog = store.state();
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// Feeds the observer, the store and the readers from the watch's events.
async fn run<K>(
    events: impl Stream<Item = watcher::Result<Event<K>>> + Send,
    mut writer: reflector::store::Writer<K>,
    mut observer: impl Observer<K>,
    watch: SharedWatch<K>,
    what: &'static str,
) where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let mut events = std::pin::pin!(events);
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "{what} watch error; retrying with backoff");
                continue;
            }
        };
        observer.observe(&ev);
        writer.apply_watcher_event(&ev);
        // No reader yet (no controller running on this replica): nothing is sent, nothing kept.
        if watch.changes.receiver_count() == 0 {
            continue;
        }
        match &ev {
            Event::Apply(object) => {
                if let Some(stored) = watch.store.get(&ObjectRef::from_obj(object)) {
                    let _ = watch.changes.send(Change::Applied(stored));
                }
            }
            Event::Delete(object) => {
                let _ = watch.changes.send(Change::Deleted(Arc::new(object.clone())));
            }
            Event::InitDone => {
                let _ = watch.changes.send(Change::Relisted);
            }
            Event::Init | Event::InitApply(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watches::namespaces::NsMeta;
    use kube::ResourceExt;

    struct Nothing;
    impl Observer<NsMeta> for Nothing {
        fn observe(&mut self, _: &Event<NsMeta>) {}
    }

    fn ns(name: &str) -> NsMeta {
        serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})).unwrap()
    }

    fn names(events: &[Event<Arc<NsMeta>>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Init => "init".to_string(),
                Event::InitApply(o) => format!("list {}", o.name_any()),
                Event::InitDone => "done".to_string(),
                Event::Apply(o) => format!("apply {}", o.name_any()),
                Event::Delete(o) => format!("delete {}", o.name_any()),
            })
            .collect()
    }

    #[tokio::test]
    async fn a_reader_of_events_sees_a_list_then_the_changes_and_a_list_again_on_a_relist() {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        let (watch, driving) = SharedWatch::from_events(rx, Nothing, "namespace");
        let driver = tokio::spawn(driving);
        for ev in [Event::Init, Event::InitApply(ns("a")), Event::InitDone] {
            tx.unbounded_send(Ok(ev)).unwrap();
        }
        watch.store().wait_until_ready().await.unwrap();
        let mut events = Box::pin(watch.events());
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(events.next().await.unwrap());
        }
        assert_eq!(names(&got), ["init", "list a", "done"]);
        tx.unbounded_send(Ok(Event::Apply(ns("b")))).unwrap();
        tx.unbounded_send(Ok(Event::Delete(ns("a")))).unwrap();
        // The shared watch relists: the reader is handed the whole list again.
        for ev in [Event::Init, Event::InitApply(ns("b")), Event::InitApply(ns("c")), Event::InitDone] {
            tx.unbounded_send(Ok(ev)).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(events.next().await.unwrap());
        }
        let mut relisted = names(&got[3..5]);
        relisted.sort();
        assert_eq!(names(&got[..3]), ["apply b", "delete a", "init"]);
        assert_eq!(relisted, ["list b", "list c"]);
        assert_eq!(names(&got[5..]), ["done"]);
        drop(tx);
        driver.await.unwrap();
    }
}
