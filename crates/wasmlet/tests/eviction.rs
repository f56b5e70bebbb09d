//! Node-pressure eviction on a real node (issue 11, finding 4): on a node
//! whose pods' share of memory is small, BestEffort memory hogs are evicted
//! in upstream's order — the biggest user over its request first, one per
//! pass — while a Guaranteed pod keeps running; the agent survives; the
//! node reports `MemoryPressure` (and gets the taint), refuses BestEffort
//! pods meanwhile, and recovers once the hogs are gone and the transition
//! period has passed.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::LogParams;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, kubectl_ok};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, wait};

const MI: u64 = 1 << 20;
/// The pods' share of memory: capacity − `--system-reserved`.
const SHARE_MI: u64 = 600;
/// `allocatableMemory.available` threshold (copied from the hard `memory.available`).
const THRESHOLD: &str = "300Mi";
/// Once met, the threshold holds until this much more is free again.
const MIN_RECLAIM: &str = "100Mi";
const TRANSITION: &str = "20s";
/// How long the node takes to report (and the controller to taint) a change.
const NODE_TIMEOUT: Duration = Duration::from_secs(90);

/// A memory hog holding `mb` MiB; Guaranteed with `guaranteed` as its
/// memory request and limit (and 100m CPU), else BestEffort.
fn hog(name: &str, node: &str, image: &str, mb: u32, guaranteed: Option<&str>) -> serde_json::Value {
    let mut pod = pods::bare(name, node, image, &[], "Always");
    let c = &mut pod["spec"]["containers"][0];
    // One allocation of the whole size: the hog's memory jumps at once, so
    // no pass of the eviction manager can see it half-grown (and rank it
    // below a smaller hog).
    c["env"] = serde_json::json!([
        { "name": "LIMIT_MB", "value": mb.to_string() },
        { "name": "CHUNK_KB", "value": (mb * 1024).to_string() },
    ]);
    if let Some(m) = guaranteed {
        let r = serde_json::json!({ "memory": m, "cpu": "100m" });
        c["resources"] = serde_json::json!({ "requests": r, "limits": r });
    }
    pod
}

/// Waits until `name` prints `holding <mb> MiB`.
async fn wait_holding(api: &Api<Pod>, name: &str, mb: u32, node: &WasmletNode) {
    pods::wait_for(api, name, POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main")).await;
    let want = format!("holding {mb} MiB");
    let held = tokio::time::timeout(POD_TIMEOUT, async {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            if api.logs(name, &LogParams::default()).await.is_ok_and(|l| l.contains(&want)) {
                return;
            }
        }
    })
    .await;
    assert!(held.is_ok(), "{name} never printed {want:?}\n{}", node.log_tail(40));
}

fn condition<'a>(node: Option<&'a Node>, type_: &str) -> Option<&'a str> {
    let conditions = node?.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == type_).map(|c| c.status.as_str())
}

fn tainted(node: Option<&Node>) -> bool {
    let taints = node.and_then(|n| n.spec.as_ref()).and_then(|s| s.taints.as_ref());
    taints.into_iter().flatten().any(|t| t.key == "node.kubernetes.io/memory-pressure" && t.effect == "NoSchedule")
}

fn evicted(p: &Pod) -> bool {
    let s = p.status.as_ref();
    pods::phase(p) == "Failed" && s.and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

#[tokio::test]
async fn best_effort_hogs_are_evicted_biggest_first_and_the_node_recovers() {
    // The agent measures memory capacity this way (MemTotal, or a lower cgroup limit).
    let root = tempfile::tempdir().unwrap();
    let capacity = wasmlet_node::host::measure(root.path()).unwrap().memory_capacity;
    let reserved = format!("--system-reserved=memory={}", capacity - SHARE_MI * MI);
    let hard = format!("--eviction-hard=memory.available<{THRESHOLD},nodefs.available<1%");
    // As upstream, the allocatable threshold copies memory.available's minimum reclaim.
    let reclaim = format!("--eviction-minimum-reclaim=memory.available={MIN_RECLAIM}");
    let transition = format!("--eviction-pressure-transition-period={TRANSITION}");
    let flags = [reserved.as_str(), &hard, &reclaim, &transition, "--eviction-monitoring-period=1s"];
    let mut node = WasmletNode::start_with(env!("CARGO_BIN_EXE_wasmlet"), "evict", &flags).await;
    let pid = node.pid().expect("the agent runs");
    let client = admin_client().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let ns = Namespace::create(&client, "evict").await;
    let api = ns.api::<Pod>();
    let image = fixture_image("memhog").await;

    // 100 + 30 + 120 MiB: under the 300Mi left-over threshold of the 600Mi share.
    pods::create(&ns, hog("guaranteed", &node.name, &image, 100, Some("128Mi"))).await;
    wait_holding(&api, "guaranteed", 100, &node).await;
    pods::create(&ns, hog("small", &node.name, &image, 30, None)).await;
    wait_holding(&api, "small", 30, &node).await;
    pods::create(&ns, hog("medium", &node.name, &image, 120, None)).await;
    wait_holding(&api, "medium", 120, &node).await;
    let n = nodes.get(&node.name).await.unwrap();
    assert_eq!(condition(Some(&n), "MemoryPressure"), Some("False"), "no pressure yet");

    // 200 MiB more: 450 of 600 used, 150 left < 300. `big` goes first; then
    // 250 used (350 left) is still short of 300 + the 100 minimum reclaim,
    // so `medium` (the biggest BestEffort user left) goes next; 130 used
    // (470 left) resolves it. `small` and the Guaranteed pod stay.
    pods::create(&ns, hog("big", &node.name, &image, 200, None)).await;
    let pressured = wait::try_for_object(&nodes, &node.name, NODE_TIMEOUT, |n| {
        condition(n, "MemoryPressure") == Some("True") && tainted(n)
    })
    .await;
    assert!(pressured.is_ok(), "no MemoryPressure and taint: {pressured:#?}\n{}", node.log_tail(60));

    // Under memory pressure a BestEffort pod is refused, as upstream.
    pods::create(&ns, hog("late", &node.name, &image, 10, None)).await;
    let late = pods::wait_for(&api, "late", POD_TIMEOUT, || node.log_tail(40), |p| pods::phase(p) == "Failed").await;
    let status = late.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    assert_eq!(status.message.as_deref(), Some("Pod was rejected: The node had condition: [MemoryPressure]. "));

    let big = pods::wait_for(&api, "big", POD_TIMEOUT, || node.log_tail(60), evicted).await;
    let medium = pods::wait_for(&api, "medium", POD_TIMEOUT, || node.log_tail(60), evicted).await;
    for (p, mb) in [(&big, 200), (&medium, 120)] {
        let s = p.status.as_ref().unwrap();
        let message = s.message.as_deref().unwrap_or_default();
        let prefix = format!("The node was low on resource: memory. Threshold quantity: {THRESHOLD}, available: ");
        assert!(message.starts_with(&prefix), "{message}");
        assert!(message.ends_with("request is 0, has larger consumption of memory. "), "{message}");
        let usage = message.split("Container main was using ").nth(1).and_then(|r| r.split(',').next()).unwrap();
        let usage = wasmlet_quantity::units(usage).unwrap() as u64;
        assert!((mb * MI..(mb + 8) * MI).contains(&usage), "{mb} MiB hog reported {usage}");
        let dt = s.conditions.iter().flatten().find(|c| c.type_ == "DisruptionTarget").expect("DisruptionTarget");
        assert_eq!((dt.status.as_str(), dt.reason.as_deref()), ("True", Some("TerminationByKubelet")));
        let t = pods::terminated(p, "main").expect("the container ended");
        assert_eq!(t.exit_code, 143, "stopped");
    }
    // Upstream's order: the biggest user over its request first.
    let ended = |p: &Pod| pods::terminated(p, "main").and_then(|t| t.finished_at.clone()).unwrap().0;
    assert!(ended(&big) <= ended(&medium), "big must go before medium");

    // The node recovers: pressure off (after the transition period), taint gone.
    let recovered = wait::try_for_object(&nodes, &node.name, NODE_TIMEOUT, |n| {
        condition(n, "MemoryPressure") == Some("False") && !tainted(n)
    })
    .await;
    assert!(recovered.is_ok(), "MemoryPressure never cleared: {recovered:#?}\n{}", node.log_tail(60));
    for name in ["guaranteed", "small"] {
        let p = api.get(name).await.unwrap();
        assert!(pods::running(&p, "main"), "{name} must keep running: {:#?}", p.status);
        assert_eq!(pods::container(&p, "main").map(|c| c.restart_count), Some(0), "{name} never restarted");
    }
    // The agent was never killed: same process, still Ready.
    assert_eq!(node.pid(), Some(pid), "the agent process changed or exited");
    let n = nodes.get(&node.name).await.unwrap();
    assert_eq!(condition(Some(&n), "Ready"), Some("True"));

    // What `kubectl describe` shows: the Evicted event with the message, and
    // the node's EvictionThresholdMet event; the eviction counter.
    let describe = kubectl_ok(&["-n", ns.name(), "describe", "pod", "big"]).await;
    assert!(describe.contains("Evicted") && describe.contains("The node was low on resource: memory."), "{describe}");
    let events = kubectl_ok(&[
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        &format!("involvedObject.name={}", node.name),
    ])
    .await;
    assert!(events.contains("EvictionThresholdMet") && events.contains("Attempting to reclaim memory"), "{events}");
    let metrics = kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{}/proxy/metrics", node.name)]).await;
    let counted = "kubelet_evictions_total{eviction_signal=\"allocatableMemory.available\"} 2";
    assert!(metrics.lines().any(|l| l == counted), "{counted} missing:\n{metrics}");

    // And admits BestEffort pods again.
    pods::create(&ns, hog("after", &node.name, &image, 10, None)).await;
    wait_holding(&api, "after", 10, &node).await;
}
