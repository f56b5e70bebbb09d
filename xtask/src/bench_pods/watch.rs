//! What the benchmark sees through watches: when each pod was created,
//! Running, Ready, Succeeded and gone; a node's Lease renewals; nodes'
//! Ready condition. Times are this process's monotonic clock at the moment
//! an event arrived (`Instant`), so every peer is timed the same way.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::Notify;

/// Aborts a background task when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What happened to one pod, in the order it happened.
#[derive(Debug, Clone, Default)]
pub(crate) struct PodTimes {
    /// The create request was sent.
    pub(crate) sent: Option<Instant>,
    /// The apiserver's answer to the create arrived.
    pub(crate) acked: Option<Instant>,
    /// The first watch event of the pod.
    pub(crate) watched: Option<Instant>,
    pub(crate) running: Option<Instant>,
    pub(crate) ready: Option<Instant>,
    pub(crate) succeeded: Option<Instant>,
    pub(crate) failed: Option<Instant>,
    pub(crate) deleted: Option<Instant>,
    /// `status.reason`/`message` of a Failed pod.
    pub(crate) failure: Option<String>,
    /// The last reason a container was waiting for, beyond creation
    /// (CrashLoopBackOff, RunContainerError, ...), with its message.
    pub(crate) waiting: Option<(String, String)>,
    pub(crate) node: Option<String>,
}

impl PodTimes {
    /// When the pod came to exist, as this client can tell: the apiserver's
    /// answer to the create or the pod's first watch event, whichever came
    /// first (a node agent may see the pod before the creator hears back).
    pub(crate) fn created(&self) -> Option<Instant> {
        match (self.acked, self.watched) {
            (Some(a), Some(w)) => Some(a.min(w)),
            (a, w) => a.or(w),
        }
    }

    /// Seconds from creation to `t`.
    pub(crate) fn since_created(&self, t: Option<Instant>) -> Option<f64> {
        Some(t?.checked_duration_since(self.created()?)?.as_secs_f64())
    }
}

/// Counts of pods that reached each state (each pod counted once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) seen: usize,
    pub(crate) running: usize,
    pub(crate) ready: usize,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    pub(crate) deleted: usize,
}

#[derive(Default)]
struct State {
    pods: HashMap<String, PodTimes>,
    counts: Counts,
    /// Names listed since the watch (re)started, to find pods deleted while
    /// it was down.
    relist: Option<HashSet<String>>,
}

/// Pods of one label selector in one namespace, recorded by a watch.
#[derive(Clone)]
pub(crate) struct PodRecorder {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    _task: Arc<AbortOnDrop>,
}

impl PodRecorder {
    /// Starts watching; returns once the watch has listed (so no event of
    /// a pod created afterwards can be missed).
    pub(crate) async fn start(api: Api<Pod>, selector: &str) -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        let config = watcher::Config::default().labels(selector);
        let task = {
            let (state, changed) = (state.clone(), changed.clone());
            tokio::spawn(async move {
                let mut listed = Some(listed_tx);
                let mut events = std::pin::pin!(watcher(api, config));
                while let Some(event) = events.next().await {
                    let now = Instant::now();
                    let Ok(event) = event else { continue };
                    if matches!(event, watcher::Event::InitDone)
                        && let Some(tx) = listed.take()
                    {
                        let _ = tx.send(());
                    }
                    apply(&mut lock(&state), event, now);
                    changed.notify_waiters();
                }
            })
        };
        let recorder = Self { state, changed, _task: Arc::new(AbortOnDrop(task)) };
        tokio::time::timeout(Duration::from_secs(60), listed_rx)
            .await
            .map_err(|_| anyhow::anyhow!("the pod watch did not list within 60 s"))??;
        Ok(recorder)
    }

    /// Notes that the create request for `name` is about to be sent.
    pub(crate) fn sent(&self, name: &str) {
        lock(&self.state).pods.entry(name.to_owned()).or_default().sent = Some(Instant::now());
    }

    /// Notes the apiserver's answer to the create request for `name`.
    pub(crate) fn acked(&self, name: &str) {
        lock(&self.state).pods.entry(name.to_owned()).or_default().acked = Some(Instant::now());
    }

    pub(crate) fn counts(&self) -> Counts {
        lock(&self.state).counts
    }

    /// A copy of every pod's times.
    pub(crate) fn snapshot(&self) -> HashMap<String, PodTimes> {
        lock(&self.state).pods.clone()
    }

    /// What the pods that are neither Ready nor finished wait for: the
    /// commonest container waiting reasons, with an example message.
    pub(crate) fn stuck_summary(&self) -> Option<String> {
        let state = lock(&self.state);
        let mut reasons: HashMap<&str, (usize, &str)> = HashMap::new();
        let mut stuck = 0;
        for t in state.pods.values() {
            if t.ready.is_some() || t.succeeded.is_some() || t.failed.is_some() || t.deleted.is_some() {
                continue;
            }
            stuck += 1;
            let (reason, message) = t.waiting.as_ref().map_or(("no waiting reason", ""), |(r, m)| (r, m));
            let entry = reasons.entry(reason).or_insert((0, message));
            entry.0 += 1;
        }
        if stuck == 0 {
            return None;
        }
        let mut list: Vec<_> = reasons.into_iter().collect();
        list.sort_by_key(|(_, (n, _))| std::cmp::Reverse(*n));
        let parts: Vec<String> = list
            .iter()
            .take(3)
            .map(|(r, (n, m))| format!("{n}× {r}{}", if m.is_empty() { String::new() } else { format!(" ({m})") }))
            .collect();
        Some(format!("{stuck} pods not Ready: {}", parts.join("; ")))
    }

    /// Waits until the counts change (or 250 ms pass).
    pub(crate) async fn changed(&self) {
        let _ = tokio::time::timeout(Duration::from_millis(250), self.changed.notified()).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn apply(state: &mut State, event: watcher::Event<Pod>, now: Instant) {
    match event {
        watcher::Event::Init => state.relist = Some(HashSet::new()),
        watcher::Event::InitApply(pod) => {
            if let (Some(seen), Some(name)) = (state.relist.as_mut(), pod.metadata.name.clone()) {
                seen.insert(name);
            }
            observe(state, &pod, now);
        }
        watcher::Event::InitDone => {
            if let Some(seen) = state.relist.take() {
                let gone: Vec<String> = state
                    .pods
                    .iter()
                    .filter(|(n, t)| t.watched.is_some() && t.deleted.is_none() && !seen.contains(*n))
                    .map(|(n, _)| n.clone())
                    .collect();
                for name in gone {
                    mark_deleted(state, &name, now);
                }
            }
        }
        watcher::Event::Apply(pod) => observe(state, &pod, now),
        watcher::Event::Delete(pod) => {
            if let Some(name) = pod.metadata.name.as_deref() {
                observe(state, &pod, now);
                mark_deleted(state, name, now);
            }
        }
    }
}

fn mark_deleted(state: &mut State, name: &str, now: Instant) {
    let times = state.pods.entry(name.to_owned()).or_default();
    if times.deleted.is_none() {
        times.deleted = Some(now);
        state.counts.deleted += 1;
    }
}

fn observe(state: &mut State, pod: &Pod, now: Instant) {
    let Some(name) = pod.metadata.name.as_deref() else { return };
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let counts = &mut state.counts;
    let times = state.pods.entry(name.to_owned()).or_default();
    let first = |slot: &mut Option<Instant>, count: &mut usize| {
        if slot.is_none() {
            *slot = Some(now);
            *count += 1;
        }
    };
    first(&mut times.watched, &mut counts.seen);
    if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
        times.node = Some(node);
    }
    let waiting = status.and_then(|s| s.container_statuses.as_ref()).into_iter().flatten().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.clone()?;
        if reason == "ContainerCreating" || reason == "PodInitializing" {
            return None;
        }
        // A back-off says little; why the last attempt ended says more.
        let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let message = match last {
            Some(t) => format!("last: {} {}", t.reason.as_deref().unwrap_or(""), t.message.as_deref().unwrap_or("")),
            None => w.message.clone().unwrap_or_default(),
        };
        Some((reason, message.chars().take(200).collect()))
    });
    if waiting.is_some() {
        times.waiting = waiting;
    }
    if matches!(phase, "Running" | "Succeeded") {
        first(&mut times.running, &mut counts.running);
    }
    if ready {
        first(&mut times.ready, &mut counts.ready);
    }
    match phase {
        "Succeeded" => first(&mut times.succeeded, &mut counts.succeeded),
        "Failed" => {
            first(&mut times.failed, &mut counts.failed);
            if times.failure.is_none() {
                let s = status.cloned().unwrap_or_default();
                times.failure = Some(format!("{}: {}", s.reason.unwrap_or_default(), s.message.unwrap_or_default()));
            }
        }
        _ => {}
    }
}
