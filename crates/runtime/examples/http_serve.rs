//! Run with `cargo run --release -p wasmlet-runtime --example http_serve [WASM] [ADDR]`
//! (after `make -C fixtures OUT=$PWD/target/fixtures`).
//!
//! Serves WASM (default the `http-hello` fixture), a `wasi:http/proxy`
//! component, through [`Runtime::serve_http`] on ADDR (default
//! `127.0.0.1:8080`) until SIGINT or SIGTERM: the runtime's HTTP server
//! without the rest of the agent. Settings are those a pod gets: the default
//! [`Config`] and limits, live stats published, no CPU limit.
//! `cargo xtask bench http --target runtime` runs it as the wasmlet side of
//! the comparison with `wasmtime serve`. Prints `listening on ADDR` once it
//! listens; at the end, the requests served. With `WASMLET_BENCH_MOUNTS=N`
//! the guest gets N empty read-only directories mounted (as a pod's
//! volumes), to measure what mounts cost per request.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use wasmlet_oci::Digest;
use wasmlet_runtime::{Config, GuestSpec, GuestStats, HttpSpec, HttpStats, Mount, Runtime};

fn default_wasm() -> PathBuf {
    std::env::var_os("WASMLET_FIXTURES_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures"), PathBuf::from)
        .join("http-hello.wasm")
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let wasm = args.next().map_or_else(default_wasm, PathBuf::from);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:8080").parse().context("ADDR")?;
    // The agent's runtime: multi-threaded, one worker per CPU.
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(serve(wasm, addr))
}

async fn serve(wasm: PathBuf, addr: SocketAddr) -> anyhow::Result<()> {
    let bytes = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let runtime = Runtime::new(Config::default())?;
    let compiled = runtime.compile(&Digest::of(&bytes), bytes).await?;

    let mut guest = GuestSpec::new(["http-serve"]);
    guest.stats = Some(GuestStats::new());
    let mounts =
        std::env::var("WASMLET_BENCH_MOUNTS").ok().map_or(Ok(0), |n| n.parse()).context("WASMLET_BENCH_MOUNTS")?;
    let dirs = (0..mounts).map(|_| tempfile::tempdir()).collect::<Result<Vec<_>, _>>()?;
    guest.mounts = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| Mount { host: dir.path().to_owned(), guest: format!("/m{i}"), read_only: true })
        .collect();
    let http_stats = HttpStats::new();
    let mut spec = HttpSpec::new(guest, vec![addr]);
    spec.stats = Some(http_stats.clone());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    spec.ready = Some(ready_tx);

    let stop = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let on_signal = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        on_signal.cancel();
    });
    let announce = async {
        // Dropped without a message when the server cannot start.
        if let Ok(listening) = ready_rx.await {
            for addr in listening.addrs {
                println!("listening on {addr}");
            }
        }
    };
    let (exit, ()) = tokio::join!(runtime.serve_http(&compiled, spec, stop), announce);
    let exit = exit?;
    println!("served {} requests ({} errors), exit code {}", http_stats.requests(), http_stats.errors(), exit.code);
    Ok(())
}
