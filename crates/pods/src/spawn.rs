//! Starting a pod's container workers, each on its own task in one of the pod
//! worker's `JoinSet`s (so nothing outlives the pod worker).

use k8s_openapi::api::core::v1::Container;
use tokio::sync::watch;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::state::{container, drive};
use crate::worker::{ContainerWorker, PodWorker, Role};

/// Spawns one worker per regular container of the pod spec.
pub(crate) fn containers(w: &mut PodWorker) {
    let specs = w.pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
    for spec in specs {
        container(w, spec, Role::App);
    }
}

/// Spawns the worker of one container.
pub(crate) fn container(w: &mut PodWorker, spec: Container, role: Role) {
    let (stop_tx, stop_rx) = watch::channel(None);
    let stops = if role == Role::App { &mut w.stops } else { &mut w.init_stops };
    stops.insert(spec.name.clone(), stop_tx);
    let mut cw = ContainerWorker {
        shared: w.shared.clone(),
        pod: w.pod.clone(),
        logs_dir: w.dir.join("logs").join(&spec.name),
        volumes: w.volumes.clone(),
        spec,
        role,
        record: w.record.clone(),
        attempts: w.attempts.clone(),
        live: w.live.clone(),
        dirty: w.dirty.clone(),
        stop: stop_rx,
        crash_backoff: Backoff::new(w.shared.config.crash_backoff),
        pull_backoff: Backoff::new(w.shared.config.image_backoff),
        held: None,
        created: Some(std::time::Instant::now()),
    };
    let span = tracing::info_span!("container", container = %cw.spec.name);
    let set = if role == Role::App { &mut w.containers } else { &mut w.init };
    set.spawn(
        async move {
            let start = container::start_state(&cw);
            drive(&mut cw, start, |s| tracing::debug!(state = s, "container state")).await;
        }
        .instrument(span),
    );
}
