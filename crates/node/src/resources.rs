//! Capacity, allocatable and pressure, computed from a [`HostSample`] and the
//! [`NodeConfig`].
//!
//! - capacity: the host's CPUs, memory and root filesystem size, and `max_pods`;
//! - allocatable = capacity − reserved − hard-eviction thresholds (memory and
//!   ephemeral storage only, as upstream), floored at 0;
//! - `MemoryPressure` when available memory is below the memory threshold,
//!   `DiskPressure` when the root filesystem's free share is below the nodefs one.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::config::{EvictionThresholds, NodeConfig};
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
        let storage_threshold = percent_of(cap.ephemeral_storage_bytes, config.eviction.nodefs_available_percent);
        Self {
            cpu_millis: cap.cpu_millis.saturating_sub(r.cpu_millis),
            memory_bytes: cap
                .memory_bytes
                .saturating_sub(r.memory_bytes)
                .saturating_sub(config.eviction.memory_available_bytes),
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

/// Whether available memory is below the hard-eviction threshold.
pub(crate) fn memory_pressure(sample: &HostSample, eviction: &EvictionThresholds) -> bool {
    sample.memory_available < eviction.memory_available_bytes
}

/// Whether the root filesystem's available share is below the nodefs threshold.
pub(crate) fn disk_pressure(sample: &HostSample, eviction: &EvictionThresholds) -> bool {
    u128::from(sample.storage_available) * 100
        < u128::from(sample.storage_capacity) * u128::from(eviction.nodefs_available_percent)
}

fn percent_of(value: u64, percent: u8) -> u64 {
    let p = u128::from(percent.min(100));
    u64::try_from(u128::from(value) * p / 100).unwrap_or(u64::MAX)
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
        assert_eq!(alloc.ephemeral_storage_bytes, 90 * GI);
        assert_eq!(alloc.pods, 110);
        let list = alloc.to_list();
        assert_eq!(list["cpu"].0, "2");
        assert_eq!(list["memory"].0, "3996Mi");
        assert_eq!(list["ephemeral-storage"].0, "90Gi");
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
        assert_eq!(alloc.ephemeral_storage_bytes, 89 * GI);
    }

    #[test]
    fn pressure_thresholds() {
        let e = EvictionThresholds::default();
        let mut s = sample();
        assert!(!memory_pressure(&s, &e) && !disk_pressure(&s, &e));
        s.memory_available = 100 * MI - 1;
        assert!(memory_pressure(&s, &e));
        s.memory_available = 100 * MI;
        assert!(!memory_pressure(&s, &e));
        s.storage_available = 10 * GI;
        assert!(!disk_pressure(&s, &e));
        s.storage_available = 10 * GI - 1;
        assert!(disk_pressure(&s, &e));
    }
}
