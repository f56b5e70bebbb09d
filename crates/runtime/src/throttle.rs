//! CPU limits: a token bucket per guest, checked at every epoch tick.
//!
//! A container's `resources.limits.cpu` of `m` millicores allows it
//! `m / 1000` CPU-seconds per second. The upstream kubelet turns that into a
//! CFS quota of `m / 1000 × 100 ms` per 100 ms period; here each container
//! with a limit gets a token bucket (shared by all its instances: a
//! `wasi:http` server runs one per request) that
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
//! A `wasi:http` server also checks the bucket before each request starts
//! ([`Throttle::admit`]), so requests too short to reach an epoch tick are
//! held back while the container is in debt; with many requests in flight
//! the overshoot grows to about one tick per running instance, and is paid
//! back like any debt.
//!
//! A command guest is a single fiber on one thread at a time, so it can never
//! use more than one CPU: limits of 1000m and above are not enforced (for a
//! `wasi:http` server with concurrent requests either). Limits
//! below [`MIN_CPU_MILLIS`] are raised to it (the kubelet's minimum quota is
//! 1 ms per 100 ms period, also 10m); 0 means no limit, as upstream.
//!
//! [`Config::cpu_period`]: crate::Config::cpu_period
//! [`Config::cpu_burst`]: crate::Config::cpu_burst

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use wasmtime::UpdateDeadline;

use crate::meter::Meter;
use crate::stats::GuestStats;

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
    /// A full bucket for a limit of `millis`, or `None` for 0 (no limit).
    pub(crate) fn new(millis: u64, period: Duration, burst: Duration, now: Instant, cpu: u64) -> Option<Self> {
        if millis == 0 {
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

/// The CPU limit of one container: a [`Bucket`] shared by every instance it
/// runs (a command has one; a `wasi:http` server one per request in flight),
/// charged with the container's cumulative CPU time (its [`GuestStats`]), so
/// concurrent instances together stay within the limit.
///
/// [`GuestStats`]: crate::GuestStats
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    bucket: Arc<Mutex<Bucket>>,
    stats: GuestStats,
}

impl Throttle {
    /// A throttle for a limit of `millis` (see [`Bucket::new`]), charging the
    /// CPU `stats` counts from now on; `None` when the limit constrains
    /// nothing. With `concurrent` (instances may run in parallel) limits of
    /// one CPU and more are enforced too.
    pub(crate) fn new(
        millis: u64,
        period: Duration,
        burst: Duration,
        stats: GuestStats,
        concurrent: bool,
    ) -> Option<Self> {
        if millis >= ONE_CPU_MILLIS && !concurrent {
            return None;
        }
        let bucket = Bucket::new(millis, period, burst, Instant::now(), stats.cpu_nanos())?;
        Some(Self { bucket: Arc::new(Mutex::new(bucket)), stats })
    }

    /// Charges the CPU used since the last charge and returns how long the
    /// caller must wait, if the container is in debt.
    fn charge(&self) -> Option<Duration> {
        let cpu = self.stats.cpu_nanos();
        // Short critical sections that cannot leave the bucket inconsistent.
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        bucket.charge(Instant::now(), cpu)
    }

    /// Waits while the container is in debt: called before a new instance
    /// starts work, so that requests too short to see an epoch tick are
    /// held back too.
    pub(crate) async fn admit(&self) {
        if let Some(wait) = self.charge() {
            self.wait(wait).await;
        }
    }

    fn wait(&self, wait: Duration) -> impl Future<Output = ()> + Send + 'static {
        let stats = self.stats.clone();
        async move {
            let started = Instant::now();
            tokio::time::sleep(wait).await;
            stats.add_throttled(started.elapsed());
        }
    }
}

type YieldFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the epoch callback of one guest instance does: account its CPU
/// time and, with a limit, hold it back while its container is over budget.
#[derive(Debug)]
pub(crate) struct Governor {
    meter: Arc<Meter>,
    throttle: Option<Throttle>,
}

impl Governor {
    pub(crate) fn new(meter: Arc<Meter>, throttle: Option<Throttle>) -> Self {
        Self { meter, throttle }
    }

    /// Called by the epoch deadline callback (inside the guest's poll).
    pub(crate) fn on_tick(&mut self) -> UpdateDeadline {
        self.meter.checkpoint();
        let wait = self.throttle.as_ref().and_then(|throttle| Some((throttle, throttle.charge()?)));
        let future: YieldFuture = match wait {
            None => Box::pin(tokio::task::yield_now()),
            Some((throttle, wait)) => Box::pin(throttle.wait(wait)),
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
    fn unconstraining_limits_have_no_throttle() {
        let throttle =
            |millis, concurrent| Throttle::new(millis, PERIOD, Duration::ZERO, GuestStats::new(), concurrent);
        assert!(throttle(0, false).is_none());
        assert!(throttle(1000, false).is_none());
        assert!(throttle(4000, false).is_none());
        assert!(throttle(999, false).is_some());
        // Concurrent instances can use more than one CPU.
        assert!(throttle(0, true).is_none());
        assert!(throttle(1500, true).is_some());
    }

    /// Every instance charges the shared bucket with the container's
    /// cumulative CPU: two instances' CPU together put it in debt.
    #[test]
    fn instances_share_one_bucket() {
        let stats = GuestStats::new();
        let a = Throttle::new(100, PERIOD, Duration::ZERO, stats.clone(), true).unwrap();
        let b = a.clone();
        // 6 ms by each instance: 12 ms against a 10 ms quota.
        stats.add_cpu(6 * MS);
        assert_eq!(a.charge(), None);
        stats.add_cpu(6 * MS);
        let wait = b.charge().unwrap();
        assert!(wait > ms(10) && wait <= ms(20), "{wait:?}");
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
