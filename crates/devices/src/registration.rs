//! The `Registration` service on `<dir>/kubelet.sock`, where device plugins
//! announce themselves (`Register{version, endpoint, resource_name}`).

use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;

use crate::Inner;
use crate::resource::is_extended_resource_name;
use crate::wire::{self, Failure};

/// Why the registration service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The directory could not be created.
    #[error("cannot create the device plugin directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The socket could not be bound.
    #[error("cannot listen on {}", path.display())]
    Bind {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Creates `dir`, removes the sockets left in it (upstream
/// `CleanupPluginDirectory`: running plugins notice and register again) and
/// binds `kubelet.sock`.
pub(crate) fn bind(dir: &Path) -> Result<UnixListener, StartError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|source| StartError::CreateDir { path: dir.to_owned(), source })?;
    for entry in
        std::fs::read_dir(dir).map_err(|source| StartError::CreateDir { path: dir.to_owned(), source })?.flatten()
    {
        let is_socket = entry.file_type().is_ok_and(|t| t.is_socket());
        if is_socket && let Err(e) = std::fs::remove_file(entry.path()) {
            tracing::warn!(error = %e, socket = %entry.path().display(), "removing a stale socket failed");
        }
    }
    let path = dir.join(api::KUBELET_SOCKET);
    UnixListener::bind(&path).map_err(|source| StartError::Bind { path, source })
}

/// Connections served at once on `kubelet.sock`; more wait to be accepted.
const MAX_CONNECTIONS: usize = 32;

/// Serves until `cancel`, then removes the socket. The HTTP/2 is our own
/// ([`crate::wire`]): grpc-go plugins send the socket path as `:authority`,
/// which tonic's server refuses.
pub(crate) async fn serve(inner: Arc<Inner>, listener: UnixListener, cancel: CancellationToken) {
    let path = inner.config.dir.join(api::KUBELET_SOCKET);
    let service = Arc::new(Service { inner });
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let connections = TaskTracker::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let accepted = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a device plugin registration connection failed");
                // Out of descriptors and the like: let it pass before the next accept.
                wasmlet_retry::sleep(ACCEPT_PAUSE, &cancel).await;
                continue;
            }
        };
        let (service, cancel) = (service.clone(), cancel.clone());
        connections.spawn(async move {
            let calls = crate::wire::serve(stream, |request| {
                let service = service.clone();
                async move { service.call(&request).await }
            });
            tokio::select! {
                () = cancel.cancelled() => {}
                served = calls => if let Err(e) = served {
                    tracing::debug!(error = %e, "a device plugin registration connection ended badly");
                },
            }
            drop(slot);
        });
    }
    connections.close();
    connections.wait().await;
    let _ = std::fs::remove_file(path);
}

/// The pause after a failed accept.
const ACCEPT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

struct Service {
    inner: Arc<Inner>,
}

impl Service {
    /// One `Register` call, from and to protobuf bytes.
    async fn call(&self, request: &[u8]) -> Result<Vec<u8>, Failure> {
        let r = api::RegisterRequest::decode(request).map_err(|e| Failure {
            code: wire::INTERNAL,
            message: format!("grpc: error unmarshalling request: {e}"),
        })?;
        self.register(r).await.map_err(|message| Failure { code: wire::UNKNOWN, message })?;
        Ok(api::Empty {}.encode_to_vec())
    }

    async fn register(&self, r: api::RegisterRequest) -> Result<(), String> {
        tracing::info!(resource = %r.resource_name, endpoint = %r.endpoint, "registration request from a device plugin");
        let refuse = |message: String| {
            tracing::warn!(resource = %r.resource_name, %message, "device plugin registration refused");
            Err(message)
        };
        if r.version != api::VERSION {
            return refuse(format!(
                "requested API version {:?} is not supported by kubelet. Supported version is [{:?}]",
                r.version,
                api::VERSION
            ));
        }
        if !is_extended_resource_name(&r.resource_name) {
            return refuse(format!("the ResourceName {:?} is invalid", r.resource_name));
        }
        let endpoint = Path::new(&r.endpoint);
        let plain_name = endpoint.components().count() == 1
            && matches!(endpoint.components().next(), Some(std::path::Component::Normal(_)));
        if !plain_name {
            return refuse(format!(
                "the endpoint {:?} is not the name of a socket in {}",
                r.endpoint,
                self.inner.config.dir.display()
            ));
        }
        let socket = self.inner.config.dir.join(endpoint);
        match self.inner.connect(&r.resource_name, &socket).await {
            Ok(()) => Ok(()),
            Err(e) => refuse(crate::handler::chain(&e)),
        }
    }
}
