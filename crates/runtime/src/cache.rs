//! The compile cache: one [`Compiled`] per content digest, compiled once.
//!
//! # Guarantees
//!
//! - **Single flight.** Each digest maps to a `tokio::sync::OnceCell`; the
//!   first caller loads and compiles, concurrent callers for the same digest
//!   wait for it and share the result.
//! - **Off the async workers.** Cranelift is CPU-bound synchronous work, so the
//!   compilation runs on tokio's blocking pool (`spawn_blocking`), bounded by
//!   that pool's size. Guests never hold a blocking thread.
//! - **Failures are not cached.** A failed load or compile leaves the cell
//!   empty and the next caller tries again. Loads can fail transiently, and an
//!   invalid image fails fast on every try (validation stops at the first
//!   error), so caching errors would buy little and could pin a transient one.
//!
//! # Caveats
//!
//! - The digest is trusted as the key: the caller (the verified OCI store)
//!   must pass the digest of the bytes its loader returns.
//! - The number of entries is bounded by the caller, which calls
//!   [`Runtime::retain`](crate::Runtime::retain) with the images still on the
//!   node. An entry is only ever evicted by `retain`, never behind the back of
//!   a waiting caller, so the single-flight guarantee holds.
//! - If the caller that runs the compilation is cancelled, the blocking
//!   compilation still finishes but its result is dropped, and the next
//!   waiter compiles again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OnceCell;
use wasmlet_oci::Digest;

use crate::compiled::Compiled;

/// Counters of the compile cache, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileStats {
    /// Compilations started (calls into wasmtime's compiler, which may itself
    /// be served from wasmtime's on-disk cache).
    pub compiles: u64,
    /// Compilations (or loads) that failed.
    pub failures: u64,
    /// `compile` calls answered from the cache without waiting.
    pub hits: u64,
    /// Digests currently cached (successfully compiled).
    pub cached: usize,
    /// Compilations served from wasmtime's on-disk cache (0 without
    /// [`Config::cache_dir`](crate::Config::cache_dir)).
    pub disk_hits: usize,
}

/// The digest → compiled-code map.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: Mutex<HashMap<Digest, Arc<OnceCell<Compiled>>>>,
    compiles: AtomicU64,
    failures: AtomicU64,
    hits: AtomicU64,
}

impl Cache {
    fn entries(&self) -> MutexGuard<'_, HashMap<Digest, Arc<OnceCell<Compiled>>>> {
        // The map is only touched in short critical sections that cannot
        // leave it inconsistent, so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cell of `digest`, created empty if missing.
    pub(crate) fn cell(&self, digest: &Digest) -> Arc<OnceCell<Compiled>> {
        let mut entries = self.entries();
        match entries.get(digest) {
            Some(cell) => Arc::clone(cell),
            None => {
                let cell = Arc::new(OnceCell::new());
                entries.insert(digest.clone(), Arc::clone(&cell));
                cell
            }
        }
    }

    /// Drops every entry whose digest is not in `keep`.
    pub(crate) fn retain(&self, keep: &HashSet<Digest>) {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|digest, _| keep.contains(digest));
        tracing::debug!(cache.dropped = before - entries.len(), cache.kept = entries.len(), "compile cache retained");
    }

    pub(crate) fn record_compile(&self) {
        self.compiles.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> CompileStats {
        let cached = self.entries().values().filter(|cell| cell.initialized()).count();
        CompileStats {
            compiles: self.compiles.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            cached,
            disk_hits: 0,
        }
    }
}
