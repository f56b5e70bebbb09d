//! Address allocation inside the podCIDR.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Which pod holds which address of the podCIDR. The network address, the
/// first host (kept for a gateway, as bridge plugins do) and the broadcast
/// address are never handed out.
#[derive(Debug, Default)]
pub struct Ipam {
    cidr: Option<Ipv4Net>,
    by_pod: HashMap<String, Ipv4Addr>,
    next: u32,
}

impl Ipam {
    /// Sets the range; existing allocations outside it are dropped.
    pub fn set_cidr(&mut self, cidr: Ipv4Net) {
        self.cidr = Some(cidr);
        self.by_pod.retain(|_, ip| cidr.contains(&*ip));
    }

    /// An address for `pod`: the one it has, else `preferred` when it is free
    /// and in range, else the next free one (round-robin, so a freed address is
    /// not reused at once). `None` when the range is full or unset.
    pub fn allocate(&mut self, pod: &str, preferred: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_pod.get(pod) {
            return Some(*ip);
        }
        let cidr = self.cidr?;
        let usable = |ip: &Ipv4Addr| {
            cidr.contains(ip) && *ip != cidr.network() && *ip != cidr.broadcast() && *ip != first_host(cidr)
        };
        let taken = |ip: &Ipv4Addr| self.by_pod.values().any(|x| x == ip);
        if let Some(ip) = preferred.filter(|ip| usable(ip) && !taken(ip)) {
            self.by_pod.insert(pod.to_owned(), ip);
            return Some(ip);
        }
        let base = u32::from(cidr.network());
        let size = 1u32.checked_shl(32 - u32::from(cidr.prefix_len())).unwrap_or(u32::MAX);
        for i in 0..size {
            let offset = (self.next + i) % size;
            let ip = Ipv4Addr::from(base + offset);
            if usable(&ip) && !taken(&ip) {
                self.next = offset + 1;
                self.by_pod.insert(pod.to_owned(), ip);
                return Some(ip);
            }
        }
        None
    }

    /// Every allocated address.
    pub fn allocated(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.by_pod.values().copied()
    }

    /// Frees `pod`'s address.
    pub fn release(&mut self, pod: &str) {
        self.by_pod.remove(pod);
    }
}

fn first_host(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_usable_addresses_and_honours_preferences() {
        let mut ipam = Ipam::default();
        assert_eq!(ipam.allocate("a", None), None, "no CIDR yet");
        ipam.set_cidr("10.244.3.0/29".parse().unwrap());
        // .0 network, .1 gateway, .7 broadcast: .2 to .6 are usable.
        let got: Vec<Ipv4Addr> = ["a", "b", "c", "d", "e"].iter().map(|p| ipam.allocate(p, None).unwrap()).collect();
        assert_eq!(got.first().unwrap().octets()[3], 2);
        assert_eq!(got.last().unwrap().octets()[3], 6);
        assert_eq!(ipam.allocate("f", None), None, "full");
        assert_eq!(ipam.allocate("a", None), Some(got[0]), "stable per pod");
        ipam.release("c");
        assert_eq!(ipam.allocate("f", None), Some(got[2]));

        let mut ipam = Ipam::default();
        ipam.set_cidr("10.244.3.0/24".parse().unwrap());
        let want: Ipv4Addr = "10.244.3.77".parse().unwrap();
        assert_eq!(ipam.allocate("x", Some(want)), Some(want));
        assert_ne!(ipam.allocate("y", Some(want)), Some(want), "taken");
        assert_ne!(ipam.allocate("z", Some("10.9.9.9".parse().unwrap())), Some("10.9.9.9".parse().unwrap()));
        assert_ne!(ipam.allocate("w", Some("10.244.3.1".parse().unwrap())), Some("10.244.3.1".parse().unwrap()));
    }
}
