//! Guests read volumes the way the kubelet lays them out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio_util::sync::CancellationToken;
use wasmlet_oci::Digest;
use wasmlet_runtime::{Compiled, Config, GuestSpec, Mount, Output, Runtime};
use wasmlet_volumes::atomic::{self, FileProjection, Payload};
use wasmlet_volumes::sources::{self, Sources};
use wasmlet_volumes::{Volumes, volumes};

fn fixture() -> Vec<u8> {
    let dir = std::env::var_os("WASMLET_FIXTURES_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures"), PathBuf::from);
    let path = dir.join("read-file.wasm");
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("fixture {} is missing ({e}): build it with `make -C fixtures OUT=$PWD/target/fixtures`", path.display())
    })
}

struct Guest {
    runtime: Runtime,
    compiled: Compiled,
    out: tempfile::TempDir,
}

impl Guest {
    async fn new() -> Self {
        let runtime = Runtime::new(Config::default()).unwrap();
        let bytes = fixture();
        let compiled = runtime.compile(&Digest::of(&bytes), bytes).await.unwrap();
        Self { runtime, compiled, out: tempfile::tempdir().unwrap() }
    }

    /// Runs `read-file <args>` with `mounts`: (exit code, stdout + stderr).
    async fn read(&self, args: &[&str], mounts: Vec<Mount>) -> (i32, String) {
        let mut spec = GuestSpec::new(std::iter::once("read-file").chain(args.iter().copied()));
        let (out, err) = (self.out.path().join("stdout"), self.out.path().join("stderr"));
        spec.stdout = Output::new(tokio::fs::File::create(&out).await.unwrap());
        spec.stderr = Output::new(tokio::fs::File::create(&err).await.unwrap());
        spec.mounts = mounts;
        let run = self.runtime.run(&self.compiled, spec, CancellationToken::new());
        let exit = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap().unwrap();
        let text = std::fs::read_to_string(out).unwrap() + &std::fs::read_to_string(err).unwrap();
        (exit.code, text)
    }
}

fn payload(files: &[(&str, &str)]) -> Payload {
    files.iter().map(|(p, d)| ((*p).to_owned(), FileProjection { data: d.as_bytes().to_vec(), mode: 0o644 })).collect()
}

fn ro(host: &Path, guest: &str) -> Mount {
    Mount { host: host.to_owned(), guest: guest.to_owned(), read_only: true }
}

/// `key -> ..data/key -> ..<version>/key`: wasmtime-wasi follows symlinks
/// that stay inside the preopen, so the kubelet's layout works unchanged.
#[tokio::test]
async fn guests_read_through_the_atomic_writers_symlinks() {
    let guest = Guest::new().await;
    let vol = tempfile::tempdir().unwrap();
    atomic::write(vol.path(), &payload(&[("key", "version 1\n"), ("nested/inner", "inner 1\n")])).unwrap();
    let mounts = || vec![ro(vol.path(), "/etc/cfg")];
    assert_eq!(guest.read(&["/etc/cfg/key"], mounts()).await, (0, "version 1\n".into()));
    assert_eq!(guest.read(&["/etc/cfg/nested/inner"], mounts()).await, (0, "inner 1\n".into()));
    assert_eq!(guest.read(&["/etc/cfg/..data/key"], mounts()).await, (0, "version 1\n".into()));

    atomic::write(vol.path(), &payload(&[("key", "version 2\n")])).unwrap();
    assert_eq!(guest.read(&["/etc/cfg/key"], mounts()).await, (0, "version 2\n".into()));
    let (code, out) = guest.read(&["/etc/cfg/nested/inner"], mounts()).await;
    assert_eq!(code, 2, "a removed key is gone: {out}");

    let (code, out) = guest.read(&["/etc/cfg/key", "write"], mounts()).await;
    assert_eq!(code, 0);
    assert!(out.contains("write failed"), "read-only: {out}");
}

/// subPath directories are preopened by handle (`/proc/self/fd/<n>`), files
/// are staged; a symlink out of the volume is refused by the mount and by
/// WASI alike.
#[tokio::test]
async fn guests_use_sub_paths_and_staged_files() {
    let guest = Guest::new().await;
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    std::fs::create_dir_all(host.join("logs")).unwrap();
    std::fs::write(host.join("logs/today.txt"), "a log line\n").unwrap();
    std::fs::write(host.join("app.conf"), "conf\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", host.join("evil")).unwrap();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"containers": [], "volumes": [
            {"name": "host", "hostPath": {"path": host.to_str().unwrap()}},
            {"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}
        ]}
    }))
    .unwrap();
    let cancel = CancellationToken::new();
    let volumes = Volumes::new(offline_sources(cancel.clone()), volumes::Config::default());
    let pod_dir = tmp.path().join("pod");
    std::fs::create_dir(&pod_dir).unwrap();
    let prepared = volumes.prepare(&pod, &pod_dir).await.unwrap();
    let container: Container = serde_json::from_value(serde_json::json!({"name": "c", "volumeMounts": [
        {"name": "host", "mountPath": "/var/log/app", "subPath": "logs"},
        {"name": "host", "mountPath": "/etc/app/app.conf", "subPath": "app.conf"},
        {"name": "info", "mountPath": "/etc/app/podname", "subPath": "name"},
        {"name": "host", "mountPath": "/all"}
    ]}))
    .unwrap();
    let err = prepared.mounts(&container, &[]).unwrap_err();
    assert!(err.to_string().contains("readOnly"), "{err}");
    let mut container = container;
    container.volume_mounts.as_mut().unwrap()[1].read_only = Some(true);
    let mounts = prepared.mounts(&container, &[]).unwrap();
    assert_eq!(guest.read(&["/var/log/app/today.txt"], mounts.clone()).await, (0, "a log line\n".into()));
    assert_eq!(guest.read(&["/etc/app/app.conf"], mounts.clone()).await, (0, "conf\n".into()));
    assert_eq!(guest.read(&["/etc/app/podname"], mounts.clone()).await, (0, "p".into()));
    let (code, out) = guest.read(&["/all/evil"], mounts.clone()).await;
    assert_eq!(code, 2, "WASI refuses a symlink leaving the preopen: {out}");
    let evil =
        serde_json::json!({"name": "c", "volumeMounts": [{"name": "host", "mountPath": "/x", "subPath": "evil"}]});
    let evil: Container = serde_json::from_value(evil).unwrap();
    assert!(matches!(prepared.mounts(&evil, &[]), Err(wasmlet_volumes::MountError::Escape { .. })));
    cancel.cancel();
    prepared.cleanup().unwrap();
    assert!(host.join("logs/today.txt").exists(), "cleanup leaves hostPath volumes alone");
}

/// Sources whose API server does not exist: enough for volumes that need no
/// object.
fn offline_sources(cancel: CancellationToken) -> Sources {
    // Two rustls providers are linked into workspace test builds.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    Sources::new(client, sources::Config::default(), cancel)
}
