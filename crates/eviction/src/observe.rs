//! What the manager measures: [`NodeStats`] and [`PodStats`] (given by the
//! [`Target`](crate::Target)) become [`Observations`], the available amount
//! and capacity of each signal.
//!
//! | signal | available | capacity |
//! |---|---|---|
//! | `memory.available` | the node's available memory | the node's memory |
//! | `allocatableMemory.available` | (capacity − reserved) − the pods' memory, floored at 0 | that floor + the pods' memory |
//! | `nodefs.*` | free bytes / inodes of the root directory's filesystem | its size / inodes |
//! | `imagefs.*` | the same for the image store's filesystem | |

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::quantity::Amount;
use crate::signal::Signal;

/// An amount available out of a capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// What is left.
    pub available: u64,
    /// The total.
    pub capacity: u64,
}

/// A filesystem's bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Bytes available to unprivileged users, of the filesystem's size.
    pub bytes: Level,
    /// Free inodes, of the total (absent when the filesystem does not say).
    pub inodes: Option<Level>,
}

/// The node's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeStats {
    /// Memory: available and capacity (absent if it could not be read).
    pub memory: Option<Level>,
    /// The filesystem of the root directory (pods' logs and volumes).
    pub nodefs: Option<FsStats>,
    /// The filesystem of the image store (the same as `nodefs` unless the
    /// store is on a filesystem of its own).
    pub imagefs: Option<FsStats>,
    /// Whether the image store has a filesystem of its own.
    pub dedicated_image_fs: bool,
}

/// Bytes and inodes a pod uses on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Disk {
    /// Bytes (blocks allocated, like `du`).
    pub bytes: u64,
    /// Inodes (files, directories, links).
    pub inodes: u64,
}

impl std::ops::Add for Disk {
    type Output = Disk;
    fn add(self, o: Disk) -> Disk {
        Disk { bytes: self.bytes.saturating_add(o.bytes), inodes: self.inodes.saturating_add(o.inodes) }
    }
}

/// One container's usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStats {
    /// The container's name.
    pub name: String,
    /// Its guest's memory now (0 when not running).
    pub memory_bytes: u64,
    /// Its logs on disk, when measured.
    pub logs: Option<Disk>,
}

/// One active pod (admitted, not terminal) and its usage.
#[derive(Debug, Clone, PartialEq)]
pub struct PodStats {
    /// The pod object as last seen.
    pub pod: Arc<Pod>,
    /// Its containers that have run.
    pub containers: Vec<ContainerStats>,
    /// Its local ephemeral volumes (disk emptyDirs, configMaps), when measured.
    pub volumes: Option<Disk>,
}

impl PodStats {
    /// `metadata.uid`.
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or_default()
    }

    /// `namespace/name`, for logs.
    pub fn key(&self) -> String {
        let m = &self.pod.metadata;
        format!("{}/{}", m.namespace.as_deref().unwrap_or_default(), m.name.as_deref().unwrap_or_default())
    }

    /// The pod's memory: the sum of its guests'.
    pub fn memory(&self) -> u64 {
        self.containers.iter().map(|c| c.memory_bytes).fold(0, u64::saturating_add)
    }

    /// The pod's local ephemeral storage: its containers' logs and its
    /// local volumes (a wasm guest has no writable layer).
    pub fn disk(&self) -> Disk {
        let logs = self.containers.iter().filter_map(|c| c.logs).fold(Disk::default(), |a, b| a + b);
        logs + self.volumes.unwrap_or_default()
    }
}

/// One signal's observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// What is available (bytes or inodes), as upstream writes it.
    pub available: Amount,
    /// The capacity percentages are taken of.
    pub capacity: i64,
}

/// The observed signals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations(pub BTreeMap<Signal, Observation>);

impl Observations {
    /// Observes every signal wasmlet measures; `reserved_memory` (system +
    /// kube reserved) is kept out of the pods' share of memory.
    pub fn new(node: &NodeStats, pods: &[PodStats], reserved_memory: u64) -> Self {
        let mut out = BTreeMap::new();
        let bytes =
            |l: Level| Observation { available: Amount::bytes(to_i64(l.available)), capacity: to_i64(l.capacity) };
        let count =
            |l: Level| Observation { available: Amount::count(to_i64(l.available)), capacity: to_i64(l.capacity) };
        if let Some(memory) = node.memory {
            out.insert(Signal::MemoryAvailable, bytes(memory));
            let limit = memory.capacity.saturating_sub(reserved_memory);
            let working_set = pods.iter().map(PodStats::memory).fold(0, u64::saturating_add);
            let available = limit.saturating_sub(working_set);
            let level = Level { available, capacity: available.saturating_add(working_set) };
            out.insert(Signal::AllocatableMemoryAvailable, bytes(level));
        }
        let filesystems = [
            (node.nodefs, Signal::NodeFsAvailable, Signal::NodeFsInodesFree),
            (node.imagefs.or(node.nodefs), Signal::ImageFsAvailable, Signal::ImageFsInodesFree),
        ];
        for (fs, space, inodes) in filesystems {
            if let Some(fs) = fs {
                out.insert(space, bytes(fs.bytes));
                if let Some(i) = fs.inodes {
                    out.insert(inodes, count(i));
                }
            }
        }
        Self(out)
    }

    /// The observation of `signal`.
    pub fn get(&self, signal: Signal) -> Option<&Observation> {
        self.0.get(&signal)
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: u64 = 1 << 20;

    fn pod_using(memory: u64) -> PodStats {
        PodStats {
            pod: Arc::new(Pod::default()),
            containers: vec![ContainerStats { name: "a".into(), memory_bytes: memory, logs: None }],
            volumes: None,
        }
    }

    #[test]
    fn allocatable_memory_is_the_pods_share_minus_their_usage() {
        let node =
            NodeStats { memory: Some(Level { available: 3000 * MI, capacity: 4096 * MI }), ..NodeStats::default() };
        let pods = [pod_using(100 * MI), pod_using(150 * MI)];
        let obs = Observations::new(&node, &pods, 3696 * MI);
        let a = obs.get(Signal::AllocatableMemoryAvailable).unwrap();
        assert_eq!((a.available.to_string(), a.capacity), ("150Mi".into(), (400 * MI) as i64));
        assert_eq!(obs.get(Signal::MemoryAvailable).unwrap().available.value, (3000 * MI) as i64);
        // Over the share: nothing available, and the capacity grows as upstream's does.
        let over = Observations::new(&node, &[pod_using(500 * MI)], 3696 * MI);
        let a = over.get(Signal::AllocatableMemoryAvailable).unwrap();
        assert_eq!((a.available.value, a.capacity), (0, (500 * MI) as i64));
    }

    #[test]
    fn imagefs_is_nodefs_when_shared() {
        let fs = FsStats {
            bytes: Level { available: 10, capacity: 100 },
            inodes: Some(Level { available: 5, capacity: 50 }),
        };
        let obs = Observations::new(&NodeStats { nodefs: Some(fs), ..NodeStats::default() }, &[], 0);
        assert_eq!(obs.get(Signal::ImageFsAvailable), obs.get(Signal::NodeFsAvailable));
        assert_eq!(obs.get(Signal::ImageFsInodesFree).unwrap().available.to_string(), "5");
        assert!(obs.get(Signal::MemoryAvailable).is_none(), "no memory reading, no memory signals");
    }
}
