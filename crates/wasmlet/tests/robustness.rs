//! Failures that must not stop every pod (issue 11, finding 5):
//!
//! - a panic in the agent's task for one container ends that container as
//!   a failed run (`Error`, with the panic's text) and the restart policy
//!   restarts it, while the pod's other container and other pods run on;
//! - a denied serving CSR does not stop the agent: pods keep running, the
//!   node stays Ready, a new CSR is made, and once that one is approved the
//!   kubelet API serves.
//!
//! A guest cannot make the agent panic, so the panic is injected: debug
//! builds (the ones tests run) panic the agent's task for the container
//! named by `WASMLET_DEBUG_PANIC_CONTAINER`, two seconds into its first
//! run (see `crates/pods/src/fault.rs`; release builds have no such code).

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use wasmlet_testkit::node::{Options, node_ready};
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image};

fn two_containers(node: &str, image: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "name": "pair" },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "tolerations": [{ "key": "kubernetes.io/arch", "operator": "Exists" }],
            "containers": [
                { "name": "boom", "image": image, "env": [{ "name": "TICK_MS", "value": "200" }] },
                { "name": "calm", "image": image, "env": [{ "name": "TICK_MS", "value": "200" }] }
            ]
        }
    })
}

#[cfg(debug_assertions)]
#[tokio::test]
async fn a_panicking_container_task_ends_as_error_and_restarts() {
    let options = Options { env: vec![("WASMLET_DEBUG_PANIC_CONTAINER".into(), "boom".into())], ..Options::default() };
    let node = WasmletNode::start_with_options(env!("CARGO_BIN_EXE_wasmlet"), "panic", options).await;
    let ns = Namespace::create(&admin_client().await, "panic").await;
    let api = ns.api::<Pod>();
    let image = fixture_image("forever").await;
    pods::create(&ns, pods::bare("neighbour", &node.name, &image, &[], "Always")).await;
    pods::wait_for(&api, "neighbour", POD_TIMEOUT, || node.log_tail(60), |p| pods::running(p, "main")).await;
    pods::create(&ns, two_containers(&node.name, &image)).await;

    // The panicked run is recorded as a failed run, and the container runs again.
    let pod = pods::wait_for(
        &api,
        "pair",
        Duration::from_secs(90),
        || node.log_tail(60),
        |p| pods::running(p, "boom") && pods::container(p, "boom").is_some_and(|c| c.restart_count == 1),
    )
    .await;
    let boom = pods::container(&pod, "boom").unwrap();
    let last = boom.last_state.clone().and_then(|s| s.terminated).expect("the panicked run is the last state");
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_eq!(last.exit_code, 255);
    let message = last.message.unwrap_or_default();
    assert!(message.starts_with("the agent's task for this container panicked: "), "{message}");
    assert!(message.contains("injected fault (WASMLET_DEBUG_PANIC_CONTAINER)"), "{message}");

    // The pod's other container and the other pod never stopped.
    let calm = pods::container(&pod, "calm").unwrap();
    assert_eq!(calm.restart_count, 0, "{calm:?}");
    assert!(pods::running(&pod, "calm"));
    let neighbour = api.get("neighbour").await.unwrap();
    assert!(pods::running(&neighbour, "main"));
    assert_eq!(pods::container(&neighbour, "main").unwrap().restart_count, 0);
    let nodes: Api<Node> = Api::all(admin_client().await);
    assert_eq!(node_ready(nodes.get(&node.name).await.ok().as_ref()), Some("True"));
    assert!(node.log().contains("the container's task panicked"), "the panic is logged");

    // The restarted container works: its output goes on.
    let logs =
        api.logs("pair", &kube::api::LogParams { container: Some("boom".into()), ..Default::default() }).await.unwrap();
    assert!(logs.contains("tick 0"), "{logs}");
}

/// The serving CSRs `node` made, oldest first, with whether each is decided.
async fn serving_csrs(client: &kube::Client, node: &str) -> Vec<(String, bool)> {
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let Ok(list) = csrs.list(&Default::default()).await else { return Vec::new() };
    let user = format!("system:node:{node}");
    let mut mine: Vec<_> = list
        .items
        .into_iter()
        .filter(|c| c.spec.signer_name == "kubernetes.io/kubelet-serving" && c.spec.username.as_deref() == Some(&user))
        .collect();
    mine.sort_by_key(|c| c.metadata.creation_timestamp.clone().map(|t| t.0));
    mine.into_iter()
        .map(|c| {
            let decided = c.status.and_then(|s| s.conditions).is_some_and(|c| !c.is_empty());
            (c.metadata.name.unwrap_or_default(), decided)
        })
        .collect()
}

/// Waits (up to `timeout`) for a pending serving CSR of `node` not in `seen`.
async fn new_pending_csr(client: &kube::Client, node: &str, seen: &[String], timeout: Duration) -> Option<String> {
    let started = tokio::time::Instant::now();
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    while started.elapsed() < timeout {
        poll.tick().await;
        let pending = serving_csrs(client, node).await.into_iter().find(|(n, decided)| !decided && !seen.contains(n));
        if let Some((name, _)) = pending {
            return Some(name);
        }
    }
    None
}

#[tokio::test]
async fn a_denied_serving_csr_leaves_pods_running_and_is_asked_again() {
    let options =
        Options { args: vec!["--rotate-server-certificates".into()], no_static_tls: true, ..Options::default() };
    let node = WasmletNode::start_with_options(env!("CARGO_BIN_EXE_wasmlet"), "csr", options).await;
    let admin = admin_client().await;
    let ns = Namespace::create(&admin, "csr").await;
    let api = ns.api::<Pod>();
    pods::create(&ns, pods::bare("runner", &node.name, &fixture_image("forever").await, &[], "Always")).await;
    pods::wait_for(&api, "runner", POD_TIMEOUT, || node.log_tail(60), |p| pods::running(p, "main")).await;

    // Deny the node's serving CSR, as an admin would.
    let first = new_pending_csr(&admin, &node.name, &[], Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("no serving CSR from the node:\n{}", node.log_tail(60)));
    let denied = pods::kubectl(&["certificate", "deny", &first]).await;
    assert!(denied.status.success(), "{}", String::from_utf8_lossy(&denied.stderr));

    // A new CSR comes (after the backoff); meanwhile nothing stopped.
    let second = new_pending_csr(&admin, &node.name, std::slice::from_ref(&first), Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("no new serving CSR after the denial:\n{}", node.log_tail(60)));
    let log = node.log();
    assert!(log.contains("no serving certificate for the kubelet API; pods keep running"), "{}", node.log_tail(40));
    assert!(log.contains(&format!("CertificateSigningRequest {first} was denied")), "{}", node.log_tail(40));
    let runner = api.get("runner").await.unwrap();
    assert!(pods::running(&runner, "main"), "{:?}", runner.status);
    assert_eq!(pods::container(&runner, "main").unwrap().restart_count, 0);
    let nodes: Api<Node> = Api::all(admin.clone());
    assert_eq!(node_ready(nodes.get(&node.name).await.ok().as_ref()), Some("True"));

    // Approving the new one makes the kubelet API serve: logs through the API
    // server, and the failure counted in the agent's metrics.
    let approved = pods::kubectl(&["certificate", "approve", &second]).await;
    assert!(approved.status.success(), "{}", String::from_utf8_lossy(&approved.stderr));
    let path = format!("/api/v1/nodes/{}/proxy/metrics", node.name);
    let started = tokio::time::Instant::now();
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let metrics = loop {
        poll.tick().await;
        let out = pods::kubectl(&["get", "--raw", &path]).await;
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the kubelet API never served after the approval: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            node.log_tail(60)
        );
    };
    assert!(metrics.lines().any(|l| l == "wasmlet_server_expiration_renew_errors_total 1"), "{metrics}");
    let logs = pods::kubectl(&["logs", "-n", ns.name(), "runner"]).await;
    assert!(String::from_utf8_lossy(&logs.stdout).contains("tick 0"), "{}", String::from_utf8_lossy(&logs.stderr));
}
