//! What a plugin type plugs into: the [`Handler`] trait, the [`Plugin`] a
//! socket announced, and [`Handlers`], the handlers by plugin type.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// An error a handler returns; its text goes back to the plugin in
/// `NotifyRegistrationStatus.error` and into the log.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A plugin as its registration socket described it (`GetInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The registration socket in `plugins_registry`.
    pub socket: PathBuf,
    /// `PluginInfo.type`: `CSIPlugin`, `DevicePlugin`, `DRAPlugin`.
    pub kind: String,
    /// `PluginInfo.name` (for CSI the driver name).
    pub name: String,
    /// Where the plugin's own service listens: `PluginInfo.endpoint`, or the
    /// registration socket itself when that is empty (as upstream).
    pub endpoint: PathBuf,
    /// `PluginInfo.supported_versions`, as sent.
    pub versions: Vec<String>,
}

impl fmt::Display for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} plugin {:?} at {}", self.kind, self.name, self.endpoint.display())
    }
}

/// One plugin type's side of registration (upstream `PluginHandler`).
///
/// The watcher calls these from the plugin's own task: a slow handler delays
/// only its plugin. For one socket the calls never overlap, and a plugin is
/// deregistered before the socket that replaced it is registered.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Checks the announced plugin before anything else (upstream
    /// `ValidatePlugin`).
    ///
    /// # Errors
    ///
    /// Why the plugin is refused; the watcher tells the plugin and retries
    /// later with back-off.
    fn validate(&self, plugin: &Plugin) -> Result<(), BoxError>;

    /// Registers a validated plugin (upstream `RegisterPlugin`).
    ///
    /// # Errors
    ///
    /// Why registration failed; the handler must have undone its part.
    async fn register(&self, plugin: &Plugin) -> Result<(), BoxError>;

    /// The plugin's socket went away, or the watcher stops using it after a
    /// failed status notification (upstream `DeRegisterPlugin`).
    async fn deregister(&self, plugin: &Plugin);
}

/// The handlers by plugin type. Cheap to clone.
#[derive(Clone, Default)]
pub struct Handlers {
    by_kind: BTreeMap<String, Arc<dyn Handler>>,
}

impl Handlers {
    /// No handlers: every plugin is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the handler of plugin type `kind` (e.g.
    /// [`CSI_PLUGIN`](wasmlet_plugins_proto::pluginregistration::CSI_PLUGIN)).
    #[must_use]
    pub fn with(mut self, kind: &str, handler: Arc<dyn Handler>) -> Self {
        self.by_kind.insert(kind.to_owned(), handler);
        self
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.by_kind.get(kind)
    }

    /// The plugin types handled.
    pub fn kinds(&self) -> impl Iterator<Item = &str> {
        self.by_kind.keys().map(String::as_str)
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.kinds()).finish()
    }
}
