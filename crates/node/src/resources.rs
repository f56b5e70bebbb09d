//! Capacity and allocatable, computed from a [`HostSample`] and the
//! [`NodeConfig`].
//!
//! - capacity: the host's CPUs, memory and root filesystem size, and `max_pods`;
//! - allocatable = capacity − reserved − hard-eviction thresholds (the hard
//!   `memory.available` level for memory, the hard `nodefs.available` one for
//!   ephemeral storage, as upstream), floored at 0.
//!
//! Pressure (`MemoryPressure`, `DiskPressure`) is the eviction manager's
//! (`wasmlet-eviction`), reported through [`NodeHealth`](crate::NodeHealth).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use wasmlet_eviction::{Signal, hard_reservation};

use crate::config::NodeConfig;
use crate::host::HostSample;
use crate::quantity;

/// Amounts of the resources a node reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage_bytes: u64,
    /// Pods.
    pub pods: u64,
}

impl Resources {
    /// The node's capacity.
    pub fn capacity(sample: &HostSample, config: &NodeConfig) -> Self {
        Self {
            cpu_millis: u64::from(sample.cpus).saturating_mul(1000),
            memory_bytes: sample.memory_capacity,
            ephemeral_storage_bytes: sample.storage_capacity,
            pods: u64::from(config.max_pods),
        }
    }

    /// What pods may use: capacity minus reservations and eviction thresholds.
    pub fn allocatable(sample: &HostSample, config: &NodeConfig) -> Self {
        let cap = Self::capacity(sample, config);
        let r = &config.reserved;
        let memory_threshold = hard_reservation(&config.eviction, Signal::MemoryAvailable, cap.memory_bytes);
        let storage_threshold =
            hard_reservation(&config.eviction, Signal::NodeFsAvailable, cap.ephemeral_storage_bytes);
        Self {
            cpu_millis: cap.cpu_millis.saturating_sub(r.cpu_millis),
            memory_bytes: cap.memory_bytes.saturating_sub(r.memory_bytes).saturating_sub(memory_threshold),
            ephemeral_storage_bytes: cap
                .ephemeral_storage_bytes
                .saturating_sub(r.ephemeral_storage_bytes)
                .saturating_sub(storage_threshold),
            pods: cap.pods,
        }
    }

    /// As a `ResourceList` (`cpu`, `memory`, `ephemeral-storage`, `pods`), with
    /// quantities written the way the kubelet writes them.
    pub fn to_list(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_owned(), quantity::cpu(self.cpu_millis)),
            ("memory".to_owned(), quantity::bytes(self.memory_bytes)),
            ("ephemeral-storage".to_owned(), quantity::bytes(self.ephemeral_storage_bytes)),
            ("pods".to_owned(), quantity::count(self.pods)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Reserved;

    const GI: u64 = 1 << 30;
    const MI: u64 = 1 << 20;

    fn sample() -> HostSample {
        HostSample {
            cpus: 2,
            memory_capacity: 4 * GI,
            memory_available: 3 * GI,
            storage_capacity: 100 * GI,
            storage_available: 50 * GI,
        }
    }

    fn config() -> NodeConfig {
        NodeConfig::new("n", std::net::IpAddr::from([127, 0, 0, 1]), "h")
    }

    #[test]
    fn allocatable_subtracts_eviction_thresholds() {
        let c = config();
        let cap = Resources::capacity(&sample(), &c);
        assert_eq!(
            cap,
            Resources { cpu_millis: 2000, memory_bytes: 4 * GI, ephemeral_storage_bytes: 100 * GI, pods: 110 }
        );
        let alloc = Resources::allocatable(&sample(), &c);
        assert_eq!(alloc.cpu_millis, 2000);
        assert_eq!(alloc.memory_bytes, 4 * GI - 100 * MI);
        // 10 % as upstream computes it (a 32-bit percentage).
        assert_eq!(alloc.ephemeral_storage_bytes, 100 * GI - 10_737_418_400);
        assert_eq!(alloc.pods, 110);
        let list = alloc.to_list();
        assert_eq!(list["cpu"].0, "2");
        assert_eq!(list["memory"].0, "3996Mi");
        assert_eq!(list["pods"].0, "110");
    }

    #[test]
    fn reservations_are_subtracted_and_floored_at_zero() {
        let mut c = config();
        c.reserved = Reserved { cpu_millis: 500, memory_bytes: 10 * GI, ephemeral_storage_bytes: GI };
        let alloc = Resources::allocatable(&sample(), &c);
        assert_eq!(alloc.cpu_millis, 1500);
        assert_eq!(alloc.to_list()["cpu"].0, "1500m");
        assert_eq!(alloc.memory_bytes, 0);
        assert_eq!(alloc.ephemeral_storage_bytes, 100 * GI - GI - 10_737_418_400);
    }

    #[test]
    fn thresholds_in_either_form_are_kept_out() {
        let mut c = config();
        let flags =
            wasmlet_eviction::Flags { hard: Some("memory.available<10%,nodefs.available<2Gi"), ..Default::default() };
        c.eviction = wasmlet_eviction::threshold::parse(&flags).unwrap();
        let alloc = Resources::allocatable(&sample(), &c);
        assert_eq!(alloc.memory_bytes, 4 * GI - ((4 * GI) as f64 * f64::from(0.1f32)) as u64);
        assert_eq!(alloc.ephemeral_storage_bytes, 98 * GI);
        c.eviction.clear();
        assert_eq!(Resources::allocatable(&sample(), &c).memory_bytes, 4 * GI, "no thresholds, nothing kept out");
    }
}
