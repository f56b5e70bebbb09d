//! [`Allocator`]: how the engine allocates guest instances, and the sizes of
//! the pooling allocator ([`Pool`]).
//!
//! The runtime has one engine for every guest, so the choice is node-wide.
//! The default is wasmtime's **pooling allocator**: the engine reserves, once,
//! address space for a fixed number of linear memories, tables, instances and
//! fiber stacks, and a new instance takes free slots instead of `mmap`-ing
//! (and later `munmap`-ing, with TLB shootdowns) its own. That is what makes
//! one fresh instance per `wasi:http` request cheap (see
//! `docs/benchmarks.md`), and commands get the same slots.
//!
//! # Guarantees
//!
//! The pool bounds, node-wide, what is alive at once: at most
//! [`Pool::instances`] guest stores (running commands plus `wasi:http`
//! requests in flight, each with one fiber stack), [`Pool::core_instances`]
//! core module instances (a component holds several), [`Pool::memories`]
//! linear memories and [`Pool::tables`] tables. A guest that would exceed
//! them fails to instantiate: a command with a start error, a request with
//! `503 Service Unavailable`.
//!
//! # Caveats
//!
//! - Address space, not memory: every memory slot reserves
//!   [`Pool::max_memory_bytes`] plus a guard (4 GiB + 32 MiB by default), so
//!   the default pool reserves about 4 TiB of the 128 TiB a 64-bit Linux
//!   process has, and only touched pages are resident. A process can hold
//!   about thirty such runtimes (one per node agent, more in tests).
//! - A memory cannot grow past [`Pool::max_memory_bytes`] (4 GiB, all a
//!   wasm32 memory can address), nor a table past [`Pool::table_elements`],
//!   whatever the guest's own limit.

use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig};

/// Default [`Pool::instances`]: live guest stores node-wide (as
/// `wasmtime serve`'s default pool).
pub const DEFAULT_POOL_INSTANCES: u32 = 1_000;

/// Default [`Pool::core_instances`]: core module instances node-wide (a Rust
/// component has 3–4, a componentize-py one about 10).
pub const DEFAULT_POOL_CORE_INSTANCES: u32 = 10_000;

/// Default [`Pool::memories`]: linear memories node-wide.
pub const DEFAULT_POOL_MEMORIES: u32 = 1_000;

/// Default [`Pool::tables`]: tables node-wide.
pub const DEFAULT_POOL_TABLES: u32 = 2_000;

/// Default [`Pool::max_memory_bytes`]: all a wasm32 memory can address.
pub const DEFAULT_POOL_MAX_MEMORY_BYTES: u64 = 4 << 30;

/// Default [`Pool::table_elements`] per table (a CPython component has about
/// 12k functions in its table; wasmtime's default is 20k).
pub const DEFAULT_POOL_TABLE_ELEMENTS: usize = 100_000;

/// Default [`Pool::memories_per_module`] and [`Pool::tables_per_module`].
pub const DEFAULT_POOL_PER_MODULE: u32 = 4;

/// How the engine allocates instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocator {
    /// wasmtime's default: every instance maps its own memories and stacks.
    OnDemand,
    /// The pooling allocator with these sizes (the default).
    Pooling(Pool),
}

impl Default for Allocator {
    fn default() -> Self {
        Self::Pooling(Pool::default())
    }
}

/// Sizes of the pooling allocator; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Guest stores alive at once (component instances and fiber stacks).
    pub instances: u32,
    /// Core module instances alive at once.
    pub core_instances: u32,
    /// Linear memories alive at once.
    pub memories: u32,
    /// Tables alive at once.
    pub tables: u32,
    /// The size a linear memory may grow to, in bytes.
    pub max_memory_bytes: u64,
    /// The elements a table may grow to.
    pub table_elements: usize,
    /// Memories one core module may define.
    pub memories_per_module: u32,
    /// Tables one core module may define.
    pub tables_per_module: u32,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            instances: DEFAULT_POOL_INSTANCES,
            core_instances: DEFAULT_POOL_CORE_INSTANCES,
            memories: DEFAULT_POOL_MEMORIES,
            tables: DEFAULT_POOL_TABLES,
            max_memory_bytes: DEFAULT_POOL_MAX_MEMORY_BYTES,
            table_elements: DEFAULT_POOL_TABLE_ELEMENTS,
            memories_per_module: DEFAULT_POOL_PER_MODULE,
            tables_per_module: DEFAULT_POOL_PER_MODULE,
        }
    }
}

impl Allocator {
    /// The wasmtime strategy for this allocator.
    pub(crate) fn strategy(&self) -> InstanceAllocationStrategy {
        match self {
            Self::OnDemand => InstanceAllocationStrategy::OnDemand,
            Self::Pooling(pool) => InstanceAllocationStrategy::Pooling(pool.wasmtime()),
        }
    }

    /// Checks the sizes that would make the engine unusable.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        let Self::Pooling(pool) = self else {
            return Ok(());
        };
        if pool.instances == 0 || pool.core_instances == 0 || pool.memories == 0 {
            return Err("the pool must hold at least one instance, core instance and memory");
        }
        if pool.max_memory_bytes == 0 || usize::try_from(pool.max_memory_bytes).is_err() {
            return Err("the pool's max_memory_bytes must be greater than zero and fit the address space");
        }
        Ok(())
    }
}

impl Pool {
    fn wasmtime(&self) -> PoolingAllocationConfig {
        let mut config = PoolingAllocationConfig::new();
        config
            .total_component_instances(self.instances)
            .total_stacks(self.instances)
            .total_core_instances(self.core_instances)
            .total_memories(self.memories)
            .total_tables(self.tables)
            // Validated to fit.
            .max_memory_size(usize::try_from(self.max_memory_bytes).unwrap_or(usize::MAX))
            .table_elements(self.table_elements)
            .max_memories_per_module(self.memories_per_module)
            .max_tables_per_module(self.tables_per_module);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_pooling_and_valid() {
        assert_eq!(Allocator::default(), Allocator::Pooling(Pool::default()));
        assert_eq!(Allocator::default().validate(), Ok(()));
        assert_eq!(Allocator::OnDemand.validate(), Ok(()));
    }

    #[test]
    fn empty_pool_is_refused() {
        let pool = Pool { instances: 0, ..Pool::default() };
        assert!(Allocator::Pooling(pool).validate().is_err());
        let pool = Pool { max_memory_bytes: 0, ..Pool::default() };
        assert!(Allocator::Pooling(pool).validate().is_err());
    }
}
