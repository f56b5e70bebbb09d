//! Starting a pod's container workers, each on its own task in the pod
//! worker's `JoinSet` (so nothing outlives the pod worker).

use tokio::sync::watch;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::state::{container, drive};
use crate::worker::{ContainerWorker, PodWorker};

/// Spawns one worker per container of the pod spec.
pub(crate) fn containers(w: &mut PodWorker) {
    let specs = w.pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
    for spec in specs {
        let (stop_tx, stop_rx) = watch::channel(None);
        w.stops.insert(spec.name.clone(), stop_tx);
        let mut cw = ContainerWorker {
            shared: w.shared.clone(),
            pod: w.pod.clone(),
            logs_dir: w.dir.join("logs").join(&spec.name),
            spec,
            record: w.record.clone(),
            attempts: w.attempts.clone(),
            dirty: w.dirty.clone(),
            stop: stop_rx,
            crash_backoff: Backoff::new(w.shared.config.crash_backoff),
            pull_backoff: Backoff::new(w.shared.config.image_backoff),
            held: None,
        };
        let span = tracing::info_span!("container", container = %cw.spec.name);
        w.containers.spawn(
            async move {
                let start = container::start_state(&cw);
                drive(&mut cw, start, |s| tracing::debug!(state = s, "container state")).await;
            }
            .instrument(span),
        );
    }
}
