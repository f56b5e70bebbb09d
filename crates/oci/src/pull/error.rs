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
    #[error("{reference}: pull access denied: the registry answered {}", status_text(*.status))]
    Unauthorized {
        /// The normalized reference.
        reference: String,
        /// 401 or 403.
        status: u16,
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
    /// The registry answered a request with an error status other than
    /// 401, 403 or (for a manifest) 404, e.g. 503.
    #[error("{reference}: registry answered {} for the {what}", status_text(*.status))]
    Status {
        /// The normalized reference.
        reference: String,
        /// `manifest` or `blob sha256:…`.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The registry error.
        #[source]
        source: OciDistributionError,
    },
    /// The connection broke while a blob was being read.
    #[error("{reference}: {cause} while reading blob {digest} (got {got} of {declared} bytes)")]
    Interrupted {
        /// The normalized reference.
        reference: String,
        /// The blob.
        digest: String,
        /// What happened: `connection reset`, `connection closed`, …
        cause: &'static str,
        /// Bytes received before it broke.
        got: u64,
        /// The blob's size in the manifest.
        declared: u64,
        /// The transport error (boxed: it is large).
        #[source]
        source: Box<OciDistributionError>,
    },
    /// The registry sent a complete answer shorter than the blob.
    #[error("{reference}: blob {digest} is truncated (got {got} of {declared} bytes)")]
    Truncated {
        /// The normalized reference.
        reference: String,
        /// The blob.
        digest: String,
        /// Bytes received.
        got: u64,
        /// The blob's size in the manifest.
        declared: u64,
    },
    /// Fewer than [`crate::limits::MIN_PROGRESS_BYTES`] arrived within
    /// [`crate::PullLimits::progress_deadline`] (e.g. a 1 byte/s trickle).
    #[error(
        "{reference}: no progress for {}s: {received} bytes arrived in that time, fewer than the {} bytes that \
         count as progress (image pull progress deadline)",
        deadline.as_secs_f64(), crate::limits::MIN_PROGRESS_BYTES
    )]
    Stalled {
        /// The normalized reference.
        reference: String,
        /// The progress deadline.
        deadline: std::time::Duration,
        /// Bytes received in the last window.
        received: u64,
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
            Self::Status { .. } => "status",
            Self::Interrupted { .. } => "interrupted",
            Self::Truncated { .. } => "truncated",
            Self::Stalled { .. } => "stalled",
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
        Self::classified(reference, source, None)
    }

    /// A failed blob request.
    pub(crate) fn blob(reference: &str, digest: &str, source: OciDistributionError) -> Self {
        Self::classified(reference, source, Some(digest))
    }

    pub(crate) fn store(reference: &str, source: store::Error) -> Self {
        Self::Store { reference: reference.to_owned(), source }
    }

    fn classified(reference: &str, source: OciDistributionError, blob: Option<&str>) -> Self {
        let reference = reference.to_owned();
        let what = || blob.map_or_else(|| "manifest".to_owned(), |d| format!("blob {d}"));
        match classify(&source) {
            Class::Unauthorized(status) => Self::Unauthorized { reference, status, source },
            Class::NotFound if blob.is_none() => Self::ManifestNotFound { reference, source },
            Class::DigestMismatch { expected, actual } => Self::DigestMismatch { reference, expected, actual },
            Class::Status(status) => Self::Status { reference, what: what(), status, source },
            Class::NotFound => Self::Status { reference, what: what(), status: 404, source },
            Class::Other => Self::Registry { reference, source },
        }
    }
}

/// `503 Service Unavailable`.
fn status_text(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason());
    match reason {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// What broke a transfer, if `error` is a transport failure (rather than a
/// registry answer): `connection reset`, `connection closed`, …
pub(crate) fn transfer_cause(error: &OciDistributionError) -> Option<&'static str> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut transport = false;
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            return Some(match io.kind() {
                K::ConnectionReset => "connection reset",
                K::ConnectionAborted => "connection aborted",
                K::UnexpectedEof => "connection closed",
                K::TimedOut => "read timed out",
                K::BrokenPipe => "connection broken",
                _ => "transfer failed",
            });
        }
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return Some("read timed out");
            }
            transport |= r.is_body() || r.is_decode() || r.is_request() || r.is_connect();
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                return Some("connection closed");
            }
            transport = true;
        }
        cur = e.source();
    }
    transport.then_some("transfer failed")
}
