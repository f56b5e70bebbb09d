//! The native workload of the kubelet+containerd peer: a small static C
//! program (`gcc -static`) in a one-layer OCI image, written as an OCI
//! image layout tarball for `ctr images import` (no public registry is
//! reachable here). Without `$EXIT_CODE` it waits for SIGTERM/SIGINT and
//! exits 0 (the idle pod, and the sandbox's pause process); with it, it
//! exits with that code at once (the run-to-completion pod).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::steps::exec;

/// The image name the pods use.
pub(crate) const IMAGE: &str = "docker.io/wasmlet-bench/native:v1";
/// The same image, named as the pod sandbox ("pause") image.
pub(crate) const PAUSE_IMAGE: &str = "docker.io/wasmlet-bench/pause:v1";
/// The program's path in the image.
pub(crate) const ENTRYPOINT: &str = "/native";

const SOURCE: &str = r#"#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static void leave(int sig) { (void)sig; _exit(0); }

int main(void) {
    const char *code = getenv("EXIT_CODE");
    if (code != NULL) return atoi(code);
    signal(SIGTERM, leave);
    signal(SIGINT, leave);
    for (;;) pause();
}
"#;

/// Compiles the program and writes the image tarball into `dir`; returns its path.
pub(crate) fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let src = dir.join("native.c");
    let bin = dir.join("native");
    std::fs::write(&src, SOURCE)?;
    exec(
        Command::new("gcc").args(["-static", "-Os", "-s", "-o"]).arg(&bin).arg(&src),
        "compiling the native workload (gcc -static; Debian: gcc, libc6-dev)",
    )?;
    let program = std::fs::read(&bin)?;
    let tarball = dir.join("native-image.tar");
    std::fs::write(&tarball, layout(&program)?).with_context(|| format!("writing {}", tarball.display()))?;
    Ok(tarball)
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A tar of `files` (path, mode, contents).
fn tar(files: &[(&str, u32, &[u8])]) -> anyhow::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *data)?;
    }
    Ok(builder.into_inner()?)
}

/// The OCI image layout (oci-layout, index.json, blobs) as a tar.
fn layout(program: &[u8]) -> anyhow::Result<Vec<u8>> {
    let layer = tar(&[(ENTRYPOINT.trim_start_matches('/'), 0o755, program)])?;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [ENTRYPOINT]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
    }))?;
    let named = |name: &str| {
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest),
            "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "v1"},
        })
    };
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [named(IMAGE), named(PAUSE_IMAGE)]}))?;
    let blob = |bytes: &[u8]| format!("blobs/sha256/{}", sha256(bytes).trim_start_matches("sha256:"));
    let (layer_path, config_path, manifest_path) = (blob(&layer), blob(&config), blob(&manifest));
    tar(&[
        ("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", 0o644, &index),
        (&layer_path, 0o644, &layer),
        (&config_path, 0o644, &config),
        (&manifest_path, 0o644, &manifest),
    ])
}
