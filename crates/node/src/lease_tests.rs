//! The Lease loop against the fake API server, in virtual time.

use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::*;
use crate::testing::{Call, Fake, UID};

fn config() -> NodeConfig {
    NodeConfig::new("n1", std::net::IpAddr::from([127, 0, 0, 1]), "h1")
}

/// Runs the lease loop for `for_` of virtual time.
async fn run_for(fake: &Fake, for_: Duration) {
    let config = config();
    let cancel = CancellationToken::new();
    let keeper = LeaseKeeper::new(fake, &config, UID);
    tokio::join!(keeper.run(&cancel), async {
        sleep(for_).await;
        cancel.cancel();
    });
}

#[tokio::test(start_paused = true)]
async fn creates_the_lease_then_renews_every_interval() {
    let fake = Fake::new();
    let start = Instant::now();
    run_for(&fake, Duration::from_secs(35)).await;
    assert_eq!(fake.times(Call::CreateLease, start), [0.0]);
    assert_eq!(fake.times(Call::ReplaceLease, start), [10.0, 20.0, 30.0]);
    assert_eq!(fake.times(Call::GetLease, start), [0.0], "cached after create");

    let lease = fake.state().lease.clone().unwrap();
    assert_eq!(lease.metadata.name.as_deref(), Some("n1"));
    assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-node-lease"));
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    assert!(spec.renew_time.is_some());
    let owners = lease.metadata.owner_references.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!((owners[0].api_version.as_str(), owners[0].kind.as_str()), ("v1", "Node"));
    assert_eq!((owners[0].name.as_str(), owners[0].uid.as_str()), ("n1", UID));
}

#[tokio::test(start_paused = true)]
async fn a_preexisting_lease_gets_the_owner_reference() {
    let fake = Fake::new();
    fake.state().lease = Some(Lease {
        metadata: ObjectMeta {
            name: Some("n1".into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            resource_version: Some("1".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: "n1".into(),
                uid: "uid-of-a-deleted-node".into(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("someone-else".into()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }),
    });
    let start = Instant::now();
    run_for(&fake, Duration::from_secs(5)).await;
    assert_eq!(fake.times(Call::ReplaceLease, start), [0.0]);
    let lease = fake.state().lease.clone().unwrap();
    let owners = lease.metadata.owner_references.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].uid, UID);
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
}

#[tokio::test(start_paused = true)]
async fn a_conflict_rereads_and_retries_at_once() {
    let fake = Fake::new();
    let start = Instant::now();
    run_for(&fake, Duration::from_secs(5)).await; // creates it
    fake.state().conflicts = 1;
    let start2 = Instant::now();
    run_for(&fake, Duration::from_secs(5)).await;
    // A fresh keeper GETs, updates (conflict), GETs again and updates: all at once.
    assert_eq!(fake.times(Call::GetLease, start2), [0.0, 0.0]);
    assert_eq!(fake.times(Call::ReplaceLease, start2), [0.0, 0.0]);
    assert_eq!(fake.times(Call::CreateLease, start), [0.0]);
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_then_the_cadence_resumes() {
    let fake = Fake::new();
    let start = Instant::now();
    fake.state().down_until = Some(start + Duration::from_secs(20));
    run_for(&fake, Duration::from_secs(45)).await;
    let gets = fake.times(Call::GetLease, start);
    // Backoff from 200 ms doubling (jittered) to at most 7 s between attempts.
    assert!(gets[0] == 0.0 && gets[1] >= 0.2 && gets[1] <= 0.4, "{gets:?}");
    for pair in gets.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((0.2..=7.0).contains(&gap), "gap {gap} in {gets:?}");
    }
    let created = fake.times(Call::CreateLease, start);
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0] >= 20.0 && created[0] <= 27.0, "{created:?}");
    // Then the regular cadence again: every 10 s after the last success.
    let renewals = fake.times(Call::ReplaceLease, start);
    assert!(!renewals.is_empty(), "{renewals:?}");
    let mut last = created[0];
    for r in renewals {
        assert!((r - last - 10.0).abs() < 1e-6, "renewal at {r} after {last}");
        last = r;
    }
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_the_loop_during_backoff() {
    let fake = Fake::new();
    fake.state().down_until = Some(Instant::now() + Duration::from_secs(3600));
    let start = Instant::now();
    run_for(&fake, Duration::from_secs(30)).await;
    assert!(start.elapsed() < Duration::from_secs(31));
    assert!(fake.state().lease.is_none());
}
