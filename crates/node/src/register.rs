//! Registering the Node with the API server, as upstream
//! `registerWithAPIServer` / `tryRegisterWithAPIServer` do.
//!
//! 1. POST the Node: labels, the controller-managed-attach-detach annotation,
//!    taints, and a status with capacity, allocatable, addresses, daemon
//!    endpoints, nodeInfo and the conditions (`Ready=False` until the
//!    [`Heartbeat`](crate::Heartbeat) reports).
//! 2. On `AlreadyExists`, GET it, set the labels and annotation this kubelet
//!    owns if they differ, and PATCH the status (but not the conditions: they
//!    are the heartbeat's). Taints are never touched (NodeRestriction).
//!
//! Every failed attempt is logged at warn and retried with backoff (100 ms
//! doubling to 7 s, jittered), forever, until it succeeds or is cancelled.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::{self, Retry, Step};
use crate::config::NodeConfig;
use crate::events::NodeEvents;
use crate::host::{self, HostSample, SystemInfo};
use crate::status::{self, Inputs, NodeHealth};
use crate::{object, validate};

/// How long one API request of a registration attempt may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The `Ready` message of a Node this kubelet has just created.
pub const STARTING_MESSAGE: &str = "kubelet is starting";

/// Why registration did not happen. API errors are not among them: those are
/// retried until cancelled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration would be rejected by the API server forever.
    #[error("invalid node configuration")]
    InvalidConfig(#[source] validate::Error),
    /// The host could not be measured (for example, `root_dir` is missing).
    #[error("measuring the host")]
    Measure(#[source] host::Error),
    /// `cancel` fired before the Node was registered.
    #[error("node registration was cancelled")]
    Cancelled,
}

/// One failed attempt (retried).
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("creating the Node")]
    Create(#[source] kube::Error),
    #[error("getting the existing Node")]
    Get(#[source] kube::Error),
    #[error("updating the Node's labels and annotations")]
    PatchMetadata(#[source] kube::Error),
    #[error("patching the Node's status")]
    PatchStatus(#[source] kube::Error),
    #[error("{0}: no answer within {REQUEST_TIMEOUT:?}")]
    TimedOut(&'static str),
}

/// Creates this kubelet's Node, or reconciles the one that exists, and
/// returns it as the API server has it (with its UID). Publishes a
/// `Starting` event (best effort).
///
/// `client` should authenticate as `system:node:<config.name>`.
///
/// # Errors
///
/// [`Error::InvalidConfig`] and [`Error::Measure`] before any request;
/// [`Error::Cancelled`] when `cancel` fires first. API failures are retried.
pub async fn register(client: &kube::Client, config: &NodeConfig, cancel: &CancellationToken) -> Result<Node, Error> {
    config.validate().map_err(Error::InvalidConfig)?;
    let sample = host::measure(&config.root_dir).map_err(Error::Measure)?;
    let info = host::system_info();
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let span = tracing::info_span!("register_node", node.name = %config.name);
    let mut retry = Retry::new(backoff::REGISTER, None, cancel, "registering the node");
    let node = async {
        loop {
            match retry.step(attempt(&nodes, config, &sample, &info)).await {
                Step::Done(node) => break Ok(node),
                Step::Again => {}
                Step::Stopped(_) => break Err(Error::Cancelled),
            }
        }
    }
    .instrument(span)
    .await?;
    let uid = node.metadata.uid.as_deref().unwrap_or_default();
    NodeEvents::new(client.clone(), &config.name, uid).starting().await;
    Ok(node)
}

async fn attempt(
    nodes: &kube::Api<Node>,
    config: &NodeConfig,
    sample: &HostSample,
    info: &SystemInfo,
) -> Result<Node, AttemptError> {
    let starting = NodeHealth { ready: false, message: STARTING_MESSAGE.to_owned(), ..NodeHealth::default() };
    let inputs = Inputs { config, sample, info, health: &starting };
    let mut status = status::desired(None, &inputs, Timestamp::now());
    let node = object::initial(config, status.clone());
    let post = PostParams::default();
    let create = nodes.create(&post, &node);
    match timed("creating the Node", create).await? {
        Ok(created) => {
            tracing::info!("node registered");
            return Ok(created);
        }
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => return Err(AttemptError::Create(e)),
    }
    let name = config.name.as_str();
    let existing = timed("getting the Node", nodes.get(name)).await?.map_err(AttemptError::Get)?;
    let params = PatchParams::default();
    if let Some(patch) = object::metadata_patch(&existing, config) {
        let merge = Patch::Merge(&patch);
        let request = nodes.patch(name, &params, &merge);
        timed("updating the Node's labels", request).await?.map_err(AttemptError::PatchMetadata)?;
    }
    if object::taints_differ(&existing, config) {
        tracing::warn!(
            "the existing Node has other taints than configured; leaving them, \
             as a kubelet may not change its own taints (NodeRestriction)"
        );
    }
    status.conditions = None;
    let patch = status::patch(&status);
    let strategic = Patch::Strategic(&patch);
    let request = nodes.patch_status(name, &params, &strategic);
    let patched = timed("patching the Node's status", request).await?.map_err(AttemptError::PatchStatus)?;
    tracing::info!("node already registered; reconciled");
    Ok(patched)
}

async fn timed<T>(what: &'static str, request: impl Future<Output = T>) -> Result<T, AttemptError> {
    tokio::time::timeout(REQUEST_TIMEOUT, request).await.map_err(|_| AttemptError::TimedOut(what))
}
