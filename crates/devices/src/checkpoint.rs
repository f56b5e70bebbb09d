//! The device manager's checkpoint (upstream `kubelet_internal_checkpoint`):
//! every allocation with the plugin's answer, and each resource's healthy
//! devices. Written atomically (temporary file, fsync, rename) after every
//! change; read once at start.
//!
//! A restarted agent thus knows which devices its running pods hold (none
//! is handed out twice) and gives their containers the same answers
//! without asking the plugins again.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use base64::Engine;
use prost::Message;
use serde::{Deserialize, Serialize};
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;

use crate::pod_devices::{Allocation, PodDevices};

/// The file format's version.
const VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct File {
    version: u32,
    /// Healthy devices per resource when written.
    registered_devices: BTreeMap<String, Vec<String>>,
    pod_device_entries: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(rename = "podUID")]
    pod_uid: String,
    container_name: String,
    resource_name: String,
    #[serde(rename = "deviceIDs")]
    device_ids: Vec<String>,
    /// The `ContainerAllocateResponse`, protobuf, base64.
    alloc_resp: String,
}

/// What a checkpoint holds.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Checkpoint {
    pub(crate) registered: BTreeMap<String, Vec<String>>,
    pub(crate) pods: PodDevices,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File I/O.
    #[error("device manager checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The content is not a checkpoint of this version.
    #[error("device manager checkpoint {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Reads the checkpoint at `path`; a missing file is an empty checkpoint.
pub(crate) fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::default()),
        Err(source) => return Err(CheckpointError::Io { path: path.display().to_string(), source }),
    };
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.display().to_string(), reason };
    let file: File = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
    if file.version != VERSION {
        return Err(corrupt(format!("version {} (expected {VERSION})", file.version)));
    }
    let mut pods = PodDevices::default();
    for e in file.pod_device_entries {
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(&e.alloc_resp).map_err(|e| corrupt(e.to_string()))?;
        let response = api::ContainerAllocateResponse::decode(bytes.as_slice()).map_err(|e| corrupt(e.to_string()))?;
        let devices: BTreeSet<String> = e.device_ids.into_iter().collect();
        pods.insert(&e.pod_uid, &e.container_name, &e.resource_name, Allocation { devices, response });
    }
    Ok(Checkpoint { registered: file.registered_devices, pods })
}

/// Writes `checkpoint` to `path` atomically.
pub(crate) fn save(path: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io { path: path.display().to_string(), source };
    let entries = checkpoint
        .pods
        .entries()
        .map(|(uid, container, resource, a)| Entry {
            pod_uid: uid.clone(),
            container_name: container.clone(),
            resource_name: resource.clone(),
            device_ids: a.devices.iter().cloned().collect(),
            alloc_resp: base64::engine::general_purpose::STANDARD.encode(a.response.encode_to_vec()),
        })
        .collect();
    let file =
        File { version: VERSION, registered_devices: checkpoint.registered.clone(), pod_device_entries: entries };
    let text = serde_json::to_vec(&file).map_err(|e| io(std::io::Error::other(e)))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&text).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubelet_internal_checkpoint");
        assert_eq!(load(&path).unwrap(), Checkpoint::default());
        let mut pods = PodDevices::default();
        let response = api::ContainerAllocateResponse {
            envs: [("K".to_string(), "V".to_string())].into(),
            mounts: vec![api::Mount { container_path: "/d".into(), host_path: "/h".into(), read_only: true }],
            ..Default::default()
        };
        pods.insert(
            "uid-1",
            "main",
            "x.io/d",
            Allocation { devices: ["a".to_string(), "b".to_string()].into(), response },
        );
        let cp = Checkpoint { registered: [("x.io/d".to_string(), vec!["a".to_string()])].into(), pods };
        save(&path, &cp).unwrap();
        assert_eq!(load(&path).unwrap(), cp);

        std::fs::write(&path, b"{\"version\": 1, \"registeredDevices\": {}, \"podDeviceEntries\": [{").unwrap();
        assert!(matches!(load(&path), Err(CheckpointError::Corrupt { .. })));
        std::fs::write(&path, br#"{"version": 9, "registeredDevices": {}, "podDeviceEntries": []}"#).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("version 9"));
    }
}
