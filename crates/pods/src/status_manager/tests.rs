use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::StatusManager;
use crate::mock_api;

const LIMIT: Duration = Duration::from_secs(60);

fn pod_json() -> serde_json::Value {
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p", "namespace": "ns" } })
}

async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

fn start(manager: &StatusManager) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (manager, stop) = (manager.clone(), stop.clone());
        async move { manager.run(stop).await }
    });
    (stop, task)
}

#[tokio::test(start_paused = true)]
async fn statuses_set_during_a_patch_are_coalesced_into_the_latest() {
    let gate = Arc::new(Semaphore::new(0));
    let (client, log) = mock_api::client({
        let gate = gate.clone();
        move |_| {
            let gate = gate.clone();
            Box::pin(async move {
                gate.acquire().await.expect("open").forget();
                (200, pod_json())
            })
        }
    });
    let manager = StatusManager::new(client, Arc::new(wasmlet_metrics::Metrics::new()));
    let (stop, task) = start(&manager);
    let v1 = manager.set("u-1", "ns", "p", json!({ "phase": "Pending" }));
    until(|| log.all().len() == 1).await;
    // The first patch hangs; three more statuses come meanwhile.
    manager.set("u-1", "ns", "p", json!({ "phase": "Pending", "n": 2 }));
    manager.set("u-1", "ns", "p", json!({ "phase": "Pending", "n": 3 }));
    let v4 = manager.set("u-1", "ns", "p", json!({ "phase": "Running" }));
    assert!(v4 > v1);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(log.all().len(), 1, "one patch of a pod at a time");
    gate.add_permits(10);
    assert!(manager.wait_written("u-1", v4, LIMIT).await);
    let seen = log.all();
    assert_eq!(seen.len(), 2, "the three later statuses are written as one: {seen:?}");
    assert!(seen.iter().all(|s| s.method == "PATCH" && s.path == "/api/v1/namespaces/ns/pods/p/status"));
    assert_eq!(seen[0].body, json!({ "metadata": { "uid": "u-1" }, "status": { "phase": "Pending" } }));
    assert_eq!(seen[1].body, json!({ "metadata": { "uid": "u-1" }, "status": { "phase": "Running" } }));
    stop.cancel();
    task.await.expect("the writers end");
}

#[tokio::test(start_paused = true)]
async fn failed_patches_are_retried_and_counted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (client, log) = mock_api::client({
        let calls = calls.clone();
        move |_| {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            Box::pin(async move {
                if first {
                    (
                        500,
                        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500,
                                  "reason": "InternalError", "message": "etcd is sad" }),
                    )
                } else {
                    (200, pod_json())
                }
            })
        }
    });
    let metrics = Arc::new(wasmlet_metrics::Metrics::new());
    let manager = StatusManager::new(client, metrics.clone());
    let (stop, task) = start(&manager);
    let v = manager.set("u-1", "ns", "p", json!({ "phase": "Succeeded" }));
    assert!(manager.wait_written("u-1", v, LIMIT).await, "written after a retry");
    assert_eq!(log.all().len(), 2);
    let text = metrics.render();
    assert!(text.lines().any(|l| l == "wasmlet_api_errors_total{operation=\"patch_pod_status\"} 1"), "{text}");
    stop.cancel();
    task.await.expect("the writers end");
}

#[tokio::test(start_paused = true)]
async fn a_gone_pod_ends_the_wait_and_unwritten_waits_time_out() {
    let (client, log) = mock_api::client(|seen| {
        let gone = seen.path.contains("/pods/gone/");
        Box::pin(async move {
            if gone {
                (
                    404,
                    json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                              "reason": "NotFound", "message": "pods \"gone\" not found" }),
                )
            } else {
                std::future::pending().await
            }
        })
    });
    let manager = StatusManager::new(client, Arc::new(wasmlet_metrics::Metrics::new()));
    let (stop, task) = start(&manager);
    let v = manager.set("u-gone", "ns", "gone", json!({ "phase": "Failed" }));
    assert!(manager.wait_written("u-gone", v, LIMIT).await);
    // An API server that never answers: the wait gives up at its limit.
    let v = manager.set("u-hang", "ns", "hang", json!({ "phase": "Failed" }));
    assert!(!manager.wait_written("u-hang", v, Duration::from_secs(3)).await);
    assert_eq!(log.all().len(), 2, "nothing is retried while a patch is under way");
    // A forgotten pod is no longer waited for.
    manager.forget("u-hang");
    assert!(manager.wait_written("u-hang", v, Duration::from_secs(1)).await);
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), task).await.expect("writers stop").expect("no panic");
}
