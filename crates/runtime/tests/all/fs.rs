//! Mounts (read-only and writable) and the working directory.

use std::path::Path;

use wasmlet_runtime::{ExitReason, Mount, StartError};

use crate::{compile, run, runtime, spec};

const CONTENT: &str = "hello from the host\n";
const APPENDED: &str = "written by read-file fixture\n";

fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), CONTENT).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/inner.txt"), "inner file\n").unwrap();
    dir
}

fn mount(host: &Path, read_only: bool) -> Mount {
    Mount { host: host.to_owned(), guest: "/data".to_owned(), read_only }
}

async fn read_file(argv: &[&str], mounts: Vec<Mount>, working_dir: Option<&str>) -> (i32, String) {
    let runtime = runtime();
    let compiled = compile(&runtime, "read-file.wasm").await;
    let (mut spec, stdout, stderr) = spec(argv, &[]);
    spec.mounts = mounts;
    spec.working_dir = working_dir.map(str::to_owned);
    let exit = run(&runtime, &compiled, spec).await.unwrap();
    assert_eq!(exit.reason, ExitReason::Exited, "{exit:?}");
    (exit.code, format!("{}{}", stdout.text(), stderr.text()))
}

#[tokio::test]
async fn read_only_mount_cannot_be_written() {
    let dir = data_dir();
    let argv = ["read-file", "/data/input.txt", "write"];
    let (code, out) = read_file(&argv, vec![mount(dir.path(), true)], None).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with(CONTENT), "{out}");
    assert!(out.contains("write failed: "), "{out}");
    let file = std::fs::read_to_string(dir.path().join("input.txt")).unwrap();
    assert_eq!(file, CONTENT, "the host file must be unchanged");
}

#[tokio::test]
async fn writable_mount_can_be_written() {
    let dir = data_dir();
    let argv = ["read-file", "/data/input.txt", "write"];
    let (code, out) = read_file(&argv, vec![mount(dir.path(), false)], None).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("write ok"), "{out}");
    let file = std::fs::read_to_string(dir.path().join("input.txt")).unwrap();
    assert_eq!(file, format!("{CONTENT}{APPENDED}"));
}

#[tokio::test]
async fn unmounted_path_cannot_be_read() {
    let (code, out) = read_file(&["read-file"], vec![], None).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("cannot open /data/input.txt"), "{out}");
}

#[tokio::test]
async fn relative_paths_resolve_in_the_working_dir() {
    let dir = data_dir();
    let mounts = || vec![mount(dir.path(), false)];
    let (code, out) = read_file(&["read-file", "input.txt"], mounts(), Some("/data")).await;
    assert_eq!((code, out.as_str()), (0, CONTENT));
    let (code, out) = read_file(&["read-file", "inner.txt"], mounts(), Some("/data/sub")).await;
    assert_eq!((code, out.as_str()), (0, "inner file\n"));
    // The same relative path without a working directory finds nothing.
    let (code, out) = read_file(&["read-file", "input.txt"], mounts(), None).await;
    assert_eq!(code, 2, "{out}");
}

#[tokio::test]
async fn working_dir_of_a_read_only_mount_stays_read_only() {
    let dir = data_dir();
    let argv = ["read-file", "input.txt", "write"];
    let (code, out) = read_file(&argv, vec![mount(dir.path(), true)], Some("/data")).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("write failed: "), "{out}");
    let file = std::fs::read_to_string(dir.path().join("input.txt")).unwrap();
    assert_eq!(file, CONTENT);
}

#[tokio::test]
async fn working_dir_sets_pwd() {
    let runtime = runtime();
    let compiled = compile(&runtime, "args-env.wasm").await;
    let (mut spec, stdout, _) = spec(&["args-env"], &[]);
    spec.working_dir = Some("/app".to_owned());
    let exit = run(&runtime, &compiled, spec).await.unwrap();
    assert_eq!(exit.code, 0);
    assert!(stdout.text().contains("env PWD=/app\n"), "{}", stdout.text());
}

#[tokio::test]
async fn missing_mount_directory_is_a_start_error() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let compiled = compile(&runtime, "read-file.wasm").await;
    let (mut spec, _, _) = spec(&["read-file"], &[]);
    spec.mounts = vec![mount(&dir.path().join("nope"), false)];
    let err = run(&runtime, &compiled, spec).await.unwrap_err();
    assert!(matches!(err, StartError::Mount { .. }), "{err:?}");
    assert!(err.to_string().contains("/data"), "{err}");
}
