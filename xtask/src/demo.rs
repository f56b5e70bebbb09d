//! `cargo xtask demo`: the README's first command.
//!
//! Brings up the test bed (building what is missing), starts a wasmlet node
//! joined to it, deploys `examples/*.yaml` and shows them running, with their
//! logs. The node keeps running afterwards (`cargo xtask testbed down` stops
//! it with the rest of the test bed).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wasmlet_testbed::Testbed;
use wasmlet_testbed::process::{self, Component};

use crate::steps::{exec, repo_root};
use crate::testbed::{Location, print_exports, up};

/// The demo node's name.
const NODE: &str = "wasmlet-demo";
/// Its kubelet API port.
const PORT: u16 = 10250;
/// Where the examples go.
const NAMESPACE: &str = "demo";

pub(crate) async fn run() -> anyhow::Result<()> {
    let tb = up(&Location { dir: None, port_base: None }).await?;
    let bin = build_wasmlet()?;
    let pid = start_node(&tb, &bin)?;
    banner("nodes");
    // `kubectl wait` answers NotFound at once for a Node that has not
    // registered yet, so wait for the Node object first.
    wait_registered(&tb, pid)?;
    wait(&tb, &["wait", "--for=condition=Ready", &format!("node/{NODE}"), "--timeout=90s"])?;
    kubectl(&tb, &["get", "nodes", "-o", "wide"])?;

    banner("deploying examples/");
    let runtime_class = repo_root().join("deploy").join("runtimeclass.yaml");
    kubectl(&tb, &["apply", "--server-side", "-f", &runtime_class.display().to_string()])?;
    let ns = format!("{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{NAMESPACE}\"}}}}");
    apply_stdin(&tb, &ns, None)?;
    for example in examples()? {
        let text = std::fs::read_to_string(&example)?.replace("${WASMLET_REGISTRY}", &tb.registry());
        apply_stdin(&tb, &text, Some(NAMESPACE))?;
    }
    wait(&tb, &["-n", NAMESPACE, "wait", "--for=condition=Complete", "job/hello", "--timeout=120s"])?;
    wait(&tb, &["-n", NAMESPACE, "rollout", "status", "deployment/ticker", "--timeout=120s"])?;
    wait(&tb, &["-n", NAMESPACE, "rollout", "status", "deployment/hello-http", "--timeout=120s"])?;

    banner("pods");
    kubectl(&tb, &["-n", NAMESPACE, "get", "jobs,deployments,pods", "-o", "wide"])?;
    banner("kubectl logs job/hello");
    kubectl(&tb, &["-n", NAMESPACE, "logs", "job/hello"])?;
    banner("kubectl logs deployment/ticker --tail=3");
    wait_for_ticks(&tb)?;
    kubectl(&tb, &["-n", NAMESPACE, "logs", "deployment/ticker", "--tail=3"])?;
    banner("service hello-http: its EndpointSlice, and a GET to each endpoint");
    kubectl(&tb, &["-n", NAMESPACE, "get", "endpointslices", "-l", "kubernetes.io/service-name=hello-http"])?;
    get_each_endpoint(&tb)?;
    banner("kubectl get pod crashloop (restarts with back-off)");
    kubectl(&tb, &["-n", NAMESPACE, "get", "pod", "crashloop"])?;

    banner("use this test bed from your shell");
    print_exports(&tb);
    println!("# the node's log: {}", process::log_path(tb.dir(), NODE).display());
    println!("# stop everything with: cargo xtask testbed down");
    Ok(())
}

fn examples() -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

fn build_wasmlet() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    exec(Command::new(cargo).args(["build", "--quiet", "-p", "wasmlet"]).current_dir(repo_root()), "building wasmlet")?;
    Ok(repo_root().join("target").join("debug").join("wasmlet"))
}

/// Starts the demo node unless it already runs; its pid. It is recorded in
/// the test bed, so `testbed down` stops it.
fn start_node(tb: &Testbed, bin: &std::path::Path) -> anyhow::Result<u32> {
    if let Some(pid) = process::recorded_pid(tb.dir(), NODE).filter(|pid| process::is_alive(*pid)) {
        eprintln!("wasmlet node {NODE} already runs");
        return Ok(pid);
    }
    let ip = wasmlet_testbed::host_ip();
    let creds = tb.node_credentials(NODE, &[ip])?;
    let node = Component {
        name: NODE.into(),
        program: bin.to_owned(),
        args: vec![
            format!("--kubeconfig={}", creds.kubeconfig.display()),
            format!("--node-name={NODE}"),
            format!("--node-ip={ip}"),
            format!("--root-dir={}", tb.dir().join("nodes").join(NODE).join("root").display()),
            format!("--port={PORT}"),
            format!("--tls-cert-file={}", creds.serving.cert.display()),
            format!("--tls-private-key-file={}", creds.serving.key.display()),
            format!("--insecure-registries={}", tb.registry()),
            format!("--registry-ca-file={}", tb.ca_cert().display()),
        ],
    };
    let pid = node.spawn(tb.dir())?;
    eprintln!("started wasmlet node {NODE} (pid {pid}), log: {}", process::log_path(tb.dir(), NODE).display());
    Ok(pid)
}

/// Wait until the node's Node object exists, failing early if the node exits.
fn wait_registered(tb: &Testbed, pid: u32) -> anyhow::Result<()> {
    let log = process::log_path(tb.dir(), NODE);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = kubectl_cmd(tb).args(["get", "node", NODE, "-o", "name"]).output()?;
        if out.status.success() {
            return Ok(());
        }
        if !process::is_alive(pid) {
            bail!("wasmlet node {NODE} exited before it registered; its log: {}", log.display());
        }
        if Instant::now() > deadline {
            bail!(
                "node/{NODE} did not register within 90 s ({}); its log: {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn wait_for_ticks(tb: &Testbed) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out = kubectl_output(tb, &["-n", NAMESPACE, "logs", "deployment/ticker"])?;
        if out.lines().count() >= 3 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("the ticker pods printed fewer than 3 lines in 30 s")
}

/// `GET /` on every ready endpoint of the `hello-http` Service, straight to
/// the pod IPs (as a service proxy would).
fn get_each_endpoint(tb: &Testbed) -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let jsonpath = "{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{\"\\n\"}{end}";
    let selector = "kubernetes.io/service-name=hello-http";
    let out = kubectl_output(
        tb,
        &["-n", NAMESPACE, "get", "endpointslices", "-l", selector, "-o", &format!("jsonpath={jsonpath}")],
    )?;
    let ips: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    if ips.is_empty() {
        bail!("the hello-http Service has no ready endpoint");
    }
    for ip in ips {
        let addr = format!("{ip}:8080");
        let mut conn = std::net::TcpStream::connect(&addr).with_context(|| format!("connecting to {addr}"))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        conn.write_all(format!("GET / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())?;
        let mut response = String::new();
        conn.read_to_string(&mut response)?;
        let status = response.lines().next().unwrap_or_default();
        // The body, without chunk-size lines if the response is chunked.
        let body: Vec<&str> = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.lines().filter(|l| !l.is_empty() && !l.chars().all(|c| c.is_ascii_hexdigit())).collect())
            .unwrap_or_default();
        let body = body.join("\n");
        println!("GET http://{addr}/ -> {status} {body:?}");
    }
    Ok(())
}

fn banner(title: &str) {
    println!("\n==== {title} ====");
}

fn kubectl_cmd(tb: &Testbed) -> Command {
    let mut cmd = Command::new(tb.bin_dir().join("kubectl"));
    cmd.arg("--kubeconfig").arg(tb.admin_kubeconfig());
    cmd
}

fn kubectl(tb: &Testbed, args: &[&str]) -> anyhow::Result<()> {
    exec(kubectl_cmd(tb).args(args), "kubectl")
}

fn wait(tb: &Testbed, args: &[&str]) -> anyhow::Result<()> {
    exec(kubectl_cmd(tb).args(args), "waiting")
        .with_context(|| format!("the demo node's log: {}", process::log_path(tb.dir(), NODE).display()))
}

fn kubectl_output(tb: &Testbed, args: &[&str]) -> anyhow::Result<String> {
    let out = kubectl_cmd(tb).args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apply_stdin(tb: &Testbed, manifest: &str, namespace: Option<&str>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut cmd = kubectl_cmd(tb);
    if let Some(ns) = namespace {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd.args(["apply", "-f", "-"]).stdin(std::process::Stdio::piped()).spawn()?;
    child.stdin.take().context("kubectl stdin")?.write_all(manifest.as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("kubectl apply failed ({status})");
    }
    Ok(())
}
