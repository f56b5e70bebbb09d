//! Ranking as upstream: over-request first, then priority, then usage above request.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::observe::ContainerStats;

const MI: u64 = 1 << 20;

/// A pod `name` with a memory request and limit (Guaranteed when both are
/// equal), priority, and its guest using `memory`.
fn pod(name: &str, request: Option<&str>, limit: Option<&str>, priority: i32, memory: u64) -> PodStats {
    let mut resources = serde_json::json!({});
    if let Some(r) = request {
        resources["requests"] = serde_json::json!({"memory": r, "cpu": "100m"});
    }
    if let Some(l) = limit {
        resources["limits"] = serde_json::json!({"memory": l, "cpu": "100m"});
    }
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "ns", "uid": name},
        "spec": {"priority": priority, "containers": [{"name": "c", "resources": resources}]}
    }))
    .unwrap();
    PodStats {
        pod: Arc::new(pod),
        containers: vec![ContainerStats { name: "c".into(), memory_bytes: memory, logs: None }],
        volumes: None,
    }
}

fn order(mut pods: Vec<PodStats>, signal: Signal) -> Vec<String> {
    rank(&mut pods, signal, false);
    pods.iter().map(|p| p.uid().to_owned()).collect()
}

#[test]
fn best_effort_then_burstable_then_guaranteed() {
    let pods = vec![
        pod("guaranteed", Some("300Mi"), Some("300Mi"), 0, 290 * MI),
        pod("burstable", Some("100Mi"), None, 0, 150 * MI),
        pod("best-effort", None, None, 0, 20 * MI),
    ];
    // Both the BestEffort and the Burstable pod exceed their requests; the
    // Guaranteed one cannot. Among the first two, the larger excess goes first.
    assert_eq!(order(pods, Signal::MemoryAvailable), ["burstable", "best-effort", "guaranteed"]);
}

#[test]
fn the_biggest_user_over_its_request_goes_first() {
    let pods = vec![
        pod("small", None, None, 0, 30 * MI),
        pod("big", None, None, 0, 200 * MI),
        pod("medium", None, None, 0, 120 * MI),
        pod("within-request", Some("1Gi"), None, 0, 900 * MI),
    ];
    assert_eq!(order(pods, Signal::AllocatableMemoryAvailable), ["big", "medium", "small", "within-request"]);
}

#[test]
fn priority_comes_before_usage() {
    let pods = vec![
        pod("important-hog", None, None, 1000, 500 * MI),
        pod("modest", None, None, 0, 10 * MI),
        // Under its request: last whatever its priority.
        pod("low-but-within", Some("100Mi"), None, -10, 50 * MI),
    ];
    assert_eq!(order(pods, Signal::MemoryAvailable), ["modest", "important-hog", "low-but-within"]);
}

#[test]
fn disk_ranks_by_logs_and_volumes_over_the_ephemeral_request() {
    let with_disk = |name: &str, logs: u64, volumes: u64, request: Option<&str>| {
        let mut p = pod(name, None, None, 0, 0);
        p.containers[0].logs = Some(Disk { bytes: logs, inodes: 3 });
        p.volumes = Some(Disk { bytes: volumes, inodes: 1 });
        if let Some(r) = request {
            let mut spec = (*p.pod).clone();
            let c = &mut spec.spec.as_mut().unwrap().containers[0];
            c.resources
                .get_or_insert_default()
                .requests
                .get_or_insert_default()
                .insert("ephemeral-storage".into(), k8s_openapi::apimachinery::pkg::api::resource::Quantity(r.into()));
            p.pod = Arc::new(spec);
        }
        p
    };
    let pods = vec![
        with_disk("logs", 50 * MI, 0, None),
        with_disk("volume", 10 * MI, 100 * MI, None),
        with_disk("requested", 10 * MI, 300 * MI, Some("1Gi")),
    ];
    assert_eq!(order(pods.clone(), Signal::NodeFsAvailable), ["volume", "logs", "requested"]);
    assert_eq!(order(pods.clone(), Signal::ImageFsAvailable), ["volume", "logs", "requested"], "shared fs");
    // With an image filesystem of its own, pods' logs and volumes do not count there.
    let mut dedicated = pods;
    rank(&mut dedicated, Signal::ImageFsAvailable, true);
    let names: Vec<_> = dedicated.iter().map(PodStats::uid).collect();
    assert_eq!(names, ["logs", "volume", "requested"], "only priority (all equal) decides: order kept");
}
