//! Bad inputs get clear errors and disturb nothing else: a missing image, an
//! invalid module, a module that does not link.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::api::ListParams;
use wasmlet_testkit::node::node_ready;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, phase, terminated};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, testbed};

#[tokio::test]
async fn missing_image_backs_off_and_bad_modules_fail_without_disturbing_neighbours() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "fail").await;
    let client = admin_client().await;
    let ns = Namespace::create(&client, "failures").await;
    let api = ns.api::<Pod>();
    let log = || node.log_tail(80);

    // A neighbour that must keep running through all of this.
    let mut neighbour = pods::bare("neighbour", &node.name, &fixture_image("forever").await, &[], "Always");
    neighbour["spec"]["containers"][0]["env"] = serde_json::json!([{ "name": "TICK_MS", "value": "100" }]);
    pods::create(&ns, neighbour).await;
    let before = pods::wait_for(&api, "neighbour", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;
    let started = pods::container(&before, "main").unwrap().state.clone().unwrap().running.unwrap().started_at;

    let missing = format!("{}/fixtures/does-not-exist:v1", testbed().await.registry());
    pods::create(&ns, pods::bare("missing", &node.name, &missing, &[], "Always")).await;
    let pulled =
        pods::wait_for(&api, "missing", POD_TIMEOUT, log, |p| pods::waiting_reason(p, "main") == Some("ErrImagePull"))
            .await;
    let message =
        pods::container(&pulled, "main").unwrap().state.clone().unwrap().waiting.unwrap().message.unwrap_or_default();
    assert!(message.contains("does-not-exist"), "the message names the image: {message}");
    pods::wait_for(&api, "missing", Duration::from_secs(30), log, |p| {
        pods::waiting_reason(p, "main") == Some("ImagePullBackOff")
    })
    .await;

    // imagePullPolicy Never with an image this node never pulled.
    let mut never = pods::bare("never", &node.name, &fixture_image("busy").await, &[], "Always");
    never["spec"]["containers"][0]["imagePullPolicy"] = "Never".into();
    pods::create(&ns, never).await;
    let never = pods::wait_for(&api, "never", POD_TIMEOUT, log, |p| {
        pods::waiting_reason(p, "main") == Some("ErrImageNeverPull")
    })
    .await;
    let waiting = pods::container(&never, "main").unwrap().state.clone().unwrap().waiting.unwrap();
    assert!(waiting.message.unwrap_or_default().contains("pull policy of Never"));

    pods::create(&ns, pods::bare("invalid", &node.name, &fixture_image("invalid").await, &[], "Never")).await;
    let invalid = pods::wait_for(&api, "invalid", POD_TIMEOUT, log, |p| phase(p) == "Failed").await;
    let t = terminated(&invalid, "main").unwrap();
    assert_eq!(t.reason.as_deref(), Some("StartError"));
    let message = t.message.clone().unwrap_or_default();
    assert!(message.contains("invalid WebAssembly"), "{message}");

    pods::create(&ns, pods::bare("unlinked", &node.name, &fixture_image("missing-import").await, &[], "Never")).await;
    let unlinked = pods::wait_for(&api, "unlinked", POD_TIMEOUT, log, |p| phase(p) == "Failed").await;
    let t = terminated(&unlinked, "main").unwrap();
    assert_eq!(t.reason.as_deref(), Some("StartError"));
    assert!(t.message.clone().unwrap_or_default().contains("does_not_exist"), "{t:?}");

    // Events tell the story of the missing image.
    let events: Api<Event> = ns.api();
    let list = events.list(&ListParams::default().fields("involvedObject.name=missing")).await.unwrap();
    let reasons: Vec<&str> = list.items.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert!(reasons.contains(&"Failed") && reasons.contains(&"BackOff"), "{reasons:?}");

    // The neighbour never noticed, and the node stayed Ready.
    let after = api.get("neighbour").await.unwrap();
    let cs = pods::container(&after, "main").unwrap();
    assert_eq!(cs.restart_count, 0);
    assert_eq!(cs.state.clone().unwrap().running.unwrap().started_at, started);
    let nodes: Api<Node> = Api::all(client.clone());
    assert_eq!(node_ready(nodes.get(&node.name).await.ok().as_ref()), Some("True"));
}
