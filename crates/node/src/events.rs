//! Node events (`Starting`, `NodeReady`, `NodeNotReady`), published through
//! kube-runtime's [`Recorder`] in the `default` namespace, as the kubelet does
//! for its cluster-scoped Node. Events are best effort: a failure is logged at
//! debug and never stops the caller.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::time::Duration;

use crate::backoff::Chain;

/// How long publishing one event may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes events about one Node.
#[derive(Clone)]
pub(crate) struct NodeEvents {
    recorder: Recorder,
    node: ObjectReference,
    name: String,
}

impl NodeEvents {
    /// Events reported by `kubelet` (instance: the node name) about the Node
    /// `name` with UID `uid`.
    pub(crate) fn new(client: kube::Client, name: &str, uid: &str) -> Self {
        let reporter = Reporter { controller: "kubelet".into(), instance: Some(name.to_owned()) };
        Self {
            recorder: Recorder::new(client, reporter),
            node: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(name.to_owned()),
                uid: Some(uid.to_owned()),
                ..ObjectReference::default()
            },
            name: name.to_owned(),
        }
    }

    /// `Starting`: "Starting kubelet.".
    pub(crate) async fn starting(&self) {
        self.publish("Starting", "Start", "Starting kubelet.".into()).await;
    }

    /// `NodeReady` or `NodeNotReady`, on a Ready transition.
    pub(crate) async fn ready_changed(&self, ready: bool) {
        let reason = if ready { "NodeReady" } else { "NodeNotReady" };
        let note = format!("Node {} status is now: {reason}", self.name);
        self.publish(reason, "UpdateNodeStatus", note).await;
    }

    async fn publish(&self, reason: &str, action: &str, note: String) {
        let event = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, self.recorder.publish(&event, &self.node)).await {
            Ok(Ok(())) => tracing::debug!(reason, "published node event"),
            Ok(Err(e)) => {
                tracing::debug!(reason, error = %Chain(&e), "publishing node event failed")
            }
            Err(_) => tracing::debug!(reason, "publishing node event timed out"),
        }
    }
}
