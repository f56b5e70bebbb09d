//! Eviction signals (upstream `pkg/kubelet/eviction/api`), the resource each
//! one reclaims and the node condition it drives.

use std::fmt;

/// What the eviction manager watches. The names are upstream's, as written
/// in `--eviction-hard` and the other eviction flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// `memory.available`: the node's available memory (capacity − working set).
    MemoryAvailable,
    /// `allocatableMemory.available`: what is left of the pods' share
    /// (capacity − reserved) after the pods' usage.
    AllocatableMemoryAvailable,
    /// `nodefs.available`: free bytes of the filesystem of the root directory.
    NodeFsAvailable,
    /// `nodefs.inodesFree`: free inodes of that filesystem.
    NodeFsInodesFree,
    /// `imagefs.available`: free bytes of the filesystem of the image store.
    ImageFsAvailable,
    /// `imagefs.inodesFree`: free inodes of that filesystem.
    ImageFsInodesFree,
    /// `containerfs.available`: accepted and ignored, as upstream (set from
    /// nodefs or imagefs); a wasm guest has no writable layer.
    ContainerFsAvailable,
    /// `containerfs.inodesFree`: likewise.
    ContainerFsInodesFree,
    /// `pid.available`: accepted and ignored: guests are not processes.
    PidAvailable,
}

/// Every signal, in the order they are documented.
pub const SIGNALS: [Signal; 9] = [
    Signal::MemoryAvailable,
    Signal::AllocatableMemoryAvailable,
    Signal::NodeFsAvailable,
    Signal::NodeFsInodesFree,
    Signal::ImageFsAvailable,
    Signal::ImageFsInodesFree,
    Signal::ContainerFsAvailable,
    Signal::ContainerFsInodesFree,
    Signal::PidAvailable,
];

impl Signal {
    /// The upstream name (`memory.available`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::AllocatableMemoryAvailable => "allocatableMemory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::ImageFsInodesFree => "imagefs.inodesFree",
            Signal::ContainerFsAvailable => "containerfs.available",
            Signal::ContainerFsInodesFree => "containerfs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    /// The signal named `name`, if upstream knows it.
    pub fn parse(name: &str) -> Option<Self> {
        SIGNALS.into_iter().find(|s| s.as_str() == name)
    }

    /// The resource an eviction for this signal reclaims.
    pub fn resource(self) -> Resource {
        match self {
            Signal::MemoryAvailable | Signal::AllocatableMemoryAvailable => Resource::Memory,
            Signal::NodeFsAvailable | Signal::ImageFsAvailable | Signal::ContainerFsAvailable => {
                Resource::EphemeralStorage
            }
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree | Signal::ContainerFsInodesFree => Resource::Inodes,
            Signal::PidAvailable => Resource::Pids,
        }
    }

    /// The node condition reported while a threshold on this signal is met.
    pub fn condition(self) -> Condition {
        match self.resource() {
            Resource::Memory => Condition::MemoryPressure,
            Resource::EphemeralStorage | Resource::Inodes => Condition::DiskPressure,
            Resource::Pids => Condition::PidPressure,
        }
    }

    /// Whether wasmlet observes this signal. `containerfs.*` and
    /// `pid.available` parse (so upstream configurations work) but are never
    /// observed.
    pub fn is_observed(self) -> bool {
        !matches!(self, Signal::ContainerFsAvailable | Signal::ContainerFsInodesFree | Signal::PidAvailable)
    }

    /// Whether this is a memory signal (ranked before the others, as upstream).
    pub fn is_memory(self) -> bool {
        self.resource() == Resource::Memory
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource the eviction manager reclaims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `memory`.
    Memory,
    /// `ephemeral-storage`.
    EphemeralStorage,
    /// `inodes` (upstream's internal name).
    Inodes,
    /// `pids` (upstream's internal name).
    Pids,
}

impl Resource {
    /// The name upstream writes in messages and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::EphemeralStorage => "ephemeral-storage",
            Resource::Inodes => "inodes",
            Resource::Pids => "pids",
        }
    }

    /// Whether reclaiming it concerns disks (node-level reclaim applies).
    pub fn is_disk(self) -> bool {
        matches!(self, Resource::EphemeralStorage | Resource::Inodes)
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node condition the eviction manager drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    /// `MemoryPressure`.
    MemoryPressure,
    /// `DiskPressure`.
    DiskPressure,
    /// `PIDPressure` (never set: no PID signal is observed).
    PidPressure,
}

impl Condition {
    /// The condition type as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::MemoryPressure => "MemoryPressure",
            Condition::DiskPressure => "DiskPressure",
            Condition::PidPressure => "PIDPressure",
        }
    }
}

/// The pressure conditions the node reports, as the eviction manager last
/// decided them (with the pressure transition period applied).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `MemoryPressure=True`.
    pub memory_pressure: bool,
    /// `DiskPressure=True`.
    pub disk_pressure: bool,
    /// `PIDPressure=True`; always false on wasmlet.
    pub pid_pressure: bool,
}

impl Conditions {
    /// Whether `condition` is on.
    pub fn has(&self, condition: Condition) -> bool {
        match condition {
            Condition::MemoryPressure => self.memory_pressure,
            Condition::DiskPressure => self.disk_pressure,
            Condition::PidPressure => self.pid_pressure,
        }
    }

    /// The conditions that are on, memory first (as `[MemoryPressure DiskPressure]`
    /// in upstream's messages).
    pub fn active(&self) -> Vec<Condition> {
        [Condition::MemoryPressure, Condition::DiskPressure, Condition::PidPressure]
            .into_iter()
            .filter(|c| self.has(*c))
            .collect()
    }

    /// Sets `condition`.
    pub fn set(&mut self, condition: Condition) {
        match condition {
            Condition::MemoryPressure => self.memory_pressure = true,
            Condition::DiskPressure => self.disk_pressure = true,
            Condition::PidPressure => self.pid_pressure = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_map_to_conditions() {
        for s in SIGNALS {
            assert_eq!(Signal::parse(s.as_str()), Some(s));
        }
        assert_eq!(Signal::parse("memory.free"), None);
        assert_eq!(Signal::AllocatableMemoryAvailable.condition(), Condition::MemoryPressure);
        assert_eq!(Signal::ImageFsInodesFree.condition(), Condition::DiskPressure);
        assert_eq!(Signal::NodeFsAvailable.resource().as_str(), "ephemeral-storage");
        let c = Conditions { memory_pressure: true, disk_pressure: true, pid_pressure: false };
        assert_eq!(c.active(), [Condition::MemoryPressure, Condition::DiskPressure]);
    }
}
