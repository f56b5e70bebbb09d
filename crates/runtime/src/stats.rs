//! [`GuestStats`]: a cheap, shareable live view of one guest's resource use.
//!
//! The caller makes one (or lets [`Runtime::run`](crate::Runtime::run) make
//! one), passes it in [`GuestSpec::stats`](crate::GuestSpec::stats) and keeps
//! a clone: the runtime updates it while the guest runs, and reading it is a
//! handful of relaxed atomic loads, safe from any thread at any time.
//!
//! # Guarantees
//!
//! - **CPU** ([`GuestStats::cpu`]) is the guest's CPU time: the thread CPU
//!   time (`CLOCK_THREAD_CPUTIME_ID`) spent inside the polls of its future,
//!   i.e. executing wasm and synchronous host calls. It is updated at the end
//!   of every poll and at every epoch tick while the guest runs, so a live
//!   reading lags by at most one tick. It never goes back: one handle reused
//!   for several runs (e.g. the attempts of one container) keeps adding up.
//! - **Memory** ([`GuestStats::memory_bytes`]) is the current size of all the
//!   guest's linear memories plus its tables (elements × pointer size), as
//!   granted by the resource limiter on every grow. It is what the memory
//!   limit is enforced against. It drops to 0 when the run ends (the store is
//!   freed). A `wasi:http` server's handle sums the instances alive at the
//!   moment (one per request in flight), which the container's limit bounds
//!   together, and its CPU time sums all of them.
//! - **Peak** ([`GuestStats::memory_peak_bytes`]) is the highest memory
//!   figure of the current run (like cgroup v2 `memory.peak`): never above
//!   the memory limit, since a grow is charged before it is published and
//!   published as given back before it is returned.
//! - **OOM kills** ([`GuestStats::oom_kills`]) counts the instances stopped
//!   for passing a memory limit (the container's or the node's): at most one
//!   per run of a command, one per failed request of a server (like the
//!   cgroup's `memory.events` `oom_kill`). It never goes back.
//! - **Start** ([`GuestStats::started_at`]) is the wall-clock time the latest
//!   run began (before instantiation).
//!
//! # Caveats
//!
//! - Linear memory is counted at its size, not by resident pages: a guest
//!   that grows its memory without touching it is charged in full (as the
//!   memory limit charges it).
//! - Work a guest causes off its own task (the blocking pool serving file
//!   I/O, the stdout writer task) is not counted as its CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A live view of one guest's CPU time, memory and start time; a cheap clone
/// (an `Arc` of atomics). See the [module docs](self) for what each value
/// means.
#[derive(Clone, Default)]
pub struct GuestStats(Arc<Inner>);

#[derive(Default)]
struct Inner {
    cpu_nanos: AtomicU64,
    memory_bytes: AtomicU64,
    memory_peak_bytes: AtomicU64,
    oom_kills: AtomicU64,
    /// Nanoseconds since the Unix epoch of the latest start; 0: never started.
    started_unix_nanos: AtomicU64,
    running: AtomicBool,
    throttled_nanos: AtomicU64,
    throttles: AtomicU64,
}

impl GuestStats {
    /// A handle with everything at zero, not yet started.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cumulative CPU time of the guest (of every run this handle was given to).
    pub fn cpu(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos())
    }

    /// [`cpu`](Self::cpu) in nanoseconds.
    pub fn cpu_nanos(&self) -> u64 {
        self.0.cpu_nanos.load(Ordering::Relaxed)
    }

    /// Current bytes of linear memory and tables; 0 when not running.
    pub fn memory_bytes(&self) -> u64 {
        self.0.memory_bytes.load(Ordering::Relaxed)
    }

    /// The highest [`memory_bytes`](Self::memory_bytes) of the current (or
    /// last) run.
    pub fn memory_peak_bytes(&self) -> u64 {
        self.0.memory_peak_bytes.load(Ordering::Relaxed)
    }

    /// Instances stopped for passing a memory limit, over every run.
    pub fn oom_kills(&self) -> u64 {
        self.0.oom_kills.load(Ordering::Relaxed)
    }

    /// When the latest run started; `None` before the first.
    pub fn started_at(&self) -> Option<SystemTime> {
        match self.0.started_unix_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(UNIX_EPOCH + Duration::from_nanos(nanos)),
        }
    }

    /// Whether a run is in progress.
    pub fn is_running(&self) -> bool {
        self.0.running.load(Ordering::Relaxed)
    }

    /// Cumulative time the guest was held back by its CPU limit (like the
    /// cgroup's `throttled_usec`).
    pub fn throttled(&self) -> Duration {
        Duration::from_nanos(self.0.throttled_nanos.load(Ordering::Relaxed))
    }

    /// How many times the guest was held back by its CPU limit (like the
    /// cgroup's `nr_throttled`).
    pub fn throttles(&self) -> u64 {
        self.0.throttles.load(Ordering::Relaxed)
    }

    pub(crate) fn add_cpu(&self, nanos: u64) {
        self.0.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Adds `grown` bytes to the live memory figure and takes `shrunk` off
    /// it (one store's change; several stores may share a handle).
    pub(crate) fn adjust_memory(&self, grown: u64, shrunk: u64) {
        // Never fails: the closure always returns `Some`.
        let now = self.0.memory_bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bytes| {
            Some(bytes.saturating_add(grown).saturating_sub(shrunk))
        });
        if let Ok(before) = now {
            self.0.memory_peak_bytes.fetch_max(before.saturating_add(grown).saturating_sub(shrunk), Ordering::Relaxed);
        }
    }

    /// An instance was stopped for passing a memory limit.
    pub(crate) fn oom_killed(&self) {
        self.0.oom_kills.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_throttled(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.0.throttled_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.0.throttles.fetch_add(1, Ordering::Relaxed);
    }

    /// A run begins at `at`.
    pub(crate) fn start(&self, at: SystemTime) {
        let nanos = at.duration_since(UNIX_EPOCH).map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.0.started_unix_nanos.store(nanos.max(1), Ordering::Relaxed);
        self.0.memory_bytes.store(0, Ordering::Relaxed);
        self.0.memory_peak_bytes.store(0, Ordering::Relaxed);
        self.0.running.store(true, Ordering::Relaxed);
    }

    /// The run ended and its store is gone.
    pub(crate) fn stop(&self) {
        self.0.running.store(false, Ordering::Relaxed);
        self.0.memory_bytes.store(0, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for GuestStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestStats")
            .field("cpu", &self.cpu())
            .field("memory_bytes", &self.memory_bytes())
            .field("memory_peak_bytes", &self.memory_peak_bytes())
            .field("oom_kills", &self.oom_kills())
            .field("started_at", &self.started_at())
            .field("running", &self.is_running())
            .field("throttled", &self.throttled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let stats = GuestStats::new();
        assert_eq!(
            (stats.cpu(), stats.memory_bytes(), stats.started_at(), stats.is_running()),
            (Duration::ZERO, 0, None, false)
        );
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clone = stats.clone();
        clone.start(at);
        clone.add_cpu(5);
        clone.adjust_memory(65536, 0);
        assert_eq!(
            (stats.cpu_nanos(), stats.memory_bytes(), stats.started_at(), stats.is_running()),
            (5, 65536, Some(at), true)
        );
        clone.stop();
        clone.start(at + Duration::from_secs(1));
        clone.add_cpu(5);
        // CPU keeps counting across runs; memory is the current run's.
        assert_eq!((stats.cpu_nanos(), stats.memory_bytes()), (10, 0));
        clone.adjust_memory(100, 0);
        clone.adjust_memory(50, 0);
        clone.adjust_memory(0, 100);
        assert_eq!(stats.memory_bytes(), 50);
        clone.adjust_memory(0, 100);
        assert_eq!((stats.memory_bytes(), stats.memory_peak_bytes()), (0, 150));
        clone.oom_killed();
        assert_eq!(stats.oom_kills(), 1);
        clone.add_throttled(Duration::from_millis(3));
        assert_eq!((stats.throttled(), stats.throttles()), (Duration::from_millis(3), 1));
    }
}
