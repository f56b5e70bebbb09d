//! Graceful node shutdown against a private bus with a stand-in logind: the
//! agent holds a delay inhibitor lock; on `PrepareForShutdown(true)` the
//! node goes NotReady and refuses pods, regular pods stop before critical
//! ones, both end Failed / Terminated with upstream's message and a
//! `DisruptionTarget` condition, and the lock is released.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::runtime::watcher;
use wasmlet_shutdown::standin::{Bus, Logind};
use wasmlet_testkit::node::{Options, node_ready};
use wasmlet_testkit::pods::{self, POD_TIMEOUT, phase};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, wait};

const MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";
const WAIT: Duration = Duration::from_secs(40);

/// A pod whose container takes `pre_stop` seconds to stop (a preStop sleep).
fn pod(name: &str, node: &str, image: &str, pre_stop: i64, critical: bool) -> serde_json::Value {
    let mut pod = pods::bare(name, node, image, &[], "Always");
    pod["spec"]["terminationGracePeriodSeconds"] = 30.into();
    pod["spec"]["containers"][0]["lifecycle"] = serde_json::json!({ "preStop": { "sleep": { "seconds": pre_stop } } });
    if critical {
        // Priority 2000001000: upstream's critical band starts at 2000000000.
        pod["spec"]["priorityClassName"] = "system-node-critical".into();
    }
    pod
}

fn finished_at(p: &Pod) -> k8s_openapi::jiff::Timestamp {
    let t = pods::terminated(p, "main").unwrap_or_else(|| panic!("{:?} has no terminated container", p.metadata.name));
    t.finished_at.as_ref().map(|t| t.0).unwrap_or_else(|| panic!("{:?}: no finishedAt", p.metadata.name))
}

fn disruption(p: &Pod) -> Option<(String, Option<String>, Option<String>)> {
    let conditions = p.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "DisruptionTarget")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// When the agent began stopping pod `name` for the shutdown: its
/// `Terminated` event.
async fn termination_started(events: &Api<Event>, name: &str) -> k8s_openapi::jiff::Timestamp {
    let about = |e: &Event| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name);
    let terminated = |e: &Event| about(e) && e.reason.as_deref() == Some("Terminated");
    let event = wait::for_any(events, watcher::Config::default(), WAIT, terminated).await;
    let event = event.unwrap_or_else(|| panic!("no Terminated event for {name}"));
    event.event_time.map(|t| t.0).unwrap_or_else(|| panic!("the Terminated event of {name} has no eventTime"))
}

#[tokio::test]
async fn a_node_shutdown_stops_regular_pods_then_critical_ones_and_releases_the_lock() {
    let bus = Bus::start().unwrap_or_else(|e| panic!("dbus-daemon is needed for this test: {e}"));
    let conf = tempfile::tempdir().unwrap();
    // logind allows 30 s of delay: the 20 s asked for fit, no override.
    let logind = Logind::start(&bus.address, Duration::from_secs(30), conf.path()).await.unwrap();
    let options = Options {
        args: vec!["--shutdown-grace-period=20s".into(), "--shutdown-grace-period-critical-pods=10s".into()],
        env: vec![("DBUS_SYSTEM_BUS_ADDRESS".into(), bus.address.clone())],
        ..Options::default()
    };
    let node = WasmletNode::start_with_options(env!("CARGO_BIN_EXE_wasmlet"), "shutdown", options).await;
    let log = || node.log_tail(80);
    let locks = logind.wait_locks(WAIT, |l| l.held() == 1).await;
    let locks = locks.unwrap_or_else(|l| panic!("no inhibitor lock taken: {l:?}\n{}", log()));
    assert_eq!(locks.taken, vec![("wasmlet".to_owned(), "delay".to_owned())]);

    let ns = Namespace::create(&admin_client().await, "shutdown").await;
    let api = ns.api::<Pod>();
    let image = fixture_image("forever").await;
    // The regular pod takes 3 s to stop, the critical one 2 s: if they
    // stopped together, the critical one would finish first.
    pods::create(&ns, pod("regular", &node.name, &image, 3, false)).await;
    pods::create(&ns, pod("critical", &node.name, &image, 2, true)).await;
    for name in ["regular", "critical"] {
        pods::wait_for(&api, name, POD_TIMEOUT, log, |p| pods::running(p, "main")).await;
    }
    let critical = api.get("critical").await.unwrap();
    assert_eq!(critical.spec.as_ref().and_then(|s| s.priority), Some(2_000_001_000));

    logind.prepare_for_shutdown(true).await.unwrap();

    // The node goes NotReady, saying why.
    let nodes: Api<Node> = Api::all(admin_client().await);
    let not_ready = wait::try_for_object(&nodes, &node.name, WAIT, |n| node_ready(n) == Some("False")).await;
    let not_ready = not_ready.unwrap_or_else(|_| panic!("the node stayed Ready\n{}", log())).unwrap();
    let ready = not_ready.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
    assert!(ready.message.unwrap_or_default().contains("node is shutting down"));

    // A pod bound now is refused.
    pods::create(&ns, pod("late", &node.name, &image, 0, false)).await;
    let late = pods::wait_for(&api, "late", WAIT, log, |p| phase(p) == "Failed").await;
    let status = late.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("NodeShutdown"));
    assert!(status.message.unwrap_or_default().contains("Pod was rejected as the node is shutting down."));

    // Both end Failed / Terminated with upstream's message and condition.
    let mut ended = Vec::new();
    for name in ["regular", "critical"] {
        let p = pods::wait_for(&api, name, WAIT, log, |p| phase(p) == "Failed").await;
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.reason.as_deref(), Some("Terminated"), "{name}");
        assert_eq!(status.message.as_deref(), Some(MESSAGE), "{name}");
        let expected = ("True".to_owned(), Some("TerminationByKubelet".to_owned()), Some(MESSAGE.to_owned()));
        assert_eq!(disruption(&p), Some(expected), "{name}");
        ended.push(p);
    }

    // The order: the critical pod was not touched until the regular one had stopped.
    let events: Api<Event> = Api::namespaced(admin_client().await, ns.name());
    let regular_started = termination_started(&events, "regular").await;
    let critical_started = termination_started(&events, "critical").await;
    let (regular_finished, critical_finished) = (finished_at(&ended[0]), finished_at(&ended[1]));
    assert!(regular_started < critical_started, "regular {regular_started} vs critical {critical_started}");
    // finishedAt has whole seconds: the critical pod's stop began at or after it.
    assert!(
        critical_started >= regular_finished,
        "critical pod stopped from {critical_started}, before the regular one finished at {regular_finished}"
    );
    assert!(critical_finished > regular_finished, "{critical_finished} vs {regular_finished}");

    // And the lock is released, so the shutdown goes on.
    let released = logind.wait_locks(WAIT, |l| l.released == 1 && l.held() == 0).await;
    released.unwrap_or_else(|l| panic!("the inhibitor lock was not released: {l:?}\n{}", log()));
}
