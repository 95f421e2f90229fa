//! A store fed by a watch, for the indexes admission reads without calling the
//! API server: built afresh on each (re)list and swapped in whole when the list
//! is complete, so a reader never sees a half-listed store; then kept by the
//! watch's changes. `ready` turns true after the first complete list.
//!
//! [`Feed`] is the bookkeeping alone (the one Job watch, [`crate::watches::jobs`],
//! feeds the job index with it alongside its other readers); [`run`] is a
//! watch that feeds one store.

use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// Keeps a store `S` from the events of a watch of `K`.
pub(crate) struct Feed<K, S> {
    store: Arc<RwLock<S>>,
    ready: watch::Sender<bool>,
    /// The store being built by a (re)list, swapped in when it is complete.
    fresh: Option<S>,
    apply: fn(&mut S, &K),
    delete: fn(&mut S, &K),
}

impl<K, S: Default> Feed<K, S> {
    /// `apply` takes an object in, `delete` lets it go.
    pub(crate) fn new(store: Arc<RwLock<S>>, ready: watch::Sender<bool>, apply: fn(&mut S, &K), delete: fn(&mut S, &K)) -> Self {
        Feed { store, ready, fresh: None, apply, delete }
    }

    pub(crate) fn observe(&mut self, event: &Event<K>) {
        match event {
            Event::Init => self.fresh = Some(S::default()),
            Event::InitApply(o) => {
                if let Some(f) = self.fresh.as_mut() {
                    (self.apply)(f, o);
                }
            }
            Event::InitDone => {
                if let Some(f) = self.fresh.take() {
                    *self.store.write().expect("index lock") = f;
                }
                let _ = self.ready.send(true);
            }
            Event::Apply(o) => (self.apply)(&mut self.store.write().expect("index lock"), o),
            Event::Delete(o) => (self.delete)(&mut self.store.write().expect("index lock"), o),
        }
    }
}

/// The watch that feeds one store; runs until the process stops (the
/// watcher retries with backoff), under the server's supervisor.
pub(crate) async fn run<K, S>(api: Api<K>, config: watcher::Config, mut feed: Feed<K, S>, what: &'static str)
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    S: Default,
{
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(ev) => feed.observe(&ev),
            Err(e) => tracing::warn!(error = %e, "{what} watch error; retrying with backoff"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn add(s: &mut BTreeSet<u32>, k: &u32) {
        s.insert(*k);
    }
    fn remove(s: &mut BTreeSet<u32>, k: &u32) {
        s.remove(k);
    }

    #[test]
    fn a_relist_is_swapped_in_whole_once_complete() {
        let store = Arc::new(RwLock::new(BTreeSet::new()));
        let (tx, rx) = watch::channel(false);
        let mut feed = Feed::new(store.clone(), tx, add, remove);
        for ev in [Event::Init, Event::InitApply(1), Event::InitApply(2), Event::InitDone, Event::Apply(3), Event::Delete(1)] {
            feed.observe(&ev);
        }
        assert_eq!(*store.read().unwrap(), BTreeSet::from([2, 3]));
        assert!(*rx.borrow());
        feed.observe(&Event::Init);
        feed.observe(&Event::InitApply(7));
        assert_eq!(*store.read().unwrap(), BTreeSet::from([2, 3]), "readers see the old store until the list ends");
        feed.observe(&Event::InitDone);
        assert_eq!(*store.read().unwrap(), BTreeSet::from([7]));
    }
}
