//! Registry faults (`docs/reliability.md`): for every mode of the chaos
//! proxy, a pod whose image is pulled through it shows `ErrImagePull` and
//! `ImagePullBackOff` naming the cause, and runs once the proxy passes
//! through. The image store never keeps a blob whose digest does not match,
//! the neighbour keeps running and the node stays Ready.
//!
//! One proxy per mode, so that the pulls run side by side and the whole
//! file takes about one image-pull back-off (10 s) plus the recovery.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::api::ListParams;
use wasmlet_oci::{ClientOptions, Digest, Layout, NODE_STORE_DIR, RegistryAuth, Store};
use wasmlet_testbed::registry_proxy::{Mode, RegistryProxy};
use wasmlet_testkit::node::{Options, node_ready};
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, fixtures_dir, testbed};

/// The node's `--image-pull-progress-deadline`: short, so the trickle fails fast.
const PROGRESS_DEADLINE: &str = "3s";

/// What the pod's message must say for each fault.
fn expected_cause(mode: Mode) -> &'static [&'static str] {
    match mode {
        Mode::ServerError(_) => &["registry answered 503 Service Unavailable for the manifest"],
        Mode::Reset => &["connection reset while reading blob sha256:"],
        Mode::Truncate => &["is truncated (got "],
        Mode::Corrupt => &["digest mismatch: expected sha256:"],
        Mode::Trickle => &["no progress for 3s"],
        Mode::Flap401 => &["pull access denied: the registry answered 401 Unauthorized"],
        Mode::Pass => &[],
    }
}

/// `forever.wasm` with a custom section naming `label`: the same program
/// under a digest of its own, so no fault pod finds its blob in the store.
fn variant(wasm: &[u8], label: &str) -> Vec<u8> {
    let name = b"wasmlet-fault";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(label.as_bytes());
    assert!(section.len() < 128, "one-byte LEB128 size");
    let mut out = wasm.to_vec();
    out.extend_from_slice(&[0, section.len() as u8]);
    out.extend_from_slice(&section);
    out
}

#[tokio::test]
async fn every_registry_fault_fails_clearly_and_recovers_through_pass_through() {
    let tb = testbed().await;
    let upstream: SocketAddr = tb.registry().parse().unwrap();
    let faults: Vec<Mode> = Mode::ALL.into_iter().filter(|m| *m != Mode::Pass).collect();

    // Images pushed straight to the bed's registry, one per fault.
    let forever = std::fs::read(fixtures_dir().join("forever.wasm")).expect("the forever fixture is built");
    let push_client =
        wasmlet_oci::client(ClientOptions { insecure_registries: vec![tb.registry()], ..ClientOptions::default() })
            .unwrap();
    let mut cases = Vec::new();
    for mode in &faults {
        let wasm = variant(&forever, &mode.label());
        let repo = format!("faults-registry/forever-{}:v1", mode.label());
        let reference = format!("{}/{repo}", tb.registry()).parse().unwrap();
        wasmlet_oci::push_wasm(&push_client, &reference, wasm.clone(), Layout::Cncf, &RegistryAuth::Anonymous)
            .await
            .unwrap_or_else(|e| panic!("pushing {repo}: {e}"));
        let proxy = RegistryProxy::start(upstream, *mode).await.unwrap();
        let image = format!("{}/{repo}", proxy.addr());
        cases.push((*mode, proxy, image, Digest::of(&wasm)));
    }

    let options = Options {
        args: vec![format!("--image-pull-progress-deadline={PROGRESS_DEADLINE}")],
        insecure_registries: cases.iter().map(|(_, p, _, _)| p.addr().to_string()).collect(),
        ..Options::default()
    };
    let node = WasmletNode::start_with_options(env!("CARGO_BIN_EXE_wasmlet"), "regfault", options).await;
    let client = admin_client().await;
    let ns = Namespace::create(&client, "faults-registry").await;
    let api = ns.api::<Pod>();
    let log = || node.log_tail(80);

    // A neighbour pulled straight from the registry, which must not notice.
    pods::create(&ns, pods::bare("neighbour", &node.name, &fixture_image("forever").await, &[], "Always")).await;
    let before = pods::wait_for(&api, "neighbour", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;
    let started = pods::container(&before, "main").unwrap().state.clone().unwrap().running.unwrap().started_at;

    for (mode, _, image, _) in &cases {
        pods::create(&ns, pods::bare(&mode.label(), &node.name, image, &[], "Always")).await;
    }
    let created = Instant::now();

    // Each pull fails, naming its cause, and backs off.
    let failing = cases.iter().map(|(mode, _, _, _)| {
        let (api, name) = (api.clone(), mode.label());
        async move {
            let pod = pods::wait_for(&api, &name, POD_TIMEOUT, log, |p| {
                pods::waiting_reason(p, "main") == Some("ImagePullBackOff")
            })
            .await;
            let waiting = pods::container(&pod, "main").unwrap().state.clone().unwrap().waiting.unwrap();
            eprintln!("{name}: ImagePullBackOff {:.1}s after creation", created.elapsed().as_secs_f64());
            waiting.message.unwrap_or_default()
        }
    });
    let messages = futures::future::join_all(failing).await;
    let events: Api<Event> = ns.api();
    for ((mode, proxy, _, _), message) in cases.iter().zip(&messages) {
        eprintln!("{mode}: {message}");
        assert!(
            message.contains(": ErrImagePull: Failed to pull image"),
            "{mode}: the back-off names the failure: {message}"
        );
        for cause in expected_cause(*mode) {
            assert!(message.contains(cause), "{mode}: expected {cause:?} in {message:?}");
        }
        assert!(proxy.faults() > 0, "{mode}: the proxy injected nothing");
        let list = events.list(&ListParams::default().fields(&format!("involvedObject.name={}", mode.label()))).await;
        let failed: Vec<String> = list
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Failed"))
            .filter_map(|e| e.message)
            .collect();
        let cause = expected_cause(*mode)[0];
        assert!(failed.iter().any(|m| m.contains(cause)), "{mode}: no Failed event with {cause:?}: {failed:?}");
    }

    // Nothing a fault delivered was kept.
    let store = Store::open(node.root.join(NODE_STORE_DIR)).unwrap();
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{report}");
    for (mode, _, _, digest) in &cases {
        assert!(!report.good.contains(digest), "{mode}: a faulty pull left its blob in the store");
    }

    // Pass-through: every pod runs at its next retry.
    for (_, proxy, _, _) in &cases {
        proxy.set_mode(Mode::Pass);
    }
    let switched = Instant::now();
    let recovering = cases.iter().map(|(mode, _, _, _)| {
        let (api, name) = (api.clone(), mode.label());
        async move {
            // At most the second back-off (20 s) plus a pull and a start.
            pods::wait_for(&api, &name, Duration::from_secs(45), log, |p| pods::running(p, "main")).await;
            (name, switched.elapsed())
        }
    });
    for (name, took) in futures::future::join_all(recovering).await {
        eprintln!("recovery after pass-through: {name} running in {:.1}s", took.as_secs_f64());
    }

    // Every image is now in the store, each blob matching its digest.
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{report}");
    for (mode, _, _, digest) in &cases {
        assert!(report.good.contains(digest), "{mode}: {digest} missing from the store: {report}");
    }

    // The neighbour never noticed, and the node stayed Ready.
    let after = api.get("neighbour").await.unwrap();
    let cs = pods::container(&after, "main").unwrap();
    assert_eq!(cs.restart_count, 0);
    assert_eq!(cs.state.clone().unwrap().running.unwrap().started_at, started);
    let nodes: Api<Node> = Api::all(client.clone());
    assert_eq!(node_ready(nodes.get(&node.name).await.ok().as_ref()), Some("True"));
}
