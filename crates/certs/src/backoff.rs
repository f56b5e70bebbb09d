//! The certificate manager's backoff and [`retry`]: transient failures are
//! retried until success or cancellation, permanent ones returned.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;
pub(crate) use wasmlet_retry::{Backoff, Chain, sleep};

use crate::{Error, Result};

/// Upstream's certificate manager: 2 s doubling, then every 32 s.
pub(crate) const CERTIFICATES: Backoff = Backoff { min: Duration::from_secs(2), max: Duration::from_secs(32) };

/// Runs `attempt` until it succeeds, fails permanently (`retry_all` off and
/// the error not [`Error::is_transient`]) or `cancel` fires
/// ([`Error::Cancelled`]); each failure is logged with `what`.
pub(crate) async fn retry<T, F, Fut>(
    what: &str,
    backoff: Backoff,
    retry_all: bool,
    cancel: &CancellationToken,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut delays = backoff.delays();
    let mut failures = 0u32;
    loop {
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Error::Cancelled),
            result = attempt() => result,
        };
        match result {
            Ok(value) => return Ok(value),
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(error) if retry_all || error.is_transient() => {
                failures += 1;
                let delay = delays.next().unwrap_or(backoff.max);
                warn!(error = %Chain(&error), failures, retry_in = ?delay, "{what} failed");
                if !sleep(delay, cancel).await {
                    return Err(Error::Cancelled);
                }
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        for _ in 0..20 {
            let delays: Vec<_> = CERTIFICATES.delays().take(12).collect();
            assert!(delays[0] >= Duration::from_secs(2) && delays[0] < Duration::from_secs(4), "{delays:?}");
            assert!(delays.iter().all(|d| *d <= CERTIFICATES.max), "{delays:?}");
            assert!(delays[6..].iter().all(|d| *d >= CERTIFICATES.max / 2), "{delays:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_permanent_ones_returned() {
        let cancel = CancellationToken::new();
        let mut calls = 0;
        let started = tokio::time::Instant::now();
        let result = retry("test", CERTIFICATES, false, &cancel, || {
            calls += 1;
            let n = calls;
            async move { if n < 3 { Err(Error::Timeout { name: "c".into(), timeout: Duration::ZERO }) } else { Ok(n) } }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
        assert!(started.elapsed() >= Duration::from_secs(6), "2 s then 4 s at least");

        let denied =
            || async { Err::<(), _>(Error::Denied { name: "c".into(), reason: "r".into(), message: "m".into() }) };
        assert!(matches!(retry("test", CERTIFICATES, false, &cancel, denied).await, Err(Error::Denied { .. })));
        cancel.cancel();
        assert!(matches!(retry("test", CERTIFICATES, true, &cancel, denied).await, Err(Error::Cancelled)));
    }
}
