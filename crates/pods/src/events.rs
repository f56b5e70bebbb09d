//! Events on pods, as the upstream kubelet records them (`kubectl describe pod`).
//!
//! Recording never waits for the API server, as upstream's event broadcaster:
//! an event goes into a bounded queue ([`QUEUE_CAPACITY`]) and one background
//! sender ([`Events::run`]) posts them in order. When the queue is full the
//! event is dropped and counted (`wasmlet_events_dropped_total`); failed posts
//! are logged and dropped. Nothing on a pod's path ever waits for an event.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How many events may wait to be sent (upstream's broadcaster queues 1000).
pub(crate) const QUEUE_CAPACITY: usize = 1000;
/// How long publishing one event may take before it is dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the sender keeps sending queued events after it is stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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

/// One event waiting to be sent.
struct Queued {
    event: Event,
    reference: ObjectReference,
}

/// Records events as `kubelet` on this node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Events {
    tx: mpsc::Sender<Queued>,
    /// The queue's receiving end, until [`Events::run`] takes it.
    rx: Arc<Mutex<Option<mpsc::Receiver<Queued>>>>,
    recorder: Recorder,
    metrics: Arc<wasmlet_metrics::Metrics>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("queued", &(self.tx.max_capacity() - self.tx.capacity())).finish()
    }
}

impl Events {
    /// Events reported by component `kubelet`, instance `node_name`.
    pub(crate) fn new(client: kube::Client, node_name: &str, metrics: Arc<wasmlet_metrics::Metrics>) -> Self {
        Self::with_capacity(client, node_name, metrics, QUEUE_CAPACITY)
    }

    /// As [`new`](Self::new), with a queue of `capacity` events.
    pub(crate) fn with_capacity(
        client: kube::Client,
        node_name: &str,
        metrics: Arc<wasmlet_metrics::Metrics>,
        capacity: usize,
    ) -> Self {
        let reporter = Reporter { controller: "kubelet".into(), instance: Some(node_name.to_owned()) };
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self { tx, rx: Arc::new(Mutex::new(Some(rx))), recorder: Recorder::new(client, reporter), metrics }
    }

    /// A Normal event on `pod` (on container `container` when given).
    /// Queued: returns at once.
    pub(crate) async fn normal(&self, pod: &Pod, container: Option<&str>, reason: &str, note: String) {
        self.record(pod, container, EventType::Normal, reason, note);
    }

    /// A Warning event on `pod` (on container `container` when given).
    /// Queued: returns at once.
    pub(crate) async fn warning(&self, pod: &Pod, container: Option<&str>, reason: &str, note: String) {
        self.record(pod, container, EventType::Warning, reason, note);
    }

    /// Queues an event; drops (and counts) it when the queue is full.
    pub(crate) fn record(&self, pod: &Pod, container: Option<&str>, type_: EventType, reason: &str, note: String) {
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
        match self.tx.try_send(Queued { event, reference }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(q)) => {
                self.metrics.event_dropped();
                tracing::debug!(reason = %q.event.reason, "event queue is full; event dropped");
            }
            Err(mpsc::error::TrySendError::Closed(q)) => {
                tracing::debug!(reason = %q.event.reason, "event sender has stopped; event dropped");
            }
        }
    }

    /// Sends queued events, one after another, until `stop`; then sends what
    /// is still queued for up to [`DRAIN_TIMEOUT`]. Only the first call runs.
    pub(crate) async fn run(&self, stop: CancellationToken) {
        let Some(mut rx) = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            tracing::warn!("the event sender already runs; this is a bug");
            return;
        };
        loop {
            tokio::select! {
                biased;
                q = rx.recv() => match q {
                    Some(q) => self.publish(q).await,
                    None => return,
                },
                () = stop.cancelled() => break,
            }
        }
        rx.close();
        let drain = async {
            while let Some(q) = rx.recv().await {
                self.publish(q).await;
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            tracing::debug!(left = rx.len(), "agent stopping; queued events dropped");
        }
    }

    async fn publish(&self, q: Queued) {
        let reason = q.event.reason.as_str();
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.recorder.publish(&q.event, &q.reference)).await {
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

#[cfg(test)]
mod tests;
