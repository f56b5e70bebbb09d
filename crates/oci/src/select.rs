//! Choosing what to download from a manifest: the index entry, the layer,
//! and the file inside tar layers. Pure functions over parsed manifests.

use oci_client::config::Architecture;
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};
use serde::Deserialize;

use crate::layer::{Wanted, normalize};
use crate::media_type::{LayerKind, is_image_config};

/// OS names an index entry may use for wasm.
const WASM_OSES: [&str; 3] = ["wasip1", "wasip2", "wasi"];

/// Picks the first index entry for wasm: platform os `wasip1`, `wasip2` or
/// `wasi`, or architecture `wasm`.
pub(crate) fn index_entry(index: &OciImageIndex) -> Option<&ImageIndexEntry> {
    index.manifests.iter().find(|entry| {
        entry
            .platform
            .as_ref()
            .is_some_and(|p| p.architecture == Architecture::Wasm || WASM_OSES.contains(&p.os.to_string().as_str()))
    })
}

/// Where the wasm bytes are in an image manifest.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// This layer is the wasm binary.
    Wasm(OciDescriptor),
    /// The wasm file is inside these tar layers, searched top layer first.
    Tar(Vec<TarLayer>),
}

/// A tar layer to search.
#[derive(Debug, Clone)]
pub(crate) struct TarLayer {
    pub(crate) descriptor: OciDescriptor,
    pub(crate) gzip: bool,
}

/// Why a manifest carries no usable wasm.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PlanError {
    NoWasmLayer,
    AmbiguousLayers(usize),
    UnsupportedMediaType(String),
}

/// Decides how to get the wasm out of `manifest`.
///
/// A manifest with exactly one wasm layer (any of the wasm layer types)
/// uses it, whatever the other layers are. Otherwise every layer must be a
/// tar layer and the file is searched for in them.
pub(crate) fn plan(manifest: &OciImageManifest) -> Result<Plan, PlanError> {
    let kinds: Vec<_> = manifest.layers.iter().map(|d| (d, LayerKind::of(&d.media_type))).collect();
    let wasm: Vec<_> = kinds.iter().filter(|(_, k)| *k == Some(LayerKind::Wasm)).map(|(d, _)| *d).collect();
    match wasm.as_slice() {
        [one] => return Ok(Plan::Wasm((*one).clone())),
        [] => {}
        many => return Err(PlanError::AmbiguousLayers(many.len())),
    }
    if let Some((d, _)) = kinds.iter().find(|(_, k)| k.is_none()) {
        return Err(PlanError::UnsupportedMediaType(d.media_type.clone()));
    }
    if kinds.is_empty() {
        return Err(PlanError::NoWasmLayer);
    }
    Ok(Plan::Tar(
        kinds
            .into_iter()
            .rev()
            .map(|(d, k)| TarLayer { descriptor: d.clone(), gzip: k == Some(LayerKind::TarGzip) })
            .collect(),
    ))
}

/// Whether the config must be fetched to know which file to extract.
pub(crate) fn needs_config(manifest: &OciImageManifest) -> bool {
    is_image_config(&manifest.config.media_type)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ImageConfig {
    config: Option<ExecConfig>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct ExecConfig {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
}

/// The file an image config runs: `Entrypoint[0]`, else `Cmd[0]`, without
/// a runwasi-style `#function` suffix, relative to `WorkingDir`. Without
/// either, the only `.wasm` file in the image.
pub(crate) fn wanted(config_json: &[u8]) -> Result<Wanted, serde_json::Error> {
    let exec = serde_json::from_slice::<ImageConfig>(config_json)?.config.unwrap_or_default();
    let program =
        exec.entrypoint.and_then(|e| e.into_iter().next()).or_else(|| exec.cmd.and_then(|c| c.into_iter().next()));
    let Some(program) = program else {
        return Ok(Wanted::AnyWasm);
    };
    let program = program.split_once('#').map_or(program.as_str(), |(p, _)| p);
    let full = if program.starts_with('/') {
        program.to_owned()
    } else {
        format!("{}/{program}", exec.working_dir.unwrap_or_default())
    };
    Ok(normalize(&full).map_or(Wanted::AnyWasm, Wanted::Path))
}

#[cfg(test)]
mod tests;
