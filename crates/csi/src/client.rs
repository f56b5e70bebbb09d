//! Calls to a driver's Node service, each with a deadline, errors shaped like
//! upstream's (`rpc error: code = … desc = …`).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tonic::transport::Channel;
use wasmlet_plugins_proto::csi::v1 as csi;
use wasmlet_plugins_proto::csi::v1::node_client::NodeClient;
use wasmlet_plugins_proto::csi::v1::node_service_capability::rpc::Type as Rpc;

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The driver answered with an error, or could not be reached.
    #[error("rpc error: code = {code:?} desc = {message}")]
    Status {
        /// The gRPC code.
        code: tonic::Code,
        /// The driver's message.
        message: String,
    },
    /// No answer in time.
    #[error("rpc error: code = DeadlineExceeded desc = context deadline exceeded (no answer within {0:?})")]
    Timeout(Duration),
}

impl From<tonic::Status> for CallError {
    fn from(s: tonic::Status) -> Self {
        CallError::Status { code: s.code(), message: s.message().to_owned() }
    }
}

/// What `NodeGetInfo` said, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The driver's ID for this node.
    pub node_id: String,
    /// `max_volumes_per_node` (0: no limit).
    pub max_volumes: i64,
    /// `accessible_topology.segments`.
    pub topology: std::collections::BTreeMap<String, String>,
}

/// Node capabilities that change what the kubelet does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// STAGE_UNSTAGE_VOLUME: NodeStageVolume before publishing.
    pub stage_unstage: bool,
    /// GET_VOLUME_STATS: NodeGetVolumeStats.
    pub volume_stats: bool,
    /// VOLUME_CONDITION: stats carry a volume condition.
    pub volume_condition: bool,
}

/// A driver's Node service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DriverClient {
    node: NodeClient<Channel>,
    timeout: Duration,
}

impl DriverClient {
    /// A client of the driver serving on `endpoint`; connects on first use
    /// and again after failures.
    pub fn new(endpoint: &Path, timeout: Duration) -> Self {
        Self { node: NodeClient::new(wasmlet_plugins::dial::lazy(endpoint)), timeout }
    }

    async fn call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CallError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(s.into()),
            Err(_) => Err(CallError::Timeout(self.timeout)),
        }
    }

    /// `NodeGetInfo`.
    ///
    /// # Errors
    ///
    /// The call failed.
    pub async fn node_get_info(&self) -> Result<csi::NodeGetInfoResponse, CallError> {
        self.call(self.node.clone().node_get_info(csi::NodeGetInfoRequest {})).await
    }

    /// `NodeGetCapabilities`, reduced to what the kubelet acts on.
    ///
    /// # Errors
    ///
    /// The call failed.
    pub async fn capabilities(&self) -> Result<Capabilities, CallError> {
        let r = self.call(self.node.clone().node_get_capabilities(csi::NodeGetCapabilitiesRequest {})).await?;
        Ok(capabilities(&r))
    }

    /// `NodeStageVolume`.
    ///
    /// # Errors
    ///
    /// The call failed.
    pub async fn stage(&self, req: csi::NodeStageVolumeRequest) -> Result<(), CallError> {
        self.call(self.node.clone().node_stage_volume(req)).await.map(drop)
    }

    /// `NodeUnstageVolume`.
    ///
    /// # Errors
    ///
    /// The call failed.
    pub async fn unstage(&self, volume_id: &str, staging: &Path) -> Result<(), CallError> {
        let req = csi::NodeUnstageVolumeRequest {
            volume_id: volume_id.to_owned(),
            staging_target_path: staging.display().to_string(),
        };
        self.call(self.node.clone().node_unstage_volume(req)).await.map(drop)
    }

    /// `NodePublishVolume`.
    ///
    /// # Errors
    ///
    /// The call failed.
    pub async fn publish(&self, req: csi::NodePublishVolumeRequest) -> Result<(), CallError> {
        self.call(self.node.clone().node_publish_volume(req)).await.map(drop)
    }

    /// `NodeUnpublishVolume`.
    ///
    /// # Errors
    ///
    /// The call failed.
    pub async fn unpublish(&self, volume_id: &str, target: &Path) -> Result<(), CallError> {
        let req = csi::NodeUnpublishVolumeRequest {
            volume_id: volume_id.to_owned(),
            target_path: target.display().to_string(),
        };
        self.call(self.node.clone().node_unpublish_volume(req)).await.map(drop)
    }

    /// `NodeGetVolumeStats`.
    ///
    /// # Errors
    ///
    /// The call failed.
    pub async fn stats(
        &self,
        volume_id: &str,
        path: &Path,
        staging: Option<&Path>,
    ) -> Result<csi::NodeGetVolumeStatsResponse, CallError> {
        let req = csi::NodeGetVolumeStatsRequest {
            volume_id: volume_id.to_owned(),
            volume_path: path.display().to_string(),
            staging_target_path: staging.map(|p| p.display().to_string()).unwrap_or_default(),
        };
        self.call(self.node.clone().node_get_volume_stats(req)).await
    }
}

/// The capabilities the kubelet acts on; unknown ones are ignored.
pub fn capabilities(r: &csi::NodeGetCapabilitiesResponse) -> Capabilities {
    let mut caps = Capabilities::default();
    for c in &r.capabilities {
        let Some(csi::node_service_capability::Type::Rpc(rpc)) = &c.r#type else { continue };
        match Rpc::try_from(rpc.r#type) {
            Ok(Rpc::StageUnstageVolume) => caps.stage_unstage = true,
            Ok(Rpc::GetVolumeStats) => caps.volume_stats = true,
            Ok(Rpc::VolumeCondition) => caps.volume_condition = true,
            _ => {}
        }
    }
    caps
}

/// The CSI node ID's longest accepted length (upstream's CSINode validation:
/// 192 bytes).
pub const MAX_NODE_ID_LEN: usize = 192;

/// Checks a `NodeGetInfo` answer as upstream does before writing it to the
/// CSINode: a non-empty node ID of at most [`MAX_NODE_ID_LEN`] bytes, a
/// non-negative volume limit, topology keys that are qualified names.
///
/// # Errors
///
/// What is wrong with the answer.
pub fn node_info(r: csi::NodeGetInfoResponse) -> Result<NodeInfo, String> {
    if r.node_id.is_empty() {
        return Err("NodeGetInfo returned an empty node ID".into());
    }
    if r.node_id.len() > MAX_NODE_ID_LEN {
        return Err(format!("NodeGetInfo returned a node ID longer than {MAX_NODE_ID_LEN} bytes"));
    }
    if r.max_volumes_per_node < 0 {
        return Err(format!("NodeGetInfo returned max_volumes_per_node {} < 0", r.max_volumes_per_node));
    }
    let topology: HashMap<String, String> = r.accessible_topology.map(|t| t.segments).unwrap_or_default();
    for (k, v) in &topology {
        if !crate::labels::valid_key(k) || !crate::labels::valid_value(v) {
            return Err(format!("NodeGetInfo returned an invalid topology label {k:?}={v:?}"));
        }
    }
    Ok(NodeInfo { node_id: r.node_id, max_volumes: r.max_volumes_per_node, topology: topology.into_iter().collect() })
}
