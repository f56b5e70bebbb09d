//! [`Limiter`]: the per-store resource limiter that turns "memory limit
//! exceeded" into an OOM kill.
//!
//! wasmtime's `StoreLimits` caps each memory separately and, by default, makes
//! a refused `memory.grow` return -1, which the guest's allocator turns into a
//! `NULL` from `malloc`. A container with a memory limit should instead be
//! killed when it goes over, so this limiter counts the bytes of *all* the
//! guest's linear memories together and, when a grow would exceed the cap,
//! records it and fails the grow with an error, which wasmtime raises as a
//! trap. The runner then sees [`Limiter::exceeded`] and reports the exit as
//! out-of-memory instead of as a trap.
//!
//! Every granted or given-back grow (memories and tables) also updates the
//! guest's [`GuestStats::memory_bytes`], so the live figure is exact.

use wasmtime::ResourceLimiter;

use crate::stats::GuestStats;

/// Bytes charged per table element in the live memory figure: a table holds
/// one pointer per element.
const TABLE_ELEMENT_BYTES: u64 = std::mem::size_of::<usize>() as u64;

/// The error that fails a `memory.grow` past the cap (it becomes a trap).
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded: growing to {requested} bytes")]
pub(crate) struct MemoryLimitExceeded {
    limit: u64,
    requested: u64,
}

/// Caps on what one guest store may allocate.
///
/// Dropping it (with its store) takes its memory off the live figure.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Cap on the bytes of all linear memories together.
    memory_limit: u64,
    /// Bytes of linear memory granted so far.
    memory_used: u64,
    /// Bytes granted by the last `memory_growing`, given back if the grow
    /// then fails for another reason.
    last_grant: u64,
    /// Set once a grow was refused for exceeding `memory_limit`.
    exceeded: bool,
    /// Elements of all tables granted so far.
    table_used: u64,
    /// Elements granted by the last `table_growing`.
    last_table_grant: u64,
    /// Where the live memory figure goes.
    stats: GuestStats,
    /// Bytes this limiter has added to `stats`.
    published: u64,
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
    pub(crate) fn new(memory_limit: u64, counts: Counts, stats: GuestStats) -> Self {
        Self {
            memory_limit,
            memory_used: 0,
            last_grant: 0,
            exceeded: false,
            table_used: 0,
            last_table_grant: 0,
            stats,
            published: 0,
            table_elements: counts.table_elements,
            instances: counts.instances,
            tables: counts.tables,
            memories: counts.memories,
        }
    }

    /// Whether the guest tried to go over its memory limit.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// The memory cap in bytes.
    pub(crate) fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    /// Publishes the current bytes of memories and tables (as a change, so
    /// stores sharing a stats handle add up).
    fn publish(&mut self) {
        let tables = self.table_used.saturating_mul(TABLE_ELEMENT_BYTES);
        let now = self.memory_used.saturating_add(tables);
        self.stats.adjust_memory(now.saturating_sub(self.published), self.published.saturating_sub(now));
        self.published = now;
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.stats.adjust_memory(0, self.published);
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
        let total = self.memory_used.saturating_add(grant);
        if total > self.memory_limit {
            self.exceeded = true;
            tracing::debug!(
                memory.limit = self.memory_limit,
                memory.requested = total,
                "guest exceeded its memory limit"
            );
            return Err(wasmtime::Error::new(MemoryLimitExceeded { limit: self.memory_limit, requested: total }));
        }
        self.memory_used = total;
        self.last_grant = grant;
        self.publish();
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_used = self.memory_used.saturating_sub(self.last_grant);
        self.last_grant = 0;
        self.publish();
        tracing::debug!(error = %error, "guest memory grow failed");
        Ok(())
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements || maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.last_table_grant = bytes(desired).saturating_sub(bytes(current));
        self.table_used = self.table_used.saturating_add(self.last_table_grant);
        self.publish();
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.table_used = self.table_used.saturating_sub(self.last_table_grant);
        self.last_table_grant = 0;
        self.publish();
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
mod tests {
    use super::*;

    const PAGE: usize = 64 * 1024;

    fn limiter(limit: u64) -> Limiter {
        let counts = Counts { table_elements: 10, instances: 1, tables: 1, memories: 2 };
        Limiter::new(limit, counts, GuestStats::new())
    }

    #[test]
    fn counts_all_memories_together() {
        let mut l = limiter(4 * PAGE as u64);
        assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(!l.exceeded());
        let err = l.memory_growing(2 * PAGE, 3 * PAGE, None).unwrap_err();
        assert!(l.exceeded());
        assert!(err.to_string().contains("memory limit of 262144 bytes exceeded"));
    }

    #[test]
    fn declared_maximum_is_a_plain_failure() {
        let mut l = limiter(u64::MAX);
        assert!(!l.memory_growing(PAGE, 3 * PAGE, Some(2 * PAGE)).unwrap());
        assert!(!l.exceeded());
    }

    #[test]
    fn failed_grow_gives_the_grant_back() {
        let mut l = limiter(2 * PAGE as u64);
        assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
        l.memory_grow_failed(wasmtime::format_err!("mmap failed")).unwrap();
        assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(!l.exceeded());
    }

    #[test]
    fn memory_and_tables_are_published() {
        let stats = GuestStats::new();
        let counts = Counts { table_elements: 10, instances: 1, tables: 1, memories: 2 };
        let mut l = Limiter::new(u64::MAX, counts, stats.clone());
        assert!(l.memory_growing(0, 2 * PAGE, None).unwrap());
        assert!(l.table_growing(0, 4, None).unwrap());
        assert_eq!(stats.memory_bytes(), 2 * PAGE as u64 + 4 * TABLE_ELEMENT_BYTES);
        assert!(l.memory_growing(2 * PAGE, 3 * PAGE, None).unwrap());
        l.memory_grow_failed(wasmtime::format_err!("mmap failed")).unwrap();
        l.table_grow_failed(wasmtime::format_err!("no")).unwrap();
        assert_eq!(stats.memory_bytes(), 2 * PAGE as u64);
        // A second store on the same handle adds up; each takes its own
        // share off when dropped.
        let mut other = Limiter::new(u64::MAX, counts, stats.clone());
        assert!(other.memory_growing(0, PAGE, None).unwrap());
        assert_eq!(stats.memory_bytes(), 3 * PAGE as u64);
        drop(l);
        assert_eq!(stats.memory_bytes(), PAGE as u64);
        drop(other);
        assert_eq!(stats.memory_bytes(), 0);
    }

    #[test]
    fn table_elements_are_capped() {
        let mut l = limiter(u64::MAX);
        assert!(l.table_growing(0, 10, None).unwrap());
        assert!(!l.table_growing(0, 11, None).unwrap());
    }
}
