//! A device plugin for tests: a tonic `DevicePlugin` server on a temporary
//! Unix socket whose devices, options and answers the test controls.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;
use wasmlet_plugins_proto::deviceplugin::v1beta1::device_plugin_server::{DevicePlugin, DevicePluginServer};

/// How `Allocate` answers.
#[derive(Clone)]
pub(crate) enum Answer {
    /// For each device: env `DEV_<id>=<id>`, a read-only mount of
    /// `/host/<id>` at `/dev-data`, the node `/dev/null`, and the CDI
    /// device `wasmlet.test/dev=<id>`.
    Devices,
    /// An error status.
    Fail(String),
    /// An answer without container responses.
    Empty,
}

#[derive(Default)]
pub(crate) struct Calls {
    pub(crate) allocate: Vec<Vec<String>>,
    pub(crate) preferred: Vec<(Vec<String>, Vec<String>, i32)>,
    pub(crate) pre_start: Vec<Vec<String>>,
}

#[derive(Clone)]
struct Service {
    devices: watch::Receiver<Vec<api::Device>>,
    options: api::DevicePluginOptions,
    answer: Arc<Mutex<Answer>>,
    preferred: Arc<Mutex<Vec<String>>>,
    pre_start_error: Arc<Mutex<Option<String>>>,
    calls: Arc<Mutex<Calls>>,
    /// Ends every open `ListAndWatch` stream (the plugin "dies").
    streams: CancellationToken,
}

type Stream = Pin<Box<dyn tokio_stream::Stream<Item = Result<api::ListAndWatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl DevicePlugin for Service {
    async fn get_device_plugin_options(
        &self,
        _: Request<api::Empty>,
    ) -> Result<Response<api::DevicePluginOptions>, Status> {
        Ok(Response::new(self.options))
    }

    type ListAndWatchStream = Stream;

    async fn list_and_watch(&self, _: Request<api::Empty>) -> Result<Response<Stream>, Status> {
        let mut devices = self.devices.clone();
        let end = self.streams.clone();
        let stream = async_stream(move |tx| async move {
            loop {
                let list = devices.borrow_and_update().clone();
                if tx.send(Ok(api::ListAndWatchResponse { devices: list })).await.is_err() {
                    return;
                }
                tokio::select! {
                    r = devices.changed() => if r.is_err() { return },
                    () = end.cancelled() => return,
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_preferred_allocation(
        &self,
        request: Request<api::PreferredAllocationRequest>,
    ) -> Result<Response<api::PreferredAllocationResponse>, Status> {
        let r = request.into_inner().container_requests.remove(0);
        self.calls.lock().unwrap().preferred.push((
            r.available_device_i_ds,
            r.must_include_device_i_ds,
            r.allocation_size,
        ));
        let ids = self.preferred.lock().unwrap().clone();
        Ok(Response::new(api::PreferredAllocationResponse {
            container_responses: vec![api::ContainerPreferredAllocationResponse { device_i_ds: ids }],
        }))
    }

    async fn allocate(
        &self,
        request: Request<api::AllocateRequest>,
    ) -> Result<Response<api::AllocateResponse>, Status> {
        let requests = request.into_inner().container_requests;
        let ids = requests.first().map(|r| r.devices_ids.clone()).unwrap_or_default();
        self.calls.lock().unwrap().allocate.push(ids.clone());
        let answer = self.answer.lock().unwrap().clone();
        match answer {
            Answer::Fail(message) => Err(Status::unknown(message)),
            Answer::Empty => Ok(Response::new(api::AllocateResponse { container_responses: vec![] })),
            Answer::Devices => {
                let one = api::ContainerAllocateResponse {
                    envs: ids.iter().map(|id| (format!("DEV_{id}"), id.clone())).collect::<HashMap<_, _>>(),
                    mounts: ids
                        .iter()
                        .map(|id| api::Mount {
                            container_path: "/dev-data".into(),
                            host_path: format!("/host/{id}"),
                            read_only: true,
                        })
                        .collect(),
                    devices: vec![api::DeviceSpec {
                        container_path: "/dev/null".into(),
                        host_path: "/dev/null".into(),
                        permissions: "mrw".into(),
                    }],
                    annotations: HashMap::new(),
                    cdi_devices: ids
                        .iter()
                        .map(|id| api::CdiDevice { name: format!("wasmlet.test/dev={id}") })
                        .collect(),
                };
                Ok(Response::new(api::AllocateResponse { container_responses: vec![one] }))
            }
        }
    }

    async fn pre_start_container(
        &self,
        request: Request<api::PreStartContainerRequest>,
    ) -> Result<Response<api::PreStartContainerResponse>, Status> {
        self.calls.lock().unwrap().pre_start.push(request.into_inner().devices_ids);
        match self.pre_start_error.lock().unwrap().clone() {
            Some(m) => Err(Status::failed_precondition(m)),
            None => Ok(Response::new(api::PreStartContainerResponse {})),
        }
    }
}

/// A stream fed by a task.
fn async_stream<F, Fut>(f: F) -> Stream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<api::ListAndWatchResponse, Status>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// A running test plugin.
pub(crate) struct Plugin {
    pub(crate) socket: PathBuf,
    pub(crate) devices: watch::Sender<Vec<api::Device>>,
    pub(crate) answer: Arc<Mutex<Answer>>,
    pub(crate) preferred: Arc<Mutex<Vec<String>>>,
    pub(crate) pre_start_error: Arc<Mutex<Option<String>>>,
    pub(crate) calls: Arc<Mutex<Calls>>,
    streams: CancellationToken,
    server: CancellationToken,
}

pub(crate) fn device(id: &str, healthy: bool) -> api::Device {
    api::Device { id: id.into(), health: if healthy { api::HEALTHY } else { api::UNHEALTHY }.into(), topology: None }
}

impl Plugin {
    /// Serves `ids` (healthy) on `socket` with `options`.
    pub(crate) fn start(socket: &Path, ids: &[&str], options: api::DevicePluginOptions) -> Plugin {
        let _ = std::fs::remove_file(socket);
        let (devices, rx) = watch::channel(ids.iter().map(|id| device(id, true)).collect());
        let service = Service {
            devices: rx,
            options,
            answer: Arc::new(Mutex::new(Answer::Devices)),
            preferred: Arc::default(),
            pre_start_error: Arc::default(),
            calls: Arc::default(),
            streams: CancellationToken::new(),
        };
        let plugin = Plugin {
            socket: socket.to_owned(),
            devices,
            answer: service.answer.clone(),
            preferred: service.preferred.clone(),
            pre_start_error: service.pre_start_error.clone(),
            calls: service.calls.clone(),
            streams: service.streams.clone(),
            server: CancellationToken::new(),
        };
        let listener = UnixListener::bind(socket).expect("bind plugin socket");
        let stop = plugin.server.clone();
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(DevicePluginServer::new(service))
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop.cancelled())
                .await;
        });
        plugin
    }

    /// The plugin dies: its streams end and its socket goes away.
    pub(crate) fn kill(&self) {
        self.streams.cancel();
        self.server.cancel();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Registers `resource` served at `endpoint` (a file name in `dir`) on the
/// manager's `kubelet.sock`.
pub(crate) async fn register(dir: &Path, resource: &str, endpoint: &str, version: &str) -> Result<(), Status> {
    use wasmlet_plugins_proto::deviceplugin::v1beta1::registration_client::RegistrationClient;
    let channel = wasmlet_plugins::dial::connect(&dir.join(api::KUBELET_SOCKET), std::time::Duration::from_secs(5))
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let request = api::RegisterRequest {
        version: version.into(),
        endpoint: endpoint.into(),
        resource_name: resource.into(),
        options: None,
    };
    RegistrationClient::new(channel).register(request).await.map(|_| ())
}
