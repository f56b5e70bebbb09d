//! [`HttpStats`]: live counters of one `wasi:http` server.
//!
//! Like [`GuestStats`](crate::GuestStats), a cheap clone of shared atomics:
//! the server updates it, anyone may read it at any time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request and connection counters of one server; see each method.
#[derive(Clone, Default)]
pub struct HttpStats(Arc<Inner>);

#[derive(Default)]
struct Inner {
    connections: AtomicU64,
    connections_total: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicU64,
    errors: AtomicU64,
    out_of_memory: AtomicU64,
    timeouts: AtomicU64,
    rejected: AtomicU64,
}

impl HttpStats {
    /// Counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections open now.
    pub fn connections(&self) -> u64 {
        self.0.connections.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections_total(&self) -> u64 {
        self.0.connections_total.load(Ordering::Relaxed)
    }

    /// Requests given an instance so far (each a fresh one).
    pub fn requests(&self) -> u64 {
        self.0.requests.load(Ordering::Relaxed)
    }

    /// Requests whose instance is alive now.
    pub fn in_flight(&self) -> u64 {
        self.0.in_flight.load(Ordering::Relaxed)
    }

    /// Requests whose guest failed (trapped, exceeded its memory, or never
    /// responded): answered `500` if nothing was sent yet.
    pub fn errors(&self) -> u64 {
        self.0.errors.load(Ordering::Relaxed)
    }

    /// Requests whose instance was stopped for passing a memory limit: the
    /// container's, which all the server's instances share, or the node's
    /// memory for pods. Each is also one of [`errors`](Self::errors)
    /// (`500` if nothing was sent yet, and a line on the guest's stderr).
    pub fn out_of_memory(&self) -> u64 {
        self.0.out_of_memory.load(Ordering::Relaxed)
    }

    /// Requests stopped by the request timeout (`504` if nothing was sent).
    pub fn timeouts(&self) -> u64 {
        self.0.timeouts.load(Ordering::Relaxed)
    }

    /// Requests refused without running the guest (`503`: the instance pool
    /// was exhausted, or the server was stopping).
    pub fn rejected(&self) -> u64 {
        self.0.rejected.load(Ordering::Relaxed)
    }

    pub(crate) fn connection_opened(&self) {
        self.0.connections.fetch_add(1, Ordering::Relaxed);
        self.0.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn request_started(&self) {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request_ended(&self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.0.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn oom_killed(&self) {
        self.0.out_of_memory.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn timeout(&self) {
        self.0.timeouts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reject(&self) {
        self.0.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for HttpStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStats")
            .field("connections", &self.connections())
            .field("connections_total", &self.connections_total())
            .field("requests", &self.requests())
            .field("in_flight", &self.in_flight())
            .field("errors", &self.errors())
            .field("out_of_memory", &self.out_of_memory())
            .field("timeouts", &self.timeouts())
            .field("rejected", &self.rejected())
            .finish()
    }
}
