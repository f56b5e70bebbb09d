//! `cargo xtask test`: the whole suite, as CI runs it.
//!
//! Lints first (fmt, clippy with warnings denied), then the tests are built,
//! while the Go tools that node tests start themselves (`tools/csi`,
//! `tools/devices`) are built alongside (cached: a no-op once built); then
//! a dedicated test bed comes up (its own directory and ports, so a demo test
//! bed can keep running), every workspace test runs against it — the test
//! binaries side by side, `WASMLET_TEST_JOBS` (default 3) at a time
//! ([`crate::test_run`]) — and the test bed goes down again, also when
//! something failed. After the tests, a
//! small `cargo xtask bench pods` runs on the same test bed (wasmlet and
//! kwok only; the kubelet peers are never built here).

use std::process::Command;
use std::time::Instant;

use anyhow::bail;
use wasmlet_testbed::Testbed;

use crate::steps::{self, exec, repo_root};
use crate::testbed::{Location, up};

/// Ports of the CI test bed (the demo one uses the default).
const TEST_PORT_BASE: u16 = 26540;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Leave the test bed running afterwards (to inspect it).
    #[arg(long)]
    keep: bool,
    /// Skip `cargo fmt --check` and `cargo clippy`.
    #[arg(long)]
    no_lint: bool,
    /// Extra arguments for `cargo test` (e.g. a test name filter).
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut timings = Vec::new();
    let mut step = |name: &str, since: Instant| timings.push((name.to_owned(), since.elapsed()));
    // The Go-built test-bed components (cached by version outside the repo)
    // build while the Rust code is linted and built; the tests wait for them.
    let go_tools = std::thread::spawn(go_tools);

    if !args.no_lint {
        let t = Instant::now();
        exec(cargo().args(["fmt", "--all", "--check"]), "cargo fmt --check")?;
        exec(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]), "cargo clippy")?;
        step("lint", t);
    }
    let t = Instant::now();
    // With no filter, the test binaries run side by side (test_run).
    let binaries = if args.cargo_test_args.is_empty() {
        Some(crate::test_run::build(&mut cargo())?)
    } else {
        exec(cargo().args(["test", "--workspace", "--no-run"]), "building the tests")?;
        None
    };
    step("build tests", t);

    let location = Location {
        dir: Some(std::env::temp_dir().join("wasmlet-testbed-ci")),
        port_base: Some(
            std::env::var("WASMLET_TEST_PORT_BASE").ok().and_then(|p| p.parse().ok()).unwrap_or(TEST_PORT_BASE),
        ),
    };
    let t = Instant::now();
    let tb = up(&location).await?;
    step("test bed up", t);
    let t = Instant::now();
    let go_tools = go_tools.join().map_err(|_| anyhow::anyhow!("the Go tools build panicked"))?;
    step("go tools wait", t);
    if let Err(e) = go_tools {
        Testbed::down(tb.dir())?;
        return Err(e);
    }

    let t = Instant::now();
    let outcome = run_tests(&tb, binaries, &args.cargo_test_args);
    step("tests", t);
    // The benchmark code runs small (a few dozen pods, wasmlet and kwok) so
    // that it cannot rot; it checks correctness, never a timing.
    let t = Instant::now();
    let bench = if args.cargo_test_args.is_empty() { crate::bench_pods::smoke(&tb).await } else { Ok(()) };
    step("bench smoke", t);
    let outcome = outcome.and(bench.map_err(|e| anyhow::anyhow!("cargo xtask bench pods (small): {e:#}")));
    if outcome.is_err() {
        eprintln!("\n---- test bed component logs (tail) ----\n{}", tb.log_tails(30));
    }
    if args.keep {
        eprintln!("test bed kept running in {}", tb.dir().display());
    } else {
        Testbed::down(tb.dir())?;
    }
    eprintln!("\n---- timings ----");
    for (name, d) in &timings {
        eprintln!("{name:>14}: {:>6.1}s", d.as_secs_f64());
    }
    eprintln!("{:>14}: {:>6.1}s", "total", started.elapsed().as_secs_f64());
    outcome
}

/// Builds (or finds cached) what the tests start besides the control plane:
/// kwok (the small benchmark's floor), the CSI test-bed components, the
/// device plugins and metrics-server (the node tests would otherwise build them one after the
/// other, inside their own timeouts).
fn go_tools() -> anyhow::Result<()> {
    steps::tool_bin_dir("tools/kwok/build.sh", &[])?;
    steps::csi_tools()?;
    steps::devices_tools()?;
    steps::tool_bin_dir("tools/metrics-server/build.sh", &[])?;
    Ok(())
}

fn run_tests(tb: &Testbed, binaries: Option<Vec<crate::test_run::TestBinary>>, extra: &[String]) -> anyhow::Result<()> {
    let path = format!("{}:{}", tb.bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let env: Vec<(String, String)> = [
        ("KUBECONFIG", tb.admin_kubeconfig().display().to_string()),
        ("WASMLET_TESTBED_DIR", tb.dir().display().to_string()),
        ("WASMLET_REGISTRY", tb.registry()),
        ("WASMLET_FIXTURES_DIR", steps::fixtures_dir().display().to_string()),
        ("PATH", path),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(binaries) = binaries {
        let mut doc = cargo();
        doc.args(["test", "--workspace", "--doc"]).envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        return crate::test_run::run(binaries, doc, &env, crate::test_run::jobs());
    }
    let status = cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .status()?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo_root());
    cmd
}
