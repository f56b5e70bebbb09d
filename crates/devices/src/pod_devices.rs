//! Which devices each pod's containers hold, with what the plugin's
//! `Allocate` answered for them (upstream `podDevices`).

use std::collections::{BTreeMap, BTreeSet};

use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;

/// One container's devices of one resource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Allocation {
    pub(crate) devices: BTreeSet<String>,
    pub(crate) response: api::ContainerAllocateResponse,
}

type Containers = BTreeMap<String, BTreeMap<String, Allocation>>;

/// Allocations by pod UID, container name and resource.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct PodDevices {
    pods: BTreeMap<String, Containers>,
}

impl PodDevices {
    pub(crate) fn insert(&mut self, uid: &str, container: &str, resource: &str, allocation: Allocation) {
        self.pods
            .entry(uid.to_owned())
            .or_default()
            .entry(container.to_owned())
            .or_default()
            .insert(resource.to_owned(), allocation);
    }

    /// What `container` of pod `uid` holds of `resource`.
    pub(crate) fn get(&self, uid: &str, container: &str, resource: &str) -> Option<&Allocation> {
        self.pods.get(uid)?.get(container)?.get(resource)
    }

    /// Everything `container` of pod `uid` holds, by resource.
    pub(crate) fn container(&self, uid: &str, container: &str) -> Option<&BTreeMap<String, Allocation>> {
        self.pods.get(uid)?.get(container)
    }

    /// Every device of `resource` held by any pod.
    pub(crate) fn in_use<'a>(&'a self, resource: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.pods.values().flat_map(|c| c.values()).filter_map(move |r| r.get(resource)).flat_map(|a| a.devices.iter())
    }

    /// Forgets pod `uid`; whether it held anything.
    pub(crate) fn remove(&mut self, uid: &str) -> bool {
        self.pods.remove(uid).is_some()
    }

    /// Forgets every pod for which `keep` is false; returns their UIDs.
    pub(crate) fn retain(&mut self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let gone: Vec<String> = self.pods.keys().filter(|uid| !keep(uid)).cloned().collect();
        for uid in &gone {
            self.pods.remove(uid);
        }
        gone
    }

    /// Every allocation, flattened: (pod, container, resource, allocation).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&String, &String, &String, &Allocation)> {
        self.pods.iter().flat_map(|(uid, containers)| {
            containers.iter().flat_map(move |(c, resources)| resources.iter().map(move |(r, a)| (uid, c, r, a)))
        })
    }
}
