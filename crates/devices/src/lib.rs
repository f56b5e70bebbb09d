//! The device plugin manager (upstream `pkg/kubelet/cm/devicemanager`,
//! device plugin API `v1beta1`).
//!
//! - Plugins register on the `Registration` service at
//!   `<root-dir>/device-plugins/kubelet.sock` ([`DeviceManager::run`]), or
//!   through the plugin watcher as type `DevicePlugin`
//!   ([`DeviceManager::handler`]); `kubelet.sock` is served by a minimal
//!   HTTP/2 of our own (`wire`), which takes grpc-go's socket-path
//!   `:authority`. The manager dials the plugin, asks for
//!   its options and keeps its `ListAndWatch` stream open.
//! - [`DeviceManager::capacity`] follows each extended resource: capacity
//!   counts every device, allocatable the healthy ones. A plugin that goes
//!   away turns its devices unhealthy at once; after
//!   [`Config::stop_grace`] (upstream: 5 minutes) its capacity is 0.
//! - [`DeviceManager::admit`] allocates devices to a pod's containers at
//!   admission (`GetPreferredAllocation` when offered, then `Allocate`), and
//!   refuses the pod with upstream's reasons when it cannot.
//! - [`DeviceManager::container_devices`] gives a starting container what
//!   `Allocate` answered (after `PreStartContainer` when the plugin asks).
//! - Allocations are checkpointed (`kubelet_internal_checkpoint` in the
//!   device plugin directory): a restarted agent keeps them, never hands a
//!   device out twice, and frees them on [`DeviceManager::release`] /
//!   [`DeviceManager::retain`].

mod allocate;
mod checkpoint;
mod endpoint;
mod handler;
mod options;
mod pod_devices;
mod registration;
pub mod resource;
mod state;
mod wire;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;

pub use allocate::{DeviceError, Rejection};
pub use checkpoint::CheckpointError;
pub use endpoint::ConnectError;
pub use options::{ContainerDevices, DeviceMount, DeviceNode};
pub use registration::StartError;

use crate::endpoint::Endpoint;
use crate::state::{Resource, State};

/// The device plugin directory under the root directory.
pub const DIR: &str = "device-plugins";
/// The checkpoint's file name in it (upstream's).
pub const CHECKPOINT_FILE: &str = "kubelet_internal_checkpoint";
/// Upstream `endpointStopGracePeriod`.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5 * 60);
/// Upstream's dial timeout for plugin sockets.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for `GetDevicePluginOptions`, `GetPreferredAllocation` and
/// `Allocate` (upstream has none; a plugin that never answers would hold
/// admission forever).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The manager's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The device plugin directory: `kubelet.sock`, plugin sockets, the checkpoint.
    pub dir: PathBuf,
    /// How long a vanished plugin's resource keeps its capacity.
    pub stop_grace: Duration,
    /// Dialling a plugin.
    pub dial_timeout: Duration,
    /// One unary call to a plugin.
    pub call_timeout: Duration,
}

impl Config {
    /// Upstream's settings for `<root_dir>/device-plugins`.
    pub fn new(root_dir: &Path) -> Self {
        Self {
            dir: root_dir.join(DIR),
            stop_grace: DEFAULT_STOP_GRACE,
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

/// One extended resource's amounts in the node status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    /// All devices.
    pub capacity: i64,
    /// Healthy devices.
    pub allocatable: i64,
}

/// The extended resources of device plugins, for the node status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capacity {
    /// By resource name; a resource whose plugin is gone past the grace
    /// period stays at 0.
    pub resources: BTreeMap<String, Amounts>,
}

/// One allocation, as [`DeviceManager::allocations`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocated {
    /// The pod's UID.
    pub pod_uid: String,
    /// The container.
    pub container: String,
    /// The resource.
    pub resource: String,
    /// The device IDs.
    pub devices: Vec<String>,
}

/// The device plugin manager. Cheap to clone.
#[derive(Clone)]
pub struct DeviceManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DeviceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceManager").field("dir", &self.inner.config.dir).finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    state: Mutex<State>,
    /// Serializes allocations (admission is one pod at a time upstream).
    pub(crate) allocating: tokio::sync::Mutex<()>,
    checkpoint_lock: Mutex<()>,
    capacity: watch::Sender<Capacity>,
    changed: Notify,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl DeviceManager {
    /// A manager for `config`, with the allocations of the checkpoint. As
    /// upstream, resources known from the checkpoint count 0 devices until
    /// their plugin registers again (the grace period runs from now).
    pub fn new(config: Config) -> Self {
        let path = config.dir.join(CHECKPOINT_FILE);
        let cp = checkpoint::load(&path).unwrap_or_else(|e| {
            tracing::error!(error = %e, "continuing without the device manager checkpoint; allocations may be lost");
            checkpoint::Checkpoint::default()
        });
        let now = tokio::time::Instant::now();
        let mut state = State { pods: cp.pods, ..State::default() };
        for resource in cp.registered.keys() {
            state.resources.insert(resource.clone(), Resource { stopped_at: Some(now), ..Resource::default() });
        }
        let capacity = watch::Sender::new(state.capacity());
        let inner = Inner {
            config,
            state: Mutex::new(state),
            allocating: tokio::sync::Mutex::new(()),
            checkpoint_lock: Mutex::new(()),
            capacity,
            changed: Notify::new(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The extended resources as they change.
    pub fn capacity(&self) -> watch::Receiver<Capacity> {
        self.inner.capacity.subscribe()
    }

    /// The plugin watcher's handler for type `DevicePlugin`.
    pub fn handler(&self) -> Arc<dyn wasmlet_plugins::Handler> {
        Arc::new(handler::DevicePluginHandler { inner: self.inner.clone() })
    }

    /// Serves `Registration` on `kubelet.sock` (after removing stale
    /// sockets from the directory, as upstream does, which makes running
    /// plugins register again) and expires vanished plugins' resources,
    /// until `cancel`. On return every plugin stream is closed.
    ///
    /// # Errors
    ///
    /// The directory or the socket cannot be set up.
    pub async fn run(&self, cancel: CancellationToken) -> Result<(), StartError> {
        let listener = registration::bind(&self.inner.config.dir)?;
        tracing::info!(dir = %self.inner.config.dir.display(), "device plugin registration serving");
        let serve = registration::serve(self.inner.clone(), listener, cancel.clone());
        tokio::join!(serve, self.inner.expire_loop(&cancel));
        self.inner.stop.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        Ok(())
    }

    /// Forgets pod `uid`'s devices (its containers will not run again).
    pub fn release(&self, uid: &str) {
        if self.inner.lock().pods.remove(uid) {
            tracing::info!(pod.uid = uid, "devices released");
            self.inner.save();
        }
    }

    /// Forgets the devices of every pod for which `keep` is false (after an
    /// agent restart: pods that are gone).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let gone = self.inner.lock().pods.retain(keep);
        if !gone.is_empty() {
            tracing::info!(pods = ?gone, "devices of pods that are gone released");
            self.inner.save();
        }
    }

    /// Every allocation, in a stable order.
    pub fn allocations(&self) -> Vec<Allocated> {
        let state = self.inner.lock();
        state
            .pods
            .entries()
            .map(|(uid, c, r, a)| Allocated {
                pod_uid: uid.clone(),
                container: c.clone(),
                resource: r.clone(),
                devices: a.devices.iter().cloned().collect(),
            })
            .collect()
    }
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends the capacity if it changed and wakes the expiry loop.
    fn publish(&self) {
        let now = self.lock().capacity();
        self.capacity.send_if_modified(|c| {
            let changed = *c != now;
            *c = now;
            changed
        });
        self.changed.notify_one();
    }

    /// Writes the checkpoint; failures are logged (the state in memory stays right).
    pub(crate) fn save(&self) {
        let _serial = self.checkpoint_lock.lock().unwrap_or_else(|p| p.into_inner());
        let cp = {
            let state = self.lock();
            checkpoint::Checkpoint { registered: state.registered(), pods: state.pods.clone() }
        };
        if let Err(e) = checkpoint::save(&self.config.dir.join(CHECKPOINT_FILE), &cp) {
            tracing::error!(error = %e, "writing the device manager checkpoint failed");
        }
    }

    /// Dials the plugin of `resource` at `socket` and follows it (replacing
    /// an earlier registration of the resource).
    pub(crate) async fn connect(self: &Arc<Self>, resource: &str, socket: &Path) -> Result<(), ConnectError> {
        if self.stop.is_cancelled() {
            return Err(ConnectError::Stopping);
        }
        let c = &self.config;
        let ep = endpoint::connect(resource, socket, c.dial_timeout, c.call_timeout, self.stop.child_token()).await?;
        let ep = Arc::new(ep);
        {
            let mut state = self.lock();
            let r = state.resources.entry(resource.to_owned()).or_default();
            if let Some(old) = r.endpoint.replace(ep.clone()) {
                old.stop.cancel();
            }
            r.options = Some(ep.options);
            r.stopped_at = None;
            state.removed.remove(resource);
        }
        tracing::info!(%resource, socket = %socket.display(), options = ?ep.options, "device plugin connected");
        let span = tracing::info_span!("device_plugin", resource = %resource);
        self.tasks.spawn(endpoint::watch(self.clone(), ep).instrument(span));
        self.publish();
        Ok(())
    }

    /// A plugin's new device list.
    pub(crate) fn devices_listed(&self, ep: &Endpoint, devices: &[api::Device]) {
        {
            let mut state = self.lock();
            let current = state.resources.get(&ep.resource).and_then(|r| r.endpoint.as_ref()).map(|e| e.id);
            if current != Some(ep.id) {
                return;
            }
            state.set_devices(&ep.resource, devices);
        }
        let healthy = devices.iter().filter(|d| d.health == api::HEALTHY).count();
        tracing::info!(total = devices.len(), healthy, "device plugin listed its devices");
        self.publish();
        self.save();
    }

    /// The plugin's stream ended: its devices are unhealthy from now.
    pub(crate) fn disconnected(&self, ep: &Endpoint) {
        self.stop_endpoint(&ep.resource, |e| e.id == ep.id);
    }

    /// The plugin's registration socket went away.
    pub(crate) fn deregister(&self, resource: &str, socket: &Path) {
        self.stop_endpoint(resource, |e| e.socket == socket);
    }

    fn stop_endpoint(&self, resource: &str, matches: impl Fn(&Endpoint) -> bool) {
        {
            let mut state = self.lock();
            let Some(r) = state.resources.get_mut(resource) else { return };
            if !r.endpoint.as_deref().is_some_and(matches) {
                return;
            }
            r.stop(tokio::time::Instant::now());
        }
        tracing::warn!(
            %resource,
            grace = ?self.config.stop_grace,
            "device plugin disconnected: its devices are unhealthy; the capacity drops to 0 unless it registers again within the grace period"
        );
        self.publish();
        self.save();
    }

    /// Drops resources whose plugin stayed away past the grace period.
    async fn expire_loop(&self, cancel: &CancellationToken) {
        let grace = self.config.stop_grace;
        loop {
            let next = self.lock().next_expiry(grace);
            let wait = async {
                match next {
                    // Just past the deadline: expiry is "longer than the grace period".
                    Some(at) => tokio::time::sleep_until(at + Duration::from_millis(1)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait => {
                    if self.lock().expire(tokio::time::Instant::now(), grace) {
                        self.publish();
                        self.save();
                    }
                }
                () = self.changed.notified() => {}
                () = cancel.cancelled() => return,
            }
        }
    }
}

/// A gRPC error as upstream logs it.
pub(crate) fn rpc_error(status: &tonic::Status) -> String {
    format!("rpc error: code = {:?} desc = {}", status.code(), status.message())
}

#[cfg(test)]
mod tests;
