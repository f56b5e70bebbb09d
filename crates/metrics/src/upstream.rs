//! More of the upstream kubelet's series under upstream's names: the node's
//! name, pod worker durations, the client certificate's TTL, API client
//! requests, volume usage and the `process_*` series every Go binary
//! exports. Computed figures (TTL, volumes, process) are read at scrape time.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `kubelet_node_name` | gauge (1) | `node` |
//! | `kubelet_pod_worker_duration_seconds` | histogram | `operation_type`: `create` (admission to all containers started), `kill` (termination) |
//! | `kubelet_certificate_manager_client_ttl_seconds` | gauge | — (seconds until the client certificate expires; absent without one) |
//! | `rest_client_requests_total` | counter | `code`, `host`, `method` |
//! | `kubelet_volume_stats_{capacity,available,used}_bytes`, `kubelet_volume_stats_inodes{,_free,_used}` | gauge | `namespace`, `persistentvolumeclaim` |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds` | counter / gauges | — |

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upstream's buckets for `kubelet_pod_worker_duration_seconds` (Prometheus's defaults).
pub const POD_WORKER_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    operation_type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    code: String,
    host: String,
    method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClaimLabels {
    namespace: String,
    persistentvolumeclaim: String,
}

/// One claim's volume usage, for the `kubelet_volume_stats_*` series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimVolume {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub claim: String,
    /// Bytes in total, available, used.
    pub capacity_bytes: u64,
    /// See `capacity_bytes`.
    pub available_bytes: u64,
    /// See `capacity_bytes`.
    pub used_bytes: u64,
    /// Inodes in total, free, used.
    pub inodes: u64,
    /// See `inodes`.
    pub inodes_free: u64,
    /// See `inodes`.
    pub inodes_used: u64,
}

type VolumeSource = Box<dyn Fn() -> Vec<ClaimVolume> + Send + Sync>;
type ExpirySource = Box<dyn Fn() -> Option<SystemTime> + Send + Sync>;

/// Figures read at scrape time.
#[derive(Default)]
struct Computed {
    client_expiry: OnceLock<ExpirySource>,
    volumes: OnceLock<VolumeSource>,
}

impl std::fmt::Debug for Computed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Computed").finish_non_exhaustive()
    }
}

/// The series of this module; registered on the root registry (no prefix).
#[derive(Debug)]
pub(crate) struct Upstream {
    node_name: Family<NodeLabels, Gauge>,
    pod_worker: Family<OperationLabels, Histogram>,
    requests: Family<RequestLabels, Counter>,
    computed: Arc<Computed>,
}

impl Upstream {
    /// Registers every series in `root`.
    pub(crate) fn register(root: &mut Registry) -> Self {
        let node_name = Family::<NodeLabels, Gauge>::default();
        root.register("kubelet_node_name", "The node's name. The count is always 1", node_name.clone());
        let pod_worker =
            Family::<OperationLabels, Histogram>::new_with_constructor(|| Histogram::new(POD_WORKER_BUCKETS));
        root.register(
            "kubelet_pod_worker_duration_seconds",
            "Duration in seconds to sync a single pod. Broken down by operation type: create, update, or sync",
            pod_worker.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        root.register(
            "rest_client_requests",
            "Number of HTTP requests, partitioned by status code, method, and host",
            requests.clone(),
        );
        let computed = Arc::new(Computed::default());
        root.register_collector(Box::new(ComputedCollector(computed.clone())));
        Self { node_name, pod_worker, requests, computed }
    }

    pub(crate) fn set_node_name(&self, name: &str) {
        self.node_name.clear();
        self.node_name.get_or_create(&NodeLabels { node: name.to_owned() }).set(1);
    }

    pub(crate) fn pod_worker(&self, operation_type: &'static str, took: Duration) {
        self.pod_worker.get_or_create(&OperationLabels { operation_type }).observe(took.as_secs_f64());
    }

    pub(crate) fn request(&self, code: String, host: String, method: String) {
        self.requests.get_or_create(&RequestLabels { code, host, method }).inc();
    }

    pub(crate) fn set_client_certificate_source(&self, source: ExpirySource) {
        let _ = self.computed.client_expiry.set(source);
    }

    pub(crate) fn set_volume_source(&self, source: VolumeSource) {
        let _ = self.computed.volumes.set(source);
    }
}

#[derive(Debug)]
struct ComputedCollector(Arc<Computed>);

fn gauge<N: EncodeMetric>(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, metric: N) -> std::fmt::Result {
    let enc = e.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(enc)
}

impl Collector for ComputedCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        if let Some(not_after) = self.0.client_expiry.get().and_then(|source| source()) {
            let ttl = match not_after.duration_since(SystemTime::now()) {
                Ok(left) => left.as_secs_f64(),
                Err(past) => -past.duration().as_secs_f64(),
            };
            gauge(
                &mut e,
                "kubelet_certificate_manager_client_ttl_seconds",
                "Gauge of the TTL (time-to-live) of the Kubelet's client certificate. The value is in seconds \
                 until certificate expiry (negative if already expired)",
                ConstGauge::new(ttl),
            )?;
        }
        if let Some(source) = self.0.volumes.get() {
            encode_volumes(&mut e, &source())?;
        }
        encode_process(&mut e)
    }
}

fn encode_volumes(e: &mut DescriptorEncoder<'_>, volumes: &[ClaimVolume]) -> std::fmt::Result {
    type Field = fn(&ClaimVolume) -> u64;
    let series: [(&str, &str, Field); 6] = [
        ("kubelet_volume_stats_capacity_bytes", "Capacity in bytes of the volume", |v| v.capacity_bytes),
        ("kubelet_volume_stats_available_bytes", "Number of available bytes in the volume", |v| v.available_bytes),
        ("kubelet_volume_stats_used_bytes", "Number of used bytes in the volume", |v| v.used_bytes),
        ("kubelet_volume_stats_inodes", "Maximum number of inodes in the volume", |v| v.inodes),
        ("kubelet_volume_stats_inodes_free", "Number of free inodes in the volume", |v| v.inodes_free),
        ("kubelet_volume_stats_inodes_used", "Number of used inodes in the volume", |v| v.inodes_used),
    ];
    if volumes.is_empty() {
        return Ok(());
    }
    for (name, help, field) in series {
        let family = Family::<ClaimLabels, Gauge>::default();
        for v in volumes {
            let labels = ClaimLabels { namespace: v.namespace.clone(), persistentvolumeclaim: v.claim.clone() };
            family.get_or_create(&labels).set(i64::try_from(field(v)).unwrap_or(i64::MAX));
        }
        gauge(e, name, help, family)?;
    }
    Ok(())
}

/// The `process_*` series of Prometheus's process collector, from `/proc/self`.
fn encode_process(e: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
    let Some(p) = crate::host::process_figures() else { return Ok(()) };
    let cpu = ConstCounter::new(p.cpu_seconds);
    let enc = e.encode_descriptor(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        None,
        cpu.metric_type(),
    )?;
    cpu.encode(enc)?;
    gauge(
        e,
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        ConstGauge::new(p.resident_bytes as f64),
    )?;
    gauge(e, "process_virtual_memory_bytes", "Virtual memory size in bytes", ConstGauge::new(p.virtual_bytes as f64))?;
    gauge(e, "process_open_fds", "Number of open file descriptors", ConstGauge::new(p.open_fds as f64))?;
    if let Some(max) = p.max_fds {
        gauge(e, "process_max_fds", "Maximum number of open file descriptors", ConstGauge::new(max as f64))?;
    }
    let start = p.start_time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    gauge(
        e,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        ConstGauge::new(start),
    )
}

#[cfg(test)]
mod tests;
