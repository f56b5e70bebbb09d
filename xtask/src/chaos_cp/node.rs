//! The scenarios' wasmlet node: built in the profile asked for, started on
//! the chaos test bed with its own root directory, pod interface and port,
//! killed and started again with the same arguments; and a prober that
//! keeps asking an HTTP pod for `/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Node as NodeObject, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wasmlet_testbed::{Testbed, host_ip};

use super::Common;
use crate::bench_pods::Profile;
use crate::steps::{cargo_target_dir, exec, repo_root};

/// The node's pod interface (its own, so that it never shares addresses
/// with another test bed's nodes).
const INTERFACE: &str = "wlchaos0";
/// How long the node may take to become Ready.
const READY_LIMIT: Duration = Duration::from_secs(180);

/// What a pod runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Workload {
    /// `forever`, a tick an hour.
    Idle,
    /// `exit-code` exiting with this code.
    Exit(i32),
    /// `http-hello` on port 8080.
    Http,
}

/// A running wasmlet node.
pub(crate) struct Node {
    pub(crate) name: String,
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    registry: String,
}

impl Node {
    /// Builds wasmlet, starts it and waits until the Node is Ready.
    pub(crate) async fn start(tb: &Testbed, common: &Common, max_pods: usize) -> anyhow::Result<Node> {
        let bin = match &common.wasmlet_bin {
            Some(bin) => bin.clone(),
            None => build(common.profile)?,
        };
        // A node (and namespace) of its own per run: a kept test bed may
        // still hold an earlier run's Node and pods.
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let name = format!("chaos-{secs}");
        let ip = host_ip();
        let creds = tb.node_credentials(&name, &[ip])?;
        let work = tb.dir().join("chaos");
        let root = work.join("root");
        // A fresh root: nothing recovered from an earlier run.
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&work)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let args = vec![
            format!("--kubeconfig={}", creds.kubeconfig.display()),
            format!("--node-name={name}"),
            format!("--node-ip={ip}"),
            format!("--root-dir={}", root.display()),
            format!("--port={port}"),
            format!("--tls-cert-file={}", creds.serving.cert.display()),
            format!("--tls-private-key-file={}", creds.serving.key.display()),
            format!("--insecure-registries={}", tb.registry()),
            format!("--registry-ca-file={}", tb.ca_cert().display()),
            format!("--pod-interface={INTERFACE}"),
            format!("--max-pods={max_pods}"),
            // A nearly full build disk (other builds share it) must not make
            // the node evict its pods: disk pressure is not these scenarios' subject.
            "--eviction-hard=memory.available<100Mi,nodefs.available<100Mi".to_owned(),
        ];
        // A log of its own per run (a kept test bed holds earlier runs').
        let log = work.join(format!("wasmlet-{name}.log"));
        let mut node = Node { name, bin, args, log, child: None, registry: tb.registry() };
        node.respawn(tb)?;
        node.wait_ready(tb).await?;
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(tb.admin_client().await?);
        let ns = serde_json::from_value(json!({ "metadata": { "name": node.name } }))?;
        namespaces.create(&PostParams::default(), &ns).await.context("creating the run's namespace")?;
        Ok(node)
    }

    /// The pods of the run's namespace (named after the node).
    pub(crate) async fn pods(&self, tb: &Testbed) -> anyhow::Result<Api<Pod>> {
        Ok(Api::namespaced(tb.admin_client().await?, &self.name))
    }

    /// Starts the process (again) with the same arguments.
    pub(crate) fn respawn(&mut self, tb: &Testbed) -> anyhow::Result<()> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&self.bin);
        crate::bench::server_env(&mut cmd);
        if let Ok(filter) = std::env::var("WASMLET_LOG") {
            cmd.env("WASMLET_LOG", filter);
        }
        let child = cmd.args(&self.args).stdin(Stdio::null()).stdout(out).stderr(err).spawn()?;
        wasmlet_testbed::process::record_pid(tb.dir(), "wasmlet-chaos", child.id())?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the Node is Ready; how long that took.
    pub(crate) async fn wait_ready(&mut self, tb: &Testbed) -> anyhow::Result<Duration> {
        let nodes: Api<NodeObject> = Api::all(tb.admin_client().await?);
        let started = Instant::now();
        loop {
            if !self.alive() {
                bail!("wasmlet exited; see {}", self.log.display());
            }
            let node = nodes.get(&self.name).await.ok();
            let ready = node
                .and_then(|n| n.status?.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            if ready {
                return Ok(started.elapsed());
            }
            if started.elapsed() > READY_LIMIT {
                bail!("node {} not Ready after {READY_LIMIT:?}; see {}", self.name, self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The agent's pid (0 once it has exited).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the agent still runs.
    pub(crate) fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `kill -9`.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (an agent restart); waits for the exit.
    pub(crate) fn sigterm(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).ok()?);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        child.wait().ok()
    }

    /// Stops the agent at the end of a scenario and removes its pod interface.
    pub(crate) fn stop(&mut self) {
        let _ = self.sigterm();
        let _ = Command::new("ip").args(["link", "del", INTERFACE]).output();
    }

    /// How many lines of the agent's log contain `needle`.
    pub(crate) fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().filter(|l| l.contains(needle)).count()
    }

    /// Creates pod `name` running `workload` on this node.
    pub(crate) async fn create(
        &self,
        api: &Api<Pod>,
        name: &str,
        workload: Workload,
        policy: &str,
    ) -> anyhow::Result<()> {
        let reg = &self.registry;
        let container = match workload {
            Workload::Idle => json!({
                "name": "main", "image": format!("{reg}/fixtures/forever:v1"),
                "env": [{"name": "TICK_MS", "value": "3600000"}],
            }),
            Workload::Exit(code) => json!({
                "name": "main", "image": format!("{reg}/fixtures/exit-code:v1"),
                "env": [{"name": "EXIT_CODE", "value": code.to_string()}],
            }),
            Workload::Http => json!({
                "name": "main", "image": format!("{reg}/fixtures/http-hello:v1"),
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 5},
            }),
        };
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": self.name },
            "spec": {
                "nodeName": self.name,
                "restartPolicy": policy,
                "tolerations": [{ "operator": "Exists" }],
                "containers": [container],
            }
        }))?;
        api.create(&PostParams::default(), &pod).await.with_context(|| format!("creating pod {name}"))?;
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Builds the wasmlet binary in `profile`; its path.
fn build(profile: Profile) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "wasmlet"]).current_dir(repo_root());
    let dir = match profile {
        Profile::Release => {
            cmd.arg("--release");
            "release"
        }
        Profile::Debug => "debug",
    };
    exec(&mut cmd, "building wasmlet")?;
    Ok(cargo_target_dir().join(dir).join("wasmlet"))
}

/// Asks an HTTP pod for `/` every 200 ms on its own task.
pub(crate) struct Prober {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl Prober {
    pub(crate) fn start(addr: SocketAddr) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_secs(5), get(addr)).await {
                    Ok(Ok(true)) => ok += 1,
                    Ok(Ok(false)) => failed.push("not 200".to_owned()),
                    Ok(Err(e)) => failed.push(e.to_string()),
                    Err(_) => failed.push("timed out".to_owned()),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (ok, failed)
        });
        Prober { stop, task }
    }

    /// Stops probing: (answers, failures).
    pub(crate) async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

/// One `GET /` over a fresh connection: whether it answered 200.
async fn get(addr: SocketAddr) -> std::io::Result<bool> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(format!("GET / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes()).await?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await?;
    Ok(raw.starts_with(b"HTTP/1.1 200"))
}
