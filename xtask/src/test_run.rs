//! Running the workspace's test binaries side by side.
//!
//! `cargo test` runs one test binary after the other; most of ours spend
//! their time waiting on the test bed (a pod to start, a scrape, a grace
//! period), not on the CPU. So the binaries `cargo test --no-run` built are
//! run [`jobs`] at a time, each as cargo would run it (its package directory
//! as working directory, cargo's runtime variables set), with its output
//! kept and shown when it fails. Doc tests run as one more job. A summary
//! lists every binary with its result and time.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Default number of test binaries running at once (`WASMLET_TEST_JOBS`).
pub(crate) const DEFAULT_JOBS: usize = 3;

/// One test binary, as cargo reported it.
#[derive(Debug, Clone)]
pub(crate) struct TestBinary {
    /// `<package>::<target>`.
    name: String,
    executable: PathBuf,
    package_dir: PathBuf,
    package_name: String,
    package_version: String,
}

/// How many binaries run at once.
pub(crate) fn jobs() -> usize {
    std::env::var("WASMLET_TEST_JOBS").ok().and_then(|j| j.parse().ok()).filter(|j| *j > 0).unwrap_or(DEFAULT_JOBS)
}

/// Builds the workspace's tests and lists their binaries.
pub(crate) fn build(cargo: &mut Command) -> anyhow::Result<Vec<TestBinary>> {
    let out = cargo
        .args(["test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the tests failed ({})", out.status);
    }
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if msg["reason"] != "compiler-artifact" || msg["profile"]["test"] != true {
            continue;
        }
        let Some(executable) = msg["executable"].as_str() else { continue };
        let manifest = PathBuf::from(msg["manifest_path"].as_str().unwrap_or_default());
        // package_id: "path+file:///…/crates/x#name@0.1.0" (or "…#0.1.0" when the name is the dir's).
        let id = msg["package_id"].as_str().unwrap_or_default();
        let version = id.rsplit(['@', '#']).next().unwrap_or_default().to_owned();
        let package_dir = manifest.parent().map(Path::to_owned).unwrap_or_default();
        let package_name = package_name(&manifest).unwrap_or_default();
        let target = msg["target"]["name"].as_str().unwrap_or_default();
        binaries.push(TestBinary {
            name: format!("{package_name}::{target}"),
            executable: executable.into(),
            package_dir,
            package_name,
            package_version: version,
        });
    }
    binaries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(binaries)
}

fn package_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    text.lines().find_map(|l| l.trim().strip_prefix("name = \"")?.strip_suffix('"').map(str::to_owned))
}

/// What a run of one job gave.
struct Outcome {
    name: String,
    ok: bool,
    took: Duration,
    output: String,
}

/// Runs `binaries` (and, with `doc`, the doc tests) `jobs` at a time with
/// `env`; fails if any failed, after printing their output.
pub(crate) fn run(
    binaries: Vec<TestBinary>,
    doc: Command,
    env: &[(String, String)],
    jobs: usize,
) -> anyhow::Result<()> {
    let mut queue: VecDeque<(String, Command)> =
        binaries.into_iter().map(|b| (b.name.clone(), command(&b, env))).collect();
    queue.push_back(("doc tests".into(), doc));
    let total = queue.len();
    let queue = Arc::new(Mutex::new(queue));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    eprintln!("running {total} test jobs, {jobs} at a time");
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (queue, outcomes) = (queue.clone(), outcomes.clone());
            std::thread::spawn(move || {
                loop {
                    let Some((name, mut cmd)) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                        return;
                    };
                    let started = Instant::now();
                    let result = cmd.stdin(Stdio::null()).output();
                    let (ok, output) = match result {
                        Ok(out) => (
                            out.status.success(),
                            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
                        ),
                        Err(e) => (false, format!("cannot run: {e}")),
                    };
                    let took = started.elapsed();
                    eprintln!("{} {name} ({:.1}s)", if ok { "ok    " } else { "FAILED" }, took.as_secs_f64());
                    outcomes.lock().unwrap_or_else(|p| p.into_inner()).push(Outcome { name, ok, took, output });
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap_or_else(|p| p.into_inner()));
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok).collect();
    for o in &failed {
        eprintln!("\n---- {} (failed after {:.1}s) ----\n{}", o.name, o.took.as_secs_f64(), o.output);
    }
    let mut slowest: Vec<&Outcome> = outcomes.iter().collect();
    slowest.sort_by_key(|o| std::cmp::Reverse(o.took));
    eprintln!("\nslowest test jobs:");
    for o in slowest.iter().take(8) {
        eprintln!("  {:>6.1}s {}", o.took.as_secs_f64(), o.name);
    }
    if outcomes.len() != total {
        bail!("{} of {total} test jobs did not report", total - outcomes.len());
    }
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|o| o.name.as_str()).collect();
        bail!("{} of {total} test jobs failed: {}", failed.len(), names.join(", "));
    }
    eprintln!("all {total} test jobs passed");
    Ok(())
}

/// The binary run as `cargo test` runs it.
fn command(binary: &TestBinary, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(&binary.executable);
    cmd.current_dir(&binary.package_dir)
        .env("CARGO_MANIFEST_DIR", &binary.package_dir)
        .env("CARGO_PKG_NAME", &binary.package_name)
        .env("CARGO_PKG_VERSION", &binary.package_version)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}
