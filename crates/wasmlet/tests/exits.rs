//! Exit codes and traps are reported exactly; restart policies behave as upstream.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::ListParams;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, phase, terminated};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, wait};

async fn node() -> WasmletNode {
    WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "exits").await
}

#[tokio::test]
async fn exit_codes_and_traps_are_exact() {
    let node = node().await;
    let ns = Namespace::create(&admin_client().await, "codes").await;
    let api = ns.api::<Pod>();
    pods::create(&ns, pods::bare("zero", &node.name, &fixture_image("exit-code").await, &["0"], "Never")).await;
    pods::create(&ns, pods::bare("three", &node.name, &fixture_image("exit-code").await, &["3"], "Never")).await;
    pods::create(&ns, pods::bare("trap", &node.name, &fixture_image("trap").await, &[], "Never")).await;

    let log = || node.log_tail(60);
    let zero = pods::wait_for(&api, "zero", POD_TIMEOUT, log, |p| phase(p) == "Succeeded").await;
    let t = terminated(&zero, "main").unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));

    let three = pods::wait_for(&api, "three", POD_TIMEOUT, log, |p| phase(p) == "Failed").await;
    let t = terminated(&three, "main").unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));

    let trap = pods::wait_for(&api, "trap", POD_TIMEOUT, log, |p| phase(p) == "Failed").await;
    let t = terminated(&trap, "main").unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (134, Some("Error")));
    let message = t.message.clone().unwrap_or_default();
    assert!(message.contains("unreachable"), "the trap is in the message: {message}");
    let logs = api.logs("trap", &Default::default()).await.unwrap();
    assert!(logs.contains("about to trap"), "{logs}");
}

#[tokio::test]
async fn on_failure_restarts_with_back_off_and_a_growing_count() {
    let node = node().await;
    let ns = Namespace::create(&admin_client().await, "onfail").await;
    let api = ns.api::<Pod>();
    pods::create(&ns, pods::bare("crash", &node.name, &fixture_image("exit-code").await, &["3"], "OnFailure")).await;
    // First restart at once, then 10 s, 20 s: three restarts within about 35 s.
    let pod = pods::wait_for(
        &api,
        "crash",
        Duration::from_secs(90),
        || node.log_tail(60),
        |p| {
            pods::container(p, "main").is_some_and(|c| c.restart_count >= 3)
                && pods::waiting_reason(p, "main") == Some("CrashLoopBackOff")
        },
    )
    .await;
    assert_eq!(phase(&pod), "Running", "OnFailure with a failing container keeps the pod Running");
    let cs = pods::container(&pod, "main").unwrap();
    let waiting = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert!(waiting.message.as_deref().unwrap_or_default().starts_with("back-off "), "{waiting:?}");
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 3);
    let events: Api<Event> = ns.api();
    let list = events.list(&ListParams::default().fields("involvedObject.name=crash")).await.unwrap();
    assert!(
        list.items.iter().any(|e| e.reason.as_deref() == Some("BackOff") && e.type_.as_deref() == Some("Warning")),
        "a BackOff warning event"
    );
    // Logs of the previous run are there too.
    let previous = api.logs("crash", &kube::api::LogParams { previous: true, ..Default::default() }).await.unwrap();
    assert!(previous.contains("exiting with 3"), "{previous}");
}

#[tokio::test]
async fn never_does_not_restart_and_succeeded_containers_stay_done() {
    let node = node().await;
    let ns = Namespace::create(&admin_client().await, "never").await;
    let api = ns.api::<Pod>();
    pods::create(&ns, pods::bare("once", &node.name, &fixture_image("exit-code").await, &["3"], "Never")).await;
    let failed = pods::wait_for(&api, "once", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Failed").await;
    assert_eq!(pods::container(&failed, "main").unwrap().restart_count, 0);
    let restarted = wait::try_for_object(&api, "once", Duration::from_secs(15), |p| {
        p.and_then(|p| pods::container(p, "main")).is_some_and(|c| c.restart_count > 0)
    })
    .await;
    assert!(restarted.is_err(), "a Never pod was restarted");

    // Two containers, OnFailure: the one that exits 0 stays terminated, the other runs on.
    let mut spec = pods::bare("pair", &node.name, &fixture_image("forever").await, &[], "OnFailure");
    spec["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "name": "done", "image": fixture_image("exit-code").await, "args": ["0"] }));
    pods::create(&ns, spec).await;
    let pod = pods::wait_for(
        &api,
        "pair",
        POD_TIMEOUT,
        || node.log_tail(60),
        |p| pods::running(p, "main") && terminated(p, "done").is_some(),
    )
    .await;
    assert_eq!(phase(&pod), "Running");
    assert_eq!(terminated(&pod, "done").unwrap().exit_code, 0);
    assert_eq!(pods::container(&pod, "done").unwrap().restart_count, 0);
}
