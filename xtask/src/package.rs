//! `cargo xtask package deb [--out DIR]`: the Debian package, built from a
//! release build of `wasmlet` by `deploy/deb/build.sh` (dpkg-deb).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::steps::{cargo_target_dir, exec, repo_root};

/// What to package.
#[derive(clap::Subcommand)]
pub(crate) enum Package {
    /// The Debian package: binary, systemd unit, default configuration and
    /// the RuntimeClass manifest; prints its path.
    Deb {
        /// Where the .deb goes.
        #[arg(long, default_value = "target/deb")]
        out: PathBuf,
    },
}

pub(crate) fn run(package: Package) -> anyhow::Result<()> {
    match package {
        Package::Deb { out } => {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            exec(
                Command::new(cargo).args(["build", "--quiet", "--release", "-p", "wasmlet"]).current_dir(repo_root()),
                "building wasmlet (release)",
            )?;
            let binary = cargo_target_dir().join("release").join("wasmlet");
            let out = repo_root().join(out);
            let result = Command::new(repo_root().join("deploy/deb/build.sh"))
                .arg(&binary)
                .arg(&out)
                .stderr(std::process::Stdio::inherit())
                .output()
                .context("running deploy/deb/build.sh")?;
            if !result.status.success() {
                bail!("deploy/deb/build.sh failed ({})", result.status);
            }
            print!("{}", String::from_utf8_lossy(&result.stdout));
            Ok(())
        }
    }
}
