//! [`Startup`]: upstream's pod startup latency tracker, behind
//! `kubelet_pod_start_sli_duration_seconds` and `kubelet_pod_start_duration_seconds`.
//!
//! - **SLI**: pod `creationTimestamp` → the first status this agent sets
//!   with every container started, minus the time spent pulling images
//!   (first pull started → last pull finished), as upstream. Pods that were
//!   already started when the agent first saw them (an agent restart) are
//!   not counted.
//! - **start duration**: the agent first acknowledging the pod (the
//!   record's `start_time`, upstream's first-seen time) → the first status
//!   with phase `Running`.
//! - **pod worker `create`** (`kubelet_pod_worker_duration_seconds`): first
//!   seen → the first status with every container started.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;

/// What is known of one pod's start.
#[derive(Debug, Default)]
struct PodStart {
    first_pull: Option<Instant>,
    last_pulled: Option<Instant>,
    /// The start duration was observed (or does not apply).
    running_done: bool,
    /// The SLI was observed (or does not apply).
    started_done: bool,
}

/// Tracks pod starts for the upstream start metrics.
pub(crate) struct Startup {
    pods: Mutex<HashMap<String, PodStart>>,
    metrics: Arc<wasmlet_metrics::Metrics>,
}

impl Startup {
    pub(crate) fn new(metrics: Arc<wasmlet_metrics::Metrics>) -> Self {
        Self { pods: Mutex::default(), metrics }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodStart>> {
        self.pods.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A container of pod `uid` pulled an image from `started` to `finished`.
    pub(crate) fn pulled(&self, uid: &str, started: Instant, finished: Instant) {
        let mut pods = self.lock();
        let start = pods.entry(uid.to_owned()).or_default();
        start.first_pull = Some(start.first_pull.map_or(started, |t| t.min(started)));
        start.last_pulled = Some(start.last_pulled.map_or(finished, |t| t.max(finished)));
    }

    /// The agent set `status` for `pod` (uid `uid`), which it first
    /// acknowledged at `first_seen`; observes what this status completes.
    pub(crate) fn observe(&self, uid: &str, pod: &Pod, status: &PodStatus, first_seen: Option<Timestamp>) {
        self.observe_at(uid, pod, status, first_seen, Timestamp::now());
    }

    fn observe_at(&self, uid: &str, pod: &Pod, status: &PodStatus, first_seen: Option<Timestamp>, now: Timestamp) {
        let mut pods = self.lock();
        let start = pods.entry(uid.to_owned()).or_insert_with(|| PodStart {
            // Started before this agent saw it (an agent restart): not a start.
            started_done: all_started(pod.status.as_ref()),
            running_done: pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
            ..PodStart::default()
        });
        if !start.running_done && status.phase.as_deref() == Some("Running") {
            start.running_done = true;
            if let Some(seen) = first_seen {
                self.metrics.pod_started(since(seen, now));
            }
        }
        if !start.started_done && all_started(Some(status)) {
            start.started_done = true;
            // Upstream's `create` pod sync: from first seeing the pod to all
            // its containers started.
            if let Some(seen) = first_seen {
                self.metrics.pod_worker("create", since(seen, now));
            }
            if let Some(created) = pod.metadata.creation_timestamp.as_ref() {
                let pulling = match (start.first_pull, start.last_pulled) {
                    (Some(a), Some(b)) => b.saturating_duration_since(a),
                    _ => Duration::ZERO,
                };
                self.metrics.pod_start_sli(since(created.0, now).saturating_sub(pulling));
            }
        }
    }

    /// Forgets pod `uid` (its worker ended).
    pub(crate) fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }
}

/// Every regular container of `status` started (there is at least one).
fn all_started(status: Option<&PodStatus>) -> bool {
    let Some(containers) = status.and_then(|s| s.container_statuses.as_ref()) else { return false };
    !containers.is_empty()
        && containers.iter().all(|c| c.started == Some(true) && c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

fn since(then: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(then)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(created: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": created },
            "status": status,
        }))
        .expect("a pod")
    }

    fn status(phase: &str, started: bool) -> PodStatus {
        let state = if started { serde_json::json!({ "running": {} }) } else { serde_json::json!({ "waiting": {} }) };
        serde_json::from_value(serde_json::json!({
            "phase": phase,
            "containerStatuses": [{ "name": "main", "image": "i", "imageID": "", "ready": started,
                                    "restartCount": 0, "started": started, "state": state }],
        }))
        .expect("a status")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn line(metrics: &wasmlet_metrics::Metrics, prefix: &str) -> String {
        let text = metrics.render();
        text.lines().find(|l| l.starts_with(prefix)).map(str::to_owned).unwrap_or_default()
    }

    #[test]
    fn observes_each_start_once_and_leaves_out_pulls() {
        let metrics = Arc::new(wasmlet_metrics::Metrics::new());
        let startup = Startup::new(metrics.clone());
        let pod = pod("2026-01-01T00:00:00Z", serde_json::json!({}));
        let seen = Some(at("2026-01-01T00:00:01Z"));
        startup.observe_at("u", &pod, &status("Pending", false), seen, at("2026-01-01T00:00:01.5Z"));
        assert_eq!(
            line(&metrics, "kubelet_pod_start_duration_seconds_count"),
            "kubelet_pod_start_duration_seconds_count 0"
        );
        // A 30 s pull.
        let t0 = Instant::now();
        startup.pulled("u", t0, t0 + Duration::from_secs(30));
        // Running and started 40.4 s after creation, 39.4 s after first seen.
        let now = at("2026-01-01T00:00:40.4Z");
        startup.observe_at("u", &pod, &status("Running", true), seen, now);
        startup.observe_at("u", &pod, &status("Running", true), seen, at("2026-01-01T00:01:40Z"));
        assert_eq!(
            line(&metrics, "kubelet_pod_start_duration_seconds_count"),
            "kubelet_pod_start_duration_seconds_count 1"
        );
        assert_eq!(
            line(&metrics, "kubelet_pod_start_duration_seconds_sum"),
            "kubelet_pod_start_duration_seconds_sum 39.4"
        );
        assert_eq!(
            line(&metrics, "kubelet_pod_start_sli_duration_seconds_count"),
            "kubelet_pod_start_sli_duration_seconds_count 1"
        );
        // 40.4 s minus the 30 s pull.
        let sum = line(&metrics, "kubelet_pod_start_sli_duration_seconds_sum");
        let value: f64 = sum.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a sum");
        assert!((value - 10.4).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn pods_started_before_the_agent_saw_them_are_not_counted() {
        let metrics = Arc::new(wasmlet_metrics::Metrics::new());
        let startup = Startup::new(metrics.clone());
        let running = serde_json::to_value(status("Running", true)).expect("json");
        let pod = pod("2026-01-01T00:00:00Z", running);
        startup.observe_at("u", &pod, &status("Running", true), None, at("2026-01-01T05:00:00Z"));
        assert_eq!(
            line(&metrics, "kubelet_pod_start_sli_duration_seconds_count"),
            "kubelet_pod_start_sli_duration_seconds_count 0"
        );
        assert_eq!(
            line(&metrics, "kubelet_pod_start_duration_seconds_count"),
            "kubelet_pod_start_duration_seconds_count 0"
        );
        startup.forget("u");
        assert!(startup.lock().is_empty());
    }
}
