//! [`Limiter`]: the per-store resource limiter that turns "memory limit
//! exceeded" into an OOM kill.
//!
//! wasmtime's `StoreLimits` caps each memory separately and, by default, makes
//! a refused `memory.grow` return -1, which the guest's allocator turns into a
//! `NULL` from `malloc`. A container with a memory limit should instead be
//! killed when it goes over, so this limiter charges the bytes of *all* the
//! store's linear memories and tables to two shared [`Budget`]s, the
//! container's and the node's ([`Budgets`]), and when a grow would pass
//! either, records which and fails the grow with an error, which wasmtime
//! raises as a trap. The runner then sees [`Limiter::exceeded`] and reports
//! the exit as out-of-memory ([`Limiter::oom_exit`]) instead of as a trap.
//!
//! Every granted or given-back grow also updates the guest's
//! [`GuestStats::memory_bytes`], so the live figure is exact; the store's
//! whole charge is given back when the limiter is dropped with its store.

use wasmtime::ResourceLimiter;

use crate::budget::{Budget, Refused};
use crate::exit::Exit;
use crate::stats::GuestStats;

/// Bytes charged per table element: a table holds one pointer per element.
const TABLE_ELEMENT_BYTES: u64 = std::mem::size_of::<usize>() as u64;

/// The failures wasmtime (48, `runtime/vm/{memory,table}.rs`) reports to
/// `*_grow_failed` *without* asking `*_growing` first: nothing was granted
/// for them, so giving back the last grant would undercount (a guest could
/// repeat it to slip past its limits). The unit tests pin these texts.
const UNGRANTED_FAILURES: [&str; 2] =
    ["memory growth exceeds memory type's limits", "overflow calculating new table size"];

/// Whether `error` is a failure nothing was granted for.
fn ungranted(error: &wasmtime::Error) -> bool {
    let text = error.to_string();
    UNGRANTED_FAILURES.contains(&text.as_str())
}

/// The budgets a store charges.
#[derive(Debug, Clone)]
pub(crate) struct Budgets {
    /// The container's memory limit, shared by all its stores.
    pub(crate) container: Budget,
    /// The node's memory for pods, shared by every guest.
    pub(crate) node: Budget,
}

/// Which limit a refused grow would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// The container's memory limit (all its instances together).
    Container(Refused),
    /// The node's memory for pods (all guests together).
    Node(Refused),
}

/// The error that fails a grow past a limit (it becomes a trap).
#[derive(Debug, thiserror::Error)]
pub(crate) enum MemoryLimitExceeded {
    #[error("memory limit of {} bytes exceeded: growing to {} bytes", .0.limit, .0.requested)]
    Container(Refused),
    #[error("the node's memory for pods is exhausted: all guests together would reach {} of {} bytes", .0.requested, .0.limit)]
    Node(Refused),
}

/// Caps on what one guest store may allocate.
///
/// Dropping it (with its store) gives its memory back to both budgets and
/// takes it off the live figure.
#[derive(Debug)]
pub(crate) struct Limiter {
    budgets: Budgets,
    /// Bytes charged to both budgets (and published to `stats`): memories
    /// plus tables.
    charged: u64,
    /// Bytes granted by the last `memory_growing`, given back if the grow
    /// then fails for another reason.
    last_grant: u64,
    /// Bytes granted by the last `table_growing`.
    last_table_grant: u64,
    /// Set by the first grow refused for passing a budget.
    exceeded: Option<Exceeded>,
    /// Where the live memory figure goes.
    stats: GuestStats,
    table_elements: usize,
    instances: usize,
    tables: usize,
    memories: usize,
}

/// The counts a [`Limiter`] enforces besides memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) table_elements: usize,
    pub(crate) instances: usize,
    pub(crate) tables: usize,
    pub(crate) memories: usize,
}

impl Limiter {
    pub(crate) fn new(budgets: Budgets, counts: Counts, stats: GuestStats) -> Self {
        Self {
            budgets,
            charged: 0,
            last_grant: 0,
            last_table_grant: 0,
            exceeded: None,
            stats,
            table_elements: counts.table_elements,
            instances: counts.instances,
            tables: counts.tables,
            memories: counts.memories,
        }
    }

    /// Whether the guest tried to go over its memory limit or the node's.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.is_some()
    }

    /// The OOM-kill exit of a guest that went over a limit.
    pub(crate) fn oom_exit(&self) -> Option<Exit> {
        match self.exceeded? {
            Exceeded::Container(refused) => Some(Exit::out_of_memory(refused.limit)),
            Exceeded::Node(refused) => Some(Exit::node_out_of_memory(refused.limit)),
        }
    }

    /// Charges `bytes` to both budgets (the container's first: a guest over
    /// its own limit is told so even when the node is full too), then
    /// publishes them.
    fn take(&mut self, bytes: u64) -> Result<(), MemoryLimitExceeded> {
        let refused = match self.budgets.container.charge(bytes) {
            Err(refused) => Some(Exceeded::Container(refused)),
            Ok(()) => match self.budgets.node.charge(bytes) {
                Ok(()) => None,
                Err(refused) => {
                    self.budgets.container.release(bytes);
                    Some(Exceeded::Node(refused))
                }
            },
        };
        if let Some(exceeded) = refused {
            if self.exceeded.is_none() {
                self.stats.oom_killed();
            }
            self.exceeded = Some(exceeded);
            tracing::debug!(?exceeded, "guest exceeded a memory limit");
            return Err(match exceeded {
                Exceeded::Container(r) => MemoryLimitExceeded::Container(r),
                Exceeded::Node(r) => MemoryLimitExceeded::Node(r),
            });
        }
        self.charged = self.charged.saturating_add(bytes);
        self.stats.adjust_memory(bytes, 0);
        Ok(())
    }

    /// Takes `bytes` off the live figure, then gives them back to the
    /// budgets (in that order, so the figure never shows more than the
    /// budget holds).
    fn give_back(&mut self, bytes: u64) {
        let bytes = bytes.min(self.charged);
        self.charged -= bytes;
        self.stats.adjust_memory(0, bytes);
        self.budgets.node.release(bytes);
        self.budgets.container.release(bytes);
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.give_back(self.charged);
    }
}

fn bytes(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            // Beyond the memory's own declared maximum: an ordinary -1.
            return Ok(false);
        }
        let grant = bytes(desired).saturating_sub(bytes(current));
        self.take(grant).map_err(wasmtime::Error::new)?;
        self.last_grant = grant;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if !ungranted(&error) {
            let grant = std::mem::take(&mut self.last_grant);
            self.give_back(grant);
        }
        tracing::debug!(error = %error, "guest memory grow failed");
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        let grant = bytes(desired).saturating_sub(bytes(current)).saturating_mul(TABLE_ELEMENT_BYTES);
        self.take(grant).map_err(wasmtime::Error::new)?;
        self.last_table_grant = grant;
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if !ungranted(&error) {
            let grant = std::mem::take(&mut self.last_table_grant);
            self.give_back(grant);
        }
        tracing::debug!(error = %error, "guest table grow failed");
        Ok(())
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

#[cfg(test)]
mod tests;
