//! The agent's own metrics (`/metrics`).

use std::time::Duration;

use wasmlet_metrics::{CompileCounts, Metrics, PodPhase};

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn recorded_values_are_rendered() {
    let metrics = Metrics::new();
    metrics.set_pods(PodPhase::Running, 2);
    metrics.pod_phase_changed(None, Some(PodPhase::Pending));
    metrics.pod_phase_changed(Some(PodPhase::Pending), Some(PodPhase::Running));
    metrics.image_pull(Duration::from_millis(300), true);
    metrics.image_pull(Duration::from_millis(10), false);
    metrics.container_started(Duration::from_millis(40));
    metrics.container_restarted();
    metrics.api_error("patch_pod_status");
    metrics.api_error("patch_pod_status");
    metrics.eviction("allocatableMemory.available");
    metrics.eviction("allocatableMemory.available");
    metrics.eviction("nodefs.available");
    metrics.server_certificate_renew_error();
    metrics.kubelet_api_start_error("bind");
    metrics.set_compile_source(|| CompileCounts { compiles: 3, cache_hits: 7, failures: 1 });
    let text = metrics.render();
    let lines = lines(&text);
    for expected in [
        "# TYPE wasmlet_pods gauge",
        "wasmlet_pods{phase=\"Running\"} 3",
        "wasmlet_pods{phase=\"Pending\"} 0",
        "# TYPE wasmlet_image_pull_duration_seconds histogram",
        "wasmlet_image_pull_duration_seconds_count 1",
        "wasmlet_image_pull_duration_seconds_bucket{le=\"0.25\"} 0",
        "wasmlet_image_pull_duration_seconds_bucket{le=\"0.5\"} 1",
        "wasmlet_image_pull_errors_total 1",
        "wasmlet_container_start_duration_seconds_bucket{le=\"0.05\"} 1",
        "wasmlet_container_restarts_total 1",
        "wasmlet_compiles_total 3",
        "wasmlet_compile_cache_hits_total 7",
        "wasmlet_compile_failures_total 1",
        "wasmlet_api_errors_total{operation=\"patch_pod_status\"} 2",
        "# TYPE kubelet_evictions counter",
        "kubelet_evictions_total{eviction_signal=\"allocatableMemory.available\"} 2",
        "kubelet_evictions_total{eviction_signal=\"nodefs.available\"} 1",
        "wasmlet_server_expiration_renew_errors_total 1",
        "wasmlet_kubelet_api_start_errors_total{step=\"bind\"} 1",
    ] {
        assert!(lines.contains(&expected), "{expected:?} missing from:\n{text}");
    }
    assert_eq!(lines.last(), Some(&"# EOF"));
}

#[test]
fn mirrored_counters_never_go_back() {
    let metrics = Metrics::new();
    metrics.compile_stats(CompileCounts { compiles: 5, cache_hits: 5, failures: 0 });
    metrics.compile_stats(CompileCounts { compiles: 4, cache_hits: 6, failures: 0 });
    let text = metrics.render();
    assert!(lines(&text).contains(&"wasmlet_compiles_total 5"), "{text}");
    assert!(lines(&text).contains(&"wasmlet_compile_cache_hits_total 6"), "{text}");
}
