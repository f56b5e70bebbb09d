//! A `wasi:http` pod's memory limit bounds all its requests together:
//! 50 concurrent requests, each holding 16 MiB, to a pod limited to 64 MiB.
//! The pod's figures (`/metrics/cadvisor` and `/stats/summary` through the
//! apiserver's node proxy) show the total never passed the limit; the extra
//! requests fail with 500, are counted and show as an `OOMKilling` event;
//! the pod keeps serving.

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::runtime::watcher;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, kubectl_ok};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, http, wait};

const LIMIT: u64 = 64 << 20;
const REQUESTS: usize = 50;

/// The value of cAdvisor series `name` for container `main` of pod `pod`.
fn cadvisor_value(text: &str, name: &str, namespace: &str, pod: &str) -> Option<f64> {
    let labels = format!("{name}{{container=\"main\",namespace=\"{namespace}\",pod=\"{pod}\"}} ");
    let line = text.lines().find(|l| l.starts_with(&labels))?;
    line[labels.len()..].split(' ').next()?.parse().ok()
}

/// `GET path` of the node's kubelet API, through the apiserver's node proxy.
async fn node_proxy(node: &str, path: &str) -> String {
    kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy{path}")]).await
}

#[tokio::test]
async fn a_pods_memory_limit_bounds_all_its_requests_together() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "memlimit").await;
    let ns = Namespace::create(&admin_client().await, "memlimit").await;
    let image = fixture_image("http-ctl").await;
    let mut pod = pods::bare("server", &node.name, &image, &[], "Always");
    let container = &mut pod["spec"]["containers"][0];
    container["ports"] = serde_json::json!([{ "containerPort": 8080 }]);
    container["resources"] = serde_json::json!({ "limits": { "memory": "64Mi" } });
    pods::create(&ns, pod).await;
    let api = ns.api::<Pod>();
    let pod = pods::wait_for(&api, "server", POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main")).await;
    let ip: IpAddr = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).expect("a pod IP").parse().unwrap();
    let addr = SocketAddr::new(ip, 8080);
    // Served (the port is bound once the container is running).
    let first = http::get(addr, "/").await.unwrap_or_else(|e| panic!("GET {addr}: {e}\n{}", node.log_tail(40)));
    assert_eq!(first.status, 200, "{first:?}");

    let requests: Vec<_> = (0..REQUESTS).map(|_| tokio::spawn(http::get(addr, "/alloc?mb=16&ms=2000"))).collect();
    let mut statuses = Vec::new();
    for request in requests {
        let response = request.await.unwrap().unwrap_or_else(|e| panic!("a request failed: {e}"));
        statuses.push((response.status, response.body));
    }
    let ok = statuses.iter().filter(|(s, b)| *s == 200 && b == "allocated 16").count();
    let failed = statuses.iter().filter(|(s, _)| *s == 500).count();
    assert_eq!(ok + failed, REQUESTS, "only 200 or 500: {statuses:?}");
    assert!(ok >= 1 && failed >= 1, "some fit, the rest are refused: {ok} ok, {failed} failed");

    // The figures: the peak stayed within the limit; every failure counted.
    let cadvisor = node_proxy(&node.name, "/metrics/cadvisor").await;
    let value = |name| {
        cadvisor_value(&cadvisor, name, ns.name(), "server").unwrap_or_else(|| panic!("no {name} in\n{cadvisor}"))
    };
    let peak = value("container_memory_max_usage_bytes");
    eprintln!("{ok} requests succeeded, {failed} were stopped at the limit; peak {peak} of {LIMIT} bytes");
    assert!(peak <= LIMIT as f64, "the requests together reached {peak} bytes, over {LIMIT}");
    assert!(peak >= (3 * (16 << 20)) as f64, "three requests held 16 MiB at once: peak {peak}");
    assert_eq!(value("container_oom_events_total"), failed as f64);
    assert_eq!(value("container_spec_memory_limit_bytes"), LIMIT as f64);
    let summary: serde_json::Value = serde_json::from_str(&node_proxy(&node.name, "/stats/summary").await).unwrap();
    let pod_stats = summary["pods"].as_array().unwrap().iter().find(|p| p["podRef"]["name"] == "server").unwrap();
    let memory = &pod_stats["containers"][0]["memory"];
    let working_set = memory["workingSetBytes"].as_u64().unwrap();
    assert!(working_set <= LIMIT, "{memory}");
    assert_eq!(memory["availableBytes"].as_u64(), Some(LIMIT - working_set), "{memory}");

    // Visible: a line per failed request in the log, and a Warning event.
    let oom_lines =
        |logs: &str| logs.lines().filter(|l| l.contains("failed: memory limit of 67108864 bytes exceeded")).count();
    let deadline = tokio::time::Instant::now() + POD_TIMEOUT;
    loop {
        let logs = kubectl_ok(&["logs", "-n", ns.name(), "server"]).await;
        if oom_lines(&logs) == failed {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "expected {failed} failure lines in the log:\n{logs}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let events = ns.api::<Event>();
    let event = wait::for_any(&events, watcher::Config::default(), POD_TIMEOUT, |e: &Event| {
        e.reason.as_deref() == Some("OOMKilling") && e.type_.as_deref() == Some("Warning")
    })
    .await;
    let event = event.expect("no OOMKilling event");
    assert!(event.message.as_deref().is_some_and(|m| m.contains("memory limit of 67108864 bytes")), "{event:?}");

    // The pod keeps serving, without a restart, and its memory is back.
    for _ in 0..3 {
        let response = http::get(addr, "/alloc?mb=16").await.unwrap();
        assert_eq!((response.status, response.body.as_str()), (200, "allocated 16"));
    }
    let pod = api.get("server").await.unwrap();
    assert!(pods::running(&pod, "main"));
    assert_eq!(pods::container(&pod, "main").unwrap().restart_count, 0);
}
