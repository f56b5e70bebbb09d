//! The CSI node side of a kubelet, for WASI guests.
//!
//! - [`Csi::handler`]: the plugin watcher's handler for `CSIPlugin`
//!   sockets ([`registration`]): the `1.x` version check, `NodeGetInfo`, the
//!   CSINode entry, the `csi.volume.kubernetes.io/nodeid` annotation and the
//!   topology labels ([`nodeinfo`]).
//! - [`Csi::volumes`]: the [`VolumeManager`], which `wasmlet-volumes` calls
//!   for `persistentVolumeClaim`, inline `csi` and `ephemeral` volumes
//!   ([`manager`]): attach (through `volumesInUse` / `volumesAttached` and
//!   the VolumeAttachment, [`attach`]), stage, publish, unpublish, unstage,
//!   in upstream's on-disk layout ([`paths`]) so that a restarted agent finds
//!   everything again ([`reconstruct`]); volume stats ([`stats`]).
//! - [`Csi::spawn`]: the background work (the CSINode at start, the Node
//!   watch, `volumesInUse` reports, stats).

pub mod attach;
pub mod client;
pub mod drivers;
pub mod labels;
pub mod manager;
pub mod nodeinfo;
pub mod paths;
mod reconstruct;
pub mod registration;
pub mod spec;
pub mod stats;
pub mod version;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use drivers::Drivers;
pub use manager::VolumeManager;
pub use registration::CsiHandler;

/// Upstream's `csiTimeout`: the deadline of every call to a driver.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one set-up waits for an attachment before reporting
/// `FailedMount` (and trying again).
pub const DEFAULT_ATTACH_TIMEOUT: Duration = Duration::from_secs(120);
/// How often volume stats are measured (upstream `volumeStatsAggPeriod`).
pub const DEFAULT_STATS_PERIOD: Duration = Duration::from_secs(60);

/// Settings of the CSI node side.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name.
    pub node_name: String,
    /// The agent's root directory (upstream `/var/lib/kubelet`).
    pub root_dir: PathBuf,
    /// Deadline of each driver call.
    pub call_timeout: Duration,
    /// See [`DEFAULT_ATTACH_TIMEOUT`].
    pub attach_timeout: Duration,
    /// See [`DEFAULT_STATS_PERIOD`].
    pub stats_period: Duration,
}

impl Config {
    /// Upstream's timings for node `node_name` with root `root_dir`.
    pub fn new(node_name: &str, root_dir: PathBuf) -> Self {
        Self {
            node_name: node_name.to_owned(),
            root_dir,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            attach_timeout: DEFAULT_ATTACH_TIMEOUT,
            stats_period: DEFAULT_STATS_PERIOD,
        }
    }
}

/// The CSI node side.
pub struct Csi {
    volumes: VolumeManager,
    nodeinfo: nodeinfo::NodeInfoManager,
    attached: watch::Sender<BTreeSet<String>>,
    in_use: watch::Receiver<BTreeSet<String>>,
}

impl Csi {
    /// Reads back what is staged and published under the root directory.
    pub fn new(client: kube::Client, config: Config) -> Self {
        let state = reconstruct::state(&config.root_dir);
        let (attached, attached_rx) = watch::channel(BTreeSet::new());
        let (in_use_tx, in_use) = watch::channel(BTreeSet::new());
        let nodeinfo = nodeinfo::NodeInfoManager::new(client.clone(), &config.node_name);
        let volumes = VolumeManager {
            inner: Arc::new(manager::Inner {
                client,
                config,
                drivers: Drivers::default(),
                ops: tokio::sync::Mutex::new(state),
                in_use: in_use_tx,
                attached: attached_rx,
                stats: Mutex::default(),
            }),
        };
        Self { volumes, nodeinfo, attached, in_use }
    }

    /// The volume manager (for `wasmlet_volumes::Volumes::with_external`).
    pub fn volumes(&self) -> VolumeManager {
        self.volumes.clone()
    }

    /// The registered drivers.
    pub fn drivers(&self) -> Drivers {
        self.volumes.inner.drivers.clone()
    }

    /// The handler of `CSIPlugin` registrations.
    pub fn handler(&self) -> Arc<dyn wasmlet_plugins::Handler> {
        CsiHandler {
            drivers: self.drivers(),
            nodeinfo: self.nodeinfo.clone(),
            timeout: self.volumes.inner.config.call_timeout,
        }
        .into_handler()
    }

    /// Starts the background work on `tracker` until `cancel`: the CSINode
    /// (created even with no drivers), the watch of `volumesAttached`, the
    /// `volumesInUse` reports and the stats. `nodes` is the agent's watch of
    /// its own Node (latest object).
    pub fn spawn(
        &self,
        tracker: &TaskTracker,
        nodes: tokio::sync::watch::Receiver<Option<Arc<k8s_openapi::api::core::v1::Node>>>,
        cancel: CancellationToken,
    ) {
        let inner = &self.volumes.inner;
        let node = inner.config.node_name.clone();
        let nodeinfo = self.nodeinfo.clone();
        let c = cancel.clone();
        tracker.spawn(async move { nodeinfo.init_until_done(&c).await }.instrument(tracing::info_span!("csinode")));
        tracker.spawn(attach::watch_attached(nodes, self.attached.clone(), cancel.clone()));
        tracker.spawn(attach::report_in_use(inner.client.clone(), node, self.in_use.clone(), cancel.clone()));
        // A period of 0 turns the measurement off, as upstream's.
        if !inner.config.stats_period.is_zero() {
            let volumes = self.volumes.clone();
            tracker.spawn(async move { volumes.run_stats(cancel).await }.instrument(tracing::info_span!("csi_stats")));
        }
    }
}
