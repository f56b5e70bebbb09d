//! [`VolumeManager`]: stage and publish CSI volumes for pods, unpublish and
//! unstage them after, and find them again after a restart.
//!
//! Order for a PV, as upstream: (attach: `volumesInUse`, then wait for
//! `volumesAttached` and read the VolumeAttachment's `attachmentMetadata`),
//! `NodeGetCapabilities`, `NodeStageVolume` (when the driver stages; once per
//! volume on the node), `NodePublishVolume` (once per pod). Teardown:
//! `NodeUnpublishVolume`, then `NodeUnstageVolume` after the volume's last
//! user, then the volume leaves `volumesInUse`.
//!
//! Operations run one at a time (one async lock): simple and safe, at the
//! cost of a slow driver delaying other pods' volumes (each call is bounded
//! by [`Config::call_timeout`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::{Pod, Volume};
use tokio::sync::watch;
use wasmlet_plugins_proto::csi::v1 as csi;
use wasmlet_volumes::{ExternalError, ExternalMount, ExternalStats, ExternalVolumes};

use crate::drivers::Drivers;
use crate::spec::{self, Mode, Spec};
use crate::{Config, attach, paths};

const FAILED_MOUNT: &str = "FailedMount";
const FAILED_UNMOUNT: &str = "FailedUnmount";

/// A staged volume (one per driver and handle on the node).
#[derive(Debug, Clone)]
pub(crate) struct Staged {
    pub(crate) staging: PathBuf,
    /// Its `volumesInUse` name, when it is attachable.
    pub(crate) in_use: Option<String>,
}

/// A volume published for a pod.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub(crate) spec_name: String,
    pub(crate) volume: Option<String>,
    pub(crate) driver: String,
    pub(crate) handle: String,
    pub(crate) target: PathBuf,
    pub(crate) pvc: Option<(String, String)>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) staged: BTreeMap<(String, String), Staged>,
    pub(crate) published: BTreeMap<String, Vec<Published>>,
}

/// The CSI volumes of this node's pods. Cheap to clone.
#[derive(Clone)]
pub struct VolumeManager {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client: kube::Client,
    pub(crate) config: Config,
    pub(crate) drivers: Drivers,
    pub(crate) ops: tokio::sync::Mutex<State>,
    pub(crate) in_use: watch::Sender<BTreeSet<String>>,
    pub(crate) attached: watch::Receiver<BTreeSet<String>>,
    pub(crate) stats: Mutex<HashMap<String, Vec<ExternalStats>>>,
}

fn mount_err(op: &str, spec_name: &str, e: impl std::fmt::Display) -> ExternalError {
    ExternalError { reason: FAILED_MOUNT, message: format!("MountVolume.{op} failed for volume {spec_name:?} : {e}") }
}

impl VolumeManager {
    /// Resolves the volume and, when it is attachable, waits for the
    /// attachment (without holding the operations lock), then stages and
    /// publishes it.
    async fn set_up_volume(&self, pod: &Pod, volume: &Volume) -> Result<ExternalMount, ExternalError> {
        let inner = &self.inner;
        let spec = spec::resolve(&inner.client, pod, volume).await.map_err(|e| ExternalError {
            reason: FAILED_MOUNT,
            message: format!("Unable to attach or mount volumes: unmounted volumes=[{}]: {e}", volume.name),
        })?;
        let csidriver =
            spec::csidriver(&inner.client, &spec.driver).await.map_err(|e| mount_err("SetUp", &spec.spec_name, e))?;
        let attachable =
            spec.mode == Mode::Persistent && csidriver.as_ref().is_none_or(|d| d.spec.attach_required != Some(false));
        let pod_info = csidriver.as_ref().is_some_and(|d| d.spec.pod_info_on_mount == Some(true));
        let unique = paths::unique_name(&spec.driver, &spec.handle);
        let mut publish_context = HashMap::new();
        if attachable {
            inner.in_use.send_if_modified(|s| s.insert(unique.clone()));
            self.wait_attached(&spec, &unique).await?;
            let va = paths::attachment_name(&spec.handle, &spec.driver, &inner.config.node_name);
            publish_context = attach::publish_context(&inner.client, &va)
                .await
                .map_err(|e| mount_err("MountDevice", &spec.spec_name, format!("kubernetes.io/csi: {e}")))?;
        }
        let mut state = inner.ops.lock().await;
        let in_use = attachable.then_some(unique);
        self.publish_locked(&mut state, pod, &spec, in_use, pod_info, publish_context).await
    }

    async fn publish_locked(
        &self,
        state: &mut State,
        pod: &Pod,
        spec: &Spec,
        in_use: Option<String>,
        pod_info: bool,
        publish_context: HashMap<String, String>,
    ) -> Result<ExternalMount, ExternalError> {
        let inner = &self.inner;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let target = paths::target(&inner.config.root_dir, &uid, &spec.spec_name);
        let key = (spec.driver.clone(), spec.handle.clone());
        if let Some(staged) = state.staged.get_mut(&key)
            && staged.in_use.is_none()
        {
            // Found again after a restart: now we know it is attachable.
            staged.in_use = in_use.clone();
        }
        let done = |state: &mut State| -> Result<ExternalMount, ExternalError> {
            let list = state.published.entry(uid.clone()).or_default();
            if let Some(p) = list.iter_mut().find(|p| p.spec_name == spec.spec_name) {
                p.volume = Some(spec.volume.clone());
                p.pvc = spec.pvc.clone();
            } else {
                list.push(Published {
                    spec_name: spec.spec_name.clone(),
                    volume: Some(spec.volume.clone()),
                    driver: spec.driver.clone(),
                    handle: spec.handle.clone(),
                    target: target.clone(),
                    pvc: spec.pvc.clone(),
                });
            }
            let path = fs::canonicalize(&target).map_err(|e| mount_err("SetUp", &spec.spec_name, e))?;
            Ok(ExternalMount { path, read_only: spec.read_only })
        };
        let recorded = state.published.get(&uid).is_some_and(|l| l.iter().any(|p| p.spec_name == spec.spec_name));
        if recorded && fs::symlink_metadata(&target).is_ok() {
            // Published already (also before a restart): never twice.
            return done(state);
        }
        let driver = inner.drivers.get(&spec.driver).map_err(|e| {
            let op = if spec.mode == Mode::Persistent { "MountDevice" } else { "SetUp" };
            mount_err(op, &spec.spec_name, format!("kubernetes.io/csi: failed to get CSI client: {e}"))
        })?;
        let caps = driver.client.capabilities().await.map_err(|e| {
            mount_err(
                "MountDevice",
                &spec.spec_name,
                format!("kubernetes.io/csi: failed to check for STAGE_UNSTAGE_VOLUME capability: {e}"),
            )
        })?;
        let capability = volume_capability(spec);
        let mut staging_path = None;
        if spec.mode == Mode::Persistent && caps.stage_unstage {
            let staging = paths::staging(&inner.config.root_dir, &spec.driver, &spec.handle);
            if !state.staged.contains_key(&key) {
                let secrets = match &spec.stage_secret {
                    Some(r) => spec::secret(&inner.client, r)
                        .await
                        .map_err(|e| mount_err("MountDevice", &spec.spec_name, e))?,
                    None => BTreeMap::new(),
                };
                fs::create_dir_all(&staging).map_err(|e| mount_err("MountDevice", &spec.spec_name, e))?;
                let data = BTreeMap::from([
                    (paths::key::DRIVER_NAME, spec.driver.clone()),
                    (paths::key::VOLUME_HANDLE, spec.handle.clone()),
                ]);
                let parent = staging.parent().unwrap_or(&staging).to_owned();
                paths::save_vol_data(&parent, &data).map_err(|e| mount_err("MountDevice", &spec.spec_name, e))?;
                let req = csi::NodeStageVolumeRequest {
                    volume_id: spec.handle.clone(),
                    publish_context: publish_context.clone(),
                    staging_target_path: staging.display().to_string(),
                    volume_capability: Some(capability.clone()),
                    secrets: secrets.into_iter().collect(),
                    volume_context: spec.attributes.clone(),
                };
                if let Err(e) = driver.client.stage(req).await {
                    remove_staging(&staging);
                    return Err(mount_err("MountDevice", &spec.spec_name, e));
                }
                state.staged.insert(key.clone(), Staged { staging: staging.clone(), in_use: in_use.clone() });
            }
            staging_path = Some(staging);
        }
        // Publish.
        let parent = target.parent().unwrap_or(&target).to_owned();
        fs::create_dir_all(&parent).map_err(|e| mount_err("SetUp", &spec.spec_name, e))?;
        let data = BTreeMap::from([
            (paths::key::SPEC_VOL_ID, spec.spec_name.clone()),
            (paths::key::VOLUME_HANDLE, spec.handle.clone()),
            (paths::key::DRIVER_NAME, spec.driver.clone()),
            (paths::key::NODE_NAME, inner.config.node_name.clone()),
            (paths::key::ATTACHMENT_ID, paths::attachment_name(&spec.handle, &spec.driver, &inner.config.node_name)),
            (paths::key::LIFECYCLE_MODE, spec.mode.as_str().to_owned()),
        ]);
        paths::save_vol_data(&parent, &data).map_err(|e| mount_err("SetUp", &spec.spec_name, e))?;
        let mut context = spec.attributes.clone();
        if pod_info {
            context.extend(spec::pod_info(pod, spec.mode));
        }
        let secrets = match &spec.publish_secret {
            Some(r) => spec::secret(&inner.client, r).await.map_err(|e| mount_err("SetUp", &spec.spec_name, e))?,
            None => BTreeMap::new(),
        };
        let req = csi::NodePublishVolumeRequest {
            volume_id: spec.handle.clone(),
            publish_context,
            staging_target_path: staging_path.map(|p| p.display().to_string()).unwrap_or_default(),
            target_path: target.display().to_string(),
            volume_capability: Some(capability),
            readonly: spec.read_only,
            secrets: secrets.into_iter().collect(),
            volume_context: context,
        };
        if let Err(e) = driver.client.publish(req).await {
            let _ = remove_target(&target);
            return Err(mount_err("SetUp", &spec.spec_name, e));
        }
        tracing::info!(volume = %spec.volume, driver = %spec.driver, target = %target.display(), "CSI volume published");
        done(state)
    }

    async fn wait_attached(&self, spec: &Spec, unique: &str) -> Result<(), ExternalError> {
        let mut rx = self.inner.attached.clone();
        let wait = rx.wait_for(|a| a.contains(unique));
        match tokio::time::timeout(self.inner.config.attach_timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ExternalError {
                reason: FAILED_MOUNT,
                message: format!(
                    "Unable to attach or mount volumes: unmounted volumes=[{}], unattached volumes=[{}]: timed out waiting for the condition",
                    spec.volume, spec.volume
                ),
            }),
        }
    }

    async fn tear_down_locked(&self, state: &mut State, pod_uid: &str) -> Result<(), ExternalError> {
        let inner = &self.inner;
        let mut errors = Vec::new();
        let list = state.published.remove(pod_uid).unwrap_or_default();
        let mut kept = Vec::new();
        for p in list {
            let result = match inner.drivers.get(&p.driver) {
                Err(e) => Err(format!("kubernetes.io/csi: Unmounter.TearDownAt failed to get CSI client: {e}")),
                Ok(d) => match d.client.unpublish(&p.handle, &p.target).await {
                    Err(e) => Err(format!("kubernetes.io/csi: Unmounter.TearDownAt failed: {e}")),
                    Ok(()) => remove_target(&p.target).map_err(|e| {
                        format!(
                            "kubernetes.io/csi: Unmounter.TearDownAt failed to clean mount dir [{}]: {e}",
                            p.target.display()
                        )
                    }),
                },
            };
            match result {
                Ok(()) => tracing::info!(driver = %p.driver, target = %p.target.display(), "CSI volume unpublished"),
                Err(e) => {
                    errors.push(format!("UnmountVolume.TearDown failed for volume {:?} : {e}", p.spec_name));
                    kept.push(p);
                }
            }
        }
        if !kept.is_empty() {
            state.published.insert(pod_uid.to_owned(), kept);
        }
        let _ = fs::remove_dir(paths::pod_dir(&inner.config.root_dir, pod_uid));
        self.stats_forget(pod_uid);
        // Unstage what nobody uses any more.
        let used: BTreeSet<(String, String)> =
            state.published.values().flatten().map(|p| (p.driver.clone(), p.handle.clone())).collect();
        let unused: Vec<(String, String)> = state.staged.keys().filter(|k| !used.contains(*k)).cloned().collect();
        for key in unused {
            let Some(staged) = state.staged.get(&key).cloned() else { continue };
            let result = match inner.drivers.get(&key.0) {
                Err(e) => Err(format!("kubernetes.io/csi: attacher.UnmountDevice failed to get CSI client: {e}")),
                Ok(d) => d.client.unstage(&key.1, &staged.staging).await.map_err(|e| e.to_string()),
            };
            match result {
                Ok(()) => {
                    remove_staging(&staged.staging);
                    state.staged.remove(&key);
                    if let Some(unique) = staged.in_use {
                        inner.in_use.send_if_modified(|s| s.remove(&unique));
                    }
                    tracing::info!(driver = %key.0, handle = %key.1, "CSI volume unstaged");
                }
                Err(e) => errors.push(format!("UnmountDevice failed for volume {:?} : {e}", key.1)),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ExternalError { reason: FAILED_UNMOUNT, message: errors.join("; ") })
        }
    }

    fn stats_forget(&self, pod_uid: &str) {
        self.inner.stats.lock().unwrap_or_else(PoisonError::into_inner).remove(pod_uid);
    }
}

#[async_trait::async_trait]
impl ExternalVolumes for VolumeManager {
    async fn set_up(&self, pod: &Pod, volume: &Volume) -> Result<ExternalMount, ExternalError> {
        self.set_up_volume(pod, volume).await
    }

    async fn tear_down(&self, pod_uid: &str) -> Result<(), ExternalError> {
        let mut state = self.inner.ops.lock().await;
        self.tear_down_locked(&mut state, pod_uid).await
    }

    fn stats(&self, pod_uid: &str) -> Vec<ExternalStats> {
        self.inner.stats.lock().unwrap_or_else(PoisonError::into_inner).get(pod_uid).cloned().unwrap_or_default()
    }
}

/// The CSI volume capability of a filesystem volume (upstream's access
/// mode mapping).
fn volume_capability(spec: &Spec) -> csi::VolumeCapability {
    use csi::volume_capability::access_mode::Mode as M;
    let mode = match spec.access_mode.as_str() {
        "ReadOnlyMany" => M::MultiNodeReaderOnly,
        "ReadWriteMany" => M::MultiNodeMultiWriter,
        _ => M::SingleNodeWriter,
    };
    csi::VolumeCapability {
        access_mode: Some(csi::volume_capability::AccessMode { mode: mode as i32 }),
        access_type: Some(csi::volume_capability::AccessType::Mount(csi::volume_capability::MountVolume {
            fs_type: spec.fs_type.clone(),
            mount_flags: spec.mount_options.clone(),
            volume_mount_group: String::new(),
        })),
    }
}

/// Removes what the kubelet made for a publication: the target when it is
/// an empty directory or a link (never a directory with data), then
/// `vol_data.json` and the volume's directory.
fn remove_target(target: &Path) -> io::Result<()> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.file_type().is_symlink() => fs::remove_file(target)?,
        Ok(_) => fs::remove_dir(target)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = target.parent() {
        match fs::remove_file(parent.join(paths::VOL_DATA)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match fs::remove_dir(parent) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Removes a staging directory (when empty), its `vol_data.json` and the
/// per-volume directory.
fn remove_staging(staging: &Path) {
    let _ = fs::remove_dir(staging);
    if let Some(parent) = staging.parent() {
        let _ = fs::remove_file(parent.join(paths::VOL_DATA));
        let _ = fs::remove_dir(parent);
    }
}
