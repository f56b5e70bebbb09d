//! The evicted pod's status message and the admission rejection message, in
//! upstream's words (`pkg/kubelet/eviction/helpers.go`).

use k8s_openapi::api::core::v1::Container;

use crate::observe::{Observations, PodStats};
use crate::pod;
use crate::quantity::Amount;
use crate::signal::{Condition, Resource};
use crate::threshold::Threshold;

/// The status reason of an evicted pod (and of a pod refused under pressure).
pub const REASON: &str = "Evicted";

/// `The node was low on resource: memory. Threshold quantity: 100Mi,
/// available: 52Mi. Container memhog was using 200Mi, request is 0, has
/// larger consumption of memory. ` — upstream's `evictionMessage`: the
/// threshold met for `resource`, then every container using more than it requests.
pub fn eviction(resource: Resource, pod: &PodStats, met: &[Threshold], observations: &Observations) -> String {
    let mut message = format!("The node was low on resource: {resource}. ");
    let threshold = met.iter().filter(|t| t.signal.resource() == resource).find_map(|t| {
        let o = observations.get(t.signal)?;
        Some((t.value.resolve(o.capacity), o.available))
    });
    if let Some((quantity, available)) = threshold {
        message += &format!("Threshold quantity: {quantity}, available: {available}. ");
    }
    let spec = pod.pod.spec.as_ref();
    let containers: Vec<&Container> =
        spec.into_iter().flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten())).collect();
    for stats in &pod.containers {
        let Some(container) = containers.iter().find(|c| c.name == stats.name) else { continue };
        let usage = match resource {
            Resource::Memory => Some(Amount::bytes(to_i64(stats.memory_bytes))),
            Resource::EphemeralStorage => stats.logs.map(|l| Amount::bytes(to_i64(l.bytes))),
            Resource::Inodes | Resource::Pids => None,
        };
        let request_text = pod::container_request_text(container, resource.as_str());
        let request = request_text.and_then(|t| Amount::parse(t).ok()).unwrap_or(Amount::bytes(0));
        if let Some(usage) = usage.filter(|u| u.value > request.value) {
            message += &format!(
                "Container {} was using {usage}, request is {request}, has larger consumption of {resource}. ",
                stats.name
            );
        }
    }
    message
}

/// `The node had condition: [MemoryPressure]. ` — why a pod is refused
/// under pressure (upstream `nodeConditionMessageFmt`).
pub fn node_condition(conditions: &[Condition]) -> String {
    let names: Vec<&str> = conditions.iter().map(|c| c.as_str()).collect();
    format!("The node had condition: [{}]. ", names.join(" "))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::observe::{ContainerStats, Disk, Level, NodeStats};
    use crate::threshold::{Flags, parse};

    const MI: u64 = 1 << 20;

    fn stats(pod: serde_json::Value, containers: Vec<ContainerStats>) -> PodStats {
        PodStats { pod: Arc::new(serde_json::from_value(pod).unwrap()), containers, volumes: None }
    }

    #[test]
    fn upstreams_memory_message() {
        let met = parse(&Flags { hard: Some("memory.available<100Mi"), ..Flags::default() }).unwrap();
        let node =
            NodeStats { memory: Some(Level { available: 52 * MI, capacity: 4096 * MI }), ..NodeStats::default() };
        let pod = stats(
            serde_json::json!({"spec": {"containers": [
                {"name": "memhog"},
                {"name": "quiet", "resources": {"requests": {"memory": "64Mi"}}}
            ]}}),
            vec![
                ContainerStats { name: "memhog".into(), memory_bytes: 200 * MI, logs: None },
                ContainerStats { name: "quiet".into(), memory_bytes: 10 * MI, logs: None },
            ],
        );
        let obs = Observations::new(&node, std::slice::from_ref(&pod), 0);
        assert_eq!(
            eviction(Resource::Memory, &pod, &met, &obs),
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi. \
             Container memhog was using 200Mi, request is 0, has larger consumption of memory. "
        );
    }

    #[test]
    fn ephemeral_storage_message_counts_logs() {
        let met = parse(&Flags { hard: Some("nodefs.available<10%"), ..Flags::default() }).unwrap();
        let fs = crate::observe::FsStats { bytes: Level { available: 5 << 30, capacity: 100 << 30 }, inodes: None };
        let node = NodeStats { nodefs: Some(fs), ..NodeStats::default() };
        let pod = stats(
            serde_json::json!({"spec": {"containers": [
                {"name": "chatty", "resources": {"requests": {"ephemeral-storage": "1Mi"}}}
            ]}}),
            vec![ContainerStats {
                name: "chatty".into(),
                memory_bytes: 0,
                logs: Some(Disk { bytes: 3 * MI, inodes: 2 }),
            }],
        );
        let obs = Observations::new(&node, &[], 0);
        assert_eq!(
            eviction(Resource::EphemeralStorage, &pod, &met, &obs),
            "The node was low on resource: ephemeral-storage. Threshold quantity: 10737418400, available: 5Gi. \
             Container chatty was using 3Mi, request is 1Mi, has larger consumption of ephemeral-storage. "
        );
    }

    #[test]
    fn condition_message() {
        assert_eq!(node_condition(&[Condition::MemoryPressure]), "The node had condition: [MemoryPressure]. ");
        assert_eq!(
            node_condition(&[Condition::MemoryPressure, Condition::DiskPressure]),
            "The node had condition: [MemoryPressure DiskPressure]. "
        );
    }
}
