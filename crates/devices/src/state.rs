//! What the manager knows, behind one lock: each resource's devices and
//! health and its plugin endpoint, the allocations of pods, and the
//! capacity last reported. Pure bookkeeping: no I/O, no waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;

use crate::endpoint::Endpoint;
use crate::pod_devices::PodDevices;
use crate::{Amounts, Capacity};

/// One extended resource.
#[derive(Debug, Default)]
pub(crate) struct Resource {
    /// Every device the plugin listed, by ID: `true` when healthy.
    pub(crate) devices: BTreeMap<String, bool>,
    /// The connected plugin, if any.
    pub(crate) endpoint: Option<Arc<Endpoint>>,
    /// The plugin's options (kept after it disconnects).
    pub(crate) options: Option<api::DevicePluginOptions>,
    /// When the plugin went away (or the agent restarted without it).
    pub(crate) stopped_at: Option<Instant>,
}

impl Resource {
    pub(crate) fn healthy(&self) -> BTreeSet<String> {
        self.devices.iter().filter(|(_, h)| **h).map(|(id, _)| id.clone()).collect()
    }

    /// Every device unhealthy, the plugin gone since `now` (upstream
    /// `markResourceUnhealthy` + `setStopTime`).
    pub(crate) fn stop(&mut self, now: Instant) {
        for healthy in self.devices.values_mut() {
            *healthy = false;
        }
        if let Some(ep) = self.endpoint.take() {
            ep.stop.cancel();
        }
        self.stopped_at = Some(now);
    }
}

/// The manager's state.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) resources: BTreeMap<String, Resource>,
    pub(crate) pods: PodDevices,
    /// Resources removed after their grace period: reported as 0 from then
    /// on, so that the Node shows they were device plugin resources.
    pub(crate) removed: BTreeSet<String>,
}

impl State {
    /// Whether `resource` belongs to a device plugin: registered now, or
    /// still allocated to a pod (upstream `isDevicePluginResource`).
    pub(crate) fn is_plugin_resource(&self, resource: &str) -> bool {
        self.resources.contains_key(resource) || self.pods.in_use(resource).next().is_some()
    }

    /// A plugin's device list replaces what was known.
    pub(crate) fn set_devices(&mut self, resource: &str, devices: &[api::Device]) {
        let r = self.resources.entry(resource.to_owned()).or_default();
        r.devices = devices.iter().map(|d| (d.id.clone(), d.health == api::HEALTHY)).collect();
    }

    /// Drops resources whose plugin has been gone longer than `grace`;
    /// returns whether any was.
    pub(crate) fn expire(&mut self, now: Instant, grace: Duration) -> bool {
        let expired: Vec<String> = self
            .resources
            .iter()
            .filter(|(_, r)| {
                r.endpoint.is_none() && r.stopped_at.is_some_and(|t| now.saturating_duration_since(t) > grace)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &expired {
            tracing::info!(resource = %name, "device plugin gone for longer than the grace period; capacity is now 0");
            self.resources.remove(name);
            self.removed.insert(name.clone());
        }
        !expired.is_empty()
    }

    /// When the next resource expires, if one is stopped.
    pub(crate) fn next_expiry(&self, grace: Duration) -> Option<Instant> {
        self.resources.values().filter(|r| r.endpoint.is_none()).filter_map(|r| r.stopped_at).min().map(|t| t + grace)
    }

    /// Capacity (all devices) and allocatable (healthy ones) per resource;
    /// removed resources at 0 (upstream `GetCapacity`).
    pub(crate) fn capacity(&self) -> Capacity {
        let mut resources: BTreeMap<String, Amounts> =
            self.removed.iter().map(|name| (name.clone(), Amounts::default())).collect();
        for (name, r) in &self.resources {
            let healthy = r.devices.values().filter(|h| **h).count() as i64;
            resources.insert(name.clone(), Amounts { capacity: r.devices.len() as i64, allocatable: healthy });
        }
        Capacity { resources }
    }

    /// Healthy devices per resource (what the checkpoint records as
    /// registered).
    pub(crate) fn registered(&self) -> BTreeMap<String, Vec<String>> {
        self.resources.iter().map(|(name, r)| (name.clone(), r.healthy().into_iter().collect())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, health: &str) -> api::Device {
        api::Device { id: id.into(), health: health.into(), topology: None }
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_counts_all_devices_allocatable_the_healthy_and_expiry_zeroes_them() {
        let grace = Duration::from_secs(300);
        let mut s = State::default();
        s.set_devices("x.io/d", &[device("a", api::HEALTHY), device("b", api::UNHEALTHY), device("c", api::HEALTHY)]);
        assert_eq!(s.capacity().resources["x.io/d"], Amounts { capacity: 3, allocatable: 2 });
        assert_eq!(s.registered()["x.io/d"], vec!["a".to_string(), "c".to_string()]);

        let start = Instant::now();
        s.resources.get_mut("x.io/d").unwrap().stop(start);
        assert_eq!(s.capacity().resources["x.io/d"], Amounts { capacity: 3, allocatable: 0 });
        assert_eq!(s.next_expiry(grace), Some(start + grace));
        assert!(!s.expire(start + grace, grace), "not before the grace period is over");
        assert!(s.expire(start + grace + Duration::from_millis(1), grace));
        assert_eq!(s.capacity().resources["x.io/d"], Amounts::default());
        assert!(!s.is_plugin_resource("x.io/d"));
        assert_eq!(s.next_expiry(grace), None);
    }
}
