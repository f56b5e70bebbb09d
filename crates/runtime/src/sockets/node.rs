//! The node's side of guest network confinement: the destinations that are
//! *node-local* (refused to every guest, whatever its pod asks for), the node
//! administrator's limits ([`NodePolicy`]), and [`NodeNetwork`], which
//! applies both with a live view of this machine's addresses.
//!
//! Node-local means:
//!
//! | kind | addresses |
//! |---|---|
//! | unspecified | `0.0.0.0/8`, `::` (connecting to them reaches the node itself) |
//! | loopback | `127.0.0.0/8`, `::1` |
//! | link-local | `169.254.0.0/16`, `fe80::/10` (cloud metadata at `169.254.169.254`) |
//! | metadata | `100.100.100.200`, `168.63.129.16`, `fd00:ec2::254` (metadata endpoints outside link-local) |
//! | node address | every address on this machine's interfaces except the pod interface's, plus [`NodePolicy::node_ips`] |
//!
//! An IPv6 address that embeds an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`,
//! IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) is node-local when
//! either form is.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::addresses::Addresses;

/// Why the node refuses a destination to every guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The unspecified address (`0.0.0.0/8`, `::`), which reaches the node.
    Unspecified,
    /// Loopback (`127.0.0.0/8`, `::1`): the node's own services.
    Loopback,
    /// Link-local (`169.254.0.0/16`, `fe80::/10`), cloud metadata included.
    LinkLocal,
    /// A cloud metadata endpoint outside link-local.
    Metadata,
    /// An address of this node (not of the pod interface).
    NodeAddress,
    /// Outside the node's [`NodePolicy::outbound_cidrs`].
    OutsideNodeCidrs,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "node-local (unspecified address)",
            Self::Loopback => "node-local (loopback)",
            Self::LinkLocal => "node-local (link-local)",
            Self::Metadata => "node-local (cloud metadata endpoint)",
            Self::NodeAddress => "node-local (an address of this node)",
            Self::OutsideNodeCidrs => "outside the node's guest outbound CIDRs",
        })
    }
}

/// The node-local networks that do not depend on the machine.
const NODE_LOCAL: [(IpNet, Refusal); 9] = [
    (IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(0, 0, 0, 0)), 8), Refusal::Unspecified),
    (IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8), Refusal::Loopback),
    (IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16), Refusal::LinkLocal),
    // Alibaba Cloud.
    (IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)), 32), Refusal::Metadata),
    // Azure WireServer.
    (IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)), 32), Refusal::Metadata),
    (IpNet::new_assert(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128), Refusal::Unspecified),
    (IpNet::new_assert(IpAddr::V6(Ipv6Addr::LOCALHOST), 128), Refusal::Loopback),
    (IpNet::new_assert(IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10), Refusal::LinkLocal),
    // AWS instance metadata over IPv6.
    (IpNet::new_assert(IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)), 128), Refusal::Metadata),
];

/// The node administrator's limits on every guest's destinations (flags
/// `--guest-outbound-cidrs` and `--allowed-node-local-destinations`). A
/// pod's own [`Outbound`](super::Outbound) can only narrow them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePolicy {
    /// The most any guest may connect to: a destination outside all of these
    /// networks is refused. Default: everything (`0.0.0.0/0`, `::/0`); an
    /// empty list refuses every connection.
    pub outbound_cidrs: Vec<IpNet>,
    /// Node-local destinations guests may reach anyway, e.g. a NodeLocal
    /// DNSCache on `169.254.20.10/32`. Default: none.
    pub allowed_node_local: Vec<IpNet>,
    /// The interface holding pod addresses: its addresses are pods', not the
    /// node's, so pod-to-pod traffic works. `None`: every interface's
    /// addresses are the node's.
    pub pod_interface: Option<String>,
    /// Addresses of the node besides those on its interfaces (e.g. its
    /// `--node-ip` when that is not on an interface).
    pub node_ips: Vec<IpAddr>,
}

impl Default for NodePolicy {
    fn default() -> Self {
        Self {
            outbound_cidrs: vec![
                IpNet::new_assert(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                IpNet::new_assert(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            ],
            allowed_node_local: Vec::new(),
            pod_interface: None,
            node_ips: Vec::new(),
        }
    }
}

/// The node's destination check: a [`NodePolicy`] and a live view of this
/// machine's addresses (kept current by a background thread, see
/// [`addresses`](super::addresses)). Cheap to clone; checks never block.
#[derive(Clone)]
pub struct NodeNetwork {
    inner: Arc<Inner>,
}

struct Inner {
    policy: NodePolicy,
    addresses: Addresses,
}

impl fmt::Debug for NodeNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeNetwork").field("policy", &self.inner.policy).finish_non_exhaustive()
    }
}

impl NodeNetwork {
    /// Reads this machine's addresses and starts the thread that keeps them
    /// current (it stops when the last clone is dropped).
    pub(crate) fn start(policy: NodePolicy) -> io::Result<Self> {
        let addresses = Addresses::watch(policy.pod_interface.clone())?;
        Ok(Self { inner: Arc::new(Inner { policy, addresses }) })
    }

    /// A node whose addresses are `addresses`, never re-read (no thread):
    /// for tests, and for embedders that know the node's addresses.
    pub fn with_addresses(policy: NodePolicy, addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        Self { inner: Arc::new(Inner { policy, addresses: Addresses::fixed(addresses.into_iter().collect()) }) }
    }

    /// The administrator's limits.
    pub fn policy(&self) -> &NodePolicy {
        &self.inner.policy
    }

    /// This machine's addresses that count as the node's (the pod
    /// interface's left out), as last read.
    pub fn node_addresses(&self) -> Arc<BTreeSet<IpAddr>> {
        self.inner.addresses.snapshot()
    }

    /// Why the node refuses `ip` to guests, or `None` when it allows it.
    pub fn refusal(&self, ip: IpAddr) -> Option<Refusal> {
        let policy = &self.inner.policy;
        // The outer bound is checked on the address the kernel would use.
        let ip = super::canonical(ip);
        if !policy.outbound_cidrs.iter().any(|net| net.contains(&ip)) {
            return Some(Refusal::OutsideNodeCidrs);
        }
        std::iter::once(ip).chain(embedded_v4(ip)).find_map(|form| {
            let kind = self.node_local(form)?;
            (!policy.allowed_node_local.iter().any(|net| net.contains(&form))).then_some(kind)
        })
    }

    /// Whether the node lets guests connect anywhere at all.
    pub fn allows_any(&self) -> bool {
        !self.inner.policy.outbound_cidrs.is_empty()
    }

    /// Why the node refuses *every* address of `net` (so a pod asking for it
    /// gets nothing), or `None` when some of it may be reachable. A single
    /// address is checked as [`refusal`](Self::refusal) does; a larger
    /// network when it lies inside one node-local network (with no allowed
    /// exception in it) or outside every outbound CIDR.
    pub fn refusal_of_net(&self, net: &IpNet) -> Option<Refusal> {
        if net.prefix_len() == net.max_prefix_len() {
            return self.refusal(net.addr());
        }
        let policy = &self.inner.policy;
        let net = net.trunc();
        if !policy.outbound_cidrs.iter().any(|cidr| overlaps(cidr, &net)) {
            return Some(Refusal::OutsideNodeCidrs);
        }
        let (_, kind) = NODE_LOCAL.iter().find(|(local, _)| local.contains(&net))?;
        (!policy.allowed_node_local.iter().any(|allowed| overlaps(allowed, &net))).then_some(*kind)
    }

    fn node_local(&self, ip: IpAddr) -> Option<Refusal> {
        if let Some((_, kind)) = NODE_LOCAL.iter().find(|(net, _)| net.contains(&ip)) {
            return Some(*kind);
        }
        let node = self.inner.policy.node_ips.contains(&ip) || self.inner.addresses.contains(ip);
        node.then_some(Refusal::NodeAddress)
    }
}

/// The IPv4 address an IPv6 address embeds other than by mapping
/// (IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`).
fn embedded_v4(ip: IpAddr) -> Option<IpAddr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let [a, b, c, d, e, f, _, _] = v6.segments();
    let [.., w, x, y, z] = v6.octets();
    let compatible = [a, b, c, d, e, f] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback();
    let nat64 = [a, b, c, d, e, f] == [0x64, 0xff9b, 0, 0, 0, 0];
    (compatible || nat64).then_some(IpAddr::V4(Ipv4Addr::new(w, x, y, z)))
}

/// Whether two networks share an address (CIDR blocks nest or are disjoint).
fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

#[cfg(test)]
mod tests;
