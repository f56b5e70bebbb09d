//! Running the node plugin machinery: the device plugin manager, the DRA
//! manager and the plugin watcher that feeds them.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;

/// Starts the managers and the watcher on `tracker`; each logs and gives up
/// if it cannot start (pods without devices still run).
pub(crate) fn spawn(
    settings: &Settings,
    devices: &wasmlet_devices::DeviceManager,
    dra: &wasmlet_dra::DraManager,
    handlers: wasmlet_plugins::Handlers,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    let (d, c) = (devices.clone(), cancel.clone());
    tracker.spawn(async move {
        if let Err(e) = d.run(c).await {
            tracing::error!(error = %wasmlet_retry::Chain(&e), "the device plugin manager could not start: no device plugin can register on kubelet.sock");
        }
    });
    let (d, c) = (dra.clone(), cancel.clone());
    tracker.spawn(async move { d.run(c).await });
    let watcher = wasmlet_plugins::Watcher::new(wasmlet_plugins::Config::new(&settings.root_dir), handlers);
    tracker.spawn(async move {
        if let Err(e) = watcher.run(cancel).await {
            tracing::error!(error = %wasmlet_retry::Chain(&e), "the plugin watcher could not start: no plugin can register through plugins_registry");
        }
    });
}

/// The device plugins' capacity as the node status takes it.
pub(crate) fn extended(capacity: &wasmlet_devices::Capacity) -> BTreeMap<String, wasmlet_node::Extended> {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    capacity
        .resources
        .iter()
        .map(|(name, a)| {
            (name.clone(), wasmlet_node::Extended { capacity: u(a.capacity), allocatable: u(a.allocatable) })
        })
        .collect()
}
