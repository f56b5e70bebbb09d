//! Watches on nodes: Lease renewals (the heartbeat the node lifecycle
//! controller reads) and the Ready condition.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::runtime::watcher;

use super::pods::Guard;
use super::watch::AbortOnDrop;

/// Where node leases live.
const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Microseconds since the epoch.
pub(crate) fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Every `renewTime` written to the leases of some nodes.
pub(crate) struct LeaseRecorder {
    renewals: Arc<Mutex<HashMap<String, Vec<i64>>>>,
    _task: AbortOnDrop,
}

/// The longest a node went without renewing its lease.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct LeaseGap {
    pub(crate) node: String,
    pub(crate) secs: f64,
    /// Renewals seen in the window, over all nodes.
    pub(crate) renewals: usize,
}

impl LeaseRecorder {
    pub(crate) fn start(client: kube::Client, nodes: &[String]) -> Self {
        let renewals: Arc<Mutex<HashMap<String, Vec<i64>>>> =
            Arc::new(Mutex::new(nodes.iter().map(|n| (n.clone(), Vec::new())).collect()));
        let api: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
        let map = renewals.clone();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(event) = events.next().await {
                let lease = match event {
                    Ok(watcher::Event::Apply(l) | watcher::Event::InitApply(l)) => l,
                    _ => continue,
                };
                let (Some(name), Some(renew)) =
                    (lease.metadata.name.as_deref(), lease.spec.as_ref().and_then(|s| s.renew_time.as_ref()))
                else {
                    continue;
                };
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(times) = map.get_mut(name) {
                    let t = renew.0.as_microsecond();
                    if times.last() != Some(&t) {
                        times.push(t);
                    }
                }
            }
        });
        Self { renewals, _task: AbortOnDrop(task) }
    }

    /// The largest gap between renewals of any node within `[since, until]`,
    /// counting the stretch from `since` to a node's first renewal and from
    /// its last renewal to `until` (a node that never renewed has the whole
    /// window as its gap).
    pub(crate) fn max_gap(&self, since: SystemTime, until: SystemTime) -> Option<LeaseGap> {
        let (since, until) = (micros(since), micros(until));
        let map = self.renewals.lock().unwrap_or_else(|e| e.into_inner());
        let mut worst: Option<LeaseGap> = None;
        let mut total = 0;
        for (node, times) in map.iter() {
            let (gap, renewals) = longest_gap(times, since, until);
            total += renewals;
            let secs = gap as f64 / 1e6;
            if worst.as_ref().is_none_or(|w| secs > w.secs) {
                worst = Some(LeaseGap { node: node.clone(), secs, renewals: 0 });
            }
        }
        worst.map(|w| LeaseGap { renewals: total, ..w })
    }
}

/// The longest stretch (µs) without a renewal in `[since, until]`, and how
/// many renewals fell inside.
fn longest_gap(times: &[i64], since: i64, until: i64) -> (i64, usize) {
    let mut inside: Vec<i64> = times.iter().copied().filter(|t| *t >= since && *t <= until).collect();
    inside.sort_unstable();
    let n = inside.len();
    let mut points = vec![since];
    points.extend(inside);
    points.push(until);
    (points.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0), n)
}

/// Nodes' Ready condition over time.
pub(crate) struct NodeRecorder {
    state: Arc<Mutex<HashMap<String, NodeTimes>>>,
    _task: AbortOnDrop,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NodeTimes {
    /// First seen Ready.
    pub(crate) ready: Option<Instant>,
    /// Times it was seen not Ready after having been Ready, with the reason.
    pub(crate) not_ready: Vec<String>,
    ready_now: bool,
}

impl NodeRecorder {
    /// Watches nodes with label `selector`.
    pub(crate) fn start(client: kube::Client, selector: &str) -> Self {
        let state: Arc<Mutex<HashMap<String, NodeTimes>>> = Arc::default();
        let api: Api<Node> = Api::all(client);
        let config = watcher::Config::default().labels(selector);
        let map = state.clone();
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, config));
            while let Some(event) = events.next().await {
                let node = match event {
                    Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => n,
                    _ => continue,
                };
                let Some(name) = node.metadata.name.clone() else { continue };
                let ready = node
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| (c.status == "True", c.reason.clone().unwrap_or_default()));
                let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
                let times = map.entry(name).or_default();
                match ready {
                    Some((true, _)) => {
                        times.ready.get_or_insert_with(Instant::now);
                        times.ready_now = true;
                    }
                    Some((false, reason)) if times.ready_now => {
                        times.ready_now = false;
                        times.not_ready.push(reason);
                    }
                    _ => {}
                }
            }
        });
        Self { state, _task: AbortOnDrop(task) }
    }

    pub(crate) fn snapshot(&self) -> HashMap<String, NodeTimes> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until every node in `names` has been Ready once.
    pub(crate) async fn wait_ready(&self, names: &[String], timeout: Duration, guard: &Guard) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let snap = self.snapshot();
            let missing: Vec<&String> =
                names.iter().filter(|n| snap.get(*n).is_none_or(|t| t.ready.is_none())).collect();
            if missing.is_empty() {
                return Ok(());
            }
            if let Some(why) = guard() {
                anyhow::bail!("nodes {missing:?} not Ready: {why}");
            }
            if Instant::now() > deadline {
                anyhow::bail!("nodes not Ready after {}s: {missing:?}", timeout.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::longest_gap;

    #[test]
    fn the_longest_gap_counts_the_edges_of_the_window() {
        // Renewals at 10, 20, 45 in a window 5..50: the gap 20..45 is longest.
        assert_eq!(longest_gap(&[45, 10, 20, 70, 1], 5, 50), (25, 3));
        // Never renewed: the whole window.
        assert_eq!(longest_gap(&[], 0, 30), (30, 0));
        // The stretch before the first renewal counts.
        assert_eq!(longest_gap(&[40, 44], 0, 50), (40, 2));
    }
}
