//! [`Runtime`]: the one wasmtime `Engine` of the process, its epoch ticker,
//! its WASI linkers and its compile cache.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::{Cache, CacheConfig, Engine, Strategy};

use crate::budget::{Budget, GuestMemory};
use crate::cache::Cache as CompileCache;
use crate::config::Config;
use crate::epoch::EpochTicker;
use crate::limiter::Budgets;
use crate::run::Linkers;
use crate::sockets::NodeNetwork;

/// Why [`Runtime::new`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is unusable.
    #[error("invalid runtime configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// The compiled-code cache could not be set up in `dir`.
    #[error("cannot use {} as the compiled-code cache directory", dir.display())]
    CacheDir {
        /// The configured directory.
        dir: PathBuf,
        /// wasmtime's error.
        #[source]
        source: wasmtime::Error,
    },
    /// wasmtime rejected the engine configuration (with the pooling
    /// allocator: often too little address space for the pool; shrink it or
    /// use [`Allocator::OnDemand`](crate::pool::Allocator::OnDemand)).
    #[error("cannot create the wasmtime engine")]
    Engine {
        /// wasmtime's error.
        #[source]
        source: wasmtime::Error,
    },
    /// The WASI host functions could not be added to a linker.
    #[error("cannot set up the WASI linker")]
    Linker {
        /// wasmtime's error.
        #[source]
        source: wasmtime::Error,
    },
    /// The epoch ticker thread could not be started.
    #[error("cannot start the epoch ticker thread")]
    Ticker {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The node's addresses could not be read, or the thread that keeps
    /// them current could not be started.
    #[error("cannot read the node's network addresses")]
    NodeNetwork {
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The wasm runtime of a node: create one per process and share it.
///
/// `Runtime` is a cheap handle (an `Arc`): clone it into every component that
/// compiles or runs guests. The engine's epoch ticker stops when the last
/// clone is dropped; a running guest borrows its runtime, so that cannot
/// happen while a guest runs.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) config: Config,
    pub(crate) cache: CompileCache,
    /// wasmtime's on-disk cache (a handle sharing its hit counters).
    pub(crate) disk_cache: Option<Cache>,
    pub(crate) linkers: Linkers,
    /// Where guests may not connect (node-local destinations).
    pub(crate) node_network: NodeNetwork,
    /// The node's memory for pods ([`Config::node_memory_bytes`]), charged
    /// by every guest store.
    pub(crate) node_memory: Budget,
    /// Declared last: dropped after everything that uses the engine.
    _ticker: EpochTicker,
}

impl Runtime {
    /// Creates the engine (Cranelift, epoch interruption, async, the
    /// instance allocator of `config.allocator`, the on-disk cache when
    /// `config.cache_dir` is set), the WASI linkers and the epoch ticker.
    ///
    /// # Errors
    ///
    /// An invalid `config`, an unusable cache directory, or a failure to
    /// create the engine, the linkers, the ticker thread or the node's
    /// address watch ([`NodeNetwork`]).
    pub fn new(config: Config) -> Result<Self, Error> {
        config.validate().map_err(|reason| Error::InvalidConfig { reason })?;
        let mut wasm = wasmtime::Config::new();
        wasm.strategy(Strategy::Cranelift)
            .epoch_interruption(true)
            .wasm_component_model(true)
            .allocation_strategy(config.allocator.strategy());
        let disk_cache = config.cache_dir.as_deref().map(disk_cache).transpose()?;
        wasm.cache(disk_cache.clone());
        let engine = Engine::new(&wasm).map_err(|source| Error::Engine { source })?;
        let linkers = Linkers::new(&engine).map_err(|source| Error::Linker { source })?;
        let node_network =
            NodeNetwork::start(config.node_policy.clone()).map_err(|source| Error::NodeNetwork { source })?;
        let ticker =
            EpochTicker::start(engine.clone(), config.epoch_tick).map_err(|source| Error::Ticker { source })?;
        tracing::info!(
            cache_dir = ?config.cache_dir,
            epoch_tick = ?config.epoch_tick,
            allocator = ?config.allocator,
            guest_outbound = ?config.node_policy.outbound_cidrs,
            allowed_node_local = ?config.node_policy.allowed_node_local,
            node_addresses = ?node_network.node_addresses(),
            node_memory_bytes = ?config.node_memory_bytes,
            "wasm runtime started"
        );
        let node_memory = Budget::new(config.node_memory_bytes.unwrap_or(u64::MAX));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                config,
                cache: CompileCache::default(),
                disk_cache,
                linkers,
                node_network,
                node_memory,
                _ticker: ticker,
            }),
        })
    }

    /// The engine, for embedding guests in other ways (e.g. serving a
    /// component's `wasi:http` export) with the same compiled code.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The configuration this runtime was created with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The node's side of every guest's socket policy: what no guest may
    /// reach (see [`sockets`](crate::sockets)).
    pub fn node_network(&self) -> &NodeNetwork {
        &self.inner.node_network
    }

    /// The budgets of a new container (its own, of `memory_limit` bytes, and
    /// the node's).
    pub(crate) fn budgets(&self, memory_limit: u64) -> Budgets {
        Budgets { container: Budget::new(memory_limit), node: self.inner.node_memory.clone() }
    }

    /// The memory of all its guests together, against
    /// [`Config::node_memory_bytes`]; a few atomic loads.
    pub fn guest_memory(&self) -> GuestMemory {
        let budget = &self.inner.node_memory;
        GuestMemory {
            used_bytes: budget.used(),
            peak_bytes: budget.peak(),
            limit_bytes: self.inner.config.node_memory_bytes,
        }
    }
}

/// wasmtime's disk cache in `dir` (made absolute: wasmtime requires it).
fn disk_cache(dir: &std::path::Path) -> Result<Cache, Error> {
    let fail = |source| Error::CacheDir { dir: dir.to_owned(), source };
    let absolute = std::path::absolute(dir).map_err(|e| fail(wasmtime::Error::new(e)))?;
    let mut cache = CacheConfig::new();
    cache.with_directory(absolute);
    Cache::new(cache).map_err(fail)
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("config", &self.inner.config).finish_non_exhaustive()
    }
}
