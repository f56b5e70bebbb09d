//! [`Budget`]: bytes of guest memory that several stores share, charged
//! atomically on every grow and given back when a grow fails or a store is
//! freed.
//!
//! Two budgets bound every guest store (see [`limiter`](crate::limiter)):
//!
//! - the **container's**: its memory limit, shared by all the stores the
//!   container runs at once (a command has one; a `wasi:http` server one per
//!   request in flight), like a container's cgroup `memory.max` bounds all
//!   its processes together;
//! - the **node's**: [`Config::node_memory_bytes`](crate::Config::node_memory_bytes),
//!   shared by every guest of the runtime, like the `kubepods` cgroup bounds
//!   all pods of a node.
//!
//! # Guarantees
//!
//! - A charge either fits entirely under the limit or takes nothing: the sum
//!   of what is charged never passes the limit, whatever the concurrency
//!   (one compare-and-swap loop on one atomic).
//! - [`Budget::peak`] is the highest sum ever charged; it is never above the
//!   limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A shared memory budget; a cheap clone (an `Arc` of atomics).
#[derive(Clone, Debug)]
pub(crate) struct Budget(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    limit: u64,
    used: AtomicU64,
    peak: AtomicU64,
}

/// A charge that would have passed the budget's limit: nothing was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The budget's limit.
    pub(crate) limit: u64,
    /// The sum the charge would have reached.
    pub(crate) requested: u64,
}

impl Budget {
    /// A budget of `limit` bytes, nothing charged.
    pub(crate) fn new(limit: u64) -> Self {
        Self(Arc::new(Inner { limit, used: AtomicU64::new(0), peak: AtomicU64::new(0) }))
    }

    /// Takes `bytes` if the sum stays within the limit.
    pub(crate) fn charge(&self, bytes: u64) -> Result<(), Refused> {
        let inner = &*self.0;
        let mut used = inner.used.load(Ordering::Relaxed);
        loop {
            let requested = used.saturating_add(bytes);
            if requested > inner.limit {
                return Err(Refused { limit: inner.limit, requested });
            }
            match inner.used.compare_exchange_weak(used, requested, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    inner.peak.fetch_max(requested, Ordering::Relaxed);
                    return Ok(());
                }
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `bytes` charged earlier.
    pub(crate) fn release(&self, bytes: u64) {
        // Never fails: the closure always returns `Some`.
        let _ = self.0.used.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| Some(used.saturating_sub(bytes)));
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> u64 {
        self.0.used.load(Ordering::Relaxed)
    }

    /// The highest sum ever charged.
    pub(crate) fn peak(&self) -> u64 {
        self.0.peak.load(Ordering::Relaxed)
    }
}

/// The memory of all guests of a [`Runtime`](crate::Runtime) together, as
/// [`Runtime::guest_memory`](crate::Runtime::guest_memory) reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestMemory {
    /// Bytes of linear memory and tables of every live guest store.
    pub used_bytes: u64,
    /// The highest `used_bytes` since the runtime started.
    pub peak_bytes: u64,
    /// [`Config::node_memory_bytes`](crate::Config::node_memory_bytes): the
    /// node-wide cap, if any.
    pub limit_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_no_further() {
        let budget = Budget::new(100);
        assert_eq!(budget.charge(60), Ok(()));
        assert_eq!(budget.charge(41), Err(Refused { limit: 100, requested: 101 }));
        assert_eq!(budget.used(), 60, "a refused charge takes nothing");
        assert_eq!(budget.charge(40), Ok(()));
        budget.release(70);
        assert_eq!((budget.used(), budget.peak()), (30, 100));
        budget.release(1000);
        assert_eq!(budget.used(), 0, "never below zero");
    }

    #[test]
    fn concurrent_charges_never_pass_the_limit() {
        const THREADS: u64 = 8;
        const ROUNDS: u64 = 10_000;
        let budget = Budget::new(1_000);
        let granted = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    for _ in 0..ROUNDS {
                        if budget.charge(300).is_ok() {
                            granted.fetch_add(1, Ordering::Relaxed);
                            assert!(budget.used() <= 1_000);
                            budget.release(300);
                        }
                    }
                });
            }
        });
        assert_eq!(budget.used(), 0, "every grant was given back");
        assert!(budget.peak() <= 1_000, "peak {} over the limit", budget.peak());
        assert!(budget.peak() >= 300 && granted.load(Ordering::Relaxed) > 0);
    }
}
