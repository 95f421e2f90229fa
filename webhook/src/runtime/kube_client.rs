//! The one Kubernetes client of the server, with a read timeout on every
//! call, and the watch settings that go with it.
//!
//! A call the API server never answers (a hung connection, a stuck proxy)
//! fails after [`READ_TIMEOUT`] instead of holding its task forever. A watch
//! is a response that may legitimately stay silent, so every watch asks the
//! API server to end it after [`WATCH_TIMEOUT_SECS`], shorter than the read
//! timeout: a healthy watch ends and is resumed (from its resourceVersion)
//! before the read timeout could fire, a dead one is detected.

use std::time::Duration;

use std::fmt::Debug;

use anyhow::Context;
use kube::Api;
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

/// Longest wait for the next bytes of any API response.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest a watch request stays open (the API server ends it; the watcher resumes it).
pub(crate) const WATCH_TIMEOUT_SECS: u32 = 30;
/// Objects per page of an initial list: a few pages of small objects instead
/// of one response holding the whole cluster's.
pub(crate) const LIST_PAGE_SIZE: u32 = 50;

/// The client from the in-cluster configuration or KUBECONFIG, with [`READ_TIMEOUT`].
pub(crate) async fn client() -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::infer().await.context("reading the in-cluster configuration or KUBECONFIG")?;
    config.read_timeout = Some(READ_TIMEOUT);
    // Count from each request, not from when its pooled connection went idle.
    config.reset_reader_on_write = true;
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// Watch settings every watch of the server uses (see the module's doc).
pub(crate) fn watch_config() -> watcher::Config {
    watcher::Config::default().timeout(WATCH_TIMEOUT_SECS).page_size(LIST_PAGE_SIZE)
}

/// Every object a list selects, fetched in pages of [`LIST_PAGE_SIZE`]: the
/// API server never builds, and this replica never decodes, one response
/// holding a whole namespace's (or the cluster's) objects at once.
pub(crate) async fn list_all<K>(api: &Api<K>, lp: &ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    paged(lp, |lp| async move { api.list(&lp).await }).await
}

/// Hands every page of a list, `page_size` objects each, to `visit` in turn:
/// each page is dropped before the next is fetched ([`list_page`] says why),
/// so nothing but what `visit` keeps outlives its page.
pub(crate) async fn for_each_page<K>(
    api: &Api<K>,
    lp: &ListParams,
    page_size: u32,
    visit: impl FnMut(Vec<K>),
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    visit_pages(lp, page_size, |lp| async move { fetch_page(api, &lp).await }, visit).await
}

/// Objects per page of a list whose objects are read whole (a Deployment, a
/// Job with its spec): any object may be as large as the API server accepts
/// (about 1.5 MiB), and a page is held whole while it is decoded.
pub(crate) const FULL_OBJECT_PAGE_SIZE: u32 = 4;
/// Pages of whole objects being fetched and decoded at once, across every
/// reconcile of the replica: the memory they take is bounded by this times
/// [`FULL_OBJECT_PAGE_SIZE`] times the largest object, whatever the number of
/// environments reconciled concurrently.
const FULL_OBJECT_PAGES_AT_ONCE: usize = 2;
static FULL_OBJECT_PAGES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(FULL_OBJECT_PAGES_AT_ONCE);

/// One page of a list, from `continue_` (`None`: the first page), and the
/// token of the next one (`None`: that was the last). The caller handles a page
/// and drops it before asking for the next, so that nothing but what it keeps
/// of each object outlives its page. `K` is usually a slim type that decodes
/// only the fields its reader uses (serde skips the others without keeping them).
pub(crate) async fn list_page<K>(
    api: &Api<K>,
    lp: &ListParams,
    page_size: u32,
    continue_: Option<String>,
) -> Result<(Vec<K>, Option<String>), kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let mut lp = lp.clone().limit(page_size);
    lp.continue_token = continue_;
    let page = fetch_page(api, &lp).await?;
    let next = page.metadata.continue_.filter(|t| !t.is_empty());
    Ok((page.items, next))
}

/// The page `lp` selects; whole objects wait for one of the few slots
/// (metadata pages need none).
async fn fetch_page<K>(api: &Api<K>, lp: &ListParams) -> Result<kube::core::ObjectList<K>, kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let _slot =
        if !K::metadata_api() { Some(FULL_OBJECT_PAGES.acquire().await.expect("the semaphore is never closed")) } else { None };
    api.list(lp).await
}

/// One object read whole (a template, whose spec a run copies), under the
/// same bound as the pages of whole objects.
pub(crate) async fn get_whole<K>(api: &Api<K>, name: &str) -> Result<Option<K>, kube::Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let _slot = FULL_OBJECT_PAGES.acquire().await.expect("the semaphore is never closed");
    api.get_opt(name).await
}

/// The reference to an object of kind `K` an Event is about (or relates
/// to); an empty `uid` is left out (a run named before it exists).
pub(crate) fn object_ref<K: k8s_openapi::Resource>(
    namespace: &str,
    name: &str,
    uid: &str,
) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(K::API_VERSION.into()),
        kind: Some(K::KIND.into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        uid: (!uid.is_empty()).then(|| uid.into()),
        ..Default::default()
    }
}

/// [`list_all`], metadata only.
pub(crate) async fn list_all_metadata<K>(api: &Api<K>, lp: &ListParams) -> Result<Vec<PartialObjectMeta<K>>, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    paged(lp, |lp| async move { api.list_metadata(&lp).await }).await
}

/// The objects of one list, fetched in pages of [`LIST_PAGE_SIZE`].
async fn paged<T, Fut>(lp: &ListParams, fetch: impl FnMut(ListParams) -> Fut) -> Result<Vec<T>, kube::Error>
where
    T: Clone,
    Fut: std::future::Future<Output = Result<kube::core::ObjectList<T>, kube::Error>>,
{
    let mut out = Vec::new();
    visit_pages(lp, LIST_PAGE_SIZE, fetch, |page| out.extend(page)).await?;
    Ok(out)
}

/// The one paging loop: `fetch` gets each page's parameters (`lp` with
/// `page_size` and the continue token of the page before), `visit` each
/// page's objects, until a page comes without a continue token.
async fn visit_pages<T, Fut>(
    lp: &ListParams,
    page_size: u32,
    mut fetch: impl FnMut(ListParams) -> Fut,
    mut visit: impl FnMut(Vec<T>),
) -> Result<(), kube::Error>
where
    T: Clone,
    Fut: std::future::Future<Output = Result<kube::core::ObjectList<T>, kube::Error>>,
{
    let mut lp = lp.clone().limit(page_size);
    loop {
        let list = fetch(lp.clone()).await?;
        visit(list.items);
        match list.metadata.continue_ {
            Some(token) if !token.is_empty() => lp.continue_token = Some(token),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;

    #[test]
    fn watches_end_before_the_read_timeout() {
        const { assert!((WATCH_TIMEOUT_SECS as u64) + 10 <= READ_TIMEOUT.as_secs()) };
        let c = watch_config();
        assert_eq!(c.timeout, Some(WATCH_TIMEOUT_SECS));
        assert_eq!(c.page_size, Some(LIST_PAGE_SIZE));
    }

    /// Each page is asked for with the page size and the token of the one
    /// before, and visited in order; an empty token ends the list like none.
    #[tokio::test]
    async fn pages_are_visited_in_order_until_one_has_no_token() {
        for last in [None, Some(String::new())] {
            let tokens = [Some("a".to_string()), Some("b".to_string()), last];
            let (mut asked, mut seen) = (Vec::new(), Vec::new());
            let lp = ListParams::default().labels("x");
            let fetch = |lp: ListParams| {
                asked.push((lp.limit, lp.continue_token.clone(), lp.label_selector.clone()));
                let i = asked.len() - 1;
                let metadata = ListMeta { continue_: tokens[i].clone(), ..ListMeta::default() };
                std::future::ready(Ok(kube::core::ObjectList { types: Default::default(), metadata, items: vec![i] }))
            };
            visit_pages(&lp, 7, fetch, |page| seen.extend(page)).await.unwrap();
            assert_eq!(seen, [0, 1, 2]);
            let x = Some("x".to_string());
            assert_eq!(
                asked,
                [(Some(7), None, x.clone()), (Some(7), Some("a".into()), x.clone()), (Some(7), Some("b".into()), x)]
            );
        }
    }
}

/// Implements `kube::Resource` for a slim type that decodes only some fields
/// of the API's `$like` objects (serde skips the rest): lists and watches of
/// the slim type address `$like`'s endpoint. The type needs a `metadata:
/// ObjectMeta` field.
macro_rules! slim_resource {
    ($slim:ty, $like:ty) => {
        impl kube::Resource for $slim {
            type DynamicType = ();
            type Scope = <$like as k8s_openapi::Resource>::Scope;
            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                <$like as k8s_openapi::Resource>::KIND.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                <$like as k8s_openapi::Resource>::GROUP.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                <$like as k8s_openapi::Resource>::VERSION.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                <$like as k8s_openapi::Resource>::URL_PATH_SEGMENT.into()
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}
pub(crate) use slim_resource;

/// The body of a server-side apply: `value` as JSON text in which every
/// character YAML does not allow raw is written as a `\uXXXX` escape.
///
/// kube sends an apply patch as `application/apply-patch+yaml`, and the API
/// server reads it with a YAML parser, which refuses DEL, the C1 controls
/// (but NEL) and U+FFFE/U+FFFF ("control characters are not allowed");
/// serde_json escapes only the C0 controls. A value people may write (an
/// output, a project variable) with one of those characters would otherwise
/// never be stored. Outside strings JSON text is ASCII, so an escape changes
/// no structure and the API server decodes the same value.
pub(crate) fn apply_body<T: serde::Serialize>(value: &T) -> Box<serde_json::value::RawValue> {
    let json = serde_json::to_string(value).expect("apply bodies are maps of strings and always serialise");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if matches!(c, '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}') {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    serde_json::value::RawValue::from_string(out).expect("escaping keeps JSON valid")
}

#[cfg(test)]
mod apply_body_tests {
    use super::apply_body;

    #[test]
    fn characters_yaml_refuses_raw_are_escaped_and_decode_to_the_same_value() {
        let value = serde_json::json!({"data": {"K": "a\u{7f}b\u{90}c\u{85}d\u{fffe}e😀\u{1}"}});
        let body = apply_body(&value);
        let text = body.get();
        for raw in ['\u{7f}', '\u{90}', '\u{fffe}', '\u{1}'] {
            assert!(!text.contains(raw), "{raw:?} is escaped in {text}");
        }
        assert!(text.contains("\\u007f") && text.contains("\\u0090") && text.contains("\\ufffe"), "{text}");
        assert!(text.contains('\u{85}') && text.contains('😀'), "what YAML allows stays as it is: {text}");
        let back: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, value);
    }
}
