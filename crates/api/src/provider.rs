//! [`Provider`]: what the API needs from the rest of the agent.

use std::fmt;
use std::path::PathBuf;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

/// The agent's view of its pods, as the API serves it.
///
/// Methods are called on the request path and must not block for long.
pub trait Provider: Send + Sync + 'static {
    /// Pods bound to this node as the agent knows them (`GET /pods`).
    fn pods(&self) -> Vec<Pod>;

    /// Where a container's log is, and a future that resolves when that
    /// attempt ends (`GET /containerLogs/…`). With `previous`, the attempt
    /// before the current one.
    ///
    /// # Errors
    ///
    /// [`LookupError`] when there is no such pod, container or attempt.
    fn container_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogSource, LookupError>;

    /// The streaming endpoints (`/exec`, `/attach`, `/portForward`), if
    /// this node serves them; without, those paths answer 404. Return
    /// clones of one [`Streaming`](wasmlet_streaming::Streaming): they
    /// share its session limit, and the server waits for its sessions
    /// when it shuts down.
    fn streaming(&self) -> Option<wasmlet_streaming::Streaming> {
        None
    }
}

/// A container attempt's log.
pub struct LogSource {
    /// The attempt's CRI log file, as written by `wasmlet_logs::LogFile`.
    pub path: PathBuf,
    /// Resolves once the attempt has ended and its log is flushed
    /// (`LogFile::flush`); already resolved for an attempt that has ended.
    /// A follower reads what is left, then its response ends.
    pub finished: BoxFuture<'static, ()>,
}

impl fmt::Debug for LogSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSource").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Why [`Provider::container_log`] found no log. The API turns each into
/// the status and message the upstream kubelet uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No such pod on this node: 404.
    #[error("pod not found")]
    PodNotFound,
    /// The pod has no such container: 404.
    #[error("container not found")]
    ContainerNotFound,
    /// `previous` was asked but the container has not restarted: 400.
    #[error("no previous terminated attempt")]
    NoPreviousAttempt,
    /// The container has not started yet: 400.
    #[error("container is waiting to start: {reason}")]
    NotStarted {
        /// Why, e.g. `ContainerCreating` or `ImagePullBackOff`.
        reason: String,
    },
}
