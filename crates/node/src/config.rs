//! Who this node is and how often it reports: [`NodeConfig`], plus the
//! constants that give a wasm node its identity (labels, taints, versions).
//!
//! The binary builds one `NodeConfig` (from flags, env and file) and hands it to
//! [`register`](crate::register()) and [`Heartbeat`](crate::Heartbeat). Start
//! with [`NodeConfig::new`], which fills in the upstream kubelet defaults.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

use crate::validate;

/// Label with the node's operating system; set to [`OPERATING_SYSTEM`].
pub const LABEL_OS: &str = "kubernetes.io/os";
/// Label with the node's architecture; set to [`ARCHITECTURE`].
pub const LABEL_ARCH: &str = "kubernetes.io/arch";
/// Label with the node's hostname; set to [`NodeConfig::hostname`].
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// What a wasm node reports as its operating system, in the `kubernetes.io/os`
/// label and `status.nodeInfo.operatingSystem`. Guests see WASI, not Linux, so a
/// pod that asks for `kubernetes.io/os: linux` must not land here.
pub const OPERATING_SYSTEM: &str = "wasi";
/// What a wasm node reports as its architecture, in the `kubernetes.io/arch`
/// label and `status.nodeInfo.architecture`: guests are `wasm32` modules
/// whatever the host CPU is.
pub const ARCHITECTURE: &str = "wasm32";

/// Annotation the kubelet sets to leave volume attach/detach to the controller.
pub const ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH: &str = "volumes.kubernetes.io/controller-managed-attach-detach";
/// Namespace of the node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The Kubernetes release whose kubelet API wasmlet implements (the k8s-openapi
/// `v1_36` types, and the test bed's control plane).
pub const KUBERNETES_VERSION: &str = "1.36.3";

/// Upstream `maxPods` default.
pub const DEFAULT_MAX_PODS: u32 = 110;

/// The default `--register-with-taints`: `kubernetes.io/arch=wasm32` with
/// `NoSchedule` and `NoExecute`, so ordinary (Linux) pods, DaemonSets included,
/// stay off the node unless they tolerate wasm. (Krustlet did the same.)
///
/// A kubelet may set taints only when it creates its Node (NodeRestriction);
/// later changes are up to an administrator.
pub fn default_taints() -> Vec<Taint> {
    ["NoSchedule", "NoExecute"]
        .into_iter()
        .map(|effect| Taint {
            key: LABEL_ARCH.to_owned(),
            value: Some(ARCHITECTURE.to_owned()),
            effect: effect.to_owned(),
            time_added: None,
        })
        .collect()
}

/// The default `status.nodeInfo.kubeletVersion`: `v1.36.3+wasmlet.<crate version>`.
///
/// It is a valid semver whose version proper is the Kubernetes release wasmlet
/// implements, so version-skew checks (kubectl, the e2e framework, the apiserver)
/// see a 1.36.3 kubelet. The wasmlet version rides in the *build metadata*
/// (after `+`, as k3s does with `v1.36.3+k3s1`), which semver ignores for
/// precedence; a pre-release suffix (`-wasmlet…`) would instead sort *before*
/// 1.36.3 and fail `>= 1.36.3` checks.
pub fn default_kubelet_version() -> String {
    format!("v{KUBERNETES_VERSION}+wasmlet.{}", env!("CARGO_PKG_VERSION"))
}

/// Resources set aside for the system (the kubelet's `systemReserved` plus
/// `kubeReserved`), subtracted from capacity to get allocatable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reserved {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage_bytes: u64,
}

/// Everything this crate needs to know about the node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// The Node name; the client must authenticate as `system:node:<name>`.
    pub name: String,
    /// Reported as the `InternalIP` address.
    pub internal_ip: IpAddr,
    /// Reported as the `Hostname` address and the `kubernetes.io/hostname` label.
    pub hostname: String,
    /// The kubelet API port (`status.daemonEndpoints.kubeletEndpoint.port`).
    pub kubelet_port: u16,
    /// Extra labels (`--node-labels`). Keys in the `kubernetes.io` / `k8s.io`
    /// namespaces must be ones a kubelet may set (see [`NodeConfig::validate`]);
    /// the identity labels (os, arch, hostname) always win.
    pub labels: BTreeMap<String, String>,
    /// Taints set when the Node is created (`--register-with-taints`); an
    /// existing Node keeps its taints. [`NodeConfig::new`] uses [`default_taints`].
    pub taints: Vec<Taint>,
    /// Capacity `pods`.
    pub max_pods: u32,
    /// Directory whose filesystem is measured for `ephemeral-storage` and
    /// `DiskPressure`.
    pub root_dir: PathBuf,
    /// `spec.leaseDurationSeconds` of the node Lease (40 s).
    pub lease_duration: Duration,
    /// How often the Lease is renewed (10 s, 0.25 × the duration).
    pub renew_interval: Duration,
    /// How often node status is recomputed (10 s).
    pub status_update_frequency: Duration,
    /// How often node status is patched even when nothing changed (5 min).
    pub status_report_frequency: Duration,
    /// `status.nodeInfo.containerRuntimeVersion`, `<type>://<version>`,
    /// e.g. `wasmtime://48.0.8`.
    pub runtime_version: String,
    /// `status.nodeInfo.kubeletVersion`; see [`default_kubelet_version`].
    pub kubelet_version: String,
    /// Resources reserved for the system.
    pub reserved: Reserved,
    /// The eviction thresholds (`--eviction-hard` and the rest): the hard
    /// `memory.available` and `nodefs.available` levels are kept out of
    /// allocatable, as upstream. Pressure itself comes from the eviction
    /// manager through [`NodeHealth`](crate::NodeHealth).
    pub eviction: Vec<wasmlet_eviction::Threshold>,
}

impl NodeConfig {
    /// A config with the upstream kubelet defaults: port 10250, 110 pods, lease
    /// 40 s renewed every 10 s, status every 10 s and reported at least every
    /// 5 min, the default wasm taints, no extra labels, nothing reserved, and
    /// upstream's default hard eviction thresholds (100 MiB memory, 10 %
    /// nodefs, ...). `root_dir` is `/var/lib/wasmlet`.
    pub fn new(name: impl Into<String>, internal_ip: IpAddr, hostname: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            internal_ip,
            hostname: hostname.into(),
            kubelet_port: 10250,
            labels: BTreeMap::new(),
            taints: default_taints(),
            max_pods: DEFAULT_MAX_PODS,
            root_dir: PathBuf::from("/var/lib/wasmlet"),
            lease_duration: Duration::from_secs(40),
            renew_interval: Duration::from_secs(10),
            status_update_frequency: Duration::from_secs(10),
            status_report_frequency: Duration::from_secs(5 * 60),
            runtime_version: String::from("wasmtime://unknown"),
            kubelet_version: default_kubelet_version(),
            reserved: Reserved::default(),
            eviction: wasmlet_eviction::Config::default().thresholds,
        }
    }

    /// The labels this kubelet owns on its Node: the extra labels, then the
    /// identity labels `kubernetes.io/{os,arch,hostname}` on top.
    pub fn node_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(LABEL_OS.to_owned(), OPERATING_SYSTEM.to_owned());
        labels.insert(LABEL_ARCH.to_owned(), ARCHITECTURE.to_owned());
        labels.insert(LABEL_HOSTNAME.to_owned(), self.hostname.clone());
        labels
    }

    /// Checks what the API server would otherwise reject forever: the node name
    /// and hostname, label and taint syntax, labels that NodeRestriction forbids
    /// a kubelet to set, and the durations.
    ///
    /// # Errors
    ///
    /// The first problem found, as a [`validate::Error`].
    pub fn validate(&self) -> Result<(), validate::Error> {
        validate::config(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_version_is_semver_with_build_metadata() {
        let v = default_kubelet_version();
        let rest = v.strip_prefix("v1.36.3+wasmlet.").unwrap();
        assert_eq!(rest, env!("CARGO_PKG_VERSION"));
        assert!(!v.contains('-'), "no pre-release part: {v}");
    }

    #[test]
    fn identity_labels_win_over_extra_labels() {
        let mut c = NodeConfig::new("n1", IpAddr::from([10, 0, 0, 1]), "host-1");
        c.labels.insert(LABEL_ARCH.into(), "amd64".into());
        c.labels.insert("example.com/team".into(), "a".into());
        let labels = c.node_labels();
        assert_eq!(labels[LABEL_ARCH], "wasm32");
        assert_eq!(labels[LABEL_OS], "wasi");
        assert_eq!(labels[LABEL_HOSTNAME], "host-1");
        assert_eq!(labels["example.com/team"], "a");
    }

    #[test]
    fn default_taints_keep_linux_pods_away() {
        let t = default_taints();
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|t| t.key == "kubernetes.io/arch" && t.value.as_deref() == Some("wasm32")));
        let effects: Vec<_> = t.iter().map(|t| t.effect.as_str()).collect();
        assert_eq!(effects, ["NoSchedule", "NoExecute"]);
    }
}
