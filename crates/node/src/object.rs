//! The Node object as this kubelet creates it, and the metadata it keeps in
//! shape on a Node that already exists.
//!
//! A kubelet owns its identity labels, its `--node-labels` and the
//! controller-managed-attach-detach annotation. It sets taints only at
//! creation: NodeRestriction forbids a node to change its own taints later.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::{ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH, NodeConfig};

/// The Node to POST: labels, the annotation, taints and `status`.
pub(crate) fn initial(config: &NodeConfig, status: NodeStatus) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(config.node_labels()),
            annotations: Some(owned_annotations()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!config.taints.is_empty()).then(|| config.taints.clone()),
            ..NodeSpec::default()
        }),
        status: Some(status),
    }
}

fn owned_annotations() -> BTreeMap<String, String> {
    BTreeMap::from([(ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH.to_owned(), "true".to_owned())])
}

/// The merge patch that gives `existing` the labels and annotation this
/// kubelet owns; `None` when it has them already. Other labels and
/// annotations are left alone (a label dropped from `--node-labels` stays).
pub(crate) fn metadata_patch(existing: &Node, config: &NodeConfig) -> Option<serde_json::Value> {
    let missing = |want: BTreeMap<String, String>, have: Option<&BTreeMap<String, String>>| {
        want.into_iter().filter(|(k, v)| have.and_then(|h| h.get(k)) != Some(v)).collect::<BTreeMap<_, _>>()
    };
    let meta = &existing.metadata;
    let labels = missing(config.node_labels(), meta.labels.as_ref());
    let annotations = missing(owned_annotations(), meta.annotations.as_ref());
    if labels.is_empty() && annotations.is_empty() {
        return None;
    }
    let mut patch = serde_json::Map::new();
    if !labels.is_empty() {
        patch.insert("labels".into(), serde_json::json!(labels));
    }
    if !annotations.is_empty() {
        patch.insert("annotations".into(), serde_json::json!(annotations));
    }
    Some(serde_json::json!({ "metadata": patch }))
}

/// Whether `existing` has other taints than configured (key, value, effect).
pub(crate) fn taints_differ(existing: &Node, config: &NodeConfig) -> bool {
    let key = |t: &Taint| (t.key.clone(), t.value.clone().unwrap_or_default(), t.effect.clone());
    let mut have: Vec<_> =
        existing.spec.as_ref().and_then(|s| s.taints.as_ref()).into_iter().flatten().map(key).collect();
    let mut want: Vec<_> = config.taints.iter().map(key).collect();
    have.sort();
    want.sort();
    have != want
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeConfig {
        let mut c = NodeConfig::new("n1", std::net::IpAddr::from([127, 0, 0, 1]), "h1");
        c.labels.insert("example.com/pool".into(), "wasm".into());
        c
    }

    #[test]
    fn initial_node_has_identity_annotation_and_taints() {
        let n = initial(&config(), NodeStatus::default());
        let labels = n.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/os"], "wasi");
        assert_eq!(labels["kubernetes.io/arch"], "wasm32");
        assert_eq!(labels["kubernetes.io/hostname"], "h1");
        assert_eq!(labels["example.com/pool"], "wasm");
        assert_eq!(n.metadata.annotations.unwrap()["volumes.kubernetes.io/controller-managed-attach-detach"], "true");
        assert_eq!(n.spec.unwrap().taints.unwrap().len(), 2);
    }

    #[test]
    fn metadata_patch_only_for_what_is_missing() {
        let c = config();
        let mut existing = initial(&c, NodeStatus::default());
        assert_eq!(metadata_patch(&existing, &c), None);

        let labels = existing.metadata.labels.as_mut().unwrap();
        labels.insert("admin.example.com/x".into(), "kept".into());
        labels.insert("kubernetes.io/arch".into(), "amd64".into());
        existing.metadata.annotations = None;
        let patch = metadata_patch(&existing, &c).unwrap();
        assert_eq!(
            patch,
            serde_json::json!({"metadata": {
                "labels": {"kubernetes.io/arch": "wasm32"},
                "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}
            }})
        );
    }

    #[test]
    fn taint_comparison_ignores_order_and_time() {
        let c = config();
        let mut existing = initial(&c, NodeStatus::default());
        assert!(!taints_differ(&existing, &c));
        let mut taints = c.taints.clone();
        taints.reverse();
        taints[0].time_added =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        existing.spec = Some(NodeSpec { taints: Some(taints.clone()), ..NodeSpec::default() });
        assert!(!taints_differ(&existing, &c));
        taints.pop();
        existing.spec = Some(NodeSpec { taints: Some(taints), ..NodeSpec::default() });
        assert!(taints_differ(&existing, &c));
    }
}
