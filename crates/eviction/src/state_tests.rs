//! Grace periods, the transition period and minimum reclaim, pass by pass.

use super::*;
use crate::observe::{Level, NodeStats};
use crate::threshold::{Flags, parse};

const MI: u64 = 1 << 20;
const TRANSITION: Duration = Duration::from_secs(300);

fn memory(available_mi: u64) -> Observations {
    let node =
        NodeStats { memory: Some(Level { available: available_mi * MI, capacity: 8192 * MI }), ..NodeStats::default() };
    Observations::new(&node, &[], 0)
}

fn soft() -> Vec<Threshold> {
    parse(&Flags {
        hard: Some("memory.available<100Mi"),
        soft: Some("memory.available<500Mi"),
        soft_grace_period: Some("memory.available=1m"),
        minimum_reclaim: Some("memory.available=200Mi"),
        ..Flags::default()
    })
    .unwrap()
}

#[test]
fn a_soft_threshold_waits_for_its_grace_period_but_sets_the_condition_at_once() {
    let ts = soft();
    let mut state = State::default();
    let t0 = Instant::now();
    let pass = state.pass(&ts, &memory(400), TRANSITION, t0);
    assert!(pass.conditions.memory_pressure, "the condition does not wait for the grace period");
    assert!(pass.met.is_empty(), "no eviction before the grace period");
    let pass = state.pass(&ts, &memory(400), TRANSITION, t0 + Duration::from_secs(59));
    assert!(pass.met.is_empty());
    let pass = state.pass(&ts, &memory(400), TRANSITION, t0 + Duration::from_secs(60));
    assert_eq!(pass.met.len(), 1);
    assert_eq!(pass.met[0].grace_period, Duration::from_secs(60));
}

#[test]
fn a_dip_above_the_soft_level_restarts_its_grace_period() {
    let ts = soft();
    let mut state = State::default();
    let t0 = Instant::now();
    state.pass(&ts, &memory(400), TRANSITION, t0);
    // Back above 500Mi (the threshold was never acted on, so no minimum reclaim applies).
    assert!(state.pass(&ts, &memory(600), TRANSITION, t0 + Duration::from_secs(30)).met.is_empty());
    assert!(state.pass(&ts, &memory(400), TRANSITION, t0 + Duration::from_secs(40)).met.is_empty());
    assert!(state.pass(&ts, &memory(400), TRANSITION, t0 + Duration::from_secs(90)).met.is_empty());
    assert_eq!(state.pass(&ts, &memory(400), TRANSITION, t0 + Duration::from_secs(100)).met.len(), 1);
}

#[test]
fn hard_thresholds_act_at_once_and_stay_until_the_minimum_reclaim() {
    let ts = soft();
    let mut state = State::default();
    let t0 = Instant::now();
    let pass = state.pass(&ts, &memory(50), TRANSITION, t0);
    assert!(pass.met.iter().any(Threshold::is_hard), "{pass:?}");
    // 150Mi available: above 100Mi, but not above 100Mi + the 200Mi minimum reclaim.
    let pass = state.pass(&ts, &memory(150), TRANSITION, t0 + Duration::from_secs(10));
    assert!(pass.met.iter().any(Threshold::is_hard), "not resolved yet: {pass:?}");
    let pass = state.pass(&ts, &memory(301), TRANSITION, t0 + Duration::from_secs(20));
    assert!(!pass.met.iter().any(Threshold::is_hard), "resolved: {pass:?}");
}

#[test]
fn the_condition_stays_for_the_transition_period() {
    let ts = parse(&Flags::default()).unwrap();
    let mut state = State::default();
    let t0 = Instant::now();
    assert!(state.pass(&ts, &memory(50), TRANSITION, t0).conditions.memory_pressure);
    let later = |s: u64| t0 + Duration::from_secs(s);
    assert!(state.pass(&ts, &memory(4000), TRANSITION, later(10)).conditions.memory_pressure);
    assert!(state.pass(&ts, &memory(4000), TRANSITION, later(299)).conditions.memory_pressure);
    let pass = state.pass(&ts, &memory(4000), TRANSITION, later(300));
    assert!(!pass.conditions.memory_pressure && pass.met.is_empty());
}

#[test]
fn memory_is_reclaimed_before_disk() {
    let ts = parse(&Flags { hard: Some("nodefs.available<10%,memory.available<1Gi"), ..Flags::default() }).unwrap();
    let fs = crate::observe::FsStats { bytes: Level { available: 1, capacity: 100 }, inodes: None };
    let node = NodeStats {
        memory: Some(Level { available: 10 * MI, capacity: 8192 * MI }),
        nodefs: Some(fs),
        ..NodeStats::default()
    };
    let pass = State::default().pass(&ts, &Observations::new(&node, &[], 0), TRANSITION, Instant::now());
    assert!(pass.conditions.memory_pressure && pass.conditions.disk_pressure);
    assert!(pass.met[0].signal.is_memory(), "{pass:?}");
    assert!(!State::resolved(&ts, &Observations::new(&node, &[], 0)));
    assert!(State::resolved(&ts, &memory(4096)), "no disk reading, memory fine");
}
