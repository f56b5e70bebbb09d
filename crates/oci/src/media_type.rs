//! Media types written and accepted by wasmlet.
//!
//! Three layouts carry a WebAssembly binary in a registry:
//!
//! | layout | config | layer |
//! |---|---|---|
//! | CNCF wasm artifact (TAG-Runtime, `oci-wasm`) | [`WASM_CONFIG_V0`] | [`WASM_LAYER`] |
//! | wasm-to-oci (Krustlet, Spin, `oci-client`'s example) | [`WASM_TO_OCI_CONFIG`] | [`WASM_TO_OCI_LAYER`] |
//! | plain OCI / Docker image (`FROM scratch; COPY app.wasm /`) | [`IMAGE_CONFIG`] | [`IMAGE_LAYER_TAR`], [`IMAGE_LAYER_TAR_GZIP`], [`DOCKER_LAYER_TAR_GZIP`] |
//!
//! Manifests are always written as [`OCI_MANIFEST`]; pulls also accept
//! Docker v2 manifests and image indexes / manifest lists.

/// OCI image manifest v1.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index v1.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Config of the CNCF wasm OCI artifact.
pub const WASM_CONFIG_V0: &str = "application/vnd.wasm.config.v0+json";
/// Layer of the CNCF wasm OCI artifact: the raw `.wasm` bytes.
pub const WASM_LAYER: &str = "application/wasm";

/// Config of the older wasm-to-oci layout.
pub const WASM_TO_OCI_CONFIG: &str = "application/vnd.wasm.config.v1+json";
/// Layer of the older wasm-to-oci layout: the raw `.wasm` bytes.
pub const WASM_TO_OCI_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// Component layer used by runwasi; accepted on pull, never written.
pub const BYTECODEALLIANCE_COMPONENT_LAYER: &str = "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";

/// OCI image config.
pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config; accepted on pull, never written.
pub const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Uncompressed OCI image layer.
pub const IMAGE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Gzip-compressed OCI image layer.
pub const IMAGE_LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Uncompressed Docker image layer; accepted on pull.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Gzip-compressed Docker image layer; accepted on pull.
pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Annotation naming the file a layer holds.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// What a layer media type means to wasmlet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// The layer is the `.wasm` binary itself.
    Wasm,
    /// The layer is a tar archive.
    Tar,
    /// The layer is a gzip-compressed tar archive.
    TarGzip,
}

impl LayerKind {
    /// Classifies a layer media type; `None` for types wasmlet cannot use.
    pub fn of(media_type: &str) -> Option<Self> {
        match media_type {
            WASM_LAYER | WASM_TO_OCI_LAYER | BYTECODEALLIANCE_COMPONENT_LAYER => Some(Self::Wasm),
            IMAGE_LAYER_TAR | DOCKER_LAYER_TAR => Some(Self::Tar),
            IMAGE_LAYER_TAR_GZIP | DOCKER_LAYER_TAR_GZIP => Some(Self::TarGzip),
            _ => None,
        }
    }
}

/// Whether `media_type` is an image config whose `config.Entrypoint` names
/// the wasm file inside the layers.
pub fn is_image_config(media_type: &str) -> bool {
    matches!(media_type, IMAGE_CONFIG | DOCKER_IMAGE_CONFIG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_layers() {
        assert_eq!(LayerKind::of(WASM_LAYER), Some(LayerKind::Wasm));
        assert_eq!(LayerKind::of(WASM_TO_OCI_LAYER), Some(LayerKind::Wasm));
        assert_eq!(LayerKind::of(IMAGE_LAYER_TAR), Some(LayerKind::Tar));
        assert_eq!(LayerKind::of(DOCKER_LAYER_TAR_GZIP), Some(LayerKind::TarGzip));
        assert_eq!(LayerKind::of("application/vnd.cncf.helm.chart.content.v1.tar+gzip"), None);
        assert!(is_image_config(DOCKER_IMAGE_CONFIG));
        assert!(!is_image_config(WASM_CONFIG_V0));
    }
}
