//! Pod IPs.
//!
//! Every pod gets its own IPv4 address from the node's `spec.podCIDR` (which
//! the controller manager allocates), added as a `/32` to a wasmlet-managed
//! interface (default `wasmlet0`, one end of a veth pair wasmlet creates). Its
//! guests' listeners bind to that address. Anything on the machine — the
//! apiserver, other wasmlet nodes, a service proxy — reaches it directly; other
//! machines need a route for the node's podCIDR via the node's IP (as with
//! host-gw / kubenet style networking). Managing addresses needs
//! `CAP_NET_ADMIN`; without it the network reports not-ready with the reason,
//! and the node says so in its Ready condition. [`Mode::Host`] is the
//! unprivileged alternative: pods share the node IP.
//!
//! Start at [`PodNetwork`].

mod ipam;
mod link;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use ipam::Ipam;
use ipnet::Ipv4Net;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The default interface holding pod addresses.
pub const DEFAULT_INTERFACE: &str = "wasmlet0";
/// How long a pod waits for the node's podCIDR before its start fails.
pub const CIDR_WAIT: Duration = Duration::from_secs(60);

/// How pods get addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A `/32` per pod from the podCIDR on this interface.
    Addresses {
        /// Interface name (created as a veth pair when missing).
        interface: String,
    },
    /// Pods share the node IP (like `hostNetwork` pods); no privileges needed.
    Host,
}

/// Errors, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The network is not ready (see [`Status::message`]).
    #[error("pod network is not ready: {0}")]
    NotReady(String),
    /// The node has no podCIDR yet (the controller manager assigns one).
    #[error("the node has no podCIDR after {}s; is node CIDR allocation on in the controller manager?", CIDR_WAIT.as_secs())]
    NoPodCidr,
    /// The podCIDR has no free address.
    #[error("no free address left in podCIDR {0}")]
    Exhausted(Ipv4Net),
    /// The netlink socket could not be opened.
    #[error("opening a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// A netlink request failed.
    #[error("{op} on interface {interface}: {source}")]
    Netlink {
        /// What was done.
        op: &'static str,
        /// The interface.
        interface: String,
        /// The cause.
        #[source]
        source: rtnetlink::Error,
    },
}

/// Whether the network can give pods addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Ready to attach pods.
    pub ready: bool,
    /// Why not, when not ready.
    pub message: String,
}

/// Pod addresses of this node; cheap to clone.
#[derive(Clone)]
pub struct PodNetwork {
    inner: Arc<Inner>,
}

struct Inner {
    node_ip: IpAddr,
    link: Option<link::Link>,
    cidr: watch::Sender<Option<Ipv4Net>>,
    ipam: Mutex<Ipam>,
    leases: Mutex<HashMap<String, IpAddr>>,
    /// Serializes address changes with [`PodNetwork::reconcile`].
    ops: tokio::sync::Mutex<()>,
    status: Status,
}

impl std::fmt::Debug for PodNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodNetwork").field("status", &self.inner.status).finish_non_exhaustive()
    }
}

impl PodNetwork {
    /// Sets up the network for `mode`. Never fails: a setup problem (no
    /// `CAP_NET_ADMIN`, no netlink) makes [`PodNetwork::status`] not ready with
    /// the reason. The netlink connection runs on `tracker` until `cancel`.
    pub async fn start(mode: Mode, node_ip: IpAddr, tracker: &TaskTracker, cancel: CancellationToken) -> Self {
        let (link, status) = match mode {
            Mode::Host => (None, Status { ready: true, message: String::new() }),
            Mode::Addresses { interface } => match link::Link::open(&interface, tracker, cancel).await {
                Ok(link) => (Some(link), Status { ready: true, message: String::new() }),
                Err(e) => {
                    let message = format!(
                        "cannot manage pod addresses on {interface}: {e} (needs CAP_NET_ADMIN; or use --pod-network=host)"
                    );
                    tracing::error!(%message, "pod network not ready");
                    (None, Status { ready: false, message })
                }
            },
        };
        let inner = Inner {
            node_ip,
            link,
            cidr: watch::channel(None).0,
            ipam: Mutex::new(Ipam::default()),
            leases: Mutex::new(HashMap::new()),
            ops: tokio::sync::Mutex::new(()),
            status,
        };
        Self { inner: Arc::new(inner) }
    }

    /// Whether pods can get addresses.
    pub fn status(&self) -> Status {
        self.inner.status.clone()
    }

    /// Whether pods share the node IP.
    pub fn is_host(&self) -> bool {
        self.inner.link.is_none() && self.inner.status.ready
    }

    /// The node's podCIDR (from `Node.spec.podCIDR`). IPv6 CIDRs are ignored.
    pub fn set_pod_cidr(&self, cidr: &str) {
        match cidr.parse::<Ipv4Net>() {
            Ok(net) => {
                let changed = self.inner.cidr.send_if_modified(|c| {
                    let changed = *c != Some(net);
                    *c = Some(net);
                    changed
                });
                if changed {
                    tracing::info!(%net, "pod CIDR");
                    self.inner.ipam.lock().unwrap_or_else(|p| p.into_inner()).set_cidr(net);
                }
            }
            Err(e) => tracing::warn!(cidr, error = %e, "ignoring a podCIDR that is not IPv4"),
        }
    }

    /// Gives pod `uid` an address (the same again if it has one, or
    /// `preferred` — its address before an agent restart — when free).
    pub async fn attach(&self, uid: &str, preferred: Option<IpAddr>) -> Result<IpAddr, Error> {
        if let Some(ip) = self.lease(uid) {
            return Ok(ip);
        }
        let Some(link) = &self.inner.link else {
            if self.inner.status.ready {
                return Ok(self.inner.node_ip);
            }
            return Err(Error::NotReady(self.inner.status.message.clone()));
        };
        let mut cidr = self.inner.cidr.subscribe();
        let net = match tokio::time::timeout(CIDR_WAIT, cidr.wait_for(Option::is_some)).await {
            Ok(Ok(net)) => (*net).ok_or(Error::NoPodCidr)?,
            _ => return Err(Error::NoPodCidr),
        };
        let _ops = self.inner.ops.lock().await;
        let ip = {
            let mut ipam = self.inner.ipam.lock().unwrap_or_else(|p| p.into_inner());
            let preferred = preferred.and_then(|ip| match ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            });
            ipam.allocate(uid, preferred).ok_or(Error::Exhausted(net))?
        };
        if let Err(e) = link.add(IpAddr::V4(ip)).await {
            self.inner.ipam.lock().unwrap_or_else(|p| p.into_inner()).release(uid);
            return Err(e);
        }
        let ip = IpAddr::V4(ip);
        self.inner.leases.lock().unwrap_or_else(|p| p.into_inner()).insert(uid.to_owned(), ip);
        tracing::debug!(pod.uid = uid, %ip, "pod address added");
        Ok(ip)
    }

    /// Removes pod `uid`'s address and frees it.
    pub async fn detach(&self, uid: &str) {
        let Some(ip) = self.inner.leases.lock().unwrap_or_else(|p| p.into_inner()).remove(uid) else { return };
        self.inner.ipam.lock().unwrap_or_else(|p| p.into_inner()).release(uid);
        if let Some(link) = &self.inner.link
            && let Err(e) = link.remove(ip).await
        {
            tracing::warn!(pod.uid = uid, %ip, error = %e, "removing pod address failed");
        }
    }

    /// The address of pod `uid`, if it has one.
    pub fn lease(&self, uid: &str) -> Option<IpAddr> {
        self.inner.leases.lock().unwrap_or_else(|p| p.into_inner()).get(uid).copied()
    }

    /// Removes addresses inside the podCIDR that no pod holds (left over when
    /// the agent died with pods that are gone since).
    pub async fn reconcile(&self) {
        let (Some(link), Some(net)) = (&self.inner.link, *self.inner.cidr.borrow()) else { return };
        let _ops = self.inner.ops.lock().await;
        let held: HashSet<IpAddr> =
            self.inner.ipam.lock().unwrap_or_else(|p| p.into_inner()).allocated().map(IpAddr::V4).collect();
        match link.addresses().await {
            Ok(addrs) => {
                for ip in addrs {
                    let IpAddr::V4(v4) = ip else { continue };
                    if net.contains(&v4) && !held.contains(&ip) {
                        tracing::info!(%ip, "removing a stale pod address");
                        if let Err(e) = link.remove(ip).await {
                            tracing::warn!(%ip, error = %e, "removing a stale pod address failed");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing pod addresses failed"),
        }
    }
}
