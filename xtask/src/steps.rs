//! Build steps shared by the commands: system packages, control plane, fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The repository root (the parent of `xtask/`).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Where build products that are not cargo's go.
pub(crate) fn fixtures_dir() -> PathBuf {
    repo_root().join("target").join("fixtures")
}

/// cargo's target directory: `$CARGO_TARGET_DIR`, else `target/` in the repository.
pub(crate) fn cargo_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { repo_root().join(dir) }
        }
        _ => repo_root().join("target"),
    }
}

/// Runs a build script of `tools/` that prints its bin directory as the
/// last line of stdout (`tools/k8s/build.sh`, `tools/kwok/build.sh`, ...).
pub(crate) fn tool_bin_dir(script: &str, args: &[&str]) -> anyhow::Result<PathBuf> {
    let out = Command::new(repo_root().join(script))
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {script}"))?;
    if !out.status.success() {
        bail!("{script} {} failed ({})", args.join(" "), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bin = stdout.lines().last().with_context(|| format!("{script} printed no bin directory"))?;
    Ok(PathBuf::from(bin.trim()))
}

/// Installs the Debian packages the test bed needs (no-op when present).
pub(crate) fn apt_deps() -> anyhow::Result<()> {
    exec(&mut Command::new(repo_root().join("tools/setup/apt-deps.sh")), "installing system packages")
}

/// Builds the control plane if it is not cached yet; returns its bin directory.
pub(crate) fn control_plane() -> anyhow::Result<PathBuf> {
    tool_bin_dir("tools/k8s/build.sh", &[])
}

/// Builds the CSI test-bed binaries (mock driver, csi-provisioner,
/// csi-attacher) if they are not cached yet; returns their bin directory.
pub(crate) fn csi_tools() -> anyhow::Result<PathBuf> {
    let out = Command::new(repo_root().join("tools/csi/build.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running tools/csi/build.sh")?;
    if !out.status.success() {
        bail!("building the CSI tools failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bin = stdout.lines().last().context("tools/csi/build.sh printed no bin directory")?;
    Ok(PathBuf::from(bin.trim()))
}

/// Builds the device plugins of the test bed (generic-device-plugin,
/// dra-test-driver) if they are not cached yet; returns their bin directory.
pub(crate) fn devices_tools() -> anyhow::Result<PathBuf> {
    tool_bin_dir("tools/devices/build.sh", &[])
}

/// Builds the wasm fixtures (incrementally); returns their directory.
pub(crate) fn build_fixtures() -> anyhow::Result<PathBuf> {
    let out = fixtures_dir();
    let mut make = Command::new("make");
    make.arg("-s").arg("-C").arg(repo_root().join("fixtures")).arg(format!("OUT={}", out.display()));
    exec(&mut make, "building wasm fixtures")?;
    Ok(out)
}

/// Runs a command, failing with `what` when it does not succeed.
pub(crate) fn exec(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    tracing::debug!(?cmd, "running");
    let status = cmd.status().with_context(|| format!("{what}: starting {cmd:?}"))?;
    if !status.success() {
        bail!("{what} failed: {cmd:?} exited with {status}");
    }
    Ok(())
}
