//! The manager against in-process plugins on temporary Unix sockets.

mod plugin;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio_util::sync::CancellationToken;
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;

use self::plugin::{Answer, Plugin, device, register};
use crate::{Amounts, Config, DeviceError, DeviceManager};

const RESOURCE: &str = "wasmlet.test/dev";
/// How long a condition may take to hold (real time: gRPC over sockets).
const WAIT: Duration = Duration::from_secs(10);

struct Bed {
    dir: tempfile::TempDir,
    manager: DeviceManager,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Bed {
    async fn start() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    async fn start_in(dir: tempfile::TempDir) -> Bed {
        let mut config = Config::new(dir.path());
        config.dir = dir.path().to_owned();
        config.stop_grace = Duration::from_secs(300);
        let manager = DeviceManager::new(config);
        let cancel = CancellationToken::new();
        let (m, c) = (manager.clone(), cancel.clone());
        let task = tokio::spawn(async move { m.run(c).await.expect("manager runs") });
        wait_for(|| dir.path().join(api::KUBELET_SOCKET).exists(), "kubelet.sock").await;
        Bed { dir, manager, cancel, task }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn plugin(&self, name: &str, ids: &[&str], options: api::DevicePluginOptions) -> Plugin {
        Plugin::start(&self.path().join(name), ids, options)
    }

    async fn stop(self) -> tempfile::TempDir {
        self.cancel.cancel();
        self.task.await.unwrap();
        self.dir
    }

    async fn capacity_becomes(&self, want: Amounts) {
        let mut rx = self.manager.capacity();
        let ok = tokio::time::timeout(WAIT, rx.wait_for(|c| c.resources.get(RESOURCE) == Some(&want))).await.is_ok();
        assert!(ok, "capacity never became {want:?}: {:?}", *rx.borrow());
    }
}

async fn wait_for(mut check: impl FnMut() -> bool, what: &str) {
    let ok = tokio::time::timeout(WAIT, async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "{what} never happened");
}

fn pod(uid: &str, containers: &[(&str, i64)]) -> Pod {
    let containers: Vec<serde_json::Value> = containers
        .iter()
        .map(|(name, n)| serde_json::json!({"name": name, "resources": {"limits": {RESOURCE: n.to_string()}}}))
        .collect();
    serde_json::from_value(
        serde_json::json!({"metadata": {"name": uid, "uid": uid}, "spec": {"containers": containers}}),
    )
    .unwrap()
}

fn held(m: &DeviceManager, uid: &str) -> Vec<String> {
    m.allocations().into_iter().filter(|a| a.pod_uid == uid).flat_map(|a| a.devices).collect()
}

#[tokio::test]
async fn registered_devices_show_in_capacity_and_health_is_followed() {
    let bed = Bed::start().await;
    let plugin = bed.plugin("p.sock", &["d0", "d1", "d2", "d3"], Default::default());
    register(bed.path(), RESOURCE, "p.sock", api::VERSION).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 4, allocatable: 4 }).await;

    plugin.devices.send_replace(vec![device("d0", true), device("d1", false), device("d2", true), device("d3", true)]);
    bed.capacity_becomes(Amounts { capacity: 4, allocatable: 3 }).await;
    bed.stop().await;
}

#[tokio::test]
async fn registration_refuses_bad_versions_names_and_endpoints() {
    let bed = Bed::start().await;
    let err = register(bed.path(), RESOURCE, "p.sock", "v1alpha").await.unwrap_err();
    assert_eq!(
        err.message(),
        "requested API version \"v1alpha\" is not supported by kubelet. Supported version is [\"v1beta1\"]"
    );
    let err = register(bed.path(), "cpu", "p.sock", api::VERSION).await.unwrap_err();
    assert_eq!(err.message(), "the ResourceName \"cpu\" is invalid");
    let err = register(bed.path(), RESOURCE, "../elsewhere.sock", api::VERSION).await.unwrap_err();
    assert!(err.message().contains("is not the name of a socket"), "{}", err.message());
    let err = register(bed.path(), RESOURCE, "nobody.sock", api::VERSION).await.unwrap_err();
    assert!(err.message().starts_with("failed to dial device plugin"), "{}", err.message());
    assert!(bed.manager.capacity().borrow().resources.is_empty(), "nothing registered");
    bed.stop().await;
}

#[tokio::test]
async fn a_plugin_that_dies_mid_list_and_watch_goes_unhealthy_then_to_zero_after_the_grace_period() {
    let bed = Bed::start().await;
    let plugin = bed.plugin("p.sock", &["d0", "d1"], Default::default());
    register(bed.path(), RESOURCE, "p.sock", api::VERSION).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 2, allocatable: 2 }).await;

    plugin.kill();
    bed.capacity_becomes(Amounts { capacity: 2, allocatable: 0 }).await;

    // Virtual time from here: nothing else talks to a socket.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(299)).await;
    tokio::task::yield_now().await;
    assert_eq!(bed.manager.capacity().borrow().resources[RESOURCE], Amounts { capacity: 2, allocatable: 0 });
    tokio::time::advance(Duration::from_secs(2)).await;
    bed.capacity_becomes(Amounts::default()).await;
    tokio::time::resume();

    // Capacity 0 for good: a pod asking for it is out of it.
    let err = bed.manager.admit(&pod("late", &[("main", 1)])).await.unwrap_err();
    assert_eq!(err.reason, format!("OutOf{RESOURCE}"));
    assert_eq!(
        err.message,
        format!("Node didn't have enough resource: {RESOURCE}, requested: 1, used: 0, capacity: 0")
    );

    // The plugin comes back: the resource with it.
    let _back = bed.plugin("p2.sock", &["d0", "d1"], Default::default());
    register(bed.path(), RESOURCE, "p2.sock", api::VERSION).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 2, allocatable: 2 }).await;
    bed.stop().await;
}

#[tokio::test]
async fn admission_allocates_free_devices_and_refuses_as_upstream() {
    let bed = Bed::start().await;
    let plugin = bed.plugin("p.sock", &["d0", "d1", "d2", "d3"], Default::default());
    register(bed.path(), RESOURCE, "p.sock", api::VERSION).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 4, allocatable: 4 }).await;

    bed.manager.admit(&pod("first", &[("main", 2)])).await.unwrap();
    let first = held(&bed.manager, "first");
    assert_eq!(first.len(), 2);
    assert_eq!(plugin.calls.lock().unwrap().allocate, vec![first.clone()]);
    assert!(plugin.calls.lock().unwrap().preferred.is_empty(), "not offered, not asked");

    let err = bed.manager.admit(&pod("big", &[("main", 3)])).await.unwrap_err();
    assert_eq!(err.reason, "UnexpectedAdmissionError");
    assert_eq!(
        err.message,
        format!(
            "Allocate failed due to requested number of devices unavailable for {RESOURCE}. Requested: 3, Available: 2, which is unexpected"
        )
    );
    assert!(held(&bed.manager, "big").is_empty());

    bed.manager.admit(&pod("second", &[("a", 1), ("b", 1)])).await.unwrap();
    let second = held(&bed.manager, "second");
    assert_eq!(second.len(), 2);
    assert!(second.iter().all(|d| !first.contains(d)), "no device twice: {first:?} {second:?}");

    // Admitting again changes nothing (a restarted agent re-admits).
    bed.manager.admit(&pod("first", &[("main", 2)])).await.unwrap();
    assert_eq!(held(&bed.manager, "first"), first);

    bed.manager.release("first");
    bed.manager.admit(&pod("big", &[("main", 2)])).await.unwrap();
    let big = held(&bed.manager, "big");
    assert_eq!(big.iter().collect::<std::collections::BTreeSet<_>>(), first.iter().collect());
    bed.stop().await;
}

#[tokio::test]
async fn the_plugins_preference_is_asked_for_and_honoured() {
    let bed = Bed::start().await;
    let options = api::DevicePluginOptions { get_preferred_allocation_available: true, pre_start_required: false };
    let plugin = bed.plugin("p.sock", &["d0", "d1", "d2", "d3"], options);
    *plugin.preferred.lock().unwrap() = vec!["d3".into(), "gone".into(), "d1".into()];
    register(bed.path(), RESOURCE, "p.sock", api::VERSION).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 4, allocatable: 4 }).await;

    bed.manager.admit(&pod("p", &[("main", 2)])).await.unwrap();
    assert_eq!(held(&bed.manager, "p"), ["d1", "d3"]);
    let preferred = plugin.calls.lock().unwrap().preferred.clone();
    assert_eq!(preferred, vec![(vec!["d0".into(), "d1".into(), "d2".into(), "d3".into()], vec![], 2)]);
    bed.stop().await;
}

#[tokio::test]
async fn bad_allocate_answers_refuse_the_pod_and_keep_nothing() {
    let bed = Bed::start().await;
    let plugin = bed.plugin("p.sock", &["d0", "d1"], Default::default());
    register(bed.path(), RESOURCE, "p.sock", api::VERSION).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 2, allocatable: 2 }).await;

    *plugin.answer.lock().unwrap() = Answer::Fail("device on fire".into());
    let err = bed.manager.admit(&pod("p", &[("main", 1)])).await.unwrap_err();
    assert_eq!(err.reason, "UnexpectedAdmissionError");
    assert_eq!(
        err.message,
        "Allocate failed due to rpc error: code = Unknown desc = device on fire, which is unexpected"
    );

    *plugin.answer.lock().unwrap() = Answer::Empty;
    let err = bed.manager.admit(&pod("p", &[("main", 1)])).await.unwrap_err();
    assert_eq!(err.message, "Allocate failed due to no containers return in allocation response, which is unexpected");
    assert!(bed.manager.allocations().is_empty());

    *plugin.answer.lock().unwrap() = Answer::Devices;
    bed.manager.admit(&pod("p", &[("main", 2)])).await.unwrap();
    bed.stop().await;
}

#[tokio::test]
async fn a_container_gets_the_merged_answers_after_pre_start() {
    let bed = Bed::start().await;
    let options = api::DevicePluginOptions { get_preferred_allocation_available: false, pre_start_required: true };
    let plugin = bed.plugin("p.sock", &["d0", "d1"], options);
    register(bed.path(), RESOURCE, "p.sock", api::VERSION).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 2, allocatable: 2 }).await;

    let p = pod("p", &[("main", 2)]);
    bed.manager.admit(&p).await.unwrap();
    let main = &p.spec.as_ref().unwrap().containers[0];
    let got = bed.manager.container_devices(&p, main).await.unwrap();
    assert_eq!(got.resources, [RESOURCE]);
    assert_eq!(got.envs, [("DEV_d0".into(), "d0".into()), ("DEV_d1".into(), "d1".into())]);
    assert_eq!(got.mounts.len(), 1, "one mount per container path: {:?}", got.mounts);
    assert!(got.mounts[0].read_only);
    assert_eq!(got.device_nodes.len(), 1);
    assert_eq!(got.cdi_devices, ["wasmlet.test/dev=d0", "wasmlet.test/dev=d1"]);
    assert_eq!(plugin.calls.lock().unwrap().pre_start, vec![vec!["d0".to_string(), "d1".to_string()]]);

    *plugin.pre_start_error.lock().unwrap() = Some("not ready".into());
    let err = bed.manager.container_devices(&p, main).await.unwrap_err();
    assert_eq!(err, DeviceError::PreStart("rpc error: code = FailedPrecondition desc = not ready".into()));
    bed.stop().await;
}

#[tokio::test]
async fn allocations_survive_a_restart_and_are_never_handed_out_twice() {
    let bed = Bed::start().await;
    let plugin = bed.plugin("p.sock", &["d0", "d1", "d2", "d3"], Default::default());
    register(bed.path(), RESOURCE, "p.sock", api::VERSION).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 4, allocatable: 4 }).await;
    bed.manager.admit(&pod("running", &[("main", 2)])).await.unwrap();
    bed.manager.admit(&pod("deleted-while-down", &[("main", 1)])).await.unwrap();
    let running = held(&bed.manager, "running");
    let dir = bed.stop().await;

    // A new agent: the checkpoint has the allocations; the plugin's socket
    // was removed, so it must register again before devices count.
    let bed = Bed::start_in(dir).await;
    assert!(!plugin.socket.exists(), "stale plugin sockets are removed at start");
    assert_eq!(bed.manager.capacity().borrow().resources[RESOURCE], Amounts::default());
    assert_eq!(held(&bed.manager, "running"), running);
    bed.manager.retain(|uid| uid == "running");
    assert!(held(&bed.manager, "deleted-while-down").is_empty());

    let _again = bed.plugin("p.sock", &["d0", "d1", "d2", "d3"], Default::default());
    register(bed.path(), RESOURCE, "p.sock", api::VERSION).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 4, allocatable: 4 }).await;
    let err = bed.manager.admit(&pod("three", &[("main", 3)])).await.unwrap_err();
    assert!(err.message.contains("Requested: 3, Available: 2"), "{}", err.message);
    bed.manager.admit(&pod("two", &[("main", 2)])).await.unwrap();
    let two = held(&bed.manager, "two");
    assert!(two.iter().all(|d| !running.contains(d)), "{running:?} {two:?}");
    // The running pod's container gets its answers back without a new Allocate.
    let p = pod("running", &[("main", 2)]);
    let got = bed.manager.container_devices(&p, &p.spec.as_ref().unwrap().containers[0]).await.unwrap();
    assert_eq!(got.envs.len(), 2);
    bed.stop().await;
}

#[tokio::test]
async fn plugins_from_the_plugin_watcher_are_validated_and_followed() {
    let bed = Bed::start().await;
    let handler = bed.manager.handler();
    let socket = bed.path().join("watched.sock");
    let plugin = |versions: &[&str], name: &str| wasmlet_plugins::Plugin {
        socket: socket.clone(),
        kind: wasmlet_plugins::DEVICE_PLUGIN.into(),
        name: name.into(),
        endpoint: socket.clone(),
        versions: versions.iter().map(|v| v.to_string()).collect(),
    };
    let err = handler.validate(&plugin(&["v1alpha", "v2"], RESOURCE)).unwrap_err();
    assert_eq!(err.to_string(), "manager version, v1beta1, is not among plugin supported versions [v1alpha v2]");
    let err = handler.validate(&plugin(&["v1beta1"], "nodomain")).unwrap_err();
    assert!(err.to_string().contains("the ResourceName \"nodomain\" is invalid"), "{err}");

    let p = plugin(&["v1beta1"], RESOURCE);
    handler.validate(&p).unwrap();
    let _served = Plugin::start(&socket, &["d0"], Default::default());
    handler.register(&p).await.unwrap();
    bed.capacity_becomes(Amounts { capacity: 1, allocatable: 1 }).await;
    handler.deregister(&p).await;
    bed.capacity_becomes(Amounts { capacity: 1, allocatable: 0 }).await;
    bed.stop().await;
}
