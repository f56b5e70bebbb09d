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
//! Status is computed from the agent's record ([`record`], [`status`]) and
//! patched when it changes; a checkpoint per pod ([`checkpoint`]) lets a
//! restarted agent resume without ever re-running a finished pod.

pub mod admission;
mod attempts;
pub mod backoff;
pub mod checkpoint;
mod events;
mod gc;
mod guest;
mod images;
mod manager;
mod probe;
mod probe_grpc;
mod prober;
mod provider;
mod pull_secrets;
pub use wasmlet_quantity as quantity;
pub mod record;
mod recovery;
mod spawn;
pub mod spec;
pub mod state;
pub mod status;
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
pub use crate::images::Images;
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
    ) -> Self {
        let events = events::Events::new(client.clone(), &config.node_name);
        let shared = Arc::new(worker::Shared {
            client,
            config,
            runtime,
            images,
            events,
            network,
            volumes,
            admitted: Mutex::new(HashMap::new()),
        });
        Self { shared, handles: Arc::default() }
    }

    /// What the kubelet API serves: `/pods` and container logs.
    pub fn provider(&self) -> Arc<dyn wasmlet_api::Provider> {
        Arc::new(provider::PodsProvider { shared: self.shared.clone(), handles: self.handles.clone() })
    }

    /// Runs until `cancel`: watches pods, runs them, collects garbage. On
    /// cancel, every pod's containers are stopped (within their grace period,
    /// at most [`Config::shutdown_grace`]) and the call returns when all
    /// workers are done. `synced` is notified once the first pod list was seen.
    pub async fn run(&self, cancel: CancellationToken, synced: Arc<Notify>) {
        let manager = manager::Manager::new(self.shared.clone(), self.handles.clone(), cancel.clone());
        tokio::join!(manager.run(synced), gc::run(&self.shared, cancel));
    }

    /// Images held by live containers (reported in the node status).
    pub fn images(&self) -> &Images {
        &self.shared.images
    }
}
