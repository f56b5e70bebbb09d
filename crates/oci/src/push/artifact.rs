//! Building the config, layers and manifest of each [`Layout`] offline.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use oci_client::client::{Config, ImageLayer};
use oci_client::config::{Architecture, ConfigFile, Os, Rootfs};
use oci_client::manifest::OciImageManifest;
use serde::Serialize;

use super::{Error, Layout, Result};
use crate::digest::Digest;
use crate::layer::single_file_layer;
use crate::media_type;
use crate::wasm::{ComponentInterfaces, WasmKind};

/// Layer title annotation used when none is given.
pub const DEFAULT_TITLE: &str = "app.wasm";
/// Where [`Layout::Image`] puts the wasm file, and its `config.Entrypoint`.
pub const IMAGE_ENTRYPOINT: &str = "/app.wasm";

/// A wasm binary packaged for one [`Layout`], ready to push.
pub struct Artifact {
    layout: Layout,
    kind: WasmKind,
    wasm_digest: Digest,
    layers: Vec<ImageLayer>,
    config: Config,
    manifest: OciImageManifest,
    manifest_bytes: Vec<u8>,
    manifest_digest: Digest,
}

/// Options for [`Artifact::builder`].
#[must_use]
pub struct ArtifactBuilder {
    wasm: Vec<u8>,
    layout: Layout,
    title: String,
    created: SystemTime,
}

impl ArtifactBuilder {
    /// The packaging; [`Layout::Cncf`] by default.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The `org.opencontainers.image.title` of the wasm layer (CNCF and
    /// wasm-to-oci layouts); [`DEFAULT_TITLE`] by default.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// The config's `created` time (and the tar entry's mtime); now by
    /// default. Fix it to get reproducible digests.
    pub fn created(mut self, created: SystemTime) -> Self {
        self.created = created;
        self
    }

    /// Builds the config, layer(s) and manifest.
    ///
    /// # Errors
    ///
    /// [`Error::NotWasm`], [`Error::InvalidComponent`], [`Error::Layer`] or
    /// [`Error::Encode`].
    pub fn build(self) -> Result<Artifact> {
        let kind = WasmKind::detect(&self.wasm).ok_or(Error::NotWasm)?;
        let wasm_digest = Digest::of(&self.wasm);
        let created = DateTime::<Utc>::from(self.created).trunc_subsecs(0);
        let (layers, config) = match self.layout {
            Layout::Cncf => cncf(self.wasm, &self.title, kind, &wasm_digest, created)?,
            Layout::WasmToOci => wasm_to_oci(self.wasm, &self.title),
            Layout::Image => image(&self.wasm, kind, self.created, created)?,
        };
        let mut manifest = OciImageManifest::build(&layers, &config, None);
        manifest.media_type = Some(media_type::OCI_MANIFEST.to_owned());
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|source| Error::Encode { what: "manifest", source })?;
        let manifest_digest = Digest::of(&manifest_bytes);
        Ok(Artifact {
            layout: self.layout,
            kind,
            wasm_digest,
            layers,
            config,
            manifest,
            manifest_bytes,
            manifest_digest,
        })
    }
}

impl Artifact {
    /// Starts building an artifact for `wasm`.
    pub fn builder(wasm: Vec<u8>) -> ArtifactBuilder {
        ArtifactBuilder { wasm, layout: Layout::default(), title: DEFAULT_TITLE.to_owned(), created: SystemTime::now() }
    }

    /// The packaging.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether the wasm is a module or a component.
    pub fn kind(&self) -> WasmKind {
        self.kind
    }

    /// Digest of the wasm bytes.
    pub fn wasm_digest(&self) -> &Digest {
        &self.wasm_digest
    }

    /// The manifest that will be pushed.
    pub fn manifest(&self) -> &OciImageManifest {
        &self.manifest
    }

    /// The exact manifest bytes that will be pushed.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// Digest of [`Artifact::manifest_bytes`].
    pub fn manifest_digest(&self) -> &Digest {
        &self.manifest_digest
    }

    /// The config blob.
    pub fn config_bytes(&self) -> &[u8] {
        &self.config.data
    }

    /// Every blob the manifest references (layers, then config), with its
    /// digest as written in the manifest.
    pub fn blobs(&self) -> impl Iterator<Item = (&str, &bytes::Bytes)> {
        let layers = self.manifest.layers.iter().map(|d| d.digest.as_str());
        layers
            .zip(self.layers.iter().map(|l| &l.data))
            .chain([(self.manifest.config.digest.as_str(), &self.config.data)])
    }
}

/// The CNCF `application/vnd.wasm.config.v0+json` document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig<'a> {
    created: String,
    architecture: &'static str,
    os: &'static str,
    layer_digests: [&'a str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<ComponentInterfaces>,
}

fn title_annotation(title: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(media_type::ANNOTATION_TITLE.to_owned(), title.to_owned())]))
}

fn cncf(
    wasm: Vec<u8>,
    title: &str,
    kind: WasmKind,
    digest: &Digest,
    created: DateTime<Utc>,
) -> Result<(Vec<ImageLayer>, Config)> {
    let component = match kind {
        WasmKind::Module => None,
        WasmKind::Component => Some(ComponentInterfaces::read(&wasm).map_err(Error::InvalidComponent)?),
    };
    let doc = WasmConfig {
        created: created.to_rfc3339_opts(SecondsFormat::Secs, true),
        architecture: "wasm",
        os: kind.oci_os(),
        layer_digests: [digest.as_str()],
        component,
    };
    let data = serde_json::to_vec(&doc).map_err(|source| Error::Encode { what: "config", source })?;
    let layer = ImageLayer::new(wasm, media_type::WASM_LAYER.into(), title_annotation(title));
    let config = Config::new(data, media_type::WASM_CONFIG_V0.into(), None);
    Ok((vec![layer], config))
}

fn wasm_to_oci(wasm: Vec<u8>, title: &str) -> (Vec<ImageLayer>, Config) {
    let layer = ImageLayer::new(wasm, media_type::WASM_TO_OCI_LAYER.into(), title_annotation(title));
    let config = Config::new(&b"{}"[..], media_type::WASM_TO_OCI_CONFIG.into(), None);
    (vec![layer], config)
}

fn image(
    wasm: &[u8],
    kind: WasmKind,
    created_at: SystemTime,
    created: DateTime<Utc>,
) -> Result<(Vec<ImageLayer>, Config)> {
    let mtime = created_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let path = IMAGE_ENTRYPOINT.trim_start_matches('/');
    let layer = single_file_layer(path, wasm, mtime).map_err(Error::Layer)?;
    let file = ConfigFile {
        created: Some(created),
        architecture: Architecture::Wasm,
        os: Os::Other(kind.oci_os().to_owned()),
        config: Some(oci_client::config::Config {
            entrypoint: Some(vec![IMAGE_ENTRYPOINT.to_owned()]),
            ..Default::default()
        }),
        rootfs: Rootfs { diff_ids: vec![Digest::of(&layer.tar).into()], ..Rootfs::default() },
        ..ConfigFile::default()
    };
    let data = serde_json::to_vec(&file).map_err(|source| Error::Encode { what: "config", source })?;
    let layer = ImageLayer::oci_v1_gzip(layer.gzip, None);
    Ok((vec![layer], Config::new(data, media_type::IMAGE_CONFIG.into(), None)))
}

#[cfg(test)]
mod tests;
