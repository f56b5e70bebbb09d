//! A container's network surface: the addresses a `wasi:http` server listens
//! on, and the `wasi:sockets` policy of its guests, from the container's
//! ports and the pod's annotations.
//!
//! | annotation | value | default |
//! |---|---|---|
//! | `wasmlet.dev/listen-ports` | extra ports a guest may listen on: `9000,9001/udp` | none |
//! | `wasmlet.dev/outbound` | `any` (all the node allows), `none`, or CIDRs `10.0.0.0/8,192.168.1.5` | `any` |
//! | `wasmlet.dev/name-lookup` | `true` / `false` | `true` |
//!
//! A guest may always listen on its container's declared `containerPort`s,
//! on the pod IP only.
//!
//! `wasmlet.dev/outbound` only narrows what the node allows (see
//! [`wasmlet_runtime::sockets`]): an entry naming a node-local destination
//! (loopback, the node's IPs, link-local, metadata endpoints) or one outside
//! the node's `--guest-outbound-cidrs` grants nothing. Such an entry is not
//! an error; the container starts, and a Warning event
//! ([`OUTBOUND_NOT_ALLOWED`]) names the entries and why.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Container, Pod};
use wasmlet_runtime::{NodeNetwork, Outbound, Refusal, SocketPolicy};

/// Extra ports a guest may listen on.
pub const LISTEN_PORTS: &str = "wasmlet.dev/listen-ports";
/// Where guests may connect to.
pub const OUTBOUND: &str = "wasmlet.dev/outbound";
/// Whether guests may resolve names.
pub const NAME_LOOKUP: &str = "wasmlet.dev/name-lookup";

/// Reason of the Warning event for `wasmlet.dev/outbound` entries the node
/// does not allow.
pub(crate) const OUTBOUND_NOT_ALLOWED: &str = "OutboundNotAllowed";

/// The port a `wasi:http` component serves on when its container declares
/// no TCP port (`wasmtime serve`'s default).
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// An annotation that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid annotation {key}={value:?}: {reason}")]
pub(crate) struct InvalidAnnotation {
    key: &'static str,
    value: String,
    reason: String,
}

/// The socket policy of `container`'s guests, apart from the pod IP (filled
/// in when the pod has one: [`with_pod_ip`]).
pub(crate) fn policy(pod: &Pod, container: &Container) -> Result<SocketPolicy, InvalidAnnotation> {
    let annotation = |key: &'static str| {
        pod.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(|v| (key, v.trim().to_owned()))
    };
    let invalid = |key, value: &str, reason: String| InvalidAnnotation { key, value: value.to_owned(), reason };
    let mut policy = SocketPolicy::default();
    for port in container.ports.iter().flatten() {
        let Ok(number) = u16::try_from(port.container_port) else { continue };
        match port.protocol.as_deref() {
            Some("UDP") => policy.udp_ports.insert(number),
            _ => policy.tcp_ports.insert(number),
        };
    }
    if let Some((key, value)) = annotation(LISTEN_PORTS) {
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (number, udp) = match item.split_once('/') {
                Some((n, p)) if p.eq_ignore_ascii_case("udp") => (n, true),
                Some((n, p)) if p.eq_ignore_ascii_case("tcp") => (n, false),
                Some(_) => return Err(invalid(key, &value, format!("{item:?}: the protocol is tcp or udp"))),
                None => (item, false),
            };
            let number: u16 = match number.parse() {
                Ok(n) if n > 0 => n,
                _ => return Err(invalid(key, &value, format!("{item:?} is not a port (1-65535)"))),
            };
            if udp {
                policy.udp_ports.insert(number)
            } else {
                policy.tcp_ports.insert(number)
            };
        }
    }
    if let Some((key, value)) = annotation(OUTBOUND) {
        policy.outbound = match value.as_str() {
            "any" | "" => Outbound::Any,
            "none" => Outbound::Only(Vec::new()),
            list => Outbound::Only(
                list.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|net| {
                        net.parse()
                            .or_else(|_| net.parse::<IpAddr>().map(ipnet::IpNet::from))
                            .map_err(|_| invalid(key, &value, format!("{net:?} is not a CIDR or an IP address")))
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
    }
    if let Some((key, value)) = annotation(NAME_LOOKUP) {
        policy.name_lookup = match value.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(invalid(key, &value, "expected true or false".into())),
        };
    }
    Ok(policy)
}

/// The entries of `policy`'s outbound list that grant nothing on `node`,
/// with why.
pub(crate) fn not_allowed(policy: &SocketPolicy, node: &NodeNetwork) -> Vec<(IpNet, Refusal)> {
    match &policy.outbound {
        Outbound::Any => Vec::new(),
        Outbound::Only(nets) => nets.iter().filter_map(|net| Some((*net, node.refusal_of_net(net)?))).collect(),
    }
}

/// The note of the [`OUTBOUND_NOT_ALLOWED`] event for `entries`.
pub(crate) fn not_allowed_note(entries: &[(IpNet, Refusal)]) -> String {
    let list: Vec<String> = entries.iter().map(|(net, why)| format!("{net} ({why})")).collect();
    format!("{OUTBOUND}: not allowed on this node, ignored: {}", list.join(", "))
}

/// `policy` for a pod whose address is `pod_ip`.
pub(crate) fn with_pod_ip(mut policy: SocketPolicy, pod_ip: IpAddr) -> SocketPolicy {
    policy.pod_ips = vec![pod_ip];
    policy
}

/// Where a `wasi:http` component of `container` listens: the pod IP with
/// each declared TCP port, or [`DEFAULT_HTTP_PORT`] when there is none.
pub(crate) fn http_listen(container: &Container, pod_ip: IpAddr) -> Vec<SocketAddr> {
    let ports: BTreeSet<u16> = container
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    if ports.is_empty() {
        return vec![SocketAddr::new(pod_ip, DEFAULT_HTTP_PORT)];
    }
    ports.into_iter().map(|port| SocketAddr::new(pod_ip, port)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotations: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "annotations": annotations}})).unwrap()
    }

    fn container(ports: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({"name": "c", "ports": ports})).unwrap()
    }

    #[test]
    fn declared_ports_and_annotations_make_the_policy() {
        let c = container(serde_json::json!([{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]));
        let p = pod(serde_json::json!({
            LISTEN_PORTS: "9000, 9001/udp",
            OUTBOUND: "10.0.0.0/8,127.0.0.1",
            NAME_LOOKUP: "false",
        }));
        let policy = policy(&p, &c).unwrap();
        assert_eq!(policy.tcp_ports, BTreeSet::from([80, 9000]));
        assert_eq!(policy.udp_ports, BTreeSet::from([53, 9001]));
        assert_eq!(
            policy.outbound,
            Outbound::Only(vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()])
        );
        assert!(!policy.name_lookup);
    }

    #[test]
    fn defaults_allow_outbound_and_only_declared_ports() {
        let policy = policy(&pod(serde_json::json!({})), &container(serde_json::json!([]))).unwrap();
        assert!(policy.tcp_ports.is_empty() && policy.udp_ports.is_empty());
        assert_eq!(policy.outbound, Outbound::Any);
        assert!(policy.name_lookup);
        let none = policy_of(OUTBOUND, "none").unwrap();
        assert!(!none.outbound.allows_any());
    }

    fn policy_of(key: &str, value: &str) -> Result<SocketPolicy, InvalidAnnotation> {
        policy(&pod(serde_json::json!({ key: value })), &container(serde_json::json!([])))
    }

    #[test]
    fn bad_annotations_are_refused_with_the_reason() {
        for (key, value, needle) in [
            (LISTEN_PORTS, "http", "not a port"),
            (LISTEN_PORTS, "0", "not a port"),
            (LISTEN_PORTS, "80/sctp", "tcp or udp"),
            (OUTBOUND, "everywhere", "not a CIDR"),
            (NAME_LOOKUP, "yes", "true or false"),
        ] {
            let err = policy_of(key, value).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(needle), "{key}={value}: {err}");
        }
    }

    #[test]
    fn outbound_entries_the_node_refuses_are_named() {
        let node = NodeNetwork::with_addresses(wasmlet_runtime::NodePolicy::default(), ["192.0.2.2".parse().unwrap()]);
        let policy =
            policy_of(OUTBOUND, "10.0.0.0/8, 127.0.0.1, 192.0.2.2, 169.254.77.0/24, ::ffff:127.0.0.1").unwrap();
        let refused = not_allowed(&policy, &node);
        let nets: Vec<String> = refused.iter().map(|(net, _)| net.to_string()).collect();
        assert_eq!(nets, ["127.0.0.1/32", "192.0.2.2/32", "169.254.77.0/24", "::ffff:127.0.0.1/128"]);
        assert_eq!(refused[0].1, Refusal::Loopback);
        assert_eq!(refused[1].1, Refusal::NodeAddress);
        assert_eq!(refused[2].1, Refusal::LinkLocal);
        let note = not_allowed_note(&refused);
        assert!(
            note.starts_with(
                "wasmlet.dev/outbound: not allowed on this node, ignored: 127.0.0.1/32 (node-local (loopback))"
            ),
            "{note}"
        );
        assert!(not_allowed(&policy_of(OUTBOUND, "any").unwrap(), &node).is_empty());
        assert!(not_allowed(&policy_of(OUTBOUND, "10.0.0.0/8").unwrap(), &node).is_empty());
    }

    #[test]
    fn http_listens_on_declared_tcp_ports_or_8080() {
        let ip: IpAddr = "10.1.0.5".parse().unwrap();
        let c = container(serde_json::json!([{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]));
        assert_eq!(http_listen(&c, ip), vec!["10.1.0.5:80".parse().unwrap()]);
        assert_eq!(http_listen(&container(serde_json::json!(null)), ip), vec!["10.1.0.5:8080".parse().unwrap()]);
    }
}
