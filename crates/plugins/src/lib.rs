//! The kubelet's plugin watcher (upstream `pkg/kubelet/pluginmanager`).
//!
//! Plugins (CSI drivers, device plugins, DRA drivers) announce themselves
//! by creating a Unix socket in `<root-dir>/plugins_registry` that serves
//! `pluginregistration` v1. For each socket the [`Watcher`]:
//!
//! 1. dials it ([`Timeouts::dial`]) and calls `GetInfo` ([`Timeouts::get_info`]);
//! 2. picks the [`Handler`] for the plugin's type from [`Handlers`];
//! 3. asks the handler to validate, then register the plugin;
//! 4. sends `NotifyRegistrationStatus` with the outcome ([`Timeouts::notify`]).
//!
//! A plugin that fails any step is refused with a logged reason and tried
//! again with back-off ([`Config::retry`]) while its socket exists. Each
//! socket has its own task, so a slow or silent plugin never holds up the
//! others. Removing the socket deregisters the plugin. Sockets present at
//! start count; names starting with `.` are ignored.
//!
//! [`dial`] also gives handlers their gRPC channels to plugin endpoints.

pub mod dial;
pub mod handler;
pub mod register;
pub mod watcher;

use std::path::PathBuf;
use std::time::Duration;

pub use handler::{BoxError, Handler, Handlers, Plugin};
pub use register::{RegisterError, RpcError};
pub use wasmlet_plugins_proto::pluginregistration::{CSI_PLUGIN, DEVICE_PLUGIN, DRA_PLUGIN};
use wasmlet_retry::Backoff;
pub use watcher::{WatchError, Watcher};

/// The directory under the root directory that plugins put their
/// registration sockets in (upstream `plugins_registry`).
pub const REGISTRY_DIR: &str = "plugins_registry";
/// Upstream's dial timeout for registration sockets.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Upstream's `GetInfo` timeout.
pub const DEFAULT_GET_INFO_TIMEOUT: Duration = Duration::from_secs(1);
/// Upstream's `NotifyRegistrationStatus` timeout.
pub const DEFAULT_NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`Config::retry`]: upstream retries failed registrations from
/// 500 ms, doubling up to about 2 minutes.
pub const DEFAULT_RETRY: Backoff = Backoff { min: Duration::from_millis(500), max: Duration::from_secs(120) };
/// Default [`Config::rescan`].
pub const DEFAULT_RESCAN: Duration = Duration::from_secs(30);

/// How long each registration call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to the registration socket.
    pub dial: Duration,
    /// `GetInfo`.
    pub get_info: Duration,
    /// `NotifyRegistrationStatus`.
    pub notify: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { dial: DEFAULT_DIAL_TIMEOUT, get_info: DEFAULT_GET_INFO_TIMEOUT, notify: DEFAULT_NOTIFY_TIMEOUT }
    }
}

/// The watcher's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory watched: `<root-dir>/plugins_registry`.
    pub dir: PathBuf,
    /// Call timeouts.
    pub timeouts: Timeouts,
    /// Back-off between failed registrations of one socket.
    pub retry: Backoff,
    /// The directory is listed again this often even without inotify
    /// events (a safety net; events normally wake the watcher at once).
    pub rescan: Duration,
}

impl Config {
    /// Upstream's settings for the `plugins_registry` of `root_dir`.
    pub fn new(root_dir: &std::path::Path) -> Self {
        Self {
            dir: root_dir.join(REGISTRY_DIR),
            timeouts: Timeouts::default(),
            retry: DEFAULT_RETRY,
            rescan: DEFAULT_RESCAN,
        }
    }
}
