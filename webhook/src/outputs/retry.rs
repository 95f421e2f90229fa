//! Bounded retries of Kubernetes API calls inside one request.

use std::future::Future;
use std::time::Duration;

use super::error::{is_transient, short};
use crate::runtime::backoff::Backoff;

/// Attempts per call (the first one included).
pub(crate) const TRIES: u32 = 3;
/// Delay before the second attempt; doubled for each further one.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest a single API call may take before it counts as a transient failure.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `call` until it succeeds, fails for good, or has failed transiently
/// [`TRIES`] times (throttling, 5xx, timeouts, broken connections). A call that
/// takes longer than [`CALL_TIMEOUT`] fails as a transient `Service` error.
pub(crate) async fn retry<T, F, Fut>(doing: &str, call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    retry_with(doing, CALL_TIMEOUT, FIRST_BACKOFF, call).await
}

async fn retry_with<T, F, Fut>(doing: &str, timeout: Duration, first_backoff: Duration, mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delays = Backoff::new(first_backoff, Duration::MAX, TRIES);
    loop {
        let result = match tokio::time::timeout(timeout, call()).await {
            Ok(r) => r,
            Err(elapsed) => Err(kube::Error::Service(Box::new(elapsed))),
        };
        match result {
            Err(e) if is_transient(&e) => match delays.next() {
                Some(delay) => {
                    tracing::debug!(error = %short(&e), "transient Kubernetes API failure while {doing}; retrying");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(e),
            },
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: Duration = Duration::from_millis(1);

    fn unavailable() -> kube::Error {
        kube::Error::Api(kube::core::Status::failure("busy", "ServiceUnavailable").with_code(503).boxed())
    }

    #[tokio::test]
    async fn retries_transient_failures_a_bounded_number_of_times() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry_with("testing", FAST * 50, FAST, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(unavailable()) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), TRIES);

        let calls = AtomicU32::new(0);
        let r = retry_with("testing", FAST * 50, FAST, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { if n == 0 { Err(unavailable()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r.unwrap(), 1);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_failures() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry_with("testing", FAST * 50, FAST, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(kube::Error::Api(kube::core::Status::failure("gone", "NotFound").with_code(404).boxed())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_hanging_call_times_out_and_is_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry_with("testing", FAST * 50, FAST, || {
            calls.fetch_add(1, Ordering::SeqCst);
            futures::future::pending()
        })
        .await;
        assert!(matches!(r, Err(kube::Error::Service(_))));
        assert_eq!(calls.load(Ordering::SeqCst), TRIES);
    }
}
