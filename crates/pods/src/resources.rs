//! Resources a pod gets from node plugins — device plugin devices, DRA
//! claims — through [`PodResources`], which the agent implements (the
//! plugin managers live outside this crate). Pod sync calls it at four
//! points, as upstream does:
//!
//! 1. admission ([`PodResources::admit`]: allocate devices, or refuse);
//! 2. before the containers start ([`PodResources::prepare`]: prepare
//!    claims; a failure is an event and a retry);
//! 3. each container start ([`PodResources::container`]: its environment
//!    and mounts, in WASI terms);
//! 4. once the pod's containers have stopped for good
//!    ([`PodResources::release`], retried until it works), and after the
//!    first pod list for pods that are gone ([`PodResources::retain`]).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::admission::Rejection;

/// What one container gets from node plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerResources {
    /// Environment set before the container's own `env` (which wins), as
    /// device plugin `envs` are.
    pub env_defaults: Vec<(String, String)>,
    /// Environment set after the container's own `env` (and winning over
    /// it), as CDI edits are.
    pub env_overrides: Vec<(String, String)>,
    /// Preopens (after the volume mounts; a path a volume already uses is
    /// skipped).
    pub mounts: Vec<wasmlet_runtime::Mount>,
    /// Warning events for the container's first start (what it was given
    /// that a WASI guest cannot have).
    pub notes: Vec<Note>,
}

/// A Warning event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The event reason.
    pub reason: String,
    /// The message.
    pub message: String,
}

/// A failure to report as a Warning event before retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceError {
    /// The event reason (e.g. `FailedPrepareDynamicResources`).
    pub reason: String,
    /// The event message.
    pub message: String,
}

/// The agent's node-plugin resources, as pod sync sees them.
#[async_trait::async_trait]
pub trait PodResources: Send + Sync + 'static {
    /// Admission: allocate what the pod asks for, or refuse it.
    async fn admit(&self, pod: &Pod) -> Result<(), Rejection>;
    /// Before the pod's containers start.
    async fn prepare(&self, pod: &Pod) -> Result<(), ResourceError>;
    /// What `container` gets; an error is a `CreateContainerConfigError`.
    async fn container(&self, pod: &Pod, container: &Container) -> Result<ContainerResources, String>;
    /// Nothing of the pod runs any more, nor will: free what it holds.
    async fn release(&self, pod: &Pod) -> Result<(), ResourceError>;
    /// After the first pod list: free what pods not in `listed` hold.
    fn retain(&self, listed: &HashSet<String>);
}

/// No node plugins: every pod gets nothing extra.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResources;

#[async_trait::async_trait]
impl PodResources for NoResources {
    async fn admit(&self, _: &Pod) -> Result<(), Rejection> {
        Ok(())
    }
    async fn prepare(&self, _: &Pod) -> Result<(), ResourceError> {
        Ok(())
    }
    async fn container(&self, _: &Pod, _: &Container) -> Result<ContainerResources, String> {
        Ok(ContainerResources::default())
    }
    async fn release(&self, _: &Pod) -> Result<(), ResourceError> {
        Ok(())
    }
    fn retain(&self, _: &HashSet<String>) {}
}
