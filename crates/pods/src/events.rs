//! Events on pods, as the upstream kubelet records them (`kubectl describe pod`).
//! Publishing never fails the caller: errors are logged and dropped.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// How long publishing one event may take before it is dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Event reasons (upstream `pkg/kubelet/events`).
pub(crate) mod reason {
    /// An image pull starts.
    pub(crate) const PULLING: &str = "Pulling";
    /// An image is available.
    pub(crate) const PULLED: &str = "Pulled";
    /// A container was created.
    pub(crate) const CREATED: &str = "Created";
    /// A container started.
    pub(crate) const STARTED: &str = "Started";
    /// A container is being stopped.
    pub(crate) const KILLING: &str = "Killing";
    /// Back-off (restart or pull).
    pub(crate) const BACK_OFF: &str = "BackOff";
    /// Something failed (pull, create, start).
    pub(crate) const FAILED: &str = "Failed";
    /// A probe failed.
    pub(crate) const UNHEALTHY: &str = "Unhealthy";
    /// A probe succeeded with a warning (a redirect to another host).
    pub(crate) const PROBE_WARNING: &str = "ProbeWarning";
    /// The pod's network (address) is not ready.
    pub(crate) const NETWORK_NOT_READY: &str = "NetworkNotReady";
    /// Requests of a `wasi:http` server were stopped at the memory limit
    /// (node-problem-detector's reason for the kernel's OOM kills; see
    /// [`oom_events`](crate::oom_events)).
    pub(crate) const OOM_KILLING: &str = "OOMKilling";
    /// activeDeadlineSeconds ran out.
    pub(crate) const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
}

/// Publishes events as `kubelet` on this node.
#[derive(Clone)]
pub(crate) struct Events {
    recorder: Recorder,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Events")
    }
}

impl Events {
    /// Events reported by component `kubelet`, instance `node_name`.
    pub(crate) fn new(client: kube::Client, node_name: &str) -> Self {
        let reporter = Reporter { controller: "kubelet".into(), instance: Some(node_name.to_owned()) };
        Self { recorder: Recorder::new(client, reporter) }
    }

    /// A Normal event on `pod` (on container `container` when given).
    pub(crate) async fn normal(&self, pod: &Pod, container: Option<&str>, reason: &str, note: String) {
        self.publish(pod, container, EventType::Normal, reason, note).await;
    }

    /// A Warning event on `pod` (on container `container` when given).
    pub(crate) async fn warning(&self, pod: &Pod, container: Option<&str>, reason: &str, note: String) {
        self.publish(pod, container, EventType::Warning, reason, note).await;
    }

    async fn publish(&self, pod: &Pod, container: Option<&str>, type_: EventType, reason: &str, note: String) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            ..Default::default()
        };
        // Notes are limited to 1 kB by the API.
        let note = if note.len() > 1000 { format!("{}...", truncate(&note, 990)) } else { note };
        let event =
            Event { type_, reason: reason.to_owned(), note: Some(note), action: reason.to_owned(), secondary: None };
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.recorder.publish(&event, &reference)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, reason, "publishing event failed"),
            Err(_) => tracing::debug!(reason, "publishing event timed out"),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
