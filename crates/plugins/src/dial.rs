//! gRPC channels over Unix sockets, for the watcher and for the handlers'
//! clients (CSI, device plugins, DRA).

use std::io;
use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The URI tonic needs for a request's `:authority`; the connector ignores it.
const AUTHORITY: &str = "http://localhost";

fn endpoint() -> Endpoint {
    Endpoint::from_static(AUTHORITY)
}

fn connector(
    socket: &Path,
) -> impl tower::Service<Uri, Response = TokioIo<UnixStream>, Error = io::Error, Future: Send> + Clone + Send + 'static
{
    let socket = socket.to_owned();
    tower::service_fn(move |_: Uri| {
        let socket = socket.clone();
        async move { UnixStream::connect(socket).await.map(TokioIo::new) }
    })
}

/// Connects to `socket` now, giving up after `timeout` (upstream dials
/// registration sockets with a blocking dial and a 10 s timeout).
///
/// # Errors
///
/// The connection or HTTP/2 handshake failed, or took longer than `timeout`.
pub async fn connect(socket: &Path, timeout: Duration) -> Result<Channel, DialError> {
    let endpoint = endpoint();
    let connect = endpoint.connect_with_connector(connector(socket));
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(DialError::Connect(e)),
        Err(_) => Err(DialError::Timeout(timeout)),
    }
}

/// A channel to `socket` that connects on first use and reconnects after
/// failures (a plugin restarting on the same socket is reached again).
pub fn lazy(socket: &Path) -> Channel {
    endpoint().connect_with_connector_lazy(connector(socket))
}

/// Why [`connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Connecting failed.
    #[error("failed to dial socket")]
    Connect(#[source] tonic::transport::Error),
    /// Connecting took too long.
    #[error("failed to dial socket: no connection within {0:?}")]
    Timeout(Duration),
}
