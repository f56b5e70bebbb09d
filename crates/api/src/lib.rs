//! The kubelet HTTPS API, served on the node's `--port` (10250): what the
//! API server (and so `kubectl logs`) calls on a node.
//!
//! Where to start:
//!
//! - [`serve`] (or [`Server::bind`] then [`Server::run`]) serves over TLS
//!   until a `CancellationToken` is cancelled, then drains.
//! - [`Provider`] is what the rest of the agent implements: the pods, and
//!   where each container's log is ([`LogSource`], [`LookupError`]).
//! - [`router()`] is the same API without TLS or a socket, for tests
//!   (`tower::ServiceExt::oneshot`) and for adding routes and layers.
//!
//! Routes: `/healthz`, `/pods`, `/containerLogs/{namespace}/{pod}/{container}`,
//! and with a [`Telemetry`] `/stats/summary`, `/metrics/resource`, `/metrics`;
//! the [`router`](mod@router) module documents them, with the log query
//! and its statuses. [`auth`] authenticates callers (client certificates,
//! bearer tokens through TokenReview) and authorizes them through
//! SubjectAccessReview, as the upstream kubelet does.

pub mod auth;
mod error;
mod healthz;
mod logs;
mod names;
mod provider;
mod query;
pub mod router;
mod server;
pub mod stats;
mod streaming;
mod tls;
mod tls_policy;

pub use auth::Auth;
pub use healthz::{DEFAULT_HEALTHZ_PORT, healthz_router, serve_healthz};
pub use provider::{LogSource, LookupError, Provider};
pub use router::router;
pub use server::{
    DEFAULT_CLIENT_TIMEOUT, DEFAULT_DRAIN_TIMEOUT, DEFAULT_PORT, Error, Result, Server, ServerConfig, serve,
};
pub use stats::Telemetry;
pub use tls::{Error as TlsError, Tls};
pub use tls_policy::{PolicyError as TlsPolicyError, TlsPolicy};
