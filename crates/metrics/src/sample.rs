//! [`StatsSource`]: what the agent measures, as plain samples; the payloads
//! ([`Stats`](crate::Stats)) are built from them.
//!
//! Every value carries the time it was measured, so rates and timestamps
//! come from the source (and tests can use any clock).

use std::time::SystemTime;

/// The agent's measurements, implemented by the pod layer (and the host
/// readers in [`host`](crate::host) for the node).
///
/// Methods are called on the request path of every scrape: they must be
/// cheap and never block for long (read atomics and cached figures; the
/// `/proc` reads of [`host`](crate::host) take microseconds).
pub trait StatsSource: Send + Sync + 'static {
    /// The node: see [`NodeSample`] for what each figure should be.
    fn node(&self) -> NodeSample;

    /// The pods the agent runs (admitted and not yet cleaned up), each with
    /// its containers that have started at least once.
    fn pods(&self) -> Vec<PodSample>;
}

/// The node's figures.
///
/// The kubelet reports the node's root cgroup, i.e. the whole machine, so
/// [`host::node_sample`](crate::host::node_sample) fills `cpu`, `memory` and
/// `fs` from the host (`/proc/stat`, `/proc/meminfo`, `statvfs` of the root
/// directory) and `agent` from the agent process itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSample {
    /// The node's name.
    pub name: String,
    /// When the node started (the host's boot time).
    pub start_time: SystemTime,
    /// Cumulative CPU time of the node.
    pub cpu: Option<CpuSample>,
    /// Memory of the node.
    pub memory: Option<MemorySample>,
    /// The filesystem holding the agent's root directory.
    pub fs: Option<FsSample>,
    /// The filesystem holding images (`runtime.imageFs`); often the same.
    pub image_fs: Option<FsSample>,
    /// The agent process itself: the `kubelet` system container.
    pub agent: Option<ProcessSample>,
}

/// A cumulative CPU time reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// When it was read.
    pub time: SystemTime,
    /// CPU time used since the object started, in nanoseconds (summed over
    /// all cores).
    pub usage_core_nanos: u64,
}

/// A memory reading; absent figures are left out of the payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySample {
    /// When it was read.
    pub time: SystemTime,
    /// Memory still available.
    pub available_bytes: Option<u64>,
    /// Memory in use, caches included.
    pub usage_bytes: Option<u64>,
    /// Memory in use that cannot be reclaimed easily (what the kubelet
    /// evicts on and metrics-server reports).
    pub working_set_bytes: Option<u64>,
    /// Anonymous memory.
    pub rss_bytes: Option<u64>,
    /// Page faults.
    pub page_faults: Option<u64>,
    /// Major page faults.
    pub major_page_faults: Option<u64>,
}

impl MemorySample {
    /// A reading at `time` with no figures yet.
    pub fn at(time: SystemTime) -> Self {
        Self {
            time,
            available_bytes: None,
            usage_bytes: None,
            working_set_bytes: None,
            rss_bytes: None,
            page_faults: None,
            major_page_faults: None,
        }
    }
}

/// A filesystem reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSample {
    /// When it was read.
    pub time: SystemTime,
    /// Bytes available to unprivileged users.
    pub available_bytes: Option<u64>,
    /// Size of the filesystem.
    pub capacity_bytes: Option<u64>,
    /// Bytes used.
    pub used_bytes: Option<u64>,
    /// Free inodes.
    pub inodes_free: Option<u64>,
    /// Total inodes.
    pub inodes: Option<u64>,
    /// Used inodes.
    pub inodes_used: Option<u64>,
}

/// A process (the agent), reported as a system container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// When it started.
    pub start_time: SystemTime,
    /// Its CPU time.
    pub cpu: CpuSample,
    /// Its memory.
    pub memory: MemorySample,
}

/// One pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSample {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// When the agent started the pod (`status.startTime`).
    pub start_time: SystemTime,
    /// Its containers that have started at least once.
    pub containers: Vec<ContainerSample>,
}

/// One container (its guest), typically read from the runtime's
/// `GuestStats` handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSample {
    /// The container's name.
    pub name: String,
    /// When its current (or last) run started.
    pub start_time: SystemTime,
    /// When `cpu_nanos` and `memory_bytes` were read.
    pub time: SystemTime,
    /// Cumulative CPU time in nanoseconds (never decreasing while the
    /// container exists; a decrease is taken as a new counter).
    pub cpu_nanos: u64,
    /// Current memory (linear memories and tables of the guest; of a
    /// `wasi:http` server, of all its instances together).
    pub memory_bytes: u64,
    /// The highest `memory_bytes` of the current (or last) run, like cgroup
    /// v2 `memory.peak`.
    pub memory_peak_bytes: u64,
    /// Instances stopped for passing a memory limit (the container's or the
    /// node's), like cgroup v2 `memory.events` `oom_kill`: a command's run
    /// ends with it, a server's request fails with it.
    pub oom_kills: u64,
    /// The container's memory limit, if any: reported as `availableBytes`.
    pub memory_limit_bytes: Option<u64>,
    /// Whether its guest is running now (a running guest adds the agent's
    /// per-container overhead to its pod's memory).
    pub running: bool,
}
