//! Errors from [`crate::Store::pull`].

use oci_client::errors::OciDistributionError;

use crate::layer;
use crate::registry::{Class, classify};
use crate::store;

/// Result alias for pulls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a pull failed. Every message names the normalized reference, so it
/// can go into a pod's `ErrImagePull` status as is; the `source()` chain
/// holds the registry's or the OS's detail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry has no manifest for the reference (or no repository).
    #[error("{reference}: manifest not found")]
    ManifestNotFound {
        /// The normalized reference.
        reference: String,
        /// The registry error.
        #[source]
        source: OciDistributionError,
    },
    /// The registry refused the credentials (or their absence).
    #[error("{reference}: pull access denied (not authorized)")]
    Unauthorized {
        /// The normalized reference.
        reference: String,
        /// The registry error.
        #[source]
        source: OciDistributionError,
    },
    /// The manifest's layers are of a type wasmlet cannot run.
    #[error("{reference}: unsupported media type {media_type}")]
    UnsupportedMediaType {
        /// The normalized reference.
        reference: String,
        /// The offending media type.
        media_type: String,
    },
    /// The manifest has no wasm layer and no `.wasm` file in its tar layers.
    #[error("{reference}: no WebAssembly layer or .wasm file in the image")]
    NoWasmLayer {
        /// The normalized reference.
        reference: String,
    },
    /// The image index has no entry for wasm.
    #[error("{reference}: the image index has no wasm platform (os wasip1, wasip2 or wasi, or architecture wasm)")]
    NoWasmPlatform {
        /// The normalized reference.
        reference: String,
    },
    /// Several wasm layers: multi-component apps are not supported.
    #[error("{reference}: {count} WebAssembly layers, expected exactly one")]
    AmbiguousLayers {
        /// The normalized reference.
        reference: String,
        /// How many wasm layers the manifest lists.
        count: usize,
    },
    /// The image config names a file that no layer contains.
    #[error("{reference}: the entrypoint {path} is not in the image")]
    EntrypointNotFound {
        /// The normalized reference.
        reference: String,
        /// The absolute path from the image config.
        path: String,
    },
    /// The pulled bytes are not a wasm module or component.
    #[error("{reference}: the pulled file is not a WebAssembly module or component")]
    NotWasm {
        /// The normalized reference.
        reference: String,
    },
    /// Downloaded content does not match its digest.
    #[error("{reference}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The normalized reference.
        reference: String,
        /// The digest the manifest promised.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A manifest or layer digest uses an algorithm other than sha256.
    #[error("{reference}: unsupported digest {digest} (only sha256 is supported)")]
    UnsupportedDigest {
        /// The normalized reference.
        reference: String,
        /// The digest.
        digest: String,
    },
    /// The image config is not valid JSON.
    #[error("{reference}: invalid image config")]
    Config {
        /// The normalized reference.
        reference: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A tar layer could not be read.
    #[error("{reference}: cannot extract the wasm file from layer {digest}")]
    Layer {
        /// The normalized reference.
        reference: String,
        /// The layer digest.
        digest: String,
        /// What went wrong.
        #[source]
        source: layer::Error,
    },
    /// A part of the image is larger than the node accepts
    /// ([`crate::PullLimits`]).
    #[error("{reference}: the image {what} is {size} bytes or more, over the node's limit of {limit} bytes")]
    TooLarge {
        /// The normalized reference.
        reference: String,
        /// `manifest`, `config`, `layer` or `wasm file`.
        what: &'static str,
        /// Its size as declared, or as far as it was read.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A layer's body is longer than its descriptor's size (reading stopped
    /// there).
    #[error("{reference}: layer {digest} holds more than the {declared} bytes its manifest declares")]
    LayerSize {
        /// The normalized reference.
        reference: String,
        /// The layer.
        digest: String,
        /// The size in the manifest.
        declared: u64,
    },
    /// Writing the layer would leave the store's disk with less free space
    /// than [`crate::PullLimits::min_free_disk_bytes`].
    #[error(
        "{reference}: not enough disk space for layer {digest} of {size} bytes: {available} bytes free, \
         {reserve} must stay free"
    )]
    NoSpace {
        /// The normalized reference.
        reference: String,
        /// The layer.
        digest: String,
        /// Its declared size.
        size: u64,
        /// Free bytes on the store's filesystem.
        available: u64,
        /// What must remain free.
        reserve: u64,
    },
    /// Any other registry or network failure.
    #[error("{reference}: registry request failed")]
    Registry {
        /// The normalized reference.
        reference: String,
        /// The registry error.
        #[source]
        source: OciDistributionError,
    },
    /// The local store failed.
    #[error("{reference}: cannot store the image locally")]
    Store {
        /// The normalized reference.
        reference: String,
        /// The store error.
        #[source]
        source: store::Error,
    },
}

impl Error {
    /// A low-cardinality name for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::ManifestNotFound { .. } => "manifest_not_found",
            Self::Unauthorized { .. } => "unauthorized",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::NoWasmLayer { .. } => "no_wasm_layer",
            Self::NoWasmPlatform { .. } => "no_wasm_platform",
            Self::AmbiguousLayers { .. } => "ambiguous_layers",
            Self::EntrypointNotFound { .. } => "entrypoint_not_found",
            Self::NotWasm { .. } => "not_wasm",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::UnsupportedDigest { .. } => "unsupported_digest",
            Self::Config { .. } => "config",
            Self::Layer { .. } => "layer",
            Self::TooLarge { .. } => "too_large",
            Self::LayerSize { .. } => "layer_size",
            Self::NoSpace { .. } => "no_space",
            Self::Registry { .. } => "registry",
            Self::Store { .. } => "store",
        }
    }

    /// Whether nothing answered at the registry's address: the connection
    /// (or, for https, its TLS handshake) failed.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Registry { source: OciDistributionError::RequestError(e), .. } if e.is_connect())
    }

    /// Whether the registry said the reference does not exist; pull again
    /// only after the user fixes the image name.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::ManifestNotFound { .. })
    }

    /// A failed manifest request.
    pub(crate) fn manifest(reference: &str, source: OciDistributionError) -> Self {
        Self::classified(reference, source, true)
    }

    /// A failed blob request.
    pub(crate) fn blob(reference: &str, source: OciDistributionError) -> Self {
        Self::classified(reference, source, false)
    }

    pub(crate) fn store(reference: &str, source: store::Error) -> Self {
        Self::Store { reference: reference.to_owned(), source }
    }

    fn classified(reference: &str, source: OciDistributionError, manifest: bool) -> Self {
        let reference = reference.to_owned();
        match classify(&source) {
            Class::Unauthorized => Self::Unauthorized { reference, source },
            Class::NotFound if manifest => Self::ManifestNotFound { reference, source },
            Class::DigestMismatch { expected, actual } => Self::DigestMismatch { reference, expected, actual },
            Class::NotFound | Class::Other => Self::Registry { reference, source },
        }
    }
}
