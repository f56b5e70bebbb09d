//! The node's backoffs ([`wasmlet_retry::Backoff`]) and [`Retry`]: run
//! attempts until one succeeds, the token is cancelled, or the attempts run
//! out, logging each failure at warn.

use std::error::Error as StdError;
use std::future::Future;

use tokio::time::Duration;
use tokio_util::sync::CancellationToken;
pub(crate) use wasmlet_retry::{Backoff, Chain, Delays};

/// Registration: 100 ms doubling to 7 s (upstream `registerWithAPIServer`).
pub(crate) const REGISTER: Backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(7) };
/// Lease renewal and status updates: 200 ms doubling to 7 s (upstream lease controller).
pub(crate) const HEARTBEAT: Backoff = Backoff { min: Duration::from_millis(200), max: Duration::from_secs(7) };

/// Why a [`Retry`] stopped without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The token was cancelled.
    Cancelled,
    /// `max_attempts` attempts failed.
    GaveUp,
}

/// What one [`Retry::step`] came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<T> {
    /// The attempt succeeded.
    Done(T),
    /// It failed; the backoff delay has passed: try again.
    Again,
    /// Cancelled, or out of attempts.
    Stopped(Stop),
}

/// The failures of one operation: each is logged at warn (with `what` and the
/// error's causes) and followed by the next backoff delay, until the operation
/// succeeds, `cancel` fires, or `max_attempts` (if any) have failed.
///
/// ```text
/// let mut retry = Retry::new(HEARTBEAT, None, cancel, "renewing the lease");
/// let result = loop {
///     match retry.step(self.renew_once()).await {
///         Step::Done(v) => break Ok(v),
///         Step::Again => {}
///         Step::Stopped(stop) => break Err(stop),
///     }
/// };
/// ```
#[derive(Debug)]
pub(crate) struct Retry<'a> {
    delays: Delays,
    max_attempts: Option<usize>,
    failures: usize,
    cancel: &'a CancellationToken,
    what: &'static str,
}

impl<'a> Retry<'a> {
    pub(crate) fn new(
        backoff: Backoff,
        max_attempts: Option<usize>,
        cancel: &'a CancellationToken,
        what: &'static str,
    ) -> Self {
        Self { delays: backoff.delays(), max_attempts, failures: 0, cancel, what }
    }

    /// Awaits one attempt (unless cancelled first); on failure logs it and
    /// sleeps the next delay (unless cancelled or out of attempts).
    pub(crate) async fn step<T, E: StdError>(&mut self, attempt: impl Future<Output = Result<T, E>>) -> Step<T> {
        let result = tokio::select! {
            biased;
            () = self.cancel.cancelled() => return Step::Stopped(Stop::Cancelled),
            r = attempt => r,
        };
        let error = match result {
            Ok(v) => return Step::Done(v),
            Err(e) => e,
        };
        self.failures += 1;
        let (what, failures) = (self.what, self.failures);
        if self.max_attempts.is_some_and(|max| failures >= max) {
            tracing::warn!(error = %Chain(&error), failures, "{what} failed; giving up for now");
            return Step::Stopped(Stop::GaveUp);
        }
        let delay = self.delays.next().unwrap_or(Duration::ZERO);
        tracing::warn!(error = %Chain(&error), failures, retry_in = ?delay, "{what} failed");
        if wasmlet_retry::sleep(delay, self.cancel).await { Step::Again } else { Step::Stopped(Stop::Cancelled) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_min_and_stay_under_the_cap() {
        for backoff in [REGISTER, HEARTBEAT] {
            for _ in 0..50 {
                let delays: Vec<_> = backoff.delays().take(30).collect();
                assert!(delays[0] >= backoff.min && delays[0] <= backoff.min * 2);
                for (n, d) in delays.iter().enumerate() {
                    let base = (backoff.min * 2u32.pow(n.min(20) as u32)).min(backoff.max / 2);
                    assert!(*d >= base, "delay {n} = {d:?} below {base:?}");
                    assert!(*d <= backoff.max, "delay {n} = {d:?} above the cap");
                }
                assert!(delays[20..].iter().all(|d| *d >= backoff.max / 2));
            }
        }
    }

    async fn retry<T>(
        backoff: Backoff,
        max: Option<usize>,
        cancel: &CancellationToken,
        mut attempt: impl FnMut() -> Result<T, std::io::Error>,
    ) -> Result<T, Stop> {
        let mut retry = Retry::new(backoff, max, cancel, "test");
        loop {
            match retry.step(async { attempt() }).await {
                Step::Done(v) => return Ok(v),
                Step::Again => {}
                Step::Stopped(stop) => return Err(stop),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_sleeps_between_attempts_and_stops_on_success() {
        let mut calls = 0;
        let start = tokio::time::Instant::now();
        let cancel = CancellationToken::new();
        let r = retry(HEARTBEAT, None, &cancel, || {
            calls += 1;
            if calls < 4 { Err(std::io::Error::other("boom")) } else { Ok(calls) }
        })
        .await;
        assert_eq!(r, Ok(4));
        // Three delays: ≥ 200 + 400 + 800 ms, < 400 + 800 + 1600 ms.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(1400) && waited < Duration::from_millis(2800));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_or_is_cancelled() {
        let cancel = CancellationToken::new();
        let fail = || Err::<(), _>(std::io::Error::other("boom"));
        assert_eq!(retry(HEARTBEAT, Some(3), &cancel, fail).await, Err(Stop::GaveUp));
        cancel.cancel();
        assert_eq!(retry(REGISTER, None, &cancel, fail).await, Err(Stop::Cancelled));
    }

    #[test]
    fn chain_shows_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
    }
}
