//! The specs in the CDI directories, and resolving device names to the
//! [`Edits`] a guest gets.
//!
//! The directories are read on every [`Registry::resolve`]: drivers write
//! spec files just before a container starts (DRA's `NodePrepareResources`),
//! and a handful of small files costs less than keeping a watch. As in the
//! reference implementation, only `*.json`, `*.yaml` and `*.yml` files at the
//! top of each directory count, a later directory overrides an earlier one,
//! and a device defined twice in one directory is unusable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::edits::Edits;
use crate::name::{InvalidName, QualifiedName};
use crate::spec::{Device, Spec, SpecError};

/// Most spec files read from one directory.
pub const MAX_SPECS_PER_DIR: usize = 4096;

/// The CDI spec directories, lowest priority first.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    dirs: Vec<PathBuf>,
}

/// Why device names could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// A name is not a fully qualified CDI name.
    #[error(transparent)]
    Name(#[from] InvalidName),
    /// No usable spec defines these devices (upstream runtimes say the same).
    #[error("unresolvable CDI devices {}", .0.join(", "))]
    Unresolvable(Vec<String>),
}

/// A device found in a spec, with where it came from.
#[derive(Debug, Clone)]
struct Found {
    spec: std::sync::Arc<(PathBuf, Spec)>,
    device: Device,
    priority: usize,
    conflict: bool,
}

impl Registry {
    /// Spec directories, lowest priority first (missing ones are fine).
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// The directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The edits of `names`, in order: a spec's own edits at the first
    /// device used from it, then each device's. An empty list resolves to
    /// no edits without reading anything.
    ///
    /// # Errors
    ///
    /// A name is not qualified, or no usable spec defines it.
    pub fn resolve(&self, names: &[String]) -> Result<Edits, ResolveError> {
        let mut wanted = Vec::new();
        for n in names {
            wanted.push(QualifiedName::parse(n)?);
        }
        if wanted.is_empty() {
            return Ok(Edits::default());
        }
        let devices = self.scan();
        let missing: Vec<String> =
            wanted.iter().filter(|n| devices.get(*n).is_none_or(|f| f.conflict)).map(ToString::to_string).collect();
        if !missing.is_empty() {
            return Err(ResolveError::Unresolvable(missing));
        }
        let mut edits = Edits::default();
        let mut specs_used: Vec<PathBuf> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for n in &wanted {
            if !seen.insert(n.clone()) {
                continue;
            }
            let Some(found) = devices.get(n) else { continue };
            let (path, spec) = &*found.spec;
            if !specs_used.contains(path) {
                specs_used.push(path.clone());
                edits.apply(&spec.container_edits, &n.to_string());
            }
            edits.apply(&found.device.container_edits, &n.to_string());
        }
        Ok(edits)
    }

    /// Every usable device of every directory by name.
    fn scan(&self) -> HashMap<QualifiedName, Found> {
        let mut devices: HashMap<QualifiedName, Found> = HashMap::new();
        for (priority, dir) in self.dirs.iter().enumerate() {
            for (path, spec) in read_dir(dir) {
                let Ok((vendor, class)) = spec.vendor_class() else { continue };
                let spec = std::sync::Arc::new((path, spec));
                for device in &spec.1.devices {
                    let name =
                        QualifiedName { vendor: vendor.clone(), class: class.clone(), name: device.name.clone() };
                    let found = Found { spec: spec.clone(), device: device.clone(), priority, conflict: false };
                    match devices.get_mut(&name) {
                        Some(old) if old.priority == priority => {
                            tracing::warn!(device = %name, first = %old.spec.0.display(), second = %spec.0.display(),
                                "CDI device defined twice in one directory; it cannot be used");
                            old.conflict = true;
                        }
                        _ => {
                            devices.insert(name, found);
                        }
                    }
                }
            }
        }
        devices
    }
}

/// The valid specs of one directory, by file name; invalid ones are logged
/// and skipped (the others stay usable).
fn read_dir(dir: &Path) -> Vec<(PathBuf, Spec)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml" || e == "yml"))
        .filter(|p| p.is_file())
        .take(MAX_SPECS_PER_DIR)
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| match Spec::load(&p) {
            Ok(spec) => Some((p, spec)),
            Err(SpecError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unusable CDI spec");
                None
            }
        })
        .collect()
}
