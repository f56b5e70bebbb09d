//! Configuration: flags > environment (`WASMLET_*`) > YAML file (`--config`) >
//! defaults. Everything is validated before the agent touches the network;
//! an invalid setting exits with code 64 (EX_USAGE) and a clear message.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};

use clap::Parser;

/// `wasmlet`: a Kubernetes node agent that runs WebAssembly pods.
// As with upstream's flags, a flag given twice takes its last value.
#[derive(Debug, Default, Parser, serde::Deserialize)]
#[command(name = "wasmlet", version, about, args_override_self = true)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub(crate) struct Args {
    /// Upstream's KubeletConfiguration file (`kubelet.config.k8s.io/v1beta1`,
    /// as kubeadm writes it), or a YAML file of wasmlet's own settings
    /// (camelCase keys of the flags below, e.g. `nodeName`).
    #[arg(long, env = "WASMLET_CONFIG")]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// YAML file of wasmlet's own settings, beside a KubeletConfiguration
    /// given with --config; it wins over that file.
    #[arg(long, env = "WASMLET_OWN_CONFIG")]
    #[serde(skip)]
    pub(crate) wasmlet_config: Option<PathBuf>,
    /// Validate the configuration, print the resulting settings and exit.
    #[arg(long)]
    #[serde(skip)]
    pub(crate) validate_only: bool,
    /// Kubeconfig with the node's credentials (falls back to $KUBECONFIG).
    #[arg(long, env = "WASMLET_KUBECONFIG")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Node name (default: the host name, lower-cased); upstream's
    /// --hostname-override is the same flag.
    #[arg(long, visible_alias = "hostname-override", env = "WASMLET_NODE_NAME")]
    pub(crate) node_name: Option<String>,
    /// The node's IP: reported as InternalIP, pods' hostIP; the kubelet API binds to it.
    #[arg(long = "node-ip", env = "WASMLET_NODE_IP")]
    #[serde(rename = "nodeIP")]
    pub(crate) node_ip: Option<String>,
    /// Directory for pods, images and compiled code (default /var/lib/wasmlet).
    #[arg(long, env = "WASMLET_ROOT_DIR")]
    pub(crate) root_dir: Option<PathBuf>,
    /// Port of the kubelet HTTPS API (default 10250).
    #[arg(long, env = "WASMLET_PORT")]
    pub(crate) port: Option<u16>,
    /// Address the kubelet API listens on (upstream --address; default: the
    /// node IP, where upstream's is 0.0.0.0).
    #[arg(long, env = "WASMLET_ADDRESS")]
    pub(crate) address: Option<String>,
    /// Port of the plain-HTTP healthz (default 10248; 0 turns it off).
    #[arg(long, env = "WASMLET_HEALTHZ_PORT")]
    pub(crate) healthz_port: Option<u16>,
    /// Address of the plain-HTTP healthz (default 127.0.0.1).
    #[arg(long, env = "WASMLET_HEALTHZ_BIND_ADDRESS")]
    pub(crate) healthz_bind_address: Option<String>,
    /// How often the node's status is computed and posted when it changed,
    /// a Go duration (default 10s).
    #[arg(long, env = "WASMLET_NODE_STATUS_UPDATE_FREQUENCY")]
    pub(crate) node_status_update_frequency: Option<String>,
    /// Oldest TLS version of the kubelet API: VersionTLS12 (default) or
    /// VersionTLS13 (VersionTLS10/11 mean 1.2, the oldest rustls speaks).
    #[arg(long, env = "WASMLET_TLS_MIN_VERSION")]
    pub(crate) tls_min_version: Option<String>,
    /// TLS 1.2 cipher suites of the kubelet API, Go names, comma-separated
    /// (default: rustls's); TLS 1.3 suites are always offered.
    #[arg(long, env = "WASMLET_TLS_CIPHER_SUITES")]
    #[serde(deserialize_with = "list_from_seq")]
    pub(crate) tls_cipher_suites: Option<String>,
    /// Upstream feature gates, `Name=true,Other=false`: accepted and
    /// reported; none changes what wasmlet does.
    #[arg(long, env = "WASMLET_FEATURE_GATES")]
    #[serde(deserialize_with = "eviction::equals_map")]
    pub(crate) feature_gates: Option<String>,
    /// Upstream's client rate limit to the apiserver (accepted, not enforced yet).
    #[arg(long = "kube-api-qps", env = "WASMLET_KUBE_API_QPS")]
    #[serde(rename = "kubeAPIQPS")]
    pub(crate) kube_api_qps: Option<f64>,
    /// Its burst (accepted, not enforced yet).
    #[arg(long = "kube-api-burst", env = "WASMLET_KUBE_API_BURST")]
    #[serde(rename = "kubeAPIBurst")]
    pub(crate) kube_api_burst: Option<u32>,
    /// Cluster DNS server IPs, comma-separated (accepted; guests have no
    /// cluster DNS yet).
    #[arg(long = "cluster-dns", env = "WASMLET_CLUSTER_DNS")]
    #[serde(rename = "clusterDNS", deserialize_with = "list_from_seq")]
    pub(crate) cluster_dns: Option<String>,
    /// The cluster's DNS domain, e.g. cluster.local (accepted; see --cluster-dns).
    #[arg(long, env = "WASMLET_CLUSTER_DOMAIN")]
    pub(crate) cluster_domain: Option<String>,
    /// Directory of static pod manifests: each runs as a pod with a mirror
    /// pod in the apiserver (see docs/configuration.md).
    #[arg(long = "pod-manifest-path", env = "WASMLET_POD_MANIFEST_PATH")]
    #[serde(rename = "staticPodPath")]
    pub(crate) pod_manifest_path: Option<PathBuf>,
    /// Image filesystem usage (%) at which image GC frees space (default
    /// 85; 100 turns that off).
    #[arg(long = "image-gc-high-threshold", env = "WASMLET_IMAGE_GC_HIGH_THRESHOLD")]
    #[serde(rename = "imageGCHighThresholdPercent")]
    pub(crate) image_gc_high_threshold: Option<u8>,
    /// Usage (%) image GC frees down to, least recently used images first (default 80).
    #[arg(long = "image-gc-low-threshold", env = "WASMLET_IMAGE_GC_LOW_THRESHOLD")]
    #[serde(rename = "imageGCLowThresholdPercent")]
    pub(crate) image_gc_low_threshold: Option<u8>,
    /// Images detected more recently are never collected, a Go duration (default 2m).
    #[arg(long = "image-minimum-gc-age", env = "WASMLET_IMAGE_MINIMUM_GC_AGE")]
    #[serde(rename = "imageMinimumGCAge")]
    pub(crate) image_minimum_gc_age: Option<String>,
    /// Unused images older than this are collected whatever the usage
    /// (default 0: never).
    #[arg(long = "image-maximum-gc-age", env = "WASMLET_IMAGE_MAXIMUM_GC_AGE")]
    #[serde(rename = "imageMaximumGCAge")]
    pub(crate) image_maximum_gc_age: Option<String>,
    /// How often image GC runs (upstream's fixed 5m).
    #[arg(long, env = "WASMLET_IMAGE_GC_PERIOD")]
    pub(crate) image_gc_period: Option<String>,
    /// Upstream flags with no meaning for wasmlet, accepted with a warning.
    #[command(flatten)]
    #[serde(skip)]
    pub(crate) ignored: upstream::IgnoredFlags,
    /// Most pods this node runs (default 110).
    #[arg(long, env = "WASMLET_MAX_PODS")]
    pub(crate) max_pods: Option<u32>,
    /// Extra node labels, `key=value,key2=value2`.
    #[arg(long, env = "WASMLET_NODE_LABELS")]
    #[serde(deserialize_with = "labels_from_map")]
    pub(crate) node_labels: Option<String>,
    /// Taints to register with, `key=value:Effect,...` (default:
    /// kubernetes.io/arch=wasm32:NoSchedule,kubernetes.io/arch=wasm32:NoExecute).
    #[arg(long, env = "WASMLET_REGISTER_WITH_TAINTS")]
    #[serde(deserialize_with = "list_from_seq")]
    pub(crate) register_with_taints: Option<String>,
    /// Serving certificate of the kubelet API (PEM). Without it, a self-signed
    /// one is generated under the root directory, as the upstream kubelet does.
    #[arg(long, env = "WASMLET_TLS_CERT_FILE")]
    pub(crate) tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "WASMLET_TLS_PRIVATE_KEY_FILE")]
    pub(crate) tls_private_key_file: Option<PathBuf>,
    /// Registries reached over plain HTTP, `host:port`, comma-separated.
    #[arg(long, env = "WASMLET_INSECURE_REGISTRIES")]
    #[serde(deserialize_with = "list_from_seq")]
    pub(crate) insecure_registries: Option<String>,
    /// An image pull fails when less than 1 KiB arrives from the registry
    /// within this time, a Go duration (default 1m, upstream's; 0 turns it off).
    #[arg(long, env = "WASMLET_IMAGE_PULL_PROGRESS_DEADLINE")]
    pub(crate) image_pull_progress_deadline: Option<String>,
    /// Extra CA certificates (PEM) trusted for registries.
    #[arg(long, env = "WASMLET_REGISTRY_CA_FILE")]
    pub(crate) registry_ca_file: Option<PathBuf>,
    /// How pods get IPs: `addresses` (own IP from the node's podCIDR on
    /// --pod-interface; needs CAP_NET_ADMIN) or `host` (pods share the node IP).
    #[arg(long, env = "WASMLET_POD_NETWORK")]
    pub(crate) pod_network: Option<String>,
    /// Interface that holds pod addresses (created as a veth pair if missing).
    #[arg(long, env = "WASMLET_POD_INTERFACE")]
    pub(crate) pod_interface: Option<String>,
    /// Share of a service-account token's lifetime after which it is renewed
    /// (upstream 0.8; lower renews sooner).
    #[arg(long, env = "WASMLET_TOKEN_REFRESH_FRACTION")]
    pub(crate) token_refresh_fraction: Option<f64>,
    /// Kubeconfig with a bootstrap token: when --kubeconfig is missing or
    /// its certificate has expired, a client certificate is requested with
    /// it (TLS bootstrapping) and --kubeconfig written.
    #[arg(long, env = "WASMLET_BOOTSTRAP_KUBECONFIG")]
    pub(crate) bootstrap_kubeconfig: Option<PathBuf>,
    /// Directory of the node's certificates and keys (default <root-dir>/pki).
    #[arg(long, env = "WASMLET_CERT_DIR")]
    pub(crate) cert_dir: Option<PathBuf>,
    /// Renew the client certificate at 70-90 % of its lifetime (default false).
    #[arg(long, env = "WASMLET_ROTATE_CERTIFICATES", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) rotate_certificates: Option<bool>,
    /// Get the serving certificate from the cluster (signer
    /// kubernetes.io/kubelet-serving; someone must approve the CSR) and renew
    /// it at 70-90 % of its lifetime (default false).
    #[arg(long, env = "WASMLET_ROTATE_SERVER_CERTIFICATES", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) rotate_server_certificates: Option<bool>,
    /// Serve kubelet API requests without credentials as system:anonymous (default false: 401).
    #[arg(long, env = "WASMLET_ANONYMOUS_AUTH", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) anonymous_auth: Option<bool>,
    /// CA certificates (PEM) for client certificates on the kubelet API
    /// (default: the cluster CA of the node kubeconfig).
    #[arg(long, env = "WASMLET_CLIENT_CA_FILE")]
    #[serde(rename = "clientCAFile")]
    pub(crate) client_ca_file: Option<PathBuf>,
    /// Check bearer tokens on the kubelet API with TokenReview (default true).
    #[arg(long, env = "WASMLET_AUTHENTICATION_TOKEN_WEBHOOK", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) authentication_token_webhook: Option<bool>,
    /// `Webhook` (SubjectAccessReview per request, the default) or `AlwaysAllow`.
    #[arg(long, env = "WASMLET_AUTHORIZATION_MODE")]
    pub(crate) authorization_mode: Option<String>,
    /// Hard eviction thresholds, as upstream (`SIGNAL<VALUE`, a quantity or
    /// a percentage; setting it replaces the defaults
    /// `memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%,imagefs.inodesFree<5%`).
    #[arg(long, env = "WASMLET_EVICTION_HARD")]
    #[serde(deserialize_with = "eviction::langle_map")]
    pub(crate) eviction_hard: Option<String>,
    /// Soft eviction thresholds (`SIGNAL<VALUE`), each with a grace period.
    #[arg(long, env = "WASMLET_EVICTION_SOFT")]
    #[serde(deserialize_with = "eviction::langle_map")]
    pub(crate) eviction_soft: Option<String>,
    /// Grace periods of the soft thresholds, `memory.available=1m30s,...`.
    #[arg(long, env = "WASMLET_EVICTION_SOFT_GRACE_PERIOD")]
    #[serde(deserialize_with = "eviction::equals_map")]
    pub(crate) eviction_soft_grace_period: Option<String>,
    /// Longest grace period (seconds) a soft eviction gives a pod (default 0).
    #[arg(long, env = "WASMLET_EVICTION_MAX_POD_GRACE_PERIOD")]
    pub(crate) eviction_max_pod_grace_period: Option<i64>,
    /// How long a pressure condition stays after its threshold was last met (default 5m).
    #[arg(long, env = "WASMLET_EVICTION_PRESSURE_TRANSITION_PERIOD")]
    pub(crate) eviction_pressure_transition_period: Option<String>,
    /// Minimum amount to reclaim past a threshold, `nodefs.available=500Mi,...`.
    #[arg(long, env = "WASMLET_EVICTION_MINIMUM_RECLAIM")]
    #[serde(deserialize_with = "eviction::equals_map")]
    pub(crate) eviction_minimum_reclaim: Option<String>,
    /// Keep the defaults of signals --eviction-hard does not name (default false, as upstream).
    #[arg(long, env = "WASMLET_MERGE_DEFAULT_EVICTION_SETTINGS", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) merge_default_eviction_settings: Option<bool>,
    /// How often the eviction manager looks at the node (upstream's fixed 10s).
    #[arg(long, env = "WASMLET_EVICTION_MONITORING_PERIOD")]
    pub(crate) eviction_monitoring_period: Option<String>,
    /// How often CSI volumes' usage is measured (`NodeGetVolumeStats`) for
    /// `/stats/summary`, a Go duration (default 1m, 0 turns it off).
    #[arg(long, env = "WASMLET_VOLUME_STATS_AGG_PERIOD")]
    pub(crate) volume_stats_agg_period: Option<String>,
    /// Resources reserved for the system, `cpu=500m,memory=1Gi,ephemeral-storage=1Gi`.
    #[arg(long, env = "WASMLET_SYSTEM_RESERVED")]
    #[serde(deserialize_with = "eviction::equals_map")]
    pub(crate) system_reserved: Option<String>,
    /// Resources reserved for Kubernetes daemons (the agent), same syntax.
    #[arg(long, env = "WASMLET_KUBE_RESERVED")]
    #[serde(deserialize_with = "eviction::equals_map")]
    pub(crate) kube_reserved: Option<String>,
    /// How long the resources of a device plugin that went away keep their
    /// capacity before it drops to 0 (default 5m, as upstream).
    #[arg(long, env = "WASMLET_DEVICE_PLUGIN_STOP_GRACE_PERIOD")]
    pub(crate) device_plugin_stop_grace_period: Option<String>,
    /// CDI spec directories, comma-separated, lowest priority first
    /// (default /etc/cdi,/var/run/cdi,<root-dir>/cdi).
    #[arg(long, env = "WASMLET_CDI_SPEC_DIRS")]
    #[serde(deserialize_with = "list_from_seq")]
    pub(crate) cdi_spec_dirs: Option<String>,
    /// The most any guest may connect to, CIDRs or IPs, comma-separated, or
    /// `none` (default: everything). Destinations on the node itself are
    /// refused on top of it.
    #[arg(long = "guest-outbound-cidrs", env = "WASMLET_GUEST_OUTBOUND_CIDRS")]
    #[serde(rename = "guestOutboundCIDRs", deserialize_with = "list_from_seq")]
    pub(crate) guest_outbound_cidrs: Option<String>,
    /// Node-local destinations (loopback, the node's IPs, link-local,
    /// metadata endpoints) guests may reach anyway, CIDRs or IPs,
    /// comma-separated, e.g. a NodeLocal DNSCache `169.254.20.10` (default: none).
    #[arg(long, env = "WASMLET_ALLOWED_NODE_LOCAL_DESTINATIONS")]
    #[serde(deserialize_with = "list_from_seq")]
    pub(crate) allowed_node_local_destinations: Option<String>,
    /// What was accepted without effect, reported once at start.
    #[arg(skip)]
    #[serde(skip)]
    pub(crate) notices: Vec<String>,
    /// How long a node shutdown (logind's PrepareForShutdown) is delayed so
    /// pods can stop, a Go duration (default 0 = off, as upstream).
    #[arg(long, env = "WASMLET_SHUTDOWN_GRACE_PERIOD")]
    pub(crate) shutdown_grace_period: Option<String>,
    /// The part of --shutdown-grace-period kept for critical pods
    /// (system-node-critical, system-cluster-critical), which stop last (default 0).
    #[arg(long, env = "WASMLET_SHUTDOWN_GRACE_PERIOD_CRITICAL_PODS")]
    pub(crate) shutdown_grace_period_critical_pods: Option<String>,
    /// Graceful node shutdown by priority band, instead of the two flags
    /// above: a list of `{priority, shutdownGracePeriodSeconds}` (config
    /// file only, as upstream).
    #[arg(skip)]
    pub(crate) shutdown_grace_period_by_pod_priority: Option<Vec<shutdown::ByPriority>>,
}

/// The validated settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) kubeconfig: PathBuf,
    pub(crate) node_name: String,
    pub(crate) node_ip: IpAddr,
    pub(crate) root_dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) max_pods: u32,
    pub(crate) node_labels: BTreeMap<String, String>,
    pub(crate) taints: Vec<k8s_openapi::api::core::v1::Taint>,
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    pub(crate) insecure_registries: Vec<String>,
    pub(crate) registry_ca: Option<Vec<u8>>,
    /// `--image-pull-progress-deadline` (0: off).
    pub(crate) image_pull_progress_deadline: std::time::Duration,
    pub(crate) pod_network: wasmlet_network::Mode,
    pub(crate) token_refresh_fraction: f64,
    pub(crate) security: security::Security,
    pub(crate) eviction: wasmlet_eviction::Config,
    pub(crate) reserved: wasmlet_node::Reserved,
    pub(crate) devices: devices::Devices,
    /// Where guests may connect: the node's limits (`--guest-outbound-cidrs`,
    /// `--allowed-node-local-destinations`).
    pub(crate) guest_network: wasmlet_runtime::NodePolicy,
    /// `--volume-stats-agg-period` (0: off).
    pub(crate) volume_stats_period: std::time::Duration,
    /// Upstream's settings: API address, healthz, status frequency, TLS policy.
    pub(crate) upstream: upstream::Upstream,
    /// Accepted settings without effect, to report once.
    pub(crate) notices: Vec<String>,
    /// Graceful node shutdown (off by default).
    pub(crate) shutdown: shutdown::Shutdown,
}

/// An invalid setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub(crate) struct Invalid(pub(crate) String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

impl Args {
    /// Fills what flags and environment left unset from the files: first
    /// `--wasmlet-config`, then `--config` (a KubeletConfiguration or a file
    /// of wasmlet's own settings).
    pub(crate) fn merge_file(mut self) -> Result<Self, Invalid> {
        if let Some(path) = self.wasmlet_config.clone() {
            let file = read_yaml(&path, "--wasmlet-config")?;
            if upstream::is_kubelet_configuration(&file) {
                return Err(invalid(format!(
                    "--wasmlet-config {}: a KubeletConfiguration goes to --config",
                    path.display()
                )));
            }
            let file = serde_yaml::from_value(file)
                .map_err(|e| invalid(format!("--wasmlet-config {}: {e}", path.display())))?;
            self.fill_from(file);
        }
        if let Some(path) = self.config.clone() {
            let file = read_yaml(&path, "--config")?;
            let file = if upstream::is_kubelet_configuration(&file) {
                let (file, notices) = upstream::translate(file, &path)?;
                self.notices.extend(notices);
                file
            } else {
                serde_yaml::from_value(file).map_err(|e| invalid(format!("--config {}: {e}", path.display())))?
            };
            self.fill_from(file);
        }
        Ok(self)
    }

    /// Takes every setting still unset from `file`.
    fn fill_from(&mut self, file: Args) {
        macro_rules! fill {
            ($($f:ident),*) => { $( if self.$f.is_none() { self.$f = file.$f; } )* };
        }
        fill!(
            kubeconfig,
            node_name,
            node_ip,
            root_dir,
            port,
            max_pods,
            node_labels,
            register_with_taints,
            tls_cert_file,
            tls_private_key_file,
            insecure_registries,
            image_pull_progress_deadline,
            registry_ca_file,
            pod_network,
            pod_interface,
            token_refresh_fraction,
            bootstrap_kubeconfig,
            cert_dir,
            rotate_certificates,
            rotate_server_certificates,
            anonymous_auth,
            client_ca_file,
            authentication_token_webhook,
            authorization_mode,
            eviction_hard,
            eviction_soft,
            eviction_soft_grace_period,
            eviction_max_pod_grace_period,
            eviction_pressure_transition_period,
            eviction_minimum_reclaim,
            merge_default_eviction_settings,
            eviction_monitoring_period,
            volume_stats_agg_period,
            system_reserved,
            kube_reserved,
            device_plugin_stop_grace_period,
            cdi_spec_dirs,
            guest_outbound_cidrs,
            allowed_node_local_destinations,
            address,
            healthz_port,
            healthz_bind_address,
            node_status_update_frequency,
            tls_min_version,
            tls_cipher_suites,
            feature_gates,
            kube_api_qps,
            kube_api_burst,
            cluster_dns,
            cluster_domain,
            pod_manifest_path,
            image_gc_high_threshold,
            image_gc_low_threshold,
            image_minimum_gc_age,
            image_maximum_gc_age,
            image_gc_period,
            shutdown_grace_period,
            shutdown_grace_period_critical_pods,
            shutdown_grace_period_by_pod_priority
        );
    }

    /// Applies defaults and validates everything, without network access.
    pub(crate) fn settings(mut self) -> Result<Settings, Invalid> {
        let mut notices = std::mem::take(&mut self.notices);
        let upstream = upstream::settings(&self, &mut notices)?;
        let security_flags = security::Flags::take(&mut self);
        let (eviction, reserved) = eviction::settings(&self)?;
        let node_name = match self.node_name {
            Some(n) => n,
            None => hostname().ok_or_else(|| invalid("cannot determine the host name; set --node-name"))?,
        };
        validate_dns_subdomain(&node_name).map_err(|e| invalid(format!("--node-name {node_name:?}: {e}")))?;

        let node_ip = match self.node_ip {
            Some(ip) => ip.parse().map_err(|_| invalid(format!("--node-ip {ip:?} is not an IP address")))?,
            None => default_ip().ok_or_else(|| invalid("cannot determine the node IP; set --node-ip"))?,
        };
        if node_ip.is_unspecified() {
            return Err(invalid("--node-ip must be a concrete address, not 0.0.0.0 or ::"));
        }

        let root_dir = self.root_dir.unwrap_or_else(|| PathBuf::from("/var/lib/wasmlet"));
        std::fs::create_dir_all(&root_dir).map_err(|e| invalid(format!("--root-dir {}: {e}", root_dir.display())))?;
        let probe = root_dir.join(".wasmlet-write-test");
        std::fs::write(&probe, b"")
            .map_err(|e| invalid(format!("--root-dir {} is not writable: {e}", root_dir.display())))?;
        let _ = std::fs::remove_file(&probe);
        let (kubeconfig, security) = security_flags.settings(&root_dir, self.tls_cert_file.is_some())?;

        let port = self.port.unwrap_or(10250);
        if port == 0 {
            return Err(invalid("--port must be between 1 and 65535"));
        }
        let max_pods = self.max_pods.unwrap_or(110);
        if max_pods == 0 {
            return Err(invalid("--max-pods must be at least 1"));
        }
        let node_labels = parse_labels(self.node_labels.as_deref().unwrap_or(""))?;
        let taints = match self.register_with_taints {
            Some(t) => parse_taints(&t)?,
            None => wasmlet_node::default_taints(),
        };
        let tls = match (self.tls_cert_file, self.tls_private_key_file) {
            (Some(c), Some(k)) => {
                check_pem(&c, "CERTIFICATE", "--tls-cert-file")?;
                check_pem(&k, "PRIVATE KEY", "--tls-private-key-file")?;
                Some((c, k))
            }
            (None, None) => None,
            _ => {
                return Err(invalid("--tls-cert-file and --tls-private-key-file go together"));
            }
        };
        let insecure_registries = split_list(self.insecure_registries.as_deref().unwrap_or(""));
        let registry_ca = match self.registry_ca_file {
            Some(p) => {
                check_pem(&p, "CERTIFICATE", "--registry-ca-file")?;
                Some(std::fs::read(&p).map_err(|e| invalid(format!("--registry-ca-file: {e}")))?)
            }
            None => None,
        };
        let image_pull_progress_deadline = match &self.image_pull_progress_deadline {
            Some(v) => wasmlet_eviction::duration::parse(v)
                .map_err(|e| invalid(format!("--image-pull-progress-deadline: {e}")))?,
            None => wasmlet_oci::limits::DEFAULT_PROGRESS_DEADLINE,
        };
        let interface = self.pod_interface.unwrap_or_else(|| wasmlet_network::DEFAULT_INTERFACE.to_owned());
        if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ']) {
            return Err(invalid(format!(
                "--pod-interface {interface:?} is not a valid interface name (1-15 characters)"
            )));
        }
        let pod_network = match self.pod_network.as_deref().unwrap_or("addresses") {
            "addresses" => wasmlet_network::Mode::Addresses { interface },
            "host" => wasmlet_network::Mode::Host,
            other => return Err(invalid(format!("--pod-network {other:?}: expected addresses or host"))),
        };
        let devices = devices::settings(
            self.device_plugin_stop_grace_period.as_deref(),
            self.cdi_spec_dirs.as_deref(),
            &root_dir,
        )?;
        let pod_interface = match &pod_network {
            wasmlet_network::Mode::Addresses { interface } => Some(interface.clone()),
            wasmlet_network::Mode::Host => None,
        };
        let guest_network = network::parse(
            self.guest_outbound_cidrs.as_deref(),
            self.allowed_node_local_destinations.as_deref(),
            node_ip,
            pod_interface,
        )?;
        let token_refresh_fraction = self.token_refresh_fraction.unwrap_or(0.8);
        if !(0.01..=1.0).contains(&token_refresh_fraction) {
            return Err(invalid("--token-refresh-fraction must be between 0.01 and 1"));
        }
        let volume_stats_period = match &self.volume_stats_agg_period {
            Some(v) => {
                wasmlet_eviction::duration::parse(v).map_err(|e| invalid(format!("--volume-stats-agg-period: {e}")))?
            }
            None => wasmlet_csi::DEFAULT_STATS_PERIOD,
        };
        let shutdown = shutdown::settings(
            self.shutdown_grace_period.as_deref(),
            self.shutdown_grace_period_critical_pods.as_deref(),
            self.shutdown_grace_period_by_pod_priority.as_deref(),
        )?;
        Ok(Settings {
            kubeconfig,
            node_name,
            node_ip,
            root_dir,
            port,
            max_pods,
            node_labels,
            taints,
            tls,
            insecure_registries,
            registry_ca,
            image_pull_progress_deadline,
            pod_network,
            token_refresh_fraction,
            security,
            eviction,
            reserved,
            devices,
            guest_network,
            volume_stats_period,
            upstream,
            notices,
            shutdown,
        })
    }
}

impl Settings {
    /// What no `hostPath` volume may expose: the root directory (keys,
    /// checkpoints, every pod's volumes), the kubeconfigs, the certificate
    /// directory and the serving key pair.
    pub(crate) fn protected_host_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.root_dir.clone(), self.kubeconfig.clone(), self.security.cert_dir.clone()];
        paths.extend(self.security.bootstrap_kubeconfig.clone());
        if let Some((cert, key)) = &self.tls {
            paths.extend([cert.clone(), key.clone()]);
        }
        paths
    }
}

fn read_yaml(path: &Path, flag: &str) -> Result<serde_yaml::Value, Invalid> {
    let text = std::fs::read_to_string(path).map_err(|e| invalid(format!("{flag} {}: {e}", path.display())))?;
    serde_yaml::from_str(&text).map_err(|e| invalid(format!("{flag} {}: {e}", path.display())))
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

/// Label keys a kubelet may set on its own Node in the reserved namespaces
/// (NodeRestriction; upstream refuses to start with others).
const KUBELET_LABELS: [&str; 10] = [
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
];

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, Invalid> {
    let mut out = BTreeMap::new();
    for item in split_list(s) {
        let (k, v) =
            item.split_once('=').ok_or_else(|| invalid(format!("--node-labels: {item:?} is not key=value")))?;
        validate_label_key(k).map_err(|e| invalid(format!("--node-labels: key {k:?}: {e}")))?;
        if v.len() > 63 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(invalid(format!("--node-labels: value {v:?} of {k:?} is not a valid label value")));
        }
        let prefix = k.split_once('/').map(|(p, _)| p).unwrap_or("");
        let reserved =
            ["kubernetes.io", "k8s.io"].iter().any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")));
        let allowed = KUBELET_LABELS.contains(&k)
            || ["kubelet.kubernetes.io", "node.kubernetes.io"]
                .iter()
                .any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")));
        if reserved && !allowed {
            return Err(invalid(format!(
                "--node-labels: {k:?} is in a kubernetes.io/k8s.io namespace a kubelet may not set (use node.kubernetes.io/...)"
            )));
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn parse_taints(s: &str) -> Result<Vec<k8s_openapi::api::core::v1::Taint>, Invalid> {
    split_list(s)
        .into_iter()
        .map(|item| {
            let (kv, effect) = item
                .rsplit_once(':')
                .ok_or_else(|| invalid(format!("--register-with-taints: {item:?} is not key[=value]:Effect")))?;
            if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
                return Err(invalid(format!("--register-with-taints: unknown effect {effect:?} in {item:?}")));
            }
            let (key, value) = match kv.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (kv, None),
            };
            validate_label_key(key).map_err(|e| invalid(format!("--register-with-taints: key {key:?}: {e}")))?;
            Ok(k8s_openapi::api::core::v1::Taint { key: key.into(), value, effect: effect.into(), time_added: None })
        })
        .collect()
}

fn validate_label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        validate_dns_subdomain(p)?;
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err("not a valid qualified name".into()) }
}

fn validate_dns_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err("must be a lower-case DNS subdomain (a-z, 0-9, '-', '.')".into()) }
}

fn check_pem(path: &Path, kind: &str, flag: &str) -> Result<(), Invalid> {
    let text = std::fs::read_to_string(path).map_err(|e| invalid(format!("{flag} {}: {e}", path.display())))?;
    if !text.contains("-----BEGIN") || !text.contains(kind) {
        return Err(invalid(format!("{flag} {}: no PEM {kind} in the file", path.display())));
    }
    Ok(())
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_lowercase()).filter(|n| !n.is_empty())
}

/// The address of the interface holding the default route (no packet is sent).
fn default_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(10, 255, 255, 255), 1)).ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
}

fn labels_from_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let map: Option<BTreeMap<String, String>> = serde::Deserialize::deserialize(d)?;
    Ok(map.map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")))
}

fn list_from_seq<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let list: Option<Vec<String>> = serde::Deserialize::deserialize(d)?;
    Ok(list.map(|l| l.join(",")))
}

mod devices;
mod eviction;
mod network;
mod security;
mod shutdown;
mod upstream;

pub(crate) use security::AuthorizationMode;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upstream_tests;
