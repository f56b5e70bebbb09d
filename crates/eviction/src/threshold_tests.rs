//! Parsing the eviction flags as upstream does.

use super::*;

const MI: i64 = 1 << 20;

fn hard(text: &str) -> Result<Vec<Threshold>, ParseError> {
    parse(&Flags { hard: Some(text), ..Flags::default() })
}

fn signals(ts: &[Threshold]) -> Vec<&'static str> {
    ts.iter().map(|t| t.signal.as_str()).collect()
}

#[test]
fn defaults_are_upstreams_plus_the_allocatable_copy() {
    let ts = parse(&Flags::default()).unwrap();
    assert_eq!(
        signals(&ts),
        [
            "memory.available",
            "nodefs.available",
            "nodefs.inodesFree",
            "imagefs.available",
            "imagefs.inodesFree",
            "allocatableMemory.available"
        ]
    );
    assert!(ts.iter().all(Threshold::is_hard));
    assert_eq!(ts[0].value, Value::Quantity(Amount::bytes(100 * MI)));
    assert_eq!(ts[1].value, Value::Percentage(0.1));
    assert_eq!(ts[5].value, ts[0].value);
}

#[test]
fn a_given_hard_flag_replaces_the_defaults_unless_merged() {
    let ts = hard("memory.available<200Mi, nodefs.available<5%").unwrap();
    assert_eq!(signals(&ts), ["memory.available", "nodefs.available", "allocatableMemory.available"]);
    assert_eq!(ts[0].value, Value::Quantity(Amount::bytes(200 * MI)));
    let merged = parse(&Flags { hard: Some("nodefs.available<1%"), merge_defaults: true, ..Flags::default() }).unwrap();
    assert_eq!(merged[0].value, Value::Percentage(0.01), "the given value wins");
    let default_memory = Value::Quantity(Amount::bytes(100 * MI));
    assert!(merged.iter().any(|t| t.signal == Signal::MemoryAvailable && t.value == default_memory));
    assert_eq!(merged.len(), 6, "four defaults merged in, plus the allocatable copy");
    // An empty flag means no thresholds at all (upstream replaces the map).
    assert!(hard("").unwrap().is_empty());
}

#[test]
fn zero_and_hundred_percent_disable_a_threshold() {
    let ts = hard("memory.available<0%,nodefs.available<100%,imagefs.available<20%").unwrap();
    assert_eq!(signals(&ts), ["imagefs.available"]);
}

#[test]
fn percentages_resolve_against_capacity_like_upstream() {
    let t = &hard("nodefs.available<10%").unwrap()[0];
    // float32(10)/100 widened to float64, as upstream computes it.
    let expected = (1_000_000_000f64 * f64::from(0.1f32)) as i64;
    assert_eq!(t.value.resolve(1_000_000_000).value, expected);
    assert!(t.is_met(expected - 1, 1_000_000_000, false));
    assert!(!t.is_met(expected, 1_000_000_000, false), "at the level is not below it");
}

#[test]
fn soft_thresholds_need_grace_periods_and_take_minimum_reclaim() {
    let flags = Flags {
        hard: Some("memory.available<100Mi"),
        soft: Some("memory.available<300Mi,imagefs.available<20%"),
        soft_grace_period: Some("memory.available=1m30s,imagefs.available=10s"),
        minimum_reclaim: Some("memory.available=50Mi,imagefs.available=2%"),
        ..Flags::default()
    };
    let ts = parse(&flags).unwrap();
    assert_eq!(
        signals(&ts),
        ["memory.available", "memory.available", "imagefs.available", "allocatableMemory.available"],
        "only the hard memory threshold is copied to allocatable"
    );
    assert_eq!(ts[1].grace_period, Duration::from_secs(90));
    assert_eq!(ts[2].grace_period, Duration::from_secs(10));
    assert!(ts.iter().filter(|t| t.signal.is_memory()).all(|t| t.min_reclaim.is_some()));
    // With the minimum reclaim, 120Mi available still counts as under 100Mi + 50Mi.
    assert!(!ts[0].is_met(120 * MI, 1 << 34, false));
    assert!(ts[0].is_met(120 * MI, 1 << 34, true));

    // As upstream, the allocatable copy takes memory.available's minimum
    // reclaim; one named for allocatableMemory.available itself is ignored.
    let copy = ts.iter().find(|t| t.signal == Signal::AllocatableMemoryAvailable).unwrap();
    assert_eq!(copy.min_reclaim, Some(Value::Quantity(Amount::bytes(50 * MI))));
    let own = Flags {
        hard: Some("memory.available<100Mi"),
        minimum_reclaim: Some("allocatableMemory.available=1Gi"),
        ..Flags::default()
    };
    assert!(parse(&own).unwrap().iter().all(|t| t.min_reclaim.is_none()));

    let missing = Flags { soft: Some("memory.available<1Gi"), ..Flags::default() };
    assert_eq!(parse(&missing), Err(ParseError::MissingGracePeriod(Signal::MemoryAvailable)));
}

#[test]
fn bad_input_is_explained() {
    let cases = [
        ("memory.available=1Gi", "malformed pair"),
        ("memory.free<1Gi", "unsupported eviction signal \"memory.free\""),
        ("memory.available<0", "must be positive"),
        ("memory.available<-5Mi", "must be positive"),
        ("nodefs.available<101%", "between 0% and 100%"),
        ("nodefs.available<x%", "invalid percentage"),
        ("memory.available<lots", "invalid quantity"),
    ];
    for (text, want) in cases {
        let err = hard(text).unwrap_err().to_string();
        assert!(err.starts_with("--eviction-hard: ") && err.contains(want), "{text}: {err}");
    }
    let err = parse(&Flags { soft_grace_period: Some("memory.available=5"), ..Flags::default() }).unwrap_err();
    assert!(err.to_string().contains("--eviction-soft-grace-period"), "{err}");
    let err = parse(&Flags { minimum_reclaim: Some("memory.available=-1Mi"), ..Flags::default() }).unwrap_err();
    assert!(err.to_string().contains("negative eviction minimum reclaim"), "{err}");
}

#[test]
fn hard_reservation_is_the_hard_level() {
    let ts = hard("memory.available<100Mi,nodefs.available<10%").unwrap();
    assert_eq!(hard_reservation(&ts, Signal::MemoryAvailable, 1 << 32), 100 << 20);
    assert_eq!(hard_reservation(&ts, Signal::NodeFsAvailable, 100_000_000_000), 10_000_000_149);
    assert_eq!(hard_reservation(&[], Signal::MemoryAvailable, 1 << 32), 0);
}
