//! `cargo xtask bench ...`: benchmark commands, and the load generator they
//! share.
//!
//! Load comes from [`wrk`](https://github.com/wg/wrk) (Debian package `wrk`),
//! a closed-loop generator: each connection sends its next request when the
//! previous response arrives (HTTP/1.1 keep-alive), so latency figures are
//! service times under that concurrency and do not include the queueing an
//! open-loop client would see. Every target of a run gets the same wrk
//! settings ([`Load`]). Results go to stdout; record them in
//! `docs/benchmarks.md`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::{bench_http, bench_pods};

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(clap::Subcommand)]
enum BenchCommand {
    /// wasi:http serving: wasmlet against `wasmtime serve`, same component,
    /// same load, in one run.
    Http(bench_http::Args),
    /// Pods at scale: start, churn, density, footprint and many nodes,
    /// wasmlet against kwok, a hollow kubelet and the kubelet on containerd.
    Pods(bench_pods::Args),
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Http(args) => bench_http::run(args).await,
        BenchCommand::Pods(args) => bench_pods::run(args).await,
    }
}

/// How wrk loads a target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// How long one measurement lasts.
    pub(crate) duration: Duration,
    /// Open connections (each with one request in flight).
    pub(crate) connections: u32,
    /// wrk threads.
    pub(crate) threads: u32,
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    /// Requests completed.
    pub(crate) requests: u64,
    /// Requests per second over the run.
    pub(crate) rps: f64,
    /// Median latency.
    pub(crate) p50: Duration,
    /// 99th percentile latency.
    pub(crate) p99: Duration,
    /// Socket errors, timeouts and non-2xx/3xx responses.
    pub(crate) errors: u64,
}

/// Prints one machine-readable line when wrk is done; percentiles in µs.
const REPORT_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wasmlet-bench requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#;

/// The wrk binary and its report script, checked once.
pub(crate) struct Wrk {
    script: std::path::PathBuf,
}

impl Wrk {
    /// Finds wrk on PATH and writes its report script into `dir`.
    pub(crate) fn new(dir: &Path) -> anyhow::Result<Self> {
        let found = Command::new("wrk").arg("--version").output();
        if found.is_err() {
            bail!("the load generator wrk is not on PATH; install it with: apt-get install -y wrk");
        }
        let script = dir.join("wrk-report.lua");
        std::fs::write(&script, REPORT_SCRIPT).with_context(|| format!("writing {}", script.display()))?;
        Ok(Self { script })
    }

    /// wrk's version line (it prints it with `--version`, exiting non-zero).
    pub(crate) fn version() -> String {
        Command::new("wrk")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Loads `url` as `load` says and returns what wrk measured.
    pub(crate) fn run(&self, url: &str, load: Load) -> anyhow::Result<Measured> {
        let out = Command::new("wrk")
            .arg(format!("--threads={}", load.threads))
            .arg(format!("--connections={}", load.connections))
            .arg(format!("--duration={}s", load.duration.as_secs().max(1)))
            .arg("--timeout=10s")
            .arg(format!("--script={}", self.script.display()))
            .arg(url)
            .output()
            .context("running wrk")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("wrk {url} failed ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        parse_report(&stdout).with_context(|| format!("no report in wrk's output:\n{stdout}"))
    }
}

fn parse_report(stdout: &str) -> Option<Measured> {
    let line = stdout.lines().find_map(|l| l.strip_prefix("wasmlet-bench "))?;
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    let requests = field("requests")?;
    let duration = Duration::from_micros(field("duration_us")?);
    Some(Measured {
        requests,
        rps: requests as f64 / duration.as_secs_f64(),
        p50: Duration::from_micros(field("p50_us")?),
        p99: Duration::from_micros(field("p99_us")?),
        errors: field("errors")?,
    })
}

/// Gives a server under test the same, quiet environment whatever the
/// caller's shell has: no backtraces (`wasmtime serve` makes an error value
/// on its request path, and with `RUST_BACKTRACE=1` captures a backtrace for
/// it, about 6 % of its CPU) and default log levels.
pub(crate) fn server_env(cmd: &mut Command) -> &mut Command {
    for var in ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "RUST_LOG", "WASMTIME_LOG", "WASMLET_LOG"] {
        cmd.env_remove(var);
    }
    cmd
}

/// The 1-minute load average, to tell whether other work shared the machine.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// CPU time (user + system, all threads) a process has used so far.
pub(crate) fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("process {pid}"))?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, so the 12th and 13th after it.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).context("malformed /proc stat");
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks() as f64))
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc/*/stat` times.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_report_line() {
        let out = "Running 1s test\n  1 threads\nwasmlet-bench requests=2000 duration_us=1000000 p50_us=450 p99_us=1200 errors=0\n";
        let m = parse_report(out).unwrap();
        assert_eq!(m.requests, 2000);
        assert!((m.rps - 2000.0).abs() < 1e-6);
        assert_eq!(m.p50, Duration::from_micros(450));
        assert_eq!(m.p99, Duration::from_micros(1200));
        assert_eq!(m.errors, 0);
        assert!(parse_report("nothing").is_none());
    }
}
