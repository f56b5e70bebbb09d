//! Graceful node shutdown, as upstream's kubelet does it (KEP-2000).
//!
//! The agent holds a logind `delay` inhibitor lock on `shutdown`
//! ([`logind`]). When logind announces a shutdown (`PrepareForShutdown(true)`),
//! [`run`] marks the node as shutting down (new pods are refused with
//! `NodeShutdown`, the node reports NotReady), stops the pods in priority
//! bands ([`plan`]) — regular pods first, critical ones last — and closes
//! the lock so the shutdown goes on. `PrepareForShutdown(false)` (the
//! shutdown was cancelled) takes the lock again and the node takes pods.
//!
//! Start with [`run`] and the [`Pods`] seam the agent implements.
//! With the `standin` feature, [`standin`] has a private bus and a stand-in
//! logind for tests.

pub mod logind;
mod manager;
pub mod plan;
#[cfg(feature = "standin")]
pub mod standin;
#[cfg(test)]
mod tests;

pub use crate::manager::{Config, Pods, StartError, run};
pub use crate::plan::{ActivePod, PriorityPeriod, SYSTEM_CRITICAL_PRIORITY};

/// The status reason of a pod stopped for a node shutdown.
pub const TERMINATED_REASON: &str = "Terminated";
/// Its status message (and the `DisruptionTarget` condition's).
pub const TERMINATED_MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";
/// The node's `Ready` condition message during a shutdown.
pub const NOT_READY_MESSAGE: &str = "node is shutting down";
