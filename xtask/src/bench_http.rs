//! `cargo xtask bench http`: requests per second and latency of the
//! `http-hello` fixture (a hello-world `wasi:http/proxy` component) served by
//! wasmlet, next to `wasmtime serve` running the same file on the same
//! machine in the same run, as ratios.
//!
//! Every server is started once; then each round loads every target in turn
//! (a warm-up, then the measurement) with the same [`Load`], so slow drift of
//! the machine affects all targets alike. Targets:
//!
//! - `wasmtime serve`, release build of wasmtime-cli 48 (the version wasmlet
//!   embeds), on a loopback port. Flags: `-W timeout=60s`, the closest to
//!   wasmlet's defaults (a 60 s per-request timeout, which also turns on
//!   epoch interruption, always on in wasmlet); otherwise its defaults: the
//!   pooling allocator, a fresh instance per request (the default for WASIp2
//!   components), HTTP/1.1 keep-alive, up to 1000 requests in flight.
//! - `pod` (see [`bench_pod`](crate::bench_pod)): a real pod on a wasmlet
//!   node (release build) joined to the test bed, loaded on its pod IP.
//! - `runtime`: the `http_serve` example of wasmlet-runtime (release build):
//!   `Runtime::serve_http` as a pod uses it, without the rest of the agent,
//!   on a loopback port.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::{Load, Measured, Wrk, load_average, process_cpu, server_env};
use crate::bench_pod::PodServer;
use crate::steps::{exec, fixtures_dir, repo_root};
use crate::testbed::Location;

/// The wasmtime version wasmlet embeds (see the workspace `Cargo.toml`).
const WASMTIME_VERSION: &str = "48.0.8";
/// How long a server may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Seconds of measured load per target and round.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of unmeasured load before each measurement.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Open connections, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// Rounds; each loads every target once.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// The wasmlet targets to compare with `wasmtime serve` (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Target::Pod, Target::Runtime])]
    target: Vec<Target>,
    #[command(flatten)]
    location: Location,
}

/// A wasmlet way of serving the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// A pod on a wasmlet node, loaded on its pod IP.
    Pod,
    /// `Runtime::serve_http` in the `http_serve` example, on loopback.
    Runtime,
}

/// A running server under test.
pub(crate) struct Server {
    pub(crate) name: &'static str,
    pub(crate) url: String,
    /// The process whose CPU time is the server's.
    pub(crate) pid: u32,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if args.connections < args.threads || args.threads == 0 || args.runs == 0 || args.duration == 0 {
        bail!("--connections must be at least --threads; --threads, --runs and --duration at least 1");
    }
    let out_dir = repo_root().join("target").join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let wrk = Wrk::new(&out_dir)?;
    let wasmtime = wasmtime_bin()?;
    let wasm = fixtures_dir().join("http-hello.wasm");
    if !wasm.is_file() {
        crate::steps::build_fixtures()?;
    }
    let load =
        Load { duration: Duration::from_secs(args.duration), connections: args.connections, threads: args.threads };
    let warmup = Load { duration: Duration::from_secs(args.warmup), ..load };

    // Start every server first (the pod path takes longest), then measure.
    let mut children = Vec::new();
    let mut servers = Vec::new();
    let (child, server) = start_wasmtime(&wasmtime, &wasm, &out_dir)?;
    children.push(child);
    servers.push(server);
    let mut pod = None;
    for target in dedup(&args.target) {
        match target {
            Target::Runtime => {
                let (child, server) = start_runtime(&wasm, &out_dir)?;
                children.push(child);
                servers.push(server);
            }
            Target::Pod => {
                let started = PodServer::start(&args.location).await?;
                servers.push(started.server());
                pod = Some(started);
            }
        }
    }

    print_header(&wasmtime, &load, &warmup);
    let mut results: Vec<Vec<(Measured, Duration)>> = vec![Vec::new(); servers.len()];
    for round in 1..=args.runs {
        for (i, server) in servers.iter().enumerate() {
            eprintln!("round {round}/{}: {} ({})", args.runs, server.name, server.url);
            if args.warmup > 0 {
                wrk.run(&server.url, warmup)?;
            }
            let cpu_before = process_cpu(server.pid)?;
            let measured = wrk.run(&server.url, load)?;
            let cpu = process_cpu(server.pid)?.saturating_sub(cpu_before);
            print_row(&round.to_string(), server.name, &measured, cpu);
            results[i].push((measured, cpu));
        }
    }
    print_ratios(&servers, &results);
    println!();
    println!("# load average (1 min) after: {}", load_average());

    // Stops the servers: the children are killed, the pod's node stopped.
    drop((children, pod));
    Ok(())
}

fn dedup(targets: &[Target]) -> Vec<Target> {
    let mut seen = Vec::new();
    for &t in targets {
        if !seen.contains(&t) {
            seen.push(t);
        }
    }
    seen
}

/// The wasmtime CLI: `~/.cache/wasmlet/tools/bin/wasmtime`, else on PATH.
fn wasmtime_bin() -> anyhow::Result<PathBuf> {
    let cached = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/wasmlet/tools/bin/wasmtime"));
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("wasmtime"));
    let Some(bin) = cached.into_iter().chain(on_path).find(|p| p.is_file()) else {
        bail!(
            "the wasmtime CLI is not in ~/.cache/wasmlet/tools/bin or on PATH; install the version wasmlet embeds \
             with: cargo install wasmtime-cli --version {WASMTIME_VERSION} --locked --root ~/.cache/wasmlet/tools"
        );
    };
    let version = wasmtime_version(&bin);
    if !version.contains(&format!(" {WASMTIME_VERSION}")) {
        eprintln!("warning: {} is {version:?}, not wasmtime {WASMTIME_VERSION} as embedded", bin.display());
    }
    Ok(bin)
}

fn wasmtime_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_wasmtime(bin: &Path, wasm: &Path, out_dir: &Path) -> anyhow::Result<(Killed, Server)> {
    let addr = free_loopback_addr()?;
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "-W", "timeout=60s", "--addr", &addr.to_string()]).arg(wasm);
    let log = out_dir.join("wasmtime-serve.log");
    let mut child = spawn_logged(&mut cmd, &log)?;
    let server = Server { name: "wasmtime serve", url: format!("http://{addr}/"), pid: child.0.id() };
    wait_serving(addr, Some(&mut child.0), &log)?;
    Ok((child, server))
}

fn start_runtime(wasm: &Path, out_dir: &Path) -> anyhow::Result<(Killed, Server)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    exec(
        Command::new(cargo)
            .args(["build", "--quiet", "--release", "-p", "wasmlet-runtime", "--example", "http_serve"])
            .current_dir(repo_root()),
        "building the http_serve example",
    )?;
    let bin = repo_root().join("target/release/examples/http_serve");
    let addr = free_loopback_addr()?;
    let mut cmd = Command::new(bin);
    cmd.arg(wasm).arg(addr.to_string());
    let log = out_dir.join("http-serve.log");
    let mut child = spawn_logged(&mut cmd, &log)?;
    let server = Server { name: "wasmlet runtime", url: format!("http://{addr}/"), pid: child.0.id() };
    wait_serving(addr, Some(&mut child.0), &log)?;
    Ok((child, server))
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> anyhow::Result<Killed> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = server_env(cmd)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    Ok(Killed(child))
}

/// A loopback address with a port nothing listens on right now.
fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Waits until `GET /` on `addr` answers 200; fails early if `child` exits.
pub(crate) fn wait_serving(addr: SocketAddr, mut child: Option<&mut Child>, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match get(addr) {
            Ok(status) if status.starts_with("HTTP/1.1 200") => return Ok(()),
            Ok(status) if Instant::now() > deadline => bail!("GET http://{addr}/ answers {status:?}, not 200"),
            Err(e) if Instant::now() > deadline => {
                bail!("nothing serves http://{addr}/ after {START_TIMEOUT:?} ({e}); see {}", log.display())
            }
            _ => {}
        }
        if let Some(c) = child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("the server exited ({status}) before serving; its output:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET /` over a fresh connection; returns the status line.
pub(crate) fn get(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.lines().next().unwrap_or_default().to_owned())
}

fn print_header(wasmtime: &Path, load: &Load, warmup: &Load) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim().to_owned()))
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# wasi:http serving: http-hello.wasm");
    println!("# machine: {cpus} CPUs ({cpu}); {}; {}", wasmtime_version(wasmtime), Wrk::version());
    println!(
        "# load: wrk, {} thread(s), {} connections, {} s per target and round after {} s of warm-up",
        load.threads,
        load.connections,
        load.duration.as_secs(),
        warmup.duration.as_secs()
    );
    println!("# load average (1 min) before: {}", load_average());
    println!();
    println!("| round | target | requests/s | p50 | p99 | server CPU per request | errors |");
    println!("|---|---|---:|---:|---:|---:|---:|");
}

fn print_row(round: &str, name: &str, m: &Measured, cpu: Duration) {
    let per_request = if m.requests == 0 { 0.0 } else { cpu.as_secs_f64() * 1e6 / m.requests as f64 };
    println!(
        "| {round} | {name} | {:.0} | {} | {} | {per_request:.0} µs | {} |",
        m.rps,
        millis(m.p50),
        millis(m.p99),
        m.errors
    );
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// wasmlet/wasmtime per round (the first server is wasmtime), then medians.
fn print_ratios(servers: &[Server], results: &[Vec<(Measured, Duration)>]) {
    println!();
    println!("ratios wasmlet / wasmtime serve (requests/s: above 1 is better; p99: below 1 is better)");
    println!();
    println!("| target | requests/s ratio per round | median | p99 ratio per round | median |");
    println!("|---|---|---:|---|---:|");
    let base = &results[0];
    for (server, rows) in servers.iter().zip(results).skip(1) {
        let rps: Vec<f64> = rows.iter().zip(base).map(|((m, _), (b, _))| m.rps / b.rps).collect();
        let p99: Vec<f64> =
            rows.iter().zip(base).map(|((m, _), (b, _))| m.p99.as_secs_f64() / b.p99.as_secs_f64()).collect();
        println!("| {} | {} | {:.2} | {} | {:.2} |", server.name, list(&rps), median(&rps), list(&p99), median(&p99));
    }
}

fn list(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(", ")
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
