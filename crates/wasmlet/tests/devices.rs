//! Device plugins and DRA with the real plugins of `tools/devices`: squat's
//! generic device plugin (4 devices of wasmlet.test/null, each with
//! `/dev/null` and a read-only mount) and upstream's DRA test driver.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceClaimTemplate};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use wasmlet_testbed::devices::{self, DEVICE_CLASS, DEVICE_FILE, DEVICE_MOUNT, DEVICE_TEXT, DevicesBed, RESOURCE};
use wasmlet_testkit::pods::{self, POD_TIMEOUT, phase};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, testbed, wait};

/// How long the node may take to show a change of its devices.
const STATUS_TIMEOUT: Duration = Duration::from_secs(60);

fn tools() -> PathBuf {
    let script = wasmlet_testkit::repo_root().join("tools/devices/build.sh");
    let out = Command::new(script).output().expect("running tools/devices/build.sh");
    assert!(out.status.success(), "tools/devices/build.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().expect("a bin dir").trim())
}

async fn bed(node: &WasmletNode) -> DevicesBed {
    let tb = testbed().await;
    DevicesBed::new(tb.dir(), &tools(), &node.name, &node.root, &tb.admin_kubeconfig())
}

/// The node's (capacity, allocatable) of the generic device plugin's resource.
fn amounts(n: &Node) -> (Option<String>, Option<String>) {
    let status = n.status.as_ref();
    let get = |list: Option<
        &std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| { list.and_then(|l| l.get(RESOURCE)).map(|q| q.0.clone()) };
    (get(status.and_then(|s| s.capacity.as_ref())), get(status.and_then(|s| s.allocatable.as_ref())))
}

async fn node_shows(node: &WasmletNode, capacity: &str, allocatable: &str) {
    let nodes: Api<Node> = Api::all(admin_client().await);
    let want = (Some(capacity.to_owned()), Some(allocatable.to_owned()));
    let seen =
        wait::try_for_object(&nodes, &node.name, STATUS_TIMEOUT, |n| n.is_some_and(|n| amounts(n) == want)).await;
    if let Err(last) = seen {
        panic!("node never showed {want:?}; last {:?}\n{}", last.as_ref().map(amounts), node.log_tail(60));
    }
}

/// A pod for the scheduler to place on `node`, whose `reader` container
/// holds `n` devices and reads the device file over and over (restarts),
/// and whose `holder` keeps it running.
fn device_pod(name: &str, node: &str, bound: bool, n: u32, reader: &str, holder: &str) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "restartPolicy": "Always",
        "tolerations": [{"key": "kubernetes.io/arch", "operator": "Exists"}],
        "nodeSelector": {"kubernetes.io/hostname": node},
        "containers": [
            {"name": "reader", "image": reader, "args": [format!("{DEVICE_MOUNT}/{DEVICE_FILE}")],
             "resources": {"limits": {RESOURCE: n.to_string()}}},
            {"name": "holder", "image": holder, "env": [{"name": "TICK_MS", "value": "60000"}]}
        ]
    });
    if bound {
        spec["nodeName"] = node.into();
    }
    serde_json::json!({"metadata": {"name": name}, "spec": spec})
}

async fn events(ns: &Namespace, pod: &str) -> Vec<Event> {
    let api: Api<Event> = ns.api();
    api.list(&ListParams::default().fields(&format!("involvedObject.name={pod}"))).await.unwrap().items
}

/// The devices each pod holds, from the node's checkpoint.
fn checkpointed(node: &WasmletNode) -> Vec<(String, BTreeSet<String>)> {
    let path = node.root.join("device-plugins").join("kubelet_internal_checkpoint");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out: Vec<(String, BTreeSet<String>)> = Vec::new();
    for e in v["podDeviceEntries"].as_array().unwrap() {
        let uid = e["podUID"].as_str().unwrap().to_owned();
        let ids = e["deviceIDs"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned());
        match out.iter_mut().find(|(u, _)| *u == uid) {
            Some((_, set)) => set.extend(ids),
            None => out.push((uid, ids.collect())),
        }
    }
    out
}

/// Whether the reader's last run read the file (exit 0).
fn read_ok(p: &Pod) -> bool {
    let c = pods::container(p, "reader");
    let last = c
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| c.and_then(|c| c.last_state.as_ref()).and_then(|s| s.terminated.as_ref()));
    last.is_some_and(|t| t.exit_code == 0)
}

/// Whether the reader printed the device file (this run or the one before).
async fn read_text(api: &Api<Pod>, pod: &str) -> bool {
    for previous in [false, true] {
        let params = kube::api::LogParams { container: Some("reader".into()), previous, ..Default::default() };
        if api.logs(pod, &params).await.unwrap_or_default().contains(DEVICE_TEXT) {
            return true;
        }
    }
    false
}

async fn logs(api: &Api<Pod>, pod: &str, container: &str) -> String {
    let params = kube::api::LogParams { container: Some(container.into()), ..Default::default() };
    api.logs(pod, &params).await.unwrap_or_default()
}

#[tokio::test]
async fn device_plugin_devices_are_advertised_allocated_checkpointed_and_followed() {
    let mut node =
        WasmletNode::start_with(env!("CARGO_BIN_EXE_wasmlet"), "devices", &["--device-plugin-stop-grace-period=5s"])
            .await;
    let bed = bed(&node).await;
    bed.start_generic().await.expect("generic device plugin");
    node_shows(&node, "4", "4").await;

    let ns = Namespace::create(&admin_client().await, "devices").await;
    let api = ns.api::<Pod>();
    let (reader, holder) = (fixture_image("read-file").await, fixture_image("forever").await);
    let log = || node.log_tail(60);

    // Two devices: the guest reads the file the plugin's mount gives it.
    let two = pods::create(&ns, device_pod("two", &node.name, false, 2, &reader, &holder)).await;
    let reads = |p: &Pod| pods::container(p, "reader").map_or(0, |c| c.restart_count);
    let first = pods::wait_for(&api, "two", POD_TIMEOUT, log, |p| pods::running(p, "holder") && read_ok(p)).await;
    assert!(read_text(&api, "two").await, "the guest printed {DEVICE_TEXT:?}");
    let notes = events(&ns, "two").await;
    let ignored =
        notes.iter().find(|e| e.reason.as_deref() == Some("DeviceNodesIgnored")).expect("a DeviceNodesIgnored event");
    assert_eq!(ignored.type_.as_deref(), Some("Warning"));
    assert!(ignored.message.as_deref().unwrap_or_default().contains("/dev/null"), "{ignored:?}");
    let uid_two = two.metadata.uid.clone().unwrap();

    // Three more: the scheduler sees two left and waits.
    pods::create(&ns, device_pod("three", &node.name, false, 3, &reader, &holder)).await;
    let pending = pods::wait_for(&api, "three", POD_TIMEOUT, log, |p| {
        p.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| {
            c.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.message.as_deref().unwrap_or("").contains(RESOURCE)
            })
        })
    })
    .await;
    assert_eq!(phase(&pending), "Pending");

    // Bound directly: the node refuses it, as upstream's device manager does.
    pods::create(&ns, device_pod("bound", &node.name, true, 3, &reader, &holder)).await;
    let bound = pods::wait_for(&api, "bound", POD_TIMEOUT, log, |p| phase(p) == "Failed").await;
    let status = bound.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("UnexpectedAdmissionError"));
    assert_eq!(
        status.message.as_deref(),
        Some(format!("Pod was rejected: Allocate failed due to requested number of devices unavailable for {RESOURCE}. Requested: 3, Available: 2, which is unexpected").as_str())
    );

    // kill -9: the running pod keeps its devices, the plugin registers again.
    let before = checkpointed(&node);
    assert_eq!(before.len(), 1, "only pod two holds devices: {before:?}");
    node.kill();
    node.restart().await;
    let log = || node.log_tail(60);
    node_shows(&node, "4", "4").await;
    assert_eq!(checkpointed(&node), before, "the allocation survived");
    // The reader runs again after the restart, with the same devices.
    let runs = reads(&first);
    pods::wait_for(&api, "two", POD_TIMEOUT, log, |p| pods::running(p, "holder") && reads(p) > runs && read_ok(p))
        .await;
    pods::create(&ns, device_pod("bound-three", &node.name, true, 3, &reader, &holder)).await;
    let refused = pods::wait_for(&api, "bound-three", POD_TIMEOUT, log, |p| phase(p) == "Failed").await;
    assert!(refused.status.unwrap().message.unwrap_or_default().contains("Requested: 3, Available: 2"));
    pods::create(&ns, device_pod("bound-two", &node.name, true, 2, &reader, &holder)).await;
    pods::wait_for(&api, "bound-two", POD_TIMEOUT, log, |p| pods::running(p, "holder")).await;
    let held = checkpointed(&node);
    assert_eq!(held.len(), 2, "{held:?}");
    let all: BTreeSet<&String> = held.iter().flat_map(|(_, s)| s.iter()).collect();
    assert_eq!(all.len(), 4, "no device twice: {held:?}");
    assert_eq!(held.iter().find(|(u, _)| *u == uid_two).map(|(_, s)| s.len()), Some(2));

    // Deleting pods frees their devices: the pending pod gets three.
    for name in ["bound-two", "two"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
        let gone = wait::for_object(&api, name, POD_TIMEOUT, |p| p.is_none()).await;
        assert!(gone.is_none(), "pod {name} still there\n{}", node.log_tail(40));
    }
    pods::wait_for(&api, "three", POD_TIMEOUT, log, |p| pods::running(p, "holder")).await;

    // The plugin stops: allocatable at once, capacity after the grace period.
    bed.stop_generic().unwrap();
    node_shows(&node, "4", "0").await;
    node_shows(&node, "0", "0").await;
    bed.start_generic().await.expect("generic device plugin again");
    node_shows(&node, "4", "4").await;
    bed.stop();
}

#[tokio::test]
async fn a_resource_claim_from_a_template_is_prepared_given_and_unprepared() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "dra").await;
    let bed = bed(&node).await;
    bed.start_dra().await.expect("DRA test driver");
    bed.apply_device_class(testbed().await).await.expect("DeviceClass");
    let client = admin_client().await;
    let ns = Namespace::create(&client, "dra").await;
    let api = ns.api::<Pod>();
    let log = || node.log_tail(60);

    let template: ResourceClaimTemplate = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "one-device"},
        "spec": {"spec": {"devices": {
            "requests": [{"name": "req", "exactly": {"deviceClassName": DEVICE_CLASS}}],
            "config": [{"opaque": {"driver": devices::DRA_DRIVER, "parameters": {"a": "b"}}}]
        }}}
    }))
    .unwrap();
    ns.api::<ResourceClaimTemplate>().create(&PostParams::default(), &template).await.unwrap();
    pods::create(
        &ns,
        serde_json::json!({
            "metadata": {"name": "claimer"},
            "spec": {
                "restartPolicy": "Never",
                "tolerations": [{"key": "kubernetes.io/arch", "operator": "Exists"}],
                "nodeSelector": {"kubernetes.io/hostname": node.name},
                "resourceClaims": [{"name": "dev", "resourceClaimTemplateName": "one-device"}],
                "containers": [
                    {"name": "env", "image": fixture_image("args-env").await, "resources": {"claims": [{"name": "dev"}]}},
                    {"name": "holder", "image": fixture_image("forever").await, "env": [{"name": "TICK_MS", "value": "60000"}]}
                ]
            }
        }),
    )
    .await;
    let pod = pods::wait_for(&api, "claimer", POD_TIMEOUT, log, |p| pods::terminated(p, "env").is_some()).await;
    assert_eq!(pods::terminated(&pod, "env").unwrap().exit_code, 0);
    let claim_name = pod
        .status
        .as_ref()
        .and_then(|s| s.resource_claim_statuses.as_ref())
        .and_then(|s| s[0].resource_claim_name.clone())
        .expect("a generated claim");
    let printed = logs(&api, "claimer", "env").await;
    let claim_env = format!("claim_{}_req=true", claim_name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    assert!(printed.contains(&format!("env {claim_env}")), "the guest sees the claim's CDI env {claim_env}: {printed}");
    assert!(printed.contains("env user_a=b"), "and the claim's configuration: {printed}");

    let driver_log = || std::fs::read_to_string(bed.dra_log()).unwrap_or_default();
    assert!(driver_log().contains("NodePrepareResources"), "{}", driver_log());
    assert!(!driver_log().contains("NodeUnprepareResources"), "nothing unprepared while the pod runs");

    api.delete("claimer", &DeleteParams::default()).await.unwrap();
    let gone = wait::for_object(&api, "claimer", POD_TIMEOUT, |p| p.is_none()).await;
    assert!(gone.is_none(), "the pod is gone\n{}", node.log_tail(40));
    let text = driver_log();
    let (prepared, unprepared) = (text.find("NodePrepareResources"), text.find("NodeUnprepareResources"));
    assert!(unprepared.is_some() && prepared < unprepared, "prepare, then unprepare after deletion:\n{text}");

    let claims = ns.api::<ResourceClaim>();
    let released = wait::for_object(&claims, &claim_name, POD_TIMEOUT, |c| {
        c.is_none_or(|c| c.status.as_ref().is_none_or(|s| s.allocation.is_none()))
    })
    .await;
    assert!(released.is_none_or(|c| c.status.is_none_or(|s| s.allocation.is_none())), "the claim is deallocated");
    bed.stop();
}
