//! What `Allocate` answers become for one container: the answers of all its
//! resources merged as upstream merges them (`deviceRunContainerOptions`):
//! the first setting of an environment variable, mount path, device path
//! or annotation wins; CDI device names are kept once each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;

/// A mount from a device plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMount {
    /// The source on the host.
    pub host: PathBuf,
    /// Where the container sees it.
    pub guest: String,
    /// Whether the plugin asked for read-only.
    pub read_only: bool,
}

/// A device node from a device plugin (no meaning to a WASI guest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// The node on the host.
    pub host: String,
    /// Where the container would see it.
    pub guest: String,
    /// `r`, `w`, `m`.
    pub permissions: String,
}

/// Everything the device plugins gave one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerDevices {
    /// The resources that contributed, sorted.
    pub resources: Vec<String>,
    /// Environment variables, in order.
    pub envs: Vec<(String, String)>,
    /// Mounts.
    pub mounts: Vec<DeviceMount>,
    /// Device nodes.
    pub device_nodes: Vec<DeviceNode>,
    /// Container annotations.
    pub annotations: Vec<(String, String)>,
    /// Fully qualified CDI device names.
    pub cdi_devices: Vec<String>,
}

impl ContainerDevices {
    /// Whether nothing was given.
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
            && self.mounts.is_empty()
            && self.device_nodes.is_empty()
            && self.annotations.is_empty()
            && self.cdi_devices.is_empty()
    }
}

/// Merges the answers of each resource (sorted by resource name, so the
/// outcome is the same on every run). Map entries of one answer are taken
/// in key order.
pub(crate) fn merge<'a>(
    answers: impl IntoIterator<Item = (&'a String, &'a api::ContainerAllocateResponse)>,
) -> ContainerDevices {
    let mut out = ContainerDevices::default();
    let mut envs: HashMap<String, String> = HashMap::new();
    let mut mounts: HashMap<String, String> = HashMap::new();
    let mut nodes: HashMap<String, String> = HashMap::new();
    let mut annotations: HashMap<String, String> = HashMap::new();
    let mut cdi: HashSet<String> = HashSet::new();
    let sorted: BTreeMap<&String, &api::ContainerAllocateResponse> = answers.into_iter().collect();
    for (resource, resp) in sorted {
        out.resources.push(resource.clone());
        for (k, v) in resp.envs.iter().collect::<BTreeMap<_, _>>() {
            if first(&mut envs, k, v, resource, "environment variable") {
                out.envs.push((k.clone(), v.clone()));
            }
        }
        for m in &resp.mounts {
            if first(&mut mounts, &m.container_path, &m.host_path, resource, "mount") {
                out.mounts.push(DeviceMount {
                    host: PathBuf::from(&m.host_path),
                    guest: m.container_path.clone(),
                    read_only: m.read_only,
                });
            }
        }
        for d in &resp.devices {
            if first(&mut nodes, &d.container_path, &d.host_path, resource, "device") {
                out.device_nodes.push(DeviceNode {
                    host: d.host_path.clone(),
                    guest: d.container_path.clone(),
                    permissions: d.permissions.clone(),
                });
            }
        }
        for (k, v) in resp.annotations.iter().collect::<BTreeMap<_, _>>() {
            if first(&mut annotations, k, v, resource, "annotation") {
                out.annotations.push((k.clone(), v.clone()));
            }
        }
        for d in &resp.cdi_devices {
            if cdi.insert(d.name.clone()) {
                out.cdi_devices.push(d.name.clone());
            }
        }
    }
    out
}

/// Records `key → value` unless `key` is taken; a different value for a
/// taken key is logged, as upstream does.
fn first(seen: &mut HashMap<String, String>, key: &str, value: &str, resource: &str, what: &str) -> bool {
    match seen.get(key) {
        Some(old) => {
            if old != value {
                tracing::warn!(%resource, key, kept = %old, ignored = %value, "conflicting {what} from device plugins; keeping the first");
            }
            false
        }
        None => {
            seen.insert(key.to_owned(), value.to_owned());
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn mount(guest: &str, host: &str, ro: bool) -> api::Mount {
        api::Mount { container_path: guest.into(), host_path: host.into(), read_only: ro }
    }

    #[test]
    fn first_setting_wins_and_duplicates_collapse() {
        let a = api::ContainerAllocateResponse {
            envs: [("A".to_string(), "1".to_string()), ("SHARED".into(), "from-a".into())].into(),
            mounts: vec![mount("/data", "/srv/a", true), mount("/data", "/srv/a", true)],
            devices: vec![api::DeviceSpec {
                container_path: "/dev/null".into(),
                host_path: "/dev/null".into(),
                permissions: "mrw".into(),
            }],
            annotations: Default::default(),
            cdi_devices: vec![api::CdiDevice { name: "v.io/c=x".into() }],
        };
        let b = api::ContainerAllocateResponse {
            envs: [("SHARED".to_string(), "from-b".to_string())].into(),
            mounts: vec![mount("/data", "/srv/b", false), mount("/other", "/srv/o", false)],
            cdi_devices: vec![api::CdiDevice { name: "v.io/c=x".into() }, api::CdiDevice { name: "v.io/c=y".into() }],
            ..Default::default()
        };
        let (ra, rb) = ("a.io/x".to_string(), "b.io/y".to_string());
        let merged = merge([(&rb, &b), (&ra, &a)]);
        assert_eq!(merged.resources, ["a.io/x", "b.io/y"]);
        assert_eq!(merged.envs, [("A".into(), "1".into()), ("SHARED".into(), "from-a".into())]);
        assert_eq!(merged.mounts.len(), 2);
        assert_eq!(merged.mounts[0], DeviceMount { host: "/srv/a".into(), guest: "/data".into(), read_only: true });
        assert_eq!(merged.mounts[1].guest, "/other");
        assert_eq!(merged.device_nodes.len(), 1);
        assert_eq!(merged.cdi_devices, ["v.io/c=x", "v.io/c=y"]);
        assert!(!merged.is_empty());
        assert!(merge([]).is_empty());
    }

    fn answer() -> impl Strategy<Value = api::ContainerAllocateResponse> {
        (
            proptest::collection::hash_map("[A-C]", "[a-z]{0,2}", 0..4),
            proptest::collection::vec(("/[a-c]", "/h[0-2]", any::<bool>()), 0..4),
            proptest::collection::vec("v\\.io/c=[a-c]", 0..3),
        )
            .prop_map(|(envs, mounts, cdi)| api::ContainerAllocateResponse {
                envs,
                mounts: mounts.into_iter().map(|(g, h, ro)| mount(&g, &h, ro)).collect(),
                cdi_devices: cdi.into_iter().map(|name| api::CdiDevice { name }).collect(),
                ..Default::default()
            })
    }

    proptest! {
        #[test]
        fn merged_answers_never_repeat_a_key_and_keep_the_first_value(
            answers in proptest::collection::btree_map("[a-d]\\.io/r", answer(), 0..4),
        ) {
            let merged = merge(answers.iter());
            let mut guests: Vec<&String> = merged.mounts.iter().map(|m| &m.guest).collect();
            let n = guests.len();
            guests.sort();
            guests.dedup();
            prop_assert_eq!(guests.len(), n);
            let mut keys: Vec<&String> = merged.envs.iter().map(|(k, _)| k).collect();
            let n = keys.len();
            keys.sort();
            keys.dedup();
            prop_assert_eq!(keys.len(), n);
            for (k, v) in &merged.envs {
                let first = answers.values().find_map(|a| a.envs.get(k));
                prop_assert_eq!(first, Some(v));
            }
            for m in &merged.mounts {
                let first = answers.values().flat_map(|a| a.mounts.iter()).find(|x| x.container_path == m.guest).unwrap();
                prop_assert_eq!(&first.host_path, &m.host.to_string_lossy().into_owned());
            }
            let all: std::collections::BTreeSet<&String> =
                answers.values().flat_map(|a| a.cdi_devices.iter().map(|d| &d.name)).collect();
            prop_assert_eq!(merged.cdi_devices.len(), all.len());
        }
    }
}
