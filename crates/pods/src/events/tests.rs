use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::events::EventType;
use tokio_util::sync::CancellationToken;

use super::Events;
use crate::mock_api;

fn pod() -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": "p", "namespace": "ns", "uid": "u-1" },
    }))
    .expect("a pod")
}

/// Yields until `cond` holds (virtual time does not move meanwhile).
async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("condition not reached");
}

fn reasons(log: &mock_api::Log) -> Vec<String> {
    log.all().iter().filter_map(|s| s.body["reason"].as_str().map(str::to_owned)).collect()
}

#[tokio::test(start_paused = true)]
async fn events_are_sent_in_order_by_the_sender() {
    let (client, log) = mock_api::client(|seen| {
        let body = seen.body.clone();
        Box::pin(async move { (201, body) })
    });
    let metrics = Arc::new(wasmlet_metrics::Metrics::new());
    let events = Events::new(client, "node-1", metrics);
    let pod = pod();
    // Recorded before the sender runs: they wait in the queue.
    events.normal(&pod, Some("main"), "Pulled", "pulled".into()).await;
    events.normal(&pod, Some("main"), "Created", "created".into()).await;
    events.warning(&pod, None, "Failed", "x".repeat(2000)).await;
    assert!(log.all().is_empty(), "nothing is sent by recording");
    let stop = CancellationToken::new();
    let sender = tokio::spawn({
        let (events, stop) = (events.clone(), stop.clone());
        async move { events.run(stop).await }
    });
    until(|| log.all().len() == 3).await;
    stop.cancel();
    sender.await.expect("the sender ends");
    assert_eq!(reasons(&log), ["Pulled", "Created", "Failed"]);
    let seen = log.all();
    assert!(seen.iter().all(|s| s.method == "POST" && s.path == "/apis/events.k8s.io/v1/namespaces/ns/events"));
    assert_eq!(seen[0].body["regarding"]["fieldPath"], "spec.containers{main}");
    assert_eq!(seen[0].body["reportingInstance"], "node-1");
    assert_eq!(seen[2].body["type"], "Warning");
    assert!(seen[2].body["note"].as_str().is_some_and(|n| n.len() < 1010), "long notes are truncated");
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_and_counts_without_waiting() {
    // An API server that never answers.
    let (client, log) = mock_api::client(|_| Box::pin(std::future::pending()));
    let metrics = Arc::new(wasmlet_metrics::Metrics::new());
    let events = Events::with_capacity(client, "node-1", metrics.clone(), 2);
    let pod = pod();
    let stop = CancellationToken::new();
    let sender = tokio::spawn({
        let (events, stop) = (events.clone(), stop.clone());
        async move { events.run(stop).await }
    });
    events.record(&pod, None, EventType::Normal, "First", String::new());
    until(|| log.all().len() == 1).await; // in flight, hanging
    for i in 0..5 {
        events.record(&pod, None, EventType::Normal, &format!("E{i}"), String::new());
    }
    // Two fit in the queue, three are dropped.
    let text = metrics.render();
    assert!(text.lines().any(|l| l == "wasmlet_events_dropped_total 3"), "{text}");
    // The hanging post times out; the queued ones are then tried in order.
    tokio::time::sleep(Duration::from_secs(6)).await;
    until(|| log.all().len() == 2).await;
    assert_eq!(reasons(&log), ["First", "E0"]);
    stop.cancel();
    sender.await.expect("the sender ends");
}
