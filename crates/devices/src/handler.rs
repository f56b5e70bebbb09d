//! Device plugins that register through the plugin watcher
//! (`plugins_registry`, type `DevicePlugin`) rather than on `kubelet.sock`.

use std::sync::Arc;

use wasmlet_plugins::{BoxError, Plugin};
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;

use crate::Inner;
use crate::resource::is_extended_resource_name;

pub(crate) struct DevicePluginHandler {
    pub(crate) inner: Arc<Inner>,
}

#[async_trait::async_trait]
impl wasmlet_plugins::Handler for DevicePluginHandler {
    fn validate(&self, plugin: &Plugin) -> Result<(), BoxError> {
        if !plugin.versions.iter().any(|v| v == api::VERSION) {
            let versions = plugin.versions.join(" ");
            return Err(format!(
                "manager version, {}, is not among plugin supported versions [{versions}]",
                api::VERSION
            )
            .into());
        }
        if !is_extended_resource_name(&plugin.name) {
            return Err(
                format!("invalid name of device plugin socket: the ResourceName {:?} is invalid", plugin.name).into()
            );
        }
        Ok(())
    }

    async fn register(&self, plugin: &Plugin) -> Result<(), BoxError> {
        self.inner.connect(&plugin.name, &plugin.endpoint).await.map_err(|e| chain(&e).into())
    }

    async fn deregister(&self, plugin: &Plugin) {
        self.inner.deregister(&plugin.name, &plugin.endpoint);
    }
}

/// An error with its sources, `a: b: c`.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
