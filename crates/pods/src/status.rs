//! Pod status as the upstream kubelet computes it: phase, conditions, container
//! statuses. Pure functions of the pod spec, the agent's record and the
//! previously reported conditions (whose transition times are kept).

use k8s_openapi::api::core::v1::{
    ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::record::{ContainerRecord, ContainerState, PodRecord, Terminated};

/// Pod phases.
pub mod phase {
    /// Accepted, containers not all running yet.
    pub const PENDING: &str = "Pending";
    /// At least one container runs or will restart.
    pub const RUNNING: &str = "Running";
    /// All containers exited 0 and none will restart.
    pub const SUCCEEDED: &str = "Succeeded";
    /// All containers ended, at least one failed, or the agent ended the pod.
    pub const FAILED: &str = "Failed";

    /// Whether `phase` is terminal.
    pub fn is_terminal(phase: Option<&str>) -> bool {
        matches!(phase, Some(SUCCEEDED | FAILED))
    }
}

/// Addresses reported in the status.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// The node's IP.
    pub host_ip: String,
    /// The pod's IP.
    pub pod_ip: String,
}

/// Computes the status the agent reports for `pod`.
pub fn compute(pod: &Pod, record: &PodRecord, addrs: &Addresses, now: Timestamp) -> PodStatus {
    let restart_policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let phase = phase_of(restart_policy, record);
    let previous = pod.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let generation = pod.metadata.generation;
    let conditions = conditions(pod, record, &phase, &previous, generation, now);
    let (reason, message) = match &record.verdict {
        Some(v) => (v.reason.clone(), v.message.clone()),
        None => (None, None),
    };
    PodStatus {
        phase: Some(phase),
        conditions: Some(conditions),
        container_statuses: Some(record.containers.iter().map(container_status).collect()),
        init_container_statuses: (!record.init_containers.is_empty())
            .then(|| record.init_containers.iter().map(container_status).collect()),
        start_time: record.start_time.map(Time),
        host_ip: Some(addrs.host_ip.clone()),
        host_ips: Some(vec![HostIP { ip: addrs.host_ip.clone() }]),
        pod_ip: record.sandbox_ready.then(|| addrs.pod_ip.clone()),
        pod_ips: record.sandbox_ready.then(|| vec![PodIP { ip: addrs.pod_ip.clone() }]),
        qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        observed_generation: generation,
        reason,
        message,
        ..Default::default()
    }
}

/// The pod's phase: the agent's verdict if it ended the pod, else the phase
/// of its init containers while it initializes, else of its regular containers.
pub fn phase_of(restart_policy: &str, record: &PodRecord) -> String {
    if let Some(v) = &record.verdict {
        return v.phase.clone();
    }
    if !record.initialized() {
        return init_phase(restart_policy, &record.init_containers, record.terminating).to_owned();
    }
    let phase = pod_phase(restart_policy, &record.containers, record.terminating);
    // Sidecars still running (or restarting) keep a finished pod from being
    // terminal until they are stopped (KEP-753).
    let sidecar_alive = !record.terminating
        && record
            .init_containers
            .iter()
            .any(|c| c.sidecar && (c.is_running() || matches!(c.state, ContainerState::Waiting { .. })));
    if phase::is_terminal(Some(phase)) && sidecar_alive && !record.containers.is_empty() {
        return phase::RUNNING.to_owned();
    }
    phase.to_owned()
}

/// The upstream kubelet's `getPhase` while init containers run: Failed when
/// one failed and the policy is Never (or the pod is torn down), else Pending.
pub fn init_phase(restart_policy: &str, init: &[ContainerRecord], terminating: bool) -> &'static str {
    let failed = init.iter().filter(|c| !c.sidecar).any(|c| {
        c.terminated().or(c.last_state.as_ref()).is_some_and(|t| t.exit_code != 0)
            && !matches!(c.state, ContainerState::Running { .. })
    });
    if terminating || (failed && restart_policy == "Never") { phase::FAILED } else { phase::PENDING }
}

/// The upstream kubelet's `getPhase` for regular containers.
pub fn pod_phase(restart_policy: &str, containers: &[ContainerRecord], terminating: bool) -> &'static str {
    let (mut running, mut stopped, mut succeeded, mut waiting) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            ContainerState::Running { .. } => running += 1,
            ContainerState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            // Waiting after a previous run means it is restarting.
            ContainerState::Waiting { .. } if c.last_state.is_some() && !terminating => stopped += 1,
            ContainerState::Waiting { .. } => waiting += 1,
        }
    }
    if terminating && running == 0 {
        // Torn down: nothing will run again.
        let all_succeeded = containers.iter().all(|c| c.terminated().is_some_and(|t| t.exit_code == 0));
        return if all_succeeded { phase::SUCCEEDED } else { phase::FAILED };
    }
    if waiting > 0 {
        return phase::PENDING;
    }
    if running > 0 {
        return phase::RUNNING;
    }
    if stopped > 0 {
        return match restart_policy {
            "Always" => phase::RUNNING,
            _ if stopped == succeeded => phase::SUCCEEDED,
            "Never" => phase::FAILED,
            _ => phase::RUNNING,
        };
    }
    phase::PENDING
}

fn conditions(
    pod: &Pod,
    record: &PodRecord,
    phase: &str,
    previous: &[PodCondition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<PodCondition> {
    let done = phase::is_terminal(Some(phase));
    // Regular containers and sidecars count for readiness.
    let unready: Vec<&str> = record
        .containers
        .iter()
        .chain(record.init_containers.iter().filter(|c| c.sidecar))
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let initialized = if record.initialized() {
        (true, None, None)
    } else {
        let pending: Vec<&str> = record
            .init_containers
            .iter()
            .filter(|c| if c.sidecar { !c.started } else { !c.succeeded() })
            .map(|c| c.name.as_str())
            .collect();
        (
            false,
            Some("ContainersNotInitialized"),
            Some(format!("containers with incomplete status: [{}]", pending.join(" "))),
        )
    };
    let containers_ready = if done {
        (false, Some("PodCompleted"), None)
    } else if unready.is_empty() {
        (true, None, None)
    } else {
        (false, Some("ContainersNotReady"), Some(format!("containers with unready status: [{}]", unready.join(" "))))
    };
    let gates_ok = pod.spec.as_ref().and_then(|s| s.readiness_gates.as_ref()).is_none_or(|gates| {
        gates.iter().all(|g| previous.iter().any(|c| c.type_ == g.condition_type && c.status == "True"))
    });
    let ready = if containers_ready.0 && !gates_ok {
        (false, Some("ReadinessGatesNotReady"), Some("the status of pod readiness gates is not \"True\"".to_owned()))
    } else {
        containers_ready.clone()
    };
    let make = |type_: &str, (ok, reason, message): (bool, Option<&str>, Option<String>)| {
        let status = if ok { "True" } else { "False" };
        let last = previous.iter().find(|c| c.type_ == type_);
        let transition = match last {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => Some(Time(now)),
        };
        PodCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
            message,
            last_transition_time: transition,
            last_probe_time: None,
            observed_generation: generation,
        }
    };
    let mut out = vec![
        make("PodReadyToStartContainers", (record.sandbox_ready, None, None)),
        make("Initialized", initialized),
        make("ContainersReady", containers_ready),
        make("Ready", ready),
    ];
    if let Some(message) = &record.disruption {
        out.push(make("DisruptionTarget", (true, Some("TerminationByKubelet"), Some(message.clone()))));
    }
    out
}

fn container_status(c: &ContainerRecord) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone().unwrap_or_default(),
        container_id: c.container_id.clone(),
        state: Some(state(&c.state)),
        last_state: Some(c.last_state.as_ref().map(terminated).unwrap_or_default()),
        ready: c.ready,
        restart_count: c.restart_count,
        started: Some(c.started),
        ..Default::default()
    }
}

fn state(s: &ContainerState) -> K8sState {
    match s {
        ContainerState::Waiting { reason, message } => K8sState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..Default::default()
        },
        ContainerState::Running { started_at } => K8sState {
            running: Some(ContainerStateRunning { started_at: Some(Time(*started_at)) }),
            ..Default::default()
        },
        ContainerState::Terminated(t) => terminated(t),
    }
}

fn terminated(t: &Terminated) -> K8sState {
    K8sState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            reason: Some(t.reason.clone()),
            message: t.message.clone(),
            started_at: t.started_at.map(Time),
            finished_at: Some(Time(t.finished_at)),
            container_id: t.container_id.clone(),
            signal: None,
        }),
        ..Default::default()
    }
}

/// Whether a pod status seen in the API (`seen`, JSON) disagrees with the
/// one the agent reported (`reported`) on what the agent owns and others
/// overwrite: the phase, the status of each condition it reported, and each
/// container's readiness and restart count. Times, messages and the order
/// of lists are not compared.
pub fn disagrees(seen: &serde_json::Value, reported: &serde_json::Value) -> bool {
    let conditions = |v: &serde_json::Value| -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = v["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["type"].as_str().unwrap_or("").to_owned(), c["status"].as_str().unwrap_or("").to_owned()))
            .collect();
        all.sort();
        all
    };
    let containers = |v: &serde_json::Value| -> Vec<(String, bool, i64)> {
        let mut all: Vec<(String, bool, i64)> = v["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or("").to_owned();
                (name, c["ready"].as_bool().unwrap_or(false), c["restartCount"].as_i64().unwrap_or(0))
            })
            .collect();
        all.sort();
        all
    };
    let ours = conditions(reported);
    let theirs: Vec<(String, String)> =
        conditions(seen).into_iter().filter(|(t, _)| ours.iter().any(|(o, _)| o == t)).collect();
    seen["phase"] != reported["phase"] || theirs != ours || containers(seen) != containers(reported)
}

#[cfg(test)]
mod tests;
