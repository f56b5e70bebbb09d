//! The `pod` target of `cargo xtask bench http`: the `http-hello` image as a
//! pod on a wasmlet node (release build) joined to the test bed, loaded on
//! its pod IP and containerPort 8080.
//!
//! The node (`wasmlet-bench`) gets its own pod interface (`wasmletbench0`)
//! so it does not touch the addresses of other nodes on the machine. It is
//! recorded in the test bed (so `cargo xtask testbed down` stops it too) and
//! stopped, with its pod and Node object, when the benchmark ends.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wasmlet_testbed::Testbed;
use wasmlet_testbed::process;

use crate::bench::server_env;
use crate::bench_http::{Server, wait_serving};
use crate::steps::{cargo_target_dir, exec, repo_root};
use crate::testbed::{Location, up};

/// The benchmark node's name.
const NODE: &str = "wasmlet-bench";
/// Its pod interface (at most 13 characters: wasmlet adds a peer suffix).
const POD_INTERFACE: &str = "wasmletbench0";
/// Where the pod goes.
const NAMESPACE: &str = "wasmlet-bench";
/// The pod's name.
const POD: &str = "http-hello";
/// The pod's containerPort.
const PORT: u16 = 8080;
/// How long the node and the pod may take to get ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A wasmlet node serving the benchmark pod.
pub(crate) struct PodServer {
    node: Node,
    addr: SocketAddr,
}

/// The running node; dropping it deletes the pod, stops the node and
/// deletes its Node object.
struct Node {
    tb: Testbed,
    pid: u32,
}

impl PodServer {
    /// Brings the test bed up (reusing a healthy one), starts the node and
    /// the pod, and waits until the pod IP answers.
    pub(crate) async fn start(location: &Location) -> anyhow::Result<Self> {
        let tb = match Testbed::open(&location.dir()) {
            Ok(tb) if tb.healthy().await => tb,
            _ => up(location).await?,
        };
        let bin = build_release()?;
        // A node left over from an interrupted run of the benchmark.
        process::stop(tb.dir(), NODE)?;
        let pid = start_node(&tb, &bin)?;
        let node = Node { tb, pid };
        let tb = &node.tb;
        let timeout = format!("--timeout={}s", READY_TIMEOUT.as_secs());
        wait_registered(tb)?;
        kubectl(tb, &["wait", "--for=condition=Ready", &format!("node/{NODE}"), &timeout])?;
        create_pod(tb)?;
        kubectl(tb, &["-n", NAMESPACE, "wait", "--for=condition=Ready", &format!("pod/{POD}"), &timeout])?;
        let ip: IpAddr = kubectl_output(tb, &["-n", NAMESPACE, "get", "pod", POD, "-o", "jsonpath={.status.podIP}"])?
            .trim()
            .parse()
            .context("the pod has no pod IP")?;
        let addr = SocketAddr::new(ip, PORT);
        eprintln!("pod {NAMESPACE}/{POD} runs on node {NODE} at {addr}");
        wait_serving(addr, None, &process::log_path(tb.dir(), NODE))?;
        Ok(Self { node, addr })
    }

    /// The server under test: the pod's address, the node's CPU time.
    pub(crate) fn server(&self) -> Server {
        Server { name: "wasmlet pod", url: format!("http://{}/", self.addr), pid: self.node.pid }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let tb = &self.tb;
        let _ = kubectl(tb, &["-n", NAMESPACE, "delete", "pod", POD, "--ignore-not-found", "--timeout=30s"]);
        if let Err(e) = process::stop(tb.dir(), NODE) {
            eprintln!("stopping node {NODE}: {e}");
        }
        let _ = kubectl(tb, &["delete", "node", NODE, "--ignore-not-found", "--wait=false"]);
    }
}

/// Waits until the node has registered its Node object (`kubectl wait`
/// fails at once on an object that does not exist yet).
fn wait_registered(tb: &Testbed) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match kubectl_output(tb, &["get", "node", NODE, "-o", "name"]) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn create_pod(tb: &Testbed) -> anyhow::Result<()> {
    let ns = format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{NAMESPACE}"}}}}"#);
    apply(tb, &ns)?;
    kubectl(tb, &["-n", NAMESPACE, "delete", "pod", POD, "--ignore-not-found", "--timeout=60s"])?;
    let image = format!("{}/fixtures/http-hello:v1", tb.registry());
    let toleration = |effect: &str| {
        format!(r#"{{"key":"kubernetes.io/arch","operator":"Equal","value":"wasm32","effect":"{effect}"}}"#)
    };
    let pod = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{POD}","namespace":"{NAMESPACE}"}},
        "spec":{{"nodeName":"{NODE}","terminationGracePeriodSeconds":5,
        "tolerations":[{},{}],
        "containers":[{{"name":"{POD}","image":"{image}","ports":[{{"containerPort":{PORT}}}]}}]}}}}"#,
        toleration("NoSchedule"),
        toleration("NoExecute"),
    );
    // The namespace's default service account may not exist yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match apply(tb, &pod) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

fn kubectl_cmd(tb: &Testbed) -> Command {
    let mut cmd = Command::new(tb.bin_dir().join("kubectl"));
    cmd.arg("--kubeconfig").arg(tb.admin_kubeconfig());
    cmd
}

fn kubectl(tb: &Testbed, args: &[&str]) -> anyhow::Result<()> {
    kubectl_output(tb, args).map(drop).with_context(|| {
        format!(
            "the node's log ({}) ends with:\n{}",
            process::log_path(tb.dir(), NODE).display(),
            process::log_tail(tb.dir(), NODE, 20)
        )
    })
}

fn kubectl_output(tb: &Testbed, args: &[&str]) -> anyhow::Result<String> {
    let out = kubectl_cmd(tb).args(args).output().context("running kubectl")?;
    if !out.status.success() {
        bail!("kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apply(tb: &Testbed, manifest: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = kubectl_cmd(tb)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running kubectl")?;
    child.stdin.take().context("kubectl stdin")?.write_all(manifest.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("kubectl apply failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn build_release() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    exec(
        Command::new(cargo).args(["build", "--quiet", "--release", "-p", "wasmlet"]).current_dir(repo_root()),
        "building wasmlet (release)",
    )?;
    Ok(cargo_target_dir().join("release").join("wasmlet"))
}

/// Starts the node in its own process group (with [`server_env`]),
/// recorded in the test bed as `process::Component::spawn` does; returns
/// its pid.
fn start_node(tb: &Testbed, bin: &std::path::Path) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let ip = wasmlet_testbed::host_ip();
    let creds = tb.node_credentials(NODE, &[ip])?;
    let port = TcpListener::bind("0.0.0.0:0")?.local_addr()?.port();
    let root = tb.dir().join("nodes").join(NODE).join("root");
    let log_path = process::log_path(tb.dir(), NODE);
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    let child = server_env(&mut Command::new(bin))
        .arg(format!("--kubeconfig={}", creds.kubeconfig.display()))
        .arg(format!("--node-name={NODE}"))
        .arg(format!("--node-ip={ip}"))
        .arg(format!("--root-dir={}", root.display()))
        .arg(format!("--port={port}"))
        .arg("--healthz-port=0")
        .arg(format!("--tls-cert-file={}", creds.serving.cert.display()))
        .arg(format!("--tls-private-key-file={}", creds.serving.key.display()))
        .arg(format!("--insecure-registries={}", tb.registry()))
        .arg(format!("--registry-ca-file={}", tb.ca_cert().display()))
        .arg(format!("--pod-interface={POD_INTERFACE}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id();
    // Tracked through its pid file: `testbed down` stops it too.
    process::record_pid(tb.dir(), NODE, pid)?;
    eprintln!("started wasmlet node {NODE} (pid {pid}), log: {}", log_path.display());
    Ok(pid)
}
