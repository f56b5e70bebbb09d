//! Reading static pod manifests: one Pod (YAML or JSON) per file, as
//! upstream's file source reads `staticPodPath`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use sha2::{Digest as _, Sha256};

/// Annotations upstream puts on static pods and their mirrors.
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// The hash of the static pod's manifest.
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// On a mirror pod: the hash of the static pod it mirrors.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// A manifest that cannot be used (reported, the others go on).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a Pod.
    #[error("{}: not a Pod manifest: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A static pod as its mirror pod: the object to create in the apiserver.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticPod {
    /// The manifest file.
    pub path: PathBuf,
    /// `<name>-<node>`, as upstream names static pods.
    pub name: String,
    /// Its namespace (`default` when the manifest names none).
    pub namespace: String,
    /// The manifest's hash: `kubernetes.io/config.hash`.
    pub hash: String,
    /// The mirror pod to create.
    pub mirror: Pod,
}

/// Whether `path` is a manifest file: upstream ignores names starting with `.`.
pub fn is_manifest(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| !n.starts_with('.'))
}

/// Reads `path` as the static pod of node `node` (whose Node object is `owner`).
///
/// # Errors
///
/// [`ManifestError`] when the file cannot be read or is not a Pod.
pub fn read(path: &Path, node: &str, owner: &OwnerReference) -> Result<StaticPod, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
    let invalid = |reason: String| ManifestError::Invalid { path: path.to_owned(), reason };
    let value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let kind = value.get("kind").and_then(|k| k.as_str());
    if kind != Some("Pod") || value.get("apiVersion").and_then(|v| v.as_str()) != Some("v1") {
        return Err(invalid(format!("expected apiVersion v1 and kind Pod, found {kind:?}")));
    }
    let mut pod: Pod = serde_yaml::from_value(value).map_err(|e| invalid(e.to_string()))?;
    let base = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("metadata.name is missing".into()))?;
    let namespace = pod.metadata.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
    let name = format!("{base}-{node}");
    // The hash covers the manifest as read, so any change to the file is a new pod.
    let hash = hex::encode(&Sha256::digest(text.as_bytes())[..16]);
    let meta = &mut pod.metadata;
    meta.name = Some(name.clone());
    meta.namespace = Some(namespace.clone());
    meta.uid = None;
    meta.resource_version = None;
    meta.owner_references = Some(vec![owner.clone()]);
    let annotations = meta.annotations.get_or_insert_with(Default::default);
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    annotations.insert(CONFIG_HASH.into(), hash.clone());
    annotations.insert(CONFIG_MIRROR.into(), hash.clone());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_owned());
    pod.status = None;
    Ok(StaticPod { path: path.to_owned(), name, namespace, hash, mirror: pod })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: "n1".into(),
            uid: "u".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_manifest_becomes_a_mirror_pod_bound_to_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yaml");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: main\n    image: x\n",
        )
        .unwrap();
        let pod = read(&path, "n1", &owner()).unwrap();
        assert_eq!((pod.name.as_str(), pod.namespace.as_str()), ("web-n1", "default"));
        let annotations = pod.mirror.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[CONFIG_MIRROR], pod.hash);
        assert_eq!(annotations[CONFIG_SOURCE], "file");
        assert_eq!(pod.mirror.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        assert_eq!(pod.mirror.metadata.owner_references.as_ref().unwrap()[0].kind, "Node");
        // Any change to the file is a new hash.
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: main\n    image: y\n",
        )
        .unwrap();
        assert_ne!(read(&path, "n1", &owner()).unwrap().hash, pod.hash);
    }

    #[test]
    fn bad_manifests_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        for (file, text, want) in [
            ("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "expected apiVersion v1 and kind Pod"),
            ("b.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {}\n", "metadata.name is missing"),
            ("c.yaml", "{{{", "not a Pod manifest"),
        ] {
            let path = dir.path().join(file);
            std::fs::write(&path, text).unwrap();
            let err = read(&path, "n1", &owner()).unwrap_err().to_string();
            assert!(err.contains(want), "{file}: {err}");
        }
        assert!(!is_manifest(Path::new("/x/.web.yaml.swp")));
        assert!(is_manifest(Path::new("/x/web.yaml")));
    }
}
