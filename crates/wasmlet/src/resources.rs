//! What pods get from node plugins, in WASI terms: the device plugin
//! manager's devices and DRA's claims, with the CDI devices of both
//! resolved through the CDI spec directories ([`NodeResources`] is pod
//! sync's [`PodResources`]).
//!
//! - Environment: device plugin `envs` come first (the container's own
//!   `env` wins over them), CDI `env` edits last (they win), as a container
//!   runtime applies them.
//! - Mounts (device plugin `mounts`, CDI `mounts`) become preopens,
//!   read-only when asked. A preopen is a directory: a file is not mounted
//!   (a Warning event says so); a missing source fails the container start,
//!   as it fails a runtime's bind mount.
//! - Device nodes have no meaning to a WASI guest (it has no `/dev`, no
//!   `open` of a device, no ioctl): they are not given, and the container's
//!   first start records a `DeviceNodesIgnored` Warning event naming them.
//!   Hooks, network devices, Intel RDT and extra GIDs of CDI specs likewise
//!   (`DeviceEditsIgnored`). The pod still runs: a plugin such as the
//!   generic device plugin hands out a node with every device, and what
//!   else it gives (mounts, environment) is still useful.
//! - An unresolvable CDI device fails the container start
//!   (`CDI device injection failed: unresolvable CDI devices …`), retried.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmlet_devices::{ContainerDevices, DeviceManager};
use wasmlet_dra::DraManager;
use wasmlet_pods::admission::Rejection;
use wasmlet_pods::{ContainerResources, Note, PodResources, ResourceError};

/// Event reason: device nodes were not given to a guest.
pub(crate) const DEVICE_NODES_IGNORED: &str = "DeviceNodesIgnored";
/// Event reason: other device edits a guest cannot have were not applied.
pub(crate) const DEVICE_EDITS_IGNORED: &str = "DeviceEditsIgnored";
/// Upstream's event reason for a failed `NodePrepareResources`.
const FAILED_PREPARE: &str = "FailedPrepareDynamicResources";

/// Device plugins, DRA and CDI for pod sync.
pub(crate) struct NodeResources {
    pub(crate) devices: DeviceManager,
    pub(crate) dra: DraManager,
    pub(crate) cdi: wasmlet_cdi::Registry,
    /// Unprepares of pods that are gone (after a restart).
    pub(crate) tasks: TaskTracker,
    pub(crate) cancel: CancellationToken,
}

#[async_trait::async_trait]
impl PodResources for NodeResources {
    async fn admit(&self, pod: &Pod) -> Result<(), Rejection> {
        self.devices.admit(pod).await.map_err(|r| Rejection::new(&r.reason, &r.message))
    }

    async fn prepare(&self, pod: &Pod) -> Result<(), ResourceError> {
        let has_claims = pod.spec.as_ref().and_then(|s| s.resource_claims.as_ref()).is_some_and(|c| !c.is_empty());
        if !has_claims {
            return Ok(());
        }
        self.dra.prepare(pod).await.map_err(|e| ResourceError {
            reason: FAILED_PREPARE.into(),
            message: format!("Failed to prepare dynamic resources: {e}"),
        })
    }

    async fn container(&self, pod: &Pod, container: &Container) -> Result<ContainerResources, String> {
        let devices = self.devices.container_devices(pod, container).await.map_err(|e| e.to_string())?;
        let claims = self.dra.cdi_devices(pod, container).map_err(|e| e.to_string())?;
        let mut names = devices.cdi_devices.clone();
        for n in claims {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let edits = self.cdi.resolve(&names).map_err(|e| format!("CDI device injection failed: {e}"))?;
        for_guest(&container.name, &devices, &edits)
    }

    async fn release(&self, pod: &Pod) -> Result<(), ResourceError> {
        let Some(uid) = pod.metadata.uid.as_deref() else { return Ok(()) };
        self.devices.release(uid);
        if self.dra.holds_claims(uid) {
            self.dra.unprepare(uid).await.map_err(|e| ResourceError {
                reason: "FailedUnprepareDynamicResources".into(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    fn retain(&self, listed: &HashSet<String>) {
        self.devices.retain(|uid| listed.contains(uid));
        for uid in self.dra.pods_with_claims().into_iter().filter(|uid| !listed.contains(uid)) {
            let (dra, cancel) = (self.dra.clone(), self.cancel.clone());
            self.tasks.spawn(async move {
                let mut delays = wasmlet_retry::Backoff { min: std::time::Duration::from_secs(1), max: std::time::Duration::from_secs(60) }.delays();
                loop {
                    match dra.unprepare(&uid).await {
                        Ok(()) => return tracing::info!(pod.uid = %uid, "claims of a pod that is gone unprepared"),
                        Err(e) => {
                            let delay = delays.next().unwrap_or_default();
                            tracing::warn!(pod.uid = %uid, error = %e, retry_in = ?delay, "unpreparing the claims of a pod that is gone failed");
                            if !wasmlet_retry::sleep(delay, &cancel).await {
                                return;
                            }
                        }
                    }
                }
            });
        }
    }
}

/// The guest's share of what device plugins and CDI gave `container`.
fn for_guest(
    container: &str,
    devices: &ContainerDevices,
    edits: &wasmlet_cdi::Edits,
) -> Result<ContainerResources, String> {
    let mut out = ContainerResources {
        env_defaults: devices.envs.clone(),
        env_overrides: edits.env.clone(),
        ..Default::default()
    };
    let mut skipped = Vec::new();
    let sources = devices
        .mounts
        .iter()
        .map(|m| (&m.host, &m.guest, m.read_only))
        .chain(edits.mounts.iter().map(|m| (&m.host, &m.guest, m.read_only)));
    for (host, guest, read_only) in sources {
        match preopen(host, guest, read_only) {
            Ok(Some(m)) => {
                if !out.mounts.iter().any(|have| have.guest == m.guest) {
                    out.mounts.push(m);
                }
            }
            Ok(None) => skipped.push(format!("{} at {guest} (a file: a WASI preopen is a directory)", host.display())),
            Err(e) => return Err(e),
        }
    }
    let nodes: Vec<String> = devices
        .device_nodes
        .iter()
        .map(|d| d.guest.clone())
        .chain(edits.device_nodes.iter().map(|(path, device)| format!("{path} ({device})")))
        .collect();
    if !nodes.is_empty() {
        let resources = devices.resources.join(", ");
        out.notes.push(Note {
            reason: DEVICE_NODES_IGNORED.into(),
            message: format!(
                "Device nodes have no meaning to a WebAssembly guest and were not given to container {container}: {}{}",
                nodes.join(", "),
                if resources.is_empty() { String::new() } else { format!(" (from {resources})") }
            ),
        });
    }
    skipped.extend(edits.unsupported.iter().map(|(what, device)| format!("{what} ({device})")));
    if !skipped.is_empty() {
        out.notes.push(Note {
            reason: DEVICE_EDITS_IGNORED.into(),
            message: format!(
                "Not applied to container {container}, a WebAssembly guest cannot use them: {}",
                skipped.join(", ")
            ),
        });
    }
    Ok(out)
}

/// A directory mount as a preopen; `None` for a file.
fn preopen(host: &Path, guest: &str, read_only: bool) -> Result<Option<wasmlet_runtime::Mount>, String> {
    if !guest.starts_with('/') {
        return Err(format!("device mount at {guest:?}: the container path must be absolute"));
    }
    let meta = std::fs::metadata(host).map_err(|e| format!("device mount of {}: {e}", host.display()))?;
    if !meta.is_dir() {
        return Ok(None);
    }
    Ok(Some(wasmlet_runtime::Mount { host: PathBuf::from(host), guest: guest.to_owned(), read_only }))
}

#[cfg(test)]
mod tests {
    use wasmlet_devices::{DeviceMount, DeviceNode};

    use super::*;

    #[test]
    fn env_mounts_and_what_a_guest_cannot_have() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let devices = ContainerDevices {
            resources: vec!["wasmlet.test/null".into()],
            envs: vec![("A".into(), "1".into())],
            mounts: vec![
                DeviceMount { host: data.clone(), guest: "/device".into(), read_only: true },
                DeviceMount { host: file.clone(), guest: "/etc/file".into(), read_only: true },
            ],
            device_nodes: vec![DeviceNode {
                host: "/dev/null".into(),
                guest: "/dev/null".into(),
                permissions: "mrw".into(),
            }],
            ..Default::default()
        };
        let edits = wasmlet_cdi::Edits {
            env: vec![("B".into(), "2".into())],
            mounts: vec![wasmlet_cdi::Mount { host: data.clone(), guest: "/device".into(), read_only: false }],
            device_nodes: vec![("/dev/gpu0".into(), "v.io/c=a".into())],
            unsupported: vec![("hook createContainer /bin/x".into(), "v.io/c=a".into())],
        };
        let out = for_guest("main", &devices, &edits).unwrap();
        assert_eq!(out.env_defaults, [("A".to_string(), "1".to_string())]);
        assert_eq!(out.env_overrides, [("B".to_string(), "2".to_string())]);
        assert_eq!(
            out.mounts,
            [wasmlet_runtime::Mount { host: data.clone(), guest: "/device".into(), read_only: true }]
        );
        assert_eq!(out.notes.len(), 2);
        assert_eq!(out.notes[0].reason, DEVICE_NODES_IGNORED);
        assert_eq!(
            out.notes[0].message,
            "Device nodes have no meaning to a WebAssembly guest and were not given to container main: /dev/null, /dev/gpu0 (v.io/c=a) (from wasmlet.test/null)"
        );
        assert_eq!(out.notes[1].reason, DEVICE_EDITS_IGNORED);
        assert!(
            out.notes[1].message.contains("/etc/file (a file") && out.notes[1].message.contains("hook createContainer"),
            "{}",
            out.notes[1].message
        );

        let missing = ContainerDevices {
            mounts: vec![DeviceMount { host: dir.path().join("nope"), guest: "/x".into(), read_only: false }],
            ..Default::default()
        };
        assert!(for_guest("main", &missing, &Default::default()).unwrap_err().starts_with("device mount of"));
        let nothing = for_guest("main", &ContainerDevices::default(), &Default::default()).unwrap();
        assert_eq!(nothing, ContainerResources::default());
    }
}
