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
pub const READ_TIMEOUT: Duration = Duration::from_secs(45);
/// Longest a watch request stays open (the API server ends it; the watcher resumes it).
pub const WATCH_TIMEOUT_SECS: u32 = 30;
/// Objects per page of an initial list: a few pages of small objects instead
/// of one response holding the whole cluster's.
pub const LIST_PAGE_SIZE: u32 = 50;

/// The client from the in-cluster configuration or KUBECONFIG, with [`READ_TIMEOUT`].
pub async fn client() -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::infer().await.context("reading the in-cluster configuration or KUBECONFIG")?;
    config.read_timeout = Some(READ_TIMEOUT);
    // Count from each request, not from when its pooled connection went idle.
    config.reset_reader_on_write = true;
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// Watch settings every watch of the server uses (see the module's doc).
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().timeout(WATCH_TIMEOUT_SECS).page_size(LIST_PAGE_SIZE)
}

/// Every object a list selects, fetched in pages of [`LIST_PAGE_SIZE`]: the
/// API server never builds, and this replica never decodes, one response
/// holding a whole namespace's (or the cluster's) objects at once.
pub async fn list_all<K>(api: &Api<K>, lp: &ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut lp = lp.clone().limit(LIST_PAGE_SIZE);
    let mut out = Vec::new();
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp.continue_token = Some(token),
            _ => return Ok(out),
        }
    }
}

/// [`list_all`], metadata only.
pub async fn list_all_metadata<K>(api: &Api<K>, lp: &ListParams) -> Result<Vec<PartialObjectMeta<K>>, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let mut lp = lp.clone().limit(LIST_PAGE_SIZE);
    let mut out = Vec::new();
    loop {
        let page = api.list_metadata(&lp).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp.continue_token = Some(token),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_end_before_the_read_timeout() {
        const { assert!((WATCH_TIMEOUT_SECS as u64) + 10 <= READ_TIMEOUT.as_secs()) };
        let c = watch_config();
        assert_eq!(c.timeout, Some(WATCH_TIMEOUT_SECS));
        assert_eq!(c.page_size, Some(LIST_PAGE_SIZE));
    }
}
