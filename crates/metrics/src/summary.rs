//! [`Summary`]: the `/stats/summary` payload, shaped exactly like the
//! kubelet's `stats/v1alpha1` types (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`).
//!
//! Field names and omission follow the Go JSON tags: optional figures
//! (`*uint64` with `omitempty`) are left out when unknown, times are
//! `metav1.Time` (RFC 3339 in UTC, whole seconds), `containers` is always
//! present. Volume stats are those of CSI volumes whose driver answers
//! `NodeGetVolumeStats`. What wasmlet does not measure (network, other
//! volumes, ephemeral storage, rlimit, swap, PSI, per-container rootfs and logs) is left out,
//! as the kubelet leaves out what its providers lack.

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// `Summary`: the node and its pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// `node`.
    pub node: NodeStats,
    /// `pods`.
    pub pods: Vec<PodStats>,
}

/// `NodeStats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    /// `nodeName`.
    pub node_name: String,
    /// `systemContainers`: here only `kubelet` (the agent process).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_containers: Vec<ContainerStats>,
    /// `startTime`.
    pub start_time: String,
    /// `cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// `fs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
    /// `runtime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
}

/// `RuntimeStats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    /// `imageFs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_fs: Option<FsStats>,
}

/// `PodStats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    /// `podRef`.
    pub pod_ref: PodReference,
    /// `startTime`.
    pub start_time: String,
    /// `containers` (always present).
    pub containers: Vec<ContainerStats>,
    /// `cpu`: the sum of the containers'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// `memory`: the sum of the containers' plus the agent's per-pod
    /// overhead (see [`Config`](crate::Config)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    /// `volume`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume: Vec<VolumeStats>,
}

/// `VolumeStats`: `FsStats` inline, then the volume's name and claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStats {
    /// The inline `FsStats`.
    #[serde(flatten)]
    pub fs: FsStats,
    /// `name`: the pod's name for the volume.
    pub name: String,
    /// `pvcRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_ref: Option<PvcReference>,
    /// `volumeHealthStats`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_health_stats: Option<VolumeHealthStats>,
}

/// `PVCReference`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvcReference {
    /// `name`.
    pub name: String,
    /// `namespace`.
    pub namespace: String,
}

/// `VolumeHealthStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeHealthStats {
    /// `abnormal`.
    pub abnormal: bool,
}

/// `PodReference`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodReference {
    /// `name`.
    pub name: String,
    /// `namespace`.
    pub namespace: String,
    /// `uid`.
    pub uid: String,
}

/// `ContainerStats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    /// `name`.
    pub name: String,
    /// `startTime`.
    pub start_time: String,
    /// `cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    /// `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// `CPUStats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    /// `time`.
    pub time: String,
    /// `usageNanoCores`: see [`rate`](crate::rate) for how it is computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    /// `usageCoreNanoSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

/// `MemoryStats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    /// `time`.
    pub time: String,
    /// `availableBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// `usageBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    /// `workingSetBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    /// `rssBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// `pageFaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    /// `majorPageFaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

/// `FsStats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    /// `time`.
    pub time: String,
    /// `availableBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    /// `capacityBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    /// `usedBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// `inodesFree`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    /// `inodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    /// `inodesUsed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

/// `metav1.Time` as JSON: RFC 3339 in UTC with whole seconds.
pub fn kube_time(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}
