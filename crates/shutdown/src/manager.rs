//! The node shutdown manager: holds a delay inhibitor lock, and on
//! `PrepareForShutdown(true)` marks the node as shutting down, stops pods
//! band by band and lets the shutdown go on by closing the lock.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zbus::OwnedFd;

use crate::logind::{self, Logind};
use crate::plan::{self, ActivePod, PriorityPeriod};

/// How many times the inhibit delay is read again after asking logind to
/// raise it (upstream's 5 attempts).
const RAISE_ATTEMPTS: u32 = 5;
/// Between those reads.
const RAISE_INTERVAL: Duration = Duration::from_secs(1);
/// Restarting the watch after the bus went away: upstream waits 1 s; here
/// that grows (with jitter) up to 30 s while the bus stays away.
const RECONNECT: wasmlet_retry::Backoff =
    wasmlet_retry::Backoff { min: Duration::from_secs(1), max: Duration::from_secs(30) };

/// Settings of the shutdown manager.
#[derive(Debug, Clone)]
pub struct Config {
    /// The priority bands (see [`plan::migrate`]); empty turns the manager off.
    pub periods: Vec<PriorityPeriod>,
    /// Where the drop-in raising logind's `InhibitDelayMaxSec` goes
    /// (upstream: `/etc/systemd/logind.conf.d`).
    pub logind_conf_dir: PathBuf,
    /// Who takes the lock, as `systemd-inhibit --list` shows it.
    pub who: String,
    /// The bus logind is on; `None`: the system bus (`DBUS_SYSTEM_BUS_ADDRESS`,
    /// else `/var/run/dbus/system_bus_socket`).
    pub bus_address: Option<String>,
}

impl Config {
    /// Upstream's defaults with the given bands.
    pub fn new(periods: Vec<PriorityPeriod>) -> Self {
        Self {
            periods,
            logind_conf_dir: PathBuf::from("/etc/systemd/logind.conf.d"),
            who: "wasmlet".into(),
            bus_address: None,
        }
    }
}

/// The pods the manager stops.
#[async_trait::async_trait]
pub trait Pods: Send + Sync {
    /// The pods that still run or may run (not finished).
    fn active(&self) -> Vec<ActivePod>;
    /// Ends pod `uid` within `grace` (`Failed` / `Terminated`, upstream's
    /// message) and returns once it stopped. The manager may stop waiting
    /// (its band's time is up); the pod stops all the same.
    async fn terminate(&self, uid: &str, grace: Duration);
}

/// Why watching for shutdowns could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The bus or logind failed.
    #[error(transparent)]
    Bus(#[from] logind::Error),
    /// logind would not wait long enough, even after the drop-in.
    #[error(
        "logind's InhibitDelayMaxSec is {current:?} after {RAISE_ATTEMPTS} attempts to raise it to {requested:?} (the shutdown grace period)"
    )]
    DelayTooShort {
        /// What the bands need.
        requested: Duration,
        /// What logind allows.
        current: Duration,
    },
}

/// Runs until `cancel`. `shutting_down` becomes `true` on a shutdown (pods
/// are refused from then on, the node reports NotReady) and `false` when it
/// is cancelled. Without bands it returns at once; when the system bus or
/// logind cannot be used at the start, it logs that once and returns (node
/// shutdown is then immediate, as upstream).
pub async fn run(config: Config, pods: Arc<dyn Pods>, shutting_down: watch::Sender<bool>, cancel: CancellationToken) {
    if config.periods.is_empty() {
        tracing::info!("no shutdown grace period configured; node shutdown will be immediate");
        return;
    }
    tracing::info!(periods = ?config.periods, "starting the node shutdown manager");
    let mut session = match Session::start(&config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %wasmlet_retry::Chain(&e), "failed to start node shutdown manager; node shutdown will be immediate");
            return;
        }
    };
    let mut delays = RECONNECT.delays();
    loop {
        session.watch(&config, pods.as_ref(), &shutting_down, &cancel).await;
        if cancel.is_cancelled() {
            return;
        }
        // The bus went away: watch again once it is back.
        loop {
            let delay = delays.next().unwrap_or(RECONNECT.max);
            if !wasmlet_retry::sleep(delay, &cancel).await {
                return;
            }
            match Session::start(&config).await {
                Ok(s) => {
                    tracing::info!("watching for node shutdown again");
                    session = s;
                    delays = RECONNECT.delays();
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %wasmlet_retry::Chain(&e), retry_in = ?delay, "restarting the node shutdown watch failed")
                }
            }
        }
    }
}

/// One connection to logind with the lock and the signal subscription.
struct Session {
    logind: Logind,
    signals: logind::PrepareForShutdownStream,
    lock: Option<OwnedFd>,
}

impl Session {
    async fn start(config: &Config) -> Result<Self, StartError> {
        let logind = Logind::connect(config.bus_address.as_deref()).await?;
        let requested = plan::requested(&config.periods);
        let mut current = logind.inhibit_delay().await?;
        if requested > current {
            tracing::info!(?requested, ?current, dir = %config.logind_conf_dir.display(), "raising logind's InhibitDelayMaxSec");
            logind.raise_inhibit_delay(&config.logind_conf_dir, requested).await?;
            for attempt in 1..=RAISE_ATTEMPTS {
                current = logind.inhibit_delay().await?;
                if current >= requested || attempt == RAISE_ATTEMPTS {
                    break;
                }
                tokio::time::sleep(RAISE_INTERVAL).await;
            }
            if requested > current {
                return Err(StartError::DelayTooShort { requested, current });
            }
        }
        // Subscribed before the lock is taken: no shutdown is missed in between.
        let signals = logind
            .login
            .receive_prepare_for_shutdown()
            .await
            .map_err(|source| logind::Error::Logind { call: "AddMatch PrepareForShutdown", source })?;
        let lock = Some(logind.inhibit(&config.who).await?);
        tracing::info!(inhibit_delay = ?current, "holding a delay inhibitor lock on shutdown");
        Ok(Self { logind, signals, lock })
    }

    /// Handles `PrepareForShutdown` until the bus goes away or `cancel`.
    async fn watch(
        &mut self,
        config: &Config,
        pods: &dyn Pods,
        shutting_down: &watch::Sender<bool>,
        cancel: &CancellationToken,
    ) {
        loop {
            let signal = tokio::select! {
                s = self.signals.next() => s,
                () = cancel.cancelled() => return,
            };
            let Some(signal) = signal else {
                tracing::warn!("the node shutdown watch ended (the system bus went away)");
                return;
            };
            let start = match signal.args() {
                Ok(args) => args.start,
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring a PrepareForShutdown signal without a boolean");
                    continue;
                }
            };
            shutting_down.send_replace(start);
            if start {
                tracing::warn!("the node is shutting down: refusing new pods, stopping pods by priority");
                let active = pods.active();
                let stopped = tokio::select! {
                    () = terminate(&config.periods, active, pods) => true,
                    () = cancel.cancelled() => false,
                };
                // Closing the fd lets the shutdown go on.
                self.lock = None;
                tracing::info!(stopped, "released the inhibitor lock; the node will shut down shortly");
                if !stopped {
                    return;
                }
            } else {
                tracing::info!("node shutdown cancelled: taking pods again");
                match self.logind.inhibit(&config.who).await {
                    Ok(fd) => self.lock = Some(fd),
                    Err(e) => {
                        tracing::error!(error = %wasmlet_retry::Chain(&e), "taking the inhibitor lock again failed")
                    }
                }
            }
        }
    }
}

/// Stops `active` band by band, lowest priority first. The pods of a band
/// stop together; the next band starts once they all stopped or the band's
/// time is up, as upstream.
pub(crate) async fn terminate(periods: &[PriorityPeriod], active: Vec<ActivePod>, pods: &dyn Pods) {
    for group in plan::groups(periods, active) {
        if group.pods.is_empty() {
            continue;
        }
        let band = group.period;
        tracing::info!(priority = band.priority, grace = ?band.grace, pods = group.pods.len(), "stopping pods");
        let all = futures::future::join_all(group.pods.iter().map(|(pod, grace)| pods.terminate(&pod.uid, *grace)));
        if tokio::time::timeout(band.grace, all).await.is_err() {
            tracing::warn!(priority = band.priority, grace = ?band.grace, "pods of this band did not stop in time; going on");
        }
    }
}
