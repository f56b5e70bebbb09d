//! [`Manager`]: the eviction manager's control loop (upstream
//! `managerImpl.Start` / `synchronize`), driving a [`Target`].
//!
//! Every monitoring interval: measure the node and the pods, update the
//! [`State`] (met thresholds, node conditions), publish the conditions; if a
//! threshold is met for its grace period, reclaim its resource: for disk,
//! node-level garbage first (and stop if that was enough); then rank the
//! active pods and evict the first one that may be evicted — one pod per
//! pass — and wait (up to 30 s) for it to be cleaned up before the next pass.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admit::Admission;
use crate::config::Config;
use crate::observe::{NodeStats, Observations, PodStats};
use crate::signal::{Conditions, Resource, Signal};
use crate::state::State;
use crate::{message, pod, rank};

/// Upstream `podCleanupTimeout`: how long to wait for an evicted pod to be cleaned up.
pub const POD_CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream `podCleanupPollFreq`.
pub const POD_CLEANUP_POLL: Duration = Duration::from_secs(1);
/// Upstream `immediateEvictionGracePeriodSeconds`: the grace period of a
/// hard eviction.
pub const HARD_EVICTION_GRACE: Duration = Duration::from_secs(1);

/// One eviction the manager asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Eviction {
    /// The pod.
    pub pod: Arc<Pod>,
    /// The signal whose threshold is met (the `eviction_signal` metric label).
    pub signal: Signal,
    /// How long its containers get to stop.
    pub grace: Duration,
    /// The pod's status message (reason `Evicted`).
    pub message: String,
}

/// What the manager measures and acts on: the node and its pods.
pub trait Target: Send + Sync + 'static {
    /// The node's figures now (`/proc`, `statvfs`: cheap).
    fn node(&self) -> NodeStats;

    /// The active pods with their usage. With `disk`, their logs and local
    /// volumes are measured too: that walks directories, so the manager then
    /// calls it on a blocking thread.
    fn pods(&self, disk: bool) -> Vec<PodStats>;

    /// Stops the pod and ends it `Failed` / `Evicted` (with the message, a
    /// `DisruptionTarget` condition and an `Evicted` event). Returns whether
    /// the pod was found and asked to stop.
    fn evict(&self, eviction: &Eviction) -> bool;

    /// Whether an evicted pod is cleaned up (no container runs any more).
    fn cleaned_up(&self, uid: &str) -> bool;

    /// Frees node-level disk space: unused images and compiled code.
    fn reclaim_node_disk(&self) -> impl Future<Output = ()> + Send;

    /// A threshold for `resource` is met and the manager starts reclaiming
    /// it (upstream's `EvictionThresholdMet` node event).
    fn reclaiming(&self, resource: Resource) -> impl Future<Output = ()> + Send;
}

/// The eviction manager.
pub struct Manager<T> {
    config: Config,
    target: Arc<T>,
    state: State,
    conditions: watch::Sender<Conditions>,
}

impl<T> std::fmt::Debug for Manager<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<T: Target> Manager<T> {
    /// A manager enforcing `config` on `target`; no pressure until the first pass.
    pub fn new(config: Config, target: Arc<T>) -> Self {
        let (conditions, _) = watch::channel(Conditions::default());
        Self { config, target, state: State::default(), conditions }
    }

    /// The node conditions, updated every pass.
    pub fn conditions(&self) -> watch::Receiver<Conditions> {
        self.conditions.subscribe()
    }

    /// Pod admission against the current conditions.
    pub fn admission(&self) -> Admission {
        Admission::new(self.conditions.subscribe())
    }

    /// Runs the control loop until `cancel`.
    ///
    /// # Guarantees
    ///
    /// Never returns early: a failed measurement means no signal (and no
    /// eviction) for that pass.
    pub async fn run(mut self, cancel: CancellationToken) {
        tracing::info!(thresholds = self.config.thresholds.len(), "eviction manager: starting control loop");
        loop {
            let evicted = tokio::select! {
                e = self.synchronize() => e,
                () = cancel.cancelled() => return,
            };
            let pause = async {
                match evicted {
                    Some(uid) => self.wait_for_cleanup(uid).await,
                    None => tokio::time::sleep(self.config.monitoring_interval).await,
                }
            };
            tokio::select! {
                () = pause => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// One pass; returns the UID of the pod it evicted.
    pub async fn synchronize(&mut self) -> Option<String> {
        let thresholds = &self.config.thresholds;
        if thresholds.is_empty() {
            return None;
        }
        let node = self.target.node();
        let pods = self.target.pods(false);
        let observations = Observations::new(&node, &pods, self.config.reserved_memory);
        let pass = self.state.pass(thresholds, &observations, self.config.pressure_transition_period, Instant::now());
        self.conditions.send_if_modified(|c| std::mem::replace(c, pass.conditions) != pass.conditions);
        let threshold = pass.met.first()?.clone();
        let resource = threshold.signal.resource();
        tracing::info!(%resource, signal = %threshold.signal, "eviction manager: attempting to reclaim");
        self.target.reclaiming(resource).await;
        if resource.is_disk() {
            self.target.reclaim_node_disk().await;
            let after = Observations::new(&self.target.node(), &pods, self.config.reserved_memory);
            if State::resolved(thresholds, &after) {
                tracing::info!(%resource, "eviction manager: reclaimed enough without evicting pods");
                return None;
            }
        }
        let mut candidates = if resource.is_disk() { self.measure_disk().await } else { pods };
        if candidates.is_empty() {
            tracing::warn!(%resource, "eviction manager: thresholds met, but no pods are active to evict");
            return None;
        }
        rank::rank(&mut candidates, threshold.signal, node.dedicated_image_fs);
        tracing::info!(
            %resource,
            pods = ?candidates.iter().map(PodStats::key).collect::<Vec<_>>(),
            "eviction manager: must evict a pod; ranked"
        );
        for candidate in &candidates {
            if pod::is_critical(&candidate.pod) {
                tracing::error!(pod = %candidate.key(), "eviction manager: cannot evict a critical pod");
                continue;
            }
            let eviction = Eviction {
                pod: candidate.pod.clone(),
                signal: threshold.signal,
                grace: self.grace(&threshold, &candidate.pod),
                message: message::eviction(resource, candidate, &pass.met, &observations),
            };
            if self.target.evict(&eviction) {
                tracing::warn!(pod = %candidate.key(), message = %eviction.message, "eviction manager: evicted");
                return Some(candidate.uid().to_owned());
            }
        }
        tracing::warn!(%resource, "eviction manager: unable to evict any pod");
        None
    }

    /// Hard: [`HARD_EVICTION_GRACE`]; soft: the pod's grace period, at most
    /// `--eviction-max-pod-grace-period`.
    fn grace(&self, threshold: &crate::threshold::Threshold, pod: &Pod) -> Duration {
        if threshold.is_hard() {
            return HARD_EVICTION_GRACE;
        }
        let max = self.config.max_pod_grace_period;
        match pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds) {
            Some(secs) => max.min(Duration::from_secs(u64::try_from(secs).unwrap_or(0))),
            None => max,
        }
    }

    async fn measure_disk(&self) -> Vec<PodStats> {
        let target = self.target.clone();
        match tokio::task::spawn_blocking(move || target.pods(true)).await {
            Ok(pods) => pods,
            Err(e) => {
                tracing::error!(error = %e, "eviction manager: measuring pods' disk usage failed; this is a bug");
                Vec::new()
            }
        }
    }

    /// Polls until the evicted pod is cleaned up, or [`POD_CLEANUP_TIMEOUT`].
    async fn wait_for_cleanup(&self, uid: String) {
        let deadline = Instant::now() + POD_CLEANUP_TIMEOUT;
        let mut poll = tokio::time::interval(POD_CLEANUP_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        loop {
            tokio::select! {
                _ = poll.tick() => {}
                () = tokio::time::sleep_until(deadline) => {
                    tracing::info!(pod.uid = %uid, "eviction manager: timed out waiting for the pod to be cleaned up");
                    return;
                }
            }
            if self.target.cleaned_up(&uid) {
                tracing::info!(pod.uid = %uid, "eviction manager: pod cleaned up");
                return;
            }
        }
    }
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
