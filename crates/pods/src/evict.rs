//! Node-pressure eviction, the pod side: the figures the eviction manager
//! (`wasmlet-eviction`) ranks pods by, and the one input it gives a pod
//! worker — a per-pod [`Eviction`] request, which the worker turns into the
//! `Terminating` path with an `Evicted` verdict.
//!
//! Memory is each running guest's (linear memories and tables, exactly as
//! the engine counts it). Ephemeral storage is what upstream counts for a
//! container without a writable layer: its log files and the pod's local
//! volumes (disk-backed emptyDirs and configMaps), walked like `du`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use wasmlet_eviction::{ContainerStats, Disk, PodStats};

use crate::manager::Handles;
use crate::status;
use crate::worker::PodUpdate;

/// The eviction of one pod: stop its containers within `grace`, then end
/// it `Failed` with `reason` and `message` (and a warning event of that
/// reason, and the `DisruptionTarget` condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    /// How long its containers get to stop.
    pub grace: Duration,
    /// The status reason: `Evicted` (node pressure), `Terminated` (node shutdown).
    pub reason: String,
    /// The status message (upstream's eviction or shutdown message).
    pub message: String,
}

impl Eviction {
    /// A node-pressure eviction: reason `Evicted`.
    pub fn pressure(grace: Duration, message: String) -> Self {
        Self { grace, reason: "Evicted".into(), message }
    }
}

/// The active pods (present, not terminal) with their usage; with `disk`,
/// their logs and local volumes are measured (a directory walk: call it
/// off the async workers).
pub(crate) fn stats(handles: &Handles, disk: bool) -> Vec<PodStats> {
    let active: Vec<_> = {
        let handles = handles.lock().unwrap_or_else(|p| p.into_inner());
        handles
            .values()
            .filter_map(|h| {
                let PodUpdate::Present(pod) = &*h.updates.borrow() else { return None };
                let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.clone());
                let record = h.record.lock().unwrap_or_else(|p| p.into_inner());
                let phase = status::phase_of(policy.as_deref().unwrap_or("Always"), &record);
                if status::phase::is_terminal(Some(&phase)) {
                    return None;
                }
                Some((pod.clone(), h.live.all(), h.dir.clone()))
            })
            .collect()
    };
    active
        .into_iter()
        .map(|(pod, live, dir)| {
            let containers = live
                .into_iter()
                .map(|(name, running)| {
                    let memory_bytes = if running.stats.is_running() { running.stats.memory_bytes() } else { 0 };
                    let logs = disk.then(|| du(&dir.join("logs").join(&name)));
                    ContainerStats { name, memory_bytes, logs }
                })
                .collect();
            let volumes = disk.then(|| local_volumes(&pod, &dir));
            PodStats { pod, containers, volumes }
        })
        .collect()
}

/// Asks the worker of pod `uid` to evict it; `false` if there is none.
pub(crate) fn evict(handles: &Handles, uid: &str, eviction: Eviction) -> bool {
    let handles = handles.lock().unwrap_or_else(|p| p.into_inner());
    let Some(h) = handles.get(uid) else { return false };
    h.evict.send_replace(Some(eviction));
    true
}

/// Whether pod `uid` runs nothing any more (its worker is gone or none of
/// its guests runs).
pub(crate) fn cleaned_up(handles: &Handles, uid: &str) -> bool {
    let handles = handles.lock().unwrap_or_else(|p| p.into_inner());
    handles.get(uid).is_none_or(|h| h.live.all().iter().all(|(_, r)| !r.stats.is_running()))
}

/// Disk-backed emptyDirs and configMaps under the pod's volume directory
/// (upstream's local ephemeral volumes; memory-backed emptyDirs are memory).
fn local_volumes(pod: &Arc<Pod>, dir: &Path) -> Disk {
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    volumes
        .filter(|v| {
            let disk_empty_dir = v.empty_dir.as_ref().is_some_and(|e| e.medium.as_deref() != Some("Memory"));
            disk_empty_dir || v.config_map.is_some()
        })
        .filter(|v| !v.name.contains('/') && v.name != ".." && v.name != ".")
        .map(|v| du(&dir.join(wasmlet_volumes::volumes::VOLUMES_DIR).join(&v.name)))
        .fold(Disk::default(), |a, b| a + b)
}

/// Blocks and inodes under `path`, like `du` (symlinks not followed, other
/// filesystems not entered); 0 when it does not exist.
fn du(path: &Path) -> Disk {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Disk::default() };
    let device = meta.dev();
    let mut total = Disk::default();
    let mut stack = vec![(path.to_owned(), meta)];
    while let Some((path, meta)) = stack.pop() {
        total = total + Disk { bytes: meta.blocks().saturating_mul(512), inodes: 1 };
        if !meta.is_dir() {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&path) else { continue };
        for entry in entries.flatten() {
            if let Ok(m) = std::fs::symlink_metadata(entry.path())
                && m.dev() == device
            {
                stack.push((entry.path(), m));
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn du_counts_blocks_and_inodes_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::write(dir.join("sub/b"), vec![1u8; 64 * 1024]).unwrap();
        std::os::unix::fs::symlink("/", dir.join("root-link")).unwrap();
        let d = du(&dir);
        assert_eq!(d.inodes, 5, "dir, sub, a, sub/b, the link");
        assert!(d.bytes >= 128 * 1024 && d.bytes < 1 << 20, "{d:?}");
        assert_eq!(du(&dir.join("missing")), Disk::default());
    }

    #[test]
    fn local_volumes_are_disk_empty_dirs_and_config_maps() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for name in ["scratch", "ram", "conf", "host"] {
            let v = dir.join("volumes").join(name);
            std::fs::create_dir_all(&v).unwrap();
            std::fs::write(v.join("f"), vec![1u8; 8192]).unwrap();
        }
        let pod: Pod = serde_json::from_value(serde_json::json!({"spec": {"containers": [], "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "ram", "emptyDir": {"medium": "Memory"}},
            {"name": "conf", "configMap": {"name": "c"}},
            {"name": "host", "hostPath": {"path": "/tmp"}}
        ]}}))
        .unwrap();
        let d = local_volumes(&Arc::new(pod), dir);
        assert_eq!(d.inodes, 4, "scratch and conf: a directory and a file each");
    }
}
