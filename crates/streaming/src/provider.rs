//! [`StreamingProvider`]: what the streaming endpoints need from the rest
//! of the agent, and the types it works with.

use std::fmt;
use std::net::SocketAddr;

use futures::future::BoxFuture;
use http::StatusCode;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// The agent's side of exec, attach and port-forward.
///
/// The synchronous methods are called on the request path and must not
/// block for long; [`exec`](Self::exec) and [`attach`](Self::attach)
/// return the work as a future, which the session polls.
pub trait StreamingProvider: Send + Sync + 'static {
    /// Whether `target` can be served: the pod (and container) exists
    /// here, and the node does this kind of request for it (refuse
    /// attach here to answer with a plain HTTP error). Called before the
    /// connection is upgraded, so the error becomes the HTTP status and
    /// body (`pod does not exist` is upstream's 404).
    ///
    /// # Errors
    ///
    /// [`StreamError::PodNotFound`], [`StreamError::ContainerNotFound`], ...
    fn lookup(&self, target: &Target<'_>) -> Result<(), StreamError>;

    /// Where to connect for `port` of the pod: called for each forwarded
    /// connection.
    ///
    /// # Errors
    ///
    /// Written to the client's error stream as
    /// `error forwarding port <port> to pod <pod>, uid <uid>: <error>`.
    fn port_forward_target(
        &self,
        namespace: &str,
        pod: &str,
        uid: Option<&str>,
        port: u16,
    ) -> Result<SocketAddr, StreamError>;

    /// Runs `request.command` in the container (for a wasm pod, a new
    /// instance of the container's module with that argv), wired to the
    /// request's stdio. The future resolves when the command has ended,
    /// and must have dropped the stdio writers by then (their end is the
    /// client's EOF).
    ///
    /// # Errors
    ///
    /// Before starting: becomes an `InternalError` status on the error
    /// stream (the connection is already upgraded). The future's error
    /// likewise.
    fn exec(&self, request: ExecRequest) -> Result<BoxFuture<'static, Result<ExecOutcome, StreamError>>, StreamError>;

    /// Attaches to the running container's stdio. Refused by default.
    ///
    /// # Errors
    ///
    /// As [`exec`](Self::exec).
    fn attach(
        &self,
        request: ExecRequest,
    ) -> Result<BoxFuture<'static, Result<ExecOutcome, StreamError>>, StreamError> {
        drop(request);
        Err(StreamError::Unsupported("attach is not supported for wasm containers on this node".to_owned()))
    }
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/portForward`.
    PortForward,
    /// `/exec`.
    Exec,
    /// `/attach`.
    Attach,
}

impl Kind {
    /// `port-forward`, `exec` or `attach`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PortForward => "port-forward",
            Kind::Exec => "exec",
            Kind::Attach => "attach",
        }
    }
}

/// The pod (and container) a request is for, as the URL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// What is asked.
    pub kind: Kind,
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's name.
    pub pod: &'a str,
    /// The pod's UID, when the URL carries one.
    pub uid: Option<&'a str>,
    /// The container (exec and attach).
    pub container: Option<&'a str>,
}

/// The client's stdin.
pub type Stdin = Box<dyn AsyncRead + Send + Unpin>;
/// The client's stdout or stderr.
pub type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// A command to run, or a container to attach to, with its stdio.
pub struct ExecRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID, when the URL carried one.
    pub uid: Option<String>,
    /// The container.
    pub container: String,
    /// The argv (empty for attach).
    pub command: Vec<String>,
    /// Whether the client asked for a terminal (then there is no stderr).
    pub tty: bool,
    /// The client's input, if it sends any; EOF when it finishes.
    pub stdin: Option<Stdin>,
    /// The client's output.
    pub stdout: Option<Output>,
    /// The client's error output (never with `tty`).
    pub stderr: Option<Output>,
    /// Terminal size changes (with `tty`, protocol v3 and later).
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

impl fmt::Debug for ExecRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecRequest")
            .field("namespace", &self.namespace)
            .field("pod", &self.pod)
            .field("uid", &self.uid)
            .field("container", &self.container)
            .field("command", &self.command)
            .field("tty", &self.tty)
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish_non_exhaustive()
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOutcome {
    /// Its exit code; 0 is success.
    pub exit_code: i32,
}

/// A terminal size, as the client sends it on the resize stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Why a streaming request cannot be served. Each maps to upstream's
/// status and message ([`StreamError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// No such pod on this node: 404 `pod does not exist`.
    #[error("pod does not exist")]
    PodNotFound,
    /// No such container in the pod: 404.
    #[error("container not found ({0:?})")]
    ContainerNotFound(String),
    /// The container is not running: 400.
    #[error("container {0:?} is not running")]
    ContainerNotRunning(String),
    /// Nothing listens on the pod's port.
    #[error("{0}")]
    PortUnavailable(String),
    /// The node does not do this (e.g. attach): 400.
    #[error("{0}")]
    Unsupported(String),
    /// Anything else: 500.
    #[error("{0}")]
    Failed(String),
}

impl StreamError {
    /// The HTTP status for this error, when it happens before the upgrade.
    pub fn status(&self) -> StatusCode {
        match self {
            StreamError::PodNotFound | StreamError::ContainerNotFound(_) => StatusCode::NOT_FOUND,
            StreamError::ContainerNotRunning(_) | StreamError::Unsupported(_) => StatusCode::BAD_REQUEST,
            StreamError::PortUnavailable(_) | StreamError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
