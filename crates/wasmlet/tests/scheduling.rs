//! The taints keep Linux pods off the node; a DaemonSet that tolerates
//! everything is rejected once, with a clear reason, and not run.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, PostParams};
use wasmlet_testkit::pods::{self, phase};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, wait};

#[tokio::test]
async fn linux_pods_stay_off_and_tolerate_all_daemonsets_are_rejected() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "sched").await;
    let ns = Namespace::create(&admin_client().await, "sched").await;
    let api = ns.api::<Pod>();

    // An ordinary pod: no toleration for the wasm taint.
    pods::create(
        &ns,
        serde_json::json!({
            "metadata": { "name": "linux" },
            "spec": { "containers": [{ "name": "c", "image": "docker.io/library/busybox:1.36" }] }
        }),
    )
    .await;
    let pod = pods::wait_for(
        &api,
        "linux",
        Duration::from_secs(30),
        || node.log_tail(40),
        |p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "PodScheduled" && c.status == "False"))
        },
    )
    .await;
    let cond = pod.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "PodScheduled").unwrap();
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert!(cond.message.unwrap_or_default().contains("taint"), "the scheduler names the taint");
    assert!(api.get("linux").await.unwrap().spec.unwrap().node_name.is_none());

    // A DaemonSet that tolerates every taint.
    let ds: DaemonSet = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "everywhere" },
        "spec": {
            "selector": { "matchLabels": { "app": "everywhere" } },
            "template": {
                "metadata": { "labels": { "app": "everywhere" } },
                "spec": {
                    "tolerations": [{ "operator": "Exists" }],
                    "containers": [{ "name": "agent", "image": fixture_image("forever").await }]
                }
            }
        }
    }))
    .unwrap();
    ns.api::<DaemonSet>().create(&PostParams::default(), &ds).await.unwrap();
    let on_node = format!("spec.nodeName={}", node.name);
    let config = kube::runtime::watcher::Config::default().labels("app=everywhere").fields(&on_node);
    let rejected = wait::for_any(&api, config, Duration::from_secs(60), |p: &Pod| phase(p) == "Failed")
        .await
        .unwrap_or_else(|| panic!("no rejected DaemonSet pod\n{}", node.log_tail(60)));
    let status = rejected.status.clone().unwrap();
    assert_eq!(status.reason.as_deref(), Some("UnsupportedWorkload"));
    let message = status.message.unwrap_or_default();
    assert!(message.starts_with("Pod was rejected: ") && message.contains("runtimeClassName"), "{message}");
    // Rejected, not tried: its container never ran.
    assert!(pods::container(&rejected, "agent").and_then(|c| c.state.as_ref()?.running.as_ref()).is_none());
    let events: kube::Api<Event> = ns.api();
    let name = rejected.metadata.name.clone().unwrap();
    let list = events.list(&ListParams::default().fields(&format!("involvedObject.name={name}"))).await.unwrap();
    let reasons: Vec<&str> = list.items.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert!(reasons.contains(&"UnsupportedWorkload"), "{reasons:?}");
    assert!(!reasons.contains(&"Pulling") && !reasons.contains(&"Started"), "a rejected pod was run: {reasons:?}");
}
