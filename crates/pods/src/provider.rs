//! What the kubelet API reads: the pods of this node with the status the agent
//! computes, and where each container's log is.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use wasmlet_api::{LogSource, LookupError, Provider};

use crate::manager::Handles;
use crate::record::ContainerState;
use crate::status;
use crate::worker::{PodUpdate, Shared};

pub(crate) struct PodsProvider {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handles: Handles,
    pub(crate) streaming: wasmlet_streaming::Streaming,
}

impl Provider for PodsProvider {
    fn streaming(&self) -> Option<wasmlet_streaming::Streaming> {
        Some(self.streaming.clone())
    }

    fn pods(&self) -> Vec<Pod> {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles
            .values()
            .filter_map(|h| match &*h.updates.borrow() {
                PodUpdate::Present(pod) => {
                    let record = h.record.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let addrs = self.shared.addresses(&record);
                    let mut pod = Pod::clone(pod);
                    pod.status = Some(status::compute(&pod, &record, &addrs, Timestamp::now()));
                    Some(pod)
                }
                PodUpdate::Gone => None,
            })
            .collect()
    }

    fn container_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogSource, LookupError> {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let handle = handles
            .values()
            .find(|h| match &*h.updates.borrow() {
                PodUpdate::Present(p) => {
                    p.metadata.namespace.as_deref() == Some(namespace) && p.metadata.name.as_deref() == Some(pod)
                }
                PodUpdate::Gone => false,
            })
            .ok_or(LookupError::PodNotFound)?;
        let record = handle.record.lock().unwrap_or_else(|p| p.into_inner());
        let c = record.container(container).ok_or(LookupError::ContainerNotFound)?;
        // Attempt n is the latest run (running, ended, or waiting to be
        // restarted); the previous one is n - 1.
        let index = if previous {
            if c.restart_count == 0 {
                return Err(LookupError::NoPreviousAttempt);
            }
            c.restart_count - 1
        } else {
            if let ContainerState::Waiting { reason, .. } = &c.state
                && c.last_state.is_none()
            {
                return Err(LookupError::NotStarted { reason: reason.clone() });
            }
            c.restart_count
        };
        let path = handle.dir.join("logs").join(container).join(format!("{index}.log"));
        Ok(LogSource { path, finished: handle.attempts.finished(container, index) })
    }
}
