//! Starting, finding and stopping a test bed.

use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cluster::{self, Files};
use crate::config::{Config, Ports};
use crate::pki::{self, Ca, Usage};
use crate::process::{self, Component};
use crate::registry::{self, PrivateRegistry};
use crate::{Error, Result, bootstrap, kubeconfig};

/// Every component a test bed runs, in start order.
pub const COMPONENTS: [&str; 6] =
    ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "registry", "registry-tls"];

/// How long the apiserver may take to become ready (cold caches on 2 cores).
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the other components may take.
pub(crate) const COMPONENT_READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Log lines shown when something fails.
const LOG_TAIL_LINES: usize = 40;

/// What `testbed.json` records.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct State {
    config: Config,
    private_registry: PrivateRegistry,
}

/// A running test bed.
#[derive(Debug, Clone)]
pub struct Testbed {
    state: State,
}

impl Testbed {
    /// Starts a test bed as `config` describes, or returns the one already
    /// running healthy in `config.dir` on the same ports. Anything left over
    /// from a broken test bed in that directory is stopped and removed first.
    pub async fn up(config: Config) -> Result<Self> {
        if let Ok(existing) = Self::open(&config.dir)
            && existing.state.config.port_base == config.port_base
            && existing.healthy().await
        {
            tracing::info!(dir = %config.dir.display(), "reusing running test bed");
            return Ok(existing);
        }
        Self::down(&config.dir)?;
        match Self::start(config.clone()).await {
            Ok(tb) => Ok(tb),
            Err(e) => {
                // Keep the directory (logs) but leave no process behind.
                stop_all(&config.dir);
                Err(e)
            }
        }
    }

    /// Finds the test bed recorded in `dir`, without checking that it is healthy.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = state_path(dir);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::NotRunning { dir: dir.to_owned(), reason: e.to_string() })?;
        let state = serde_json::from_str(&text)
            .map_err(|e| Error::NotRunning { dir: dir.to_owned(), reason: e.to_string() })?;
        Ok(Self { state })
    }

    /// Stops every component recorded in `dir` and removes the directory.
    pub fn down(dir: &Path) -> Result<()> {
        stop_all(dir);
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io { path: dir.to_owned(), source }),
        }
    }

    /// Whether every component runs and the apiserver answers `/readyz`.
    pub async fn healthy(&self) -> bool {
        let dir = self.dir();
        let all_alive = COMPONENTS.iter().all(|c| process::recorded_pid(dir, c).is_some_and(process::is_alive));
        all_alive && self.apiserver_ready().await
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.state.config.dir
    }

    /// The settings it was started with.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// Its ports.
    pub fn ports(&self) -> Ports {
        self.state.config.ports()
    }

    /// The apiserver URL.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports().apiserver)
    }

    /// The cluster CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir().join("pki").join("ca.crt")
    }

    /// The cluster-admin kubeconfig.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir().join("kubeconfig").join("admin.kubeconfig")
    }

    /// A cluster-admin client.
    pub async fn admin_client(&self) -> Result<kube::Client> {
        kubeconfig::client(&self.admin_kubeconfig()).await
    }

    /// The plain-HTTP registry, `127.0.0.1:PORT`.
    pub fn registry(&self) -> String {
        format!("127.0.0.1:{}", self.ports().registry)
    }

    /// The TLS + basic-auth registry.
    pub fn private_registry(&self) -> &PrivateRegistry {
        &self.state.private_registry
    }

    /// The directory holding kubectl and the other control-plane binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.state.config.bin_dir
    }

    /// The path of a component's log file.
    pub fn log_path(&self, component: &str) -> PathBuf {
        process::log_path(self.dir(), component)
    }

    /// The last `lines` lines of every component's log, for failure reports.
    pub fn log_tails(&self, lines: usize) -> String {
        COMPONENTS
            .iter()
            .map(|c| {
                format!(
                    "===== {c} ({}) =====\n{}\n",
                    self.log_path(c).display(),
                    process::log_tail(self.dir(), c, lines)
                )
            })
            .collect()
    }

    /// The cluster CA, to sign more certificates.
    pub fn ca(&self) -> Result<Ca> {
        Ca::load(&self.dir().join("pki"))
    }

    async fn apiserver_ready(&self) -> bool {
        match self.admin_client().await {
            Ok(client) => bootstrap::readyz(&client).await,
            Err(_) => false,
        }
    }

    async fn start(config: Config) -> Result<Self> {
        let dir = config.dir.clone();
        let files = Files::new(&dir);
        let ports = config.ports();
        let ca = write_pki(&config, &files)?;
        let server = format!("https://127.0.0.1:{}", ports.apiserver);
        let kc = dir.join("kubeconfig");
        for (file, user, stem) in [
            ("admin.kubeconfig", "admin", "admin"),
            ("controller-manager.kubeconfig", "system:kube-controller-manager", "controller-manager"),
            ("scheduler.kubeconfig", "system:kube-scheduler", "scheduler"),
        ] {
            let creds = pki::CertFiles {
                cert: files.pki.join(format!("{stem}.crt")),
                key: files.pki.join(format!("{stem}.key")),
            };
            kubeconfig::write(&kc.join(file), &server, &ca.cert_path(), user, &creds)?;
        }

        start(&dir, &cluster::etcd(&config, &files))?;
        wait_port(&dir, "etcd", ports.etcd_client, COMPONENT_READY_TIMEOUT).await?;

        start(&dir, &cluster::apiserver(&config, &files))?;
        let client = wait_apiserver(&dir, &kc.join("admin.kubeconfig")).await?;
        bootstrap::apply(&client).await?;

        start(&dir, &cluster::controller_manager(&config, &files))?;
        start(&dir, &cluster::scheduler(&config, &files))?;
        let password = random_password();
        start(&dir, &registry::plain(&dir, ports.registry)?)?;
        start(&dir, &registry::private(&dir, ports.registry_tls, &ca, &password)?)?;

        wait_port(&dir, "kube-controller-manager", ports.controller_manager, COMPONENT_READY_TIMEOUT).await?;
        wait_port(&dir, "kube-scheduler", ports.scheduler, COMPONENT_READY_TIMEOUT).await?;
        wait_port(&dir, "registry", ports.registry, COMPONENT_READY_TIMEOUT).await?;
        wait_port(&dir, "registry-tls", ports.registry_tls, COMPONENT_READY_TIMEOUT).await?;
        // Pods can only be created once the service-account controller has made
        // the `default` ServiceAccount: that also proves the controller manager works.
        wait_for(&dir, "kube-controller-manager", COMPONENT_READY_TIMEOUT, || {
            bootstrap::default_service_account_exists(&client, "default")
        })
        .await?;

        let state = State {
            config,
            private_registry: PrivateRegistry {
                addr: format!("127.0.0.1:{}", ports.registry_tls),
                username: registry::PRIVATE_USER.to_owned(),
                password,
                ca: ca.cert_path(),
            },
        };
        let json = serde_json::to_vec_pretty(&state)
            .map_err(|e| Error::Io { path: state_path(&dir), source: std::io::Error::other(e) })?;
        process::write_file(&state_path(&dir), &json)?;
        Ok(Self { state })
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("testbed.json")
}

/// Stops every process with a pid file in the test bed: extra processes
/// (a demo's wasmlet node, a test's) first, then the components in reverse
/// start order.
fn stop_all(dir: &Path) {
    let mut extra: Vec<String> =
        process::recorded_names(dir).into_iter().filter(|n| !COMPONENTS.contains(&n.as_str())).collect();
    extra.sort();
    for name in extra.iter().map(String::as_str).chain(COMPONENTS.iter().rev().copied()) {
        if let Err(e) = process::stop(dir, name) {
            tracing::warn!(component = name, error = %e, "stopping component");
        }
    }
}

fn start(dir: &Path, component: &Component) -> Result<()> {
    let pid = component.spawn(dir)?;
    tracing::info!(component = %component.name, pid, "started");
    Ok(())
}

fn write_pki(config: &Config, files: &Files) -> Result<Ca> {
    let pki_dir = &files.pki;
    let ca = Ca::create(pki_dir)?;
    let (mut dns, mut ips) = pki::loopback_sans();
    dns.extend(
        ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
            .map(String::from),
    );
    ips.push(first_service_ip(&config.service_cidr));
    ca.mint(pki_dir, "apiserver", &Usage::Server { cn: "kube-apiserver".into(), dns, ips })?;
    let client = |cn: &str, org: Option<&str>| Usage::Client {
        cn: cn.to_owned(),
        orgs: org.map(|o| vec![o.to_owned()]).unwrap_or_default(),
    };
    ca.mint(pki_dir, "admin", &client("admin", Some("system:masters")))?;
    ca.mint(pki_dir, "controller-manager", &client("system:kube-controller-manager", None))?;
    ca.mint(pki_dir, "scheduler", &client("system:kube-scheduler", None))?;
    // The identity the apiserver uses to call kubelets (logs, exec, port-forward).
    ca.mint(pki_dir, "apiserver-kubelet-client", &client(bootstrap::APISERVER_KUBELET_USER, None))?;
    // The aggregation layer's identity towards extension API servers.
    ca.mint(pki_dir, "front-proxy-client", &client("front-proxy-client", None))?;
    pki::service_account_keys(pki_dir)?;
    Ok(ca)
}

/// The first address of the service range: the `kubernetes` Service's ClusterIP.
fn first_service_ip(cidr: &str) -> IpAddr {
    let base: Ipv4Addr = cidr.split('/').next().and_then(|a| a.parse().ok()).unwrap_or(Ipv4Addr::new(10, 96, 0, 0));
    IpAddr::V4(Ipv4Addr::from(u32::from(base) + 1))
}

fn random_password() -> String {
    use rand::Rng;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(24).map(char::from).collect()
}

pub(crate) async fn wait_apiserver(dir: &Path, kubeconfig: &Path) -> Result<kube::Client> {
    let client = kubeconfig::client(kubeconfig).await?;
    wait_for(dir, "kube-apiserver", APISERVER_READY_TIMEOUT, || bootstrap::readyz(&client)).await?;
    Ok(client)
}

pub(crate) async fn wait_port(dir: &Path, component: &str, port: u16, timeout: Duration) -> Result<()> {
    wait_for(dir, component, timeout, || async move {
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(200)).is_ok()
    })
    .await
}

/// Polls `check` until it returns true, failing early if the component exits.
pub(crate) async fn wait_for<F, Fut>(dir: &Path, component: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if !process::recorded_pid(dir, component).is_some_and(process::is_alive) {
            return Err(Error::Exited {
                component: component.to_owned(),
                log_tail: process::log_tail(dir, component, LOG_TAIL_LINES),
            });
        }
        if Instant::now() > deadline {
            return Err(Error::NotReady {
                component: component.to_owned(),
                secs: timeout.as_secs(),
                log_tail: process::log_tail(dir, component, LOG_TAIL_LINES),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
