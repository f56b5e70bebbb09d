//! Run with `cargo run --release -p wasmlet-runtime --example guest_overhead [GUESTS]`
//! (after `make -C fixtures OUT=$PWD/target/fixtures`).
//!
//! Measures what an idle guest costs the agent besides its linear memory.
//! For each of two fixtures it starts GUESTS (default 100) guests that print
//! once and then sleep in a host call, and prints the growth of the
//! process's resident memory (`VmRSS`) per guest next to the linear memory
//! per guest that `GuestStats` reports:
//!
//! - `forever`: a small C program (two 64 KiB pages, mostly untouched);
//! - `memhog` with `LIMIT_MB=2`: 2 MiB allocated *and touched*, so its
//!   linear memory is resident and RSS beyond it is the agent's overhead
//!   (store, instance, fiber stack, WASI context, stdio pipes).
//!
//! That overhead is what the stats payloads add per running container to a
//! pod's memory (`wasmlet-metrics` `Config::container_overhead_bytes`).
//! Results go to stdout: this is a benchmark command, not a library.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use tokio::io::AsyncWrite;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wasmlet_oci::Digest;
use wasmlet_runtime::{Config, GuestSpec, GuestStats, Output, Runtime};

fn fixtures_dir() -> PathBuf {
    std::env::var_os("WASMLET_FIXTURES_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures"), PathBuf::from)
}

fn vm_rss() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
    let kb: u64 = line.split_whitespace().nth(1).context("no VmRSS value")?.parse()?;
    Ok(kb * 1024)
}

/// Output that adds one permit to `printed` once the guest has printed
/// `needle`.
struct Marker {
    needle: &'static str,
    seen: Vec<u8>,
    printed: Arc<Semaphore>,
    done: bool,
}

impl AsyncWrite for Marker {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if !self.done {
            self.seen.extend_from_slice(buf);
            if String::from_utf8_lossy(&self.seen).contains(self.needle) {
                self.done = true;
                self.seen = Vec::new();
                self.printed.add_permits(1);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let guests: u32 = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let runtime = Runtime::new(Config::default())?;
    let kinds = [("forever.wasm", ("TICK_MS", "3600000"), "tick 0"), ("memhog.wasm", ("LIMIT_MB", "2"), "holding")];
    for (file, env, needle) in kinds {
        measure(&runtime, file, env, needle, guests).await?;
    }
    Ok(())
}

async fn measure(
    runtime: &Runtime,
    file: &str,
    env: (&str, &str),
    needle: &'static str,
    guests: u32,
) -> anyhow::Result<()> {
    let path = fixtures_dir().join(file);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let compiled = runtime.compile(&Digest::of(&bytes), bytes).await?;
    let stop = CancellationToken::new();
    let printed = Arc::new(Semaphore::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let start = |tasks: &mut tokio::task::JoinSet<_>| {
        let stats = GuestStats::new();
        let mut spec = GuestSpec::new([file]);
        spec.env = vec![(env.0.to_owned(), env.1.to_owned())];
        spec.stdout = Output::new(Marker { needle, seen: Vec::new(), printed: printed.clone(), done: false });
        spec.stats = Some(stats.clone());
        let (runtime, compiled, stop) = (runtime.clone(), compiled.clone(), stop.clone());
        tasks.spawn(async move { runtime.run(&compiled, spec, stop).await.map(|_| ()) });
        stats
    };
    // One guest first, so one-off costs (linking, lazy init) are not counted.
    start(&mut tasks);
    printed.acquire().await?.forget();
    let before = vm_rss()?;
    let all_stats: Vec<GuestStats> = (0..guests).map(|_| start(&mut tasks)).collect();
    printed.acquire_many(guests).await?.forget();
    let after = vm_rss()?;
    let memory: u64 = all_stats.iter().map(GuestStats::memory_bytes).sum();
    stop.cancel();
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let n = u64::from(guests.max(1));
    let grown = after.saturating_sub(before);
    println!("{file} {env:?}: {guests} idle guests");
    println!("  RSS growth per guest:       {:>6} KiB", grown / n / 1024);
    println!("  linear memory per guest:    {:>6} KiB (GuestStats)", memory / n / 1024);
    let beyond = (i128::from(grown) - i128::from(memory)) / i128::from(n) / 1024;
    println!("  RSS growth − linear memory: {beyond:>6} KiB per guest (negative: untouched linear memory)");
    Ok(())
}
