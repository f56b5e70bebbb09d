//! [`SocketPolicy`]: what a WASI preview 2 guest may do with `wasi:sockets`
//! (and with outgoing `wasi:http` requests).
//!
//! Guests run inside the node agent's process, in the node's network
//! namespace, so a socket a guest opens is a socket on the node. The policy
//! keeps a pod to what it would have in its own network namespace:
//!
//! - **Listening** (TCP `bind`/`listen`, UDP `bind`) on a non-zero port only
//!   on one of the pod's addresses ([`SocketPolicy::pod_ips`]) and one of its
//!   declared ports ([`SocketPolicy::tcp_ports`], [`SocketPolicy::udp_ports`],
//!   the container ports plus any the pod allows by annotation). Binding the
//!   unspecified address (`0.0.0.0`, `::`) with a port is refused, because on
//!   the node it would take that port on every address, other pods' and the
//!   node's included; a guest must bind its pod IP. (List the unspecified
//!   address in `pod_ips` to allow it, e.g. for `hostNetwork` pods.)
//! - **Ephemeral ports** (port 0, also the implicit bind of a `connect`) are
//!   allowed on those addresses and on the unspecified address whenever the
//!   guest may connect somewhere, so clients work; `listen` on an ephemeral
//!   port is refused (nobody could reach it through the pod's ports).
//! - **Connecting** (TCP `connect`, UDP `send`, outgoing `wasi:http`) follows
//!   [`Outbound`]: by default any address except loopback, as a Kubernetes
//!   pod can reach other pods, Services and the internet. Loopback is the
//!   *node's* (a pod's `localhost` is not its own here), so it is refused
//!   unless a [`Outbound::Only`] list names it.
//! - **Accepting** connections and receiving datagrams is always allowed: the
//!   listening side was checked.
//! - **Name lookup** (`wasi:sockets/ip-name-lookup`) uses the node's resolver
//!   and is allowed unless [`SocketPolicy::name_lookup`] is off or nothing may
//!   be connected to.
//!
//! WASI preview 1 modules have no sockets; the policy applies to components
//! (commands and `wasi:http` handlers).
//!
//! # Caveats
//!
//! - The check sees addresses, not names: an outgoing `wasi:http` request is
//!   checked against the addresses its host resolves to just before the
//!   connection is made (every resolved address must be allowed), and the
//!   connection resolves the name once more.
//! - A UDP server replying to clients outside an [`Outbound::Only`] list is
//!   refused like any other send.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// Where a guest may connect to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outbound {
    /// Any address except loopback (`127.0.0.0/8`, `::1`): the default, as
    /// for a Kubernetes pod without a NetworkPolicy.
    #[default]
    Any,
    /// Only addresses inside these networks (loopback included if listed);
    /// an empty list refuses every connection.
    Only(Vec<IpNet>),
}

impl Outbound {
    /// Whether `ip` may be connected to.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match self {
            Self::Any => !ip.is_loopback() && !ip.is_unspecified(),
            Self::Only(nets) => nets.iter().any(|net| net.contains(&ip)),
        }
    }

    /// Whether anything at all may be connected to.
    pub fn allows_any(&self) -> bool {
        match self {
            Self::Any => true,
            Self::Only(nets) => !nets.is_empty(),
        }
    }
}

/// The `wasi:sockets` policy of one guest; see the [module docs](self).
///
/// The default allows outbound connections (except to loopback) and name
/// lookups, and no listening: the pods layer fills in the pod's IPs and
/// ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPolicy {
    /// The pod's addresses: the only ones a guest may bind with a port.
    pub pod_ips: Vec<IpAddr>,
    /// TCP ports the guest may listen on (the container's TCP ports).
    pub tcp_ports: BTreeSet<u16>,
    /// UDP ports the guest may bind (the container's UDP ports).
    pub udp_ports: BTreeSet<u16>,
    /// Where the guest may connect to.
    pub outbound: Outbound,
    /// Whether `wasi:sockets/ip-name-lookup` is available (when anything may
    /// be connected to).
    pub name_lookup: bool,
}

impl Default for SocketPolicy {
    fn default() -> Self {
        Self {
            pod_ips: Vec::new(),
            tcp_ports: BTreeSet::new(),
            udp_ports: BTreeSet::new(),
            outbound: Outbound::Any,
            name_lookup: true,
        }
    }
}

impl SocketPolicy {
    /// A policy that refuses every socket operation.
    pub fn deny_all() -> Self {
        Self { outbound: Outbound::Only(Vec::new()), name_lookup: false, ..Self::default() }
    }

    /// Whether the guest may use `addr` for `usage`.
    pub fn allows(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        match usage {
            SocketAddrUse::TcpBind => self.may_bind(addr, &self.tcp_ports),
            SocketAddrUse::UdpBind => self.may_bind(addr, &self.udp_ports),
            SocketAddrUse::TcpListen => addr.port() != 0 && self.may_bind(addr, &self.tcp_ports),
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => self.outbound.allows(addr.ip()),
            SocketAddrUse::TcpAccept | SocketAddrUse::UdpReceive => true,
        }
    }

    /// A bind of `addr`: a declared port on a pod address, or an ephemeral
    /// port (for clients) when anything may be connected to.
    fn may_bind(&self, addr: SocketAddr, ports: &BTreeSet<u16>) -> bool {
        let ip = canonical(addr.ip());
        let pod_ip = self.pod_ips.iter().any(|pod| canonical(*pod) == ip);
        let any_ip = self.pod_ips.iter().any(|pod| pod.is_unspecified());
        if addr.port() == 0 {
            return self.outbound.allows_any() && (pod_ip || any_ip || ip.is_unspecified());
        }
        ports.contains(&addr.port()) && (pod_ip || any_ip)
    }

    /// Applies the policy to a WASI context.
    pub(crate) fn apply(self: &Arc<Self>, wasi: &mut WasiCtxBuilder) {
        let connects = self.outbound.allows_any();
        wasi.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(self.name_lookup && connects);
        let policy = Arc::clone(self);
        wasi.socket_addr_check(move |addr, usage| {
            let allowed = policy.allows(addr, usage);
            if !allowed {
                tracing::debug!(socket.addr = %addr, socket.usage = ?usage, "socket use refused by policy");
            }
            Box::pin(std::future::ready(allowed))
        });
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so one rule covers both forms.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn pod() -> SocketPolicy {
        SocketPolicy {
            pod_ips: vec!["10.244.1.7".parse().unwrap()],
            tcp_ports: [8080].into(),
            udp_ports: [5353].into(),
            ..SocketPolicy::default()
        }
    }

    #[test]
    fn listens_only_on_pod_ip_and_declared_ports() {
        let p = pod();
        assert!(p.allows(addr("10.244.1.7:8080"), SocketAddrUse::TcpBind));
        assert!(p.allows(addr("10.244.1.7:8080"), SocketAddrUse::TcpListen));
        assert!(!p.allows(addr("10.244.1.7:9090"), SocketAddrUse::TcpBind));
        assert!(!p.allows(addr("0.0.0.0:8080"), SocketAddrUse::TcpBind));
        assert!(!p.allows(addr("10.244.1.8:8080"), SocketAddrUse::TcpBind));
        assert!(!p.allows(addr("127.0.0.1:8080"), SocketAddrUse::TcpBind));
        // UDP has its own ports.
        assert!(p.allows(addr("10.244.1.7:5353"), SocketAddrUse::UdpBind));
        assert!(!p.allows(addr("10.244.1.7:8080"), SocketAddrUse::UdpBind));
        // Mapped IPv6 form of the pod IP.
        assert!(p.allows(addr("[::ffff:10.244.1.7]:8080"), SocketAddrUse::TcpBind));
    }

    #[test]
    fn ephemeral_ports_serve_clients_not_listeners() {
        let p = pod();
        assert!(p.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(p.allows(addr("[::]:0"), SocketAddrUse::TcpBind));
        assert!(p.allows(addr("10.244.1.7:0"), SocketAddrUse::TcpBind));
        assert!(!p.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpListen));
        assert!(!p.allows(addr("192.168.0.1:0"), SocketAddrUse::TcpBind));
        let closed = SocketPolicy { outbound: Outbound::Only(Vec::new()), ..pod() };
        assert!(!closed.allows(addr("0.0.0.0:0"), SocketAddrUse::TcpBind));
        assert!(closed.allows(addr("10.244.1.7:8080"), SocketAddrUse::TcpListen));
    }

    #[test]
    fn outbound_any_excludes_loopback() {
        let p = pod();
        assert!(p.allows(addr("10.96.0.10:53"), SocketAddrUse::TcpConnect));
        assert!(p.allows(addr("93.184.216.34:443"), SocketAddrUse::TcpConnect));
        assert!(!p.allows(addr("127.0.0.1:10250"), SocketAddrUse::TcpConnect));
        assert!(!p.allows(addr("[::1]:10250"), SocketAddrUse::TcpConnect));
        assert!(!p.allows(addr("[::ffff:127.0.0.1]:2379"), SocketAddrUse::TcpConnect));
        assert!(!p.allows(addr("127.0.0.53:53"), SocketAddrUse::UdpSend));
        assert!(p.allows(addr("127.0.0.1:1"), SocketAddrUse::TcpAccept));
    }

    #[test]
    fn outbound_only_lists_networks() {
        let nets = vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()];
        let p = SocketPolicy { outbound: Outbound::Only(nets), ..pod() };
        assert!(p.allows(addr("10.1.2.3:80"), SocketAddrUse::TcpConnect));
        assert!(p.allows(addr("127.0.0.1:80"), SocketAddrUse::TcpConnect));
        assert!(!p.allows(addr("127.0.0.2:80"), SocketAddrUse::TcpConnect));
        assert!(!p.allows(addr("8.8.8.8:53"), SocketAddrUse::UdpSend));
    }

    #[test]
    fn unspecified_pod_ip_allows_wildcard_binds() {
        let p = SocketPolicy { pod_ips: vec!["0.0.0.0".parse().unwrap()], tcp_ports: [80].into(), ..pod() };
        assert!(p.allows(addr("0.0.0.0:80"), SocketAddrUse::TcpBind));
        assert!(p.allows(addr("0.0.0.0:80"), SocketAddrUse::TcpListen));
        assert!(!p.allows(addr("0.0.0.0:81"), SocketAddrUse::TcpListen));
    }

    #[test]
    fn deny_all_denies_everything_but_accepts() {
        let p = SocketPolicy::deny_all();
        for (a, usage) in [
            ("0.0.0.0:0", SocketAddrUse::TcpBind),
            ("10.0.0.1:80", SocketAddrUse::TcpConnect),
            ("0.0.0.0:0", SocketAddrUse::UdpBind),
            ("10.0.0.1:53", SocketAddrUse::UdpSend),
        ] {
            assert!(!p.allows(addr(a), usage), "{a} {usage:?}");
        }
    }
}
