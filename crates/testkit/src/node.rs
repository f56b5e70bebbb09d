//! A real `wasmlet` process joined to the test bed, for end-to-end tests.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::DeleteParams;
use rand::Rng;

use crate::{testbed, wait};

/// The hard eviction thresholds of test nodes (see `spawn`), unless
/// `WASMLET_EVICTION_HARD` or a flag says otherwise.
pub const TEST_EVICTION_HARD: &str = "memory.available<100Mi,nodefs.available<1%";

/// How long a node may take to become Ready after its process starts.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// How to start a node beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra command-line arguments.
    pub args: Vec<String>,
    /// Extra environment variables of the process.
    pub env: Vec<(String, String)>,
    /// Start without `--tls-cert-file`/`--tls-private-key-file` (e.g. for
    /// `--rotate-server-certificates`, which excludes them).
    pub no_static_tls: bool,
    /// The node's root directory (`--root-dir`), e.g. one with a test
    /// filesystem mounted in it; by default a new temporary directory.
    pub root_dir: Option<PathBuf>,
    /// Plain-HTTP registries besides the test bed's (e.g. a
    /// `registry_proxy` on loopback), added to `--insecure-registries`.
    pub insecure_registries: Vec<String>,
}

/// A wasmlet node: the process, its root directory and log.
pub struct WasmletNode {
    /// The node name (unique per test run).
    pub name: String,
    /// The kubelet API port.
    pub port: u16,
    /// The node IP (the host's primary address, so the apiserver may proxy to it).
    pub ip: IpAddr,
    /// Its root directory (kept across restarts of the process).
    pub root: PathBuf,
    bin: PathBuf,
    log: PathBuf,
    kubeconfig: PathBuf,
    extra: Vec<String>,
    env: Vec<(String, String)>,
    static_tls: bool,
    admin_kubeconfig: PathBuf,
    registry: String,
    insecure_registries: Vec<String>,
    ca: PathBuf,
    testbed_dir: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl WasmletNode {
    /// Starts `bin` (the wasmlet binary) as a new node named `<prefix>-<random>`
    /// with credentials from the test bed, and waits until it is Ready.
    pub async fn start(bin: impl AsRef<Path>, prefix: &str) -> Self {
        Self::start_with(bin, prefix, &[]).await
    }

    /// Like [`start`](Self::start), with extra command-line arguments.
    pub async fn start_with(bin: impl AsRef<Path>, prefix: &str, extra: &[&str]) -> Self {
        let options = Options { args: extra.iter().map(|s| s.to_string()).collect(), ..Options::default() };
        Self::start_with_options(bin, prefix, options).await
    }

    /// Like [`start`](Self::start), with [`Options`].
    pub async fn start_with_options(bin: impl AsRef<Path>, prefix: &str, options: Options) -> Self {
        let bin = bin.as_ref();
        let tb = testbed().await;
        let suffix: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(5).map(char::from).collect();
        let name = format!("{prefix}-{}", suffix.to_lowercase());
        let ip = wasmlet_testbed::host_ip();
        let creds = tb.node_credentials(&name, &[ip]).unwrap_or_else(|e| panic!("node credentials: {e}"));
        let dir = tempfile::Builder::new().prefix("wasmlet-node-").tempdir().expect("temp dir");
        let mut node = Self {
            name,
            port: free_port(),
            ip,
            root: options.root_dir.clone().unwrap_or_else(|| dir.path().join("root")),
            bin: bin.to_owned(),
            log: dir.path().join("wasmlet.log"),
            kubeconfig: creds.kubeconfig.clone(),
            extra: options.args,
            env: options.env,
            static_tls: !options.no_static_tls,
            admin_kubeconfig: tb.admin_kubeconfig(),
            registry: tb.registry(),
            insecure_registries: options.insecure_registries,
            ca: tb.ca_cert(),
            testbed_dir: tb.dir().to_owned(),
            child: None,
            _dir: dir,
        };
        node.spawn(&creds.serving.cert, &creds.serving.key);
        node.wait_ready().await;
        node
    }

    fn spawn(&mut self, cert: &Path, key: &Path) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let err = log.try_clone().expect("log file");
        let mut command = Command::new(&self.bin);
        if self.static_tls {
            command
                .arg(format!("--tls-cert-file={}", cert.display()))
                .arg(format!("--tls-private-key-file={}", key.display()));
        }
        // Many test nodes share this host: none binds the plain healthz port
        // (127.0.0.1:10248) unless its test gives a configuration of its own.
        if !self.extra.iter().any(|a| a.starts_with("--config") || a.starts_with("--healthz-port")) {
            command.env("WASMLET_HEALTHZ_PORT", "0");
        }
        let child = command
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--node-name={}", self.name))
            .arg(format!("--node-ip={}", self.ip))
            .arg(format!("--root-dir={}", self.root.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!(
                "--insecure-registries={}",
                std::iter::once(&self.registry).chain(&self.insecure_registries).cloned().collect::<Vec<_>>().join(",")
            ))
            .arg(format!("--registry-ca-file={}", self.ca.display()))
            .args(&self.extra)
            .env("WASMLET_LOG", std::env::var("WASMLET_LOG").unwrap_or_else(|_| "info".into()))
            // Test nodes share the build machine's disk, which a workspace's
            // build artefacts can push under the 10 % (15 % imagefs) defaults;
            // a node with DiskPressure is tainted, refuses pods and evicts
            // them. No test here is about disk pressure, so the only disk
            // threshold is nodefs at 1 % (a given --eviction-hard replaces
            // all the defaults, as upstream); memory keeps its default.
            .env(
                "WASMLET_EVICTION_HARD",
                std::env::var("WASMLET_EVICTION_HARD").unwrap_or_else(|_| TEST_EVICTION_HARD.into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.bin.display()));
        // Recorded in the test bed, so that `testbed down` stops a node a test leaked.
        let _ = wasmlet_testbed::process::record_pid(&self.testbed_dir, &self.pid_name(), child.id());
        self.child = Some(child);
    }

    /// Waits until the Node reports Ready=True.
    pub async fn wait_ready(&self) {
        let nodes: Api<Node> = Api::all(crate::admin_client().await);
        let ok = wait::try_for_object(&nodes, &self.name, READY_TIMEOUT, |n| node_ready(n) == Some("True")).await;
        if let Err(last) = ok {
            panic!("node {} not Ready: {last:#?}\nwasmlet log:\n{}", self.name, self.log_tail(60));
        }
    }

    /// The agent's process ID, while it runs (and has not exited).
    pub fn pid(&mut self) -> Option<u32> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("node runs");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status = child.wait().expect("waiting for wasmlet");
        self.child = None;
        let _ = wasmlet_testbed::process::stop(&self.testbed_dir, &self.pid_name());
        status
    }

    /// Kills the process with SIGKILL (`kill -9`).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = wasmlet_testbed::process::stop(&self.testbed_dir, &self.pid_name());
    }

    fn pid_name(&self) -> String {
        format!("wasmlet-{}", self.name)
    }

    /// Starts the process again with the same name, root directory and port,
    /// and waits until its kubelet API listens and the Node is Ready.
    pub async fn restart(&mut self) {
        let tb = testbed().await;
        let creds = tb.node_credentials(&self.name, &[self.ip]).expect("node credentials");
        self.spawn(&creds.serving.cert, &creds.serving.key);
        let addr = std::net::SocketAddr::new(self.ip, self.port);
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        let listening = tokio::time::timeout(READY_TIMEOUT, async {
            loop {
                poll.tick().await;
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    break;
                }
            }
        })
        .await;
        assert!(listening.is_ok(), "the restarted wasmlet never listened on {addr}\n{}", self.log_tail(60));
        self.wait_ready().await;
    }

    /// The end of the agent's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The whole agent log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WasmletNode {
    fn drop(&mut self) {
        self.kill();
        let name = self.name.clone();
        let kubeconfig = self.admin_kubeconfig.clone();
        // As for namespaces: a runtime and client of our own (see Namespace's Drop).
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = wasmlet_testbed::client_from_kubeconfig(&kubeconfig).await {
                    let _ = Api::<Node>::all(client).delete(&name, &DeleteParams::default()).await;
                }
            });
        })
        .join();
    }
}

/// The status of the node's Ready condition.
pub fn node_ready(node: Option<&Node>) -> Option<&str> {
    node?.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}
