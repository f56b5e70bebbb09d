//! The Debian package: built from this test build's binary by
//! `deploy/deb/build.sh`, installed with dpkg into a scratch root (its own
//! dpkg database), its unit checked by `systemd-analyze verify`, and its
//! `ExecStart` line run — as systemd would, with `WASMLET_EXTRA_ARGS` from
//! the installed `/etc/default/wasmlet` — against the test bed with a
//! bootstrap token, until the Node is Ready and a pod runs; then the SIGTERM
//! systemd sends on stop drains the pods and wasmlet exits 0.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use wasmlet_testkit::node::{TEST_EVICTION_HARD, node_ready};
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, admin_client, fixture_image, repo_root, testbed, wait};

/// How long the node may take to bootstrap and become Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the .deb and installs it under `root`; the .deb's path.
fn build_and_install(root: &Path, out: &Path) -> PathBuf {
    // A debug binary is large: no compression saves the test ~15 s.
    let stdout = run(Command::new(repo_root().join("deploy/deb/build.sh"))
        .arg(env!("CARGO_BIN_EXE_wasmlet"))
        .arg(out)
        .env("WASMLET_DEB_COMPRESSION", "none"));
    let deb = PathBuf::from(stdout.lines().last().expect("the .deb path").trim());
    let admin = root.join("var/lib/dpkg");
    for dir in ["updates", "info"] {
        std::fs::create_dir_all(admin.join(dir)).unwrap();
    }
    std::fs::write(admin.join("status"), "").unwrap();
    // The scratch root's database knows no libc6: the dependency is the host's.
    run(Command::new("dpkg")
        .arg(format!("--instdir={}", root.display()))
        .arg(format!("--admindir={}", admin.display()))
        .args(["--force-depends", "--force-script-chrootless", "-i"])
        .arg(&deb));
    let status = run(Command::new("dpkg").arg(format!("--admindir={}", admin.display())).args(["-s", "wasmlet"]));
    assert!(status.contains("Status: install ok installed"), "{status}");
    deb
}

/// `ExecStart` of the installed unit, as systemd would run it: the unit's
/// absolute paths re-rooted under `root`, `$WASMLET_EXTRA_ARGS` split from
/// the installed environment file.
fn exec_start(root: &Path) -> Vec<String> {
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/wasmlet.service")).unwrap();
    let line = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("an ExecStart line");
    let env = std::fs::read_to_string(root.join("etc/default/wasmlet")).unwrap();
    let extra = env.lines().find_map(|l| l.strip_prefix("WASMLET_EXTRA_ARGS=")).unwrap_or("");
    let reroot = |word: &str| match word.split_once("=/") {
        Some((flag, path)) => format!("{flag}={}/{path}", root.display()),
        None if word.starts_with('/') => format!("{}{word}", root.display()),
        None => word.to_owned(),
    };
    line.split_whitespace()
        .flat_map(|w| match w {
            "$WASMLET_EXTRA_ARGS" => extra.split_whitespace().map(str::to_owned).collect(),
            unit_word => vec![reroot(unit_word)],
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn the_package_installs_and_its_unit_runs_a_node_that_drains_on_sigterm() {
    let tb = testbed().await;
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("root");
    build_and_install(&root, &scratch.path().join("out"));
    for file in [
        "usr/bin/wasmlet",
        "etc/wasmlet/kubelet-config.yaml",
        "etc/wasmlet/wasmlet.yaml",
        "usr/share/wasmlet/runtimeclass.yaml",
    ] {
        assert!(root.join(file).is_file(), "{file} not installed");
    }

    // The unit, with its ExecStart pointing at the installed binary.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/wasmlet.service")).unwrap();
    let checked = scratch.path().join("wasmlet.service");
    std::fs::write(&checked, unit.replace("/usr/bin/wasmlet", &root.join("usr/bin/wasmlet").display().to_string()))
        .unwrap();
    let verify = Command::new("systemd-analyze").arg("verify").arg(&checked).output().unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success() && complaints.trim().is_empty(), "systemd-analyze verify: {complaints}");
    for line in ["KillMode=mixed", "KillSignal=SIGTERM", "Restart=always", "StateDirectory=wasmlet"] {
        assert!(unit.lines().any(|l| l == line), "{line} missing from the unit");
    }

    // What an operator provides: a bootstrap kubeconfig and this node's flags.
    let token = tb.create_bootstrap_token(Duration::from_secs(3600)).await.unwrap();
    tb.write_bootstrap_kubeconfig(&root.join("etc/wasmlet/bootstrap-kubelet.conf"), &token).unwrap();
    let name = format!("pkg-{}", std::process::id());
    let healthz = free_port();
    let extra = format!(
        "--node-name={name} --node-ip={} --port={} --healthz-port={healthz} --insecure-registries={} --registry-ca-file={}",
        wasmlet_testbed::host_ip(),
        free_port(),
        tb.registry(),
        tb.ca_cert().display()
    );
    std::fs::write(root.join("etc/default/wasmlet"), format!("WASMLET_EXTRA_ARGS={extra}\n")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/wasmlet")).unwrap();

    let argv = exec_start(&root);
    let log = scratch.path().join("wasmlet.log");
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("WASMLET_EVICTION_HARD", TEST_EVICTION_HARD)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    let nodes: Api<Node> = Api::all(admin_client().await);
    let is_ready = |n: Option<&Node>| node_ready(n) == Some("True");
    let ready = tokio::select! {
        ready = wait::try_for_object(&nodes, &name, READY_TIMEOUT, is_ready) => ready.is_ok(),
        // An exit (a bad configuration) ends the wait at once.
        () = async { while matches!(child.try_wait(), Ok(None)) { tokio::time::sleep(Duration::from_millis(200)).await } } => false,
    };
    assert!(ready, "node {name} not Ready; wasmlet's log:\n{}", log_text());
    assert!(root.join("etc/wasmlet/kubelet.conf").is_file(), "bootstrapping wrote no kubeconfig");
    let ok = wasmlet_testkit::http::get(([127, 0, 0, 1], healthz).into(), "/healthz").await.unwrap();
    assert_eq!((ok.status, ok.body.as_str()), (200, "ok"));

    let ns = Namespace::create(&admin_client().await, "pkg").await;
    pods::create(&ns, pods::bare("idle", &name, &fixture_image("forever").await, &[], "Always")).await;
    pods::wait_for(&ns.api::<Pod>(), "idle", POD_TIMEOUT, log_text, |p| pods::running(p, "main")).await;

    // systemctl stop: SIGTERM to the main process (KillMode=mixed).
    let pid = i32::try_from(child.id()).unwrap();
    run(Command::new("kill").args(["-TERM", &pid.to_string()]));
    let status = tokio::time::timeout(Duration::from_secs(90), tokio::task::spawn_blocking(move || child.wait()))
        .await
        .expect("wasmlet exits within TimeoutStopSec")
        .unwrap()
        .unwrap();
    let text = log_text();
    assert!(status.success(), "exit {status}; log:\n{text}");
    assert!(text.contains("pods stopped; stopping the kubelet API and heartbeat"), "{text}");
}
