//! The `/metrics/cadvisor` payload: the container memory series of
//! cAdvisor that a wasm guest has an equivalent for.
//!
//! Upstream's kubelet serves cAdvisor's per-container metrics there, read
//! from each container's cgroup. wasmlet writes the memory ones, under
//! cAdvisor's names, help texts and types, from the runtime's figures:
//!
//! | series | cgroup v2 source upstream | wasmlet source |
//! |---|---|---|
//! | `container_memory_usage_bytes` | `memory.current` | [`ContainerSample::memory_bytes`] |
//! | `container_memory_working_set_bytes` | usage − inactive file | the same (a guest has no page cache) |
//! | `container_memory_max_usage_bytes` | `memory.peak` | [`ContainerSample::memory_peak_bytes`] |
//! | `container_oom_events_total` | `memory.events` `oom_kill` | [`ContainerSample::oom_kills`] |
//! | `container_spec_memory_limit_bytes` | `memory.max` (0: none) | [`ContainerSample::memory_limit_bytes`] |
//!
//! Labels are `container`, `namespace` and `pod` (cAdvisor also writes
//! `id`, `image` and `name`, which name cgroups and runtime containers that
//! a wasm guest does not have). Families, labels and samples are sorted as
//! in [`resource`](crate::resource); usage samples carry the time of their
//! reading. For a `wasi:http` server, usage is the sum of the instances of
//! the requests in flight, the peak is that sum's highest value (never
//! above the limit, which bounds the sum), and each request stopped at the
//! limit is one OOM event.

use crate::resource::ms;
use crate::sample::{ContainerSample, PodSample};
use crate::text::{Sample, family};

/// Renders the payload from the pods.
pub(crate) fn render(pods: &[PodSample]) -> String {
    let mut containers: Vec<(&PodSample, &ContainerSample)> =
        pods.iter().flat_map(|p| p.containers.iter().map(move |c| (p, c))).collect();
    containers.sort_by(|(pa, a), (pb, b)| (&a.name, &pa.namespace, &pa.name).cmp(&(&b.name, &pb.namespace, &pb.name)));
    let series = |value: fn(&ContainerSample) -> u64, stamped: bool| -> Vec<Sample> {
        containers
            .iter()
            .map(|(p, c)| Sample {
                labels: vec![
                    ("container", c.name.clone()),
                    ("namespace", p.namespace.clone()),
                    ("pod", p.name.clone()),
                ],
                value: value(c) as f64,
                timestamp_ms: if stamped { ms(c.time) } else { None },
            })
            .collect()
    };
    let mut out = String::new();
    family(&mut out, "container_memory_max_usage_bytes", MAX_USAGE, "gauge", &series(|c| c.memory_peak_bytes, true));
    family(&mut out, "container_memory_usage_bytes", USAGE, "gauge", &series(|c| c.memory_bytes, true));
    family(&mut out, "container_memory_working_set_bytes", WORKING_SET, "gauge", &series(|c| c.memory_bytes, true));
    family(&mut out, "container_oom_events_total", OOM_EVENTS, "counter", &series(|c| c.oom_kills, true));
    let limit = |c: &ContainerSample| c.memory_limit_bytes.unwrap_or(0);
    family(&mut out, "container_spec_memory_limit_bytes", LIMIT, "gauge", &series(limit, false));
    out
}

const MAX_USAGE: &str = "Maximum memory usage recorded in bytes";
const USAGE: &str = "Current memory usage in bytes, including all memory regardless of when it was accessed";
const WORKING_SET: &str = "Current working set in bytes.";
const OOM_EVENTS: &str = "Count of out of memory events observed for the container";
const LIMIT: &str = "Memory limit for the container.";
