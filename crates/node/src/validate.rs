//! Checks on a [`NodeConfig`] for what the API server would reject forever
//! (registration retries every failure, so these must fail fast instead):
//! name and label syntax, labels NodeRestriction forbids a kubelet, taints and
//! the heartbeat durations.

use std::time::Duration;

use crate::config::NodeConfig;

/// What is wrong with a [`NodeConfig`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The node name is not a DNS-1123 subdomain.
    #[error("node name {0:?} is not a valid DNS subdomain")]
    NodeName(String),
    /// A label key or value has invalid syntax.
    #[error("label {key:?}={value:?} is invalid: {reason}")]
    Label {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// NodeRestriction forbids a kubelet to set this label.
    #[error(
        "a kubelet may not set label {0:?}: NodeRestriction allows only kubelet labels in the \
         kubernetes.io and k8s.io namespaces, and none in node-restriction.kubernetes.io"
    )]
    ForbiddenLabel(String),
    /// A taint is invalid.
    #[error("taint {key:?} is invalid: {reason}")]
    Taint {
        /// The taint key.
        key: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A setting is out of range.
    #[error("{field} is invalid: {reason}")]
    Setting {
        /// The `NodeConfig` field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Label keys a kubelet may set (upstream `kubeletLabels`).
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];
/// Label namespaces (and their subdomains) a kubelet may use.
const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];

pub(crate) fn config(c: &NodeConfig) -> Result<(), Error> {
    if !is_dns_subdomain(&c.name) {
        return Err(Error::NodeName(c.name.clone()));
    }
    for (key, value) in &c.node_labels() {
        label(key, value)?;
    }
    for t in &c.taints {
        taint(t)?;
    }
    durations(c)?;
    if c.max_pods == 0 {
        return Err(Error::Setting { field: "max_pods", reason: "must be at least 1" });
    }
    Ok(())
}

fn durations(c: &NodeConfig) -> Result<(), Error> {
    let setting = |field, reason| Err(Error::Setting { field, reason });
    let secs = c.lease_duration.as_secs();
    if secs == 0 || secs > i32::MAX as u64 || c.lease_duration.subsec_nanos() != 0 {
        return setting("lease_duration", "must be a positive whole number of seconds");
    }
    if c.renew_interval.is_zero() || c.renew_interval >= c.lease_duration {
        return setting("renew_interval", "must be positive and below lease_duration");
    }
    if c.status_update_frequency.is_zero() {
        return setting("status_update_frequency", "must be positive");
    }
    if c.status_report_frequency < c.status_update_frequency {
        return setting("status_report_frequency", "must not be below status_update_frequency");
    }
    if c.status_update_frequency > Duration::from_secs(24 * 3600) {
        return setting("status_update_frequency", "must be at most a day");
    }
    Ok(())
}

fn label(key: &str, value: &str) -> Result<(), Error> {
    let bad = |reason| Error::Label { key: key.to_owned(), value: value.to_owned(), reason };
    if !is_qualified_name(key) {
        return Err(bad("the key is not a qualified name ([prefix/]name)"));
    }
    if !is_label_value(value) {
        return Err(bad("the value must be at most 63 alphanumerics, '-', '_' or '.', \
             starting and ending alphanumeric"));
    }
    if !is_kubelet_settable(key) {
        return Err(Error::ForbiddenLabel(key.to_owned()));
    }
    Ok(())
}

fn taint(t: &k8s_openapi::api::core::v1::Taint) -> Result<(), Error> {
    let bad = |reason| Error::Taint { key: t.key.clone(), reason };
    if !is_qualified_name(&t.key) {
        return Err(bad("the key is not a qualified name"));
    }
    if !t.value.as_deref().is_none_or(is_label_value) {
        return Err(bad("the value is not a valid label value"));
    }
    if !matches!(t.effect.as_str(), "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(bad("the effect must be NoSchedule, PreferNoSchedule or NoExecute"));
    }
    Ok(())
}

/// Whether NodeRestriction lets a kubelet set label `key` on its Node.
pub(crate) fn is_kubelet_settable(key: &str) -> bool {
    let Some((namespace, _)) = key.split_once('/') else {
        return true;
    };
    let in_ns = |ns: &str| namespace == ns || namespace.ends_with(&format!(".{ns}"));
    if in_ns("node-restriction.kubernetes.io") {
        return false;
    }
    if !in_ns("kubernetes.io") && !in_ns("k8s.io") {
        return true;
    }
    KUBELET_LABELS.contains(&key) || KUBELET_LABEL_NAMESPACES.iter().any(|ns| in_ns(ns))
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, 1 to 63 characters.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name_part(name),
        None => is_name_part(s),
    }
}

fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_name_part(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NodeConfig {
        NodeConfig::new("hb-1", std::net::IpAddr::from([127, 0, 0, 1]), "127.0.0.1")
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(cfg().validate(), Ok(()));
    }

    #[test]
    fn node_restriction_label_rules() {
        for ok in [
            "example.com/team",
            "plain",
            "kubernetes.io/hostname",
            "node.kubernetes.io/instance-type",
            "node.kubernetes.io/wasm",
            "x.kubelet.kubernetes.io/y",
            "topology.kubernetes.io/zone",
        ] {
            assert!(is_kubelet_settable(ok), "{ok}");
        }
        for forbidden in [
            "node-restriction.kubernetes.io/x",
            "a.node-restriction.kubernetes.io/x",
            "node-role.kubernetes.io/worker",
            "kubernetes.io/other",
            "k8s.io/x",
            "foo.k8s.io/x",
        ] {
            assert!(!is_kubelet_settable(forbidden), "{forbidden}");
        }
        let mut c = cfg();
        c.labels.insert("node-role.kubernetes.io/wasm".into(), String::new());
        assert_eq!(c.validate(), Err(Error::ForbiddenLabel("node-role.kubernetes.io/wasm".into())));
    }

    #[test]
    fn syntax_errors_are_reported() {
        let mut c = cfg();
        c.name = "Not_A_Name".into();
        assert!(matches!(c.validate(), Err(Error::NodeName(_))));
        let mut c = cfg();
        c.labels.insert("example.com/x".into(), "-bad".into());
        assert!(matches!(c.validate(), Err(Error::Label { .. })));
        let mut c = cfg();
        c.taints[0].effect = "Sometimes".into();
        assert!(matches!(c.validate(), Err(Error::Taint { .. })));
        let mut c = cfg();
        c.renew_interval = c.lease_duration;
        assert!(matches!(c.validate(), Err(Error::Setting { field: "renew_interval", .. })));
        let mut c = cfg();
        c.hostname = "a".repeat(64);
        assert!(matches!(c.validate(), Err(Error::Label { .. })));
    }
}
