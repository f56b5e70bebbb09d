//! Volumes that another component sets up and tears down: `persistentVolumeClaim`,
//! inline `csi` and generic `ephemeral` volumes, provided by the CSI node
//! side (`wasmlet-csi`) through [`ExternalVolumes`].
//!
//! The provider owns everything under `<pod_dir>/volumes/kubernetes.io~csi/`
//! (upstream's layout); [`Volumes::cleanup`](super::Volumes::cleanup)
//! refuses to delete a pod's volumes while that directory still has
//! entries, so a volume is never deleted before its driver unpublished it.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, Volume};

/// The directory under `<pod_dir>/volumes/` that external volumes live in.
pub const PROVIDER_DIR: &str = "kubernetes.io~csi";

/// A volume an external provider made available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalMount {
    /// The host directory the guest gets as a preopen.
    pub path: PathBuf,
    /// Whether the volume itself is read-only (a read-only claim or PV).
    pub read_only: bool,
}

/// Why an external volume could not be set up or torn down: the event
/// reason and upstream-shaped message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExternalError {
    /// The event reason (`FailedMount`, `FailedAttachVolume`, `FailedUnmount`).
    pub reason: &'static str,
    /// The event message.
    pub message: String,
}

/// Disk usage of one external volume, as its driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalStats {
    /// The pod's volume name.
    pub volume: String,
    /// The claim (`namespace`, `name`) for `persistentVolumeClaim` volumes.
    pub pvc: Option<(String, String)>,
    /// When it was measured.
    pub time: std::time::SystemTime,
    /// Bytes: available, capacity, used.
    pub available_bytes: Option<u64>,
    /// Capacity in bytes.
    pub capacity_bytes: Option<u64>,
    /// Used bytes.
    pub used_bytes: Option<u64>,
    /// Inodes: free, total, used.
    pub inodes_free: Option<u64>,
    /// Total inodes.
    pub inodes: Option<u64>,
    /// Used inodes.
    pub inodes_used: Option<u64>,
    /// The driver's volume condition: abnormal or not.
    pub abnormal: Option<bool>,
}

/// The component that provides external volumes.
#[async_trait::async_trait]
pub trait ExternalVolumes: Send + Sync + 'static {
    /// Makes `volume` of `pod` available (attach, stage, publish). Idempotent:
    /// a volume already set up (also before an agent restart) is returned
    /// as it is.
    ///
    /// # Errors
    ///
    /// What failed, for the pod's `FailedMount` event; the caller retries
    /// with back-off.
    async fn set_up(&self, pod: &Pod, volume: &Volume) -> Result<ExternalMount, ExternalError>;

    /// Releases every volume set up for pod `pod_uid` (unpublish, and unstage
    /// after the last user). Idempotent; call it once no guest uses them.
    ///
    /// # Errors
    ///
    /// What failed; what succeeded stays undone, the rest is kept for the
    /// next call.
    async fn tear_down(&self, pod_uid: &str) -> Result<(), ExternalError>;

    /// The latest usage figures of the pod's volumes (measured in the
    /// background; empty when unknown).
    fn stats(&self, pod_uid: &str) -> Vec<ExternalStats>;
}

/// Whether `volume` is one an external provider sets up.
pub(crate) fn is_external(volume: &Volume) -> bool {
    volume.persistent_volume_claim.is_some() || volume.csi.is_some() || volume.ephemeral.is_some()
}
