//! One registration of one socket, as upstream's operation generator does
//! it: dial, `GetInfo` (bounded), pick the handler by type, validate,
//! register, then `NotifyRegistrationStatus` with the outcome.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::Channel;
use wasmlet_plugins_proto::pluginregistration::registration_client::RegistrationClient;
use wasmlet_plugins_proto::pluginregistration::{InfoRequest, RegistrationStatus};

use crate::Timeouts;
use crate::dial::{self, DialError};
use crate::handler::{BoxError, Handlers, Plugin};

/// Why a socket's registration failed (the plugin was told when it could be).
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The socket could not be dialled.
    #[error("RegisterPlugin error -- dial failed at socket {}", socket.display())]
    Dial {
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: DialError,
    },
    /// `GetInfo` failed or took too long.
    #[error("RegisterPlugin error -- failed to get plugin info using RPC GetInfo at socket {}", socket.display())]
    GetInfo {
        /// The socket.
        socket: PathBuf,
        /// Why.
        #[source]
        source: RpcError,
    },
    /// The plugin was refused: no handler for its type, an invalid answer,
    /// or the handler's validation or registration failed.
    #[error("{0}")]
    Refused(String),
    /// Telling the plugin the outcome failed (after a successful
    /// registration the plugin is deregistered again).
    #[error("RegisterPlugin error -- failed to send registration status at socket {}: {message}", socket.display())]
    Notify {
        /// The socket.
        socket: PathBuf,
        /// What was to be sent, if it was an error.
        message: String,
        /// Why.
        #[source]
        source: RpcError,
    },
}

/// A gRPC call that failed or timed out.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The plugin answered with an error (or an undecodable answer).
    #[error("rpc error: code = {:?} desc = {}", .0.code(), .0.message())]
    Status(tonic::Status),
    /// No answer in time.
    #[error("rpc error: code = DeadlineExceeded desc = no answer within {0:?}")]
    Timeout(Duration),
}

/// Calls `call` with a deadline.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, RpcError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(RpcError::Status(status)),
        Err(_) => Err(RpcError::Timeout(timeout)),
    }
}

/// Registers the plugin behind `socket` with its handler.
pub(crate) async fn register(socket: &Path, handlers: &Handlers, t: &Timeouts) -> Result<Plugin, RegisterError> {
    let channel = dial::connect(socket, t.dial)
        .await
        .map_err(|source| RegisterError::Dial { socket: socket.to_owned(), source })?;
    let mut client = RegistrationClient::new(channel);
    let info = bounded(t.get_info, client.get_info(InfoRequest {}))
        .await
        .map_err(|source| RegisterError::GetInfo { socket: socket.to_owned(), source })?;
    let endpoint = if info.endpoint.is_empty() { socket.to_owned() } else { PathBuf::from(&info.endpoint) };
    let plugin = Plugin {
        socket: socket.to_owned(),
        kind: info.r#type,
        name: info.name,
        endpoint,
        versions: info.supported_versions,
    };
    let Some(handler) = handlers.get(&plugin.kind) else {
        let message = format!(
            "RegisterPlugin error -- no handler registered for plugin type: {} at socket {}",
            plugin.kind,
            socket.display()
        );
        return Err(refuse(&mut client, socket, message, t).await);
    };
    if let Err(e) = check_answer(&plugin).and_then(|()| handler.validate(&plugin)) {
        let message = format!("RegisterPlugin error -- plugin validation failed with err: {e}");
        return Err(refuse(&mut client, socket, message, t).await);
    }
    if let Err(e) = handler.register(&plugin).await {
        let message = format!("RegisterPlugin error -- plugin registration failed with err: {e}");
        return Err(refuse(&mut client, socket, message, t).await);
    }
    let status = RegistrationStatus { plugin_registered: true, error: String::new() };
    if let Err(source) = bounded(t.notify, client.notify_registration_status(status)).await {
        handler.deregister(&plugin).await;
        return Err(RegisterError::Notify { socket: socket.to_owned(), message: String::new(), source });
    }
    Ok(plugin)
}

/// What every plugin's answer must have, whatever its type: a name, and an
/// absolute endpoint.
fn check_answer(plugin: &Plugin) -> Result<(), BoxError> {
    if plugin.name.is_empty() {
        return Err("the plugin sent an empty name".into());
    }
    if !plugin.endpoint.is_absolute() {
        return Err(format!("endpoint {:?} is not an absolute path", plugin.endpoint).into());
    }
    Ok(())
}

/// Tells the plugin it was refused (best effort) and returns the error.
async fn refuse(
    client: &mut RegistrationClient<Channel>,
    socket: &Path,
    message: String,
    t: &Timeouts,
) -> RegisterError {
    let status = RegistrationStatus { plugin_registered: false, error: message.clone() };
    match bounded(t.notify, client.notify_registration_status(status)).await {
        Ok(_) => RegisterError::Refused(message),
        Err(source) => RegisterError::Notify { socket: socket.to_owned(), message, source },
    }
}
