//! The Node object of a wasmlet node: registration, measured capacity, the
//! node Lease and node status.
//!
//! Start here:
//!
//! 1. Build a [`NodeConfig`] ([`NodeConfig::new`] has the upstream defaults).
//! 2. [`register()`] creates the Node, or reconciles an existing one, and
//!    returns it with its UID. It retries API errors until cancelled.
//! 3. [`Heartbeat::run`] keeps it alive until cancelled: the Lease in
//!    `kube-node-lease` every 10 s, node status every 10 s (patched when it
//!    changed, or every 5 min), driven by the [`NodeHealth`] the binary sends
//!    through a `watch` channel.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use tokio_util::sync::CancellationToken;
//! use wasmlet_node::{Heartbeat, NodeConfig, NodeHealth, register};
//!
//! let config = NodeConfig::new("node-1", "10.0.0.5".parse()?, "node-1");
//! let cancel = CancellationToken::new();
//! let node = register(&client, &config, &cancel).await?;
//! let uid = node.metadata.uid.unwrap_or_default();
//! let (health_tx, health) = tokio::sync::watch::channel(NodeHealth {
//!     ready: true,
//!     ..NodeHealth::default()
//! });
//! Heartbeat::new(client, config, uid).run(health, cancel).await;
//! # drop(health_tx);
//! # Ok(())
//! # }
//! ```
//!
//! Module map: [`config`] (identity constants, defaults), [`validate`],
//! [`host`] (measuring the machine), [`resources`] (capacity and allocatable),
//! [`register`](mod@register), and the private `status` (conditions, diff,
//! patch), `lease`, `heartbeat`, `object`, `events`, `api` and `backoff`.

mod api;
mod backoff;
pub mod config;
mod events;
mod heartbeat;
pub mod host;
mod lease;
mod object;
use wasmlet_quantity as quantity;
pub mod register;
pub mod resources;
mod status;
pub mod validate;

#[cfg(test)]
mod testing;

pub use config::{
    ANNOTATION_CONTROLLER_MANAGED_ATTACH_DETACH, ARCHITECTURE, KUBERNETES_VERSION, LABEL_ARCH, LABEL_HOSTNAME,
    LABEL_OS, LEASE_NAMESPACE, NodeConfig, OPERATING_SYSTEM, Reserved, default_kubelet_version, default_taints,
};
pub use heartbeat::Heartbeat;
pub use register::register;
pub use status::{Extended, MAX_IMAGES, MAX_NAMES_PER_IMAGE, NodeHealth};
