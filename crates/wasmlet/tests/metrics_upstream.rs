//! The kubelet's series under upstream's names on a wasmlet node's
//! `/metrics` and `/metrics/probes`, read through the apiserver's node proxy
//! as Prometheus would.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image};

/// The value of the first sample of `series` whose labels contain every
/// `label`, or `None`.
fn sample(text: &str, series: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name_labels, value) = l.rsplit_once(' ')?;
        let name = name_labels.split('{').next()?;
        (name == series && labels.iter().all(|w| name_labels.contains(w))).then(|| value.parse().ok())?
    })
}

async fn scrape(node: &str, path: &str) -> String {
    pods::kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{node}/proxy{path}")]).await
}

#[tokio::test]
async fn upstream_series_and_probe_counts_are_served() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "metrics").await;
    let ns = Namespace::create(&admin_client().await, "metrics").await;
    let image = fixture_image("http-hello").await;
    let mut pod = pods::bare("probed", &node.name, &image, &[], "Always");
    pod["spec"]["containers"][0]["ports"] = serde_json::json!([{ "containerPort": 8080 }]);
    pod["spec"]["containers"][0]["readinessProbe"] =
        serde_json::json!({ "httpGet": { "path": "/healthz", "port": 8080 }, "periodSeconds": 1 });
    pods::create(&ns, pod).await;
    let api = ns.api::<Pod>();
    let ready = |p: &Pod| pods::container(p, "main").is_some_and(|c| c.ready);
    pods::wait_for(&api, "probed", POD_TIMEOUT, || node.log_tail(40), ready).await;

    // The running gauges are recounted every 15 s.
    let counted = tokio::time::timeout(POD_TIMEOUT, async {
        loop {
            let text = scrape(&node.name, "/metrics").await;
            if sample(&text, "kubelet_running_pods", &[]) == Some(1.0) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    let text = counted.unwrap_or_else(|_| panic!("kubelet_running_pods never 1:\n{}", node.log_tail(20)));
    let name = format!("node=\"{}\"", node.name);
    assert_eq!(sample(&text, "kubelet_node_name", &[&name]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "kubelet_running_containers", &["container_state=\"running\""]), Some(1.0), "{text}");
    assert!(sample(&text, "kubelet_pod_start_sli_duration_seconds_count", &[]).is_some_and(|n| n >= 1.0), "{text}");
    let create = ["operation_type=\"create\""];
    assert!(sample(&text, "kubelet_pod_worker_duration_seconds_count", &create).is_some_and(|n| n >= 1.0), "{text}");
    // The test bed's node certificates last a year: a TTL of days, not an expired one.
    let ttl = sample(&text, "kubelet_certificate_manager_client_ttl_seconds", &[]).expect("client TTL");
    assert!(ttl > 86_400.0, "client certificate TTL {ttl}");
    // The node's own API traffic: at least the pod status patch and the lease updates.
    assert!(sample(&text, "rest_client_requests_total", &["code=\"200\"", "method=\"PATCH\""]).is_some(), "{text}");
    assert!(sample(&text, "rest_client_requests_total", &["code=\"200\"", "method=\"PUT\""]).is_some(), "{text}");
    let rss = sample(&text, "process_resident_memory_bytes", &[]).expect("process RSS");
    assert!(rss > 1e6, "RSS {rss}");
    assert!(sample(&text, "process_open_fds", &[]).is_some_and(|n| n > 0.0), "{text}");
    assert!(sample(&text, "process_cpu_seconds_total", &[]).is_some(), "{text}");

    // Upstream's probe counter, labelled per container and result.
    let probe = ["pod=\"probed\"", "container=\"main\"", "probe_type=\"Readiness\"", "result=\"successful\""];
    let probes = scrape(&node.name, "/metrics/probes").await;
    assert!(sample(&probes, "prober_probe_total", &probe).is_some_and(|n| n >= 1.0), "{probes}");

    // The pod's probe series go with the pod.
    api.delete("probed", &DeleteParams::default()).await.unwrap();
    let gone = tokio::time::timeout(POD_TIMEOUT, async {
        while scrape(&node.name, "/metrics/probes").await.contains("pod=\"probed\"") {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the deleted pod's probe series stayed:\n{}", scrape(&node.name, "/metrics/probes").await);
}
