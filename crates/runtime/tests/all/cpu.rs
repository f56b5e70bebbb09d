//! CPU limits and live stats ([`GuestStats`]) with real guests.
//!
//! Timing here runs on 2 shared, loaded cores: assertions use wide bands
//! and upper bounds the throttle guarantees (a limited guest can never get
//! more than its share), never exact figures.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wasmlet_runtime::{Exit, ExitReason, GuestStats, Limits};

use crate::{WAIT, compile, runtime, spec};

/// How often the waits below look at a stats handle.
const POLL: Duration = Duration::from_millis(20);

/// Waits until `cond` holds, looking every [`POLL`]; fails after [`WAIT`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let wait = async {
        let mut every = tokio::time::interval(POLL);
        while !cond() {
            every.tick().await;
        }
    };
    tokio::time::timeout(WAIT, wait).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn busy_spec(cpu_millis: Option<u64>, stats: &GuestStats) -> wasmlet_runtime::GuestSpec {
    // Never reports: no host call while it spins.
    let (mut spec, _, _) = spec(&["busy"], &[("REPORT_EVERY", "1000000000000000")]);
    spec.limits = Limits { cpu_millis, ..Limits::default() };
    spec.stats = Some(stats.clone());
    spec
}

/// Two busy guests limited to 100m and 400m, side by side, get CPU time in
/// about a 1:4 ratio, and neither more than its share of the wall time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_limits_share_in_proportion() {
    let runtime = runtime();
    let compiled = compile(&runtime, "busy.wasm").await;
    let (small, large) = (GuestStats::new(), GuestStats::new());
    let stop = CancellationToken::new();
    let started = Instant::now();
    let run_small = runtime.run(&compiled, busy_spec(Some(100), &small), stop.clone());
    let run_large = runtime.run(&compiled, busy_spec(Some(400), &large), stop.clone());
    let watch = async {
        // About 2.5 s at 400m.
        until("1 s of CPU at 400m", || large.cpu() >= Duration::from_secs(1)).await;
        stop.cancel();
        Instant::now()
    };
    let (small_exit, large_exit, stopped_at) = tokio::join!(run_small, run_large, watch);
    let wall = started.elapsed().as_secs_f64();
    assert!(stopped_at.elapsed() < Duration::from_secs(2), "stopping took {:?}", stopped_at.elapsed());
    let (small_exit, large_exit) = (small_exit.unwrap(), large_exit.unwrap());
    for exit in [&small_exit, &large_exit] {
        assert_eq!((exit.code, exit.reason), (143, ExitReason::Stopped), "{exit:?}");
    }
    let (small_cpu, large_cpu) = (small_exit.cpu.as_secs_f64(), large_exit.cpu.as_secs_f64());
    let figures = format!("400m got {large_cpu:.3} s, 100m {small_cpu:.3} s in {wall:.3} s");
    // Never more than the limit (plus the initial quota, a tick of
    // overshoot and slack for the stop), however idle the machine.
    assert!(large_cpu <= 0.4 * wall + 0.15, "{figures}");
    assert!(small_cpu <= 0.1 * wall + 0.1, "{figures}");
    // A limit is a cap, not a guarantee (as with CFS quotas): when the
    // machine is so busy that even the 400m guest could not get near its
    // cap, both get what the OS gives their threads and the ratio says
    // nothing about the throttle. Otherwise it must be about 4.
    if large_cpu >= 0.3 * wall {
        let ratio = large_cpu / small_cpu;
        assert!((2.5..6.5).contains(&ratio), "ratio {ratio:.2}: {figures}");
        for stats in [&small, &large] {
            assert!(stats.throttles() > 0 && stats.throttled() > Duration::ZERO, "{stats:?}");
        }
    } else {
        eprintln!("the machine starved both guests, the ratio is not checked: {figures}");
    }
    // The handles saw the same CPU time as the exits.
    assert_eq!((small.cpu(), large.cpu()), (small_exit.cpu, large_exit.cpu));
}

/// A live handle: running, CPU growing, memory present; after the stop,
/// not running and no memory, CPU kept.
#[tokio::test]
async fn stats_follow_a_running_guest() {
    let runtime = runtime();
    let compiled = compile(&runtime, "busy.wasm").await;
    let stats = GuestStats::new();
    let stop = CancellationToken::new();
    let before = std::time::SystemTime::now();
    let guest = runtime.run(&compiled, busy_spec(None, &stats), stop.clone());
    let watch = async {
        until("some CPU", || stats.cpu() >= Duration::from_millis(50)).await;
        assert!(stats.is_running());
        assert!(stats.memory_bytes() >= 64 * 1024, "{stats:?}");
        let started = stats.started_at().unwrap();
        assert!(started >= before && started <= std::time::SystemTime::now(), "{stats:?}");
        let first = stats.cpu();
        until("more CPU", || stats.cpu() >= first + Duration::from_millis(50)).await;
        stop.cancel();
    };
    let (exit, ()) = tokio::join!(guest, watch);
    let exit: Exit = exit.unwrap();
    assert!(!stats.is_running());
    assert_eq!(stats.memory_bytes(), 0);
    assert_eq!(stats.cpu(), exit.cpu);
    assert_eq!(stats.throttles(), 0);
}

/// Memory follows the guest's growth: memhog holding 8 MiB shows at least
/// that much (and not wildly more).
#[tokio::test]
async fn memory_reflects_growth() {
    let runtime = runtime();
    let compiled = compile(&runtime, "memhog.wasm").await;
    let (mut spec, stdout, _) = spec(&["memhog"], &[("LIMIT_MB", "8")]);
    let stats = GuestStats::new();
    spec.stats = Some(stats.clone());
    let stop = CancellationToken::new();
    let guest = runtime.run(&compiled, spec, stop.clone());
    let watch = async {
        stdout.wait_for("allocated 2 MiB").await;
        let early = stats.memory_bytes();
        stdout.wait_for("holding 8 MiB").await;
        let held = stats.memory_bytes();
        stop.cancel();
        (early, held)
    };
    let (exit, (early, held)) = tokio::join!(guest, watch);
    assert_eq!(exit.unwrap().reason, ExitReason::Stopped);
    assert!(early >= 2 << 20 && early < held, "{early} then {held}");
    assert!((8 << 20..=12 << 20).contains(&held), "{held}");
}

/// One handle over several runs (a container's attempts): CPU adds up,
/// the start moves to the latest run.
#[tokio::test]
async fn a_handle_keeps_counting_across_runs() {
    let runtime = runtime();
    let compiled = compile(&runtime, "busy.wasm").await;
    let stats = GuestStats::new();
    let mut total = Duration::ZERO;
    let mut starts = Vec::new();
    for _ in 0..2 {
        let (mut spec, _, _) = spec(&["busy", "2000000"], &[]);
        spec.stats = Some(stats.clone());
        let exit = crate::run(&runtime, &compiled, spec).await.unwrap();
        assert_eq!((exit.code, exit.reason), (0, ExitReason::Exited), "{exit:?}");
        total += exit.cpu;
        starts.push(stats.started_at().unwrap());
    }
    assert_eq!(stats.cpu(), total);
    assert!(starts[1] > starts[0], "{starts:?}");
}
