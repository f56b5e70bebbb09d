//! CPU limits: a token bucket per guest, checked at every epoch tick.
//!
//! A container's `resources.limits.cpu` of `m` millicores allows it
//! `m / 1000` CPU-seconds per second. The upstream kubelet turns that into a
//! CFS quota of `m / 1000 × 100 ms` per 100 ms period; here each guest with a
//! limit gets a token bucket that
//!
//! - refills at `m / 1000` CPU-nanoseconds per wall nanosecond,
//! - holds at most one period's quota plus a burst
//!   ([`Config::cpu_period`], [`Config::cpu_burst`]), so an idle guest can
//!   save up that much (and it starts full, like a fresh CFS period),
//! - is charged the guest's CPU time (thread CPU time, as in
//!   [`GuestStats`](crate::GuestStats)), and may
//!   go negative (a debt): the guest runs in slices of one epoch tick, so it
//!   can overshoot by up to a tick before the callback sees it.
//!
//! At every epoch tick the store's epoch callback refills, charges,
//! and when the bucket is in debt returns a yield future that sleeps until
//! the debt is paid back (`debt / rate`); otherwise it yields once, as a guest
//! without a limit does. Because the overshoot is paid back, the long-run
//! share converges on the limit; the granularity is one epoch tick (10 ms):
//! a 100m guest typically runs one 10 ms slice, then sleeps ~90 ms.
//!
//! A guest is a single fiber on one thread at a time, so it can never use
//! more than one CPU: limits of 1000m and above are not enforced. Limits
//! below [`MIN_CPU_MILLIS`] are raised to it (the kubelet's minimum quota is
//! 1 ms per 100 ms period, also 10m); 0 means no limit, as upstream.
//!
//! [`Config::cpu_period`]: crate::Config::cpu_period
//! [`Config::cpu_burst`]: crate::Config::cpu_burst

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use wasmtime::UpdateDeadline;

use crate::meter::Meter;

/// The smallest CPU limit enforced, in millicores; lower limits are raised.
pub const MIN_CPU_MILLIS: u64 = 10;

/// Millicores in one CPU: a limit at or above it is not enforced.
const ONE_CPU_MILLIS: u64 = 1000;

/// A CPU token bucket in nanoseconds of CPU time; time is passed in, so it
/// can be tested without clocks.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    millis: u64,
    /// Most CPU nanoseconds the bucket holds.
    capacity: i128,
    /// CPU nanoseconds available; negative is a debt.
    tokens: i128,
    /// When the bucket was last refilled.
    refilled: Instant,
    /// The guest's CPU nanoseconds at the last charge.
    charged: u64,
}

impl Bucket {
    /// A full bucket for a limit of `millis`, or `None` when the limit does
    /// not constrain a guest (0, or one CPU or more).
    pub(crate) fn new(millis: u64, period: Duration, burst: Duration, now: Instant, cpu: u64) -> Option<Self> {
        if millis == 0 || millis >= ONE_CPU_MILLIS {
            return None;
        }
        let millis = millis.max(MIN_CPU_MILLIS);
        let quota = period.as_nanos() * u128::from(millis) / u128::from(ONE_CPU_MILLIS);
        let capacity = i128::try_from(quota + burst.as_nanos()).unwrap_or(i128::MAX);
        Some(Self { millis, capacity, tokens: capacity, refilled: now, charged: cpu })
    }

    /// Refills for the time since the last call, charges the CPU used since
    /// then (`cpu` is the guest's running total), and returns how long the
    /// guest must wait before it may run again, if it is in debt.
    pub(crate) fn charge(&mut self, now: Instant, cpu: u64) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.refilled).as_nanos();
        self.refilled = now;
        let refill = elapsed * u128::from(self.millis) / u128::from(ONE_CPU_MILLIS);
        let refill = i128::try_from(refill).unwrap_or(i128::MAX);
        // Cap before charging: tokens saved while idle never exceed the
        // capacity, and the CPU just used is always paid for.
        self.tokens = self.tokens.saturating_add(refill).min(self.capacity);
        let used = cpu.saturating_sub(self.charged);
        self.charged = cpu;
        self.tokens = self.tokens.saturating_sub(i128::from(used));
        if self.tokens >= 0 {
            return None;
        }
        let debt = self.tokens.unsigned_abs();
        let wait = debt * u128::from(ONE_CPU_MILLIS) / u128::from(self.millis);
        Some(Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX)))
    }
}

type YieldFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the epoch callback of one guest does: account its CPU time and,
/// with a limit, hold it back while it is over budget.
#[derive(Debug)]
pub(crate) struct Governor {
    meter: Arc<Meter>,
    bucket: Option<Bucket>,
}

impl Governor {
    pub(crate) fn new(meter: Arc<Meter>, bucket: Option<Bucket>) -> Self {
        Self { meter, bucket }
    }

    /// Called by the epoch deadline callback (inside the guest's poll).
    pub(crate) fn on_tick(&mut self) -> UpdateDeadline {
        let cpu = self.meter.checkpoint();
        let wait = self.bucket.as_mut().and_then(|bucket| bucket.charge(Instant::now(), cpu));
        let future: YieldFuture = match wait {
            None => Box::pin(tokio::task::yield_now()),
            Some(wait) => {
                let stats = self.meter.stats().clone();
                Box::pin(async move {
                    let started = Instant::now();
                    tokio::time::sleep(wait).await;
                    stats.add_throttled(started.elapsed());
                })
            }
        };
        UpdateDeadline::YieldCustom(1, future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const PERIOD: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn unconstraining_limits_have_no_bucket() {
        let now = Instant::now();
        assert!(Bucket::new(0, PERIOD, Duration::ZERO, now, 0).is_none());
        assert!(Bucket::new(1000, PERIOD, Duration::ZERO, now, 0).is_none());
        assert!(Bucket::new(4000, PERIOD, Duration::ZERO, now, 0).is_none());
        assert!(Bucket::new(999, PERIOD, Duration::ZERO, now, 0).is_some());
    }

    /// 100m: the bucket holds one 10 ms quota; a 10 ms slice beyond it means
    /// a 100 ms wait (less what refilled meanwhile).
    #[test]
    fn debt_is_paid_back_at_the_limit_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(100, PERIOD, Duration::ZERO, t0, 0).unwrap();
        // Within the initial quota.
        assert_eq!(b.charge(t0 + ms(10), 10 * MS), None);
        // The next 10 ms slice: 1 ms refilled (capped at 10 ms), 10 ms charged.
        assert_eq!(b.charge(t0 + ms(20), 20 * MS), Some(ms(90)));
        // After waiting exactly that long the debt is gone.
        assert_eq!(b.charge(t0 + ms(110), 20 * MS), None);
    }

    /// Over a long busy run the CPU granted converges on limit × time.
    #[test]
    fn long_run_share_matches_the_limit() {
        for millis in [100_u64, 250, 400, 900] {
            let t0 = Instant::now();
            let mut b = Bucket::new(millis, PERIOD, Duration::ZERO, t0, 0).unwrap();
            let (mut now, mut cpu) = (t0, 0_u64);
            while now - t0 < Duration::from_secs(100) {
                // Run one 10 ms tick, then wait as told.
                cpu += 10 * MS;
                now += ms(10);
                if let Some(wait) = b.charge(now, cpu) {
                    now += wait;
                }
            }
            let share = cpu as f64 / (now - t0).as_nanos() as f64;
            let expected = millis as f64 / 1000.0;
            assert!((share - expected).abs() < 0.005, "{millis}m: {share}");
        }
    }

    /// Idle time saves up at most the capacity (quota + burst).
    #[test]
    fn idle_time_saves_at_most_the_capacity() {
        let t0 = Instant::now();
        let mut b = Bucket::new(200, PERIOD, ms(30), t0, 0).unwrap();
        // Idle for a minute, then 50 ms of CPU: 20 ms quota + 30 ms burst.
        assert_eq!(b.charge(t0 + Duration::from_secs(60), 50 * MS), None);
        assert_eq!(b.charge(t0 + Duration::from_secs(60), 51 * MS), Some(ms(5)));
    }

    #[test]
    fn tiny_limits_are_raised_to_the_minimum() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1, PERIOD, Duration::ZERO, t0, 0).unwrap();
        // 10m: a 1 ms quota; 2 ms of CPU is a 1 ms debt, paid back in 100 ms.
        assert_eq!(b.charge(t0, 2 * MS), Some(ms(100)));
    }
}
