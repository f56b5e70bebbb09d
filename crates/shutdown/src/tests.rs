//! The ordering and budget of pod termination (virtual time), and the
//! manager against a private bus with the stand-in logind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::manager::terminate;
use crate::plan::{ActivePod, SYSTEM_CRITICAL_PRIORITY, migrate};
use crate::standin::{Bus, Logind};
use crate::{Config, Pods};

/// Pods that each take a set time to stop; records when each was asked
/// (and with what grace) and when it finished.
#[derive(Default)]
struct FakePods {
    active: Vec<ActivePod>,
    takes: HashMap<String, Duration>,
    asked: Mutex<Vec<(String, Duration, Duration)>>,
    stopped: Mutex<Vec<(String, Duration)>>,
    start: Mutex<Option<Instant>>,
}

impl FakePods {
    fn with(pods: &[(&str, i32, Option<u64>, u64)]) -> Self {
        let active = pods
            .iter()
            .map(|(uid, priority, own, _)| ActivePod {
                uid: (*uid).into(),
                priority: *priority,
                termination_grace: own.map(Duration::from_secs),
            })
            .collect();
        let takes = pods.iter().map(|(uid, _, _, takes)| ((*uid).into(), Duration::from_secs(*takes))).collect();
        Self { active, takes, start: Mutex::new(Some(Instant::now())), ..Default::default() }
    }

    fn since_start(&self) -> Duration {
        self.start.lock().unwrap().map(|s| s.elapsed()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Pods for FakePods {
    fn active(&self) -> Vec<ActivePod> {
        self.active.clone()
    }

    async fn terminate(&self, uid: &str, grace: Duration) {
        self.asked.lock().unwrap().push((uid.into(), grace, self.since_start()));
        let takes = self.takes.get(uid).copied().unwrap_or_default();
        tokio::time::sleep(takes.min(grace)).await;
        self.stopped.lock().unwrap().push((uid.into(), self.since_start()));
    }
}

#[tokio::test(start_paused = true)]
async fn regular_pods_stop_first_then_critical_ones_within_their_budgets() {
    // 20 s in all, 10 s of it for critical pods: regular pods get 10 s.
    let periods = migrate(Duration::from_secs(20), Duration::from_secs(10));
    let pods = FakePods::with(&[
        ("critical", SYSTEM_CRITICAL_PRIORITY + 1000, None, 2),
        ("quick", 0, Some(3), 1),
        ("slow", 100, None, 4),
    ]);
    terminate(&periods, pods.active(), &pods).await;
    let asked = pods.asked.lock().unwrap().clone();
    let secs = |d: Duration| d.as_secs();
    let asked: Vec<_> = asked.iter().map(|(u, g, at)| (u.as_str(), secs(*g), secs(*at))).collect();
    assert_eq!(
        asked,
        vec![("quick", 3, 0), ("slow", 10, 0), ("critical", 10, 4)],
        "regular pods together at once (own grace if shorter), critical ones once the slowest regular stopped"
    );
    let stopped = pods.stopped.lock().unwrap().clone();
    assert_eq!(stopped.last().map(|(u, at)| (u.as_str(), secs(*at))), Some(("critical", 6)));
}

#[tokio::test(start_paused = true)]
async fn a_band_that_overruns_is_cut_at_its_budget() {
    let periods = migrate(Duration::from_secs(15), Duration::from_secs(5));
    // A pod that would take 60 s: its band's 10 s end first.
    let pods = FakePods::with(&[("stuck", 0, Some(600), 60), ("critical", SYSTEM_CRITICAL_PRIORITY, None, 1)]);
    let started = Instant::now();
    terminate(&periods, pods.active(), &pods).await;
    let asked = pods.asked.lock().unwrap().clone();
    assert_eq!(asked[1].0, "critical");
    assert_eq!(asked[1].2, Duration::from_secs(10), "critical pods start when the regular band's 10 s are up");
    assert_eq!(asked[0].1, Duration::from_secs(10), "600 s of its own are capped at the band's 10 s");
    assert_eq!(started.elapsed(), Duration::from_secs(11));
}

fn bus() -> Bus {
    Bus::start().unwrap_or_else(|e| panic!("dbus-daemon (package dbus-daemon) is needed for this test: {e}"))
}

fn config(bus: &Bus, conf_dir: &std::path::Path, total: u64, critical: u64) -> Config {
    let mut config = Config::new(migrate(Duration::from_secs(total), Duration::from_secs(critical)));
    config.bus_address = Some(bus.address.clone());
    config.logind_conf_dir = conf_dir.to_owned();
    config
}

#[tokio::test]
async fn a_shutdown_stops_pods_and_releases_the_lock_and_a_cancel_takes_it_again() {
    let bus = bus();
    let dir = tempfile::tempdir().unwrap();
    // logind allows 5 s; 20 s are asked for: the manager writes the drop-in and reloads.
    let logind = Logind::start(&bus.address, Duration::from_secs(5), dir.path()).await.unwrap();
    let pods = Arc::new(FakePods::with(&[("regular", 0, None, 0), ("critical", SYSTEM_CRITICAL_PRIORITY, None, 0)]));
    let (state, mut shutting_down) = watch::channel(false);
    let cancel = CancellationToken::new();
    let run = tokio::spawn(crate::run(config(&bus, dir.path(), 20, 10), pods.clone(), state, cancel.clone()));
    let wait = Duration::from_secs(10);

    let locks = logind.wait_locks(wait, |l| l.held() == 1).await.expect("the lock is taken");
    assert_eq!(locks.taken, vec![("wasmlet".to_owned(), "delay".to_owned())]);
    let drop_in = std::fs::read_to_string(dir.path().join(crate::logind::DROP_IN)).unwrap();
    assert!(drop_in.contains("InhibitDelayMaxSec=20"), "{drop_in}");

    logind.prepare_for_shutdown(true).await.unwrap();
    let locks = logind.wait_locks(wait, |l| l.released == 1).await.expect("the lock is released");
    assert_eq!(locks.held(), 0);
    assert!(*shutting_down.borrow_and_update(), "the node is shutting down");
    let stopped: Vec<String> = pods.stopped.lock().unwrap().iter().map(|(u, _)| u.clone()).collect();
    assert_eq!(stopped, vec!["regular", "critical"], "every pod stopped before the lock went, in order");

    logind.prepare_for_shutdown(false).await.unwrap();
    let locks = logind.wait_locks(wait, |l| l.taken.len() == 2 && l.held() == 1).await.expect("taken again");
    assert_eq!(locks.released, 1);
    tokio::time::timeout(wait, shutting_down.wait_for(|s| !*s)).await.unwrap().unwrap();

    cancel.cancel();
    tokio::time::timeout(wait, run).await.unwrap().unwrap();
    logind.wait_locks(wait, |l| l.held() == 0).await.expect("stopping the agent closes the lock");
}

#[tokio::test]
async fn without_logind_or_with_too_short_a_delay_the_manager_runs_without() {
    let bus = bus();
    let dir = tempfile::tempdir().unwrap();
    let pods = Arc::new(FakePods::default());
    let wait = Duration::from_secs(10);

    // A bus without logind: the manager gives up at once, never fatal.
    let (state, _rx) = watch::channel(false);
    let run = crate::run(config(&bus, dir.path(), 20, 10), pods.clone(), state, CancellationToken::new());
    tokio::time::timeout(wait, run).await.expect("returns without logind");

    // No bus at all.
    let mut nowhere = config(&bus, dir.path(), 20, 10);
    nowhere.bus_address = Some(format!("unix:path={}", dir.path().join("no-bus").display()));
    let (state, _rx) = watch::channel(false);
    tokio::time::timeout(wait, crate::run(nowhere, pods.clone(), state, CancellationToken::new()))
        .await
        .expect("returns without a bus");

    // logind allows 5 s and the drop-in cannot be written (its directory is a file).
    let logind = Logind::start(&bus.address, Duration::from_secs(5), dir.path()).await.unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (state, _rx) = watch::channel(false);
    tokio::time::timeout(wait, crate::run(config(&bus, &file, 20, 10), pods.clone(), state, CancellationToken::new()))
        .await
        .expect("returns when logind will not wait long enough");
    assert!(logind.locks().borrow().taken.is_empty(), "no lock without the time to use it");

    // Disabled (the default): nothing is asked of the bus.
    let (state, _rx) = watch::channel(false);
    let off = config(&bus, dir.path(), 0, 0);
    tokio::time::timeout(wait, crate::run(off, pods, state, CancellationToken::new())).await.expect("off");
    assert!(logind.locks().borrow().taken.is_empty());
}
