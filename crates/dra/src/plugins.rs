//! Registered DRA drivers (upstream `DRAPluginManager`): a driver's plugins
//! register through the plugin watcher as type `DRAPlugin`; calls go to
//! the most recent registration. When a driver's last plugin goes away its
//! ResourceSlices for this node are deleted after the wiping delay, unless
//! it comes back first.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::Instrument;
use wasmlet_plugins::{BoxError, Plugin};

use crate::Inner;
use crate::client::Service;

/// One registered plugin of a driver.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    pub(crate) endpoint: PathBuf,
    pub(crate) service: Service,
    pub(crate) channel: Channel,
}

/// Plugins by driver name, oldest first; pending slice wipes by driver.
#[derive(Debug, Default)]
pub(crate) struct Plugins {
    pub(crate) by_driver: HashMap<String, Vec<Registered>>,
    pub(crate) wipes: HashMap<String, CancellationToken>,
}

impl Plugins {
    /// The plugin to call for `driver`.
    pub(crate) fn get(&self, driver: &str) -> Result<Registered, String> {
        if driver.is_empty() {
            return Err("DRA driver name is empty".into());
        }
        self.by_driver
            .get(driver)
            .and_then(|p| p.last())
            .cloned()
            .ok_or_else(|| format!("DRA driver {driver} is not registered"))
    }
}

pub(crate) struct DraHandler {
    pub(crate) inner: Arc<Inner>,
}

fn invalid(plugin: &Plugin, e: String) -> BoxError {
    format!(
        "invalid supported gRPC versions of DRA driver plugin {} at endpoint {}: {e}",
        plugin.name,
        plugin.endpoint.display()
    )
    .into()
}

#[async_trait::async_trait]
impl wasmlet_plugins::Handler for DraHandler {
    fn validate(&self, plugin: &Plugin) -> Result<(), BoxError> {
        Service::choose(&plugin.versions).map(|_| ()).map_err(|e| invalid(plugin, e))
    }

    async fn register(&self, plugin: &Plugin) -> Result<(), BoxError> {
        let service = Service::choose(&plugin.versions).map_err(|e| invalid(plugin, e))?;
        let channel = wasmlet_plugins::dial::lazy(&plugin.endpoint);
        let mut plugins = self.inner.plugins();
        let list = plugins.by_driver.entry(plugin.name.clone()).or_default();
        if list.iter().any(|p| p.endpoint == plugin.endpoint) {
            return Err(format!(
                "endpoint {} already registered for DRA driver plugin {}",
                plugin.endpoint.display(),
                plugin.name
            )
            .into());
        }
        list.push(Registered { endpoint: plugin.endpoint.clone(), service, channel });
        if let Some(wipe) = plugins.wipes.remove(&plugin.name) {
            wipe.cancel();
            tracing::info!(driver = %plugin.name, "DRA driver is back; its ResourceSlices stay");
        }
        tracing::info!(driver = %plugin.name, endpoint = %plugin.endpoint.display(), ?service, "DRA driver registered");
        Ok(())
    }

    async fn deregister(&self, plugin: &Plugin) {
        let mut plugins = self.inner.plugins();
        let Some(list) = plugins.by_driver.get_mut(&plugin.name) else { return };
        list.retain(|p| p.endpoint != plugin.endpoint);
        let gone = list.is_empty();
        if gone {
            plugins.by_driver.remove(&plugin.name);
        }
        tracing::info!(driver = %plugin.name, endpoint = %plugin.endpoint.display(), "DRA driver plugin deregistered");
        if !gone || plugins.wipes.contains_key(&plugin.name) {
            return;
        }
        let cancel = self.inner.stop.child_token();
        plugins.wipes.insert(plugin.name.clone(), cancel.clone());
        drop(plugins);
        let (inner, driver) = (self.inner.clone(), plugin.name.clone());
        let delay = inner.config.wiping_delay;
        let span = tracing::info_span!("dra_wipe", driver = %driver);
        self.inner.tasks.spawn(
            async move {
                if !wasmlet_retry::sleep(delay, &cancel).await {
                    return;
                }
                inner.plugins().wipes.remove(&driver);
                inner.wipe_slices(Some(&driver), &cancel).await;
            }
            .instrument(span),
        );
    }
}
