//! [`Heartbeat`]: the two loops that keep a registered Node alive, run side
//! by side on the caller's task until cancelled.
//!
//! - the Lease loop ([`crate::lease`]) renews `kube-node-lease/<name>`;
//! - the status loop (here) recomputes node status every
//!   `status_update_frequency`, and at once when [`NodeHealth`] changes, and
//!   PATCHes `nodes/status` when something changed or `status_report_frequency`
//!   has passed since the last report. A failed update is retried a few times
//!   with backoff, then left to the next tick; the loop never gives up.

use std::fmt;
use std::path::PathBuf;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::{self, KubeApi, NodeApi};
use crate::backoff::{self, Chain, Retry, Step};
use crate::config::NodeConfig;
use crate::host::{self, HostSample, SystemInfo};
use crate::lease::LeaseKeeper;
use crate::status::{self, Inputs, NodeHealth};

/// Attempts per status update before waiting for the next tick (upstream
/// `nodeStatusUpdateRetry`).
const STATUS_UPDATE_ATTEMPTS: usize = 5;

/// A failed status update attempt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Reading the Node failed.
    #[error("getting the Node")]
    GetNode(#[source] api::Error),
    /// The status PATCH failed.
    #[error("patching node status")]
    PatchStatus(#[source] api::Error),
}

/// Keeps a registered Node alive: Lease renewals and node status updates.
pub struct Heartbeat {
    api: KubeApi,
    config: NodeConfig,
    uid: String,
}

impl fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Heartbeat").field("node", &self.config.name).field("uid", &self.uid).finish_non_exhaustive()
    }
}

impl Heartbeat {
    /// A heartbeat for the Node `config.name` with UID `node_uid` (from
    /// [`register`](crate::register())). `client` authenticates as that node.
    pub fn new(client: kube::Client, config: NodeConfig, node_uid: impl Into<String>) -> Self {
        let uid = node_uid.into();
        Self { api: KubeApi::new(client, &config, &uid), config, uid }
    }

    /// Runs both loops until `cancel` fires. `health` is the binary's view of
    /// the node; each new value triggers a status update.
    ///
    /// # Guarantees
    ///
    /// Returns only when cancelled: API errors are logged at warn and retried,
    /// and a failed host measurement reuses the last good one. Nothing is
    /// spawned; both loops run inside the returned future.
    pub async fn run(self, health: watch::Receiver<NodeHealth>, cancel: CancellationToken) {
        let lease = LeaseKeeper::new(&self.api, &self.config, &self.uid);
        let probe = HostProbe(self.config.root_dir.clone());
        let status = StatusReporter::new(&self.api, &self.config, probe, host::system_info());
        tokio::join!(lease.run(&cancel), status.run(health, &cancel));
    }
}

/// Where the status loop gets host measurements from.
pub(crate) trait Probe {
    fn sample(&self) -> Result<HostSample, host::Error>;
}

/// The real host, with `root_dir` as the measured filesystem.
pub(crate) struct HostProbe(pub(crate) PathBuf);

impl Probe for HostProbe {
    fn sample(&self) -> Result<HostSample, host::Error> {
        host::measure(&self.0)
    }
}

/// The node status loop.
pub(crate) struct StatusReporter<'a, A, P> {
    api: &'a A,
    config: &'a NodeConfig,
    probe: P,
    info: SystemInfo,
    last_sample: Option<HostSample>,
    last_report: Option<Instant>,
}

impl<'a, A: NodeApi, P: Probe> StatusReporter<'a, A, P> {
    pub(crate) fn new(api: &'a A, config: &'a NodeConfig, probe: P, info: SystemInfo) -> Self {
        Self { api, config, probe, info, last_sample: None, last_report: None }
    }

    pub(crate) async fn run(mut self, mut health: watch::Receiver<NodeHealth>, cancel: &CancellationToken) {
        let mut tick = tokio::time::interval(self.config.status_update_frequency);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut health_open = true;
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                changed = health.changed(), if health_open => {
                    if changed.is_err() {
                        tracing::debug!("node health sender dropped; keeping the last value");
                        health_open = false;
                        continue;
                    }
                }
                _ = tick.tick() => {}
            }
            let current = health.borrow_and_update().clone();
            let span = tracing::info_span!("update_node_status", node.name = %self.config.name);
            self.update(&current, cancel).instrument(span).await;
            // Sliding cadence, as upstream: a full period after this update.
            tick.reset();
        }
    }

    /// One update: measure, then read, compare and maybe patch, with retries.
    async fn update(&mut self, health: &NodeHealth, cancel: &CancellationToken) {
        let sample = match (self.probe.sample(), self.last_sample) {
            (Ok(s), _) => s,
            (Err(e), Some(last)) => {
                tracing::warn!(error = %Chain(&e), "measuring the host failed; reusing the last sample");
                last
            }
            (Err(e), None) => {
                tracing::warn!(error = %Chain(&e), "measuring the host failed; skipping this update");
                return;
            }
        };
        self.last_sample = Some(sample);
        let mut retry = Retry::new(backoff::HEARTBEAT, Some(STATUS_UPDATE_ATTEMPTS), cancel, "updating node status");
        loop {
            match retry.step(self.try_update(health, &sample)).await {
                Step::Done(Some(ready)) => break self.api.ready_changed(ready).await,
                Step::Done(None) | Step::Stopped(_) => break,
                Step::Again => {}
            }
        }
    }

    /// Returns `Some(ready)` when the patch changed the Ready condition.
    async fn try_update(&mut self, health: &NodeHealth, sample: &HostSample) -> Result<Option<bool>, Error> {
        let node = self.api.get_node().await.map_err(Error::GetNode)?;
        let current = node.status.as_ref();
        let inputs = Inputs { config: self.config, sample, info: &self.info, health };
        let desired = status::desired(current, &inputs, k8s_openapi::jiff::Timestamp::now());
        let changed = status::differs(current, &desired);
        let every = self.config.status_report_frequency;
        if !status::patch_due(changed, self.last_report, Instant::now(), every) {
            tracing::trace!("node status unchanged; not patching");
            return Ok(None);
        }
        let patched = self.api.patch_node_status(&status::patch(&desired)).await.map_err(Error::PatchStatus)?;
        self.last_report = Some(Instant::now());
        tracing::debug!(changed, "node status patched");
        let before = status::ready(current);
        let after = status::ready(patched.status.as_ref());
        Ok(match after {
            Some(after) if before != Some(after) && after != "Unknown" => Some(after == "True"),
            _ => None,
        })
    }
}

#[cfg(test)]
#[path = "heartbeat_tests.rs"]
mod tests;
