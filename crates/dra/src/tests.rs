//! The manager against in-process DRA drivers on temporary Unix sockets and
//! a fake API server.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::resource::v1::ResourceClaim;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use wasmlet_plugins_proto::dra::{v1, v1beta1};

use super::*;

const DRIVER: &str = "test-driver.cdi.k8s.io";

#[derive(Default)]
struct FakeApi {
    claims: Mutex<HashMap<(String, String), ResourceClaim>>,
    wiped: Mutex<Vec<(String, Option<String>)>>,
}

#[async_trait::async_trait]
impl ClusterApi for FakeApi {
    async fn get_claim(&self, namespace: &str, name: &str) -> Result<ResourceClaim, String> {
        let claims = self.claims.lock().unwrap();
        claims
            .get(&(namespace.into(), name.into()))
            .cloned()
            .ok_or_else(|| format!("resourceclaims.resource.k8s.io \"{name}\" not found"))
    }

    async fn delete_slices(&self, node: &str, driver: Option<&str>) -> Result<(), String> {
        self.wiped.lock().unwrap().push((node.into(), driver.map(String::from)));
        Ok(())
    }
}

/// What the test driver answers for each claim.
#[derive(Clone, Default)]
enum Answer {
    #[default]
    Prepare,
    ClaimError(String),
    Skip,
}

#[derive(Clone, Default)]
struct Driver {
    answer: Arc<Mutex<Answer>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Driver {
    fn record(&self, what: &str, claims: impl Iterator<Item = String>) {
        let names: Vec<String> = claims.collect();
        self.calls.lock().unwrap().push(format!("{what} {}", names.join(",")));
    }
}

#[tonic::async_trait]
impl v1::dra_plugin_server::DraPlugin for Driver {
    async fn node_prepare_resources(
        &self,
        r: Request<v1::NodePrepareResourcesRequest>,
    ) -> Result<Response<v1::NodePrepareResourcesResponse>, Status> {
        let claims = r.into_inner().claims;
        self.record("v1.prepare", claims.iter().map(|c| c.name.clone()));
        let answer = self.answer.lock().unwrap().clone();
        let claims = claims
            .into_iter()
            .filter(|_| !matches!(answer, Answer::Skip))
            .map(|c| {
                let result = match &answer {
                    Answer::ClaimError(e) => v1::NodePrepareResourceResponse { devices: vec![], error: e.clone() },
                    _ => v1::NodePrepareResourceResponse {
                        devices: vec![v1::Device {
                            request_names: vec!["req".into()],
                            pool_name: "node".into(),
                            device_name: "device-00".into(),
                            cdi_device_ids: vec![format!("{DRIVER}/test=claim-{}-req", c.uid)],
                            share_id: None,
                        }],
                        error: String::new(),
                    },
                };
                (c.uid, result)
            })
            .collect();
        Ok(Response::new(v1::NodePrepareResourcesResponse { claims }))
    }

    async fn node_unprepare_resources(
        &self,
        r: Request<v1::NodeUnprepareResourcesRequest>,
    ) -> Result<Response<v1::NodeUnprepareResourcesResponse>, Status> {
        let claims = r.into_inner().claims;
        self.record("v1.unprepare", claims.iter().map(|c| c.name.clone()));
        let claims =
            claims.into_iter().map(|c| (c.uid, v1::NodeUnprepareResourceResponse { error: String::new() })).collect();
        Ok(Response::new(v1::NodeUnprepareResourcesResponse { claims }))
    }
}

#[tonic::async_trait]
impl v1beta1::dra_plugin_server::DraPlugin for Driver {
    async fn node_prepare_resources(
        &self,
        r: Request<v1beta1::NodePrepareResourcesRequest>,
    ) -> Result<Response<v1beta1::NodePrepareResourcesResponse>, Status> {
        let claims = r.into_inner().claims;
        self.record("v1beta1.prepare", claims.iter().map(|c| c.name.clone()));
        let claims = claims
            .into_iter()
            .map(|c| {
                let device = v1beta1::Device {
                    request_names: vec![],
                    pool_name: "node".into(),
                    device_name: "device-01".into(),
                    cdi_device_ids: vec![format!("{DRIVER}/test=beta-{}", c.uid)],
                };
                (c.uid, v1beta1::NodePrepareResourceResponse { devices: vec![device], error: String::new() })
            })
            .collect();
        Ok(Response::new(v1beta1::NodePrepareResourcesResponse { claims }))
    }

    async fn node_unprepare_resources(
        &self,
        r: Request<v1beta1::NodeUnprepareResourcesRequest>,
    ) -> Result<Response<v1beta1::NodeUnprepareResourcesResponse>, Status> {
        let claims = r.into_inner().claims;
        self.record("v1beta1.unprepare", claims.iter().map(|c| c.name.clone()));
        let claims = claims
            .into_iter()
            .map(|c| (c.uid, v1beta1::NodeUnprepareResourceResponse { error: String::new() }))
            .collect();
        Ok(Response::new(v1beta1::NodeUnprepareResourcesResponse { claims }))
    }
}

/// Serves `driver` on `socket` (v1, v1beta1 or both); stops when dropped.
struct Served(CancellationToken);

impl Drop for Served {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn serve(socket: &Path, driver: &Driver, v1_too: bool, beta_too: bool) -> Served {
    let listener = UnixListener::bind(socket).unwrap();
    let stop = CancellationToken::new();
    let router = tonic::transport::Server::builder()
        .add_optional_service(v1_too.then(|| v1::dra_plugin_server::DraPluginServer::new(driver.clone())));
    let router =
        router.add_optional_service(beta_too.then(|| v1beta1::dra_plugin_server::DraPluginServer::new(driver.clone())));
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = router.serve_with_incoming_shutdown(UnixListenerStream::new(listener), s.cancelled()).await;
    });
    Served(stop)
}

fn plugin(endpoint: &Path, versions: &[&str]) -> wasmlet_plugins::Plugin {
    wasmlet_plugins::Plugin {
        socket: endpoint.with_extension("reg"),
        kind: wasmlet_plugins::DRA_PLUGIN.into(),
        name: DRIVER.into(),
        endpoint: endpoint.to_owned(),
        versions: versions.iter().map(|v| v.to_string()).collect(),
    }
}

fn pod(uid: &str, claim: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": "ns", "name": format!("pod-{uid}"), "uid": uid},
        "spec": {
            "containers": [
                {"name": "main", "resources": {"claims": [{"name": "gpu", "request": "req"}]}},
                {"name": "other"}
            ],
            "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "t"}]
        },
        "status": {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": claim}]}
    }))
    .unwrap()
}

fn claim(name: &str, owner: &str, reserved: &[&str], allocated: bool) -> ResourceClaim {
    let reserved: Vec<serde_json::Value> =
        reserved.iter().map(|uid| serde_json::json!({"resource": "pods", "name": "p", "uid": uid})).collect();
    let mut status = serde_json::json!({"reservedFor": reserved});
    if allocated {
        status["allocation"] = serde_json::json!({"devices": {"results": [{"request": "req", "driver": DRIVER, "pool": "node", "device": "device-00"}]}});
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": "ns", "name": name, "uid": format!("uid-{name}"),
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": owner, "controller": true}]},
        "spec": {}, "status": status
    }))
    .unwrap()
}

struct Bed {
    dir: tempfile::TempDir,
    api: Arc<FakeApi>,
    manager: DraManager,
}

impl Bed {
    fn new() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let api = Arc::new(FakeApi::default());
        let manager = Self::manager(&dir, &api);
        Bed { dir, api, manager }
    }

    fn manager(dir: &tempfile::TempDir, api: &Arc<FakeApi>) -> DraManager {
        let mut config = Config::new("node-1", dir.path());
        config.wiping_delay = Duration::from_secs(30);
        config.call_timeout = Duration::from_secs(10);
        DraManager::new(api.clone(), config)
    }

    fn socket(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn add_claim(&self, c: ResourceClaim) {
        let key = (c.metadata.namespace.clone().unwrap(), c.metadata.name.clone().unwrap());
        self.api.claims.lock().unwrap().insert(key, c);
    }
}

#[tokio::test]
async fn claims_are_prepared_given_to_their_containers_and_unprepared() {
    let bed = Bed::new();
    let driver = Driver::default();
    let socket = bed.socket("dra.sock");
    let _served = serve(&socket, &driver, true, true);
    let handler = bed.manager.handler();
    let p = plugin(&socket, &["v1.DRAPlugin", "v1beta1.DRAPlugin"]);
    handler.validate(&p).unwrap();
    handler.register(&p).await.unwrap();

    bed.add_claim(claim("c1", "p1", &["p1"], true));
    let pod = pod("p1", "c1");
    bed.manager.prepare(&pod).await.unwrap();
    bed.manager.prepare(&pod).await.unwrap();
    assert_eq!(*driver.calls.lock().unwrap(), ["v1.prepare c1"], "prepared once");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        bed.manager.cdi_devices(&pod, &spec.containers[0]).unwrap(),
        [format!("{DRIVER}/test=claim-uid-c1-req")]
    );
    assert!(bed.manager.cdi_devices(&pod, &spec.containers[1]).unwrap().is_empty());
    assert!(bed.manager.holds_claims("p1"));
    let state = std::fs::read_to_string(bed.dir.path().join(STATE_FILE)).unwrap();
    assert!(state.contains("claim-uid-c1-req") && state.contains("\"prepared\":true"), "{state}");

    // A restarted agent still knows, and unprepares.
    let again = Bed::manager(&bed.dir, &bed.api);
    again.handler().register(&p).await.unwrap();
    assert_eq!(again.cdi_devices(&pod, &spec.containers[0]).unwrap().len(), 1);
    again.unprepare("p1").await.unwrap();
    again.unprepare("p1").await.unwrap();
    assert_eq!(*driver.calls.lock().unwrap(), ["v1.prepare c1", "v1.unprepare c1"]);
    assert!(!again.holds_claims("p1"));
    assert!(again.cdi_devices(&pod, &spec.containers[0]).is_err(), "gone after unprepare");
}

#[tokio::test]
async fn a_v1beta1_driver_is_called_in_v1beta1() {
    let bed = Bed::new();
    let driver = Driver::default();
    let socket = bed.socket("beta.sock");
    let _served = serve(&socket, &driver, false, true);
    bed.manager.handler().register(&plugin(&socket, &["v1beta1.DRAPlugin"])).await.unwrap();
    bed.add_claim(claim("c2", "p2", &["p2"], true));
    let pod = pod("p2", "c2");
    bed.manager.prepare(&pod).await.unwrap();
    let main = &pod.spec.as_ref().unwrap().containers[0];
    assert_eq!(bed.manager.cdi_devices(&pod, main).unwrap(), [format!("{DRIVER}/test=beta-uid-c2")]);
    bed.manager.unprepare("p2").await.unwrap();
    assert_eq!(*driver.calls.lock().unwrap(), ["v1beta1.prepare c2", "v1beta1.unprepare c2"]);
}

#[tokio::test]
async fn failures_are_reported_in_upstreams_words() {
    let bed = Bed::new();
    let driver = Driver::default();
    let socket = bed.socket("dra.sock");
    let err = |e: DraError| e.to_string();

    bed.add_claim(claim("c3", "p3", &["p3"], true));
    let pod3 = pod("p3", "c3");
    assert_eq!(
        err(bed.manager.prepare(&pod3).await.unwrap_err()),
        format!("prepare dynamic resources: DRA driver {DRIVER} is not registered")
    );
    assert!(!bed.manager.holds_claims("p3"), "validation failures record nothing");

    let err_of = |p: &Pod| {
        let m = bed.manager.clone();
        let p = p.clone();
        async move { m.prepare(&p).await.unwrap_err().to_string() }
    };
    assert_eq!(
        err_of(&pod("p4", "missing")).await,
        "prepare dynamic resources: fetch ResourceClaim missing: resourceclaims.resource.k8s.io \"missing\" not found"
    );
    bed.add_claim(claim("c5", "p5", &["someone-else"], true));
    assert_eq!(
        err_of(&pod("p5", "c5")).await,
        "prepare dynamic resources: pod pod-p5 (p5) is not allowed to use ResourceClaim c5 (uid-c5)"
    );
    bed.add_claim(claim("c6", "p6", &["p6"], false));
    assert_eq!(err_of(&pod("p6", "c6")).await, "prepare dynamic resources: ResourceClaim c6: not allocated");
    bed.add_claim(claim("c7", "not-p7", &["p7"], true));
    assert_eq!(
        err_of(&pod("p7", "c7")).await,
        "prepare dynamic resources: ResourceClaim ns/c7 was not created for Pod ns/pod-p7 (Pod is not owner)"
    );

    let _served = serve(&socket, &driver, true, false);
    bed.manager.handler().register(&plugin(&socket, &["v1.DRAPlugin"])).await.unwrap();
    *driver.answer.lock().unwrap() = Answer::ClaimError("device on fire".into());
    assert_eq!(
        err_of(&pod3).await,
        "prepare dynamic resources: NodePrepareResources failed for ResourceClaim c3: device on fire"
    );
    assert!(bed.manager.holds_claims("p3"), "recorded before the call, so that it is unprepared");
    *driver.answer.lock().unwrap() = Answer::Skip;
    assert_eq!(err_of(&pod3).await, "prepare dynamic resources: NodePrepareResources skipped 1 ResourceClaims");
    *driver.answer.lock().unwrap() = Answer::Prepare;
    bed.manager.prepare(&pod3).await.unwrap();

    let handler = bed.manager.handler();
    let err = handler.validate(&plugin(&socket, &["1.0.0"])).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("invalid supported gRPC versions of DRA driver plugin {DRIVER} at endpoint")),
        "{err}"
    );
    assert!(
        handler
            .register(&plugin(&socket, &["v1.DRAPlugin"]))
            .await
            .unwrap_err()
            .to_string()
            .contains("already registered")
    );
}

#[tokio::test(start_paused = true)]
async fn a_drivers_slices_are_deleted_when_it_stays_away() {
    let bed = Bed::new();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (m, c) = (bed.manager.clone(), cancel.clone());
        async move { m.run(c).await }
    });
    tokio::task::yield_now().await;
    let wiped = || bed.api.wiped.lock().unwrap().clone();
    let all = ("node-1".to_string(), None);
    let driver = ("node-1".to_string(), Some(DRIVER.to_string()));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(wiped(), std::slice::from_ref(&all), "at start: every slice of the node");

    let handler = bed.manager.handler();
    let p = plugin(&bed.socket("dra.sock"), &["v1.DRAPlugin"]);
    handler.register(&p).await.unwrap();
    handler.deregister(&p).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    handler.register(&p).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(wiped(), std::slice::from_ref(&all), "it came back within the delay");

    handler.deregister(&p).await;
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(wiped(), std::slice::from_ref(&all));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(wiped(), [all, driver]);
    cancel.cancel();
    run.await.unwrap();
}
