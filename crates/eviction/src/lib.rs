//! Node-pressure eviction as the upstream kubelet does it
//! (`pkg/kubelet/eviction`): watch the node's memory and disks, report
//! `MemoryPressure` / `DiskPressure`, refuse pods under pressure, and evict
//! pods — one per pass, in upstream's order — until the pressure is gone.
//!
//! Start here:
//!
//! 1. Parse the flags into a [`Config`] ([`threshold::parse`] reads
//!    `--eviction-hard`, `--eviction-soft`, `--eviction-soft-grace-period`
//!    and `--eviction-minimum-reclaim` in upstream's syntax).
//! 2. Implement [`Target`] for the agent: the node's figures, the active
//!    pods' usage, evicting a pod, node-level disk reclaim.
//! 3. [`Manager::new`], hand [`Manager::conditions`] to the node status and
//!    [`Manager::admission`] to pod admission, then [`Manager::run`].
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn demo<T: wasmlet_eviction::Target>(target: Arc<T>) -> Result<(), wasmlet_eviction::ParseError> {
//! use wasmlet_eviction::{Config, Flags, Manager};
//!
//! let config = Config::from_flags(&Flags { hard: Some("memory.available<200Mi"), ..Flags::default() })?;
//! let manager = Manager::new(config, target);
//! let (conditions, admission) = (manager.conditions(), manager.admission());
//! # drop((conditions, admission));
//! manager.run(tokio_util::sync::CancellationToken::new()).await;
//! # Ok(())
//! # }
//! ```
//!
//! Module map: [`signal`] (signals, resources, conditions), [`threshold`]
//! (flags), [`observe`] (measurements → observations), [`state`] (grace and
//! transition periods), [`rank`], [`message`], [`admit`], [`pod`] (QoS,
//! requests, priority, critical pods), [`manager`] (the loop), [`duration`]
//! (Go durations), [`quantity`] (how amounts are written).

pub mod admit;
pub mod config;
pub mod duration;
pub mod manager;
pub mod message;
pub mod observe;
pub mod pod;
pub mod quantity;
pub mod rank;
pub mod signal;
pub mod state;
pub mod threshold;

pub use admit::{Admission, Rejection};
pub use config::Config;
pub use manager::{Eviction, Manager, Target};
pub use observe::{ContainerStats, Disk, FsStats, Level, NodeStats, PodStats};
pub use signal::{Condition, Conditions, Resource, Signal};
pub use threshold::{Flags, ParseError, Threshold, Value, hard_reservation};
