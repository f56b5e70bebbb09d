//! CSI storage for wasm pods, end to end: real mock CSI drivers,
//! csi-provisioner and csi-attacher (`cargo xtask testbed csi`), the real
//! control plane (attach/detach controller included) and kubectl.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{CSINode, VolumeAttachment};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use wasmlet_testbed::csi::{CsiBed, Driver};
use wasmlet_testkit::pods::{self, POD_TIMEOUT, phase};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, testbed, wait};

/// Long enough for provisioning, attaching and a CrashLoop restart or two.
const STORAGE_TIMEOUT: Duration = Duration::from_secs(120);
const FILE: &str = "/data/file.txt";
const WRITTEN: &str = "written by read-file fixture";

/// A wasmlet node with CSI storage.
struct Bed {
    node: WasmletNode,
    csi: CsiBed,
    ns: Namespace,
}

fn csi_bin_dir() -> PathBuf {
    let script = wasmlet_testkit::repo_root().join("tools/csi/build.sh");
    let out = Command::new(script).output().expect("running tools/csi/build.sh");
    assert!(out.status.success(), "tools/csi/build.sh failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().expect("a bin dir").trim())
}

async fn bed(prefix: &str) -> Bed {
    // Volume stats every second (upstream measures every minute).
    let node = WasmletNode::start_with(env!("CARGO_BIN_EXE_wasmlet"), prefix, &["--volume-stats-agg-period=1s"]).await;
    let tb = testbed().await;
    let bin = csi_bin_dir();
    let csi = CsiBed::new(tb.dir(), &bin, &node.name, &node.root);
    csi.start(tb, &bin).await.unwrap_or_else(|e| panic!("starting CSI storage: {e}\n{}", node.log_tail(40)));
    let ns = Namespace::create(&admin_client().await, prefix).await;
    // Both drivers registered: the CSINode lists them.
    let csinodes: Api<CSINode> = Api::all(admin_client().await);
    let names = [csi.plain.name.clone(), csi.attach.name.clone()];
    let ok = wait::try_for_object(&csinodes, &node.name, POD_TIMEOUT, |c| {
        c.is_some_and(|c| names.iter().all(|n| c.spec.drivers.iter().any(|d| &d.name == n)))
    })
    .await;
    if let Err(last) = ok {
        panic!("drivers not in CSINode: {last:#?}\n{}", node.log_tail(60));
    }
    Bed { node, csi, ns }
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.csi.stop();
    }
}

fn claim(name: &str, class: &str) -> PersistentVolumeClaim {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": class,
            "resources": { "requests": { "storage": "1Mi" } }
        }
    }))
    .unwrap()
}

/// A read-file pod on the node (scheduled there by the scheduler) with
/// `volume` at /data.
async fn reader(bed: &Bed, name: &str, args: &[&str], env: serde_json::Value, volume: serde_json::Value) -> Pod {
    let pod = serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "nodeSelector": { "kubernetes.io/hostname": bed.node.name },
            "restartPolicy": "OnFailure",
            "tolerations": [{ "key": "kubernetes.io/arch", "operator": "Exists" }],
            "containers": [{
                "name": "main", "image": fixture_image("read-file").await, "args": args, "env": env,
                "volumeMounts": [{ "name": "data", "mountPath": "/data" }]
            }],
            "volumes": [volume]
        }
    });
    pods::create(&bed.ns, pod).await
}

fn pvc_volume(claim: &str) -> serde_json::Value {
    serde_json::json!({ "name": "data", "persistentVolumeClaim": { "claimName": claim } })
}

/// The backing directory of volume `handle` of `driver` (`--data-dir`).
fn data_dir(driver: &Driver, handle: &str) -> PathBuf {
    driver.calls_log.parent().unwrap().join("data").join(handle)
}

/// Puts the file the fixture reads into the volume's backing store.
fn seed(driver: &Driver, handle: &str) {
    let dir = data_dir(driver, handle);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("file.txt"), "seed\n").unwrap();
}

/// Waits until the claim is bound; returns its PV's volume handle.
async fn bound_handle(bed: &Bed, claim: &str) -> String {
    let claims: Api<PersistentVolumeClaim> = bed.ns.api();
    let pvc = wait::for_object(&claims, claim, STORAGE_TIMEOUT, |c: Option<&PersistentVolumeClaim>| {
        c.and_then(|c| c.status.as_ref()?.phase.as_deref()) == Some("Bound")
    })
    .await
    .unwrap_or_else(|| panic!("claim {claim} not bound"));
    let pv_name = pvc.spec.unwrap().volume_name.unwrap();
    let pv = Api::<PersistentVolume>::all(admin_client().await).get(&pv_name).await.unwrap();
    pv.spec.unwrap().csi.unwrap().volume_handle
}

async fn logs(bed: &Bed, pod: &str) -> String {
    bed.ns.api::<Pod>().logs(pod, &Default::default()).await.unwrap_or_default()
}

async fn delete_and_wait(bed: &Bed, pod: &str) {
    let api: Api<Pod> = bed.ns.api();
    api.delete(pod, &DeleteParams::default()).await.unwrap();
    let gone = wait::try_for_object(&api, pod, POD_TIMEOUT, |p: Option<&Pod>| p.is_none()).await;
    assert!(gone.is_ok(), "pod {pod} not deleted\n{}", bed.node.log_tail(60));
}

/// The node calls the driver logged for volume `handle`, in order.
fn node_calls(driver: &Driver, handle: &str) -> Vec<String> {
    CsiBed::calls(driver)
        .into_iter()
        .filter(|c| c.method.starts_with("Node") && c.method != "NodeGetInfo")
        .filter(|c| c.method == "NodeGetCapabilities" || c.request["volumeId"] == handle)
        .filter(|c| c.code == "OK")
        .map(|c| c.method)
        .collect()
}

/// Waits until the driver has logged `want` in this order for `handle`: a
/// terminal pod's object goes at once on delete (the API server skips the
/// grace period), so its volumes may be released just after the delete
/// returns.
async fn wait_calls(bed: &Bed, driver: &Driver, handle: &str, want: &[&str]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + POD_TIMEOUT;
    loop {
        let calls = node_calls(driver, handle);
        if in_order(&calls, want) {
            return calls;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "driver calls {calls:?}, want {want:?}\n{}",
            bed.node.log_tail(80)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (polling) until `cond` holds.
async fn wait_until(what: &str, cond: impl Fn() -> bool, bed: &Bed) {
    let deadline = tokio::time::Instant::now() + STORAGE_TIMEOUT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}\n{}", bed.node.log_tail(80));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether `want` appears in `calls` in this order (other calls between).
fn in_order(calls: &[String], want: &[&str]) -> bool {
    let mut it = calls.iter();
    want.iter().all(|w| it.any(|c| c == w))
}

/// The `/stats/summary` entry of volume `volume` of pod `pod`, once there
/// (the first measurement comes within a period of the publication).
async fn volume_stats(node: &str, pod: &str, volume: &str) -> serde_json::Value {
    let path = format!("/api/v1/nodes/{node}/proxy/stats/summary");
    let mut last = serde_json::Value::Null;
    let found = tokio::time::timeout(POD_TIMEOUT, async {
        loop {
            let raw = pods::kubectl_ok(&["get", "--raw", &path]).await;
            last = serde_json::from_str(&raw).unwrap();
            let entry = last["pods"].as_array().and_then(|ps| {
                let p = ps.iter().find(|p| p["podRef"]["name"] == pod)?;
                p["volume"].as_array()?.iter().find(|v| v["name"] == volume).cloned()
            });
            if let Some(v) = entry {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no stats of volume {volume} of pod {pod} in /stats/summary: {last:#}"))
}

async fn write_then_read(bed: &Bed, class: &str) {
    let claims: Api<PersistentVolumeClaim> = bed.ns.api();
    claims.create(&PostParams::default(), &claim("data", class)).await.unwrap();
    let driver = &bed.csi.plain;
    let api: Api<Pod> = bed.ns.api();
    reader(bed, "writer", &[FILE, "write"], serde_json::json!([]), pvc_volume("data")).await;
    // With WaitForFirstConsumer the claim binds only now.
    let handle = bound_handle(bed, "data").await;
    seed(driver, &handle);
    let log = || bed.node.log_tail(80);
    pods::wait_for(&api, "writer", STORAGE_TIMEOUT, log, |p| phase(p) == "Succeeded").await;
    let out = logs(bed, "writer").await;
    assert!(out.contains("seed") && out.contains("write ok"), "{out}");
    delete_and_wait(bed, "writer").await;
    let order =
        ["NodeGetCapabilities", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume"];
    wait_calls(bed, driver, &handle, &order).await;

    reader(bed, "reader", &[FILE], serde_json::json!([]), pvc_volume("data")).await;
    pods::wait_for(&api, "reader", STORAGE_TIMEOUT, || bed.node.log_tail(80), |p| phase(p) == "Succeeded").await;
    let out = logs(bed, "reader").await;
    assert!(out.contains(WRITTEN), "the second pod reads what the first wrote: {out}");
    delete_and_wait(bed, "reader").await;
}

#[tokio::test]
async fn registration_fills_csinode_and_node_annotation_and_socket_removal_clears_them() {
    let bed = bed("csi-reg").await;
    let client = admin_client().await;
    let csinode = Api::<CSINode>::all(client.clone()).get(&bed.node.name).await.unwrap();
    let owner = &csinode.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", bed.node.name.as_str()));
    for d in &csinode.spec.drivers {
        assert_eq!(d.node_id, bed.node.name, "the driver's node ID");
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let node = nodes.get(&bed.node.name).await.unwrap();
    let ids: serde_json::Value =
        serde_json::from_str(&node.metadata.annotations.unwrap()["csi.volume.kubernetes.io/nodeid"]).unwrap();
    assert_eq!(ids[&bed.csi.plain.name], bed.node.name.as_str());
    assert_eq!(ids[&bed.csi.attach.name], bed.node.name.as_str());

    // kubectl sees it too.
    let out = pods::kubectl_ok(&["get", "csinode", &bed.node.name, "-o", "jsonpath={.spec.drivers[*].name}"]).await;
    assert!(out.contains(&bed.csi.plain.name), "{out}");

    // The registration socket goes (the driver stops): the driver leaves.
    bed.csi.stop_driver(&bed.csi.plain).unwrap();
    let plain = bed.csi.plain.name.clone();
    let left = wait::try_for_object(&Api::<CSINode>::all(client.clone()), &bed.node.name, POD_TIMEOUT, |c| {
        c.is_some_and(|c| c.spec.drivers.iter().all(|d| d.name != plain))
    })
    .await;
    assert!(left.is_ok(), "driver still in CSINode\n{}", bed.node.log_tail(40));
    let ids = |n: &Node| {
        n.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("csi.volume.kubernetes.io/nodeid"))
            .cloned()
            .unwrap_or_default()
    };
    let dropped = wait::try_for_object(&nodes, &bed.node.name, POD_TIMEOUT, |n: Option<&Node>| {
        n.is_some_and(|n| !ids(n).contains(&plain))
    })
    .await;
    let node = dropped.unwrap_or_else(|last| panic!("annotation kept the driver: {last:#?}")).unwrap();
    assert!(ids(&node).contains(&bed.csi.attach.name), "the other driver stays: {}", ids(&node));
}

#[tokio::test]
async fn dynamic_provisioning_immediate_keeps_data_across_pods() {
    let bed = bed("csi-imm").await;
    write_then_read(&bed, &bed.csi.storage_class.clone()).await;
}

#[tokio::test]
async fn dynamic_provisioning_wait_for_first_consumer_keeps_data_across_pods() {
    let bed = bed("csi-wffc").await;
    write_then_read(&bed, &bed.csi.storage_class_wffc.clone()).await;
}

#[tokio::test]
async fn attach_required_volume_is_attached_before_the_pod_starts() {
    let bed = bed("csi-att").await;
    let claims: Api<PersistentVolumeClaim> = bed.ns.api();
    claims.create(&PostParams::default(), &claim("data", &bed.csi.storage_class_attach)).await.unwrap();
    let handle = bound_handle(&bed, "data").await;
    let driver = &bed.csi.attach;
    seed(driver, &handle);
    let api: Api<Pod> = bed.ns.api();
    reader(&bed, "att", &[FILE], serde_json::json!([{ "name": "WATCH_MS", "value": "500" }]), pvc_volume("data")).await;
    pods::wait_for(&api, "att", STORAGE_TIMEOUT, || bed.node.log_tail(80), |p| pods::running(p, "main")).await;

    let client = admin_client().await;
    let va_name = wasmlet_csi::paths::attachment_name(&handle, &driver.name, &bed.node.name);
    let va = Api::<VolumeAttachment>::all(client.clone()).get(&va_name).await.unwrap();
    assert!(va.status.as_ref().is_some_and(|s| s.attached), "{va:#?}");
    // Staged with the attachment's metadata (the mock needs its `device`).
    let stage = CsiBed::calls(driver).into_iter().find(|c| c.method == "NodeStageVolume" && c.code == "OK").unwrap();
    assert_eq!(stage.request["publishContext"]["device"], "/dev/mock", "{:?}", stage.request);
    let unique = wasmlet_csi::paths::unique_name(&driver.name, &handle);
    let nodes: Api<Node> = Api::all(client.clone());
    let status = nodes.get(&bed.node.name).await.unwrap().status.unwrap();
    assert!(status.volumes_in_use.unwrap_or_default().contains(&unique));
    assert!(status.volumes_attached.unwrap_or_default().iter().any(|v| v.name == unique));
    let out = logs(&bed, "att").await;
    assert!(out.contains("content: seed"), "{out}");

    delete_and_wait(&bed, "att").await;
    let calls = node_calls(driver, &handle);
    assert!(
        in_order(&calls, &["NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume"]),
        "{calls:?}"
    );
    let released = wait::try_for_object(&nodes, &bed.node.name, POD_TIMEOUT, |n: Option<&Node>| {
        n.and_then(|n| n.status.as_ref()).is_some_and(|s| !s.volumes_in_use.iter().flatten().any(|v| *v == unique))
    })
    .await;
    assert!(released.is_ok(), "still in volumesInUse after the pod went");
}

/// An inline `csi` volume of the pod `name`, with its handle.
async fn inline_pod(bed: &Bed, name: &str) -> String {
    let volume = serde_json::json!({
        "name": "data",
        "csi": { "driver": bed.csi.plain.name, "volumeAttributes": { "size": "1Mi" } }
    });
    let pod = reader(bed, name, &[FILE, "write"], serde_json::json!([]), volume).await;
    let uid = pod.metadata.uid.unwrap();
    format!("csi-{}", wasmlet_csi::paths::sha256(&format!("{uid}data")))
}

#[tokio::test]
async fn inline_ephemeral_volume_and_a_stopped_driver() {
    let bed = bed("csi-eph").await;
    let api: Api<Pod> = bed.ns.api();
    let handle = inline_pod(&bed, "inline").await;
    seed(&bed.csi.plain, &handle);
    pods::wait_for(&api, "inline", STORAGE_TIMEOUT, || bed.node.log_tail(80), |p| phase(p) == "Succeeded").await;
    let publish = CsiBed::calls(&bed.csi.plain)
        .into_iter()
        .find(|c| c.method == "NodePublishVolume" && c.request["volumeId"] == handle.as_str())
        .expect("published");
    assert_eq!(publish.request["volumeContext"]["csi.storage.k8s.io/ephemeral"], "true");
    assert!(logs(&bed, "inline").await.contains("write ok"));
    delete_and_wait(&bed, "inline").await;
    wait_calls(&bed, &bed.csi.plain, &handle, &["NodePublishVolume", "NodeUnpublishVolume"]).await;

    // The driver stops while a pod needs it: FailedMount, then it starts once the driver is back.
    bed.csi.stop_driver(&bed.csi.plain).unwrap();
    let handle = inline_pod(&bed, "waits").await;
    seed(&bed.csi.plain, &handle);
    let events: Api<Event> = bed.ns.api();
    let failed = wait::for_any(&events, Default::default(), STORAGE_TIMEOUT, |e: &Event| {
        e.reason.as_deref() == Some("FailedMount")
            && e.involved_object.name.as_deref() == Some("waits")
            && e.message.as_deref().is_some_and(|m| m.contains("not found in the list of registered CSI drivers"))
    })
    .await;
    assert!(failed.is_some(), "no FailedMount\n{}", bed.node.log_tail(60));
    let pod = api.get("waits").await.unwrap();
    assert_eq!(pods::waiting_reason(&pod, "main"), Some("ContainerCreating"), "{:?}", pod.status);
    bed.csi.start_driver(&bed.csi.plain).unwrap();
    pods::wait_for(&api, "waits", STORAGE_TIMEOUT, || bed.node.log_tail(80), |p| phase(p) == "Succeeded").await;
    delete_and_wait(&bed, "waits").await;
}

#[tokio::test]
async fn kill_9_keeps_published_volumes_and_deletion_after_restart_releases_them() {
    let mut bed = bed("csi-kill").await;
    let claims: Api<PersistentVolumeClaim> = bed.ns.api();
    claims.create(&PostParams::default(), &claim("data", &bed.csi.storage_class)).await.unwrap();
    let handle = bound_handle(&bed, "data").await;
    let driver = bed.csi.plain.clone();
    seed(&driver, &handle);
    let api: Api<Pod> = bed.ns.api();
    let env = serde_json::json!([{ "name": "WATCH_MS", "value": "300" }]);
    reader(&bed, "keeps", &[FILE, "write"], env, pvc_volume("data")).await;
    pods::wait_for(&api, "keeps", STORAGE_TIMEOUT, || bed.node.log_tail(80), |p| pods::running(p, "main")).await;

    // The first run appended its line.
    let file = data_dir(&driver, &handle).join("file.txt");
    let written = |n: usize| std::fs::read_to_string(&file).unwrap_or_default().matches(WRITTEN).count() >= n;
    wait_until("the first run's write", || written(1), &bed).await;

    bed.node.kill();
    bed.node.restart().await;
    // The guest died with the agent; the restarted one, on the same
    // (not re-published) volume, reads the data and appends again.
    wait_until("the second run's write", || written(2), &bed).await;
    let pod =
        pods::wait_for(&api, "keeps", STORAGE_TIMEOUT, || bed.node.log_tail(80), |p| pods::running(p, "main")).await;
    assert_eq!(phase(&pod), "Running");
    // The data is there: the restarted guest reads both lines (seed + its first append).
    let content = std::fs::read_to_string(data_dir(&driver, &handle).join("file.txt")).unwrap();
    assert!(content.starts_with("seed\n") && content.contains(WRITTEN), "{content}");
    let count = |m: &str| node_calls(&driver, &handle).iter().filter(|c| *c == m).count();
    assert_eq!((count("NodeStageVolume"), count("NodePublishVolume")), (1, 1), "staged and published once");

    // /stats/summary carries the driver's NodeGetVolumeStats figures of the
    // claim (statfs of the published directory), found again after the restart.
    let stats = volume_stats(&bed.node.name, "keeps", "data").await;
    assert_eq!(stats["pvcRef"], serde_json::json!({"name": "data", "namespace": bed.ns.name()}), "{stats}");
    let (capacity, used, available) =
        (stats["capacityBytes"].as_u64(), stats["usedBytes"].as_u64(), stats["availableBytes"].as_u64());
    assert!(
        capacity.is_some_and(|c| c > 0 && used.is_some_and(|u| u <= c) && available.is_some_and(|a| a <= c)),
        "{stats}"
    );
    assert!(stats["inodes"].as_u64().is_some_and(|i| i > 0), "{stats}");
    assert_eq!(stats["volumeHealthStats"], serde_json::json!({"abnormal": false}), "{stats}");
    assert!(count("NodeGetVolumeStats") > 0, "{:?}", node_calls(&driver, &handle));
    // The same figures under upstream's metric names on /metrics.
    let metrics = pods::kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{}/proxy/metrics", bed.node.name)]).await;
    let labels = format!("{{namespace=\"{}\",persistentvolumeclaim=\"data\"}}", bed.ns.name());
    for series in
        ["kubelet_volume_stats_capacity_bytes", "kubelet_volume_stats_used_bytes", "kubelet_volume_stats_inodes"]
    {
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{series}{labels} ")))
            .unwrap_or_else(|| panic!("no {series}{labels} in /metrics:\n{metrics}"));
        assert!(value.parse::<u64>().is_ok(), "{series}: {value}");
    }

    delete_and_wait(&bed, "keeps").await;
    assert_eq!(
        (count("NodeUnpublishVolume"), count("NodeUnstageVolume")),
        (1, 1),
        "{:?}",
        node_calls(&driver, &handle)
    );
    let pods_dir = bed.node.root.join("pods").join(pod.metadata.uid.unwrap());
    let removed = tokio::time::timeout(POD_TIMEOUT, async {
        while pods_dir.exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(removed.is_ok(), "pod directory left behind");
}
