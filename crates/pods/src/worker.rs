//! The contexts the state machines run in: one [`PodWorker`] per pod, one
//! [`ContainerWorker`] per container, and what they share.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodCondition};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admission::Requests;
use crate::backoff::Backoff;
use crate::checkpoint::{self, Checkpoint};
use crate::events::Events;
use crate::images::{Images, Pulled};
use crate::record::{ContainerRecord, PodRecord};
use crate::startup::Startup;
use crate::status::{self, Addresses};
use crate::status_manager::StatusManager;
use crate::{Config, attempts::Attempts};

/// How long a worker waits for its terminal status to be written.
const FINAL_STATUS_WAIT: Duration = Duration::from_secs(10);

/// What every worker shares.
pub(crate) struct Shared {
    pub(crate) client: kube::Client,
    pub(crate) config: Config,
    pub(crate) runtime: Arc<wasmlet_runtime::Runtime>,
    pub(crate) images: Images,
    pub(crate) events: Events,
    /// Writes pod statuses (off the workers' path).
    pub(crate) statuses: StatusManager,
    /// Pod start latencies, for the upstream start metrics.
    pub(crate) startup: Startup,
    pub(crate) network: wasmlet_network::PodNetwork,
    pub(crate) volumes: wasmlet_volumes::Volumes,
    pub(crate) metrics: Arc<wasmlet_metrics::Metrics>,
    /// Requests of admitted, non-terminal pods, by UID.
    pub(crate) admitted: Mutex<HashMap<String, Requests>>,
    /// Admission under node pressure (the eviction manager's), once set.
    pub(crate) pressure: std::sync::OnceLock<wasmlet_eviction::Admission>,
    /// Whether the node is shutting down (the shutdown manager's), once set.
    pub(crate) node_shutdown: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>>,
    /// Devices and claims from node plugins, once set.
    pub(crate) resources: std::sync::OnceLock<Arc<dyn crate::resources::PodResources>>,
    /// Bounds the checkpoint writes running at once (see [`checkpoint::Writer`]).
    pub(crate) checkpoint_writes: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    /// Devices and claims from node plugins ([`crate::NoResources`] until set).
    pub(crate) fn resources(&self) -> &dyn crate::resources::PodResources {
        match self.resources.get() {
            Some(r) => r.as_ref(),
            None => &crate::resources::NoResources,
        }
    }

    /// The addresses a pod reports: the node's, and the pod's own once it has one.
    pub(crate) fn addresses(&self, record: &PodRecord) -> Addresses {
        let host_ip = self.config.node_ip.to_string();
        let pod_ip = record.pod_ip.clone().unwrap_or_else(|| host_ip.clone());
        Addresses { host_ip, pod_ip }
    }
}

/// The latest state of a pod object in the API.
#[derive(Debug, Clone)]
pub(crate) enum PodUpdate {
    /// The object as last seen.
    Present(Arc<Pod>),
    /// The object is gone from the API (deleted with grace 0, or by us).
    Gone,
}

/// Why and how fast a container must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StopRequest {
    /// Time for preStop hooks before the guest is stopped.
    pub(crate) grace: Duration,
}

/// A pod's worker: owns its containers' tasks and reports its status.
pub struct PodWorker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) uid: String,
    pub(crate) updates: watch::Receiver<PodUpdate>,
    /// The eviction manager's request to evict this pod.
    pub(crate) evictions: watch::Receiver<Option<crate::evict::Eviction>>,
    /// The object as last seen (kept when it disappears).
    pub(crate) pod: Arc<Pod>,
    pub(crate) record: Arc<Mutex<PodRecord>>,
    pub(crate) attempts: Attempts,
    pub(crate) live: crate::live::Live,
    pub(crate) dirty: Arc<Notify>,
    pub(crate) cancel: CancellationToken,
    pub(crate) dir: PathBuf,
    /// Tasks of the regular containers.
    pub(crate) containers: JoinSet<()>,
    /// Tasks of the init containers and sidecars.
    pub(crate) init: JoinSet<()>,
    /// Stop signals of the regular containers.
    pub(crate) stops: HashMap<String, watch::Sender<Option<StopRequest>>>,
    /// Stop signals of the init containers and sidecars.
    pub(crate) init_stops: HashMap<String, watch::Sender<Option<StopRequest>>>,
    /// The status JSON last written, to skip unchanged patches.
    pub(crate) reported: Option<serde_json::Value>,
    /// The pod's volumes, once set up.
    pub(crate) volumes: Option<wasmlet_volumes::PodVolumes>,
    /// Keeps the ConfigMaps and Secrets the pod references watched.
    pub(crate) sources: Option<wasmlet_volumes::PodSources>,
    /// Volume refresh (and other per-pod background work), stopped with the pod.
    pub(crate) background: JoinSet<()>,
    /// Writes the pod's checkpoints off the async workers.
    pub(crate) checkpoints: checkpoint::Writer,
}

impl PodWorker {
    /// `namespace/name` for logs and messages.
    pub(crate) fn key(&self) -> String {
        format!(
            "{}/{}",
            self.pod.metadata.namespace.as_deref().unwrap_or_default(),
            self.pod.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// Takes the newest object from the watch; `false` once it is gone.
    pub(crate) fn refresh(&mut self) -> bool {
        let update = self.updates.borrow_and_update().clone();
        match update {
            PodUpdate::Present(pod) => {
                self.pod = pod;
                true
            }
            PodUpdate::Gone => false,
        }
    }

    /// Whether the pod object is gone from the API.
    pub(crate) fn gone(&self) -> bool {
        matches!(*self.updates.borrow(), PodUpdate::Gone)
    }

    /// Applies `f` to the record.
    pub(crate) fn update(&self, f: impl FnOnce(&mut PodRecord)) {
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut record);
        drop(record);
        self.dirty.notify_one();
    }

    /// A copy of the record.
    pub(crate) fn snapshot(&self) -> PodRecord {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Recomputes the status and hands it to the status manager when it
    /// changed (never waiting for the API server, except for a terminal
    /// status: that one is written before the worker goes on, for up to
    /// [`FINAL_STATUS_WAIT`], so the object is never deleted before it).
    pub(crate) async fn sync_status(&mut self) {
        let record = self.snapshot();
        let pod = self.with_reported_conditions();
        let status = status::compute(&pod, &record, &self.shared.addresses(&record), Timestamp::now());
        let Ok(value) = serde_json::to_value(&status) else {
            return;
        };
        // Transition times make every computation differ; compare without them
        // by remembering what we sent rather than what we computed — unless
        // someone else has since changed it in the API.
        if self.reported.as_ref() == Some(&value) && !self.status_overwritten() {
            return;
        }
        let (Some(ns), Some(name)) = (self.pod.metadata.namespace.as_deref(), self.pod.metadata.name.as_deref()) else {
            return;
        };
        let version = self.shared.statuses.set(&self.uid, ns, name, value.clone());
        self.reported = Some(value);
        self.shared.startup.observe(&self.uid, &self.pod, &status, record.start_time);
        self.save_checkpoint(false);
        if status::phase::is_terminal(status.phase.as_deref())
            && !self.shared.statuses.wait_written(&self.uid, version, FINAL_STATUS_WAIT).await
        {
            tracing::warn!("the final pod status is not written yet; still trying");
        }
    }

    /// After news from the watch: writes the status again if someone else
    /// overwrote it (see [`PodWorker::status_overwritten`]).
    pub(crate) async fn reconcile_status(&mut self) {
        if self.refresh() && self.status_overwritten() {
            tracing::info!("the pod's status was changed by someone else; writing it again");
            self.sync_status().await;
        }
    }

    /// Whether the pod's status in the API (as last seen) disagrees with the
    /// status this worker last reported, after that report was written:
    /// someone else changed it — the node lifecycle controller marks every
    /// pod of a node that went silent (an apiserver or etcd outage) not
    /// Ready, an admin may patch it. As upstream's status manager does
    /// (`needsReconcile`), the agent then writes its own again.
    pub(crate) fn status_overwritten(&self) -> bool {
        let Some(reported) = &self.reported else { return false };
        if !self.shared.statuses.settled(&self.uid) {
            return false; // our own write may still be on its way back
        }
        let seen = self.pod.status.as_ref().and_then(|s| serde_json::to_value(s).ok()).unwrap_or_default();
        status::disagrees(&seen, reported)
    }

    /// The pod as last seen, with the conditions this worker last reported
    /// over them (the watch may not have brought them back yet), so their
    /// transition times are kept.
    fn with_reported_conditions(&self) -> Arc<Pod> {
        let reported: Option<Vec<PodCondition>> = self
            .reported
            .as_ref()
            .and_then(|v| v.get("conditions"))
            .and_then(|c| serde_json::from_value(c.clone()).ok());
        let Some(reported) = reported else { return self.pod.clone() };
        let seen = self.pod.status.as_ref().and_then(|s| s.conditions.as_ref());
        if seen.is_some_and(|seen| reported.iter().all(|r| seen.contains(r))) {
            return self.pod.clone();
        }
        let mut pod = (*self.pod).clone();
        let conditions = pod.status.get_or_insert_with(Default::default).conditions.get_or_insert_with(Vec::new);
        for r in reported {
            match conditions.iter_mut().find(|c| c.type_ == r.type_) {
                Some(c) => *c = r,
                None => conditions.push(r),
            }
        }
        Arc::new(pod)
    }

    /// Persists the record: queued to the pod's checkpoint writer, which
    /// writes it on the blocking pool (see [`PodWorker::flush_checkpoint`]).
    pub(crate) fn save_checkpoint(&self, clean_shutdown: bool) {
        let record = self.snapshot();
        let finished = status::phase::is_terminal(Some(&status::phase_of(self.restart_policy(), &record)));
        self.checkpoints.submit(Checkpoint { uid: self.uid.clone(), record, finished, clean_shutdown });
    }

    /// Waits until every checkpoint saved so far is on disk.
    pub(crate) async fn flush_checkpoint(&self) {
        self.checkpoints.flush().await;
    }

    /// The pod's restart policy (default `Always`).
    pub(crate) fn restart_policy(&self) -> &str {
        self.pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always")
    }

    /// The pod's grace period for this termination: the deletion's, else the spec's (default 30 s).
    pub(crate) fn grace(&self) -> Duration {
        let secs = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    /// Frees what the pod holds from node plugins (devices, prepared
    /// claims) now that nothing of it runs: retried with back-off until it
    /// works (as upstream, which keeps the pod terminating until its claims
    /// are unprepared) or the agent stops (the plugin managers' checkpoints
    /// remember it for the next start).
    pub(crate) async fn release_resources(&mut self) {
        let mut delay = Duration::from_secs(1);
        loop {
            let Err(e) = self.shared.resources().release(&self.pod).await else { return };
            tracing::warn!(reason = %e.reason, message = %e.message, retry_in = ?delay, "releasing the pod's devices and claims failed");
            let cancel = self.cancel.clone();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    /// Stops every container with `grace`: regular containers first, then
    /// init containers and sidecars (KEP-753), each group waited for up to
    /// `grace + slack`.
    pub(crate) async fn stop_all(&mut self, grace: Duration, slack: Duration) {
        for tx in self.stops.values() {
            let _ = tx.send(Some(StopRequest { grace }));
        }
        join(&mut self.containers, grace + slack).await;
        for tx in self.init_stops.values() {
            let _ = tx.send(Some(StopRequest { grace }));
        }
        join(&mut self.init, grace + slack).await;
    }
}

/// Waits for every task of `set`, aborting them after `limit`.
async fn join(set: &mut JoinSet<()>, limit: Duration) {
    let all = async {
        while let Some(res) = set.join_next().await {
            if let Err(e) = res {
                tracing::error!(error = %e, "container task failed; this is a bug");
            }
        }
    };
    if tokio::time::timeout(limit, all).await.is_err() {
        tracing::warn!("containers did not stop in time; aborting them");
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

/// What a container is to its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A regular container: restarts per the pod's restart policy.
    App,
    /// An init container: runs to completion; restarts on failure unless the
    /// pod's policy is Never.
    Init,
    /// An init container with `restartPolicy: Always`: runs beside the app
    /// containers and always restarts.
    Sidecar,
}

/// A container's worker: pulls, starts, runs and restarts one container.
pub struct ContainerWorker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) pod: Arc<Pod>,
    pub(crate) spec: Container,
    pub(crate) role: Role,
    pub(crate) record: Arc<Mutex<PodRecord>>,
    pub(crate) attempts: Attempts,
    pub(crate) live: crate::live::Live,
    pub(crate) dirty: Arc<Notify>,
    pub(crate) stop: watch::Receiver<Option<StopRequest>>,
    pub(crate) crash_backoff: Backoff,
    pub(crate) pull_backoff: Backoff,
    pub(crate) logs_dir: PathBuf,
    /// The pod's volumes (for this container's mounts).
    pub(crate) volumes: Option<wasmlet_volumes::PodVolumes>,
    /// When this container's worker started, until its first run (start latency).
    pub(crate) created: Option<std::time::Instant>,
    /// The image pinned in the store while this container may run.
    pub(crate) held: Option<Pulled>,
}

impl ContainerWorker {
    pub(crate) fn name(&self) -> &str {
        &self.spec.name
    }

    /// The container's image as written in the spec.
    pub(crate) fn image(&self) -> &str {
        self.spec.image.as_deref().unwrap_or_default()
    }

    /// Applies `f` to this container's record and wakes the pod worker.
    pub(crate) fn update(&self, f: impl FnOnce(&mut ContainerRecord)) {
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = record.container_mut(&self.spec.name) {
            f(c);
        }
        drop(record);
        self.dirty.notify_one();
    }

    /// A copy of this container's record.
    pub(crate) fn snapshot(&self) -> Option<ContainerRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).container(&self.spec.name).cloned()
    }

    /// The stop request, if there is one.
    pub(crate) fn stop_requested(&self) -> Option<StopRequest> {
        *self.stop.borrow()
    }

    /// Waits until a stop is requested.
    pub(crate) async fn stopped(&mut self) -> StopRequest {
        loop {
            if let Some(req) = *self.stop.borrow_and_update() {
                return req;
            }
            if self.stop.changed().await.is_err() {
                // The pod worker is gone: stop now.
                return StopRequest { grace: Duration::ZERO };
            }
        }
    }

    /// Sleeps `d`, or returns the stop request that came first.
    pub(crate) async fn sleep_or_stop(&mut self, d: Duration) -> Option<StopRequest> {
        tokio::select! {
            () = tokio::time::sleep(d) => None,
            req = self.stopped() => Some(req),
        }
    }

    /// The pod's `namespace/name(uid)` as upstream messages write it.
    pub(crate) fn pod_ref(&self) -> String {
        let m = &self.pod.metadata;
        format!(
            "{}_{}({})",
            m.name.as_deref().unwrap_or_default(),
            m.namespace.as_deref().unwrap_or_default(),
            m.uid.as_deref().unwrap_or_default()
        )
    }
}
