//! CDI spec files (`cdiVersion`, `kind`, `devices`, `containerEdits`), read
//! from JSON (`.json`) or YAML (`.yaml`), and checked before use.
//!
//! Fields a WASI guest cannot use (device nodes, hooks, network devices,
//! Intel RDT, additional GIDs) are still parsed, so that they can be
//! reported rather than silently dropped.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::name::{self, InvalidName};

/// Largest spec file read (a spec is a few KiB; this bounds a bad file).
pub const MAX_SPEC_BYTES: u64 = 4 << 20;

/// One CDI spec file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// `cdiVersion` (not interpreted: every version shares these fields).
    #[serde(rename = "cdiVersion", default)]
    pub version: String,
    /// `vendor.com/class`.
    pub kind: String,
    /// The devices of the kind.
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Edits applied once when any device of this spec is used.
    #[serde(default)]
    pub container_edits: ContainerEdits,
}

/// A device of a spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The name after `=` in the qualified name.
    pub name: String,
    /// What using it changes in the container.
    #[serde(default)]
    pub container_edits: ContainerEdits,
}

/// Changes to a container (CDI `ContainerEdits`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEdits {
    /// `KEY=value` entries.
    #[serde(default)]
    pub env: Vec<String>,
    /// Device nodes (no meaning to a WASI guest).
    #[serde(default)]
    pub device_nodes: Vec<DeviceNode>,
    /// Mounts.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// OCI hooks (no meaning to a WASI guest).
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// Network devices moved into the container (no meaning to a WASI guest).
    #[serde(default)]
    pub net_devices: Vec<serde_json::Value>,
    /// Intel RDT settings (no meaning to a WASI guest).
    #[serde(default)]
    pub intel_rdt: Option<serde_json::Value>,
    /// Extra group IDs (no meaning to a WASI guest).
    #[serde(default, rename = "additionalGids")]
    pub additional_gids: Vec<u32>,
}

/// A device node.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceNode {
    /// Its path in the container.
    pub path: String,
    /// Its path on the host, when it differs.
    #[serde(default)]
    pub host_path: Option<String>,
}

/// A mount.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// The source on the host.
    pub host_path: String,
    /// Where the container sees it.
    pub container_path: String,
    /// Mount options; `ro` makes it read-only.
    #[serde(default)]
    pub options: Vec<String>,
}

/// An OCI hook.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// `createContainer`, `startContainer`, ...
    pub hook_name: String,
    /// The program.
    pub path: String,
}

/// Why a spec file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// It could not be read.
    #[error("CDI spec {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It is larger than [`MAX_SPEC_BYTES`].
    #[error("CDI spec {}: larger than {MAX_SPEC_BYTES} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// It does not parse.
    #[error("CDI spec {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// It parses but breaks a rule of the CDI spec.
    #[error("CDI spec {}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The rule.
        message: String,
    },
}

impl Spec {
    /// Parses `text` (JSON when `yaml` is false) and validates it; `path`
    /// only names the file in errors.
    ///
    /// # Errors
    ///
    /// The text does not parse or breaks a rule ([`Spec::validate`]).
    pub fn parse(text: &str, yaml: bool, path: &Path) -> Result<Self, SpecError> {
        let parsed: Result<Spec, String> = if yaml {
            serde_yaml::from_str(text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str(text).map_err(|e| e.to_string())
        };
        let spec = parsed.map_err(|message| SpecError::Parse { path: path.to_owned(), message })?;
        spec.validate().map_err(|message| SpecError::Invalid { path: path.to_owned(), message })?;
        Ok(spec)
    }

    /// Reads the spec at `path` (`.json`, `.yaml` or `.yml`).
    ///
    /// # Errors
    ///
    /// See [`SpecError`].
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let read = |source| SpecError::Read { path: path.to_owned(), source };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > MAX_SPEC_BYTES {
            return Err(SpecError::TooLarge { path: path.to_owned() });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let yaml = path.extension().is_some_and(|e| e != "json");
        Self::parse(&text, yaml, path)
    }

    /// The kind's vendor and class.
    ///
    /// # Errors
    ///
    /// The kind is not `vendor/class`.
    pub fn vendor_class(&self) -> Result<(String, String), InvalidName> {
        name::parse_kind(&self.kind)
    }

    /// Checks the rules runtimes check: a valid kind, at least one device,
    /// valid and unique device names, `KEY=value` env entries, mounts with
    /// both paths, device nodes with a path.
    ///
    /// # Errors
    ///
    /// The first rule broken.
    pub fn validate(&self) -> Result<(), String> {
        self.vendor_class().map_err(|e| e.to_string())?;
        if self.devices.is_empty() {
            return Err("no devices".into());
        }
        check_edits(&self.container_edits).map_err(|e| format!("containerEdits: {e}"))?;
        let mut seen = std::collections::HashSet::new();
        for d in &self.devices {
            name::validate_device_name(&d.name).map_err(|e| format!("device: {e}"))?;
            if !seen.insert(d.name.as_str()) {
                return Err(format!("device {:?} is defined twice", d.name));
            }
            check_edits(&d.container_edits).map_err(|e| format!("device {:?}: {e}", d.name))?;
        }
        Ok(())
    }
}

fn check_edits(e: &ContainerEdits) -> Result<(), String> {
    if let Some(bad) = e.env.iter().find(|v| v.split_once('=').is_none_or(|(k, _)| k.is_empty())) {
        return Err(format!("invalid environment variable {bad:?} (want KEY=value)"));
    }
    if let Some(m) = e.mounts.iter().find(|m| m.host_path.is_empty() || m.container_path.is_empty()) {
        return Err(format!("invalid mount {:?} -> {:?}: both paths are required", m.host_path, m.container_path));
    }
    if e.device_nodes.iter().any(|d| d.path.is_empty()) {
        return Err("a device node has no path".into());
    }
    Ok(())
}
