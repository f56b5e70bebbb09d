//! What a pod worker knows when it starts: nothing (a new pod), or what an
//! earlier run of the agent left — in its checkpoint and in the pod's status
//! in the API. A pod that finished is never run again; containers that were
//! running when the agent died are recorded as terminated, so the restart
//! policy decides what happens next (as after a node reboot upstream).

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::Timestamp;

use crate::checkpoint;
use crate::record::{ContainerRecord, ContainerState, PodRecord, PodVerdict, Terminated};
use crate::state::container::CRASH_LOOP_BACK_OFF;
use crate::status::phase;
use crate::worker::PodWorker;

/// The message of a run the agent stopped when it shut down (SIGTERM).
pub(crate) const STOPPED_AT_SHUTDOWN: &str = "stopped when wasmlet shut down; restarted when it came back";
/// The message of a run that ended because the agent died (`kill -9`, crash).
pub(crate) const DIED_WITH_AGENT: &str = "wasmlet restarted while the container was running";

/// Whether the agent, not the guest, ended run `t` (it shut down or died):
/// such a run starts again at once, without back-off.
pub(crate) fn ended_by_agent(t: &Terminated) -> bool {
    matches!(t.message.as_deref(), Some(STOPPED_AT_SHUTDOWN | DIED_WITH_AGENT))
}

/// The outcome of looking at the pod's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// Never ran here.
    New,
    /// Ran here before; continue (containers restart per policy).
    Resume,
    /// Already finished: report, never run.
    Finished,
}

/// Fills the worker's record from the checkpoint read from the pod's
/// directory (`saved`) and the API status.
pub(crate) fn recover(w: &mut PodWorker, saved: Option<checkpoint::Checkpoint>) -> Recovered {
    let api = w.pod.status.clone().unwrap_or_default();
    let api_statuses: Vec<ContainerRecord> = api.container_statuses.iter().flatten().map(from_api).collect();
    let api_init: Vec<ContainerRecord> = api.init_container_statuses.iter().flatten().map(from_api).collect();

    if phase::is_terminal(api.phase.as_deref()) {
        let mut record = saved.map(|c| c.record).unwrap_or_default();
        if record.containers.is_empty() {
            record.containers = api_statuses;
            record.init_containers = api_init;
            record.init_done = true;
            mark_sidecars(&mut record, &w.pod);
        }
        record.start_time = record.start_time.or(api.start_time.map(|t| t.0));
        record.verdict =
            Some(PodVerdict { phase: api.phase.clone().unwrap_or_default(), reason: api.reason, message: api.message });
        *lock(w) = record;
        return Recovered::Finished;
    }
    let (mut record, clean) = match saved {
        Some(cp) if cp.finished => {
            *lock(w) = cp.record;
            return Recovered::Finished;
        }
        Some(cp) => (cp.record, cp.clean_shutdown),
        None if api_statuses.iter().chain(api_init.iter()).any(ran) => {
            let initialized = api.conditions.iter().flatten().any(|c| c.type_ == "Initialized" && c.status == "True");
            let mut record = PodRecord {
                start_time: api.start_time.map(|t| t.0),
                init_containers: api_init.clone(),
                containers: api_statuses.clone(),
                init_done: initialized,
                ..Default::default()
            };
            mark_sidecars(&mut record, &w.pod);
            (record, false)
        }
        None => {
            *lock(w) = fresh(&w.pod);
            return Recovered::New;
        }
    };
    let now = Timestamp::now();
    for c in record.init_containers.iter_mut().chain(record.containers.iter_mut()) {
        // The API may have seen more restarts than the checkpoint.
        if let Some(a) = api_statuses.iter().chain(api_init.iter()).find(|a| a.name == c.name) {
            c.restart_count = c.restart_count.max(a.restart_count);
        }
        if let ContainerState::Running { started_at } = c.state {
            // It died with the agent (or was stopped by it).
            let (exit_code, reason, message) =
                if clean { (143, "Error", STOPPED_AT_SHUTDOWN) } else { (255, "Unknown", DIED_WITH_AGENT) };
            c.state = ContainerState::Terminated(Terminated {
                exit_code,
                reason: reason.into(),
                message: Some(message.into()),
                started_at: Some(started_at),
                finished_at: now,
                container_id: c.container_id.clone(),
            });
            c.ready = false;
            c.started = false;
        }
        match &c.state {
            // Waiting out its back-off: it waits out the rest (see `container::start_state`).
            ContainerState::Waiting { reason, .. } if reason == CRASH_LOOP_BACK_OFF && c.last_state.is_some() => {}
            // Waiting to restart: it will start over from pulling.
            ContainerState::Waiting { .. } => {
                c.state = ContainerState::Waiting { reason: "ContainerCreating".into(), message: None };
            }
            _ => {}
        }
    }
    // Containers the record lacks (none can be added to a pod; keep it complete anyway).
    let fresh = fresh(&w.pod);
    for c in fresh.init_containers {
        if record.container(&c.name).is_none() {
            record.init_containers.push(c);
        }
    }
    for c in fresh.containers {
        if record.container(&c.name).is_none() {
            record.containers.push(c);
        }
    }
    record.sandbox_ready = false;
    record.terminating = false;
    *lock(w) = record;
    Recovered::Resume
}

fn mark_sidecars(record: &mut PodRecord, pod: &Pod) {
    for spec in pod.spec.iter().flat_map(|s| s.init_containers.iter().flatten()) {
        if let Some(c) = record.init_containers.iter_mut().find(|c| c.name == spec.name) {
            c.sidecar = is_sidecar(spec);
        }
    }
}

fn lock(w: &PodWorker) -> std::sync::MutexGuard<'_, PodRecord> {
    w.record.lock().unwrap_or_else(|p| p.into_inner())
}

/// A record for a pod that never ran: every container waiting (regular ones
/// for `PodInitializing` when there are init containers).
pub(crate) fn fresh(pod: &Pod) -> PodRecord {
    let spec = pod.spec.as_ref();
    let init: Vec<ContainerRecord> = spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| ContainerRecord {
            sidecar: is_sidecar(c),
            ..ContainerRecord::new(&c.name, c.image.as_deref().unwrap_or_default())
        })
        .collect();
    let has_init = !init.is_empty();
    let containers = spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            let image = c.image.as_deref().unwrap_or_default();
            if has_init { ContainerRecord::initializing(&c.name, image) } else { ContainerRecord::new(&c.name, image) }
        })
        .collect();
    PodRecord { init_containers: init, containers, ..Default::default() }
}

/// An init container with `restartPolicy: Always` is a native sidecar.
pub(crate) fn is_sidecar(c: &k8s_openapi::api::core::v1::Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn ran(c: &ContainerRecord) -> bool {
    c.restart_count > 0 || c.last_state.is_some() || !matches!(c.state, ContainerState::Waiting { .. })
}

/// A container status from the API as a record.
fn from_api(s: &ContainerStatus) -> ContainerRecord {
    let terminated = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| Terminated {
        exit_code: t.exit_code,
        reason: t.reason.clone().unwrap_or_else(|| "Unknown".into()),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().map(|x| x.0),
        finished_at: t.finished_at.as_ref().map_or_else(Timestamp::now, |x| x.0),
        container_id: t.container_id.clone(),
    };
    let state = s.state.as_ref();
    let state = if let Some(r) = state.and_then(|s| s.running.as_ref()) {
        ContainerState::Running { started_at: r.started_at.as_ref().map_or_else(Timestamp::now, |x| x.0) }
    } else if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
        ContainerState::Terminated(terminated(t))
    } else {
        let w = state.and_then(|s| s.waiting.as_ref());
        ContainerState::Waiting {
            reason: w.and_then(|w| w.reason.clone()).unwrap_or_else(|| "ContainerCreating".into()),
            message: w.and_then(|w| w.message.clone()),
        }
    };
    ContainerRecord {
        name: s.name.clone(),
        image: s.image.clone(),
        image_id: Some(s.image_id.clone()).filter(|i| !i.is_empty()),
        container_id: s.container_id.clone(),
        state,
        last_state: s.last_state.as_ref().and_then(|l| l.terminated.as_ref()).map(terminated),
        restart_count: s.restart_count,
        ready: s.ready,
        started: s.started.unwrap_or(false),
        sidecar: false,
    }
}
