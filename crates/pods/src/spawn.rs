//! Starting a pod's container workers, each on its own task in one of the pod
//! worker's `JoinSet`s (so nothing outlives the pod worker).

use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
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
    let crash_backoff = resumed_backoff(w, &spec.name);
    let stops = if role == Role::App { &mut w.stops } else { &mut w.init_stops };
    stops.insert(spec.name.clone(), stop_tx);
    let cw = ContainerWorker {
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
        crash_backoff,
        pull_backoff: Backoff::new(w.shared.config.image_backoff),
        held: None,
        created: Some(std::time::Instant::now()),
    };
    let span = tracing::info_span!("container", container = %cw.spec.name);
    let set = if role == Role::App { &mut w.containers } else { &mut w.init };
    set.spawn(run(cw).instrument(span));
}

/// The container's crash-loop back-off, carried on from the restarts its
/// record holds (an earlier run of the agent): what the guest's failures
/// earned is kept across agent restarts.
fn resumed_backoff(w: &PodWorker, name: &str) -> Backoff {
    let record = w.record.lock().unwrap_or_else(|p| p.into_inner());
    let failures = record.container(name).map_or(0, container::failures_seen);
    Backoff::resume(w.shared.config.crash_backoff, failures).0
}

/// Drives the container's machine. A panic in the agent's code for this
/// container (a bug: nothing a guest does can panic the host) is caught
/// here, on the container's own task: the guest's run is dropped with the
/// panicking future (so it stops), the container is recorded as
/// terminated (`Error`, with the panic's text), and the machine starts
/// again from that record, so the restart policy and back-off apply as
/// for any failed run. Other containers and pods are not affected.
async fn run(mut cw: ContainerWorker) {
    let mut start = container::start_state(&cw);
    loop {
        let driven = AssertUnwindSafe(drive(&mut cw, start, |s| tracing::debug!(state = s, "container state")));
        let Err(panic) = driven.catch_unwind().await else { return };
        let text = panic_text(panic.as_ref());
        tracing::error!(panic = %text, "the container's task panicked; this is a bug");
        container::panicked(&mut cw, &text);
        // However the machine failed, it does not spin: at least this long
        // between a panic and the next attempt (back-off comes on top).
        if cw.sleep_or_stop(PANIC_PAUSE).await.is_some() {
            tracing::debug!("the container stops after its task panicked");
        }
        start = container::start_state(&cw);
    }
}

/// The least time between a caught panic and the container's next state.
const PANIC_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// The text a panic was raised with.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::panic_text;

    #[test]
    fn panic_payloads_become_text() {
        let caught = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_text(caught.as_ref()), "boom 7");
        let caught = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_text(caught.as_ref()), "static");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(42u8)).unwrap_err();
        assert_eq!(panic_text(caught.as_ref()), "(no message)");
    }
}
