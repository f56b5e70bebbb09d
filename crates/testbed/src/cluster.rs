//! The control-plane components and their flags.
//!
//! Flags follow `hack/local-up-cluster.sh` and kwok's binary runtime: everything
//! on 127.0.0.1, Node+RBAC authorization with NodeRestriction, the default
//! controllers plus CSR signing with the cluster CA and node CIDR allocation.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::process::Component;

/// Paths the components' flags refer to.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    pub(crate) pki: PathBuf,
    pub(crate) etcd_data: PathBuf,
    pub(crate) controller_manager_kubeconfig: PathBuf,
    pub(crate) scheduler_kubeconfig: PathBuf,
}

impl Files {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            pki: dir.join("pki"),
            etcd_data: dir.join("etcd"),
            controller_manager_kubeconfig: dir.join("kubeconfig").join("controller-manager.kubeconfig"),
            scheduler_kubeconfig: dir.join("kubeconfig").join("scheduler.kubeconfig"),
        }
    }

    fn pki(&self, file: &str) -> String {
        self.pki.join(file).display().to_string()
    }
}

pub(crate) fn etcd(cfg: &Config, files: &Files) -> Component {
    let p = cfg.ports();
    let client = format!("http://127.0.0.1:{}", p.etcd_client);
    let peer = format!("http://127.0.0.1:{}", p.etcd_peer);
    Component {
        name: "etcd".into(),
        program: cfg.bin_dir.join("etcd"),
        args: vec![
            "--name=testbed".into(),
            format!("--data-dir={}", files.etcd_data.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=testbed={peer}"),
            "--unsafe-no-fsync=true".into(),
            "--auto-compaction-retention=1".into(),
            format!("--quota-backend-bytes={}", 2u64 << 30),
            "--log-level=warn".into(),
        ],
    }
}

pub(crate) fn apiserver(cfg: &Config, files: &Files) -> Component {
    let p = cfg.ports();
    Component {
        name: "kube-apiserver".into(),
        program: cfg.bin_dir.join("kube-apiserver"),
        args: vec![
            format!("--etcd-servers=http://127.0.0.1:{}", p.etcd_client),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", p.apiserver),
            format!("--tls-cert-file={}", files.pki("apiserver.crt")),
            format!("--tls-private-key-file={}", files.pki("apiserver.key")),
            format!("--client-ca-file={}", files.pki("ca.crt")),
            "--service-account-issuer=https://kubernetes.default.svc".into(),
            format!("--service-account-key-file={}", files.pki("sa.pub")),
            format!("--service-account-signing-key-file={}", files.pki("sa.key")),
            format!("--service-cluster-ip-range={}", cfg.service_cidr),
            "--authorization-mode=Node,RBAC".into(),
            "--enable-admission-plugins=NodeRestriction".into(),
            "--enable-bootstrap-token-auth=true".into(),
            format!("--kubelet-client-certificate={}", files.pki("apiserver-kubelet-client.crt")),
            format!("--kubelet-client-key={}", files.pki("apiserver-kubelet-client.key")),
            format!("--kubelet-certificate-authority={}", files.pki("ca.crt")),
            "--kubelet-preferred-address-types=InternalIP,Hostname".into(),
            // The aggregation layer (metrics-server for `kubectl top`): the
            // front proxy's client certificate, signed by the cluster CA and
            // accepted by name only; extension servers are dialled at their
            // endpoints, since nothing routes ClusterIPs here.
            format!("--requestheader-client-ca-file={}", files.pki("ca.crt")),
            "--requestheader-allowed-names=front-proxy-client".into(),
            "--requestheader-username-headers=X-Remote-User".into(),
            "--requestheader-group-headers=X-Remote-Group".into(),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
            format!("--proxy-client-cert-file={}", files.pki("front-proxy-client.crt")),
            format!("--proxy-client-key-file={}", files.pki("front-proxy-client.key")),
            "--enable-aggregator-routing=true".into(),
            // With a loopback advertise address there is nothing useful to put in
            // the `kubernetes` Service's endpoints.
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            "--v=1".into(),
        ],
    }
}

pub(crate) fn controller_manager(cfg: &Config, files: &Files) -> Component {
    let p = cfg.ports();
    let kubeconfig = files.controller_manager_kubeconfig.display().to_string();
    Component {
        name: "kube-controller-manager".into(),
        program: cfg.bin_dir.join("kube-controller-manager"),
        args: vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--leader-elect=false".into(),
            "--use-service-account-credentials=true".into(),
            "--controllers=*,bootstrapsigner,tokencleaner".into(),
            format!("--cluster-signing-cert-file={}", files.pki("ca.crt")),
            format!("--cluster-signing-key-file={}", files.pki("ca.key")),
            format!("--cluster-signing-duration={}s", cfg.cluster_signing_duration.as_secs()),
            format!("--root-ca-file={}", files.pki("ca.crt")),
            format!("--service-account-private-key-file={}", files.pki("sa.key")),
            format!("--service-cluster-ip-range={}", cfg.service_cidr),
            "--allocate-node-cidrs=true".into(),
            format!("--cluster-cidr={}", cfg.cluster_cidr),
            format!("--node-cidr-mask-size={}", cfg.node_cidr_mask_size),
            format!("--node-monitor-grace-period={}s", cfg.node_monitor_grace_period.as_secs()),
            "--node-monitor-period=2s".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", p.controller_manager),
            "--profiling=false".into(),
            "--v=1".into(),
        ],
    }
}

pub(crate) fn scheduler(cfg: &Config, files: &Files) -> Component {
    let p = cfg.ports();
    let kubeconfig = files.scheduler_kubeconfig.display().to_string();
    Component {
        name: "kube-scheduler".into(),
        program: cfg.bin_dir.join("kube-scheduler"),
        args: vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", p.scheduler),
            "--profiling=false".into(),
            "--v=1".into(),
        ],
    }
}
