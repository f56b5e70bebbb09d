//! [`PodVolumes`]: one pod's prepared volumes, kept current by
//! [`PodVolumes::run`].

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Pod, Volume};
use tokio::time::Instant;

use super::empty_dir::{self, EmptyDir};
use super::{SetUpError, VOLUMES_DIR, VolumeError, Volumes, create_dir, host_path, type_name};
use crate::atomic::{self, AtomicError, Payload};
use crate::payload::{self, Inputs, PayloadError};
use crate::sources::{Kind, Object, Snapshot, SourceError, Subscription};
use crate::token::{self, Token, TokenSpec};

/// One prepared volume.
#[derive(Debug, Clone)]
pub(crate) enum Prepared {
    /// An emptyDir.
    EmptyDir(EmptyDir),
    /// A hostPath: the path on the host.
    HostPath(PathBuf),
    /// A configMap, secret, downwardAPI or projected volume: the directory
    /// the atomic writer keeps.
    Atomic(PathBuf),
    /// A volume an external provider (CSI) set up.
    External(super::ExternalMount),
}

/// Disk usage of an emptyDir (see [`PodVolumes::usage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The volume's name.
    pub volume: String,
    /// Bytes used.
    pub bytes: u64,
    /// Its `sizeLimit`, if any.
    pub limit: Option<u64>,
}

/// A pod's prepared volumes. Cheap to clone (a shared handle).
///
/// Keep it while the pod lives: it holds the subscriptions to the objects
/// the volumes come from. Run [`run`](Self::run) on a task to keep the
/// content current, ask [`mounts`](Self::mounts) for each container start,
/// and call [`cleanup`](Self::cleanup) once the pod is gone.
#[derive(Clone)]
pub struct PodVolumes {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pod_dir: PathBuf,
    pub(crate) prepared: BTreeMap<String, Prepared>,
    pub(crate) volumes: Volumes,
    memory_fallbacks: Vec<(String, String)>,
    pub(super) subscriptions: Vec<Subscription>,
    state: Mutex<State>,
}

pub(crate) struct State {
    pub(super) pod: Arc<Pod>,
    pub(super) tokens: HashMap<TokenSpec, Issued>,
    pub(super) rendered: HashMap<String, Payload>,
    /// Directory handles of each container's subPath mounts, kept open until
    /// its next start (see [`mounts`](crate::mounts)).
    pub(crate) held: HashMap<String, Vec<OwnedFd>>,
}

pub(super) struct Issued {
    pub(super) token: Token,
    pub(super) refresh_at: Instant,
}

impl Issued {
    pub(super) fn new(token: Token, fraction: f64) -> Self {
        let refresh_at = Instant::now() + token.refresh_in(SystemTime::now(), token::jitter(), fraction);
        Self { token, refresh_at }
    }
}

pub(super) async fn prepare(volumes: &Volumes, pod: &Pod, pod_dir: &Path) -> Result<PodVolumes, VolumeError> {
    let dir = pod_dir.join(VOLUMES_DIR);
    create_dir(&dir).map_err(|source| VolumeError::Dir { path: dir.clone(), source })?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let specs: Vec<Volume> = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()).cloned().collect();
    let fail = |volume: &Volume, source: SetUpError| VolumeError::SetUp { volume: volume.name.clone(), source };

    let mut subscriptions: Vec<Subscription> = Vec::new();
    for volume in &specs {
        for (kind, name) in super::volume_references(volume) {
            if subscriptions.iter().any(|s| s.kind() == kind && s.name() == name) {
                continue;
            }
            let sub = volumes.sources.acquire(kind, namespace, &name);
            subscriptions.push(sub.map_err(|e| fail(volume, SetUpError::Payload(e.into())))?);
        }
    }
    let timeout = volumes.sources.config().sync_timeout;
    join_all(subscriptions.iter().map(|s| s.get(timeout))).await;

    let mut tokens: HashMap<TokenSpec, Issued> = HashMap::new();
    let mut prepared = BTreeMap::new();
    let mut memory_fallbacks = Vec::new();
    let mut rendered = HashMap::new();
    for volume in &specs {
        let name = volume_dir_name(&volume.name).map_err(|e| fail(volume, e.into()))?;
        let path = dir.join(name);
        let entry = if let Some(source) = &volume.empty_dir {
            let config = &volumes.config;
            let setup = empty_dir::setup(path, source, pod, &config.allocatable, config.memory_medium);
            let (empty, fallback) = setup.map_err(|e| fail(volume, e.into()))?;
            if let Some(reason) = fallback {
                memory_fallbacks.push((volume.name.clone(), reason));
            }
            Prepared::EmptyDir(empty)
        } else if super::external::is_external(volume) {
            let Some(provider) = &volumes.external else {
                return Err(fail(volume, SetUpError::Unsupported(type_name(volume))));
            };
            let mount = provider.set_up(pod, volume).await;
            Prepared::External(mount.map_err(|source| VolumeError::External { volume: volume.name.clone(), source })?)
        } else if let Some(source) = &volume.host_path {
            let host = PathBuf::from(&source.path);
            host_path::check(&host, source.type_.as_deref()).map_err(|e| fail(volume, e.into()))?;
            Prepared::HostPath(host)
        } else {
            // Tokens first (one request per distinct token of the pod), in
            // volume order so that errors come in the order upstream
            // reports them.
            for spec in payload::token_specs(pod, volume) {
                if let std::collections::hash_map::Entry::Vacant(entry) = tokens.entry(spec) {
                    let token = volumes.tokens.issue(entry.key()).await;
                    let token = token.map_err(|e| fail(volume, SetUpError::Payload(PayloadError::Token(e))))?;
                    entry.insert(Issued::new(token, volumes.config.token_refresh_fraction));
                }
            }
            let objects = lookup(&subscriptions);
            let token_map: HashMap<TokenSpec, Token> =
                tokens.iter().map(|(k, v)| (k.clone(), v.token.clone())).collect();
            let inputs =
                Inputs { pod, allocatable: &volumes.config.allocatable, objects: &objects, tokens: &token_map };
            let Some(payload) = payload::volume(volume, &inputs) else {
                return Err(fail(volume, SetUpError::Unsupported(type_name(volume))));
            };
            let payload = payload.map_err(|e| fail(volume, e.into()))?;
            create_dir(&path).map_err(|source| VolumeError::Dir { path: path.clone(), source })?;
            atomic::write(&path, &payload).map_err(|e| fail(volume, e.into()))?;
            rendered.insert(volume.name.clone(), payload);
            Prepared::Atomic(path)
        };
        prepared.insert(volume.name.clone(), entry);
    }
    tracing::debug!(pod.dir = %pod_dir.display(), volumes = prepared.len(), "volumes prepared");
    let state = State { pod: Arc::new(pod.clone()), tokens, rendered, held: HashMap::new() };
    Ok(PodVolumes {
        inner: Arc::new(Inner {
            pod_dir: pod_dir.to_owned(),
            prepared,
            volumes: volumes.clone(),
            memory_fallbacks,
            subscriptions,
            state: Mutex::new(state),
        }),
    })
}

/// A volume name usable as one directory name.
fn volume_dir_name(name: &str) -> Result<&str, AtomicError> {
    let clean = atomic::clean_path(name)?;
    if clean != name || name.contains('/') {
        return Err(AtomicError::InvalidPath { path: name.to_owned(), reason: "must be a single path component" });
    }
    Ok(name)
}

/// Reads objects from the subscriptions' latest snapshots.
pub(super) fn lookup(
    subscriptions: &[Subscription],
) -> impl Fn(Kind, &str) -> Result<Option<Object>, SourceError> + '_ {
    move |kind, name| {
        let sub = subscriptions.iter().find(|s| s.kind() == kind && s.name() == name);
        match sub.map(Subscription::snapshot) {
            Some(Snapshot::Present(object)) => Ok(Some(object)),
            Some(Snapshot::Absent) => Ok(None),
            Some(Snapshot::Pending(last_error)) => Err(SourceError::NotSynced {
                kind,
                namespace: sub.map(|s| s.namespace().to_owned()).unwrap_or_default(),
                name: name.to_owned(),
                last_error,
            }),
            None => Err(SourceError::NotFound { kind, namespace: String::new(), name: name.to_owned() }),
        }
    }
}

impl PodVolumes {
    /// The pod directory the volumes live in.
    pub fn pod_dir(&self) -> &Path {
        &self.inner.pod_dir
    }

    /// The memory-backed emptyDirs that are plain directories because no
    /// tmpfs could be mounted, with the reason (for an event).
    pub fn memory_fallbacks(&self) -> &[(String, String)] {
        &self.inner.memory_fallbacks
    }

    /// The host directory (or file, for a hostPath file) of volume `name`.
    pub fn host_path(&self, name: &str) -> Option<&Path> {
        Some(match self.inner.prepared.get(name)? {
            Prepared::EmptyDir(e) => &e.dir,
            Prepared::HostPath(p) | Prepared::Atomic(p) => p,
            Prepared::External(m) => &m.path,
        })
    }

    /// Disk usage of every emptyDir, with its `sizeLimit`, for the caller to
    /// evict a pod over its limit (as upstream). Walks the directories: call
    /// it from a blocking-friendly context for large volumes.
    pub fn usage(&self) -> Vec<Usage> {
        let empty_dirs = self.inner.prepared.iter().filter_map(|(name, p)| match p {
            Prepared::EmptyDir(e) => Some((name, e)),
            _ => None,
        });
        empty_dirs
            .map(|(name, e)| Usage { volume: name.clone(), bytes: empty_dir::usage(e), limit: e.size_limit })
            .collect()
    }

    /// [`usage`](Self::usage) on the blocking pool: the walk reads every
    /// file's metadata, which on a slow disk must not stall the async
    /// workers that drive guests.
    pub async fn usage_off_worker(&self) -> Vec<Usage> {
        let volumes = self.clone();
        tokio::task::spawn_blocking(move || volumes.usage()).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "measuring emptyDir usage failed; this is a bug");
            Vec::new()
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unmounts and removes everything the pod's volumes put under its pod
    /// directory (see [`Volumes::cleanup`]); hostPath volumes are left alone.
    ///
    /// Call it once [`run`](Self::run) has returned and no guest uses the
    /// volumes any more.
    ///
    /// # Errors
    ///
    /// See [`Volumes::cleanup`].
    pub fn cleanup(&self) -> Result<(), VolumeError> {
        self.state().held.clear();
        Volumes::cleanup(&self.inner.pod_dir)
    }
}

impl std::fmt::Debug for PodVolumes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodVolumes")
            .field("pod_dir", &self.inner.pod_dir)
            .field("volumes", &self.inner.prepared.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
