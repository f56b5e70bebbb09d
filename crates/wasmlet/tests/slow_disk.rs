//! A slow disk does not stall guests or the node's Lease (issue 11,
//! finding 6).
//!
//! The node's `<root>/pods` is a FUSE filesystem served by this test
//! ([`SlowFs`]) that waits [`DELAY`] before every operation — every
//! checkpoint write, log write, emptyDir walk and `stat` of the agent's pod
//! bookkeeping. Two pods have an emptyDir holding [`FILES`] files each (the
//! agent walks them every 10 s for `sizeLimit`: hundreds of slow
//! operations per walk), a third crash-loops (each restart changes its
//! status, so its checkpoint is written), and a ticker prints every
//! [`TICK`]. Over [`WINDOW`] the test measures the ticker's output (the
//! agent stamps each line as it receives it from the guest) and the Lease's
//! renewals: both keep their pace, because the disk work runs on the
//! blocking pool, not on the async workers that drive guests and the Lease.
//! (With the walk and the checkpoint write on the async workers, as before
//! this change, the 2-core machine's workers are blocked for seconds at a
//! time and the ticker's output stops.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use wasmlet_testkit::node::Options;
use wasmlet_testkit::pods;
use wasmlet_testkit::slowfs::SlowFs;
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image};

/// The latency of every operation on the pods' disk.
const DELAY: Duration = Duration::from_millis(50);
/// Files in each walked emptyDir.
const FILES: usize = 150;
/// The ticker's period.
const TICK: Duration = Duration::from_millis(250);
/// How long the paces are measured.
const WINDOW: Duration = Duration::from_secs(40);
/// The largest gap between two ticks that still counts as "on pace".
const MAX_TICK_GAP: Duration = Duration::from_millis(1500);
/// The Lease is renewed every 10 s; the largest gap that counts as on pace.
const MAX_RENEW_GAP: Duration = Duration::from_secs(13);

fn with_scratch(name: &str, node: &str, image: &str) -> serde_json::Value {
    let mut pod = pods::bare(name, node, image, &[], "Always");
    pod["spec"]["volumes"] = serde_json::json!([{ "name": "scratch", "emptyDir": { "sizeLimit": "1Gi" } }]);
    pod["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([{ "name": "scratch", "mountPath": "/scratch" }]);
    pod
}

/// The backing directory of pod `uid`'s emptyDir `scratch`.
fn scratch_dir(backing: &Path, uid: &str) -> Option<PathBuf> {
    let mut todo = vec![backing.join(uid).join("volumes")];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if entry.file_name() == "scratch" {
                    return Some(entry.path());
                }
                todo.push(entry.path());
            }
        }
    }
    None
}

/// Timestamps (RFC 3339 from `kubectl logs --timestamps`) of `tick` lines.
fn tick_times(logs: &str) -> Vec<k8s_openapi::jiff::Timestamp> {
    logs.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, text)| text.starts_with("tick "))
        .filter_map(|(ts, _)| ts.parse().ok())
        .collect()
}

#[tokio::test]
async fn a_slow_disk_does_not_stall_guests_or_the_lease() {
    let work = tempfile::Builder::new().prefix("wasmlet-slowdisk-").tempdir().unwrap();
    let (backing, root) = (work.path().join("backing"), work.path().join("root"));
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(root.join("pods")).unwrap();
    let disk = SlowFs::mount(&backing, &root.join("pods"), DELAY).expect("mounting the slow filesystem");
    let options = Options { root_dir: Some(root.clone()), ..Options::default() };
    let node = WasmletNode::start_with_options(env!("CARGO_BIN_EXE_wasmlet"), "slowdisk", options).await;
    let ns = Namespace::create(&admin_client().await, "slowdisk").await;
    let api = ns.api::<Pod>();
    let forever = fixture_image("forever").await;

    let mut ticker = pods::bare("ticker", &node.name, &forever, &[], "Always");
    ticker["spec"]["containers"][0]["env"] =
        serde_json::json!([{ "name": "TICK_MS", "value": TICK.as_millis().to_string() }]);
    pods::create(&ns, ticker).await;
    let mut walkers = Vec::new();
    for name in ["walker-a", "walker-b"] {
        let pod = pods::create(&ns, with_scratch(name, &node.name, &forever)).await;
        walkers.push(pod.metadata.uid.unwrap());
    }
    pods::create(&ns, pods::bare("crasher", &node.name, &fixture_image("exit-code").await, &["3"], "Always")).await;
    for name in ["ticker", "walker-a", "walker-b"] {
        pods::wait_for(&api, name, Duration::from_secs(120), || node.log_tail(60), |p| pods::running(p, "main")).await;
    }
    // Fill the emptyDirs behind the agent's back (fast); it walks them slowly.
    for uid in &walkers {
        let dir = scratch_dir(&backing, uid).expect("the walker's emptyDir");
        for i in 0..FILES {
            std::fs::write(dir.join(format!("file-{i}")), b"data").unwrap();
        }
    }

    let leases: Api<Lease> = Api::namespaced(admin_client().await, "kube-node-lease");
    let ops_before = (disk.ops(), disk.ops_named("getattr") + disk.ops_named("lookup"));
    let started = k8s_openapi::jiff::Timestamp::now();
    let mut renewals = Vec::new();
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let until = tokio::time::Instant::now() + WINDOW;
    while tokio::time::Instant::now() < until {
        poll.tick().await;
        let renew = leases.get(&node.name).await.ok().and_then(|l| l.spec?.renew_time).map(|t| t.0);
        if let Some(t) = renew
            && renewals.last() != Some(&t)
        {
            renewals.push(t);
        }
    }
    let ended = k8s_openapi::jiff::Timestamp::now();
    let ops = (disk.ops() - ops_before.0, disk.ops_named("getattr") + disk.ops_named("lookup") - ops_before.1);

    // The disk was slow and busy: the walks went through it.
    eprintln!("slow disk: {} operations in {WINDOW:?} ({} lookups and stats), each ≥ {DELAY:?}", ops.0, ops.1);
    assert!(ops.1 >= (2 * FILES) as u64, "the emptyDirs were not walked: {ops:?}");

    // The Lease was renewed on time.
    let gaps: Vec<Duration> =
        renewals.windows(2).map(|w| Duration::try_from(w[1].duration_since(w[0])).unwrap_or_default()).collect();
    eprintln!("lease renewals: {} in {WINDOW:?}, gaps {gaps:?}", renewals.len());
    assert!(renewals.len() >= 4, "only {} renewals in {WINDOW:?}", renewals.len());
    assert!(gaps.iter().all(|g| *g <= MAX_RENEW_GAP), "late lease renewals: {gaps:?}\n{}", node.log_tail(40));

    // The ticker kept its pace.
    let out = pods::kubectl(&["logs", "--timestamps", "-n", ns.name(), "ticker"]).await;
    let logs = String::from_utf8_lossy(&out.stdout);
    let ticks: Vec<_> = tick_times(&logs).into_iter().filter(|t| *t >= started && *t <= ended).collect();
    let tick_gaps: Vec<Duration> =
        ticks.windows(2).map(|w| Duration::try_from(w[1].duration_since(w[0])).unwrap_or_default()).collect();
    let max_gap = tick_gaps.iter().max().copied().unwrap_or(WINDOW);
    let expected = (WINDOW.as_millis() / TICK.as_millis()) as usize;
    eprintln!("ticker: {} ticks in {WINDOW:?} (expected ≈ {expected}), largest gap {max_gap:?}", ticks.len());
    assert!(ticks.len() >= expected * 9 / 10, "{} ticks of {expected}: {}", ticks.len(), node.log_tail(40));
    assert!(max_gap <= MAX_TICK_GAP, "the guest stalled for {max_gap:?}");

    // The crash-looping pod's restarts were recorded (and checkpointed) meanwhile.
    let crasher = api.get("crasher").await.unwrap();
    assert!(pods::container(&crasher, "main").is_some_and(|c| c.restart_count >= 1), "{:?}", crasher.status);
    assert!(disk.ops_named("fsync") > 0, "no checkpoint was written");
    drop(node);
    drop(disk);
}
