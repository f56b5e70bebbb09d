//! The node-wide memory guard (`Config::node_memory_bytes`): every guest
//! charges it, and the guest whose grow would pass it ends OOMKilled while
//! the others keep running.

use tokio_util::sync::CancellationToken;
use wasmlet_runtime::{Config, ExitReason, GuestStats, Runtime};

use crate::{WAIT, compile, spec};

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn the_guest_that_passes_the_node_budget_is_oom_killed_and_the_others_run_on() {
    const NODE: u64 = 48 * MIB;
    let runtime = Runtime::new(Config { node_memory_bytes: Some(NODE), ..Config::default() }).unwrap();
    let compiled = compile(&runtime, "memhog.wasm").await;

    // A: holds 16 MiB, well within its own (default) limit.
    let (mut holder, holder_out, _) = spec(&["memhog"], &[("LIMIT_MB", "16")]);
    let holder_stats = GuestStats::new();
    holder.stats = Some(holder_stats.clone());
    let holder_stop = CancellationToken::new();
    let holder_run = tokio::spawn({
        let (runtime, compiled, stop) = (runtime.clone(), compiled.clone(), holder_stop.clone());
        async move { runtime.run(&compiled, holder, stop).await }
    });
    holder_out.wait_for("holding 16 MiB").await;

    // B: no limit of its own; it allocates until it is stopped.
    let (hog, hog_out, _) = spec(&["memhog"], &[]);
    let exit = crate::run(&runtime, &compiled, hog).await.unwrap();
    assert_eq!((exit.code, exit.reason), (137, ExitReason::OutOfMemory), "{exit:?}");
    assert!(exit.message.contains("the node's memory for pods is exhausted"), "{}", exit.message);
    assert!(!hog_out.text().contains("malloc failed"), "stopped at the grow, not by a NULL: {}", hog_out.text());
    assert!(hog_out.text().contains("allocated 16 MiB"), "B got what A left: {}", hog_out.text());

    // A is untouched: still running, still holding its memory.
    assert!(!holder_run.is_finished(), "the guest within the budget keeps running");
    assert!(holder_stats.is_running() && holder_stats.memory_bytes() >= 16 * MIB, "{holder_stats:?}");
    let memory = runtime.guest_memory();
    assert_eq!(memory.limit_bytes, Some(NODE));
    assert!(memory.peak_bytes <= NODE, "{memory:?}");
    assert_eq!(memory.used_bytes, holder_stats.memory_bytes(), "B's memory went back to the node: {memory:?}");

    // What B gave back is usable again by a new guest.
    let (third, third_out, _) = spec(&["memhog"], &[("LIMIT_MB", "16")]);
    let third_stop = CancellationToken::new();
    let third_run = tokio::spawn({
        let (runtime, compiled, stop) = (runtime.clone(), compiled.clone(), third_stop.clone());
        async move { runtime.run(&compiled, third, stop).await }
    });
    third_out.wait_for("holding 16 MiB").await;

    holder_stop.cancel();
    third_stop.cancel();
    for run in [holder_run, third_run] {
        let exit = tokio::time::timeout(WAIT, run).await.expect("stop in time").unwrap().unwrap();
        assert_eq!(exit.reason, ExitReason::Stopped, "{exit:?}");
    }
    assert_eq!(runtime.guest_memory().used_bytes, 0);
}

#[tokio::test]
async fn a_zero_node_budget_is_refused() {
    let err = Runtime::new(Config { node_memory_bytes: Some(0), ..Config::default() }).unwrap_err();
    assert!(err.to_string().contains("invalid runtime configuration"), "{err}");
}
