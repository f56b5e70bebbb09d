//! The pods the node shutdown manager (`wasmlet-shutdown`) stops: pod sync's
//! active pods, ended `Failed` / `Terminated` with upstream's message.

use std::sync::Arc;
use std::time::Duration;

use wasmlet_shutdown::{ActivePod, TERMINATED_MESSAGE, TERMINATED_REASON};

/// Pod sync, as the shutdown manager sees it.
pub(crate) struct ShutdownPods(pub(crate) Arc<wasmlet_pods::Pods>);

#[async_trait::async_trait]
impl wasmlet_shutdown::Pods for ShutdownPods {
    fn active(&self) -> Vec<ActivePod> {
        let pods = self.0.active_pods().into_iter();
        pods.map(|p| ActivePod { uid: p.uid, priority: p.priority, termination_grace: p.termination_grace }).collect()
    }

    async fn terminate(&self, uid: &str, grace: Duration) {
        let eviction =
            wasmlet_pods::Eviction { grace, reason: TERMINATED_REASON.into(), message: TERMINATED_MESSAGE.into() };
        self.0.terminate(uid, eviction).await;
    }
}
