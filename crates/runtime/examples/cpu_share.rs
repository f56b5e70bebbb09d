//! Run with `cargo run --release -p wasmlet-runtime --example cpu_share [SECONDS]`
//! (after `make -C fixtures OUT=$PWD/target/fixtures`).
//!
//! Two CPU-bound guests (the `busy` fixture) with CPU limits of 100m and
//! 400m run side by side for SECONDS (default 10) on a multi-threaded tokio
//! runtime; then it prints each one's CPU time, its share of the wall time
//! and the ratio (expected: 0.1, 0.4 and 4). Results go to stdout: this is a
//! benchmark command, not a library.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use wasmlet_oci::Digest;
use wasmlet_runtime::{Config, GuestSpec, GuestStats, Limits, Runtime};

const LIMITS: [u64; 2] = [100, 400];

fn fixtures_dir() -> PathBuf {
    std::env::var_os("WASMLET_FIXTURES_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures"), PathBuf::from)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let path = fixtures_dir().join("busy.wasm");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let runtime = Runtime::new(Config::default())?;
    let compiled = runtime.compile(&Digest::of(&bytes), bytes).await?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let runs = LIMITS.map(|millis| {
        let stats = GuestStats::new();
        let mut spec = GuestSpec::new(["busy"]);
        spec.env = vec![("REPORT_EVERY".to_owned(), "1000000000000000".to_owned())];
        spec.limits = Limits { cpu_millis: Some(millis), ..Limits::default() };
        spec.stats = Some(stats.clone());
        (millis, stats, runtime.run(&compiled, spec, stop.clone()))
    });
    let [(m0, s0, r0), (m1, s1, r1)] = runs;
    let timer = async {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.cancel();
    };
    let (e0, e1, ()) = tokio::join!(r0, r1, timer);
    let wall = started.elapsed().as_secs_f64();
    let (e0, e1) = (e0?, e1?);
    println!(
        "wall time: {wall:.3} s, epoch tick {:?}, cpu period {:?}",
        Config::default().epoch_tick,
        Config::default().cpu_period
    );
    for (millis, stats, exit) in [(m0, &s0, &e0), (m1, &s1, &e1)] {
        let cpu = exit.cpu.as_secs_f64();
        println!(
            "{millis}m: cpu {cpu:.3} s = {:.3} of one CPU (limit {:.3}); throttled {} times, {:.3} s",
            cpu / wall,
            millis as f64 / 1000.0,
            stats.throttles(),
            stats.throttled().as_secs_f64(),
        );
    }
    println!(
        "ratio {m1}m/{m0}m: {:.2} (expected {:.2})",
        e1.cpu.as_secs_f64() / e0.cpu.as_secs_f64(),
        m1 as f64 / m0 as f64
    );
    Ok(())
}
