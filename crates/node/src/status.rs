//! Node status as this kubelet reports it: the conditions (with upstream
//! reasons and messages), addresses, capacity, allocatable, daemon endpoints,
//! nodeInfo and images; whether it differs from what the API server has; and
//! the strategic merge patch that sends it.
//!
//! Everything here is pure: the caller passes the current status, the inputs
//! and the time. [`crate::Heartbeat`] drives it.

use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::time::{Duration, Instant};

use crate::config::{ARCHITECTURE, NodeConfig, OPERATING_SYSTEM};
use crate::host::{HostSample, SystemInfo};
use crate::quantity;
use crate::resources::Resources;

type ResourceList = std::collections::BTreeMap<String, Quantity>;

/// Upstream `nodeStatusMaxImages`.
pub const MAX_IMAGES: usize = 50;
/// Upstream limit of names per image in node status.
pub const MAX_NAMES_PER_IMAGE: usize = 5;

/// What the binary tells the heartbeat about the node's health, through a
/// `tokio::sync::watch` channel. A new value triggers an immediate status update.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeHealth {
    /// Whether the node can run pods (`Ready=True`).
    pub ready: bool,
    /// Why not, when not ready: the `Ready` condition's message.
    pub message: String,
    /// Images present on the node (`status.images`); the largest
    /// [`MAX_IMAGES`] are reported.
    pub images: Vec<ContainerImage>,
    /// The pressure conditions, as the eviction manager decides them
    /// (`MemoryPressure`, `DiskPressure`, `PIDPressure`).
    pub pressure: wasmlet_eviction::Conditions,
    /// Extended resources of device plugins, by name: added to capacity
    /// and allocatable. A resource once reported must stay (at 0 when its
    /// plugin is gone): the status patch merges, it never drops a key.
    pub extended: std::collections::BTreeMap<String, Extended>,
}

/// One extended resource's amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extended {
    /// All devices.
    pub capacity: u64,
    /// Healthy devices.
    pub allocatable: u64,
}

/// The inputs of one status computation.
pub(crate) struct Inputs<'a> {
    pub(crate) config: &'a NodeConfig,
    pub(crate) sample: &'a HostSample,
    pub(crate) info: &'a SystemInfo,
    pub(crate) health: &'a NodeHealth,
}

/// One condition as this kubelet wants it, before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConditionSpec {
    pub(crate) type_: &'static str,
    pub(crate) status: bool,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
}

/// `Ready`, `MemoryPressure`, `DiskPressure` and `PIDPressure`.
pub(crate) fn condition_specs(inputs: &Inputs<'_>) -> [ConditionSpec; 4] {
    let spec =
        |type_, status, reason, message: &str| ConditionSpec { type_, status, reason, message: message.to_owned() };
    let h = inputs.health;
    let ready = if h.ready {
        spec("Ready", true, "KubeletReady", "kubelet is posting ready status")
    } else if h.message.is_empty() {
        spec("Ready", false, "KubeletNotReady", "kubelet is not ready")
    } else {
        spec("Ready", false, "KubeletNotReady", &h.message)
    };
    let pressure = &h.pressure;
    let memory = if pressure.memory_pressure {
        let m = "kubelet has insufficient memory available";
        spec("MemoryPressure", true, "KubeletHasInsufficientMemory", m)
    } else {
        let m = "kubelet has sufficient memory available";
        spec("MemoryPressure", false, "KubeletHasSufficientMemory", m)
    };
    let disk = if pressure.disk_pressure {
        spec("DiskPressure", true, "KubeletHasDiskPressure", "kubelet has disk pressure")
    } else {
        let m = "kubelet has no disk pressure";
        spec("DiskPressure", false, "KubeletHasNoDiskPressure", m)
    };
    let pid = if pressure.pid_pressure {
        spec("PIDPressure", true, "KubeletHasInsufficientPID", "kubelet has insufficient PID available")
    } else {
        spec("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available")
    };
    [memory, disk, pid, ready]
}

/// The conditions with timestamps: `lastHeartbeatTime` is `now`;
/// `lastTransitionTime` is kept from `existing` when the status is unchanged.
pub(crate) fn conditions(existing: &[NodeCondition], specs: &[ConditionSpec], now: Timestamp) -> Vec<NodeCondition> {
    specs
        .iter()
        .map(|s| {
            let status = if s.status { "True" } else { "False" };
            let transition = existing
                .iter()
                .find(|c| c.type_ == s.type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            NodeCondition {
                type_: s.type_.to_owned(),
                status: status.to_owned(),
                reason: Some(s.reason.to_owned()),
                message: Some(s.message.clone()),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: Some(transition),
            }
        })
        .collect()
}

/// The whole status this kubelet reports, given the current one.
pub(crate) fn desired(current: Option<&NodeStatus>, inputs: &Inputs<'_>, now: Timestamp) -> NodeStatus {
    let existing = current.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    let c = inputs.config;
    let info = inputs.info;
    NodeStatus {
        conditions: Some(conditions(existing, &condition_specs(inputs), now)),
        addresses: Some(vec![
            NodeAddress { type_: "InternalIP".into(), address: c.internal_ip.to_string() },
            NodeAddress { type_: "Hostname".into(), address: c.hostname.clone() },
        ]),
        capacity: Some(with_extended(Resources::capacity(inputs.sample, c).to_list(), &inputs.health.extended, |e| {
            e.capacity
        })),
        allocatable: Some(with_extended(
            Resources::allocatable(inputs.sample, c).to_list(),
            &inputs.health.extended,
            |e| e.allocatable,
        )),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(c.kubelet_port) }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: info.machine_id.clone(),
            system_uuid: info.system_uuid.clone(),
            boot_id: info.boot_id.clone(),
            kernel_version: info.kernel_version.clone(),
            os_image: info.os_image.clone(),
            container_runtime_version: c.runtime_version.clone(),
            kubelet_version: c.kubelet_version.clone(),
            kube_proxy_version: String::new(),
            operating_system: OPERATING_SYSTEM.to_owned(),
            architecture: ARCHITECTURE.to_owned(),
            swap: None,
        }),
        images: Some(images(&inputs.health.images)),
        ..NodeStatus::default()
    }
}

/// `list` with the extended resources' amounts (`pick`) added.
fn with_extended(
    mut list: ResourceList,
    extended: &std::collections::BTreeMap<String, Extended>,
    pick: fn(&Extended) -> u64,
) -> ResourceList {
    for (name, e) in extended {
        list.insert(name.clone(), quantity::count(pick(e)));
    }
    list
}

/// The largest [`MAX_IMAGES`] images, at most [`MAX_NAMES_PER_IMAGE`] names each.
fn images(all: &[ContainerImage]) -> Vec<ContainerImage> {
    let mut images = all.to_vec();
    images.sort_by_key(|i| std::cmp::Reverse(i.size_bytes.unwrap_or(0)));
    images.truncate(MAX_IMAGES);
    for i in &mut images {
        if let Some(names) = &mut i.names {
            names.truncate(MAX_NAMES_PER_IMAGE);
        }
    }
    images
}

/// Whether `desired` says something `current` does not, ignoring heartbeat
/// and transition times, and fields this kubelet does not set.
pub(crate) fn differs(current: Option<&NodeStatus>, desired: &NodeStatus) -> bool {
    let Some(cur) = current else {
        return true;
    };
    let conditions_differ = desired.conditions.iter().flatten().any(|d| {
        !cur.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == d.type_ && c.status == d.status && c.reason == d.reason && c.message == d.message)
    });
    let empty = Vec::new();
    conditions_differ
        || list_differs(desired.capacity.as_ref(), cur.capacity.as_ref())
        || list_differs(desired.allocatable.as_ref(), cur.allocatable.as_ref())
        || desired.addresses != cur.addresses
        || desired.daemon_endpoints != cur.daemon_endpoints
        || desired.node_info != cur.node_info
        || desired.images.as_ref().unwrap_or(&empty) != cur.images.as_ref().unwrap_or(&empty)
}

/// Whether a key of `want` is missing from `have` or has another value.
fn list_differs(want: Option<&ResourceList>, have: Option<&ResourceList>) -> bool {
    want.into_iter().flatten().any(|(k, v)| !have.and_then(|h| h.get(k)).is_some_and(|h| quantity::same(v, h)))
}

/// Whether to PATCH now: when something changed, on the first report, or
/// when `every` has passed since the last one.
pub(crate) fn patch_due(changed: bool, last_report: Option<Instant>, now: Instant, every: Duration) -> bool {
    changed || last_report.is_none_or(|t| now.saturating_duration_since(t) >= every)
}

/// The strategic merge patch of `nodes/status` that sets `status`.
/// Conditions merge by type (others' conditions are kept); addresses are
/// replaced wholesale (`$patch: replace`), since their merge key `type` is not
/// unique; maps and nodeInfo merge; images (atomic) are replaced.
pub(crate) fn patch(status: &NodeStatus) -> serde_json::Value {
    let mut value = serde_json::json!({ "status": status });
    if let Some(addresses) = value.pointer_mut("/status/addresses").and_then(serde_json::Value::as_array_mut) {
        addresses.push(serde_json::json!({ "$patch": "replace" }));
    }
    value
}

/// The `Ready` condition's status (`"True"`, `"False"`, `"Unknown"`).
pub(crate) fn ready(status: Option<&NodeStatus>) -> Option<&str> {
    status?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str())
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
