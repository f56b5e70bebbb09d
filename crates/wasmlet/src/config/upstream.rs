//! What lets wasmlet stand in for the upstream kubelet: its
//! `KubeletConfiguration` file ([`translate`]), the flags installers pass
//! that mean nothing here ([`IgnoredFlags`]), and the validation of the
//! upstream settings wasmlet adds ([`settings`]).
//!
//! A KubeletConfiguration is translated into wasmlet's own file format
//! (the same camelCase keys where the meaning is the same) and then read
//! like one. Fields wasmlet does not implement are accepted and reported
//! once, never fatal; their list is in `docs/configuration.md`.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::{Args, Invalid, invalid, split_list};

/// `apiVersion` of the KubeletConfiguration wasmlet reads.
const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";

/// KubeletConfiguration fields read as they are (same key in wasmlet's file).
const SAME_KEY: [&str; 27] = [
    "address",
    "port",
    "healthzPort",
    "healthzBindAddress",
    "maxPods",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "tlsMinVersion",
    "tlsCipherSuites",
    "rotateCertificates",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionMaxPodGracePeriod",
    "evictionPressureTransitionPeriod",
    "evictionMinimumReclaim",
    "mergeDefaultEvictionSettings",
    "systemReserved",
    "kubeReserved",
    "volumeStatsAggPeriod",
    "nodeStatusUpdateFrequency",
    "featureGates",
    "kubeAPIQPS",
    "kubeAPIBurst",
    "clusterDNS",
    "clusterDomain",
    "staticPodPath",
];

/// Also read as they are, in a second list to keep the arrays short.
const SAME_KEY_2: [&str; 7] = [
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority",
];

/// Fields whose zero value upstream's defaulting replaces by the default
/// (kubeadm writes `0s` for every duration it leaves to the kubelet).
const ZERO_IS_DEFAULT: [&str; 6] = [
    "port",
    "maxPods",
    "nodeStatusUpdateFrequency",
    "evictionPressureTransitionPeriod",
    "volumeStatsAggPeriod",
    "imageMinimumGCAge",
];

/// Upstream flags installers pass that mean nothing for wasmlet (kubeadm
/// passes the first two): accepted, reported once, otherwise ignored.
#[derive(Debug, Default, Clone, clap::Args)]
pub(crate) struct IgnoredFlags {
    #[arg(long, hide = true)]
    container_runtime_endpoint: Option<String>,
    #[arg(long, hide = true)]
    pod_infra_container_image: Option<String>,
    #[arg(long, hide = true)]
    image_service_endpoint: Option<String>,
    #[arg(long, hide = true)]
    cgroup_driver: Option<String>,
    #[arg(long, hide = true)]
    cgroup_root: Option<String>,
    #[arg(long, hide = true)]
    runtime_cgroups: Option<String>,
    #[arg(long, hide = true)]
    kubelet_cgroups: Option<String>,
    #[arg(long, hide = true)]
    cloud_provider: Option<String>,
    /// klog's verbosity.
    #[arg(long = "v", hide = true)]
    verbosity: Option<String>,
}

impl IgnoredFlags {
    /// One notice per flag given.
    pub(crate) fn notices(&self) -> Vec<String> {
        let flags = [
            ("--container-runtime-endpoint", &self.container_runtime_endpoint, "wasmlet has no container runtime"),
            ("--pod-infra-container-image", &self.pod_infra_container_image, "wasm pods have no sandbox image"),
            ("--image-service-endpoint", &self.image_service_endpoint, "wasmlet pulls images itself"),
            ("--cgroup-driver", &self.cgroup_driver, "guests are limited inside the engine, not by cgroups"),
            ("--cgroup-root", &self.cgroup_root, "guests are limited inside the engine, not by cgroups"),
            ("--runtime-cgroups", &self.runtime_cgroups, "guests are limited inside the engine, not by cgroups"),
            ("--kubelet-cgroups", &self.kubelet_cgroups, "guests are limited inside the engine, not by cgroups"),
            ("--cloud-provider", &self.cloud_provider, "wasmlet has no cloud provider integration"),
            ("--v", &self.verbosity, "set WASMLET_LOG (e.g. debug) for wasmlet's log level"),
        ];
        flags
            .into_iter()
            .filter_map(|(flag, value, why)| value.as_ref().map(|v| format!("ignored flag {flag}={v}: {why}")))
            .collect()
    }
}

/// Whether a parsed YAML file is a KubeletConfiguration.
pub(super) fn is_kubelet_configuration(file: &Value) -> bool {
    file.get("kind").and_then(Value::as_str) == Some("KubeletConfiguration")
}

/// Translates a KubeletConfiguration into wasmlet's own settings, with a
/// notice for every field that is not implemented.
pub(super) fn translate(file: Value, path: &Path) -> Result<(Args, Vec<String>), Invalid> {
    let at = |msg: String| invalid(format!("--config {}: {msg}", path.display()));
    let Value::Mapping(mut fields) = file else {
        return Err(at("not a YAML mapping".into()));
    };
    match fields.remove("apiVersion").as_ref().and_then(Value::as_str) {
        Some(API_VERSION) => {}
        other => return Err(at(format!("apiVersion {other:?} of a KubeletConfiguration: expected {API_VERSION}"))),
    }
    fields.remove("kind");
    let mut out = Mapping::new();
    let mut notices = Vec::new();
    for key in SAME_KEY.iter().chain(&SAME_KEY_2) {
        if let Some(v) = fields.remove(*key)
            && !(ZERO_IS_DEFAULT.contains(key) && is_zero(&v))
        {
            out.insert((*key).into(), v);
        }
    }
    if let Some(v) = fields.remove("serverTLSBootstrap") {
        out.insert("rotateServerCertificates".into(), v);
    }
    if let Some(v) = fields.remove("registerWithTaints") {
        out.insert("registerWithTaints".into(), taints(v).map_err(at)?);
    }
    if let Some(Value::Mapping(mut authn)) = fields.remove("authentication") {
        take_nested(&mut authn, &["anonymous", "enabled"], "anonymousAuth", &mut out);
        take_nested(&mut authn, &["webhook", "enabled"], "authenticationTokenWebhook", &mut out);
        take_nested(&mut authn, &["x509", "clientCAFile"], "clientCAFile", &mut out);
        report_rest("authentication", authn, &mut notices);
    }
    if let Some(Value::Mapping(mut authz)) = fields.remove("authorization") {
        take_nested(&mut authz, &["mode"], "authorizationMode", &mut out);
        report_rest("authorization", authz, &mut notices);
    }
    report_rest("", fields, &mut notices);
    let args: Args = serde_yaml::from_value(Value::Mapping(out)).map_err(|e| at(e.to_string()))?;
    Ok((args, notices))
}

/// `0`, `0s`, `""` and the like: a value upstream's defaulting replaces.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || wasmlet_eviction::duration::parse(s).is_ok_and(|d| d.is_zero()),
        _ => false,
    }
}

/// Moves `from[path...]` to `out[key]`, removing emptied maps.
fn take_nested(from: &mut Mapping, path: &[&str], key: &str, out: &mut Mapping) {
    let Some((first, rest)) = path.split_first() else { return };
    if rest.is_empty() {
        if let Some(v) = from.remove(*first) {
            out.insert(key.into(), v);
        }
        return;
    }
    if let Some(Value::Mapping(inner)) = from.get_mut(*first) {
        take_nested(inner, rest, key, out);
        if inner.is_empty() {
            from.remove(*first);
        }
    }
}

/// A notice for each field left in `rest` (those wasmlet does not implement).
fn report_rest(prefix: &str, rest: Mapping, notices: &mut Vec<String>) {
    for (k, v) in rest {
        let name = k.as_str().unwrap_or("?");
        let name = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
        match v {
            Value::Mapping(inner) if !prefix.is_empty() => {
                report_rest(&name, inner, notices);
            }
            _ => notices.push(format!("KubeletConfiguration field {name} is not implemented by wasmlet; ignored")),
        }
    }
}

/// `[{key, value, effect}]` as wasmlet's `["key=value:Effect"]`.
fn taints(v: Value) -> Result<Value, String> {
    let Value::Sequence(items) = v else { return Err("registerWithTaints must be a list".into()) };
    let mut out = Vec::new();
    for item in items {
        let get = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (key, value, effect) = (get("key"), get("value"), get("effect"));
        if key.is_empty() || effect.is_empty() {
            return Err(format!("registerWithTaints entry {item:?} needs a key and an effect"));
        }
        let kv = if value.is_empty() { key } else { format!("{key}={value}") };
        out.push(Value::String(format!("{kv}:{effect}")));
    }
    Ok(Value::Sequence(out))
}

/// The upstream settings wasmlet adds, validated.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    /// `--address`; `None`: the node IP.
    pub(crate) address: Option<IpAddr>,
    /// `--healthz-bind-address:--healthz-port`; `None`: off.
    pub(crate) healthz: Option<std::net::SocketAddr>,
    /// `--node-status-update-frequency`.
    pub(crate) node_status_update_frequency: Duration,
    /// `--tls-min-version`, `--tls-cipher-suites`.
    pub(crate) tls_policy: wasmlet_api::TlsPolicy,
    /// `--image-gc-*`, `--image-{minimum,maximum}-gc-age`.
    pub(crate) image_gc: wasmlet_pods::ImageGcPolicy,
    /// `--image-gc-period`.
    pub(crate) image_gc_period: Duration,
    /// `--pod-manifest-path`: static pods.
    pub(crate) static_pods: Option<std::path::PathBuf>,
}

/// Validates the upstream settings; notices for what is accepted without effect.
pub(super) fn settings(args: &Args, notices: &mut Vec<String>) -> Result<Upstream, Invalid> {
    let ip =
        |flag: &str, v: &str| v.parse::<IpAddr>().map_err(|_| invalid(format!("{flag} {v:?} is not an IP address")));
    let address = args.address.as_deref().map(|a| ip("--address", a)).transpose()?;
    let healthz = match args.healthz_port.unwrap_or(wasmlet_api::DEFAULT_HEALTHZ_PORT) {
        0 => None,
        port => Some(
            (ip("--healthz-bind-address", args.healthz_bind_address.as_deref().unwrap_or("127.0.0.1"))?, port).into(),
        ),
    };
    let node_status_update_frequency = match &args.node_status_update_frequency {
        Some(v) => wasmlet_eviction::duration::parse(v).ok().filter(|d| !d.is_zero()).ok_or_else(|| {
            invalid(format!("--node-status-update-frequency {v:?}: expected a positive Go duration such as 10s"))
        })?,
        None => Duration::from_secs(10),
    };
    let suites = split_list(args.tls_cipher_suites.as_deref().unwrap_or(""));
    let tls_policy = wasmlet_api::TlsPolicy::parse(args.tls_min_version.as_deref(), &suites)
        .map_err(|e| invalid(format!("--tls-min-version/--tls-cipher-suites: {e}")))?;
    notices.extend(tls_policy.notes().iter().cloned());
    if let Some(gates) = &args.feature_gates {
        for gate in split_list(gates) {
            match gate.split_once('=') {
                Some((name, v)) if !name.is_empty() && v.parse::<bool>().is_ok() => {
                    notices.push(format!("feature gate {name}={v} accepted; it changes nothing in wasmlet"));
                }
                _ => return Err(invalid(format!("--feature-gates {gate:?}: expected Name=true or Name=false"))),
            }
        }
    }
    if args.kube_api_qps.is_some_and(|q| !(q >= 0.0 && q.is_finite())) {
        return Err(invalid("--kube-api-qps must be a number >= 0"));
    }
    if args.kube_api_qps.is_some() || args.kube_api_burst.is_some() {
        notices.push("--kube-api-qps/--kube-api-burst accepted; wasmlet does not rate-limit its API client yet".into());
    }
    for dns in split_list(args.cluster_dns.as_deref().unwrap_or("")) {
        ip("--cluster-dns", &dns)?;
    }
    if args.cluster_dns.is_some() || args.cluster_domain.is_some() {
        notices.push("--cluster-dns/--cluster-domain accepted; guests do not get cluster DNS yet".into());
    }
    let (high, low) = (args.image_gc_high_threshold.unwrap_or(85), args.image_gc_low_threshold.unwrap_or(80));
    if high > 100 || low >= high {
        return Err(invalid(format!(
            "--image-gc-low-threshold ({low}) must be less than --image-gc-high-threshold ({high}), both 0-100"
        )));
    }
    let duration = |flag: &str, v: &Option<String>, default: Duration| match v {
        Some(v) => wasmlet_eviction::duration::parse(v).map_err(|e| invalid(format!("{flag} {v:?}: {e}"))),
        None => Ok(default),
    };
    let min_age = duration("--image-minimum-gc-age", &args.image_minimum_gc_age, Duration::from_secs(120))?;
    let max_age = duration("--image-maximum-gc-age", &args.image_maximum_gc_age, Duration::ZERO)?;
    if !max_age.is_zero() && max_age < min_age {
        return Err(invalid("--image-maximum-gc-age must be 0 or at least --image-minimum-gc-age"));
    }
    let image_gc = wasmlet_pods::ImageGcPolicy {
        high_percent: high,
        low_percent: low,
        min_age,
        max_age: (!max_age.is_zero()).then_some(max_age),
    };
    let image_gc_period = duration("--image-gc-period", &args.image_gc_period, Duration::from_secs(300))?;
    if image_gc_period.is_zero() {
        return Err(invalid("--image-gc-period must be positive"));
    }
    notices.extend(args.ignored.notices());
    let static_pods = args.pod_manifest_path.clone().filter(|p| !p.as_os_str().is_empty());
    Ok(Upstream { address, healthz, node_status_update_frequency, tls_policy, image_gc, image_gc_period, static_pods })
}
