//! Dynamic resource allocation on the node (upstream `pkg/kubelet/cm/dra`,
//! resource.k8s.io v1).
//!
//! - DRA drivers register through the plugin watcher as type `DRAPlugin`,
//!   offering `v1.DRAPlugin` and/or `v1beta1.DRAPlugin`
//!   ([`DraManager::handler`]).
//! - Before a pod's containers start, [`DraManager::prepare`] checks each
//!   of its ResourceClaims (allocated, reserved for the pod, owned by it if
//!   generated from a template) and calls `NodePrepareResources` on the
//!   drivers of the allocation; the CDI device IDs they return are what
//!   [`DraManager::cdi_devices`] gives each container (by its
//!   `resources.claims`).
//! - Once the pod's containers have stopped, [`DraManager::unprepare`]
//!   calls `NodeUnprepareResources` (for a claim no other pod uses).
//! - Prepared claims are checkpointed (`<root-dir>/dra_manager_state`).
//! - At start, and when a driver's last plugin has been gone for
//!   [`Config::wiping_delay`], the node's ResourceSlices (of that driver)
//!   are deleted, as upstream does.
//!
//! Errors are upstream's words, for the `FailedPrepareDynamicResources`
//! event the caller records before retrying.

mod cache;
mod claims;
pub mod client;
mod plugins;
mod prepare;

pub use prepare::DraError;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::resource::v1::{ResourceClaim, ResourceSlice};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmlet_retry::Backoff;

pub use cache::CheckpointError;

use crate::cache::Cache;
use crate::plugins::Plugins;

/// The checkpoint's file name in the root directory (upstream's).
pub const STATE_FILE: &str = "dra_manager_state";
/// Upstream `defaultWipingDelay`.
pub const DEFAULT_WIPING_DELAY: Duration = Duration::from_secs(30);
/// Upstream `defaultClientCallTimeout`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(45);
/// Retries of ResourceSlice deletion (upstream: from 1 s, doubling, capped at 5 min).
pub const WIPE_RETRY: Backoff = Backoff { min: Duration::from_secs(1), max: Duration::from_secs(300) };

/// The manager's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name (its ResourceSlices' `spec.nodeName`).
    pub node_name: String,
    /// The checkpoint file.
    pub state_file: PathBuf,
    /// How long a driver may be gone before its ResourceSlices are deleted.
    pub wiping_delay: Duration,
    /// One call to a driver.
    pub call_timeout: Duration,
}

impl Config {
    /// Upstream's settings for node `node_name` with root directory `root_dir`.
    pub fn new(node_name: &str, root_dir: &Path) -> Self {
        Self {
            node_name: node_name.to_owned(),
            state_file: root_dir.join(STATE_FILE),
            wiping_delay: DEFAULT_WIPING_DELAY,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

/// What the manager needs from the API server (a trait, so that error
/// paths can be tested without one).
#[async_trait::async_trait]
pub trait ClusterApi: Send + Sync + 'static {
    /// `GET` a ResourceClaim.
    async fn get_claim(&self, namespace: &str, name: &str) -> Result<ResourceClaim, String>;
    /// Deletes the node's ResourceSlices (of `driver`, or all). Nothing to
    /// delete is success.
    async fn delete_slices(&self, node: &str, driver: Option<&str>) -> Result<(), String>;
}

/// [`ClusterApi`] over a kube client (the node's credentials).
pub struct KubeApi(pub kube::Client);

#[async_trait::async_trait]
impl ClusterApi for KubeApi {
    async fn get_claim(&self, namespace: &str, name: &str) -> Result<ResourceClaim, String> {
        kube::Api::<ResourceClaim>::namespaced(self.0.clone(), namespace).get(name).await.map_err(|e| e.to_string())
    }

    async fn delete_slices(&self, node: &str, driver: Option<&str>) -> Result<(), String> {
        let mut selector = format!("spec.nodeName={node}");
        if let Some(d) = driver {
            selector.push_str(&format!(",spec.driver={d}"));
        }
        let api = kube::Api::<ResourceSlice>::all(self.0.clone());
        let params = kube::api::ListParams::default().fields(&selector);
        match api.delete_collection(&kube::api::DeleteParams::default(), &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The DRA manager. Cheap to clone.
#[derive(Clone)]
pub struct DraManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DraManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DraManager").field("node", &self.inner.config.node_name).finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) api: Arc<dyn ClusterApi>,
    plugins: Mutex<Plugins>,
    cache: Mutex<Cache>,
    /// One prepare or unprepare at a time (they change the cache together
    /// with driver calls).
    pub(crate) busy: tokio::sync::Mutex<()>,
    pub(crate) tasks: TaskTracker,
    pub(crate) stop: CancellationToken,
}

impl DraManager {
    /// A manager for `config`, with the claims of the checkpoint.
    pub fn new(api: Arc<dyn ClusterApi>, config: Config) -> Self {
        let cache = Cache::load(&config.state_file).unwrap_or_else(|e| {
            tracing::error!(error = %e, "continuing without the DRA checkpoint; prepared claims may not be unprepared");
            Cache::default()
        });
        let inner = Inner {
            config,
            api,
            plugins: Mutex::default(),
            cache: Mutex::new(cache),
            busy: tokio::sync::Mutex::new(()),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The plugin watcher's handler for type `DRAPlugin`.
    pub fn handler(&self) -> Arc<dyn wasmlet_plugins::Handler> {
        Arc::new(plugins::DraHandler { inner: self.inner.clone() })
    }

    /// Deletes the node's ResourceSlices (no driver has registered yet, so
    /// none is usable: upstream does the same at start), then waits for
    /// `cancel`; pending deletions stop with it.
    pub async fn run(&self, cancel: CancellationToken) {
        let inner = self.inner.clone();
        let stop = cancel.clone();
        self.inner.tasks.spawn(async move { inner.wipe_slices(None, &stop).await });
        cancel.cancelled().await;
        self.inner.stop.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Whether pod `uid` may still hold prepared claims.
    pub fn holds_claims(&self, uid: &str) -> bool {
        self.inner.cache().claims.values().any(|c| c.pod_uids.contains(uid))
    }

    /// The UIDs of the pods holding prepared claims.
    pub fn pods_with_claims(&self) -> Vec<String> {
        let cache = self.inner.cache();
        let mut uids: Vec<String> = cache.claims.values().flat_map(|c| c.pod_uids.iter().cloned()).collect();
        uids.sort();
        uids.dedup();
        uids
    }
}

impl Inner {
    pub(crate) fn plugins(&self) -> MutexGuard<'_, Plugins> {
        self.plugins.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes the checkpoint.
    pub(crate) fn save(&self) -> Result<(), String> {
        let cache = self.cache().clone();
        cache.save(&self.config.state_file).map_err(|e| format!("checkpoint ResourceClaim state: {e}"))
    }

    /// Deletes the node's slices (of `driver`), retrying until it works or `cancel`.
    pub(crate) async fn wipe_slices(&self, driver: Option<&str>, cancel: &CancellationToken) {
        let node = &self.config.node_name;
        let mut delays = WIPE_RETRY.delays();
        loop {
            let attempt = tokio::select! {
                r = self.api.delete_slices(node, driver) => r,
                () = cancel.cancelled() => return,
            };
            match attempt {
                Ok(()) => {
                    tracing::info!(driver = driver.unwrap_or("<all>"), "deleted the node's ResourceSlices");
                    return;
                }
                Err(e) => {
                    let delay = delays.next().unwrap_or(WIPE_RETRY.max);
                    tracing::warn!(error = %e, retry_in = ?delay, "deleting the node's ResourceSlices failed");
                    if !wasmlet_retry::sleep(delay, cancel).await {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
