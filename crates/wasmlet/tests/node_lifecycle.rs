//! The node joins, reports real capacity, turns NotReady when wasmlet stops
//! and Ready again when it starts.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use wasmlet_testkit::node::node_ready;
use wasmlet_testkit::pods::kubectl_ok;
use wasmlet_testkit::{WasmletNode, admin_client, wait};

fn host_cpus() -> i64 {
    std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1)
}

fn host_memory_kib() -> i64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn joins_ready_goes_not_ready_when_stopped_and_comes_back() {
    let mut node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "life").await;
    let nodes: Api<Node> = Api::all(admin_client().await);
    let n = nodes.get(&node.name).await.unwrap();

    let labels = n.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("kubernetes.io/os").map(String::as_str), Some("wasi"));
    assert_eq!(labels.get("kubernetes.io/arch").map(String::as_str), Some("wasm32"));
    let taints = n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    for effect in ["NoSchedule", "NoExecute"] {
        assert!(taints.iter().any(|t| t.key == "kubernetes.io/arch" && t.effect == effect), "{taints:?}");
    }
    let status = n.status.clone().unwrap();
    let capacity = status.capacity.clone().unwrap();
    assert_eq!(capacity["cpu"].0, host_cpus().to_string());
    assert_eq!(capacity["pods"].0, "110");
    let mem = capacity["memory"].0.strip_suffix("Ki").expect("memory in Ki").parse::<i64>().unwrap();
    assert!(mem > 0 && mem <= host_memory_kib(), "memory {mem}Ki vs host {}Ki", host_memory_kib());
    assert!(capacity.contains_key("ephemeral-storage"));
    let endpoint = status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap();
    assert_eq!(endpoint.port, i32::from(node.port));
    let info = status.node_info.unwrap();
    assert_eq!((info.operating_system.as_str(), info.architecture.as_str()), ("wasi", "wasm32"));
    assert!(info.container_runtime_version.starts_with("wasmtime://"));
    let table = kubectl_ok(&["get", "node", &node.name, "--no-headers"]).await;
    assert!(table.split_whitespace().nth(1) == Some("Ready"), "{table}");

    // SIGTERM: a clean exit, and the Node stays registered.
    let exit = node.stop();
    assert!(exit.success(), "wasmlet exited with {exit}\n{}", node.log_tail(40));
    assert!(nodes.get_opt(&node.name).await.unwrap().is_some(), "the Node was deleted");
    // The node lifecycle controller (grace period 20 s in the test bed) notices.
    let seen = wait::try_for_object(&nodes, &node.name, Duration::from_secs(90), |n| {
        node_ready(n).is_some_and(|s| s != "True")
    })
    .await;
    let after = seen.unwrap_or_else(|last| panic!("still Ready: {last:#?}")).unwrap();
    let ready = after.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("Unknown", Some("NodeStatusUnknown")));

    node.restart().await; // waits for Ready=True
}
