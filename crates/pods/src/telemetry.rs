//! Resource figures of this node's pods for `/stats/summary` and
//! `/metrics/resource` (what `kubectl top` reads through metrics-server).

use std::sync::Arc;
use std::time::SystemTime;

use wasmlet_metrics::{ContainerSample, NodeSample, PodSample, StatsSource};

use crate::manager::Handles;
use crate::worker::{PodUpdate, Shared};

pub(crate) struct PodsStats {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handles: Handles,
}

impl StatsSource for PodsStats {
    fn node(&self) -> NodeSample {
        wasmlet_metrics::host::node_sample(&self.shared.config.node_name, &self.shared.config.root_dir)
    }

    fn pods(&self) -> Vec<PodSample> {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        handles
            .values()
            .filter_map(|h| {
                let PodUpdate::Present(pod) = &*h.updates.borrow() else { return None };
                let m = &pod.metadata;
                let start = h.record.lock().unwrap_or_else(|p| p.into_inner()).start_time?;
                let containers: Vec<ContainerSample> = h
                    .live
                    .all()
                    .into_iter()
                    .filter_map(|(name, running)| {
                        Some(ContainerSample {
                            name,
                            start_time: running.stats.started_at()?,
                            time: SystemTime::now(),
                            cpu_nanos: running.stats.cpu_nanos(),
                            memory_bytes: running.stats.memory_bytes(),
                            memory_peak_bytes: running.stats.memory_peak_bytes(),
                            oom_kills: running.stats.oom_kills(),
                            memory_limit_bytes: running.memory_limit,
                            running: running.stats.is_running(),
                        })
                    })
                    .collect();
                Some(PodSample {
                    namespace: m.namespace.clone()?,
                    name: m.name.clone()?,
                    uid: m.uid.clone()?,
                    start_time: SystemTime::from(start),
                    containers,
                })
            })
            .collect()
    }
}
