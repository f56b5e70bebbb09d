//! What a pod volume means to CSI: the PVC → PV → `spec.csi` chain, an
//! inline `csi` volume, or a generic `ephemeral` volume's claim.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Volume};
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::Api;

use crate::paths;

/// Whether a volume is a PV (`Persistent`) or inline (`Ephemeral`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A PersistentVolume with `spec.csi`.
    Persistent,
    /// An inline `csi` volume.
    Ephemeral,
}

impl Mode {
    /// Upstream's name (`vol_data.json`'s `volumeLifecycleMode`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Persistent => "Persistent",
            Mode::Ephemeral => "Ephemeral",
        }
    }
}

/// One CSI volume of a pod, resolved.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The pod's name for the volume.
    pub volume: String,
    /// The PV name, or the volume name when inline (upstream's spec name).
    pub spec_name: String,
    /// The driver.
    pub driver: String,
    /// The volume handle.
    pub handle: String,
    /// Read-only claim, PV or inline volume.
    pub read_only: bool,
    /// `fsType`.
    pub fs_type: String,
    /// `volumeAttributes`.
    pub attributes: HashMap<String, String>,
    /// The PV's first access mode (`ReadWriteOnce` when none).
    pub access_mode: String,
    /// The PV's mount options.
    pub mount_options: Vec<String>,
    /// Persistent or inline.
    pub mode: Mode,
    /// The claim (`namespace`, `name`), for stats.
    pub pvc: Option<(String, String)>,
    /// The node-stage secret (`namespace`, `name`).
    pub stage_secret: Option<(String, String)>,
    /// The node-publish secret (`namespace`, `name`).
    pub publish_secret: Option<(String, String)>,
}

/// Why a volume cannot be resolved (upstream-shaped messages).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// An API read failed (or the object is missing).
    #[error("error processing PVC {namespace}/{name}: {reason}")]
    Claim {
        /// The claim's namespace.
        namespace: String,
        /// The claim's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The PV is not a CSI one, or is a block volume.
    #[error("volume {pv}: {reason}")]
    Unsupported {
        /// The PV name.
        pv: String,
        /// Why.
        reason: String,
    },
    /// An inline volume's driver does not allow inline volumes.
    #[error("kubernetes.io/csi: mounter.SetupAt failed to check volume lifecycle mode: {0}")]
    Lifecycle(String),
    /// An API error.
    #[error("{what}: {source}")]
    Api {
        /// What was read.
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// Resolves `volume` of `pod` (a claim, an inline csi volume or a generic
/// ephemeral volume) through the API server.
pub(crate) async fn resolve(client: &kube::Client, pod: &Pod, volume: &Volume) -> Result<Spec, SpecError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    if let Some(csi) = &volume.csi {
        let driver = csidriver(client, &csi.driver).await?;
        let modes = driver.as_ref().and_then(|d| d.spec.volume_lifecycle_modes.clone()).unwrap_or_default();
        match &driver {
            None => {
                return Err(SpecError::Lifecycle(format!(
                    "volume mode \"Ephemeral\" not supported by driver {} (no CSIDriver object)",
                    csi.driver
                )));
            }
            Some(_) if !modes.iter().any(|m| m == "Ephemeral") => {
                return Err(SpecError::Lifecycle(format!(
                    "volume mode \"Ephemeral\" not supported by driver {} (only supports {modes:?})",
                    csi.driver
                )));
            }
            Some(_) => {}
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        return Ok(Spec {
            volume: volume.name.clone(),
            spec_name: volume.name.clone(),
            driver: csi.driver.clone(),
            handle: format!("csi-{}", paths::sha256(&format!("{uid}{}", volume.name))),
            read_only: csi.read_only.unwrap_or(false),
            fs_type: csi.fs_type.clone().unwrap_or_default(),
            attributes: csi.volume_attributes.clone().unwrap_or_default().into_iter().collect(),
            access_mode: "ReadWriteOnce".into(),
            mount_options: Vec::new(),
            mode: Mode::Ephemeral,
            pvc: None,
            stage_secret: None,
            publish_secret: csi.node_publish_secret_ref.as_ref().map(|r| (namespace, r.name.clone())),
        });
    }
    let (claim_name, read_only_claim, owner) = match (&volume.persistent_volume_claim, &volume.ephemeral) {
        (Some(pvc), _) => (pvc.claim_name.clone(), pvc.read_only.unwrap_or(false), None),
        (None, Some(_)) => {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            (format!("{pod_name}-{}", volume.name), false, pod.metadata.uid.clone())
        }
        (None, None) => unreachable_volume(&volume.name)?,
    };
    let claim_err =
        |reason: String| SpecError::Claim { namespace: namespace.clone(), name: claim_name.clone(), reason };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let claim = claims.get_opt(&claim_name).await.map_err(|e| claim_err(e.to_string()))?;
    let Some(claim) = claim else {
        return Err(claim_err(format!("persistentvolumeclaim \"{claim_name}\" not found")));
    };
    if let Some(uid) = owner
        && !claim.metadata.owner_references.iter().flatten().any(|o| o.uid == uid && o.controller == Some(true))
    {
        return Err(claim_err("PVC was not created for pod".into()));
    }
    if claim.metadata.deletion_timestamp.is_some() {
        return Err(claim_err("PVC is being deleted".into()));
    }
    let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let pv_name = claim.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|_| bound);
    let Some(pv_name) = pv_name else {
        return Err(claim_err("PVC is not bound".into()));
    };
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv =
        pvs.get(&pv_name).await.map_err(|source| SpecError::Api { what: format!("reading PV {pv_name}"), source })?;
    let spec = pv.spec.unwrap_or_default();
    let unsupported = |reason: &str| SpecError::Unsupported { pv: pv_name.clone(), reason: reason.to_owned() };
    if spec.volume_mode.as_deref() == Some("Block") {
        return Err(unsupported("raw block volumes have no meaning for a WASI guest (only volumeMode: Filesystem)"));
    }
    let Some(csi) = spec.csi else {
        return Err(unsupported("only CSI persistent volumes are supported on a wasmlet node"));
    };
    let secret = |r: &Option<k8s_openapi::api::core::v1::SecretReference>| {
        r.as_ref().and_then(|r| Some((r.namespace.clone().unwrap_or_else(|| namespace.clone()), r.name.clone()?)))
    };
    Ok(Spec {
        volume: volume.name.clone(),
        spec_name: pv_name,
        driver: csi.driver.clone(),
        handle: csi.volume_handle.clone(),
        read_only: read_only_claim || csi.read_only.unwrap_or(false),
        fs_type: csi.fs_type.clone().unwrap_or_default(),
        attributes: csi.volume_attributes.clone().unwrap_or_default().into_iter().collect(),
        access_mode: spec.access_modes.and_then(|m| m.into_iter().next()).unwrap_or_else(|| "ReadWriteOnce".into()),
        mount_options: spec.mount_options.unwrap_or_default(),
        mode: Mode::Persistent,
        pvc: Some((namespace.clone(), claim_name.clone())),
        stage_secret: secret(&csi.node_stage_secret_ref),
        publish_secret: secret(&csi.node_publish_secret_ref),
    })
}

fn unreachable_volume(name: &str) -> Result<(String, bool, Option<String>), SpecError> {
    Err(SpecError::Unsupported { pv: name.to_owned(), reason: "not a CSI volume".into() })
}

/// The CSIDriver object, if any.
pub(crate) async fn csidriver(client: &kube::Client, name: &str) -> Result<Option<CSIDriver>, SpecError> {
    let api: Api<CSIDriver> = Api::all(client.clone());
    api.get_opt(name).await.map_err(|source| SpecError::Api { what: format!("reading CSIDriver {name}"), source })
}

/// A Secret's data as strings (for `*_secrets` of stage and publish).
pub(crate) async fn secret(
    client: &kube::Client,
    (namespace, name): &(String, String),
) -> Result<BTreeMap<String, String>, SpecError> {
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), namespace);
    let s = api
        .get(name)
        .await
        .map_err(|source| SpecError::Api { what: format!("fetching secret {namespace}/{name}"), source })?;
    Ok(s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned())).collect())
}

/// The pod information upstream adds to `volume_context` when the
/// CSIDriver asks for it (`podInfoOnMount`).
pub(crate) fn pod_info(pod: &Pod, mode: Mode) -> BTreeMap<String, String> {
    let m = &pod.metadata;
    BTreeMap::from([
        ("csi.storage.k8s.io/pod.name".into(), m.name.clone().unwrap_or_default()),
        ("csi.storage.k8s.io/pod.namespace".into(), m.namespace.clone().unwrap_or_default()),
        ("csi.storage.k8s.io/pod.uid".into(), m.uid.clone().unwrap_or_default()),
        (
            "csi.storage.k8s.io/serviceAccount.name".into(),
            pod.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        ),
        ("csi.storage.k8s.io/ephemeral".into(), (mode == Mode::Ephemeral).to_string()),
    ])
}
