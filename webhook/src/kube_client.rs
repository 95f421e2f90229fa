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

use anyhow::Context;
use kube::runtime::watcher;

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
