//! Status computation: conditions and their transitions, the diff that
//! decides a patch, and the patch itself.

use super::*;

const GI: u64 = 1 << 30;

fn config() -> NodeConfig {
    NodeConfig::new("n1", std::net::IpAddr::from([10, 0, 0, 7]), "host-7")
}

fn sample() -> HostSample {
    HostSample {
        cpus: 2,
        memory_capacity: 8 * GI,
        memory_available: 6 * GI,
        storage_capacity: 100 * GI,
        storage_available: 60 * GI,
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn status(health: &NodeHealth, current: Option<&NodeStatus>, now: Timestamp) -> NodeStatus {
    let (c, s, info) = (config(), sample(), SystemInfo::default());
    let inputs = Inputs { config: &c, sample: &s, info: &info, health };
    desired(current, &inputs, now)
}

fn ready() -> NodeHealth {
    NodeHealth { ready: true, ..NodeHealth::default() }
}

fn condition<'a>(s: &'a NodeStatus, type_: &str) -> &'a NodeCondition {
    s.conditions.as_ref().unwrap().iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn upstream_reasons_and_messages() {
    let s = status(&ready(), None, at(0));
    let r = condition(&s, "Ready");
    assert_eq!(
        (r.status.as_str(), r.reason.as_deref(), r.message.as_deref()),
        ("True", Some("KubeletReady"), Some("kubelet is posting ready status"))
    );
    let m = condition(&s, "MemoryPressure");
    assert_eq!(m.reason.as_deref(), Some("KubeletHasSufficientMemory"));
    assert_eq!(condition(&s, "DiskPressure").reason.as_deref(), Some("KubeletHasNoDiskPressure"));
    assert_eq!(condition(&s, "PIDPressure").reason.as_deref(), Some("KubeletHasSufficientPID"));

    let not_ready = NodeHealth { ready: false, message: "runtime is down".into(), ..NodeHealth::default() };
    let s = status(&not_ready, None, at(0));
    let r = condition(&s, "Ready");
    assert_eq!(
        (r.status.as_str(), r.reason.as_deref(), r.message.as_deref()),
        ("False", Some("KubeletNotReady"), Some("runtime is down"))
    );
}

#[test]
fn pressure_comes_from_the_eviction_manager() {
    let pressure = wasmlet_eviction::Conditions { memory_pressure: true, disk_pressure: true, pid_pressure: false };
    let s = status(&NodeHealth { pressure, ..ready() }, None, at(0));
    let m = condition(&s, "MemoryPressure");
    assert_eq!(
        (m.status.as_str(), m.reason.as_deref(), m.message.as_deref()),
        ("True", Some("KubeletHasInsufficientMemory"), Some("kubelet has insufficient memory available"))
    );
    let d = condition(&s, "DiskPressure");
    assert_eq!((d.status.as_str(), d.reason.as_deref()), ("True", Some("KubeletHasDiskPressure")));
    assert_eq!(condition(&s, "PIDPressure").status, "False");
    assert_eq!(condition(&s, "Ready").status, "True", "pressure does not make the node NotReady");
    let relieved = status(&ready(), Some(&s), at(30));
    assert!(differs(Some(&s), &relieved));
    let m = condition(&relieved, "MemoryPressure");
    assert_eq!((m.status.as_str(), m.last_transition_time.clone()), ("False", Some(Time(at(30)))));
}

#[test]
fn transition_time_kept_while_status_is_unchanged() {
    let first = status(&ready(), None, at(0));
    assert_eq!(condition(&first, "Ready").last_transition_time, Some(Time(at(0))));

    let second = status(&ready(), Some(&first), at(10));
    let r = condition(&second, "Ready");
    assert_eq!(r.last_transition_time, Some(Time(at(0))), "unchanged status keeps it");
    assert_eq!(r.last_heartbeat_time, Some(Time(at(10))));

    let down = NodeHealth { message: "x".into(), ..NodeHealth::default() };
    let third = status(&down, Some(&second), at(20));
    assert_eq!(condition(&third, "Ready").last_transition_time, Some(Time(at(20))));
    assert_eq!(
        condition(&third, "MemoryPressure").last_transition_time,
        Some(Time(at(0))),
        "other conditions keep theirs"
    );
}

#[test]
fn transition_from_unknown_set_by_the_controller() {
    let mut s = status(&ready(), None, at(0));
    for c in s.conditions.as_mut().unwrap() {
        c.status = "Unknown".into();
        c.reason = Some("NodeStatusUnknown".into());
    }
    let next = status(&ready(), Some(&s), at(60));
    assert!(differs(Some(&s), &next));
    assert_eq!(condition(&next, "Ready").last_transition_time, Some(Time(at(60))));
}

#[test]
fn differs_ignores_times_and_quantity_spelling() {
    let first = status(&ready(), None, at(0));
    assert!(differs(None, &first));
    let mut server = first.clone();
    // The API server canonicalizes quantities and others add fields we ignore.
    server.capacity.as_mut().unwrap().insert("memory".into(), Quantity("8Gi".into()));
    server.capacity.as_mut().unwrap().insert("hugepages-2Mi".into(), Quantity("0".into()));
    server.images = None;
    server.conditions.as_mut().unwrap().push(NodeCondition {
        type_: "NetworkUnavailable".into(),
        status: "False".into(),
        ..NodeCondition::default()
    });
    let later = status(&ready(), Some(&server), at(100));
    assert!(!differs(Some(&server), &later));

    let mut changed = later.clone();
    changed.images = Some(vec![ContainerImage { names: Some(vec!["r/x@sha256:1".into()]), size_bytes: Some(1) }]);
    assert!(differs(Some(&server), &changed));
    let mut changed = later.clone();
    changed.capacity.as_mut().unwrap().insert("pods".into(), Quantity("10".into()));
    assert!(differs(Some(&server), &changed));
    let mut changed = later;
    changed.node_info.as_mut().unwrap().boot_id = "new-boot".into();
    assert!(differs(Some(&server), &changed));
}

#[test]
fn patch_due_when_changed_first_or_report_frequency_elapsed() {
    let every = Duration::from_secs(300);
    let t0 = Instant::now();
    assert!(patch_due(false, None, t0, every), "first report");
    assert!(patch_due(true, Some(t0), t0, every), "changed");
    assert!(!patch_due(false, Some(t0), t0 + Duration::from_secs(299), every));
    assert!(patch_due(false, Some(t0), t0 + every, every));
}

#[test]
fn patch_replaces_addresses_and_merges_conditions() {
    let s = status(&ready(), None, at(0));
    let p = patch(&s);
    let addresses = p["status"]["addresses"].as_array().unwrap();
    assert_eq!(addresses.len(), 3);
    assert_eq!(addresses[0]["type"], "InternalIP");
    assert_eq!(addresses[0]["address"], "10.0.0.7");
    assert_eq!(addresses[1]["type"], "Hostname");
    assert_eq!(addresses[2]["$patch"], "replace");
    assert_eq!(p["status"]["conditions"].as_array().unwrap().len(), 4);
    assert_eq!(p["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
    assert_eq!(p["status"]["nodeInfo"]["operatingSystem"], "wasi");
    assert_eq!(p["status"]["nodeInfo"]["architecture"], "wasm32");
    assert_eq!(p["status"]["capacity"]["cpu"], "2");
    assert_eq!(p["status"]["allocatable"]["memory"], "8092Mi");
    assert_eq!(ready_of(&s), Some("True"));
}

fn ready_of(s: &NodeStatus) -> Option<&str> {
    super::ready(Some(s))
}

#[test]
fn images_largest_first_and_capped() {
    let all: Vec<ContainerImage> = (0..60)
        .map(|i| ContainerImage { names: Some((0..7).map(|n| format!("img{i}:{n}")).collect()), size_bytes: Some(i) })
        .collect();
    let out = images(&all);
    assert_eq!(out.len(), MAX_IMAGES);
    assert_eq!(out[0].size_bytes, Some(59));
    assert_eq!(out[49].size_bytes, Some(10));
    assert!(out.iter().all(|i| i.names.as_ref().unwrap().len() == MAX_NAMES_PER_IMAGE));
}

#[test]
fn extended_resources_join_capacity_and_allocatable_and_a_drop_to_zero_is_a_change() {
    let mut health = ready();
    health.extended.insert("wasmlet.test/null".into(), Extended { capacity: 4, allocatable: 3 });
    let s = status(&health, None, at(0));
    let get = |list: &Option<ResourceList>| list.as_ref().unwrap().get("wasmlet.test/null").map(|q| q.0.clone());
    assert_eq!(get(&s.capacity).as_deref(), Some("4"));
    assert_eq!(get(&s.allocatable).as_deref(), Some("3"));
    assert_eq!(s.capacity.as_ref().unwrap().get("cpu").map(|q| q.0.as_str()), Some("2"), "the rest stays");

    health.extended.insert("wasmlet.test/null".into(), Extended::default());
    let gone = status(&health, Some(&s), at(10));
    assert_eq!(get(&gone.capacity).as_deref(), Some("0"));
    assert!(differs(Some(&s), &gone), "capacity 4 -> 0 must be patched");
    assert!(!differs(Some(&gone), &status(&health, Some(&gone), at(20))));
}
