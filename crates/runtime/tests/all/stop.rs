//! Stopping guests, and CPU-bound guests sharing the scheduler.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wasmlet_runtime::ExitReason;

use crate::{WAIT, compile, runtime, spec};

/// How soon after `stop` a guest must be gone (the epoch tick is 10 ms; the
/// rest is slack for a loaded 2-core machine).
const PROMPT: Duration = Duration::from_secs(2);

/// A guest waiting in a host call (`nanosleep`) is stopped at once.
#[tokio::test]
async fn sleeping_guest_is_stopped_promptly() {
    let runtime = runtime();
    let compiled = compile(&runtime, "forever.wasm").await;
    let (spec, stdout, _) = spec(&["forever"], &[("TICK_MS", "100")]);
    let stop = CancellationToken::new();
    let guest = runtime.run(&compiled, spec, stop.clone());
    let watch = async {
        stdout.wait_for("tick 1\n").await;
        stop.cancel();
        Instant::now()
    };
    let (exit, stopped_at) = tokio::join!(guest, watch);
    let exit = exit.unwrap();
    assert!(stopped_at.elapsed() < PROMPT, "took {:?}", stopped_at.elapsed());
    assert_eq!((exit.code, exit.reason), (143, ExitReason::Stopped), "{exit:?}");
    assert!(exit.wall >= Duration::from_millis(100), "{exit:?}");
}

#[tokio::test]
async fn already_cancelled_token_never_starts_the_guest() {
    let runtime = runtime();
    let compiled = compile(&runtime, "exit-code.wasm").await;
    let (spec, stdout, _) = spec(&["exit-code"], &[]);
    let stop = CancellationToken::new();
    stop.cancel();
    let exit = runtime.run(&compiled, spec, stop).await.unwrap();
    assert_eq!((exit.code, exit.reason), (143, ExitReason::Stopped));
    assert_eq!(stdout.text(), "");
}

/// A call-free CPU loop on a single-threaded runtime: another task keeps
/// ticking while it runs (the guest yields every epoch), and `stop` ends it
/// promptly.
///
/// Runs on its own thread so that a guest that never yields fails the test
/// (by the timeout below) instead of hanging it.
#[test]
fn busy_guest_does_not_starve_others_and_stops() {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _ = done.send(rt.block_on(busy_scenario()));
    });
    let (exit, stop_latency, thread_cpu) =
        result.recv_timeout(WAIT).expect("the busy guest starved the single-threaded runtime");
    assert_eq!((exit.code, exit.reason), (143, ExitReason::Stopped), "{exit:?}");
    assert!(stop_latency < PROMPT, "stop took {stop_latency:?}");
    // The guest really was spinning while the other task ticked: it used
    // most of the CPU time the runtime's one thread got (however little a
    // loaded machine gave that thread).
    assert!(exit.cpu > Duration::ZERO && exit.cpu * 2 >= thread_cpu, "{exit:?}, thread {thread_cpu:?}");
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::from(now)
}

async fn busy_scenario() -> (wasmlet_runtime::Exit, Duration, Duration) {
    const TICKS: u64 = 20;
    let runtime = runtime();
    let compiled = compile(&runtime, "busy.wasm").await;
    // Never reports: no host call at all while it spins.
    let (spec, _, _) = spec(&["busy"], &[("REPORT_EVERY", "1000000000000000")]);
    let stop = CancellationToken::new();
    let (count, mut ticks) = watch::channel(0_u64);
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        loop {
            interval.tick().await;
            count.send_modify(|n| *n += 1);
        }
    });
    let thread_started = thread_cpu();
    let guest = runtime.run(&compiled, spec, stop.clone());
    let watch = async {
        // Counted from here: the guest has been polled (it is instantiated
        // and spinning) by the time this runs again.
        tokio::task::yield_now().await;
        let first = *ticks.borrow_and_update();
        let reached = ticks.wait_for(|n| *n >= first + TICKS).await;
        assert!(reached.is_ok(), "the ticker task ended");
        stop.cancel();
        Instant::now()
    };
    let (exit, stopped_at) = tokio::join!(guest, watch);
    let latency = stopped_at.elapsed();
    let thread_used = thread_cpu() - thread_started;
    ticker.abort();
    (exit.unwrap(), latency, thread_used)
}
