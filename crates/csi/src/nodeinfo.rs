//! What the node tells the cluster about its CSI drivers (upstream
//! `nodeinfomanager`): the CSINode object (created at start, owned by the
//! Node; a driver entry per registered driver), the Node annotation
//! `csi.volume.kubernetes.io/nodeid` (a JSON map driver → node ID) and the
//! drivers' topology labels on the Node.
//!
//! Updates are read-modify-write with the object's `resourceVersion`,
//! retried on conflicts; topology labels stay when a driver goes, as upstream.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSINode, CSINodeDriver, CSINodeSpec, VolumeNodeResources};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};

use crate::client::NodeInfo;

/// The Node annotation holding each driver's node ID.
pub const ANNOTATION_NODE_ID: &str = "csi.volume.kubernetes.io/nodeid";
/// How many times a conflicting update is retried.
const CONFLICT_RETRIES: usize = 5;

/// Why the node's CSI information could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NodeInfoError {
    /// An API call failed.
    #[error("{what}")]
    Api {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The driver's topology collides with a label the Node has.
    #[error(
        "detected topology value collision: driver reported {key:?}:{value:?} but existing label is {key:?}:{existing:?}"
    )]
    Collision {
        /// The label.
        key: String,
        /// The driver's value.
        value: String,
        /// The Node's value.
        existing: String,
    },
    /// The annotation holds something that is not a JSON map.
    #[error("failed to parse node's {ANNOTATION_NODE_ID:?} annotation value {0:?}")]
    Annotation(String),
    /// The CSINode belonged to another Node object (deleted; retried).
    #[error("CSINode {0:?} was owned by a different node; deleted it")]
    Owner(String),
    /// Conflicts did not stop.
    #[error("gave up after {CONFLICT_RETRIES} conflicting updates")]
    Conflicts,
}

fn api(what: &'static str) -> impl FnOnce(kube::Error) -> NodeInfoError {
    move |source| NodeInfoError::Api { what, source }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Writes this node's CSI information. Cheap to clone.
#[derive(Clone)]
pub struct NodeInfoManager {
    nodes: Api<Node>,
    csinodes: Api<CSINode>,
    node_name: String,
}

impl NodeInfoManager {
    /// For node `node_name`, with the node's client.
    pub fn new(client: kube::Client, node_name: &str) -> Self {
        Self { nodes: Api::all(client.clone()), csinodes: Api::all(client), node_name: node_name.to_owned() }
    }

    /// Makes sure the CSINode exists and is owned by the current Node
    /// (upstream `InitializeCSINodeWithAnnotation`).
    ///
    /// # Errors
    ///
    /// An API error, or [`NodeInfoError::Owner`] after deleting a CSINode of
    /// an earlier Node object of the same name (call again).
    pub async fn init(&self) -> Result<CSINode, NodeInfoError> {
        let node = self.nodes.get(&self.node_name).await.map_err(api("getting the Node"))?;
        let uid = node.metadata.uid.clone().unwrap_or_default();
        match self.csinodes.get_opt(&self.node_name).await.map_err(api("getting the CSINode"))? {
            None => {
                let csinode = CSINode {
                    metadata: ObjectMeta {
                        name: Some(self.node_name.clone()),
                        owner_references: Some(vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: self.node_name.clone(),
                            uid,
                            ..Default::default()
                        }]),
                        ..Default::default()
                    },
                    spec: CSINodeSpec { drivers: Vec::new() },
                };
                self.csinodes.create(&PostParams::default(), &csinode).await.map_err(api("creating the CSINode"))
            }
            Some(existing) => {
                let owned = existing
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Node" && o.name == self.node_name && o.uid == uid);
                if owned {
                    return Ok(existing);
                }
                self.csinodes
                    .delete(&self.node_name, &DeleteParams::default())
                    .await
                    .map_err(api("deleting a CSINode of another Node"))?;
                Err(NodeInfoError::Owner(self.node_name.clone()))
            }
        }
    }

    /// Adds (or updates) driver `driver` with `info`: Node annotation and
    /// labels first, then the CSINode (upstream `InstallCSIDriver`).
    ///
    /// # Errors
    ///
    /// See [`NodeInfoError`].
    pub async fn install(&self, driver: &str, info: &NodeInfo) -> Result<(), NodeInfoError> {
        self.update_node(|node| {
            let meta = &mut node.metadata;
            let labels = meta.labels.get_or_insert_with(BTreeMap::new);
            for (key, value) in &info.topology {
                match labels.get(key) {
                    Some(existing) if existing != value => {
                        return Err(NodeInfoError::Collision {
                            key: key.clone(),
                            value: value.clone(),
                            existing: existing.clone(),
                        });
                    }
                    _ => {
                        labels.insert(key.clone(), value.clone());
                    }
                }
            }
            let mut ids = node_ids(meta)?;
            ids.insert(driver.to_owned(), info.node_id.clone());
            set_node_ids(meta, &ids);
            Ok(())
        })
        .await?;
        let entry = CSINodeDriver {
            name: driver.to_owned(),
            node_id: info.node_id.clone(),
            topology_keys: Some(info.topology.keys().cloned().collect()),
            allocatable: (info.max_volumes > 0)
                .then(|| VolumeNodeResources { count: Some(info.max_volumes.min(i64::from(i32::MAX)) as i32) }),
        };
        self.update_csinode(|drivers| {
            drivers.retain(|d| d.name != driver);
            drivers.push(entry.clone());
        })
        .await
    }

    /// Removes driver `driver` from the CSINode and the annotation (upstream
    /// `UninstallCSIDriver`); topology labels stay.
    ///
    /// # Errors
    ///
    /// See [`NodeInfoError`].
    pub async fn uninstall(&self, driver: &str) -> Result<(), NodeInfoError> {
        self.update_csinode(|drivers| drivers.retain(|d| d.name != driver)).await?;
        self.update_node(|node| {
            let mut ids = node_ids(&node.metadata)?;
            ids.remove(driver);
            set_node_ids(&mut node.metadata, &ids);
            Ok(())
        })
        .await
    }

    async fn update_node(&self, change: impl Fn(&mut Node) -> Result<(), NodeInfoError>) -> Result<(), NodeInfoError> {
        for _ in 0..CONFLICT_RETRIES {
            let mut node = self.nodes.get(&self.node_name).await.map_err(api("getting the Node"))?;
            let before = (node.metadata.labels.clone(), node.metadata.annotations.clone());
            change(&mut node)?;
            if (node.metadata.labels.clone(), node.metadata.annotations.clone()) == before {
                return Ok(());
            }
            // A merge patch of labels and annotations, guarded by the
            // resourceVersion read (a null removes a key).
            let value = node.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_NODE_ID));
            let annotations = serde_json::json!({ ANNOTATION_NODE_ID: value });
            // Only the labels that change: NodeRestriction looks at every
            // label a node patch names.
            let labels: BTreeMap<&String, &String> = node
                .metadata
                .labels
                .iter()
                .flatten()
                .filter(|(k, v)| before.0.as_ref().and_then(|b| b.get(*k)) != Some(*v))
                .collect();
            let patch = serde_json::json!({
                "metadata": {
                    "resourceVersion": node.metadata.resource_version,
                    "labels": labels,
                    "annotations": annotations,
                }
            });
            match self.nodes.patch(&self.node_name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(api("updating the Node's CSI annotation and labels")(e)),
            }
        }
        Err(NodeInfoError::Conflicts)
    }

    async fn update_csinode(&self, change: impl Fn(&mut Vec<CSINodeDriver>)) -> Result<(), NodeInfoError> {
        for _ in 0..CONFLICT_RETRIES {
            let mut csinode = match self.csinodes.get(&self.node_name).await {
                Ok(c) => c,
                Err(e) if is_not_found(&e) => self.init().await?,
                Err(e) => return Err(api("getting the CSINode")(e)),
            };
            let before = csinode.spec.drivers.clone();
            change(&mut csinode.spec.drivers);
            if csinode.spec.drivers == before {
                return Ok(());
            }
            match self.csinodes.replace(&self.node_name, &PostParams::default(), &csinode).await {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(api("updating the CSINode")(e)),
            }
        }
        Err(NodeInfoError::Conflicts)
    }

    /// Runs [`init`](Self::init) until it succeeds or `cancel` fires.
    pub async fn init_until_done(&self, cancel: &tokio_util::sync::CancellationToken) {
        let backoff = wasmlet_retry::Backoff { min: Duration::from_millis(500), max: Duration::from_secs(30) };
        let mut delays = backoff.delays();
        loop {
            match self.init().await {
                Ok(_) => {
                    tracing::info!(node = %self.node_name, "CSINode ready");
                    return;
                }
                Err(e) => {
                    let delay = delays.next().unwrap_or(backoff.max);
                    tracing::warn!(error = %wasmlet_retry::Chain(&e), retry_in = ?delay, "publishing the CSINode failed");
                    if !wasmlet_retry::sleep(delay, cancel).await {
                        return;
                    }
                }
            }
        }
    }
}

/// The annotation's map of driver → node ID.
fn node_ids(meta: &ObjectMeta) -> Result<BTreeMap<String, String>, NodeInfoError> {
    match meta.annotations.as_ref().and_then(|a| a.get(ANNOTATION_NODE_ID)) {
        None => Ok(BTreeMap::new()),
        Some(v) if v.is_empty() => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_str(v).map_err(|_| NodeInfoError::Annotation(v.clone())),
    }
}

fn set_node_ids(meta: &mut ObjectMeta, ids: &BTreeMap<String, String>) {
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    if ids.is_empty() {
        annotations.remove(ANNOTATION_NODE_ID);
    } else {
        annotations.insert(ANNOTATION_NODE_ID.to_owned(), serde_json::to_string(ids).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_map_round_trips_and_empties() {
        let mut meta = ObjectMeta::default();
        assert!(node_ids(&meta).unwrap().is_empty());
        let ids =
            BTreeMap::from([("b.example".to_owned(), "n2".to_owned()), ("a.example".to_owned(), "n1".to_owned())]);
        set_node_ids(&mut meta, &ids);
        assert_eq!(meta.annotations.as_ref().unwrap()[ANNOTATION_NODE_ID], r#"{"a.example":"n1","b.example":"n2"}"#);
        assert_eq!(node_ids(&meta).unwrap(), ids);
        set_node_ids(&mut meta, &BTreeMap::new());
        assert!(!meta.annotations.as_ref().unwrap().contains_key(ANNOTATION_NODE_ID));
        meta.annotations.as_mut().unwrap().insert(ANNOTATION_NODE_ID.into(), "not json".into());
        assert!(matches!(node_ids(&meta), Err(NodeInfoError::Annotation(_))));
    }
}
