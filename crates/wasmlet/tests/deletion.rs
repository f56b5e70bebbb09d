//! Deleting pods: guests stop, the pod object goes away, grace periods are
//! honoured; activeDeadlineSeconds ends a pod.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, kubectl_ok, phase};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, wait};

fn with_pre_stop(mut pod: serde_json::Value, sleep: i64, grace: i64) -> serde_json::Value {
    pod["spec"]["terminationGracePeriodSeconds"] = grace.into();
    pod["spec"]["containers"][0]["lifecycle"] = serde_json::json!({ "preStop": { "sleep": { "seconds": sleep } } });
    pod
}

#[tokio::test]
async fn deleted_pods_stop_and_go_away_within_their_grace_period() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "del").await;
    let ns = Namespace::create(&admin_client().await, "delete").await;
    let api = ns.api::<Pod>();
    let log = || node.log_tail(60);
    let image = fixture_image("forever").await;

    // Plain deletion: the guest stops, the final delete removes the object.
    pods::create(&ns, pods::bare("plain", &node.name, &image, &[], "Always")).await;
    pods::wait_for(&api, "plain", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;
    api.delete("plain", &DeleteParams::default()).await.unwrap();
    let gone = wait::try_for_object(&api, "plain", Duration::from_secs(30), |p| p.is_none()).await;
    assert!(gone.is_ok(), "pod not removed: {gone:?}\n{}", log());
    let on_node = kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{}/proxy/pods", node.name)]).await;
    assert!(!on_node.contains("\"plain\""), "the node still lists the pod: {on_node}");

    // A preStop hook of 10 minutes is cut short by --grace-period=2.
    pods::create(&ns, with_pre_stop(pods::bare("short", &node.name, &image, &[], "Always"), 600, 600)).await;
    pods::wait_for(&api, "short", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;
    kubectl_ok(&["delete", "pod", "short", "-n", ns.name(), "--grace-period=2", "--wait=false"]).await;
    let gone = wait::try_for_object(&api, "short", Duration::from_secs(30), |p| p.is_none()).await;
    assert!(gone.is_ok(), "--grace-period=2 was not honoured\n{}", log());

    // A preStop hook of 8 s within a 30 s grace period keeps the pod Terminating meanwhile.
    pods::create(&ns, with_pre_stop(pods::bare("hooked", &node.name, &image, &[], "Always"), 8, 30)).await;
    pods::wait_for(&api, "hooked", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;
    api.delete("hooked", &DeleteParams::default()).await.unwrap();
    let early = wait::try_for_object(&api, "hooked", Duration::from_secs(4), |p| p.is_none()).await;
    assert!(early.is_err(), "the pod went away before its preStop hook ended");
    let gone = wait::try_for_object(&api, "hooked", Duration::from_secs(40), |p| p.is_none()).await;
    assert!(gone.is_ok(), "pod not removed after its hook\n{}", log());
}

#[tokio::test]
async fn active_deadline_ends_the_pod() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "deadline").await;
    let ns = Namespace::create(&admin_client().await, "deadline").await;
    let api = ns.api::<Pod>();
    let mut pod = pods::bare("bounded", &node.name, &fixture_image("forever").await, &[], "Always");
    pod["spec"]["activeDeadlineSeconds"] = 5.into();
    pods::create(&ns, pod).await;
    let failed = pods::wait_for(&api, "bounded", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Failed").await;
    let status = failed.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("DeadlineExceeded"));
    assert!(status.message.unwrap_or_default().contains("deadline"));
}
