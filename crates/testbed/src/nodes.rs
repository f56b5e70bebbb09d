//! Credentials for a node, until wasmlet bootstraps its own: a kubeconfig with
//! a `system:node:NAME` client certificate and a kubelet serving certificate.

use std::net::{IpAddr, UdpSocket};
use std::path::PathBuf;

use crate::pki::{CertFiles, Usage, loopback_sans};
use crate::{Result, Testbed, kubeconfig};

/// What a node needs to join the test bed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCredentials {
    /// Kubeconfig authenticating as `system:node:NAME` in group `system:nodes`.
    pub kubeconfig: PathBuf,
    /// The client certificate inside that kubeconfig.
    pub client: CertFiles,
    /// Serving certificate for the kubelet API (SANs: NAME, localhost, 127.0.0.1
    /// and any extra addresses asked for).
    pub serving: CertFiles,
    /// The cluster CA.
    pub ca: PathBuf,
}

impl Testbed {
    /// Mints (once; later calls return the same files) the credentials of
    /// node `name`, under `<dir>/nodes/<name>`.
    pub fn node_credentials(&self, name: &str, extra_ips: &[IpAddr]) -> Result<NodeCredentials> {
        let out = self.dir().join("nodes").join(name);
        let creds = NodeCredentials {
            kubeconfig: out.join("kubeconfig"),
            client: CertFiles { cert: out.join("client.crt"), key: out.join("client.key") },
            serving: CertFiles { cert: out.join("serving.crt"), key: out.join("serving.key") },
            ca: self.ca_cert(),
        };
        if creds.kubeconfig.is_file() && creds.serving.key.is_file() {
            return Ok(creds);
        }
        let ca = self.ca()?;
        let user = format!("system:node:{name}");
        ca.mint(&out, "client", &Usage::Client { cn: user.clone(), orgs: vec!["system:nodes".into()] })?;
        let (mut dns, mut ips) = loopback_sans();
        dns.push(name.to_owned());
        ips.extend_from_slice(extra_ips);
        ca.mint(&out, "serving", &Usage::Server { cn: user.clone(), dns, ips })?;
        kubeconfig::write(&creds.kubeconfig, &self.server(), &creds.ca, &user, &creds.client)?;
        Ok(creds)
    }
}

impl Testbed {
    /// Mints (once; later calls return the same file) a kubeconfig for a
    /// client-certificate identity `user` in `groups`, under
    /// `<dir>/users/<user>`: for tools that should show up in the
    /// apiserver's accounting under their own name (RBAC bindings are the
    /// caller's business).
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let out = self.dir().join("users").join(user.replace(':', "_"));
        let path = out.join("kubeconfig");
        if path.is_file() {
            return Ok(path);
        }
        let orgs = groups.iter().map(|g| (*g).to_owned()).collect();
        let client = self.ca()?.mint(&out, "client", &Usage::Client { cn: user.to_owned(), orgs })?;
        kubeconfig::write(&path, &self.server(), &self.ca_cert(), user, &client)?;
        Ok(path)
    }
}

/// The host's primary (default-route) address, for node IPs: the apiserver
/// refuses to proxy to loopback addresses (`nodes/proxy`), so test nodes do not
/// use 127.0.0.1. Falls back to 127.0.0.1 when the host has no route.
pub fn host_ip() -> IpAddr {
    let probe = UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        // No packet is sent: connecting a UDP socket only picks the route.
        s.connect("10.255.255.255:1")?;
        s.local_addr()
    });
    match probe {
        Ok(addr) if !addr.ip().is_unspecified() => addr.ip(),
        _ => IpAddr::from([127, 0, 0, 1]),
    }
}
