use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::record::{ContainerRecord, ContainerState, PodRecord, PodVerdict, Terminated};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn running(name: &str) -> ContainerRecord {
    let mut c = ContainerRecord::new(name, "img");
    c.state = ContainerState::Running { started_at: t(1) };
    c.ready = true;
    c.started = true;
    c
}

fn exited(name: &str, code: i32) -> ContainerRecord {
    let mut c = ContainerRecord::new(name, "img");
    c.state = ContainerState::Terminated(end(code));
    c
}

fn end(code: i32) -> Terminated {
    Terminated {
        exit_code: code,
        reason: if code == 0 { "Completed".into() } else { "Error".into() },
        message: None,
        started_at: Some(t(1)),
        finished_at: t(2),
        container_id: None,
    }
}

fn backing_off(name: &str) -> ContainerRecord {
    let mut c = ContainerRecord::new(name, "img");
    c.state = ContainerState::Waiting { reason: "CrashLoopBackOff".into(), message: None };
    c.last_state = Some(end(1));
    c.restart_count = 1;
    c
}

#[test]
fn phase_follows_the_upstream_rules() {
    let creating = ContainerRecord::new("a", "img");
    assert_eq!(pod_phase("Always", std::slice::from_ref(&creating), false), "Pending");
    assert_eq!(pod_phase("Always", &[running("a"), creating], false), "Pending");
    assert_eq!(pod_phase("Always", &[running("a")], false), "Running");
    assert_eq!(pod_phase("Always", &[exited("a", 0)], false), "Running", "Always restarts");
    assert_eq!(pod_phase("OnFailure", &[exited("a", 0), exited("b", 0)], false), "Succeeded");
    assert_eq!(pod_phase("OnFailure", &[exited("a", 0), backing_off("b")], false), "Running");
    assert_eq!(pod_phase("Never", &[exited("a", 0), exited("b", 3)], false), "Failed");
    assert_eq!(pod_phase("Never", &[running("a"), exited("b", 3)], false), "Running");
    assert_eq!(pod_phase("Always", &[backing_off("a")], false), "Running");
}

#[test]
fn a_torn_down_pod_is_terminal() {
    assert_eq!(pod_phase("Always", &[exited("a", 143)], true), "Failed");
    assert_eq!(pod_phase("Always", &[exited("a", 0), exited("b", 0)], true), "Succeeded");
    assert_eq!(pod_phase("Always", &[running("a")], true), "Running", "still stopping");
    assert_eq!(pod_phase("Always", &[ContainerRecord::new("a", "img")], true), "Failed");
}

fn addrs() -> Addresses {
    Addresses { host_ip: "10.0.0.1".into(), pod_ip: "10.0.0.1".into() }
}

#[test]
fn conditions_and_transition_times() {
    let mut pod = Pod::default();
    pod.metadata.generation = Some(3);
    let mut record = PodRecord {
        start_time: Some(t(0)),
        sandbox_ready: true,
        containers: vec![running("a"), ContainerRecord::new("b", "img")],
        ..Default::default()
    };
    let status = compute(&pod, &record, &addrs(), t(10));
    let cond =
        |s: &PodStatus, ty: &str| s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == ty).cloned().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(cond(&status, "PodReadyToStartContainers").status, "True");
    let ready = cond(&status, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(ready.message.as_deref(), Some("containers with unready status: [b]"));
    assert_eq!(ready.observed_generation, Some(3));
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));

    // Reported, then recomputed later without a change: the transition time stays.
    pod.status = Some(status);
    let again = compute(&pod, &record, &addrs(), t(20));
    assert_eq!(cond(&again, "Ready").last_transition_time, Some(Time(t(10))));

    // b starts: Ready flips and gets a new transition time.
    record.containers[1] = running("b");
    pod.status = Some(again);
    let now_ready = compute(&pod, &record, &addrs(), t(30));
    assert_eq!(now_ready.phase.as_deref(), Some("Running"));
    let ready = cond(&now_ready, "Ready");
    assert_eq!((ready.status.as_str(), ready.reason), ("True", None));
    assert_eq!(ready.last_transition_time, Some(Time(t(30))));
}

#[test]
fn verdicts_and_readiness_gates() {
    let mut pod = Pod::default();
    let record = PodRecord {
        containers: vec![ContainerRecord::new("a", "img")],
        verdict: Some(PodVerdict {
            phase: "Failed".into(),
            reason: Some("OutOfmemory".into()),
            message: Some("Pod was rejected: ...".into()),
        }),
        ..Default::default()
    };
    let status = compute(&pod, &record, &addrs(), t(0));
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(status.reason.as_deref(), Some("OutOfmemory"));
    assert!(status.pod_ip.is_none(), "no sandbox, no IP");

    let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
        "containers": [], "readinessGates": [{"conditionType": "example.com/gate"}]
    }))
    .unwrap();
    pod.spec = Some(spec);
    let record = PodRecord { sandbox_ready: true, containers: vec![running("a")], ..Default::default() };
    let status = compute(&pod, &record, &addrs(), t(0));
    let ready = status.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));
    pod.status = Some(PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "example.com/gate".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let status = compute(&pod, &record, &addrs(), t(0));
    let ready = status.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
}

#[test]
fn container_statuses_carry_state_and_last_state() {
    let pod = Pod::default();
    let mut c = backing_off("a");
    c.image_id = Some("reg/app@sha256:abc".into());
    let record = PodRecord { sandbox_ready: true, containers: vec![c], ..Default::default() };
    let status = compute(&pod, &record, &addrs(), t(0));
    let cs = &status.container_statuses.unwrap()[0];
    assert_eq!(cs.restart_count, 1);
    assert_eq!(cs.image_id, "reg/app@sha256:abc");
    assert_eq!(cs.state.as_ref().unwrap().waiting.as_ref().unwrap().reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap().exit_code, 1);
}

#[test]
fn init_containers_and_sidecars_shape_the_phase() {
    let pending = PodRecord {
        init_containers: vec![exited("init", 4)],
        containers: vec![ContainerRecord::initializing("a", "img")],
        ..Default::default()
    };
    assert_eq!(phase_of("Never", &pending), "Failed", "a failed init container with Never fails the pod");
    assert_eq!(phase_of("OnFailure", &pending), "Pending", "otherwise it is retried");
    let status = compute(&Pod::default(), &pending, &addrs(), t(0));
    let init = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Initialized").unwrap();
    assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(init.message.as_deref(), Some("containers with incomplete status: [init]"));
    assert_eq!(status.init_container_statuses.unwrap().len(), 1);

    let mut side = running("side");
    side.sidecar = true;
    let mut done = PodRecord {
        init_containers: vec![side],
        init_done: true,
        containers: vec![exited("a", 0)],
        ..Default::default()
    };
    assert_eq!(phase_of("Never", &done), "Running", "a running sidecar keeps the pod from ending");
    done.terminating = true;
    done.init_containers[0].state = ContainerState::Terminated(end(143));
    assert_eq!(phase_of("Never", &done), "Succeeded", "once stopped, the regular containers decide");
}

#[test]
fn an_evicted_pod_is_failed_with_a_disruption_target() {
    let message = "The node was low on resource: memory. ";
    let mut record = PodRecord {
        sandbox_ready: true,
        containers: vec![running("a")],
        disruption: Some(message.into()),
        ..Default::default()
    };
    let s = compute(&Pod::default(), &record, &addrs(), t(10));
    let dt = s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "DisruptionTarget").unwrap();
    assert_eq!(
        (dt.status.as_str(), dt.reason.as_deref(), dt.message.as_deref()),
        ("True", Some("TerminationByKubelet"), Some(message))
    );
    record.containers = vec![exited("a", 143)];
    record.terminating = true;
    record.verdict =
        Some(PodVerdict { phase: "Failed".into(), reason: Some("Evicted".into()), message: Some(message.into()) });
    let s = compute(&Pod::default(), &record, &addrs(), t(20));
    assert_eq!(
        (s.phase.as_deref(), s.reason.as_deref(), s.message.as_deref()),
        (Some("Failed"), Some("Evicted"), Some(message))
    );
    assert!(s.conditions.as_ref().unwrap().iter().any(|c| c.type_ == "DisruptionTarget" && c.status == "True"));
    let plain = compute(&Pod::default(), &PodRecord::default(), &addrs(), t(0));
    assert!(!plain.conditions.unwrap().iter().any(|c| c.type_ == "DisruptionTarget"));
}

#[test]
fn an_overwritten_ready_condition_disagrees_and_times_do_not() {
    let reported = serde_json::json!({
        "phase": "Running",
        "conditions": [
            { "type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z" },
            { "type": "ContainersReady", "status": "True" }
        ],
        "containerStatuses": [{ "name": "main", "ready": true, "restartCount": 0 }]
    });
    // The same, in another order, other times, a condition someone else owns.
    let same = serde_json::json!({
        "phase": "Running",
        "conditions": [
            { "type": "ContainersReady", "status": "True" },
            { "type": "DisruptionTarget", "status": "False" },
            { "type": "Ready", "status": "True", "lastTransitionTime": "2026-02-02T00:00:00Z" }
        ],
        "containerStatuses": [{ "name": "main", "ready": true, "restartCount": 0, "image": "x" }]
    });
    assert!(!disagrees(&same, &reported));
    // The node lifecycle controller's MarkPodsNotReady.
    let mut marked = same.clone();
    marked["conditions"][2]["status"] = "False".into();
    assert!(disagrees(&marked, &reported));
    let mut restarted = same.clone();
    restarted["containerStatuses"][0]["restartCount"] = 1.into();
    assert!(disagrees(&restarted, &reported));
    assert!(disagrees(&serde_json::json!({}), &reported));
}
