//! Pod networking from the user's side: `kubectl port-forward` to a
//! `wasi:http` guest, preview-2 commands and their logs, pod-to-pod
//! traffic, and the `wasi:sockets` policy with its annotations.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use wasmlet_testkit::pods::{self, POD_TIMEOUT, kubectl_ok};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, http, testbed};

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).expect("pod has an IP")
}

fn has_ip(pod: &Pod) -> bool {
    pods::running(pod, "main") && pod.status.as_ref().is_some_and(|s| s.pod_ip.is_some())
}

/// A running `http-hello` server pod on `node` and its IP.
async fn server(ns: &Namespace, node: &WasmletNode, name: &str) -> String {
    let mut pod = pods::bare(name, &node.name, &fixture_image("http-hello").await, &[], "Always");
    pod["spec"]["containers"][0]["ports"] = serde_json::json!([{ "containerPort": 8080 }]);
    pod["spec"]["containers"][0]["readinessProbe"] =
        serde_json::json!({ "httpGet": { "path": "/healthz", "port": 8080 }, "periodSeconds": 1 });
    pods::create(ns, pod).await;
    let ready = |p: &Pod| has_ip(p) && pods::container(p, "main").is_some_and(|c| c.ready);
    pod_ip(&pods::wait_for(&ns.api(), name, POD_TIMEOUT, || node.log_tail(40), ready).await)
}

/// Runs a pod to completion and returns its terminated state and logs.
async fn run_to_end(ns: &Namespace, node: &WasmletNode, pod: serde_json::Value) -> (i32, String) {
    let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    pods::create(ns, pod).await;
    let done = |p: &Pod| matches!(pods::phase(p), "Succeeded" | "Failed");
    let pod = pods::wait_for(&ns.api(), &name, POD_TIMEOUT, || node.log_tail(40), done).await;
    let code = pods::terminated(&pod, "main").map(|t| t.exit_code).expect("terminated");
    (code, kubectl_ok(&["logs", "-n", ns.name(), &name]).await)
}

#[tokio::test]
async fn kubectl_port_forward_reaches_a_wasi_http_guest() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "pf").await;
    let ns = Namespace::create(&admin_client().await, "pf").await;
    server(&ns, &node, "web").await;
    let tb = testbed().await;
    let mut child = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", tb.admin_kubeconfig())
        .args(["port-forward", "-n", ns.name(), "pod/web", ":8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl port-forward");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            // "Forwarding from 127.0.0.1:PORT -> 8080"
            if let Some(port) = line.strip_prefix("Forwarding from 127.0.0.1:").and_then(|r| r.split(' ').next()) {
                return port.parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let Some(port) = port else {
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err).await;
        panic!("kubectl port-forward did not start: {err}\n{}", node.log_tail(40));
    };
    for _ in 0..3 {
        let response = http::get(SocketAddr::from(([127, 0, 0, 1], port)), "/").await.expect("GET via port-forward");
        assert_eq!((response.status, response.body.as_str()), (200, "hello from wasi:http\n"));
    }
    child.kill().await.unwrap();

    // A wasi:http component has no command entry point: exec says so.
    let exec = pods::kubectl(&["exec", "-n", ns.name(), "web", "--", "web"]).await;
    assert!(!exec.status.success());
    let err = String::from_utf8_lossy(&exec.stderr);
    assert!(err.contains("wasi:cli/run"), "{err}");
}

#[tokio::test]
async fn a_p2_command_runs_to_completion_with_its_logs() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "p2").await;
    let ns = Namespace::create(&admin_client().await, "p2").await;
    let mut pod = pods::bare("hello", &node.name, &fixture_image("hello-p2").await, &["--flag"], "Never");
    pod["spec"]["containers"][0]["env"] = serde_json::json!([{ "name": "WHO", "value": "kubernetes" }]);
    let (code, logs) = run_to_end(&ns, &node, pod).await;
    assert_eq!(code, 0, "{logs}");
    assert!(logs.contains("argv[1]=--flag\n"), "{logs}");
    assert!(logs.contains("env WHO=kubernetes\n"), "{logs}");
    assert!(logs.contains("hello from a p2 component\n"), "{logs}");
}

#[tokio::test]
async fn a_pod_reaches_another_pods_ip_unless_its_policy_forbids_it() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "p2p").await;
    let ns = Namespace::create(&admin_client().await, "p2p").await;
    let ip = server(&ns, &node, "web").await;
    let image = fixture_image("http-get").await;
    let target = format!("{ip}:8080/");

    let (code, logs) = run_to_end(&ns, &node, pods::bare("client", &node.name, &image, &[&target], "Never")).await;
    assert_eq!(code, 0, "{logs}\n{}", node.log_tail(40));
    assert!(logs.contains(&format!("connected to {ip}:8080")), "{logs}");
    assert!(logs.contains("hello from wasi:http"), "{logs}");

    // The same client with outbound traffic limited to another network.
    let mut denied = pods::bare("denied", &node.name, &image, &[&target], "Never");
    denied["metadata"]["annotations"] = serde_json::json!({ "wasmlet.dev/outbound": "192.0.2.0/24" });
    let (code, logs) = run_to_end(&ns, &node, denied).await;
    assert_eq!(code, 1, "{logs}");
    assert!(logs.contains("connect failed"), "{logs}");
}

#[tokio::test]
async fn a_guest_listens_only_on_its_declared_ports() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "listen").await;
    let ns = Namespace::create(&admin_client().await, "listen").await;
    let image = fixture_image("tcp-listen").await;
    let api = ns.api::<Pod>();

    // Declared port on the pod IP: it listens and serves one connection.
    let mut pod = pods::bare("declared", &node.name, &image, &[], "Never");
    pod["spec"]["containers"][0]["ports"] = serde_json::json!([{ "containerPort": 9000 }]);
    pod["spec"]["containers"][0]["env"] = serde_json::json!([
        { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } },
        { "name": "ADDR", "value": "$(POD_IP):9000" }
    ]);
    pods::create(&ns, pod.clone()).await;
    let running = pods::wait_for(&api, "declared", POD_TIMEOUT, || node.log_tail(40), has_ip).await;
    let addr: SocketAddr = format!("{}:9000", pod_ip(&running)).parse().unwrap();
    let mut greeting = None;
    for _ in 0..100 {
        if let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await {
            let mut text = String::new();
            conn.read_to_string(&mut text).await.unwrap();
            greeting = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(greeting.as_deref(), Some("hello from tcp-listen\n"));
    let done = pods::wait_for(&api, "declared", POD_TIMEOUT, || node.log_tail(40), |p| pods::phase(p) == "Succeeded");
    drop(done.await);

    // Undeclared port: refused, and the guest says so.
    pod["metadata"]["name"] = "undeclared".into();
    pod["spec"]["containers"][0]["ports"] = serde_json::json!([{ "containerPort": 9001 }]);
    let (code, logs) = run_to_end(&ns, &node, pod.clone()).await;
    assert_eq!(code, 1, "{logs}");
    assert!(logs.contains("listen failed"), "{logs}");

    // An annotation opens an extra port.
    pod["metadata"]["name"] = "annotated".into();
    pod["metadata"]["annotations"] = serde_json::json!({ "wasmlet.dev/listen-ports": "9000" });
    pods::create(&ns, pod).await;
    let annotated = pods::wait_for(&api, "annotated", POD_TIMEOUT, || node.log_tail(40), has_ip).await;
    let addr: SocketAddr = format!("{}:9000", pod_ip(&annotated)).parse().unwrap();
    let mut connected = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(connected, "the annotated port never accepted\n{}", node.log_tail(40));
}

#[tokio::test]
async fn a_bad_socket_annotation_fails_the_container_with_the_reason() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "badann").await;
    let ns = Namespace::create(&admin_client().await, "badann").await;
    let mut pod = pods::bare("bad", &node.name, &fixture_image("http-get").await, &["10.0.0.1:80/"], "Never");
    pod["metadata"]["annotations"] = serde_json::json!({ "wasmlet.dev/outbound": "everywhere" });
    pods::create(&ns, pod).await;
    let failed = |p: &Pod| {
        pods::terminated(p, "main")
            .is_some_and(|t| t.message.as_deref().is_some_and(|m| m.contains("wasmlet.dev/outbound")))
    };
    let pod = pods::wait_for(&ns.api(), "bad", POD_TIMEOUT, || node.log_tail(40), failed).await;
    let t = pods::terminated(&pod, "main").unwrap();
    assert!(t.message.as_deref().unwrap().contains("not a CIDR"), "{t:?}");
}
