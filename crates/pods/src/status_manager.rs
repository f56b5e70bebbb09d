//! [`StatusManager`]: writes pod statuses to the API server off the pod
//! workers' path, as upstream's status manager does.
//!
//! A pod worker hands over the status it computed ([`StatusManager::set`])
//! and goes on. The manager keeps only the latest status of each pod and a
//! queue of pods whose latest status is not written yet; [`WRITERS`] tasks
//! patch them. One pod is never patched twice at once, so its latest status
//! always lands last, and statuses set while a patch is under way are
//! coalesced into one next patch. A failed patch is retried after a capped
//! back-off, with whatever is latest by then. A worker that must know its
//! status landed (the final status, before the object is deleted) waits with
//! [`StatusManager::wait_written`].
//!
//! Each patch carries the pod's UID (`metadata.uid`), upstream's
//! precondition: a newer pod with the same name is never written to.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How many status patches may be under way at once.
pub(crate) const WRITERS: usize = 8;
/// First and longest delay before a failed patch is tried again.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// How long the writers keep writing queued statuses after they are stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes the latest status of each pod (see the [module docs](self)). Cheap to clone.
#[derive(Clone)]
pub(crate) struct StatusManager {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    metrics: Arc<wasmlet_metrics::Metrics>,
    state: Mutex<State>,
    /// Wakes a writer: a pod was queued.
    queued: Notify,
    /// Wakes [`StatusManager::wait_written`]ers: a patch ended.
    written: Notify,
    retries: TaskTracker,
    /// Ends the retry timers once the writers are done.
    done: CancellationToken,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    queue: VecDeque<String>,
}

struct Entry {
    namespace: String,
    name: String,
    status: serde_json::Value,
    /// Bumped by every [`StatusManager::set`].
    version: u64,
    /// The version last written (or found moot: the pod is gone).
    written: u64,
    queued: bool,
    in_flight: bool,
    failures: u32,
}

/// One patch to make.
struct Job {
    uid: String,
    namespace: String,
    name: String,
    status: serde_json::Value,
    version: u64,
}

impl StatusManager {
    pub(crate) fn new(client: kube::Client, metrics: Arc<wasmlet_metrics::Metrics>) -> Self {
        let inner = Inner {
            client,
            metrics,
            state: Mutex::default(),
            queued: Notify::new(),
            written: Notify::new(),
            retries: TaskTracker::new(),
            done: CancellationToken::new(),
        };
        Self { inner: Arc::new(inner) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `status` the status to write for pod `uid`; returns its version
    /// (for [`wait_written`](Self::wait_written)). Never waits.
    pub(crate) fn set(&self, uid: &str, namespace: &str, name: &str, status: serde_json::Value) -> u64 {
        let mut state = self.lock();
        let entry = state.entries.entry(uid.to_owned()).or_insert_with(|| Entry {
            namespace: String::new(),
            name: String::new(),
            status: serde_json::Value::Null,
            version: 0,
            written: 0,
            queued: false,
            in_flight: false,
            failures: 0,
        });
        namespace.clone_into(&mut entry.namespace);
        name.clone_into(&mut entry.name);
        entry.status = status;
        entry.version += 1;
        let version = entry.version;
        // A pod in flight is queued again when its patch ends.
        let queue = !entry.queued && !entry.in_flight;
        if queue {
            entry.queued = true;
            state.queue.push_back(uid.to_owned());
        }
        drop(state);
        if queue {
            self.inner.queued.notify_one();
        }
        version
    }

    /// Waits until version `version` of pod `uid`'s status (or a later one)
    /// is written, the pod is found gone, or `limit` passes; `true` unless
    /// the time ran out.
    pub(crate) async fn wait_written(&self, uid: &str, version: u64, limit: Duration) -> bool {
        let wait = async {
            loop {
                let written = self.inner.written.notified();
                let mut written = std::pin::pin!(written);
                written.as_mut().enable();
                if self.lock().entries.get(uid).is_none_or(|e| e.written >= version) {
                    return;
                }
                written.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Whether everything set for pod `uid` is written (nothing queued, in
    /// flight or waiting for a retry).
    pub(crate) fn settled(&self, uid: &str) -> bool {
        self.lock().entries.get(uid).is_none_or(|e| e.written >= e.version && !e.in_flight && !e.queued)
    }

    /// Forgets pod `uid` (its worker has ended): nothing more is written.
    pub(crate) fn forget(&self, uid: &str) {
        self.lock().entries.remove(uid);
        self.inner.written.notify_waiters();
    }

    /// Runs the writers until `stop`; then they write what is still queued
    /// for up to [`DRAIN_TIMEOUT`].
    pub(crate) async fn run(&self, stop: CancellationToken) {
        let writers = (0..WRITERS).map(|_| self.write(stop.clone()));
        futures::future::join_all(writers).await;
        let drain = async {
            while let Some(job) = self.next() {
                let outcome = self.patch(&job).await;
                self.finish(job, outcome, false);
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            tracing::debug!("agent stopping; queued pod statuses not written");
        }
        self.inner.done.cancel();
        self.inner.retries.close();
        self.inner.retries.wait().await;
    }

    /// One writer: patches queued pods until `stop`.
    async fn write(&self, stop: CancellationToken) {
        loop {
            let Some(job) = self.next() else {
                tokio::select! {
                    () = self.inner.queued.notified() => continue,
                    () = stop.cancelled() => return,
                }
            };
            let outcome = tokio::select! {
                outcome = self.patch(&job) => outcome,
                // Left for the drain, which tries it once more.
                () = stop.cancelled() => Outcome::Abandoned,
            };
            self.finish(job, outcome, !stop.is_cancelled());
        }
    }

    /// Takes the next queued pod, marking it in flight.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        while let Some(uid) = state.queue.pop_front() {
            let Some(entry) = state.entries.get_mut(&uid) else { continue };
            entry.queued = false;
            if entry.in_flight || entry.written >= entry.version {
                continue;
            }
            entry.in_flight = true;
            let job = Job {
                namespace: entry.namespace.clone(),
                name: entry.name.clone(),
                status: entry.status.clone(),
                version: entry.version,
                uid,
            };
            if !state.queue.is_empty() {
                // More work: wake another writer.
                self.inner.queued.notify_one();
            }
            return Some(job);
        }
        None
    }

    async fn patch(&self, job: &Job) -> Outcome {
        let api: Api<Pod> = Api::namespaced(self.inner.client.clone(), &job.namespace);
        let patch = serde_json::json!({ "metadata": { "uid": job.uid }, "status": job.status });
        match api.patch_status(&job.name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
            Ok(_) => Outcome::Written,
            // Gone, or a newer pod with the same name (the UID precondition).
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                tracing::debug!(pod.uid = %job.uid, code = e.code, "pod is gone; status not written");
                Outcome::Written
            }
            Err(e) => {
                self.inner.metrics.api_error("patch_pod_status");
                tracing::warn!(pod.uid = %job.uid, error = %e, "patching pod status failed; will retry");
                Outcome::Failed
            }
        }
    }

    /// Records how `job` ended and queues the pod again if there is more to
    /// write (at once, or after a back-off when `retry` and it failed).
    fn finish(&self, job: Job, outcome: Outcome, retry: bool) {
        let mut state = self.lock();
        let Some(entry) = state.entries.get_mut(&job.uid) else { return };
        entry.in_flight = false;
        let delay = match outcome {
            Outcome::Written => {
                entry.written = entry.written.max(job.version);
                entry.failures = 0;
                if entry.written >= entry.version {
                    // Nothing left to write: the worker keeps its own copy.
                    entry.status = serde_json::Value::Null;
                }
                None
            }
            Outcome::Abandoned => {
                entry.queued = true;
                state.queue.push_back(job.uid);
                return;
            }
            Outcome::Failed => {
                entry.failures = entry.failures.saturating_add(1);
                let exp = RETRY_MIN.saturating_mul(1 << entry.failures.min(10));
                Some(exp.min(RETRY_MAX))
            }
        };
        let more = entry.version > entry.written;
        match delay {
            None if more && !entry.queued => {
                entry.queued = true;
                state.queue.push_back(job.uid);
                drop(state);
                self.inner.queued.notify_one();
            }
            Some(delay) if retry => {
                drop(state);
                let this = self.clone();
                let done = self.inner.done.clone();
                self.inner.retries.spawn(async move {
                    tokio::select! {
                        () = tokio::time::sleep(delay) => this.requeue(&job.uid),
                        () = done.cancelled() => {}
                    }
                });
            }
            _ => drop(state),
        }
        self.inner.written.notify_waiters();
    }

    fn requeue(&self, uid: &str) {
        let mut state = self.lock();
        let Some(entry) = state.entries.get_mut(uid) else { return };
        if entry.queued || entry.in_flight || entry.written >= entry.version {
            return;
        }
        entry.queued = true;
        state.queue.push_back(uid.to_owned());
        drop(state);
        self.inner.queued.notify_one();
    }
}

enum Outcome {
    Written,
    Failed,
    /// Given up because the writers stop.
    Abandoned,
}

#[cfg(test)]
mod tests;
