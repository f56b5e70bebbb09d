//! [`Volumes`]: materializing a pod's volumes under
//! `<pod_dir>/volumes/<volume-name>/`, and removing them.
//!
//! | volume | on the host | refreshed by [`PodVolumes::run`] |
//! |---|---|---|
//! | `configMap`, `secret`, `downwardAPI`, `projected` | a directory written by the [atomic writer](crate::atomic) | on object changes, label/annotation changes, token renewal |
//! | `emptyDir` | a directory, or a tmpfs for `medium: Memory` ([`empty_dir`]) | — |
//! | `hostPath` | the host path itself, after its `type` check ([`host_path`]) | — |
//! | `persistentVolumeClaim`, `csi`, `ephemeral` | set up by an [`ExternalVolumes`] provider (CSI), when there is one | — |
//! | anything else (`image`, NFS, …) | [`SetUpError::Unsupported`] | — |
//!
//! Directories the agent creates have mode 0750 and belong to the agent
//! user; file modes are described in [`payload`](crate::payload).
//!
//! [`Volumes::prepare`] is idempotent: calling it again after a failure (the
//! caller's `FailedMount` retry) reuses what is already there.

pub mod empty_dir;
pub mod external;
pub mod host_path;
pub(crate) mod pod;
mod refresh;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub use self::empty_dir::EmptyDirError;
pub use self::external::{ExternalError, ExternalMount, ExternalStats, ExternalVolumes};
pub use self::host_path::HostPathError;
pub use self::pod::{PodVolumes, Usage};
use crate::atomic::{AtomicError, DIR_MODE};
use crate::payload::PayloadError;
use crate::sources::{Kind, Sources};
use crate::token::{ApiTokens, TokenIssuer};

/// The directory of a pod's volumes, under its pod directory.
pub const VOLUMES_DIR: &str = "volumes";
/// The directory of the per-container subPath staging, under the pod
/// directory.
pub const SUBPATHS_DIR: &str = "volume-subpaths";
/// Default for [`Config::token_retry`].
pub const DEFAULT_TOKEN_RETRY: Duration = Duration::from_secs(10);
/// Default for [`Config::max_copy_bytes`].
pub const DEFAULT_MAX_COPY_BYTES: u64 = 64 << 20;

/// How volumes are made.
#[derive(Debug, Clone)]
pub struct Config {
    /// The node's allocatable resources (the default of `limits.*` in
    /// downward API items, and a cap of memory-backed emptyDirs).
    pub allocatable: BTreeMap<String, Quantity>,
    /// Mount a tmpfs for `emptyDir.medium: Memory` (else always a directory).
    pub memory_medium: bool,
    /// Delay before retrying a failed token renewal.
    pub token_retry: Duration,
    /// Share of a token's lifetime after which it is renewed (upstream 0.8;
    /// lower values renew sooner, e.g. to exercise rotation in tests).
    pub token_refresh_fraction: f64,
    /// The most bytes copied when staging one subPath of a
    /// configMap/secret/downwardAPI/projected volume.
    pub max_copy_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            allocatable: BTreeMap::new(),
            memory_medium: true,
            token_refresh_fraction: crate::token::DEFAULT_REFRESH_FRACTION,
            token_retry: DEFAULT_TOKEN_RETRY,
            max_copy_bytes: DEFAULT_MAX_COPY_BYTES,
        }
    }
}

/// Why a volume could not be set up: the caller's `FailedMount` event, with
/// upstream's message (`MountVolume.SetUp failed for volume "x" : ...`).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// One volume failed.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
    SetUp {
        /// The volume's name.
        volume: String,
        /// What failed.
        #[source]
        source: SetUpError,
    },
    /// The pod's volumes directory could not be created.
    #[error("cannot create {}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Cleanup could not unmount a tmpfs (nothing was deleted under it).
    #[error("cannot unmount {}", path.display())]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// An external volume (CSI) could not be set up: the provider's reason
    /// and message.
    #[error("{source}")]
    External {
        /// The pod's volume name.
        volume: String,
        /// What failed.
        #[source]
        source: ExternalError,
    },
    /// External volumes could not be released, or are still in place at
    /// cleanup (nothing was deleted).
    #[error("{0}")]
    Release(#[source] ExternalError),
    /// Cleanup could not remove a directory.
    #[error("cannot remove {}", path.display())]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl VolumeError {
    /// The event reason upstream uses for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            VolumeError::SetUp { .. } | VolumeError::Dir { .. } => "FailedMount",
            VolumeError::External { source, .. } => source.reason,
            VolumeError::Unmount { .. } | VolumeError::Remove { .. } | VolumeError::Release(_) => "FailedUnmount",
        }
    }
}

/// What failed in one volume.
#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    /// Its files could not be computed (missing object or key, bad item,
    /// token request failed).
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Its files could not be written.
    #[error(transparent)]
    Write(#[from] AtomicError),
    /// A hostPath check failed.
    #[error(transparent)]
    HostPath(#[from] HostPathError),
    /// An emptyDir could not be made.
    #[error(transparent)]
    EmptyDir(#[from] EmptyDirError),
    /// A volume type this node does not provide.
    #[error(
        "unsupported volume type {0}: wasmlet provides configMap, secret, downwardAPI, projected, emptyDir \
         and hostPath volumes"
    )]
    Unsupported(&'static str),
}

/// Makes pods' volumes; one per node, cheap to clone.
#[derive(Clone)]
pub struct Volumes {
    pub(crate) sources: Sources,
    pub(crate) tokens: Arc<dyn TokenIssuer>,
    pub(crate) config: Arc<Config>,
    pub(crate) external: Option<Arc<dyn ExternalVolumes>>,
}

impl Volumes {
    /// Volumes reading objects through `sources` and requesting tokens with
    /// its client (the node's credentials).
    pub fn new(sources: Sources, config: Config) -> Self {
        let tokens = Arc::new(ApiTokens::new(sources.client().clone()));
        Self::with_token_issuer(sources, config, tokens)
    }

    /// Like [`new`](Self::new), with another token issuer (tests).
    pub fn with_token_issuer(sources: Sources, config: Config, tokens: Arc<dyn TokenIssuer>) -> Self {
        Self { sources, tokens, config: Arc::new(config), external: None }
    }

    /// These volumes, with `provider` setting up `persistentVolumeClaim`,
    /// `csi` and `ephemeral` volumes.
    #[must_use]
    pub fn with_external(mut self, provider: Arc<dyn ExternalVolumes>) -> Self {
        self.external = Some(provider);
        self
    }

    /// Releases the external volumes of pod `pod_uid` (see
    /// [`ExternalVolumes::tear_down`]); nothing to do without a provider.
    /// Call it once the pod's guests have stopped, before
    /// [`cleanup`](Self::cleanup).
    ///
    /// # Errors
    ///
    /// The provider's error ([`VolumeError::Release`]).
    pub async fn release(&self, pod_uid: &str) -> Result<(), VolumeError> {
        match &self.external {
            Some(provider) => provider.tear_down(pod_uid).await.map_err(VolumeError::Release),
            None => Ok(()),
        }
    }

    /// The latest usage figures of pod `pod_uid`'s external volumes.
    pub fn external_stats(&self, pod_uid: &str) -> Vec<ExternalStats> {
        self.external.as_ref().map(|p| p.stats(pod_uid)).unwrap_or_default()
    }

    /// The sources volumes read from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Materializes every volume of `pod` under `<pod_dir>/volumes/`.
    ///
    /// # Errors
    ///
    /// The first volume that fails ([`VolumeError::SetUp`], upstream's
    /// `FailedMount` text); the ones before it stay in place, and calling
    /// `prepare` again continues from there.
    ///
    /// # Caveats
    ///
    /// Waits up to [`sources::Config::sync_timeout`](crate::sources::Config::sync_timeout)
    /// for the objects' first list, and requests tokens; the file-system work
    /// (small writes, a `mount(2)`) runs synchronously on the caller's task.
    pub async fn prepare(&self, pod: &Pod, pod_dir: &Path) -> Result<PodVolumes, VolumeError> {
        pod::prepare(self, pod, pod_dir).await
    }

    /// Removes what [`prepare`](Self::prepare) made under `pod_dir`, without
    /// a [`PodVolumes`] (after an agent restart): unmounts every mount under
    /// `<pod_dir>/volumes`, then deletes `volumes/` and `volume-subpaths/`.
    ///
    /// # Errors
    ///
    /// External volumes still in place ([`VolumeError::Release`]: call
    /// [`release`](Self::release) first), a mount that cannot be unmounted
    /// (then nothing is deleted), or a directory that cannot be removed.
    pub fn cleanup(pod_dir: &Path) -> Result<(), VolumeError> {
        let volumes = pod_dir.join(VOLUMES_DIR);
        let external = volumes.join(external::PROVIDER_DIR);
        if let Some(left) = fs::read_dir(&external).ok().and_then(|mut d| d.next()).and_then(Result::ok) {
            return Err(VolumeError::Release(ExternalError {
                reason: "FailedUnmount",
                message: format!("volume {} is still set up; not removing the pod's volumes", left.path().display()),
            }));
        }
        empty_dir::unmount_all(&volumes).map_err(|(path, source)| VolumeError::Unmount { path, source })?;
        if let Some(path) = empty_dir::mount_points_under(&volumes).into_iter().next() {
            return Err(VolumeError::Unmount { path, source: nix::Error::EBUSY });
        }
        for dir in [volumes, pod_dir.join(SUBPATHS_DIR)] {
            match fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(VolumeError::Remove { path: dir, source: e });
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for Volumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volumes").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Creates `dir` (not its parents) with mode 0750, or accepts it if it is a
/// directory already.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The ConfigMaps and Secrets the pod's volumes reference.
pub(crate) fn references(pod: &Pod) -> BTreeSet<(Kind, String)> {
    pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()).flat_map(volume_references).collect()
}

/// The ConfigMaps and Secrets one volume references.
pub(crate) fn volume_references(volume: &Volume) -> BTreeSet<(Kind, String)> {
    let mut out = BTreeSet::new();
    if let Some(cm) = &volume.config_map {
        out.insert((Kind::ConfigMap, cm.name.clone()));
    }
    if let Some(name) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
        out.insert((Kind::Secret, name));
    }
    for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
        if let Some(cm) = &source.config_map {
            out.insert((Kind::ConfigMap, cm.name.clone()));
        }
        if let Some(s) = &source.secret {
            out.insert((Kind::Secret, s.name.clone()));
        }
    }
    out
}

/// The API name of a volume's type, for messages.
pub(crate) fn type_name(volume: &Volume) -> &'static str {
    let v = volume;
    let known: [(bool, &'static str); 16] = [
        (v.persistent_volume_claim.is_some(), "persistentVolumeClaim"),
        (v.csi.is_some(), "csi"),
        (v.ephemeral.is_some(), "ephemeral"),
        (v.image.is_some(), "image"),
        (v.nfs.is_some(), "nfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.fc.is_some(), "fc"),
        (v.rbd.is_some(), "rbd"),
        (v.cephfs.is_some(), "cephfs"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.azure_disk.is_some() || v.azure_file.is_some(), "azureDisk/azureFile"),
        (v.cinder.is_some(), "cinder"),
    ];
    known.iter().find(|(set, _)| *set).map_or("(unknown)", |(_, name)| name)
}

#[cfg(test)]
mod tests;
