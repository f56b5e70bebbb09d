//! [`Streaming`]: accepts streaming requests (checks, negotiation, the
//! session limit) and runs their sessions as tracked tasks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span, debug, info, info_span, warn};

use crate::config::Config;
use crate::exec::{self, Exec};
use crate::handshake::{self, EXEC_PROTOCOLS, ExecOptions, PORT_FORWARD_PROTOCOL, Rejection};
use crate::portforward::{self, PortForward};
use crate::provider::{Kind, StreamingProvider, Target};
use crate::spdy;

/// The streaming endpoints of one node; clones share the provider, the
/// limits and the running sessions.
#[derive(Clone)]
pub struct Streaming {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Arc<dyn StreamingProvider>,
    config: Config,
    sessions: Arc<Semaphore>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Streaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("config", &self.inner.config)
            .field("sessions", &self.active_sessions())
            .finish_non_exhaustive()
    }
}

/// A streaming request, as the URL and query name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Port-forward, exec or attach.
    pub kind: Kind,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID, when the URL has one.
    pub uid: Option<String>,
    /// The container (exec, attach).
    pub container: Option<String>,
    /// The query's pairs (`command`, `input`, `output`, `error`, `tty`).
    pub query: Vec<(String, String)>,
}

/// An accepted request: answer `101 Switching Protocols` with
/// [`Accepted::headers`], and hand the connection over with
/// [`Accepted::serve`].
pub struct Accepted {
    headers: HeaderMap,
    job: Job,
    permit: OwnedSemaphorePermit,
    streaming: Streaming,
    span: Span,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted").field("headers", &self.headers).finish_non_exhaustive()
    }
}

enum Job {
    PortForward(PortForward),
    Exec(Exec),
}

impl Streaming {
    /// The endpoints for `provider`, with `config`'s limits.
    pub fn new(provider: Arc<dyn StreamingProvider>, config: Config) -> Streaming {
        let sessions = Arc::new(Semaphore::new(config.max_sessions));
        Streaming { inner: Arc::new(Inner { provider, config, sessions, tasks: TaskTracker::new() }) }
    }

    /// The limits.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Sessions running now.
    pub fn active_sessions(&self) -> usize {
        self.inner.config.max_sessions - self.inner.sessions.available_permits()
    }

    /// Checks a request and its upgrade headers, asks the provider about
    /// the target, negotiates the protocol and takes a session slot. Names
    /// in `request` must already be validated.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] with upstream's status and message: 400 (not a
    /// SPDY upgrade, a WebSocket, a bad query), 404 (no such pod or
    /// container), 403 (no common protocol), 429 (too many sessions).
    pub fn accept(&self, request: Request, headers: &HeaderMap) -> Result<Accepted, Rejection> {
        handshake::check_upgrade(headers)?;
        let options = match request.kind {
            Kind::PortForward => None,
            kind => Some(ExecOptions::parse(&request.query, kind == Kind::Exec)?),
        };
        let target = Target {
            kind: request.kind,
            namespace: &request.namespace,
            pod: &request.pod,
            uid: request.uid.as_deref(),
            container: request.container.as_deref(),
        };
        self.inner.provider.lookup(&target)?;
        let supported: &[&'static str] = match request.kind {
            Kind::PortForward => &[PORT_FORWARD_PROTOCOL],
            _ => &EXEC_PROTOCOLS,
        };
        let protocol = handshake::negotiate(headers, supported)?;
        let permit = self
            .inner
            .sessions
            .clone()
            .try_acquire_owned()
            .map_err(|_| Rejection::new(StatusCode::TOO_MANY_REQUESTS, "too many concurrent streaming sessions"))?;
        let span = info_span!(
            "streaming",
            stream.kind = request.kind.as_str(),
            pod.namespace = %request.namespace,
            pod.name = %request.pod,
            container = request.container.as_deref().unwrap_or_default(),
            stream.protocol = protocol,
        );
        let job = match options {
            None => Job::PortForward(PortForward {
                provider: self.inner.provider.clone(),
                config: self.inner.config.clone(),
                namespace: request.namespace,
                pod: request.pod,
                uid: request.uid,
            }),
            Some(options) => Job::Exec(Exec {
                kind: request.kind,
                version: version(protocol),
                options,
                namespace: request.namespace,
                pod: request.pod,
                uid: request.uid,
                container: request.container.unwrap_or_default(),
            }),
        };
        Ok(Accepted { headers: handshake::response_headers(protocol), job, permit, streaming: self.clone(), span })
    }

    /// Stops tracking new sessions and waits up to `timeout` for the
    /// running ones (which end when their `shutdown` token is cancelled);
    /// `true` if all ended.
    pub async fn wait(&self, timeout: Duration) -> bool {
        self.inner.tasks.close();
        tokio::time::timeout(timeout, self.inner.tasks.wait()).await.is_ok()
    }
}

fn version(protocol: &str) -> u8 {
    match protocol {
        "v4.channel.k8s.io" => 4,
        "v3.channel.k8s.io" => 3,
        "v2.channel.k8s.io" => 2,
        _ => 1,
    }
}

impl Accepted {
    /// The headers of the `101` response.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Takes over the connection once hyper has upgraded it (after the
    /// `101` response is sent); the session ends when the client closes,
    /// when idle, or when `shutdown` is cancelled.
    pub fn serve<B>(self, request: &mut http::Request<B>, shutdown: CancellationToken) {
        let upgrade = hyper::upgrade::on(request);
        self.serve_io(async move { upgrade.await.map(TokioIo::new) }, shutdown);
    }

    /// [`Accepted::serve`] over any connection (tests).
    pub fn serve_io<T, E, F>(self, io: F, shutdown: CancellationToken)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
        E: std::fmt::Display,
        F: Future<Output = Result<T, E>> + Send + 'static,
    {
        let Accepted { job, permit, streaming, span, .. } = self;
        let tasks = streaming.inner.tasks.clone();
        let provider = streaming.inner.provider.clone();
        let config = streaming.inner.config.clone();
        tasks.spawn(
            async move {
                let _permit = permit;
                let io = match io.await {
                    Ok(io) => io,
                    Err(error) => {
                        warn!(%error, "the connection upgrade failed");
                        return;
                    }
                };
                run(io, job, provider, config, shutdown).await;
            }
            .instrument(span),
        );
    }
}

/// One session: the SPDY connection next to the request's work.
async fn run<T: AsyncRead + AsyncWrite + Send>(
    io: T,
    job: Job,
    provider: Arc<dyn StreamingProvider>,
    config: Config,
    shutdown: CancellationToken,
) {
    info!("streaming session started");
    let (session, incoming, connection) = spdy::server(io, config.session());
    let work: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = match job {
        Job::PortForward(forward) => Box::pin(portforward::serve(forward, incoming)),
        Job::Exec(exec) => Box::pin(exec::serve(exec, provider, config, incoming)),
    };
    let mut connection = std::pin::pin!(connection.run());
    let result = tokio::select! {
        result = &mut connection => result,
        () = work => {
            session.close().await;
            connection.await
        }
        () = shutdown.cancelled() => {
            debug!("closing the session: the server is shutting down");
            session.close().await;
            connection.await
        }
    };
    match result {
        Ok(()) => info!("streaming session ended"),
        Err(error) => info!(error = %error, "streaming session ended"),
    }
}
