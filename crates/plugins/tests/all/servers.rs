//! Test plugins: a tonic `Registration` server with a chosen behaviour, and
//! raw sockets that never speak gRPC.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use wasmlet_plugins_proto::pluginregistration::registration_server::{Registration, RegistrationServer};
use wasmlet_plugins_proto::pluginregistration::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
};

use crate::Shared;

#[derive(Clone)]
pub(crate) enum Behaviour {
    /// Answers at once with an empty endpoint.
    Answer,
    /// Answers with this endpoint.
    Endpoint(String),
    /// Answers `GetInfo` only after this long.
    Slow(Duration),
}

#[derive(Clone)]
struct Service {
    behaviour: Behaviour,
    kind: String,
    name: String,
    info_calls: Arc<AtomicUsize>,
    statuses: Shared<Vec<(bool, String)>>,
}

#[tonic::async_trait]
impl Registration for Service {
    async fn get_info(&self, _: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        self.info_calls.fetch_add(1, Ordering::SeqCst);
        let endpoint = match &self.behaviour {
            Behaviour::Slow(d) => {
                tokio::time::sleep(*d).await;
                String::new()
            }
            Behaviour::Endpoint(e) => e.clone(),
            Behaviour::Answer => String::new(),
        };
        Ok(Response::new(PluginInfo {
            r#type: self.kind.clone(),
            name: self.name.clone(),
            endpoint,
            supported_versions: vec!["1.0.0".into()],
        }))
    }

    async fn notify_registration_status(
        &self,
        request: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        let s = request.into_inner();
        self.statuses.lock().unwrap().push((s.plugin_registered, s.error));
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}

/// A running registration server; stops when dropped.
pub(crate) struct Server {
    socket: PathBuf,
    service: Service,
    stop: CancellationToken,
}

impl Server {
    /// Binds `socket` (replacing a stale one, as real plugins do) and serves.
    pub(crate) fn start(socket: &Path, behaviour: Behaviour, kind: &str, name: &str) -> Server {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind");
        let service = Service {
            behaviour,
            kind: kind.into(),
            name: name.into(),
            info_calls: Arc::default(),
            statuses: Arc::default(),
        };
        let stop = CancellationToken::new();
        let serve = tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(service.clone()))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop.clone().cancelled_owned());
        tokio::spawn(serve);
        Server { socket: socket.to_owned(), service, stop }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    pub(crate) fn info_calls(&self) -> usize {
        self.service.info_calls.load(Ordering::SeqCst)
    }

    pub(crate) fn statuses(&self) -> Vec<(bool, String)> {
        self.service.statuses.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A raw socket server counting its connections.
pub(crate) struct Raw {
    accepted: Arc<AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Raw {
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn raw(socket: &Path, garbage: bool) -> Raw {
    let listener = UnixListener::bind(socket).expect("bind");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let held = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            if garbage {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\nthis is not gRPC at all\n").await;
            }
            // Keep the connection open and silent.
            held.lock().unwrap().push(stream);
        }
    });
    Raw { accepted, _task: task }
}

/// Accepts connections and never says anything.
pub(crate) fn silent(socket: &Path) -> Raw {
    raw(socket, false)
}

/// Accepts connections and answers with bytes that are not HTTP/2.
pub(crate) fn garbage(socket: &Path) -> Raw {
    raw(socket, true)
}
