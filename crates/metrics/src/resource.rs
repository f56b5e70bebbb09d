//! The `/metrics/resource` payload: what metrics-server (≥ 0.6) scrapes.
//!
//! The same series, help texts, stability prefixes and order as the
//! kubelet's resource metrics collector
//! (`pkg/kubelet/metrics/collectors/resource_metrics.go`): families sorted by
//! name, labels sorted by name, samples sorted by label values, CPU in
//! core-seconds, and every usage sample stamped with the time of its reading
//! in milliseconds (`container_start_time_seconds` and the scrape-error
//! gauges carry no timestamp, as upstream). Families without samples are
//! left out. Swap series are not written (wasm guests have no swap).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::sample::{NodeSample, PodSample};
use crate::stats::Config;
use crate::text::{Sample, family};

/// Renders the payload from a node and its pods.
pub(crate) fn render(config: &Config, node: &NodeSample, pods: &[PodSample]) -> String {
    let mut pods: Vec<&PodSample> = pods.iter().collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut containers: Vec<_> = pods.iter().flat_map(|p| p.containers.iter().map(move |c| (*p, c))).collect();
    containers.sort_by(|(pa, a), (pb, b)| (&a.name, &pa.namespace, &pa.name).cmp(&(&b.name, &pb.namespace, &pb.name)));

    let container_labels = |pod: &PodSample, name: &str| {
        vec![("container", name.to_owned()), ("namespace", pod.namespace.clone()), ("pod", pod.name.clone())]
    };
    let pod_labels = |pod: &PodSample| vec![("namespace", pod.namespace.clone()), ("pod", pod.name.clone())];

    let mut out = String::new();
    let cpu: Vec<Sample> = containers
        .iter()
        .map(|(p, c)| Sample {
            labels: container_labels(p, &c.name),
            value: seconds(c.cpu_nanos),
            timestamp_ms: ms(c.time),
        })
        .collect();
    family(&mut out, "container_cpu_usage_seconds_total", CONTAINER_CPU, "counter", &cpu);
    let memory: Vec<Sample> = containers
        .iter()
        .map(|(p, c)| Sample {
            labels: container_labels(p, &c.name),
            value: c.memory_bytes as f64,
            timestamp_ms: ms(c.time),
        })
        .collect();
    family(&mut out, "container_memory_working_set_bytes", CONTAINER_MEMORY, "gauge", &memory);
    let starts: Vec<Sample> = containers
        .iter()
        .filter_map(|(p, c)| {
            let start = c.start_time.duration_since(UNIX_EPOCH).ok().filter(|d| d.as_secs() > 0)?;
            Some(Sample { labels: container_labels(p, &c.name), value: start.as_secs_f64(), timestamp_ms: None })
        })
        .collect();
    family(&mut out, "container_start_time_seconds", CONTAINER_START, "gauge", &starts);

    let node_cpu: Vec<Sample> = node
        .cpu
        .iter()
        .map(|cpu| Sample { labels: vec![], value: seconds(cpu.usage_core_nanos), timestamp_ms: ms(cpu.time) })
        .collect();
    family(&mut out, "node_cpu_usage_seconds_total", NODE_CPU, "counter", &node_cpu);
    let node_memory: Vec<Sample> = node
        .memory
        .iter()
        .filter_map(|m| Some(Sample { labels: vec![], value: m.working_set_bytes? as f64, timestamp_ms: ms(m.time) }))
        .collect();
    family(&mut out, "node_memory_working_set_bytes", NODE_MEMORY, "gauge", &node_memory);

    let totals: Vec<_> = pods.iter().filter_map(|p| Some((*p, config.pod_totals(p)?))).collect();
    let pod_cpu: Vec<Sample> = totals
        .iter()
        .map(|(p, t)| Sample { labels: pod_labels(p), value: seconds(t.cpu_nanos), timestamp_ms: ms(t.time) })
        .collect();
    family(&mut out, "pod_cpu_usage_seconds_total", POD_CPU, "counter", &pod_cpu);
    let pod_memory: Vec<Sample> = totals
        .iter()
        .map(|(p, t)| Sample { labels: pod_labels(p), value: t.memory_bytes as f64, timestamp_ms: ms(t.time) })
        .collect();
    family(&mut out, "pod_memory_working_set_bytes", POD_MEMORY, "gauge", &pod_memory);

    let ok = [Sample { labels: vec![], value: 0.0, timestamp_ms: None }];
    family(&mut out, "resource_scrape_error", RESOURCE_SCRAPE_ERROR, "gauge", &ok);
    family(&mut out, "scrape_error", SCRAPE_ERROR, "gauge", &ok);
    out
}

const CONTAINER_CPU: &str = "[STABLE] Cumulative cpu time consumed by the container in core-seconds";
const CONTAINER_MEMORY: &str = "[STABLE] Current working set of the container in bytes";
const CONTAINER_START: &str = "[STABLE] Start time of the container since unix epoch in seconds";
const NODE_CPU: &str = "[STABLE] Cumulative cpu time consumed by the node in core-seconds";
const NODE_MEMORY: &str = "[STABLE] Current working set of the node in bytes";
const POD_CPU: &str = "[STABLE] Cumulative cpu time consumed by the pod in core-seconds";
const POD_MEMORY: &str = "[STABLE] Current working set of the pod in bytes";
const RESOURCE_SCRAPE_ERROR: &str = "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise";
const SCRAPE_ERROR: &str = "[ALPHA] 1 if there was an error while getting container metrics, 0 otherwise";

/// Nanoseconds as seconds.
fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// Milliseconds since the Unix epoch (`None` before it).
pub(crate) fn ms(time: SystemTime) -> Option<i64> {
    let since = time.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}
