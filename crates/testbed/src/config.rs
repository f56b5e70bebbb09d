//! Where a test bed lives and which ports it uses.

use std::path::PathBuf;
use std::time::Duration;

/// The default first port; the test bed uses [`Ports::COUNT`] ports from here.
/// Below the Linux ephemeral range (32768+) so that clients never collide with it.
pub const DEFAULT_PORT_BASE: u16 = 26440;

/// Settings of one test bed. Two test beds with different `dir` and
/// `port_base` run side by side.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// State directory: PKI, kubeconfigs, etcd data, logs, pid files.
    pub dir: PathBuf,
    /// First of the consecutive ports the test bed listens on (all on 127.0.0.1).
    pub port_base: u16,
    /// Directory holding etcd, kube-apiserver, kube-controller-manager,
    /// kube-scheduler and kubectl.
    pub bin_dir: PathBuf,
    /// The node lifecycle controller's grace period before a silent node turns
    /// NotReady (upstream default 50 s; shorter here so tests wait less).
    #[serde(with = "secs")]
    pub node_monitor_grace_period: Duration,
    /// Lifetime of certificates the controller manager signs for CSRs.
    #[serde(with = "secs")]
    pub cluster_signing_duration: Duration,
    /// Pod network; each node gets a slice of it as `spec.podCIDR`.
    pub cluster_cidr: String,
    /// Prefix length of each node's podCIDR (the controller manager's
    /// `--node-cidr-mask-size`): /24 holds 254 pod addresses, /19 8,190.
    #[serde(default = "default_node_cidr_mask_size")]
    pub node_cidr_mask_size: u8,
    /// Service network.
    pub service_cidr: String,
}

impl Config {
    /// The defaults for a state directory and a set of binaries.
    pub fn new(dir: PathBuf, bin_dir: PathBuf) -> Self {
        Self {
            dir,
            port_base: DEFAULT_PORT_BASE,
            bin_dir,
            node_monitor_grace_period: Duration::from_secs(20),
            cluster_signing_duration: Duration::from_secs(365 * 24 * 3600),
            cluster_cidr: "10.244.0.0/16".to_owned(),
            node_cidr_mask_size: default_node_cidr_mask_size(),
            service_cidr: "10.96.0.0/24".to_owned(),
        }
    }

    /// The ports derived from `port_base`.
    pub fn ports(&self) -> Ports {
        Ports::from_base(self.port_base)
    }

    /// The default state directory: `$TMPDIR/wasmlet-testbed`.
    pub fn default_dir() -> PathBuf {
        std::env::temp_dir().join("wasmlet-testbed")
    }
}

/// A /24 per node, as kubeadm's default for an IPv4 cluster.
fn default_node_cidr_mask_size() -> u8 {
    24
}

/// Every port a test bed listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// etcd client URL.
    pub etcd_client: u16,
    /// etcd peer URL.
    pub etcd_peer: u16,
    /// kube-apiserver HTTPS.
    pub apiserver: u16,
    /// kube-controller-manager secure port.
    pub controller_manager: u16,
    /// kube-scheduler secure port.
    pub scheduler: u16,
    /// Plain-HTTP OCI registry.
    pub registry: u16,
    /// TLS + htpasswd OCI registry.
    pub registry_tls: u16,
    /// metrics-server (started on demand: [`Testbed::ensure_metrics_server`](crate::Testbed::ensure_metrics_server)).
    pub metrics_server: u16,
}

impl Ports {
    /// How many consecutive ports a test bed takes.
    pub const COUNT: u16 = 8;

    /// The ports `base..base + COUNT`.
    pub fn from_base(base: u16) -> Self {
        Self {
            etcd_client: base,
            etcd_peer: base + 1,
            apiserver: base + 2,
            controller_manager: base + 3,
            scheduler: base + 4,
            registry: base + 5,
            registry_tls: base + 6,
            metrics_server: base + 7,
        }
    }

    /// All of them.
    pub fn all(&self) -> [u16; Self::COUNT as usize] {
        [
            self.etcd_client,
            self.etcd_peer,
            self.apiserver,
            self.controller_manager,
            self.scheduler,
            self.registry,
            self.registry_tls,
            self.metrics_server,
        ]
    }
}

mod secs {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs: u64 = serde::Deserialize::deserialize(d)?;
        Ok(Duration::from_secs(secs))
    }
}
