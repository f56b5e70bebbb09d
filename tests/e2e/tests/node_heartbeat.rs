//! wasmlet-node against the real test bed: registration, the Lease and node
//! status, all done with the node's own credentials (`system:node:<name>`,
//! under the Node authorizer and NodeRestriction), checked with the admin's.
//!
//! Run with: `eval "$(cargo xtask testbed up)"` then
//! `cargo test -p wasmlet-e2e --test node_heartbeat`.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wasmlet_node::resources::Resources;
use wasmlet_node::{Heartbeat, NodeConfig, NodeHealth, host, register};
use wasmlet_testkit::{admin_client, testbed, wait};

const RUNTIME_VERSION: &str = "wasmtime://48.0.8";

/// One node of a test: its config, its own client, and the admin's view.
struct TestNode {
    config: NodeConfig,
    client: kube::Client,
    nodes: Api<Node>,
    _root: tempfile::TempDir,
}

impl TestNode {
    async fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}-{:x}{nanos:x}", std::process::id());
        let creds = testbed().await.node_credentials(&name, &[]).unwrap();
        let client = wasmlet_testbed::client_from_kubeconfig(&creds.kubeconfig).await.unwrap();
        let root = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::new(&name, IpAddr::from([127, 0, 0, 1]), &name);
        config.root_dir = root.path().to_owned();
        config.runtime_version = RUNTIME_VERSION.into();
        config.kubelet_port = 10250;
        config.labels.insert("wasmlet.example.com/pool".into(), "e2e".into());
        TestNode { config, client, nodes: Api::all(admin_client().await), _root: root }
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    async fn register(&self) -> Node {
        let cancel = CancellationToken::new();
        tokio::time::timeout(Duration::from_secs(30), register(&self.client, &self.config, &cancel))
            .await
            .expect("registered within 30 s")
            .expect("registered")
    }

    /// Starts the heartbeat; cancel the token to stop it.
    fn heartbeat(&self, uid: &str, health: watch::Receiver<NodeHealth>) -> Running {
        let cancel = CancellationToken::new();
        let hb = Heartbeat::new(self.client.clone(), self.config.clone(), uid);
        let task = tokio::spawn(hb.run(health, cancel.clone()));
        Running { cancel, task }
    }

    async fn wait_ready(&self, status: &str, reason: &str, timeout: Duration) -> Node {
        let (status, reason) = (status.to_owned(), reason.to_owned());
        wait::for_object(&self.nodes, self.name(), timeout, move |n: Option<&Node>| {
            n.and_then(|n| ready(n)).is_some_and(|c| c.status == status && c.reason.as_deref() == Some(&reason))
        })
        .await
        .expect("node exists")
    }

    async fn delete(self) {
        let _ = self.nodes.delete(self.name(), &DeleteParams::default()).await;
    }
}

struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("heartbeat stops promptly on cancel")
            .expect("heartbeat did not panic");
    }
}

fn ready(node: &Node) -> Option<&NodeCondition> {
    node.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")
}

fn healthy() -> NodeHealth {
    NodeHealth { ready: true, ..NodeHealth::default() }
}

fn has_wasm_taints(node: &Node) -> bool {
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    ["NoSchedule", "NoExecute"].iter().all(|effect| {
        taints
            .iter()
            .any(|t| t.key == "kubernetes.io/arch" && t.value.as_deref() == Some("wasm32") && t.effect == *effect)
    })
}

async fn node_event_reasons(name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(admin_client().await, "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test]
async fn register_creates_the_node_and_reconciles_it_on_restart() {
    let node = TestNode::new("hb-reg").await;
    let created = node.register().await;
    let uid = created.metadata.uid.clone().expect("uid");
    let n = node.nodes.get(node.name()).await.unwrap();

    let labels = n.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/os"], "wasi");
    assert_eq!(labels["kubernetes.io/arch"], "wasm32");
    assert_eq!(labels["kubernetes.io/hostname"], node.name());
    assert_eq!(labels["wasmlet.example.com/pool"], "e2e");
    let annotations = n.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["volumes.kubernetes.io/controller-managed-attach-detach"], "true");
    assert!(has_wasm_taints(&n), "{:?}", n.spec);

    let status = n.status.clone().unwrap();
    let sample = host::measure(&node.config.root_dir).unwrap();
    let capacity = status.capacity.clone().unwrap();
    assert_eq!(capacity, Resources::capacity(&sample, &node.config).to_list());
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(capacity["cpu"].0, cpus.to_string());
    assert_eq!(capacity["pods"].0, "110");
    assert!(capacity["memory"].0.ends_with("i"), "{capacity:?}");
    assert_eq!(status.allocatable.clone().unwrap(), Resources::allocatable(&sample, &node.config).to_list());
    let addresses: Vec<_> = status.addresses.clone().unwrap().into_iter().map(|a| (a.type_, a.address)).collect();
    assert_eq!(
        addresses,
        [("InternalIP".to_owned(), "127.0.0.1".to_owned()), ("Hostname".to_owned(), node.name().to_owned())]
    );
    let port = status.daemon_endpoints.as_ref().unwrap().kubelet_endpoint.as_ref().unwrap().port;
    assert_eq!(port, 10250);
    let info = status.node_info.clone().unwrap();
    assert_eq!(info.operating_system, "wasi");
    assert_eq!(info.architecture, "wasm32");
    assert_eq!(info.container_runtime_version, RUNTIME_VERSION);
    assert_eq!(info.kubelet_version, wasmlet_node::default_kubelet_version());
    assert_eq!(info.kube_proxy_version, "");
    assert_eq!(info.boot_id, host::system_info().boot_id);
    assert!(!info.machine_id.is_empty() && !info.kernel_version.is_empty());
    let r = ready(&n).unwrap();
    assert_eq!(r.status, "False");
    assert_eq!(r.reason.as_deref(), Some("KubeletNotReady"));
    assert!(node_event_reasons(node.name()).await.contains(&"Starting".to_owned()));

    // An administrator edits labels, taints and addresses; the kubelet restarts.
    let admin_patch = serde_json::json!({
        "metadata": { "labels": { "kubernetes.io/arch": "amd64", "admin.example.com/x": "kept" } },
        "spec": { "taints": [
            { "key": "kubernetes.io/arch", "value": "wasm32", "effect": "NoSchedule" },
            { "key": "kubernetes.io/arch", "value": "wasm32", "effect": "NoExecute" },
            { "key": "admin.example.com/drain", "effect": "NoSchedule" }
        ] }
    });
    let pp = PatchParams::default();
    node.nodes.patch(node.name(), &pp, &Patch::Merge(&admin_patch)).await.unwrap();
    let stale_addresses = serde_json::json!({ "status": { "addresses": [
        { "type": "InternalIP", "address": "192.0.2.1" },
        { "type": "InternalIP", "address": "127.0.0.1" },
        { "type": "ExternalIP", "address": "192.0.2.2" }
    ] } });
    node.nodes.patch_status(node.name(), &pp, &Patch::Merge(&stale_addresses)).await.unwrap();
    let again = node.register().await;
    assert_eq!(again.metadata.uid.as_deref(), Some(uid.as_str()), "same Node");
    let n = node.nodes.get(node.name()).await.unwrap();
    let readdressed: Vec<_> =
        n.status.clone().unwrap().addresses.unwrap().into_iter().map(|a| (a.type_, a.address)).collect();
    assert_eq!(readdressed, addresses, "addresses replaced, not merged");
    let labels = n.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/arch"], "wasm32", "kubelet label restored");
    assert_eq!(labels["admin.example.com/x"], "kept");
    assert!(has_wasm_taints(&n));
    let taints = n.spec.unwrap().taints.unwrap();
    assert!(taints.iter().any(|t| t.key == "admin.example.com/drain"), "taints untouched");
    node.delete().await;
}

#[tokio::test]
async fn heartbeat_makes_the_node_ready_renews_the_lease_and_reports_health() {
    let node = TestNode::new("hb-beat").await;
    let uid = node.register().await.metadata.uid.unwrap();
    let (health_tx, health) = watch::channel(healthy());
    let running = node.heartbeat(&uid, health);

    let n = node.wait_ready("True", "KubeletReady", Duration::from_secs(20)).await;
    let heartbeat = ready(&n).unwrap().last_heartbeat_time.clone();

    let leases: Api<Lease> = Api::namespaced(admin_client().await, "kube-node-lease");
    let lease = wait::for_object(&leases, node.name(), Duration::from_secs(20), |l| l.is_some()).await.unwrap();
    let spec = lease.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some(node.name()));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owners = lease.metadata.owner_references.clone().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "Node");
    assert_eq!(owners[0].api_version, "v1");
    assert_eq!(owners[0].name, node.name());
    assert_eq!(owners[0].uid, uid);
    let first = spec.renew_time.unwrap().0;
    wait::for_object(&leases, node.name(), Duration::from_secs(25), move |l| {
        l.and_then(|l| l.spec.as_ref()?.renew_time.as_ref()).is_some_and(|t| t.0 > first)
    })
    .await;
    // A status update ran along with that renewal; nothing had changed, so
    // nothing was patched (status is reported only on change or every 5 min).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = node.nodes.get(node.name()).await.unwrap();
    assert_eq!(ready(&n).unwrap().last_heartbeat_time, heartbeat, "no patch without change");

    // Not ready: reported at once, with the binary's message.
    let message = "wasm runtime is not ready: engine failed to start";
    health_tx.send(NodeHealth { ready: false, message: message.into(), ..NodeHealth::default() }).unwrap();
    let n = node.wait_ready("False", "KubeletNotReady", Duration::from_secs(5)).await;
    assert_eq!(ready(&n).unwrap().message.as_deref(), Some(message));
    health_tx.send(healthy()).unwrap();
    node.wait_ready("True", "KubeletReady", Duration::from_secs(5)).await;
    let reasons = node_event_reasons(node.name()).await;
    assert!(reasons.contains(&"NodeNotReady".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"NodeReady".to_owned()), "{reasons:?}");

    running.stop().await;
    node.delete().await;
}

#[tokio::test]
async fn a_stopped_agent_goes_unknown_and_comes_back_ready() {
    let node = TestNode::new("hb-stop").await;
    let uid = node.register().await.metadata.uid.unwrap();
    let (_health_tx, health) = watch::channel(healthy());
    let running = node.heartbeat(&uid, health.clone());
    node.wait_ready("True", "KubeletReady", Duration::from_secs(20)).await;
    running.stop().await;

    // The node-lifecycle controller (grace period 20 s) gives up on it.
    let n = node.wait_ready("Unknown", "NodeStatusUnknown", Duration::from_secs(60)).await;
    assert_eq!(ready(&n).unwrap().message.as_deref(), Some("Kubelet stopped posting node status."));

    // The agent restarts: register again, heartbeat again.
    let uid = node.register().await.metadata.uid.unwrap();
    let running = node.heartbeat(&uid, health);
    node.wait_ready("True", "KubeletReady", Duration::from_secs(20)).await;
    running.stop().await;
    node.delete().await;
}
