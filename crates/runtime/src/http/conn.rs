//! Accepting connections and serving each with hyper (HTTP/1.1, and HTTP/2
//! with prior knowledge, detected per connection), shut down gracefully
//! when the server drains.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::request::Server;
use super::spec::HttpLimits;

/// How long accepting pauses after an error (e.g. out of file descriptors)
/// before it tries again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// hyper's executor for HTTP/2 streams: tasks of the server's tracker, so
/// none outlives the server.
#[derive(Clone)]
pub(crate) struct TrackedExecutor(pub(crate) TaskTracker);

impl<F> hyper::rt::Executor<F> for TrackedExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        self.0.spawn(future);
    }
}

/// The connection builder of a server with `limits`.
pub(crate) fn builder(tasks: TaskTracker, limits: &HttpLimits) -> auto::Builder<TrackedExecutor> {
    let mut builder = auto::Builder::new(TrackedExecutor(tasks));
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(limits.max_streams_per_connection);
    builder
}

/// Accepts connections on `listener` until `stop`, one per permit of
/// `connections`, each served in a task of the server's tracker.
pub(crate) async fn accept(
    listener: TcpListener,
    server: &Arc<Server>,
    builder: &Arc<auto::Builder<TrackedExecutor>>,
    connections: &Arc<Semaphore>,
    stop: &CancellationToken,
    draining: &CancellationToken,
) {
    loop {
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            permit = Arc::clone(connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(error = %error, "cannot accept a connection");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                    }
                }
            },
        };
        // As `wasmtime serve`: small response writes must not wait for
        // Nagle's algorithm.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(error = %error, "cannot set TCP_NODELAY");
        }
        let span = tracing::debug_span!("connection", client.addr = %peer);
        let connection = serve(Arc::clone(server), Arc::clone(builder), stream, permit, draining.clone());
        server.tasks.spawn(connection.instrument(span));
    }
}

/// Serves one connection until it ends, shutting it down gracefully when
/// the server drains (idle connections close at once, requests in flight
/// finish) and dropping it when the server kills what is left.
async fn serve(
    server: Arc<Server>,
    builder: Arc<auto::Builder<TrackedExecutor>>,
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    draining: CancellationToken,
) {
    let stats = server.http_stats.clone();
    stats.connection_opened();
    let kill = server.kill.clone();
    let service = hyper::service::service_fn(move |request| {
        let server = Arc::clone(&server);
        async move { Ok::<_, Infallible>(server.handle(request).await) }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        biased;
        result = connection.as_mut() => Some(result),
        () = kill.cancelled() => None,
        () = draining.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                biased;
                result = connection.as_mut() => Some(result),
                () = kill.cancelled() => None,
            }
        }
    };
    match result {
        Some(Ok(())) => {}
        // Clients going away mid-request and the like: expected.
        Some(Err(error)) => tracing::debug!(error = %error, "connection ended with an error"),
        None => tracing::debug!("connection dropped at the end of the drain period"),
    }
    stats.connection_closed();
}

/// A listener on `addr` with `backlog`, `SO_REUSEADDR` set (so a restarted
/// server can rebind a port with connections in `TIME_WAIT`).
pub(crate) fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}
