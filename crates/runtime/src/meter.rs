//! [`Meter`]: measuring a guest's CPU time, shared by the poll wrapper
//! ([`Timed`](crate::timed::Timed)) and the epoch callback.
//!
//! A guest runs only inside the polls of its future, and a poll runs on one
//! OS thread from start to end (the wasm fiber is resumed on the polling
//! thread). So the guest's CPU time is the sum, over its polls, of the
//! calling thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) at the end of the
//! poll minus at its start. The epoch callback, which runs inside a poll,
//! adds the time since the last mark and moves the mark ([`Meter::checkpoint`]),
//! so the live figure is never more than one epoch tick behind.
//!
//! # Why thread CPU time, not the wall time of polls
//!
//! Wall time counts the moments the OS took the worker thread away (other
//! processes, other worker threads on a busy 2-core node): a guest would be
//! charged, and throttled, for time it did not run, more so the busier the
//! node, and the pods' sum could exceed the node's real usage. Thread CPU
//! time is what the kernel charges a cgroup (what the kubelet reports for a
//! container). It costs a system call (about 0.5 µs on the development VM, no
//! vDSO for CPU clocks): two per poll and one per tick, negligible next to a
//! poll of a guest (a fiber switch and wasm work).
//!
//! If the thread clock is unavailable, the meter falls back to the wall time
//! of polls (monotonic clock), the previous behaviour.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use nix::time::{ClockId, clock_gettime};

use crate::stats::GuestStats;

/// Which clock a [`Meter`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// The calling thread's CPU time.
    ThreadCpu,
    /// Monotonic wall time (fallback).
    Wall,
}

impl Clock {
    /// The thread CPU clock if this OS has one, else wall time.
    pub(crate) fn best() -> Self {
        if thread_cpu_nanos().is_some() { Self::ThreadCpu } else { Self::Wall }
    }

    /// The clock's reading in nanoseconds.
    pub(crate) fn now(self) -> u64 {
        match self {
            Self::ThreadCpu => thread_cpu_nanos().unwrap_or_else(wall_nanos),
            Self::Wall => wall_nanos(),
        }
    }
}

/// This thread's CPU time in nanoseconds.
pub(crate) fn thread_cpu_nanos() -> Option<u64> {
    let now = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    let secs = u64::try_from(now.tv_sec()).ok()?;
    let nanos = u64::try_from(now.tv_nsec()).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Monotonic nanoseconds since the first call in this process.
fn wall_nanos() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The CPU meter of one run: adds the guest's CPU time to its [`GuestStats`]
/// and to the run's own total.
#[derive(Debug)]
pub(crate) struct Meter {
    clock: Clock,
    stats: GuestStats,
    /// Clock reading at the last mark (poll start or checkpoint).
    mark: AtomicU64,
    /// CPU nanoseconds of this run.
    run_nanos: AtomicU64,
}

impl Meter {
    pub(crate) fn new(stats: GuestStats) -> Arc<Self> {
        let clock = Clock::best();
        Arc::new(Self { clock, stats, mark: AtomicU64::new(clock.now()), run_nanos: AtomicU64::new(0) })
    }

    /// A poll begins on this thread.
    pub(crate) fn poll_started(&self) {
        self.mark.store(self.clock.now(), Ordering::Relaxed);
    }

    /// Counts the time since the last mark (this must run on the thread of the
    /// current poll), moves the mark, and returns the run's CPU so far.
    pub(crate) fn checkpoint(&self) -> u64 {
        let now = self.clock.now();
        let spent = now.saturating_sub(self.mark.swap(now, Ordering::Relaxed));
        self.stats.add_cpu(spent);
        self.run_nanos.fetch_add(spent, Ordering::Relaxed).saturating_add(spent)
    }

    /// CPU nanoseconds of this run so far (as of the last checkpoint).
    pub(crate) fn run_nanos(&self) -> u64 {
        self.run_nanos.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_clock_works_here() {
        assert_eq!(Clock::best(), Clock::ThreadCpu);
    }

    /// Spinning is counted; sleeping is not.
    #[test]
    fn counts_cpu_not_sleep() {
        let stats = GuestStats::new();
        let meter = Meter::new(stats.clone());
        meter.poll_started();
        spin_cpu(20_000_000);
        let after_spin = meter.checkpoint();
        std::thread::sleep(std::time::Duration::from_millis(50));
        meter.poll_started();
        let after_sleep = meter.checkpoint();
        assert!(after_spin >= 20_000_000, "{after_spin}");
        assert!(after_sleep - after_spin < 10_000_000, "{after_spin} {after_sleep}");
        assert_eq!(stats.cpu_nanos(), after_sleep);
        assert_eq!(meter.run_nanos(), after_sleep);
    }

    fn spin_cpu(nanos: u64) {
        let start = thread_cpu_nanos().unwrap();
        while thread_cpu_nanos().unwrap() - start < nanos {
            std::hint::spin_loop();
        }
    }
}
