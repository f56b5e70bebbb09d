//! Graceful node shutdown, the pod side: which pods are still active (with
//! their priority and own grace period), ending one for the shutdown and
//! waiting until it stopped, and refusing pods while the node shuts down.
//! The shutdown manager (`wasmlet-shutdown`) decides when and in what order.

use std::time::Duration;

use tokio::sync::watch;

use crate::admission::Rejection;
use crate::evict::Eviction;
use crate::manager::Handles;
use crate::status;
use crate::worker::PodUpdate;

/// The reason a pod bound while the node shuts down is refused with.
pub const REJECTED_REASON: &str = "NodeShutdown";
/// The admit handler's message (the status says `Pod was rejected: ` before it, as upstream).
pub const REJECTED_MESSAGE: &str = "Pod was rejected as the node is shutting down.";
/// How often a pod being stopped for the shutdown is looked at.
const STOPPED_POLL: Duration = Duration::from_millis(200);

/// One active pod as the shutdown manager sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePod {
    /// Its UID.
    pub uid: String,
    /// `spec.priority`, 0 when unset.
    pub priority: i32,
    /// `spec.terminationGracePeriodSeconds`, when set.
    pub termination_grace: Option<Duration>,
}

/// The pods present and not terminal.
pub(crate) fn active(handles: &Handles) -> Vec<ActivePod> {
    let handles = handles.lock().unwrap_or_else(|p| p.into_inner());
    handles
        .iter()
        .filter_map(|(uid, h)| {
            let PodUpdate::Present(pod) = &*h.updates.borrow() else { return None };
            let spec = pod.spec.as_ref()?;
            let record = h.record.lock().unwrap_or_else(|p| p.into_inner());
            let phase = status::phase_of(spec.restart_policy.as_deref().unwrap_or("Always"), &record);
            if status::phase::is_terminal(Some(&phase)) || record.verdict.is_some() {
                return None;
            }
            Some(ActivePod {
                uid: uid.clone(),
                priority: spec.priority.unwrap_or(0),
                termination_grace: spec.termination_grace_period_seconds.map(|s| Duration::from_secs(s.max(0) as u64)),
            })
        })
        .collect()
}

/// Ends pod `uid` as `eviction` says and waits until it stopped: its
/// verdict is recorded (containers stopped), or its worker is gone.
pub(crate) async fn terminate(handles: &Handles, uid: &str, eviction: Eviction) {
    if !crate::evict::evict(handles, uid, eviction) {
        return;
    }
    let mut tick = tokio::time::interval(STOPPED_POLL);
    loop {
        tick.tick().await;
        let handles = handles.lock().unwrap_or_else(|p| p.into_inner());
        let Some(h) = handles.get(uid) else { return };
        if h.record.lock().unwrap_or_else(|p| p.into_inner()).verdict.is_some() {
            return;
        }
    }
}

/// Upstream's node shutdown admit handler: while `shutting_down` says so,
/// every pod is refused.
pub(crate) fn admit(shutting_down: Option<&watch::Receiver<bool>>) -> Result<(), Rejection> {
    match shutting_down {
        Some(rx) if *rx.borrow() => Err(Rejection::new(REJECTED_REASON, REJECTED_MESSAGE)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_refused_only_while_the_node_shuts_down() {
        assert_eq!(admit(None), Ok(()));
        let (tx, rx) = watch::channel(false);
        assert_eq!(admit(Some(&rx)), Ok(()));
        tx.send_replace(true);
        let refused = admit(Some(&rx)).unwrap_err();
        assert_eq!(refused.reason, "NodeShutdown");
        assert_eq!(refused.message, "Pod was rejected: Pod was rejected as the node is shutting down.");
        tx.send_replace(false);
        assert_eq!(admit(Some(&rx)), Ok(()), "a cancelled shutdown takes pods again");
    }
}
