//! The eviction manager's [`Target`](wasmlet_eviction::Target) on this agent:
//! the host's memory and filesystems, the pods' usage from pod sync, eviction
//! through the pod workers, image garbage collection as node-level disk
//! reclaim, and the `EvictionThresholdMet` node event.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use wasmlet_eviction::{Eviction, FsStats, Level, NodeStats, PodStats, Resource};
use wasmlet_pods::Pods;

/// How long publishing the node event may take.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// This node, as the eviction manager sees it.
pub(crate) struct Node {
    pub(crate) pods: Arc<Pods>,
    pub(crate) metrics: Arc<wasmlet_metrics::Metrics>,
    /// The root directory: `nodefs`.
    pub(crate) root_dir: PathBuf,
    /// The image store: `imagefs`.
    pub(crate) image_dir: PathBuf,
    pub(crate) recorder: Recorder,
    pub(crate) node: ObjectReference,
}

impl Node {
    pub(crate) fn new(
        client: kube::Client,
        pods: Arc<Pods>,
        metrics: Arc<wasmlet_metrics::Metrics>,
        root_dir: PathBuf,
        name: &str,
        uid: &str,
    ) -> Self {
        let reporter = Reporter { controller: "kubelet".into(), instance: Some(name.to_owned()) };
        let node = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(name.to_owned()),
            uid: Some(uid.to_owned()),
            ..ObjectReference::default()
        };
        let image_dir = root_dir.join("images");
        Self { pods, metrics, root_dir, image_dir, recorder: Recorder::new(client, reporter), node }
    }
}

fn fs(path: &std::path::Path) -> Option<FsStats> {
    let s = wasmlet_metrics::host::fs(path, SystemTime::now())
        .map_err(|e| tracing::debug!(error = %e, path = %path.display(), "filesystem figures unavailable"))
        .ok()?;
    let bytes = Level { available: s.available_bytes?, capacity: s.capacity_bytes? };
    let inodes = s.inodes_free.zip(s.inodes).map(|(available, capacity)| Level { available, capacity });
    Some(FsStats { bytes, inodes })
}

impl wasmlet_eviction::Target for Node {
    fn node(&self) -> NodeStats {
        // Memory as the node reports it: MemTotal and MemAvailable, lowered
        // to a cgroup limit of the agent if there is one.
        let memory = match wasmlet_node::host::measure(&self.root_dir) {
            Ok(s) => Some(Level { available: s.memory_available, capacity: s.memory_capacity }),
            Err(e) => {
                tracing::debug!(error = %e, "measuring memory failed");
                None
            }
        };
        let device = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        let dedicated_image_fs = match (device(&self.root_dir), device(&self.image_dir)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        };
        let nodefs = fs(&self.root_dir);
        let imagefs = if dedicated_image_fs { fs(&self.image_dir) } else { nodefs };
        NodeStats { memory, nodefs, imagefs, dedicated_image_fs }
    }

    fn pods(&self, disk: bool) -> Vec<PodStats> {
        self.pods.eviction_stats(disk)
    }

    fn evict(&self, e: &Eviction) -> bool {
        let uid = e.pod.metadata.uid.as_deref().unwrap_or_default();
        let eviction = wasmlet_pods::Eviction::pressure(e.grace, e.message.clone());
        let found = self.pods.evict(uid, eviction);
        if found {
            self.metrics.eviction(e.signal.as_str());
        }
        found
    }

    fn cleaned_up(&self, uid: &str) -> bool {
        self.pods.cleaned_up(uid)
    }

    async fn reclaim_node_disk(&self) {
        self.pods.collect_garbage().await;
    }

    async fn reclaiming(&self, resource: Resource) {
        let event = Event {
            type_: EventType::Warning,
            reason: "EvictionThresholdMet".into(),
            note: Some(format!("Attempting to reclaim {resource}")),
            action: "EvictionThresholdMet".into(),
            secondary: None,
        };
        match tokio::time::timeout(EVENT_TIMEOUT, self.recorder.publish(&event, &self.node)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "publishing the EvictionThresholdMet event failed"),
            Err(_) => tracing::debug!("publishing the EvictionThresholdMet event timed out"),
        }
    }
}
