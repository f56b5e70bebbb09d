//! The claims this node prepared (upstream `claimInfoCache`), checkpointed
//! to `dra_manager_state` after every change so that a restarted agent
//! still unprepares what it prepared, and gives restarted containers the
//! same CDI devices without preparing again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A device a driver prepared for a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Device {
    /// The claim's requests it serves (empty: all).
    pub(crate) request_names: Vec<String>,
    pub(crate) pool_name: String,
    pub(crate) device_name: String,
    #[serde(rename = "cdiDeviceIDs")]
    pub(crate) cdi_device_ids: Vec<String>,
}

/// One claim on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClaimInfo {
    #[serde(rename = "claimUID")]
    pub(crate) claim_uid: String,
    pub(crate) claim_name: String,
    pub(crate) namespace: String,
    /// The pods using it.
    #[serde(rename = "podUIDs")]
    pub(crate) pod_uids: BTreeSet<String>,
    /// Devices by driver (every driver of the allocation has an entry).
    pub(crate) drivers: BTreeMap<String, Vec<Device>>,
    /// Whether every driver prepared it.
    pub(crate) prepared: bool,
}

impl ClaimInfo {
    /// The CDI device IDs for `request` (all requests when empty), as
    /// upstream `cdiDevicesAsList`.
    pub(crate) fn cdi_devices(&self, request: &str) -> Vec<String> {
        self.drivers
            .values()
            .flatten()
            .filter(|d| {
                request.is_empty() || d.request_names.is_empty() || d.request_names.iter().any(|r| r == request)
            })
            .flat_map(|d| d.cdi_device_ids.iter().cloned())
            .collect()
    }
}

/// Claims by namespace and name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Cache {
    pub(crate) claims: BTreeMap<(String, String), ClaimInfo>,
}

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    claims: Vec<ClaimInfo>,
}

/// Why the checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File I/O.
    #[error("DRA checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not a checkpoint of this version.
    #[error("DRA checkpoint {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl Cache {
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<&ClaimInfo> {
        self.claims.get(&(namespace.to_owned(), name.to_owned()))
    }

    pub(crate) fn get_mut(&mut self, namespace: &str, name: &str) -> Option<&mut ClaimInfo> {
        self.claims.get_mut(&(namespace.to_owned(), name.to_owned()))
    }

    /// Reads the checkpoint; a missing file is an empty cache.
    pub(crate) fn load(path: &Path) -> Result<Cache, CheckpointError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cache::default()),
            Err(source) => return Err(CheckpointError::Io { path: path.display().to_string(), source }),
        };
        let corrupt = |reason: String| CheckpointError::Corrupt { path: path.display().to_string(), reason };
        let file: File = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.version != VERSION {
            return Err(corrupt(format!("version {} (expected {VERSION})", file.version)));
        }
        let claims = file.claims.into_iter().map(|c| ((c.namespace.clone(), c.claim_name.clone()), c)).collect();
        Ok(Cache { claims })
    }

    /// Writes the checkpoint atomically.
    pub(crate) fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io { path: path.display().to_string(), source };
        let file = File { version: VERSION, claims: self.claims.values().cloned().collect() };
        let text = serde_json::to_vec(&file).map_err(|e| io(std::io::Error::other(e)))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ClaimInfo {
        let device = |req: &[&str], id: &str| Device {
            request_names: req.iter().map(|r| r.to_string()).collect(),
            pool_name: "node".into(),
            device_name: "device-00".into(),
            cdi_device_ids: vec![id.into()],
        };
        ClaimInfo {
            claim_uid: "u1".into(),
            claim_name: "c".into(),
            namespace: "ns".into(),
            pod_uids: ["p1".to_string()].into(),
            drivers: [(
                "d.io".to_string(),
                vec![device(&["a"], "d.io/t=a"), device(&[], "d.io/t=all"), device(&["b"], "d.io/t=b")],
            )]
            .into(),
            prepared: true,
        }
    }

    #[test]
    fn cdi_devices_are_filtered_by_request() {
        assert_eq!(info().cdi_devices("a"), ["d.io/t=a", "d.io/t=all"]);
        assert_eq!(info().cdi_devices(""), ["d.io/t=a", "d.io/t=all", "d.io/t=b"]);
    }

    #[test]
    fn checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dra_manager_state");
        assert_eq!(Cache::load(&path).unwrap(), Cache::default());
        let mut cache = Cache::default();
        cache.claims.insert(("ns".into(), "c".into()), info());
        cache.save(&path).unwrap();
        assert_eq!(Cache::load(&path).unwrap(), cache);
        std::fs::write(&path, b"[]").unwrap();
        assert!(matches!(Cache::load(&path), Err(CheckpointError::Corrupt { .. })));
    }
}
