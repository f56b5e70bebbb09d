//! Pod sync: everything between "a pod is bound to this node" and "the pod
//! object is deleted".
//!
//! [`Pods::run`] watches the pods bound to the node (`spec.nodeName=<node>`,
//! the only pod list the Node authorizer allows) and gives each one a worker
//! task. A pod worker drives the pod lifecycle machine ([`state::pod`]):
//! admission, starting, running, termination, the final status and the final
//! delete. Each container gets its own worker task driving the container
//! machine ([`state::container`]): pull, start, run, exit, restart with
//! back-off. Both machines' edges are checked at compile time ([`state`]).
//!
//! Status is computed from the agent's record ([`record`], [`status`]) and,
//! when it changes, handed to the node's status manager, which patches the
//! latest status of each pod off the workers' path; events go through a
//! bounded queue to one sender. A checkpoint per pod ([`checkpoint`]) lets a
//! restarted agent resume without ever re-running a finished pod.

pub mod admission;
mod attempts;
pub mod backoff;
pub mod checkpoint;
mod events;
mod evict;
#[cfg(debug_assertions)]
mod fault;
mod gc;
mod guest;
mod image_gc;
mod images;
mod live;
mod manager;
pub use manager::watch_backoff;
#[cfg(test)]
mod mock_api;
pub mod node_shutdown;
mod oom_events;
mod probe;
mod probe_grpc;
mod prober;
mod provider;
mod pull_secrets;
pub use wasmlet_quantity as quantity;
pub mod record;
mod recovery;
pub mod resources;
pub mod sockets;
mod spawn;
pub mod spec;
mod startup;
pub mod state;
pub mod status;
mod status_manager;
mod streaming;
mod telemetry;
mod worker;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use crate::admission::{Allocatable, WasmPolicy};
pub use crate::backoff::BackoffConfig;
pub use crate::evict::Eviction;
pub use crate::image_gc::ImageGcPolicy;
pub use crate::images::Images;
pub use crate::node_shutdown::ActivePod;
pub use crate::resources::{ContainerResources, NoResources, Note, PodResources, ResourceError};
pub use crate::worker::{ContainerWorker, PodWorker};

/// Settings of pod sync.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name.
    pub node_name: String,
    /// This node's IP (the host IP of every pod).
    pub node_ip: IpAddr,
    /// Where pod directories (`pods/<uid>`: logs, checkpoint) live.
    pub root_dir: PathBuf,
    /// What pods may request in total.
    pub allocatable: Allocatable,
    /// Which pods count as wasm workloads.
    pub wasm: WasmPolicy,
    /// Container restart back-off.
    pub crash_backoff: BackoffConfig,
    /// Image pull back-off.
    pub image_backoff: BackoffConfig,
    /// Longest time a pod's containers get to stop when the agent shuts down.
    pub shutdown_grace: Duration,
    /// How often unused images and compiled code are collected.
    pub gc_interval: Duration,
    /// Which unused images a periodic pass collects.
    pub image_gc: ImageGcPolicy,
}

/// Pod sync for one node.
pub struct Pods {
    shared: Arc<worker::Shared>,
    handles: manager::Handles,
}

impl std::fmt::Debug for Pods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pods").field("node", &self.shared.config.node_name).finish_non_exhaustive()
    }
}

impl Pods {
    /// Pod sync using `runtime` to run guests and `images` to get them.
    pub fn new(
        client: kube::Client,
        config: Config,
        runtime: Arc<wasmlet_runtime::Runtime>,
        images: Images,
        network: wasmlet_network::PodNetwork,
        volumes: wasmlet_volumes::Volumes,
        metrics: Arc<wasmlet_metrics::Metrics>,
    ) -> Self {
        let events = events::Events::new(client.clone(), &config.node_name, metrics.clone());
        let shared = Arc::new(worker::Shared {
            client: client.clone(),
            config,
            runtime,
            images,
            events,
            statuses: status_manager::StatusManager::new(client.clone(), metrics.clone()),
            startup: startup::Startup::new(metrics.clone()),
            network,
            volumes,
            metrics,
            admitted: Mutex::new(HashMap::new()),
            pressure: std::sync::OnceLock::new(),
            node_shutdown: std::sync::OnceLock::new(),
            resources: std::sync::OnceLock::new(),
            checkpoint_writes: Arc::new(tokio::sync::Semaphore::new(checkpoint::MAX_CONCURRENT_WRITES)),
        });
        Self { shared, handles: Arc::default() }
    }

    /// What the kubelet API serves: `/pods`, container logs, port-forward and exec.
    pub fn provider(&self, streaming: wasmlet_streaming::Config) -> Arc<dyn wasmlet_api::Provider> {
        let streaming_provider =
            Arc::new(streaming::PodsStreaming { shared: self.shared.clone(), handles: self.handles.clone() });
        Arc::new(provider::PodsProvider {
            shared: self.shared.clone(),
            handles: self.handles.clone(),
            streaming: wasmlet_streaming::Streaming::new(streaming_provider, streaming),
        })
    }

    /// The pods' resource figures (`/stats/summary`, `/metrics/resource`).
    pub fn stats_source(&self) -> Arc<dyn wasmlet_metrics::StatsSource> {
        Arc::new(telemetry::PodsStats { shared: self.shared.clone(), handles: self.handles.clone() })
    }

    /// Runs until `cancel`: watches pods, runs them, collects garbage. On
    /// cancel, every pod's containers are stopped (within their grace period,
    /// at most [`Config::shutdown_grace`]) and the call returns when all
    /// workers are done. `synced` is notified once the first pod list was seen.
    pub async fn run(&self, cancel: CancellationToken, synced: Arc<Notify>) {
        let manager = manager::Manager::new(self.shared.clone(), self.handles.clone(), cancel.clone());
        // The senders outlive the pod workers: what the workers queue while
        // they stop is still sent.
        let workers_done = CancellationToken::new();
        let workers = async {
            manager.run(synced).await;
            workers_done.cancel();
        };
        tokio::join!(
            workers,
            gc::run(&self.shared, cancel.clone()),
            self.count_phases(cancel),
            self.shared.events.run(workers_done.clone()),
            self.shared.statuses.run(workers_done.clone()),
        );
    }

    /// Keeps the `pods by phase` gauge and the running pods and containers
    /// gauges current.
    async fn count_phases(&self, cancel: CancellationToken) {
        use wasmlet_metrics::PodPhase;
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = cancel.cancelled() => return,
            }
            let mut counts: HashMap<&'static str, u64> = HashMap::new();
            let (mut running_pods, mut running_containers) = (0u64, 0u64);
            for h in self.handles.lock().unwrap_or_else(|p| p.into_inner()).values() {
                let record = h.record.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let running = record.all().filter(|c| c.is_running()).count() as u64;
                running_containers += running;
                let policy = match &*h.updates.borrow() {
                    worker::PodUpdate::Present(p) => p.spec.as_ref().and_then(|s| s.restart_policy.clone()),
                    worker::PodUpdate::Gone => None,
                };
                let phase = status::phase_of(policy.as_deref().unwrap_or("Always"), &record);
                let key = match phase.as_str() {
                    "Pending" => "Pending",
                    "Running" => "Running",
                    "Succeeded" => "Succeeded",
                    "Failed" => "Failed",
                    _ => "Unknown",
                };
                *counts.entry(key).or_default() += 1;
                // Upstream counts pods with a running sandbox: here, set up and not finished.
                if record.sandbox_ready && !status::phase::is_terminal(Some(&phase)) {
                    running_pods += 1;
                }
            }
            self.shared.metrics.set_running(running_pods, running_containers);
            for (name, phase) in [
                ("Pending", PodPhase::Pending),
                ("Running", PodPhase::Running),
                ("Succeeded", PodPhase::Succeeded),
                ("Failed", PodPhase::Failed),
                ("Unknown", PodPhase::Unknown),
            ] {
                self.shared.metrics.set_pods(phase, counts.get(name).copied().unwrap_or(0));
            }
        }
    }

    /// Makes admission also refuse pods under node pressure, as `admission`
    /// (the eviction manager's) decides: reason `Evicted`, `Pod was
    /// rejected: The node had condition: [MemoryPressure]. `. Set it once,
    /// before [`run`](Self::run); later calls are ignored.
    pub fn set_pressure_admission(&self, admission: wasmlet_eviction::Admission) {
        if self.shared.pressure.set(admission).is_err() {
            tracing::warn!("pressure admission is already set; keeping the first");
        }
    }

    /// Makes admission refuse every pod while `shutting_down` is true
    /// (the node shutdown manager's): reason `NodeShutdown`, `Pod was
    /// rejected: Pod was rejected as the node is shutting down.`. Set it
    /// once, before [`run`](Self::run); later calls are ignored.
    pub fn set_node_shutdown(&self, shutting_down: tokio::sync::watch::Receiver<bool>) {
        if self.shared.node_shutdown.set(shutting_down).is_err() {
            tracing::warn!("node shutdown admission is already set; keeping the first");
        }
    }

    /// The pods present and not finished, with their priority and own
    /// termination grace period, for the node shutdown manager.
    pub fn active_pods(&self) -> Vec<ActivePod> {
        node_shutdown::active(&self.handles)
    }

    /// Ends pod `uid` as `eviction` says (see [`evict`](Self::evict)) and
    /// returns once its containers stopped and its verdict is recorded, or
    /// at once when the node has no such pod.
    pub async fn terminate(&self, uid: &str, eviction: Eviction) {
        node_shutdown::terminate(&self.handles, uid, eviction).await
    }

    /// Gives pods what node plugins offer (devices, claims). Set it once,
    /// before [`run`](Self::run); later calls are ignored. Without it pods
    /// get nothing extra ([`NoResources`]).
    pub fn set_resources(&self, resources: std::sync::Arc<dyn PodResources>) {
        if self.shared.resources.set(resources).is_err() {
            tracing::warn!("pod resources are already set; keeping the first");
        }
    }

    /// The active pods (present, not terminal) with their containers'
    /// memory, for the eviction manager. With `disk`, their logs and local
    /// volumes (disk emptyDirs, configMaps) are measured too: that walks
    /// directories, so call it from a blocking thread.
    pub fn eviction_stats(&self, disk: bool) -> Vec<wasmlet_eviction::PodStats> {
        evict::stats(&self.handles, disk)
    }

    /// Evicts pod `uid`: its worker stops the containers within
    /// `eviction.grace` and ends the pod `Failed` with the eviction's
    /// reason and message, a `DisruptionTarget` condition and an event of
    /// that reason. The
    /// request waits if the pod is still starting. Returns `false` when the
    /// node has no such pod.
    pub fn evict(&self, uid: &str, eviction: Eviction) -> bool {
        evict::evict(&self.handles, uid, eviction)
    }

    /// Whether pod `uid` runs nothing any more (gone, or no guest running).
    pub fn cleaned_up(&self, uid: &str) -> bool {
        evict::cleaned_up(&self.handles, uid)
    }

    /// Collects images and compiled code no container holds, now (what the
    /// periodic collection does; images pulled recently are kept).
    pub async fn collect_garbage(&self) {
        gc::collect(&self.shared).await;
    }

    /// Images held by live containers (reported in the node status).
    pub fn images(&self) -> &Images {
        &self.shared.images
    }
}
