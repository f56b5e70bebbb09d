//! The CSI plugin handler (upstream `csi_plugin.go` `RegistrationHandler`):
//! a `1.x` version check, `NodeGetInfo`, then the node's CSI information.

use std::sync::Arc;
use std::time::Duration;

use wasmlet_plugins::{BoxError, Handler, Plugin};

use crate::client::{self, DriverClient};
use crate::drivers::{Driver, Drivers};
use crate::nodeinfo::NodeInfoManager;
use crate::version;

/// Registers CSI drivers announced in `plugins_registry`.
pub struct CsiHandler {
    pub(crate) drivers: Drivers,
    pub(crate) nodeinfo: NodeInfoManager,
    /// Deadline of each call to a driver (upstream `csiTimeout`, 2 minutes).
    pub(crate) timeout: Duration,
}

impl CsiHandler {
    /// The handler, as the plugin watcher takes it.
    pub fn into_handler(self) -> Arc<dyn Handler> {
        Arc::new(self)
    }

    fn versions(&self, plugin: &Plugin) -> Result<version::Version, BoxError> {
        let highest = version::highest_supported(&plugin.versions).map_err(|e| {
            format!("validation failed for CSI Driver {} at endpoint {}: {e}", plugin.name, plugin.endpoint.display())
        })?;
        if let Ok(existing) = self.drivers.get(&plugin.name)
            && existing.endpoint != plugin.endpoint
            && existing.version >= highest
        {
            return Err(format!(
                "validation failed for CSI Driver {} at endpoint {}: another driver with the same name is already registered with a higher supported version: {}",
                plugin.name,
                plugin.endpoint.display(),
                existing.version
            )
            .into());
        }
        Ok(highest)
    }
}

#[async_trait::async_trait]
impl Handler for CsiHandler {
    fn validate(&self, plugin: &Plugin) -> Result<(), BoxError> {
        self.versions(plugin).map(drop)
    }

    async fn register(&self, plugin: &Plugin) -> Result<(), BoxError> {
        let version = self.versions(plugin)?;
        let client = DriverClient::new(&plugin.endpoint, self.timeout);
        self.drivers.set(&plugin.name, Driver { endpoint: plugin.endpoint.clone(), version, client: client.clone() });
        let info = match client.node_get_info().await.map_err(BoxError::from).and_then(|r| Ok(client::node_info(r)?)) {
            Ok(info) => info,
            Err(e) => {
                self.drivers.remove(&plugin.name);
                return Err(format!("NodeGetInfo of CSI driver {}: {e}", plugin.name).into());
            }
        };
        if let Err(e) = self.nodeinfo.install(&plugin.name, &info).await {
            self.drivers.remove(&plugin.name);
            return Err(Box::new(e));
        }
        tracing::info!(driver = %plugin.name, node_id = %info.node_id, "CSI driver registered");
        Ok(())
    }

    async fn deregister(&self, plugin: &Plugin) {
        // Only the registration that is current goes (a replacement at
        // another endpoint keeps the driver).
        if self.drivers.get(&plugin.name).is_ok_and(|d| d.endpoint != plugin.endpoint) {
            return;
        }
        self.drivers.remove(&plugin.name);
        if let Err(e) = self.nodeinfo.uninstall(&plugin.name).await {
            tracing::warn!(driver = %plugin.name, error = %wasmlet_retry::Chain(&e), "removing the CSI driver from the node failed");
        } else {
            tracing::info!(driver = %plugin.name, "CSI driver deregistered");
        }
    }
}
