//! A page's live region: the watches of what the page shows; on every event
//! (after a short quiet time, so that a burst makes one update) the region is
//! read and rendered again, and pushed to the page as a server-sent event
//! `main` when it changed. The page never polls.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::stream::{self, BoxStream};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};
use kube::{Api, Client, Resource};
use lifecycle_contract::names;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::read::{self, Page};
use super::{Shared, pages};

/// Only the metadata of what a page shows is watched: a change is all it needs to know.
type Meta<K> = PartialObjectMeta<K>;

/// How long a burst of watch events may last before the region is rendered again.
const QUIET: Duration = Duration::from_millis(150);

#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    page: String,
}

pub(crate) async fn stream(State(ui): State<Shared>, Query(q): Query<LiveQuery>) -> Response {
    let Some(page) = Page::parse(&q.page) else {
        return (StatusCode::BAD_REQUEST, "no such page").into_response();
    };
    let changes = changes(&ui.client, &page);
    let closing = ui.closing();
    let updates = stream::unfold((ui, page, changes, String::new()), |(ui, page, mut changes, last)| async move {
        loop {
            changes.next().await?;
            // A burst of events (a list, a transition's writes) makes one update.
            while let Ok(Some(_)) = tokio::time::timeout(QUIET, changes.next()).await {}
            let html = render(&ui, &page).await;
            if html != last {
                let event = SseEvent::default().event("main").data(&html);
                return Some((Ok::<_, Infallible>(event), (ui, page, changes, html)));
            }
        }
    });
    Sse::new(updates.take_until(closing)).keep_alive(KeepAlive::default()).into_response()
}

/// The region of `page`, as now.
pub(crate) async fn render(ui: &Shared, page: &Page) -> String {
    let markup = match page {
        Page::Environments(filters) => {
            read::environments(ui, filters).await.map(|(list, _)| pages::environments_live(&list, filters))
        }
        Page::Environment { ns } => read::environment(ui, ns).await.map(|v| pages::environment_live(&v)),
        Page::Job { ns, job, run } => read::job(ui, ns, job, run.as_deref()).await.map(|v| pages::job_live(&v)),
    };
    match markup {
        Ok(m) => m.into_string(),
        Err(e) => pages::live_error(&format!("{e:#}")).into_string(),
    }
}

/// Every change to what `page` shows, as a stream of ticks.
fn changes(client: &Client, page: &Page) -> BoxStream<'static, ()> {
    let mut watches: Vec<BoxStream<'static, ()>> = Vec::new();
    match page {
        Page::Environments(_) => {
            watches.push(ticks(
                Api::<Meta<Namespace>>::all(client.clone()),
                watcher::Config::default().labels(names::LABEL_ENVIRONMENT),
            ));
            watches.push(ticks(Api::<Meta<Job>>::all(client.clone()), watcher::Config::default()));
        }
        Page::Environment { ns } => {
            let this = watcher::Config::default().fields(&format!("metadata.name={ns}"));
            watches.push(ticks(Api::<Meta<Namespace>>::all(client.clone()), this));
            watches.push(ticks(Api::<Meta<Job>>::namespaced(client.clone(), ns), watcher::Config::default()));
            watches.push(ticks(Api::<Meta<Pod>>::namespaced(client.clone(), ns), watcher::Config::default()));
            watches.push(ticks(Api::<Meta<CoreEvent>>::namespaced(client.clone(), ns), watcher::Config::default()));
            watches.push(ticks(Api::<Meta<ConfigMap>>::namespaced(client.clone(), ns), watcher::Config::default()));
            watches.push(ticks(Api::<Meta<Secret>>::namespaced(client.clone(), ns), watcher::Config::default()));
        }
        Page::Job { ns, .. } => {
            watches.push(ticks(Api::<Meta<Job>>::namespaced(client.clone(), ns), watcher::Config::default()));
            let outputs = watcher::Config::default().fields(&format!("metadata.name={}", names::OUTPUTS_OBJECT));
            watches.push(ticks(Api::<Meta<ConfigMap>>::namespaced(client.clone(), ns), outputs.clone()));
            watches.push(ticks(Api::<Meta<Secret>>::namespaced(client.clone(), ns), outputs));
        }
    }
    // When every watch has ended (none allowed), the stream stays open and quiet: a stream
    // that ends makes the browser connect again, every few seconds.
    stream::select_all(watches).chain(stream::pending()).boxed()
}

/// A metadata watch as ticks; it ends when the person may not watch these
/// objects (what they cannot see does not change on their page).
fn ticks<K>(api: Api<Meta<K>>, config: watcher::Config) -> BoxStream<'static, ()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Clone + Eq + std::hash::Hash,
{
    watcher(api, config)
        .default_backoff()
        .take_while(|r| std::future::ready(!r.as_ref().is_err_and(forbidden)))
        .map(|_| ())
        .boxed()
}

fn forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            crate::client::status_code(e).is_some_and(|c| c == 401 || c == 403)
        }
        watcher::Error::WatchError(s) => s.code == 401 || s.code == 403,
        watcher::Error::NoResourceVersion => false,
    }
}
