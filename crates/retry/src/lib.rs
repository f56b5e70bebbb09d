//! What every retry loop of the agent shares: a capped, jittered exponential
//! [`Backoff`] (from `backon`), a [`sleep`] that ends early on cancellation,
//! and [`Chain`], an error displayed with its causes for a log line.
//!
//! The loops themselves stay with their callers, since what counts as
//! transient and when to give up differs (node heartbeats, certificates).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

/// An exponential backoff from `min`, doubling, never above `max`.
///
/// Delay *n* is drawn from `[b, 2b)` with `b = min(min·2ⁿ, max/2)`: so the
/// first delay is at least `min`, delays double on average, and with jitter
/// they stay spread out (between `max/2` and `max`) once capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay's lower bound.
    pub min: Duration,
    /// No delay is longer.
    pub max: Duration,
}

impl Backoff {
    /// The delays, endless.
    pub fn delays(self) -> Delays {
        let inner = ExponentialBuilder::new()
            .with_min_delay(self.min)
            .with_max_delay((self.max / 2).max(self.min))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        Delays { inner, cap: self.max }
    }
}

/// The delays of a [`Backoff`]; never ends.
#[derive(Debug)]
pub struct Delays {
    inner: ExponentialBackoff,
    cap: Duration,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.inner.next().unwrap_or(self.cap).min(self.cap))
    }
}

/// Sleeps `delay`; false if `cancel` fired first.
pub async fn sleep(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// Displays an error with its causes: `outer: inner: innermost`.
pub struct Chain<'a>(pub &'a dyn StdError);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_min_and_stay_under_the_cap() {
        let backoff = Backoff { min: Duration::from_millis(100), max: Duration::from_secs(7) };
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

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }

    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chain_shows_every_cause() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_ends_early_when_cancelled() {
        let cancel = CancellationToken::new();
        assert!(sleep(Duration::from_secs(5), &cancel).await);
        cancel.cancel();
        assert!(!sleep(Duration::from_secs(5), &cancel).await);
    }
}
