//! [`Runtime::compile`]: content-addressed, single-flight compilation (see
//! [`cache`](crate::cache) for the guarantees).

use std::collections::HashSet;
use std::error::Error as StdError;
use std::time::Instant;

use wasmlet_oci::Digest;

use crate::cache::CompileStats;
use crate::compiled::{Code, Compiled, Kind};
use crate::runtime::Runtime;

/// A boxed error from a caller's loader.
pub type LoadError = Box<dyn StdError + Send + Sync>;

/// Why [`Runtime::compile`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The loader could not read the image's bytes.
    #[error("cannot read image {digest}")]
    Load {
        /// The image.
        digest: Digest,
        /// The loader's error.
        #[source]
        source: LoadError,
    },
    /// The image is larger than [`Config::max_module_bytes`](crate::Config::max_module_bytes).
    #[error("image {digest} is {len} bytes, more than the limit of {max} bytes")]
    TooLarge {
        /// The image.
        digest: Digest,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes do not start with a WebAssembly binary header (WAT text is
    /// not accepted).
    #[error(
        "invalid WebAssembly module {digest}: not a WebAssembly binary \
         (the header is neither a core module nor a component)"
    )]
    NotWasm {
        /// The image.
        digest: Digest,
    },
    /// wasmtime rejected the binary. The message carries wasmtime's reason.
    #[error("invalid WebAssembly {kind} {digest}: {reason}")]
    Invalid {
        /// The image.
        digest: Digest,
        /// Module or component.
        kind: Kind,
        /// wasmtime's error, flattened (its whole chain) for status messages.
        reason: String,
        /// wasmtime's error.
        #[source]
        source: wasmtime::Error,
    },
    /// The compilation task panicked.
    #[error("compiling {digest} panicked; this is a bug")]
    Panicked {
        /// The image.
        digest: Digest,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Runtime {
    /// Compiles `bytes`, the image with content digest `digest`, or returns
    /// the cached result. Same as [`compile_with`](Self::compile_with) with a
    /// loader that returns `bytes`.
    ///
    /// # Errors
    ///
    /// See [`CompileError`].
    pub async fn compile(&self, digest: &Digest, bytes: Vec<u8>) -> Result<Compiled, CompileError> {
        self.compile_with(digest, || async { Ok::<_, LoadError>(bytes) }).await
    }

    /// Returns the compiled code of `digest`, calling `load` for its bytes and
    /// compiling them only when it is not cached. Concurrent calls for one
    /// digest compile once; the compilation runs on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// The loader failed, the image is too large, not WebAssembly, or invalid.
    /// Errors are not cached: a later call tries again.
    pub async fn compile_with<F, Fut, E>(&self, digest: &Digest, load: F) -> Result<Compiled, CompileError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
        E: Into<LoadError>,
    {
        let cache = &self.inner.cache;
        let cell = cache.cell(digest);
        if let Some(compiled) = cell.get() {
            cache.record_hit();
            return Ok(compiled.clone());
        }
        let result = cell.get_or_try_init(|| self.load_and_compile(digest, load)).await;
        if result.is_err() {
            cache.record_failure();
        }
        result.cloned()
    }

    async fn load_and_compile<F, Fut, E>(&self, digest: &Digest, load: F) -> Result<Compiled, CompileError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, E>>,
        E: Into<LoadError>,
    {
        let bytes = load().await.map_err(|e| CompileError::Load { digest: digest.clone(), source: e.into() })?;
        let max = self.inner.config.max_module_bytes;
        if bytes.len() > max {
            return Err(CompileError::TooLarge { digest: digest.clone(), len: bytes.len(), max });
        }
        let kind = Kind::detect(&bytes).ok_or_else(|| CompileError::NotWasm { digest: digest.clone() })?;
        self.inner.cache.record_compile();
        let engine = self.inner.engine.clone();
        let started = Instant::now();
        let code = tokio::task::spawn_blocking(move || Code::compile(&engine, kind, &bytes))
            .await
            .map_err(|source| CompileError::Panicked { digest: digest.clone(), source })?
            .map_err(|source| CompileError::Invalid {
                digest: digest.clone(),
                kind,
                reason: crate::run::flatten(&source),
                source,
            })?;
        tracing::info!(
            image.digest = %digest,
            wasm.kind = %kind,
            elapsed = ?started.elapsed(),
            "compiled"
        );
        Ok(Compiled::new(digest.clone(), code))
    }

    /// Drops the cached code of every digest not in `keep` (the images still
    /// on the node). Guests already running keep their code alive.
    pub fn retain(&self, keep: &HashSet<Digest>) {
        self.inner.cache.retain(keep);
    }

    /// Counters of the compile cache.
    pub fn compile_stats(&self) -> CompileStats {
        CompileStats {
            disk_hits: self.inner.disk_cache.as_ref().map_or(0, |c| c.cache_hits()),
            ..self.inner.cache.stats()
        }
    }
}
