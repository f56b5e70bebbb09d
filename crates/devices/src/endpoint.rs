//! A connection to one device plugin: dialled when it registers, asked for
//! its options, then its `ListAndWatch` stream followed until it ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;
use wasmlet_plugins_proto::deviceplugin::v1beta1::device_plugin_client::DevicePluginClient;

use crate::Inner;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A registered plugin's endpoint.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// Tells apart successive registrations of one resource.
    pub(crate) id: u64,
    pub(crate) resource: String,
    pub(crate) socket: PathBuf,
    pub(crate) client: DevicePluginClient<Channel>,
    pub(crate) options: api::DevicePluginOptions,
    /// Ends the `ListAndWatch` task (replaced, deregistered, or stopping).
    pub(crate) stop: CancellationToken,
}

/// Why a plugin could not be connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Its socket could not be dialled.
    #[error("failed to dial device plugin at {}", socket.display())]
    Dial {
        /// The plugin's socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: wasmlet_plugins::dial::DialError,
    },
    /// `GetDevicePluginOptions` failed.
    #[error("failed to get device plugin options: {0}")]
    Options(String),
    /// The manager is stopping.
    #[error("the device manager is stopping")]
    Stopping,
}

/// Dials `socket` and asks for the plugin's options.
pub(crate) async fn connect(
    resource: &str,
    socket: &Path,
    dial_timeout: Duration,
    call_timeout: Duration,
    stop: CancellationToken,
) -> Result<Endpoint, ConnectError> {
    let channel = wasmlet_plugins::dial::connect(socket, dial_timeout)
        .await
        .map_err(|source| ConnectError::Dial { socket: socket.to_owned(), source })?;
    let mut client = DevicePluginClient::new(channel);
    let options = match tokio::time::timeout(call_timeout, client.get_device_plugin_options(api::Empty {})).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => return Err(ConnectError::Options(crate::rpc_error(&status))),
        Err(_) => return Err(ConnectError::Options(format!("no answer within {call_timeout:?}"))),
    };
    Ok(Endpoint {
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        resource: resource.to_owned(),
        socket: socket.to_owned(),
        client,
        options,
        stop,
    })
}

/// Follows the plugin's `ListAndWatch` stream until it ends or `ep.stop`;
/// a stream that ends (the plugin died or closed it) disconnects the plugin.
pub(crate) async fn watch(inner: Arc<Inner>, ep: Arc<Endpoint>) {
    let mut client = ep.client.clone();
    let opened = tokio::select! {
        r = client.list_and_watch(api::Empty {}) => r,
        () = ep.stop.cancelled() => return,
    };
    match opened {
        Err(status) => {
            tracing::warn!(error = %crate::rpc_error(&status), "ListAndWatch ended unexpectedly for device plugin");
        }
        Ok(stream) => {
            let mut stream = stream.into_inner();
            loop {
                let message = tokio::select! {
                    m = stream.message() => m,
                    () = ep.stop.cancelled() => return,
                };
                match message {
                    Ok(Some(update)) => inner.devices_listed(&ep, &update.devices),
                    Ok(None) => {
                        tracing::warn!("ListAndWatch ended for device plugin: the plugin closed the stream");
                        break;
                    }
                    Err(status) => {
                        tracing::warn!(error = %crate::rpc_error(&status), "ListAndWatch ended unexpectedly for device plugin");
                        break;
                    }
                }
            }
        }
    }
    inner.disconnected(&ep);
}
