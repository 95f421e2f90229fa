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
    changes: broadcast::Sender<Arc<K>>,
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
}

/// A reader's stream: its backlog, then the changes; when it fell behind, the
/// whole store again.
fn follow<K>(
    rx: broadcast::Receiver<Arc<K>>,
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
                Ok(object) => return Some((object, (rx, store, backlog))),
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
                    let _ = watch.changes.send(stored);
                }
            }
            Event::Delete(object) => {
                let _ = watch.changes.send(Arc::new(object.clone()));
            }
            // A relist may have missed changes: every object again.
            Event::InitDone => {
                for object in watch.store.state() {
                    let _ = watch.changes.send(object);
                }
            }
            Event::Init | Event::InitApply(_) => {}
        }
    }
}
