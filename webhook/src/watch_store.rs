//! A store fed by a watch, for the indexes admission reads without calling the
//! API server: built afresh on each (re)list and swapped in whole when the list
//! is complete, so a reader never sees a half-listed store; then kept by the
//! watch's changes. `ready` turns true after the first complete list.

use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// Runs the watch in the background; `apply` takes an object in, `delete` lets it go.
pub fn spawn<K, S>(
    api: Api<K>,
    config: watcher::Config,
    store: Arc<RwLock<S>>,
    ready: watch::Sender<bool>,
    what: &'static str,
    apply: fn(&mut S, &K),
    delete: fn(&mut S, &K),
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    S: Default + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut fresh: Option<S> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::Init) => fresh = Some(S::default()),
                Ok(Event::InitApply(o)) => {
                    if let Some(f) = fresh.as_mut() {
                        apply(f, &o);
                    }
                }
                Ok(Event::InitDone) => {
                    if let Some(f) = fresh.take() {
                        *store.write().expect("index lock") = f;
                    }
                    let _ = ready.send(true);
                }
                Ok(Event::Apply(o)) => apply(&mut store.write().expect("index lock"), &o),
                Ok(Event::Delete(o)) => delete(&mut store.write().expect("index lock"), &o),
                Err(e) => tracing::warn!(error = %e, "{what} watch error; retrying with backoff"),
            }
        }
    });
}
