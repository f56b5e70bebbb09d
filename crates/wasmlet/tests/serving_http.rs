//! Pods that serve: `wasi:http` components on their pod IP and container
//! ports, behind a Service; readiness and liveness probes; graceful stop.
//!
//! The test process runs on the node's machine, so it reaches pod IPs
//! directly (as another node or a service proxy would).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, http, wait};

const TOLERATIONS: &str = r#"[{ "key": "kubernetes.io/arch", "operator": "Exists" }]"#;

fn pod_ip(pod: &Pod) -> IpAddr {
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).expect("pod has an IP");
    ip.parse().unwrap()
}

fn ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Endpoints of the Service's slices as `(address, ready)`.
fn endpoints(slices: &[EndpointSlice]) -> Vec<(String, bool)> {
    let all = slices.iter().flat_map(|s| s.endpoints.iter().flatten());
    all.flat_map(|e| {
        let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
        e.addresses.iter().map(move |a| (a.clone(), ready))
    })
    .collect()
}

/// Waits until the Service's EndpointSlices satisfy `cond`.
async fn wait_for_slices(
    ns: &Namespace,
    service: &str,
    cond: impl Fn(&[(String, bool)]) -> bool,
) -> Vec<(String, bool)> {
    let api = ns.api::<EndpointSlice>();
    let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let slices = api.list(&params).await.map(|l| l.items).unwrap_or_default();
        let eps = endpoints(&slices);
        if cond(&eps) {
            return eps;
        }
        assert!(tokio::time::Instant::now() < deadline, "EndpointSlices of {service} never matched; last: {eps:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn create_service(ns: &Namespace, name: &str, app: &str) {
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": { "selector": { "app": app }, "ports": [{ "port": 80, "targetPort": 8080 }] }
    }))
    .unwrap();
    ns.api::<Service>().create(&PostParams::default(), &svc).await.unwrap();
}

#[tokio::test]
async fn a_deployment_behind_a_service_answers_through_each_endpoint() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "serve").await;
    let ns = Namespace::create(&admin_client().await, "serve").await;
    let image = fixture_image("http-hello").await;
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": {
                    "nodeName": node.name,
                    "tolerations": serde_json::from_str::<serde_json::Value>(TOLERATIONS).unwrap(),
                    "containers": [{
                        "name": "web", "image": image, "ports": [{ "containerPort": 8080 }],
                        "readinessProbe": { "httpGet": { "path": "/healthz", "port": 8080 }, "periodSeconds": 1 }
                    }]
                }
            }
        }
    }))
    .unwrap();
    ns.api::<Deployment>().create(&PostParams::default(), &deployment).await.unwrap();
    create_service(&ns, "web", "web").await;

    let eps = wait_for_slices(&ns, "web", |eps| eps.len() == 3 && eps.iter().all(|(_, r)| *r)).await;
    let pods = ns.api::<Pod>().list(&ListParams::default().labels("app=web")).await.unwrap().items;
    let mut pod_ips: Vec<String> = pods.iter().map(|p| pod_ip(p).to_string()).collect();
    let mut addresses: Vec<String> = eps.iter().map(|(a, _)| a.clone()).collect();
    pod_ips.sort();
    addresses.sort();
    assert_eq!(addresses, pod_ips, "the slices list exactly the pods' IPs");
    pod_ips.dedup();
    assert_eq!(pod_ips.len(), 3, "every pod has its own IP: {pod_ips:?}");
    for address in &addresses {
        let addr = SocketAddr::new(address.parse().unwrap(), 8080);
        let response = http::get(addr, "/").await.unwrap_or_else(|e| panic!("GET {addr}: {e}\n{}", node.log_tail(40)));
        assert_eq!(response.status, 200, "{response:?}");
        assert_eq!(response.body, "hello from wasi:http\n");
        assert_eq!(response.header("x-wasmlet-fixture"), Some("http-hello"));
    }
}

/// An `http-probe` pod labelled `app` whose probe files live in `dir` (a
/// hostPath), with `probe` (e.g. readinessProbe) on `path`.
fn probe_pod(node: &str, image: &str, dir: &std::path::Path, probe: &str, path: &str) -> serde_json::Value {
    let mut pod = pods::bare("probed", node, image, &[], "Always");
    pod["metadata"]["labels"] = serde_json::json!({ "app": "probed" });
    pod["spec"]["volumes"] = serde_json::json!([{ "name": "probe", "hostPath": { "path": dir, "type": "Directory" } }]);
    let container = &mut pod["spec"]["containers"][0];
    container["ports"] = serde_json::json!([{ "containerPort": 8080 }]);
    container["volumeMounts"] = serde_json::json!([{ "name": "probe", "mountPath": "/probe" }]);
    container[probe] = serde_json::json!({
        "httpGet": { "path": path, "port": 8080 }, "periodSeconds": 1, "failureThreshold": 1
    });
    pod
}

#[tokio::test]
async fn an_unready_pod_leaves_the_endpoints_and_comes_back() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "ready").await;
    let ns = Namespace::create(&admin_client().await, "ready").await;
    let dir = tempfile::tempdir().unwrap();
    let ready_file = dir.path().join("ready");
    std::fs::write(&ready_file, "").unwrap();
    let image = fixture_image("http-probe").await;
    pods::create(&ns, probe_pod(&node.name, &image, dir.path(), "readinessProbe", "/healthz")).await;
    create_service(&ns, "probed", "probed").await;
    let api = ns.api::<Pod>();
    let pod = pods::wait_for(&api, "probed", POD_TIMEOUT, || node.log_tail(40), ready).await;
    let ip = pod_ip(&pod).to_string();
    wait_for_slices(&ns, "probed", |eps| eps == [(ip.clone(), true)]).await;

    std::fs::remove_file(&ready_file).unwrap();
    pods::wait_for(&api, "probed", POD_TIMEOUT, || node.log_tail(40), |p| !ready(p)).await;
    wait_for_slices(&ns, "probed", |eps| eps.iter().all(|(_, r)| !*r)).await;
    // Still running: readiness never restarts a container.
    let pod = api.get("probed").await.unwrap();
    assert_eq!(pods::container(&pod, "main").unwrap().restart_count, 0);
    assert!(pods::running(&pod, "main"));

    std::fs::write(&ready_file, "").unwrap();
    pods::wait_for(&api, "probed", POD_TIMEOUT, || node.log_tail(40), ready).await;
    wait_for_slices(&ns, "probed", |eps| eps == [(ip.clone(), true)]).await;
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "live").await;
    let ns = Namespace::create(&admin_client().await, "live").await;
    let dir = tempfile::tempdir().unwrap();
    let image = fixture_image("http-probe").await;
    pods::create(&ns, probe_pod(&node.name, &image, dir.path(), "livenessProbe", "/livez")).await;
    let api = ns.api::<Pod>();
    pods::wait_for(&api, "probed", POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main")).await;
    std::fs::write(dir.path().join("dead"), "").unwrap();
    let pod = pods::wait_for(
        &api,
        "probed",
        POD_TIMEOUT,
        || node.log_tail(40),
        |p| pods::container(p, "main").is_some_and(|c| c.restart_count >= 1),
    )
    .await;
    let status = pods::container(&pod, "main").unwrap();
    let last = status.last_state.as_ref().and_then(|s| s.terminated.as_ref()).expect("a last termination");
    assert!(last.exit_code == 0 || last.exit_code == 137, "a server stopped by its probe: {last:?}");
    std::fs::remove_file(dir.path().join("dead")).unwrap();

    let events: Api<Event> = ns.api();
    let ev = wait::for_any(&events, watcher::Config::default(), POD_TIMEOUT, |e: &Event| {
        e.reason.as_deref() == Some("Killing")
            && e.message.as_deref().is_some_and(|m| m.contains("failed liveness probe, will be restarted"))
    })
    .await;
    assert!(ev.is_some(), "no Killing event for the liveness failure");
    let list = events.list(&ListParams::default()).await.unwrap().items;
    assert!(
        list.iter().any(|e| e.reason.as_deref() == Some("Unhealthy")
            && e.message.as_deref().is_some_and(|m| m.contains("Liveness probe failed"))),
        "no Unhealthy event: {:?}",
        list.iter().map(|e| (&e.reason, &e.message)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn deleting_a_server_pod_lets_requests_in_flight_finish() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "drain").await;
    let ns = Namespace::create(&admin_client().await, "drain").await;
    let mut pod = pods::bare("slow", &node.name, &fixture_image("http-ctl").await, &[], "Always");
    pod["spec"]["containers"][0]["ports"] = serde_json::json!([{ "containerPort": 8080 }]);
    pods::create(&ns, pod).await;
    let api = ns.api::<Pod>();
    let pod = pods::wait_for(
        &api,
        "slow",
        POD_TIMEOUT,
        || node.log_tail(40),
        |p| pods::running(p, "main") && p.status.as_ref().is_some_and(|s| s.pod_ip.is_some()),
    )
    .await;
    let addr = SocketAddr::new(pod_ip(&pod), 8080);
    // The server is bound before the pod is Ready (no probe: Ready at start).
    wait_until_serving(addr).await;
    let in_flight = tokio::spawn(async move { http::get(addr, "/sleep?ms=4000").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.delete("slow", &DeleteParams::default()).await.unwrap();
    // Stopping: new connections are refused while the request finishes.
    let refused = async {
        loop {
            if http::get(addr, "/").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refused).await.expect("the server kept accepting connections");
    let response = in_flight.await.unwrap().expect("the request in flight was dropped");
    assert_eq!((response.status, response.body.as_str()), (200, "slept 4000"));
    let gone = wait::for_object(&api, "slow", POD_TIMEOUT, |p| p.is_none()).await;
    assert!(gone.is_none(), "the pod was not deleted");
}

async fn wait_until_serving(addr: SocketAddr) {
    for _ in 0..100 {
        if http::get(addr, "/").await.is_ok_and(|r| r.status == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr} never served");
}
