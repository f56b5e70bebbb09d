//! Restart and image-pull back-off, as the upstream kubelet does it: the first
//! retry is immediate, then 10 s doubling to 300 s; a container that ran for
//! 10 minutes (twice the cap) starts over.

use std::time::Duration;

/// The most failures [`Backoff::resume`] replays (doubling from 1 s reaches
/// any sane cap well before).
const RESUME_REPLAY_LIMIT: u32 = 64;

/// Back-off settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// First delay (upstream: 10 s).
    pub initial: Duration,
    /// Cap (upstream: 300 s).
    pub max: Duration,
    /// A run at least this long resets the back-off (upstream: 2 × cap).
    pub reset_after: Duration,
    /// Whether the first retry is immediate (container restarts) or waits
    /// `initial` (image pulls).
    pub first_immediate: bool,
}

impl BackoffConfig {
    /// The upstream kubelet's CrashLoopBackOff.
    pub const CRASH_LOOP: Self = Self {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(300),
        reset_after: Duration::from_secs(600),
        first_immediate: true,
    };

    /// The upstream kubelet's image-pull back-off.
    pub const IMAGE_PULL: Self = Self { first_immediate: false, ..Self::CRASH_LOOP };
}

/// Back-off state of one container (or one image).
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    /// The delay the next failure gets; `None` until the first failure.
    next: Option<Duration>,
}

impl Backoff {
    /// A fresh back-off.
    pub fn new(config: BackoffConfig) -> Self {
        Self { config, next: None }
    }

    /// Records a failure after a run of `ran` and returns how long to wait
    /// before retrying: zero the first time (when `first_immediate`), then
    /// `initial`, doubling to `max`.
    pub fn failure(&mut self, ran: Duration) -> Duration {
        if ran >= self.config.reset_after {
            self.next = None;
        }
        match self.next {
            None if self.config.first_immediate => {
                self.next = Some(self.config.initial);
                Duration::ZERO
            }
            None => {
                self.next = Some((self.config.initial * 2).min(self.config.max));
                self.config.initial
            }
            Some(d) => {
                self.next = Some((d * 2).min(self.config.max));
                d
            }
        }
    }

    /// A back-off that has already seen `failures` short failures (the
    /// restarts an earlier run of the agent recorded), and the delay the
    /// last of them got: so that an agent restart neither forgets a crash
    /// loop nor starts it over.
    pub fn resume(config: BackoffConfig, failures: u32) -> (Self, Duration) {
        let mut backoff = Self::new(config);
        let mut last = Duration::ZERO;
        // The delay stops changing at the cap: replaying more changes nothing.
        for _ in 0..failures.min(RESUME_REPLAY_LIMIT) {
            last = backoff.failure(Duration::ZERO);
        }
        (backoff, last)
    }

    /// Forgets past failures (after a success).
    pub fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> u64 {
        d.as_secs()
    }

    #[test]
    fn immediate_then_doubling_to_the_cap() {
        let mut b = Backoff::new(BackoffConfig::CRASH_LOOP);
        let delays: Vec<u64> = (0..8).map(|_| secs(b.failure(Duration::from_secs(1)))).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn image_pulls_wait_from_the_first_failure() {
        let mut b = Backoff::new(BackoffConfig::IMAGE_PULL);
        let delays: Vec<u64> = (0..7).map(|_| secs(b.failure(Duration::ZERO))).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn resuming_continues_where_the_failures_left_off() {
        let (mut b, last) = Backoff::resume(BackoffConfig::CRASH_LOOP, 0);
        assert_eq!((secs(last), secs(b.failure(Duration::from_secs(1)))), (0, 0));
        let (mut b, last) = Backoff::resume(BackoffConfig::CRASH_LOOP, 1);
        assert_eq!((secs(last), secs(b.failure(Duration::from_secs(1)))), (0, 10));
        let (mut b, last) = Backoff::resume(BackoffConfig::CRASH_LOOP, 4);
        assert_eq!((secs(last), secs(b.failure(Duration::from_secs(1)))), (40, 80));
        let (mut b, last) = Backoff::resume(BackoffConfig::CRASH_LOOP, u32::MAX);
        assert_eq!((secs(last), secs(b.failure(Duration::from_secs(1)))), (300, 300));
    }

    #[test]
    fn a_long_run_resets() {
        let mut b = Backoff::new(BackoffConfig::CRASH_LOOP);
        for _ in 0..5 {
            b.failure(Duration::from_secs(1));
        }
        assert_eq!(secs(b.failure(Duration::from_secs(599))), 160);
        assert_eq!(secs(b.failure(Duration::from_secs(600))), 0);
        assert_eq!(secs(b.failure(Duration::from_secs(1))), 10);
        b.reset();
        assert_eq!(secs(b.failure(Duration::from_secs(1))), 0);
    }
}
