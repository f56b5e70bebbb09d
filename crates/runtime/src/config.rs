//! [`Config`]: every knob of the runtime, with the defaults a node uses.
//!
//! The binary builds one `Config` (from flags, env or file) and hands it to
//! [`Runtime::new`](crate::Runtime::new). Every limit here is named and has a
//! `DEFAULT_*` constant so tests and docs can refer to it.

use std::path::PathBuf;
use std::time::Duration;

use crate::limiter::Counts;
use crate::pool::Allocator;
use crate::sockets::NodePolicy;

/// Default [`Config::epoch_tick`]: how often the engine's epoch advances.
pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(10);

/// Default [`Config::max_memory_bytes`]: 4 GiB, the most a wasm32 memory can
/// address, so "no limit" behaves like an unconstrained container.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 4 << 30;

/// Default [`Config::node_memory_bytes`]: no node-wide cap (each guest is
/// still capped by its own limit).
pub const DEFAULT_NODE_MEMORY_BYTES: Option<u64> = None;

/// Default [`Config::max_module_bytes`]: the largest binary `compile` accepts.
pub const DEFAULT_MAX_MODULE_BYTES: usize = 256 << 20;

/// Default [`Config::max_instances`] per guest store.
pub const DEFAULT_MAX_INSTANCES: usize = 1_000;

/// Default [`Config::max_tables`] per guest store.
pub const DEFAULT_MAX_TABLES: usize = 1_000;

/// Default [`Config::max_memories`] per guest store.
pub const DEFAULT_MAX_MEMORIES: usize = 100;

/// Default [`Config::max_table_elements`] per table.
pub const DEFAULT_MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Default [`Config::max_resources`]: live handles (files, streams, …) in a
/// component guest's resource table.
pub const DEFAULT_MAX_RESOURCES: usize = 100_000;

/// Default [`Config::stdio_buffer_bytes`].
pub const DEFAULT_STDIO_BUFFER_BYTES: usize = 64 * 1024;

/// Default [`Config::cpu_period`]: the CFS period the kubelet uses (100 ms).
pub const DEFAULT_CPU_PERIOD: Duration = Duration::from_millis(100);

/// Default [`Config::cpu_burst`]: none beyond one period's quota (the
/// cgroup v2 `cpu.max.burst` default).
pub const DEFAULT_CPU_BURST: Duration = Duration::ZERO;

/// Configuration of a [`Runtime`](crate::Runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Directory for wasmtime's own on-disk cache of compiled code, so a
    /// restarted node does not recompile its images. `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// How often the epoch advances. A guest yields to the async scheduler
    /// (and notices `stop`) at most one tick after it last did.
    pub epoch_tick: Duration,
    /// Memory cap of a guest whose container sets no memory limit, in bytes
    /// (all linear memories of the guest together).
    pub max_memory_bytes: u64,
    /// Cap on the memory of all guests of the runtime together, in bytes:
    /// every guest store (commands, modules, each request of a `wasi:http`
    /// server) charges it besides its container's limit, and a grow that
    /// would pass it stops the guest as an OOM kill (exit 137, `OOMKilled`,
    /// a message saying the node's memory for pods is exhausted; a request
    /// gets `500`). The agent sets it to the node's memory capacity minus
    /// the reserved memory, which is the limit upstream puts on the
    /// `kubepods` cgroup. `None`: no node-wide cap.
    pub node_memory_bytes: Option<u64>,
    /// The largest wasm binary [`compile`](crate::Runtime::compile) accepts.
    pub max_module_bytes: usize,
    /// Instances one guest may create (a component holds several).
    pub max_instances: usize,
    /// Tables one guest may create.
    pub max_tables: usize,
    /// Linear memories one guest may create.
    pub max_memories: usize,
    /// Elements one table may grow to.
    pub max_table_elements: usize,
    /// Live resource handles of a component guest.
    pub max_resources: usize,
    /// Bytes of guest stdout/stderr buffered in front of the writer; a full
    /// buffer makes the guest's write wait (backpressure, never loss).
    pub stdio_buffer_bytes: usize,
    /// The CPU limit's period: a guest with a limit of `m` millicores may
    /// save up at most `m / 1000 × cpu_period` of CPU time (its quota) while
    /// idle, and starts with that much. See [`throttle`](crate::throttle).
    pub cpu_period: Duration,
    /// CPU time a limited guest may save up beyond one period's quota (like
    /// cgroup v2 `cpu.max.burst`).
    pub cpu_burst: Duration,
    /// How the engine allocates instances: the pooling allocator by default
    /// (see [`pool`](crate::pool) for its sizes and what they bound).
    pub allocator: Allocator,
    /// The node administrator's limits on where guests may connect; the
    /// node-local destinations are refused on top of them (see
    /// [`sockets`](crate::sockets)).
    pub node_policy: NodePolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cache_dir: None,
            epoch_tick: DEFAULT_EPOCH_TICK,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            node_memory_bytes: DEFAULT_NODE_MEMORY_BYTES,
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_tables: DEFAULT_MAX_TABLES,
            max_memories: DEFAULT_MAX_MEMORIES,
            max_table_elements: DEFAULT_MAX_TABLE_ELEMENTS,
            max_resources: DEFAULT_MAX_RESOURCES,
            stdio_buffer_bytes: DEFAULT_STDIO_BUFFER_BYTES,
            cpu_period: DEFAULT_CPU_PERIOD,
            cpu_burst: DEFAULT_CPU_BURST,
            allocator: Allocator::default(),
            node_policy: NodePolicy::default(),
        }
    }
}

impl Config {
    /// The per-store counts a guest's limiter enforces.
    pub(crate) fn counts(&self) -> Counts {
        Counts {
            table_elements: self.max_table_elements,
            instances: self.max_instances,
            tables: self.max_tables,
            memories: self.max_memories,
        }
    }

    /// Checks the values that would make the runtime misbehave.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.epoch_tick.is_zero() {
            return Err("epoch_tick must be greater than zero");
        }
        if self.max_memory_bytes == 0 {
            return Err("max_memory_bytes must be greater than zero");
        }
        if self.node_memory_bytes == Some(0) {
            return Err("node_memory_bytes must be greater than zero");
        }
        if self.stdio_buffer_bytes == 0 {
            return Err("stdio_buffer_bytes must be greater than zero");
        }
        if self.cpu_period.is_zero() {
            return Err("cpu_period must be greater than zero");
        }
        self.allocator.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::default().epoch_tick, Duration::from_millis(10));
        assert_eq!(Config::default().max_memory_bytes, 4 * 1024 * 1024 * 1024);
    }

    #[test]
    fn zero_tick_is_rejected() {
        let config = Config { epoch_tick: Duration::ZERO, ..Config::default() };
        assert!(config.validate().is_err());
    }

    #[test]
    fn zero_cpu_period_is_rejected() {
        let config = Config { cpu_period: Duration::ZERO, ..Config::default() };
        assert_eq!(config.validate(), Err("cpu_period must be greater than zero"));
    }
}
