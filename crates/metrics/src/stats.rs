//! [`Stats`]: builds `/stats/summary`, `/metrics/resource` and
//! `/metrics/cadvisor` from a [`StatsSource`], remembering what the CPU
//! rates need between scrapes.
//!
//! # Pod totals and the agent's overhead
//!
//! A pod's CPU is the sum of its containers' (the agent's own work for a pod,
//! such as status patches and log writing, is not attributed: it is small and
//! shows in the `kubelet` system container, as upstream's does). A pod's
//! memory is the sum of its containers' linear memories plus an estimate of
//! what the agent holds for it outside guest memory:
//!
//! - [`Config::container_overhead_bytes`] per *running* container: the
//!   wasmtime store and instance, the resident part of the async fiber
//!   stack, the WASI context and stdio pipes. Measured with the
//!   `guest_overhead` example of `wasmlet-runtime` (`docs/benchmarks.md`):
//!   an idle guest grows the agent's RSS by about 39 KiB (release build;
//!   59 KiB in a debug build) *including* the pages of its own linear
//!   memory it touched, so 64 KiB is an upper bound.
//! - [`Config::pod_overhead_bytes`] per pod: the pod worker, its cached pod
//!   object and status, the log writer. Not measured; 64 KiB is an estimate
//!   (a pod object and its status are a few KiB each, a task and its
//!   channels less).
//!
//! Linear memory is counted at its size, touched or not, so for small guests
//! the reported pod memory is above the agent's real cost, never below.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::rate::{Key, Rates};
use crate::sample::{ContainerSample, CpuSample, FsSample, MemorySample, NodeSample, PodSample, StatsSource};
use crate::summary::{
    ContainerStats, CpuStats, FsStats, MemoryStats, NodeStats, PodReference, PodStats, RuntimeStats, Summary, kube_time,
};

/// Default [`Config::pod_overhead_bytes`].
pub const DEFAULT_POD_OVERHEAD_BYTES: u64 = 64 << 10;
/// Default [`Config::container_overhead_bytes`].
pub const DEFAULT_CONTAINER_OVERHEAD_BYTES: u64 = 64 << 10;
/// Default [`Config::min_rate_interval`].
pub const DEFAULT_MIN_RATE_INTERVAL: Duration = Duration::from_secs(1);
/// Default [`Config::rate_window`].
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(10);
/// Default [`Config::max_rate_entries`].
pub const DEFAULT_MAX_RATE_ENTRIES: usize = 4096;

/// How the payloads are built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Agent memory attributed to each pod, in bytes.
    pub pod_overhead_bytes: u64,
    /// Agent memory attributed to each running container, in bytes.
    pub container_overhead_bytes: u64,
    /// Readings closer than this to the base repeat the last rate.
    pub min_rate_interval: Duration,
    /// The base of a rate moves once it is this old.
    pub rate_window: Duration,
    /// Objects whose rates are tracked at most (others get no rate).
    pub max_rate_entries: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            pod_overhead_bytes: DEFAULT_POD_OVERHEAD_BYTES,
            container_overhead_bytes: DEFAULT_CONTAINER_OVERHEAD_BYTES,
            min_rate_interval: DEFAULT_MIN_RATE_INTERVAL,
            rate_window: DEFAULT_RATE_WINDOW,
            max_rate_entries: DEFAULT_MAX_RATE_ENTRIES,
        }
    }
}

/// A pod's CPU and memory: its containers' plus overhead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PodTotals {
    /// The latest reading time of its containers.
    pub(crate) time: SystemTime,
    pub(crate) cpu_nanos: u64,
    pub(crate) memory_bytes: u64,
}

impl Config {
    /// The totals of `pod`; `None` for a pod with no container samples.
    pub(crate) fn pod_totals(&self, pod: &PodSample) -> Option<PodTotals> {
        let time = pod.containers.iter().map(|c| c.time).max()?;
        let cpu_nanos = pod.containers.iter().fold(0_u64, |sum, c| sum.saturating_add(c.cpu_nanos));
        let running = u64::try_from(pod.containers.iter().filter(|c| c.running).count()).unwrap_or(u64::MAX);
        let memory_bytes = pod
            .containers
            .iter()
            .fold(self.pod_overhead_bytes, |sum, c| sum.saturating_add(c.memory_bytes))
            .saturating_add(running.saturating_mul(self.container_overhead_bytes));
        Some(PodTotals { time, cpu_nanos, memory_bytes })
    }
}

/// The stats and resource-metrics builder of a node: one per agent, shared
/// by the API's handlers.
#[derive(Debug)]
pub struct Stats {
    config: Config,
    rates: Mutex<Rates>,
}

impl Stats {
    /// A builder with `config`.
    pub fn new(config: Config) -> Self {
        let rates = Rates::new(config.min_rate_interval, config.rate_window, config.max_rate_entries);
        Self { config, rates: Mutex::new(rates) }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The `/stats/summary` payload; with `only_cpu_and_memory`, only the
    /// CPU and memory figures (no filesystems), like the kubelet's
    /// `?only_cpu_and_memory=true`.
    pub fn summary(&self, source: &dyn StatsSource, only_cpu_and_memory: bool) -> Summary {
        let node = source.node();
        let pods = source.pods();
        // Short critical section, no await; a poisoned table is still usable.
        let mut rates = self.rates.lock().unwrap_or_else(PoisonError::into_inner);
        let summary = Summary {
            node: node_stats(&node, &mut rates, only_cpu_and_memory),
            pods: pods.iter().map(|pod| self.pod_stats(pod, &mut rates)).collect(),
        };
        rates.sweep();
        summary
    }

    /// The `/metrics/resource` payload (see [`resource`](crate::resource)).
    pub fn resource_metrics(&self, source: &dyn StatsSource) -> String {
        crate::resource::render(&self.config, &source.node(), &source.pods())
    }

    /// The `/metrics/cadvisor` payload (see [`cadvisor`](crate::cadvisor)).
    pub fn cadvisor_metrics(&self, source: &dyn StatsSource) -> String {
        crate::cadvisor::render(&source.pods())
    }

    fn pod_stats(&self, pod: &PodSample, rates: &mut Rates) -> PodStats {
        let containers = pod.containers.iter().map(|c| container_stats(&pod.uid, c, rates)).collect();
        let totals = self.config.pod_totals(pod);
        PodStats {
            pod_ref: PodReference { name: pod.name.clone(), namespace: pod.namespace.clone(), uid: pod.uid.clone() },
            start_time: kube_time(pod.start_time),
            containers,
            cpu: totals.map(|t| {
                let sample = CpuSample { time: t.time, usage_core_nanos: t.cpu_nanos };
                cpu_stats(&sample, rates, Key::Pod(pod.uid.clone()))
            }),
            memory: totals.map(|t| guest_memory(t.time, t.memory_bytes, None)),
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

fn node_stats(node: &NodeSample, rates: &mut Rates, only_cpu_and_memory: bool) -> NodeStats {
    let agent = node.agent.map(|agent| ContainerStats {
        name: "kubelet".to_owned(),
        start_time: kube_time(agent.start_time),
        cpu: Some(cpu_stats(&agent.cpu, rates, Key::Agent)),
        memory: Some(memory_stats(&agent.memory)),
    });
    let (fs, runtime) = if only_cpu_and_memory {
        (None, None)
    } else {
        (node.fs.as_ref().map(fs_stats), node.image_fs.as_ref().map(|fs| RuntimeStats { image_fs: Some(fs_stats(fs)) }))
    };
    NodeStats {
        node_name: node.name.clone(),
        system_containers: agent.into_iter().collect(),
        start_time: kube_time(node.start_time),
        cpu: node.cpu.as_ref().map(|cpu| cpu_stats(cpu, rates, Key::Node)),
        memory: node.memory.as_ref().map(memory_stats),
        fs,
        runtime,
    }
}

fn container_stats(pod_uid: &str, c: &ContainerSample, rates: &mut Rates) -> ContainerStats {
    let cpu = CpuSample { time: c.time, usage_core_nanos: c.cpu_nanos };
    let key = Key::Container(pod_uid.to_owned(), c.name.clone());
    ContainerStats {
        name: c.name.clone(),
        start_time: kube_time(c.start_time),
        cpu: Some(cpu_stats(&cpu, rates, key)),
        memory: Some(guest_memory(c.time, c.memory_bytes, c.memory_limit_bytes)),
    }
}

fn cpu_stats(cpu: &CpuSample, rates: &mut Rates, key: Key) -> CpuStats {
    CpuStats {
        time: kube_time(cpu.time),
        usage_nano_cores: rates.observe(key, cpu.time, cpu.usage_core_nanos),
        usage_core_nano_seconds: Some(cpu.usage_core_nanos),
    }
}

/// A guest's (or pod's) memory: all of it is in use and resident as far as
/// the agent can tell, so usage, working set and RSS are the same figure.
fn guest_memory(time: SystemTime, bytes: u64, limit: Option<u64>) -> MemoryStats {
    MemoryStats {
        time: kube_time(time),
        available_bytes: limit.map(|limit| limit.saturating_sub(bytes)),
        usage_bytes: Some(bytes),
        working_set_bytes: Some(bytes),
        rss_bytes: Some(bytes),
        page_faults: None,
        major_page_faults: None,
    }
}

fn memory_stats(m: &MemorySample) -> MemoryStats {
    MemoryStats {
        time: kube_time(m.time),
        available_bytes: m.available_bytes,
        usage_bytes: m.usage_bytes,
        working_set_bytes: m.working_set_bytes,
        rss_bytes: m.rss_bytes,
        page_faults: m.page_faults,
        major_page_faults: m.major_page_faults,
    }
}

fn fs_stats(fs: &FsSample) -> FsStats {
    FsStats {
        time: kube_time(fs.time),
        available_bytes: fs.available_bytes,
        capacity_bytes: fs.capacity_bytes,
        used_bytes: fs.used_bytes,
        inodes_free: fs.inodes_free,
        inodes: fs.inodes,
        inodes_used: fs.inodes_used,
    }
}
