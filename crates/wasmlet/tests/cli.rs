//! The command line: precedence of flags, environment and file, and exit code
//! 64 with a clear message for every bad setting — before any network access.

use std::path::Path;
use std::process::{Command, Output};

fn wasmlet() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wasmlet"));
    cmd.env_remove("KUBECONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("WASMLET_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

fn kubeconfig(dir: &Path) -> String {
    let path = dir.join("kubeconfig");
    // The server is unreachable on purpose: validation must not need it.
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://192.0.2.1:6443\n\
         users:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    path.display().to_string()
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().unwrap();
    (status.code().unwrap_or(-1), String::from_utf8_lossy(&stdout).into(), String::from_utf8_lossy(&stderr).into())
}

#[test]
fn bad_settings_exit_64_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path());
    let root = dir.path().join("root").display().to_string();
    let base = |extra: &[&str]| {
        let mut c = wasmlet();
        c.args(["--kubeconfig", &kc, "--root-dir", &root, "--node-name", "n1"]);
        if !extra.contains(&"--node-ip") {
            c.args(["--node-ip", "127.0.0.1"]);
        }
        c.args(extra);
        c
    };
    for (extra, want) in [
        (&["--port", "0"][..], "--port"),
        (&["--node-ip", "nope"][..], "--node-ip"),
        (&["--node-labels", "kubernetes.io/role=master"][..], "may not set"),
        (&["--register-with-taints", "a:Never"][..], "unknown effect"),
        (&["--tls-cert-file", "/nonexistent"][..], "go together"),
        (&["--port", "eighty"][..], "--port"),
        (&["--no-such-flag"][..], "--no-such-flag"),
    ] {
        let (code, _, err) = run(&mut base(extra));
        assert_eq!(code, 64, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    let (code, _, err) = run(wasmlet().args(["--node-name", "n1", "--node-ip", "127.0.0.1", "--root-dir", &root]));
    assert_eq!(code, 64);
    assert!(err.contains("--kubeconfig is required"), "{err}");
}

#[test]
fn flags_beat_environment_beat_file() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path());
    let file = dir.path().join("wasmlet.yaml");
    std::fs::write(
        &file,
        format!(
            "kubeconfig: {kc}\nnodeName: from-file\nnodeIP: 127.0.0.1\nmaxPods: 5\nrootDir: {}\n",
            dir.path().join("r").display()
        ),
    )
    .unwrap();
    let file = file.display().to_string();

    let (code, out, err) = run(wasmlet().args(["--config", &file, "--validate-only"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("node_name: \"from-file\"") && out.contains("max_pods: 5"), "{out}");

    let (_, out, _) = run(wasmlet().args(["--config", &file, "--validate-only"]).env("WASMLET_NODE_NAME", "from-env"));
    assert!(out.contains("node_name: \"from-env\""), "{out}");

    let (_, out, _) = run(wasmlet()
        .args(["--config", &file, "--validate-only", "--node-name", "from-flag"])
        .env("WASMLET_NODE_NAME", "from-env"));
    assert!(out.contains("node_name: \"from-flag\""), "{out}");
    assert!(out.contains("max_pods: 5"), "the file still fills the rest: {out}");
}
