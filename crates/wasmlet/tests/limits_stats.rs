//! Limits inside the engine and the figures that show them: CPU shares of
//! limited guests, an unlimited busy guest that cannot starve the agent, and
//! `/stats/summary` and `/metrics/resource` read through the apiserver.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, kubectl_ok};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image};

fn busy(name: &str, node: &str, image: &str, cpu_limit: Option<&str>) -> serde_json::Value {
    let mut pod = pods::bare(name, node, image, &[], "Always");
    pod["spec"]["containers"][0]["env"] = serde_json::json!([{ "name": "REPORT_EVERY", "value": "1000000000" }]);
    if let Some(cpu) = cpu_limit {
        pod["spec"]["containers"][0]["resources"] = serde_json::json!({ "limits": { "cpu": cpu } });
    }
    pod
}

/// `/stats/summary` of the node, through the apiserver's node proxy.
async fn summary(node: &str) -> serde_json::Value {
    let raw = kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy/stats/summary")]).await;
    serde_json::from_str(&raw).unwrap()
}

/// CPU nanoseconds used so far by the container of pod `name`.
fn container_cpu(summary: &serde_json::Value, pod: &str) -> Option<u64> {
    let pods = summary["pods"].as_array()?;
    let p = pods.iter().find(|p| p["podRef"]["name"] == pod)?;
    p["containers"][0]["cpu"]["usageCoreNanoSeconds"].as_u64()
}

#[tokio::test]
async fn cpu_limits_share_the_cpu_and_stats_grow() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "cpu").await;
    let ns = Namespace::create(&admin_client().await, "cpu").await;
    let api = ns.api::<Pod>();
    let image = fixture_image("busy").await;
    pods::create(&ns, busy("slow", &node.name, &image, Some("100m"))).await;
    pods::create(&ns, busy("fast", &node.name, &image, Some("400m"))).await;
    for name in ["slow", "fast"] {
        pods::wait_for(&api, name, POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main")).await;
    }
    let before = summary(&node.name).await;
    let start = tokio::time::Instant::now();
    // Let them compete for a while (the figures are what is asserted, not time).
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for _ in 0..9 {
        tick.tick().await;
    }
    let after = summary(&node.name).await;
    let elapsed = start.elapsed().as_secs_f64();
    let used = |pod: &str| {
        let b = container_cpu(&before, pod).unwrap_or_else(|| panic!("{pod} missing in {before:#}"));
        let a = container_cpu(&after, pod).unwrap();
        assert!(a > b, "{pod}'s CPU did not grow: {b} → {a}");
        (a - b) as f64 / 1e9 / elapsed
    };
    let (slow, fast) = (used("slow"), used("fast"));
    eprintln!("CPU shares: 100m → {slow:.3}, 400m → {fast:.3}, ratio {:.2}", fast / slow);
    // The limits are caps (with a little slack for measurement).
    assert!(slow < 0.15 && fast < 0.5, "over the limits: {slow:.3} / {fast:.3}");
    // A limit does not guarantee CPU on a busy machine: the ratio is only
    // meaningful when the 400m guest got near its cap.
    if fast >= 0.3 {
        let ratio = fast / slow;
        assert!((2.5..6.5).contains(&ratio), "ratio {ratio:.2} outside 2.5..6.5");
    }
    // Memory and the other endpoints.
    let pods = after["pods"].as_array().unwrap();
    let fast_pod = pods.iter().find(|p| p["podRef"]["name"] == "fast").unwrap();
    assert!(fast_pod["memory"]["workingSetBytes"].as_u64().unwrap_or(0) > 0, "{fast_pod:#}");
    assert!(after["node"]["cpu"]["usageCoreNanoSeconds"].as_u64().unwrap_or(0) > 0);
    let resource = kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{}/proxy/metrics/resource", node.name)]).await;
    assert!(
        resource.lines().any(|l| l.starts_with("container_cpu_usage_seconds_total{container=\"main\"")
            && l.contains(&format!("namespace=\"{}\"", ns.name()))),
        "{resource}"
    );
    assert!(resource.contains("pod_memory_working_set_bytes{"), "{resource}");
    let agent = kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{}/proxy/metrics", node.name)]).await;
    assert!(agent.contains("pods"), "{agent}");
}

#[tokio::test]
async fn busy_guests_do_not_starve_the_agent() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "starve").await;
    let client = admin_client().await;
    let ns = Namespace::create(&client, "starve").await;
    let api = ns.api::<Pod>();
    let image = fixture_image("busy").await;
    // More unlimited CPU-bound guests than the machine has cores.
    for i in 0..4 {
        pods::create(&ns, busy(&format!("spin-{i}"), &node.name, &image, None)).await;
    }
    let mut ticker = pods::bare("ticker", &node.name, &fixture_image("forever").await, &[], "Always");
    ticker["spec"]["containers"][0]["env"] = serde_json::json!([{ "name": "TICK_MS", "value": "100" }]);
    pods::create(&ns, ticker).await;
    for i in 0..4 {
        pods::wait_for(&api, &format!("spin-{i}"), POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main"))
            .await;
    }
    pods::wait_for(&api, "ticker", POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main")).await;

    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renew = |l: Lease| l.spec.and_then(|s| s.renew_time).map(|t| t.0);
    let lines = |logs: String| logs.lines().filter(|l| l.starts_with("tick ")).count();
    let first_renew = renew(leases.get(&node.name).await.unwrap()).unwrap();
    let first_ticks = lines(api.logs("ticker", &Default::default()).await.unwrap());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for _ in 0..25 {
        tick.tick().await;
    }
    // The lease is renewed every 10 s even with every core busy in guests ...
    let last_renew = renew(leases.get(&node.name).await.unwrap()).unwrap();
    let renewed = last_renew.duration_since(first_renew);
    assert!(renewed.as_secs() >= 10, "lease renewTime moved only {renewed:?} in 25 s");
    // ... and the neighbour kept ticking (at 10/s it would print ~250 lines).
    let ticks = lines(api.logs("ticker", &Default::default()).await.unwrap()) - first_ticks;
    assert!(ticks >= 100, "the ticker printed only {ticks} lines in 25 s");
    // The kubelet API still answers.
    kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{}/proxy/healthz", node.name)]).await;
}
