//! Where an outgoing `wasi:http` request may go: its host is resolved
//! **once**, every address is checked against the guest's socket policy (the
//! node's refusals included), and the connection then goes to exactly those
//! addresses ([`connect`](super::connect)). A name that resolves to an
//! allowed address for the check and to the node's loopback for the
//! connection (DNS rebinding) therefore gains nothing: there is no second
//! resolution.
//!
//! | outcome | error code for the guest |
//! |---|---|
//! | the pod or node lets the guest connect nowhere | `HTTP-request-denied` |
//! | the name does not resolve, or to nothing | `DNS-error` (`address not available`, as wasmtime-wasi-http's default) |
//! | resolving outlasts `connect_timeout` | `DNS-timeout` |
//! | any resolved address is refused | `destination-IP-prohibited` (nothing is connected) |

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use tokio::time::Instant;
use wasmtime_wasi_http::Error;

use super::connect::Destination;
use crate::sockets::Guard;

/// A resolution in progress.
pub(crate) type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Resolves host names for outgoing requests.
pub(crate) trait Resolve: Send + Sync {
    /// The addresses of `host` (an IP literal resolves to itself).
    fn resolve(&self, host: &str) -> Resolving;
}

/// The node's resolver (`getaddrinfo`, on tokio's blocking pool).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> Resolving {
        let host = host.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect()) })
    }
}

/// The addresses `dest` resolves to, with its port, once every one of them
/// is allowed by `guard`; resolving must end before `deadline`.
pub(crate) async fn checked_addresses(
    guard: &Guard,
    resolver: &dyn Resolve,
    dest: &Destination,
    deadline: Instant,
) -> Result<Vec<SocketAddr>, Error> {
    if !guard.allows_any() {
        return Err(Error::HttpRequestDenied);
    }
    let unresolvable = || Error::DnsError { rcode: Some("address not available".to_owned()), info_code: None };
    let ips = match tokio::time::timeout_at(deadline, resolver.resolve(&dest.host)).await {
        Err(_) => return Err(Error::DnsTimeout),
        Ok(Err(e)) => {
            tracing::debug!(http.host = %dest.host, error = %e, "outgoing request: name does not resolve");
            return Err(unresolvable());
        }
        Ok(Ok(ips)) => ips,
    };
    if ips.is_empty() {
        return Err(unresolvable());
    }
    for ip in &ips {
        if let Some(denied) = guard.connect_denied(*ip) {
            tracing::debug!(http.host = %dest.host, socket.addr = %ip, reason = %denied, "outgoing request refused by policy");
            return Err(Error::DestinationIpProhibited);
        }
    }
    let mut seen = HashSet::new();
    Ok(ips.into_iter().filter(|ip| seen.insert(*ip)).map(|ip| SocketAddr::new(ip, dest.port)).collect())
}

#[cfg(test)]
mod tests;
