//! The API calls the heartbeat loops make, behind two small traits so that the
//! loops can be tested with virtual time and a fake. [`KubeApi`] is the real
//! implementation; every call is bounded by a timeout, as the upstream
//! kubelet's heartbeat client is.

use std::future::Future;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::time::Duration;

use crate::config::{LEASE_NAMESPACE, NodeConfig};
use crate::events::NodeEvents;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The API server answered with an error, or the request failed.
    #[error("API request failed")]
    Kube(#[source] kube::Error),
    /// No answer within the timeout.
    #[error("API request timed out after {0:?}")]
    TimedOut(Duration),
}

impl Error {
    /// HTTP 409: a stale resourceVersion, or the object already exists.
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, Self::Kube(kube::Error::Api(s)) if s.is_conflict())
    }

    /// HTTP 404.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Self::Kube(kube::Error::Api(s)) if s.is_not_found())
    }
}

/// The node's Lease.
pub(crate) trait LeaseApi: Sync {
    /// GET the Lease; `None` when it does not exist.
    fn get_lease(&self) -> impl Future<Output = Result<Option<Lease>, Error>> + Send;
    /// POST a new Lease.
    fn create_lease(&self, lease: &Lease) -> impl Future<Output = Result<Lease, Error>> + Send;
    /// PUT the Lease (carrying its resourceVersion).
    fn replace_lease(&self, lease: &Lease) -> impl Future<Output = Result<Lease, Error>> + Send;
}

/// The node's Node object and its events.
pub(crate) trait NodeApi: Sync {
    /// GET the Node.
    fn get_node(&self) -> impl Future<Output = Result<Node, Error>> + Send;
    /// PATCH `nodes/status` with a strategic merge patch.
    fn patch_node_status(&self, patch: &serde_json::Value) -> impl Future<Output = Result<Node, Error>> + Send;
    /// Publish `NodeReady` / `NodeNotReady` (best effort).
    fn ready_changed(&self, ready: bool) -> impl Future<Output = ()> + Send;
}

/// The real API.
pub(crate) struct KubeApi {
    name: String,
    nodes: kube::Api<Node>,
    leases: kube::Api<Lease>,
    events: NodeEvents,
    timeout: Duration,
}

impl KubeApi {
    /// Calls as node `config.name`, each bounded by the renew interval (so a
    /// hung request cannot hold the Lease past its duration).
    pub(crate) fn new(client: kube::Client, config: &NodeConfig, uid: &str) -> Self {
        Self {
            name: config.name.clone(),
            nodes: kube::Api::all(client.clone()),
            leases: kube::Api::namespaced(client.clone(), LEASE_NAMESPACE),
            events: NodeEvents::new(client, &config.name, uid),
            timeout: config.renew_interval,
        }
    }

    async fn call<T>(&self, request: impl Future<Output = Result<T, kube::Error>>) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(result) => result.map_err(Error::Kube),
            Err(_) => Err(Error::TimedOut(self.timeout)),
        }
    }
}

impl LeaseApi for KubeApi {
    async fn get_lease(&self) -> Result<Option<Lease>, Error> {
        self.call(self.leases.get_opt(&self.name)).await
    }

    async fn create_lease(&self, lease: &Lease) -> Result<Lease, Error> {
        self.call(self.leases.create(&PostParams::default(), lease)).await
    }

    async fn replace_lease(&self, lease: &Lease) -> Result<Lease, Error> {
        self.call(self.leases.replace(&self.name, &PostParams::default(), lease)).await
    }
}

impl NodeApi for KubeApi {
    async fn get_node(&self) -> Result<Node, Error> {
        self.call(self.nodes.get(&self.name)).await
    }

    async fn patch_node_status(&self, patch: &serde_json::Value) -> Result<Node, Error> {
        let params = PatchParams::default();
        self.call(self.nodes.patch_status(&self.name, &params, &Patch::Strategic(patch))).await
    }

    async fn ready_changed(&self, ready: bool) {
        self.events.ready_changed(ready).await;
    }
}
