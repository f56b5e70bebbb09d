//! The kubelet's stats and metrics payloads, built from what the agent
//! measures.
//!
//! Where to start:
//!
//! - [`StatsSource`] is what the pod layer implements: the node
//!   ([`host::node_sample`] reads it from the host) and the pods with their
//!   containers' CPU and memory (from the runtime's `GuestStats` handles).
//! - [`Stats`] turns a source into the `/stats/summary` payload
//!   ([`Summary`], the kubelet's `stats/v1alpha1` shape) and the
//!   `/metrics/resource` text that metrics-server scrapes; it remembers the
//!   readings the CPU rates need ([`rate`]).
//! - [`Stats::cadvisor_metrics`] is the `/metrics/cadvisor` text: the
//!   containers' memory series under cAdvisor's names ([`cadvisor`]).
//! - [`Metrics`] is the agent's own Prometheus registry (`/metrics`), with
//!   cheap recording methods for the pod layer.
//!
//! Module map: [`sample`] (the source trait and samples), [`summary`] (the
//! JSON types), [`resource`] (the resource metrics), [`cadvisor`] (the
//! cAdvisor memory metrics), [`kubelet`] (upstream's pod series), [`upstream`]
//! (more upstream series: node name, pod workers, API requests, volumes,
//! process, probes), [`text`] (the
//! Prometheus text format), [`agent`] (the agent's metrics), [`host`]
//! (`/proc` and `statvfs`).

pub mod agent;
pub mod cadvisor;
pub mod host;
pub mod kubelet;
pub mod probes;
pub mod rate;
pub mod resource;
pub mod sample;
mod stats;
pub mod summary;
pub mod text;
pub mod upstream;

pub use agent::{CompileCounts, Metrics, PodPhase};
pub use sample::{
    ContainerSample, CpuSample, FsSample, MemorySample, NodeSample, PodSample, ProcessSample, StatsSource, VolumeSample,
};
pub use stats::{
    Config, DEFAULT_CONTAINER_OVERHEAD_BYTES, DEFAULT_MAX_RATE_ENTRIES, DEFAULT_MIN_RATE_INTERVAL,
    DEFAULT_POD_OVERHEAD_BYTES, DEFAULT_RATE_WINDOW, Stats,
};
pub use summary::Summary;
pub use upstream::ClaimVolume;
