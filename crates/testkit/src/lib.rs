//! Helpers for integration tests against the real test bed.
//!
//! - [`testbed()`] finds the test bed of this test run: the one named by
//!   `WASMLET_TESTBED_DIR` (what `cargo xtask test` sets), or else it runs
//!   `cargo xtask testbed up` once, which starts one or reuses the running one.
//! - [`Namespace`] is a fresh namespace per test, deleted when dropped.
//! - [`wait`] waits for a condition on an object with a timeout, and on
//!   timeout reports the object and the tail of every component's log.

pub mod agent;
pub mod http;
pub mod kubelet_api;
mod namespace;
pub mod node;
pub mod pods;
pub mod slowfs;
pub mod wait;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, bail};
pub use namespace::Namespace;
pub use node::WasmletNode;
use tokio::sync::OnceCell;
pub use wasmlet_testbed::{Testbed, fixtures::Fixture};

static TESTBED: OnceCell<Testbed> = OnceCell::const_new();
static TRACING: OnceLock<()> = OnceLock::new();

/// Installs a test tracing subscriber once (filter from `RUST_LOG`, default
/// warn), and the process's rustls crypto provider (two are linked, so
/// rustls cannot pick one itself; the agent uses the same).
pub fn trace_init() {
    TRACING.get_or_init(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}

/// The test bed of this test run (started or reused once per process).
pub async fn testbed() -> &'static Testbed {
    trace_init();
    match TESTBED.get_or_try_init(find_or_start).await {
        Ok(tb) => tb,
        Err(e) => panic!("no test bed: {e:#}"),
    }
}

async fn find_or_start() -> anyhow::Result<Testbed> {
    let dir = match std::env::var_os("WASMLET_TESTBED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => start_with_xtask()?,
    };
    let tb = Testbed::open(&dir)?;
    if !tb.healthy().await {
        bail!("the test bed in {} is not healthy:\n{}", dir.display(), tb.log_tails(20));
    }
    Ok(tb)
}

/// Runs `cargo xtask testbed up` and returns the directory it reports.
fn start_with_xtask() -> anyhow::Result<PathBuf> {
    let root = repo_root();
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["xtask", "testbed", "up"])
        .current_dir(&root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo xtask testbed up")?;
    if !out.status.success() {
        bail!("cargo xtask testbed up failed ({})", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export WASMLET_TESTBED_DIR=").map(PathBuf::from))
        .context("cargo xtask testbed up printed no WASMLET_TESTBED_DIR")
}

/// Builds (or finds cached) a Go tool with its `tools/*/build.sh` script
/// (relative to the repository) and returns the bin dir it prints last.
pub fn tool_bin_dir(script: &str) -> PathBuf {
    let out = std::process::Command::new(repo_root().join(script))
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    assert!(out.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().expect("a bin dir").trim())
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the built fixtures are (`WASMLET_FIXTURES_DIR`, else `target/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("WASMLET_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target").join("fixtures"))
}

/// The fixture manifest.
pub fn fixtures() -> Vec<Fixture> {
    let path = repo_root().join("fixtures").join("fixtures.toml");
    match wasmlet_testbed::fixtures::load_manifest(&path) {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    }
}

/// One fixture by name.
pub fn fixture(name: &str) -> Fixture {
    fixtures().into_iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no fixture named {name}"))
}

/// The image reference of a fixture in the plain registry.
pub async fn fixture_image(name: &str) -> String {
    wasmlet_testbed::fixtures::reference(testbed().await, name)
}

/// A cluster-admin client.
pub async fn admin_client() -> kube::Client {
    match testbed().await.admin_client().await {
        Ok(c) => c,
        Err(e) => panic!("admin client: {e}"),
    }
}
