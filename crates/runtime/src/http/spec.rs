//! [`HttpSpec`]: what a `wasi:http` server runs with: the guest's spec, the
//! addresses to listen on, the drain period and the server's limits.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::oneshot;

use super::stats::HttpStats;
use crate::spec::GuestSpec;

/// Default [`HttpLimits::max_connections`]: open connections per server.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1_000;

/// Default [`HttpLimits::max_requests`]: requests in flight per server (each
/// holds a fresh instance), a tenth of the node's default instance pool so
/// that one busy pod cannot take all of it.
pub const DEFAULT_MAX_REQUESTS: usize = 100;

/// Default [`HttpLimits::request_timeout`]: how long one request's instance
/// may run (like an ingress proxy's read timeout).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Default [`HttpLimits::header_read_timeout`]: how long a client may take
/// to send a request's headers.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`HttpLimits::max_streams_per_connection`]: concurrent HTTP/2
/// streams one connection may open.
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 100;

/// Default [`HttpLimits::backlog`]: the listen backlog of each listener.
pub const DEFAULT_BACKLOG: u32 = 1_024;

/// Default [`HttpSpec::drain`]: the default `terminationGracePeriodSeconds`.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(30);

/// Everything a `wasi:http` server runs with, apart from its code.
#[derive(Debug)]
pub struct HttpSpec {
    /// The guest: `argv`, `env`, mounts, working directory and socket policy
    /// are those of every instance; `stdout`/`stderr` are shared by all of
    /// them; `limits.memory_bytes` and `limits.cpu_millis` cap all of them
    /// together (see the [module docs](crate::http)); `stats` sums them (see
    /// [`GuestStats`](crate::GuestStats)).
    pub guest: GuestSpec,
    /// Where to listen: the pod IP with each declared container port.
    pub listen: Vec<SocketAddr>,
    /// How long requests in flight may take to finish once `stop` is
    /// cancelled (the pod's grace period).
    pub drain: Duration,
    /// Limits of the server.
    pub limits: HttpLimits,
    /// Told the bound addresses once every listener is bound: start probes
    /// then. Dropped without a message when the server cannot start.
    pub ready: Option<oneshot::Sender<Listening>>,
    /// Where the server publishes its request counters; keep a clone to read
    /// them. `None`: not published.
    pub stats: Option<HttpStats>,
}

impl HttpSpec {
    /// A spec serving `guest` on `listen`, with the default limits and
    /// drain period and no readiness channel.
    pub fn new(guest: GuestSpec, listen: Vec<SocketAddr>) -> Self {
        Self { guest, listen, drain: DEFAULT_DRAIN, limits: HttpLimits::default(), ready: None, stats: None }
    }
}

/// The addresses a server listens on (port 0 resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listening {
    /// One per [`HttpSpec::listen`] entry, in the same order.
    pub addrs: Vec<SocketAddr>,
}

/// Limits of one `wasi:http` server. Every one is bounded by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Open connections; more wait in the listen backlog.
    pub max_connections: usize,
    /// Requests in flight (instances alive); more wait for a slot.
    pub max_requests: usize,
    /// How long one request's instance may run; `None`: unbounded. A request
    /// over it gets `504 Gateway Timeout` if it has no response yet, and its
    /// response is cut short otherwise.
    pub request_timeout: Option<Duration>,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams_per_connection: u32,
    /// Listen backlog of each listener.
    pub backlog: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_requests: DEFAULT_MAX_REQUESTS,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            backlog: DEFAULT_BACKLOG,
        }
    }
}

impl HttpLimits {
    /// What is wrong with these limits, if anything.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.max_connections == 0 || self.max_requests == 0 || self.max_streams_per_connection == 0 {
            return Err("max_connections, max_requests and max_streams_per_connection must be greater than zero");
        }
        if self.request_timeout.is_some_and(|t| t.is_zero()) || self.header_read_timeout.is_zero() {
            return Err("timeouts must be greater than zero");
        }
        Ok(())
    }
}
