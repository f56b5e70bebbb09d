//! The node status loop against the fake API server, in virtual time.

use std::time::Duration;

use k8s_openapi::api::core::v1::NodeCondition;
use tokio::time::sleep;

use super::*;
use crate::testing::{Call, Fake, FixedProbe, sample};

fn config() -> NodeConfig {
    NodeConfig::new("n1", std::net::IpAddr::from([127, 0, 0, 1]), "h1")
}

fn ready() -> NodeHealth {
    NodeHealth { ready: true, ..NodeHealth::default() }
}

fn ready_condition(fake: &Fake) -> NodeCondition {
    let s = fake.state();
    let conditions = s.node.status.as_ref().and_then(|s| s.conditions.clone());
    conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Ready").unwrap_or_default()
}

/// Runs the status loop with `probe`, while `script` drives the health
/// channel; cancels when the script ends.
async fn run<F: AsyncFnOnce(watch::Sender<NodeHealth>)>(fake: &Fake, probe: FixedProbe, script: F) {
    let config = config();
    let cancel = CancellationToken::new();
    let (tx, rx) = watch::channel(ready());
    let reporter = StatusReporter::new(fake, &config, probe, SystemInfo::default());
    tokio::join!(reporter.run(rx, &cancel), async {
        script(tx).await;
        cancel.cancel();
    });
}

#[tokio::test(start_paused = true)]
async fn patches_at_once_then_only_when_the_report_frequency_elapsed() {
    let fake = Fake::new();
    let start = Instant::now();
    run(&fake, FixedProbe(Some(sample())), async |_tx| {
        sleep(Duration::from_secs(11 * 60)).await;
    })
    .await;
    assert_eq!(fake.times(Call::PatchStatus, start), [0.0, 300.0, 600.0]);
    let gets = fake.times(Call::GetNode, start);
    assert_eq!(gets.len(), 67, "every 10 s: {gets:?}");
    let r = ready_condition(&fake);
    assert_eq!((r.status.as_str(), r.reason.as_deref()), ("True", Some("KubeletReady")));
    assert_eq!(fake.state().events, [true], "NodeReady once");
}

#[tokio::test(start_paused = true)]
async fn a_health_change_patches_at_once() {
    let fake = Fake::new();
    let start = Instant::now();
    run(&fake, FixedProbe(Some(sample())), async |tx| {
        sleep(Duration::from_millis(25_500)).await;
        let _ = tx.send(NodeHealth { ready: false, message: "runtime is down".into(), ..NodeHealth::default() });
        sleep(Duration::from_secs(1)).await;
        let r = ready_condition(&fake);
        assert_eq!(
            (r.status.as_str(), r.reason.as_deref(), r.message.as_deref()),
            ("False", Some("KubeletNotReady"), Some("runtime is down"))
        );
        sleep(Duration::from_secs(4)).await;
        let _ = tx.send(ready());
        sleep(Duration::from_secs(1)).await;
    })
    .await;
    assert_eq!(fake.times(Call::PatchStatus, start), [0.0, 25.5, 30.5]);
    // The periodic update moved: one period after the last update.
    assert_eq!(fake.times(Call::GetNode, start), [0.0, 10.0, 20.0, 25.5, 30.5]);
    assert_eq!(fake.state().events, [true, false, true]);
}

#[tokio::test(start_paused = true)]
async fn a_status_changed_by_someone_else_is_put_back() {
    let fake = Fake::new();
    let start = Instant::now();
    run(&fake, FixedProbe(Some(sample())), async |_tx| {
        sleep(Duration::from_secs(5)).await;
        let first = ready_condition(&fake);
        // The node-lifecycle controller marks the node Unknown.
        {
            let mut s = fake.state();
            for c in s.node.status.as_mut().unwrap().conditions.as_mut().unwrap() {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
            }
        }
        sleep(Duration::from_secs(10)).await;
        let again = ready_condition(&fake);
        assert_eq!(again.status, "True");
        assert!(again.last_transition_time >= first.last_transition_time);
    })
    .await;
    assert_eq!(fake.times(Call::PatchStatus, start), [0.0, 10.0]);
}

#[tokio::test(start_paused = true)]
async fn failed_updates_are_retried_then_left_to_the_next_tick() {
    let fake = Fake::new();
    let start = Instant::now();
    fake.state().down_until = Some(start + Duration::from_secs(30));
    run(&fake, FixedProbe(Some(sample())), async |_tx| {
        sleep(Duration::from_secs(60)).await;
    })
    .await;
    let gets = fake.times(Call::GetNode, start);
    // Five attempts per update, backing off from 200 ms.
    assert!(gets[..5].iter().all(|t| *t < 10.0), "{gets:?}");
    assert!(gets[5] >= 10.0, "then the next tick: {gets:?}");
    let patches = fake.times(Call::PatchStatus, start);
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert!(patches[0] >= 30.0 && patches[0] < 50.0, "{patches:?}");
}

#[tokio::test(start_paused = true)]
async fn without_a_host_sample_nothing_is_patched() {
    let fake = Fake::new();
    run(&fake, FixedProbe(None), async |_tx| {
        sleep(Duration::from_secs(30)).await;
    })
    .await;
    assert!(fake.state().calls.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_health_sender_keeps_the_loop_running() {
    let fake = Fake::new();
    let start = Instant::now();
    run(&fake, FixedProbe(Some(sample())), async |tx| {
        drop(tx);
        sleep(Duration::from_secs(25)).await;
    })
    .await;
    assert_eq!(fake.times(Call::GetNode, start), [0.0, 10.0, 20.0]);
}

#[allow(dead_code, clippy::needless_pass_by_value)]
fn futures_are_send(client: kube::Client, config: NodeConfig, rx: watch::Receiver<NodeHealth>) {
    fn send<T: Send>(_: &T) {}
    let cancel = CancellationToken::new();
    send(&Heartbeat::new(client.clone(), config.clone(), "uid").run(rx, cancel.clone()));
    send(&crate::register(&client, &config, &cancel));
}
