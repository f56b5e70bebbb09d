//! The `Registration` service on `<dir>/kubelet.sock`, where device plugins
//! announce themselves (`Register{version, endpoint, resource_name}`).

use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;
use wasmlet_plugins_proto::deviceplugin::v1beta1::registration_server::{Registration, RegistrationServer};

use crate::Inner;
use crate::resource::is_extended_resource_name;

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

/// Serves until `cancel`, then removes the socket.
pub(crate) async fn serve(inner: Arc<Inner>, listener: UnixListener, cancel: CancellationToken) {
    let path = inner.config.dir.join(api::KUBELET_SOCKET);
    let service = RegistrationServer::new(Service { inner });
    let served = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), cancel.cancelled())
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "device plugin registration server failed; no device plugin can register");
    }
    let _ = std::fs::remove_file(path);
}

struct Service {
    inner: Arc<Inner>,
}

#[tonic::async_trait]
impl Registration for Service {
    async fn register(&self, request: Request<api::RegisterRequest>) -> Result<Response<api::Empty>, Status> {
        let r = request.into_inner();
        tracing::info!(resource = %r.resource_name, endpoint = %r.endpoint, "registration request from a device plugin");
        let refuse = |message: String| {
            tracing::warn!(resource = %r.resource_name, %message, "device plugin registration refused");
            Err(Status::unknown(message))
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
            Ok(()) => Ok(Response::new(api::Empty {})),
            Err(e) => refuse(crate::handler::chain(&e)),
        }
    }
}
