//! This machine's addresses, kept current without blocking the async
//! workers that drive guests.
//!
//! A snapshot (a set behind a lock held only to read or swap it) is read by
//! every destination check. A dedicated OS thread (`wasmlet-addrs`) refreshes
//! it: it subscribes to the kernel's address and link notifications
//! (`NETLINK_ROUTE`, groups `RTMGRP_IPV4_IFADDR`, `RTMGRP_IPV6_IFADDR`,
//! `RTMGRP_LINK`) and re-reads every interface's addresses (`getifaddrs`)
//! after each burst of notifications, and at least every
//! [`REFRESH_BACKSTOP`] in case a notification was lost (socket buffer
//! overrun). Without netlink it re-reads every [`REFRESH_WITHOUT_NETLINK`].
//!
//! # Caveats
//!
//! An address added to an interface is refused from the moment the thread
//! has re-read the addresses, right after the kernel's notification but not
//! atomically with the change.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, SockaddrLike, bind, recv, socket,
};

/// Longest time between two reads of the addresses when netlink works.
pub const REFRESH_BACKSTOP: Duration = Duration::from_secs(30);

/// Time between two reads of the addresses when netlink is not available.
pub const REFRESH_WITHOUT_NETLINK: Duration = Duration::from_secs(1);

/// Most netlink messages read before the addresses are re-read anyway.
const MAX_DRAIN: usize = 1024;

type Snapshot = Arc<RwLock<Arc<BTreeSet<IpAddr>>>>;

/// The node's addresses, as last read.
pub(crate) struct Addresses {
    current: Snapshot,
    _watcher: Option<Watcher>,
}

impl Addresses {
    /// Reads the addresses of every interface but `pod_interface` now, and
    /// starts the thread that keeps them current.
    pub(crate) fn watch(pod_interface: Option<String>) -> io::Result<Self> {
        let first = read(pod_interface.as_deref()).map_err(io::Error::from)?;
        let current: Snapshot = Arc::new(RwLock::new(Arc::new(first)));
        let watcher = Watcher::start(Arc::clone(&current), pod_interface)?;
        Ok(Self { current, _watcher: Some(watcher) })
    }

    /// A fixed set, never refreshed.
    pub(crate) fn fixed(addresses: BTreeSet<IpAddr>) -> Self {
        Self { current: Arc::new(RwLock::new(Arc::new(addresses))), _watcher: None }
    }

    /// Whether `ip` is one of the addresses.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.current.read().unwrap_or_else(PoisonError::into_inner).contains(&ip)
    }

    /// The addresses.
    pub(crate) fn snapshot(&self) -> Arc<BTreeSet<IpAddr>> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Every address on this machine's interfaces except `pod_interface`'s.
fn read(pod_interface: Option<&str>) -> nix::Result<BTreeSet<IpAddr>> {
    let mut out = BTreeSet::new();
    for ifaddr in nix::ifaddrs::getifaddrs()? {
        if pod_interface.is_some_and(|pod| ifaddr.interface_name == pod) {
            continue;
        }
        let Some(addr) = ifaddr.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            out.insert(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            out.insert(IpAddr::V6(v6.ip()));
        }
    }
    Ok(out)
}

/// Owns the refresh thread; dropping it wakes the thread and joins it.
struct Watcher {
    /// Dropping our end of the pair hangs up the thread's end.
    stop: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    fn start(current: Snapshot, pod_interface: Option<String>) -> io::Result<Self> {
        let (stop, stopped) = UnixStream::pair()?;
        let netlink = match subscribe() {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(error = %e, every = ?REFRESH_WITHOUT_NETLINK, "no netlink address notifications; polling the node's addresses");
                None
            }
        };
        let thread = std::thread::Builder::new()
            .name("wasmlet-addrs".to_owned())
            .spawn(move || refresh_loop(&current, pod_interface.as_deref(), netlink.as_ref(), &stopped))?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread wakes on the hang-up, so this waits at most for one read.
            if thread.join().is_err() {
                tracing::error!("node address thread panicked; this is a bug");
            }
        }
    }
}

/// A netlink socket subscribed to address and link changes.
fn subscribe() -> nix::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::NetlinkRoute,
    )?;
    let groups = nix::libc::RTMGRP_IPV4_IFADDR | nix::libc::RTMGRP_IPV6_IFADDR | nix::libc::RTMGRP_LINK;
    let addr = NetlinkAddr::new(0, u32::try_from(groups).unwrap_or(0));
    bind(fd.as_raw_fd(), &addr as &dyn SockaddrLike)?;
    Ok(fd)
}

fn refresh_loop(current: &Snapshot, pod_interface: Option<&str>, netlink: Option<&OwnedFd>, stopped: &UnixStream) {
    let every = if netlink.is_some() { REFRESH_BACKSTOP } else { REFRESH_WITHOUT_NETLINK };
    let timeout = PollTimeout::try_from(every).unwrap_or(PollTimeout::MAX);
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        let mut fds = vec![PollFd::new(stopped.as_fd(), PollFlags::POLLIN)];
        if let Some(fd) = netlink {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, "waiting for address changes failed");
                std::thread::sleep(REFRESH_WITHOUT_NETLINK);
            }
        }
        if fds[0].any().unwrap_or(false) {
            break;
        }
        // Drain the burst (the content does not matter: everything is re-read).
        if let Some(fd) = netlink {
            for _ in 0..MAX_DRAIN {
                match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                    // ENOBUFS: notifications were lost; the re-read covers them.
                    Ok(1..) | Err(Errno::ENOBUFS | Errno::EINTR) => {}
                    Ok(0) | Err(_) => break,
                }
            }
        }
        match read(pod_interface) {
            Ok(addresses) => {
                *current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(addresses);
            }
            Err(e) => tracing::warn!(error = %e, "reading the node's addresses failed; keeping the last ones"),
        }
    }
    tracing::debug!("node address thread stopped");
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Instant;

    use super::*;

    #[test]
    fn reads_loopback_and_leaves_out_the_pod_interface() {
        let all = read(None).unwrap();
        assert!(all.contains(&IpAddr::from([127, 0, 0, 1])), "{all:?}");
        let without_lo = read(Some("lo")).unwrap();
        assert!(!without_lo.contains(&IpAddr::from([127, 0, 0, 1])), "{without_lo:?}");
    }

    /// A local-only interface (`dummy`, or `ifb` on kernels without the
    /// dummy driver) with one address (198.18.0.0/15 is for benchmarks;
    /// nothing leaves the machine), deleted on drop.
    struct Dummy(String);

    impl Dummy {
        fn add(name: &str, ip: IpAddr) -> Self {
            let run = |args: &[&str]| {
                let out = Command::new("ip").args(args).output().expect("running ip");
                (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
            };
            let ip_cmd = |args: &[&str]| {
                let (ok, err) = run(args);
                assert!(ok, "ip {args:?}: {err}");
            };
            let created = ["dummy", "ifb"].iter().any(|kind| run(&["link", "add", name, "type", kind]).0);
            assert!(created, "cannot create a dummy or ifb interface {name} (needs CAP_NET_ADMIN)");
            let dummy = Self(name.to_owned());
            ip_cmd(&["addr", "add", &format!("{ip}/32"), "dev", name]);
            ip_cmd(&["link", "set", name, "up"]);
            dummy
        }
    }

    impl Drop for Dummy {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).output();
        }
    }

    fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The snapshot follows an address added and removed, well before the
    /// backstop period (so through netlink notifications), and never holds
    /// the pod interface's addresses.
    #[test]
    fn follows_address_changes_except_on_the_pod_interface() {
        let id = std::process::id();
        let name = format!("wlta{:x}", id & 0xff_ffff);
        let ip = IpAddr::from([198, 19, (id >> 8) as u8, id as u8]);
        let node = Addresses::watch(None).unwrap();
        assert!(!node.contains(ip));
        let dummy = Dummy::add(&name, ip);
        wait_until("the new address is the node's", || node.contains(ip));
        let without_pods = read(Some(&name)).unwrap();
        assert!(!without_pods.contains(&ip), "an address of the pod interface counted as the node's");
        drop(dummy);
        wait_until("the removed address is gone", || !node.contains(ip));
    }
}
