//! A store fed by a watch, for the indexes admission reads without calling the
//! API server: built afresh on each (re)list and swapped in whole when the list
//! is complete, so a reader never sees a half-listed store; then kept by the
//! watch's changes. `ready` turns true after the first complete list.
//!
//! [`Feed`] is that bookkeeping; the shared watches ([`crate::watches::shared`])
//! feed it alongside their other readers.

use std::sync::{Arc, RwLock};

use kube::runtime::watcher::Event;
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

impl<K: Send + Sync + 'static, S: Default + Send + Sync + 'static> crate::watches::shared::Observer<K> for Feed<K, S> {
    fn observe(&mut self, event: &Event<K>) {
        Feed::observe(self, event);
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
