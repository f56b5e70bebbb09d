//! What a WASI preview 2 guest may do with `wasi:sockets` and outgoing
//! `wasi:http` requests: the pod's [`SocketPolicy`] inside the node's
//! [`NodeNetwork`].
//!
//! Guests run inside the node agent's process, in the node's network
//! namespace, so a socket a guest opens is a socket on the node. Two layers
//! keep a pod to what it would have in its own network namespace, minus the
//! node itself:
//!
//! 1. **The node** ([`node`]): destinations on the node itself are refused to
//!    every guest: loopback, the unspecified address, link-local (cloud
//!    metadata at `169.254.169.254`), other well-known metadata endpoints,
//!    and every address of this machine's interfaces except the pod
//!    interface's (other pods' IPs stay reachable). The node's administrator
//!    sets the most any guest may reach ([`NodePolicy::outbound_cidrs`]) and
//!    the node-local destinations guests may reach anyway
//!    ([`NodePolicy::allowed_node_local`]), in the node configuration.
//! 2. **The pod** ([`SocketPolicy`], from the pod's annotations): which ports
//!    it listens on, and [`Outbound`], which can only *narrow* what the node
//!    allows: a pod naming `127.0.0.1` or the node's IP gets nothing more.
//!
//! What each socket operation needs:
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
//!   port is refused (nobody could reach it through the pod's ports). A bind
//!   on any other address (the node's loopback or IPs) is refused.
//! - **Connecting** (TCP `connect`, UDP `send`, outgoing `wasi:http`): the
//!   node must allow the address and so must the pod's [`Outbound`] (by
//!   default: anything the node allows, as a Kubernetes pod without a
//!   NetworkPolicy reaches other pods, Services and the internet).
//! - **Accepting** connections and receiving datagrams is always allowed: the
//!   listening side was checked.
//! - **Name lookup** (`wasi:sockets/ip-name-lookup`) uses the node's resolver
//!   and is allowed unless [`SocketPolicy::name_lookup`] is off or nothing may
//!   be connected to. Resolving is not connecting: every address a guest
//!   then connects to is checked.
//!
//! WASI preview 1 modules have no sockets; the policy applies to components
//! (commands and `wasi:http` handlers).
//!
//! An outgoing `wasi:http` request resolves its host once, is refused unless
//! every address it resolves to is allowed, and connects to exactly those
//! addresses (see [`http`](crate::http)), so a name that answers differently
//! the second time (DNS rebinding) gains nothing.
//!
//! # Caveats
//!
//! - The check sees the destination a guest asks for, before the node's own
//!   NAT: a Service ClusterIP whose endpoints are node addresses is reached
//!   through a service proxy like any Service.
//! - A UDP server replying to clients outside the allowed destinations is
//!   refused like any other send.
//! - With `--pod-network=host` pods share the node's IP, which is node-local:
//!   pod-to-pod traffic then needs the node IP in
//!   [`NodePolicy::allowed_node_local`].

pub mod addresses;
pub mod node;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

pub use self::node::{NodeNetwork, NodePolicy, Refusal};

/// Where a pod lets its guests connect to, within what the node allows
/// ([`NodeNetwork`]): it can narrow the node's limits, never widen them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Outbound {
    /// Anything the node allows: the default, as for a Kubernetes pod
    /// without a NetworkPolicy.
    #[default]
    Any,
    /// Only addresses inside these networks (and allowed by the node); an
    /// empty list refuses every connection.
    Only(Vec<IpNet>),
}

impl Outbound {
    /// Whether the pod lets its guests connect to `ip` (the node's check
    /// comes on top).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match self {
            Self::Any => true,
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

/// The pod's side of one guest's `wasi:sockets` policy; see the [module
/// docs](self). The runtime applies it inside the node's [`NodeNetwork`].
///
/// The default allows outbound connections (wherever the node allows them)
/// and name lookups, and no listening: the pods layer fills in the pod's IPs
/// and ports.
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

    /// Whether the pod lets the guest use `addr` for `usage` (the node's
    /// check comes on top for connections, see [`NodeNetwork::refusal`]).
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
}

/// One guest's whole socket check: its pod's [`SocketPolicy`] inside the
/// node's [`NodeNetwork`].
#[derive(Debug)]
pub(crate) struct Guard {
    pub(crate) pod: SocketPolicy,
    pub(crate) node: NodeNetwork,
}

/// Why a guest may not use an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// The node refuses it to every guest.
    Node(Refusal),
    /// The pod's [`Outbound`] leaves it out.
    Pod,
    /// Not one of the pod's addresses and ports (binds and listens).
    NotPodAddress,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Node(refusal) => write!(f, "{refusal}"),
            Self::Pod => f.write_str("not in the pod's wasmlet.dev/outbound"),
            Self::NotPodAddress => f.write_str("not one of the pod's addresses and ports"),
        }
    }
}

impl Guard {
    /// Why the guest may not use `addr` for `usage`, or `None` when it may.
    pub(crate) fn denied(&self, addr: SocketAddr, usage: SocketAddrUse) -> Option<Denied> {
        match usage {
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => self.connect_denied(addr.ip()),
            // Ephemeral ports are for clients: none when nothing may be reached.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind if addr.port() == 0 && !self.node.allows_any() => {
                Some(Denied::Node(Refusal::OutsideNodeCidrs))
            }
            _ => (!self.pod.allows(addr, usage)).then_some(Denied::NotPodAddress),
        }
    }

    /// Whether the guest may use `addr` for `usage`.
    #[cfg(test)]
    pub(crate) fn allows(&self, addr: SocketAddr, usage: SocketAddrUse) -> bool {
        self.denied(addr, usage).is_none()
    }

    /// Why the guest may not connect to `ip`, or `None` when it may.
    pub(crate) fn connect_denied(&self, ip: IpAddr) -> Option<Denied> {
        if let Some(refusal) = self.node.refusal(ip) {
            return Some(Denied::Node(refusal));
        }
        (!self.pod.outbound.allows(ip)).then_some(Denied::Pod)
    }

    /// Whether the guest may connect anywhere at all.
    pub(crate) fn allows_any(&self) -> bool {
        self.node.allows_any() && self.pod.outbound.allows_any()
    }

    /// Applies the check to a WASI context.
    pub(crate) fn apply(self: &Arc<Self>, wasi: &mut WasiCtxBuilder) {
        let lookup = self.pod.name_lookup && self.allows_any();
        wasi.allow_tcp(true).allow_udp(true).allow_ip_name_lookup(lookup);
        let guard = Arc::clone(self);
        wasi.socket_addr_check(move |addr, usage| {
            let denied = guard.denied(addr, usage);
            if let Some(reason) = denied {
                tracing::debug!(socket.addr = %addr, socket.usage = ?usage, %reason, "socket use refused by policy");
            }
            Box::pin(std::future::ready(denied.is_none()))
        });
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so one rule covers both forms.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests;
