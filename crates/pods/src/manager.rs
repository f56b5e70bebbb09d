//! The pod watch and the pod workers: one worker task per pod bound to this
//! node, fed the latest object through a `watch` channel.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::attempts::Attempts;
use crate::evict::Eviction;
use crate::live::Live;
use crate::record::PodRecord;
use crate::state::{drive, pod};
use crate::worker::{PodUpdate, PodWorker, Shared};

/// First and longest delay between attempts of the pod watch after a failure.
/// Upstream's reflector backs off to 30 s; after an apiserver or etcd outage
/// the node's own pods must be back sooner (their statuses right within
/// 10 s of its return, issue 12), and one list-and-watch attempt every few
/// seconds is no load on a server that answers nothing.
const WATCH_RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(200);
const WATCH_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(4);

/// The back-off of the agent's watches (its pods, its own Node): doubling
/// with jitter from 200 ms to 4 s, never giving up (and reset by the watcher
/// once events flow again).
pub fn watch_backoff() -> watcher::ExponentialBackoff {
    watcher::ExponentialBackoff::from(
        backon::ExponentialBuilder::default()
            .with_min_delay(WATCH_RETRY_MIN)
            .with_max_delay(WATCH_RETRY_MAX)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times(),
    )
}

/// How many finished pod UIDs are remembered, so a late watch event does not
/// start a worker for a pod that was just removed.
const FINISHED_MEMORY: usize = 1024;

/// What the manager keeps about each live pod worker.
pub(crate) struct Handle {
    pub(crate) updates: watch::Sender<PodUpdate>,
    /// The eviction manager's request to evict the pod.
    pub(crate) evict: watch::Sender<Option<Eviction>>,
    pub(crate) record: Arc<Mutex<PodRecord>>,
    pub(crate) attempts: Attempts,
    pub(crate) live: Live,
    pub(crate) dir: PathBuf,
}

/// Live pod workers by UID, shared with the kubelet API.
pub(crate) type Handles = Arc<Mutex<HashMap<String, Handle>>>;

pub(crate) struct Manager {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handles: Handles,
    finished: Arc<Mutex<VecDeque<String>>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Manager {
    pub(crate) fn new(shared: Arc<Shared>, handles: Handles, cancel: CancellationToken) -> Self {
        Self { shared, handles, finished: Arc::default(), tracker: TaskTracker::new(), cancel }
    }

    /// Watches pods bound to this node until cancelled, then waits for every
    /// worker to stop. `synced` is notified after the first full list.
    pub(crate) async fn run(self, synced: Arc<Notify>) {
        let node = self.shared.config.node_name.clone();
        let api: Api<Pod> = Api::all(self.shared.client.clone());
        // The Node authorizer only allows listing pods with this selector.
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let stream = watcher::watcher(api, config).backoff(watch_backoff());
        let mut stream = std::pin::pin!(stream);
        let mut listed: HashSet<String> = HashSet::new();
        let mut first_sync = true;
        loop {
            let event = tokio::select! {
                e = stream.next() => e,
                () = self.cancel.cancelled() => break,
            };
            match event {
                Some(Ok(watcher::Event::Init)) => listed.clear(),
                Some(Ok(watcher::Event::InitApply(pod))) => {
                    if let Some(uid) = pod.metadata.uid.clone() {
                        listed.insert(uid);
                    }
                    self.apply(pod);
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    // Pods that vanished while the watch was down.
                    let missing: Vec<String> =
                        self.lock().keys().filter(|uid| !listed.contains(*uid)).cloned().collect();
                    for uid in missing {
                        self.gone(&uid);
                    }
                    if first_sync {
                        first_sync = false;
                        self.remove_orphans(&listed);
                        synced.notify_one();
                    }
                }
                Some(Ok(watcher::Event::Apply(pod))) => self.apply(pod),
                Some(Ok(watcher::Event::Delete(pod))) => {
                    if let Some(uid) = pod.metadata.uid.as_deref() {
                        self.gone(uid);
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "pod watch failed; retrying with back-off")
                }
                None => break,
            }
        }
        tracing::info!(pods = self.lock().len(), "stopping pod workers");
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handle>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let pod = Arc::new(pod);
        let mut handles = self.lock();
        if let Some(h) = handles.get(&uid) {
            h.updates.send_replace(PodUpdate::Present(pod));
            return;
        }
        if self.finished.lock().unwrap_or_else(|p| p.into_inner()).contains(&uid) {
            return;
        }
        let (tx, rx) = watch::channel(PodUpdate::Present(pod.clone()));
        let (evict, evictions) = watch::channel(None);
        let dir = self.shared.config.root_dir.join("pods").join(&uid);
        let record = Arc::new(Mutex::new(PodRecord::default()));
        let attempts = Attempts::default();
        let live = Live::default();
        handles.insert(
            uid.clone(),
            Handle {
                updates: tx,
                evict,
                record: record.clone(),
                attempts: attempts.clone(),
                live: live.clone(),
                dir: dir.clone(),
            },
        );
        drop(handles);

        let checkpoints = crate::checkpoint::Writer::new(dir.clone(), self.shared.checkpoint_writes.clone());
        let mut worker = PodWorker {
            shared: self.shared.clone(),
            uid: uid.clone(),
            updates: rx,
            evictions,
            pod: pod.clone(),
            record,
            attempts,
            live,
            dirty: Arc::new(Notify::new()),
            cancel: self.cancel.child_token(),
            dir,
            containers: JoinSet::new(),
            init: JoinSet::new(),
            stops: HashMap::new(),
            init_stops: HashMap::new(),
            reported: None,
            volumes: None,
            sources: None,
            background: JoinSet::new(),
            checkpoints,
        };
        let span = tracing::info_span!(
            "pod",
            pod.uid = %uid,
            pod.name = %worker.key(),
        );
        let handles = self.handles.clone();
        let finished = self.finished.clone();
        self.tracker.spawn(
            async move {
                drive(&mut worker, pod::start(), |s| tracing::info!(state = s, "pod state")).await;
                worker.shared.statuses.forget(&uid);
                worker.shared.startup.forget(&uid);
                worker.shared.metrics.forget_probes(&uid);
                handles.lock().unwrap_or_else(|p| p.into_inner()).remove(&uid);
                let mut finished = finished.lock().unwrap_or_else(|p| p.into_inner());
                if finished.len() >= FINISHED_MEMORY {
                    finished.pop_front();
                }
                finished.push_back(uid);
            }
            .instrument(span),
        );
    }

    fn gone(&self, uid: &str) {
        if let Some(h) = self.lock().get(uid) {
            h.updates.send_replace(PodUpdate::Gone);
        }
    }

    /// Removes directories of pods this node no longer has (after the first list).
    fn remove_orphans(&self, listed: &HashSet<String>) {
        self.shared.resources().retain(listed);
        let pods = self.shared.config.root_dir.join("pods");
        let Ok(entries) = std::fs::read_dir(&pods) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !listed.contains(&name) {
                tracing::info!(pod.uid = %name, "removing state of a pod that is gone");
                let volumes = self.shared.volumes.clone();
                let cancel = self.cancel.clone();
                self.tracker.spawn(remove_orphan(volumes, name, entry.path(), cancel));
            }
        }
    }
}

/// Removes one orphaned pod directory: its external (CSI) volumes are
/// released first, retried with back-off until that works or the agent stops.
async fn remove_orphan(volumes: wasmlet_volumes::Volumes, uid: String, dir: PathBuf, cancel: CancellationToken) {
    let backoff =
        wasmlet_retry::Backoff { min: std::time::Duration::from_secs(1), max: std::time::Duration::from_secs(60) };
    let mut delays = backoff.delays();
    while let Err(e) = volumes.release(&uid).await {
        let delay = delays.next().unwrap_or(backoff.max);
        tracing::warn!(pod.uid = %uid, error = %e, retry_in = ?delay, "releasing the volumes of a pod that is gone failed");
        if !wasmlet_retry::sleep(delay, &cancel).await {
            return;
        }
    }
    if let Err(e) = wasmlet_volumes::Volumes::cleanup(&dir) {
        tracing::warn!(pod.uid = %uid, error = %e, "removing the volumes of a pod that is gone failed; keeping its directory");
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!(pod.uid = %uid, error = %e, "removing orphaned pod directory failed");
    }
}
