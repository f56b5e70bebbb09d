//! Publishing a `.wasm` binary to a registry.
//!
//! [`push_wasm`] is the one-call entry point. [`Artifact`] separates the
//! offline part (building config, layers and manifest) from the upload, so
//! the result can be inspected or built deterministically.
//!
//! Every layout is pushed as an OCI image manifest v1. Blobs the registry
//! already has are not uploaded again.

mod artifact;

use std::fmt;
use std::str::FromStr;

use http::HeaderValue;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tracing::{debug, info};

pub use artifact::{Artifact, ArtifactBuilder, DEFAULT_TITLE, IMAGE_ENTRYPOINT};

use crate::digest::Digest;
use crate::media_type;
use crate::registry::{Class, classify};

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from building or pushing an [`Artifact`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes do not start with a wasm module or component header.
    #[error("the file is not a WebAssembly module or component")]
    NotWasm,
    /// The component's import/export sections cannot be read.
    #[error("the WebAssembly component is malformed")]
    InvalidComponent(#[source] wasmparser::BinaryReaderError),
    /// Building the image layer failed.
    #[error("cannot build the image layer")]
    Layer(#[source] std::io::Error),
    /// Serializing the config or manifest failed.
    #[error("cannot encode the {what}")]
    Encode {
        /// `config` or `manifest`.
        what: &'static str,
        /// The serializer error.
        #[source]
        source: serde_json::Error,
    },
    /// The registry refused the credentials (or their absence).
    #[error("not authorized to push {reference}")]
    Unauthorized {
        /// The target reference.
        reference: String,
        /// The registry error.
        #[source]
        source: OciDistributionError,
    },
    /// Any other registry or network failure.
    #[error("pushing {reference} failed")]
    Registry {
        /// The target reference.
        reference: String,
        /// The registry error.
        #[source]
        source: OciDistributionError,
    },
}

impl Error {
    fn registry(reference: &Reference, source: OciDistributionError) -> Self {
        let reference = reference.whole();
        match classify(&source) {
            Class::Unauthorized(_) => Self::Unauthorized { reference, source },
            _ => Self::Registry { reference, source },
        }
    }
}

/// How the wasm binary is packaged in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// CNCF TAG-Runtime wasm artifact: config [`media_type::WASM_CONFIG_V0`],
    /// one [`media_type::WASM_LAYER`] layer. Understood by wkg, wasmtime and
    /// the runwasi shims.
    #[default]
    Cncf,
    /// The older wasm-to-oci layout used by Krustlet and Spin:
    /// [`media_type::WASM_TO_OCI_CONFIG`] and
    /// [`media_type::WASM_TO_OCI_LAYER`].
    WasmToOci,
    /// A plain OCI image: one tar+gzip layer holding [`IMAGE_ENTRYPOINT`],
    /// architecture `wasm`, `config.Entrypoint` naming the file.
    Image,
}

impl Layout {
    /// All layouts, in the order they are documented.
    pub const ALL: [Layout; 3] = [Layout::Cncf, Layout::WasmToOci, Layout::Image];

    /// The name used on command lines: `cncf`, `wasm-to-oci` or `image`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cncf => "cncf",
            Self::WasmToOci => "wasm-to-oci",
            Self::Image => "image",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A layout name that is not `cncf`, `wasm-to-oci` or `image`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown layout {0:?}: expected cncf, wasm-to-oci or image")]
pub struct ParseLayoutError(String);

impl FromStr for Layout {
    type Err = ParseLayoutError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|l| l.name() == s).ok_or_else(|| ParseLayoutError(s.to_owned()))
    }
}

/// What a successful push produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Digest of the pushed manifest: `reference@manifest_digest` pulls
    /// exactly this artifact.
    pub manifest_digest: Digest,
    /// Digest of the wasm bytes themselves (what [`crate::Store`] keys on).
    pub wasm_digest: Digest,
    /// The manifest URL the registry returned.
    pub manifest_url: String,
}

/// Builds an artifact for `wasm` in `layout` (created now, layer title
/// [`DEFAULT_TITLE`]) and pushes it to `reference`.
///
/// # Errors
///
/// See [`Error`]: the bytes are not wasm, or the registry refused or failed.
pub async fn push_wasm(
    client: &Client,
    reference: &Reference,
    wasm: Vec<u8>,
    layout: Layout,
    auth: &RegistryAuth,
) -> Result<Pushed> {
    Artifact::builder(wasm).layout(layout).build()?.push(client, reference, auth).await
}

impl Artifact {
    /// Uploads the layers and config (unless the registry has them) and
    /// then the manifest, tagged as `reference`.
    ///
    /// # Errors
    ///
    /// [`Error::Unauthorized`] or [`Error::Registry`].
    pub async fn push(&self, client: &Client, reference: &Reference, auth: &RegistryAuth) -> Result<Pushed> {
        client.store_auth_if_needed(reference.resolve_registry(), auth).await;
        let err = |e| Error::registry(reference, e);
        for (digest, data) in self.blobs() {
            if client.blob_exists(reference, digest).await.map_err(err)? {
                debug!(%reference, digest, "blob already present");
                continue;
            }
            debug!(%reference, digest, size = data.len(), "uploading blob");
            client.push_blob(reference, data.clone(), digest).await.map_err(err)?;
        }
        let manifest_url = client
            .push_manifest_raw(
                reference,
                self.manifest_bytes().to_vec(),
                HeaderValue::from_static(media_type::OCI_MANIFEST),
            )
            .await
            .map_err(err)?;
        info!(
            %reference,
            layout = %self.layout(),
            manifest.digest = %self.manifest_digest(),
            "pushed wasm"
        );
        Ok(Pushed {
            manifest_digest: self.manifest_digest().clone(),
            wasm_digest: self.wasm_digest().clone(),
            manifest_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_round_trip() {
        for l in Layout::ALL {
            assert_eq!(l.name().parse::<Layout>().unwrap(), l);
        }
        assert!("docker".parse::<Layout>().is_err());
    }
}
