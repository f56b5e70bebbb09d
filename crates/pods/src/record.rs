//! What the agent knows about a pod's containers: the single source the status,
//! the checkpoint and the kubelet API read from.

use k8s_openapi::jiff::Timestamp;

/// State of one container, as the kubelet reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ContainerState {
    /// Not running yet, or between runs.
    Waiting {
        /// `ContainerCreating`, `ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`, ...
        reason: String,
        /// Details.
        message: Option<String>,
    },
    /// Running since `started_at`.
    Running {
        /// When the guest started.
        started_at: Timestamp,
    },
    /// Finished and will not run again in this state.
    Terminated(Terminated),
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Terminated {
    /// The exit code (`exit(n)`; 134 trap; 137 killed/OOM; 143 stopped).
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`, `Unknown`, ...
    pub reason: String,
    /// Details (the trap text, the start error).
    pub message: Option<String>,
    /// When it started (absent if it never did).
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Timestamp,
    /// `wasmlet://<id>` of that run.
    pub container_id: Option<String>,
}

/// Everything known about one container of the pod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerRecord {
    /// Container name.
    pub name: String,
    /// Image as written in the pod spec.
    pub image: String,
    /// `repository@digest` once pulled.
    pub image_id: Option<String>,
    /// `wasmlet://<id>` of the current or last run.
    pub container_id: Option<String>,
    /// Current state.
    pub state: ContainerState,
    /// The previous termination, once it restarted.
    pub last_state: Option<Terminated>,
    /// How many times it was restarted.
    pub restart_count: i32,
    /// Readiness (running, and no readiness probe says otherwise).
    pub ready: bool,
    /// Started (running, and no startup probe pending).
    pub started: bool,
    /// An init container with `restartPolicy: Always` (a native sidecar).
    #[serde(default)]
    pub sidecar: bool,
}

impl ContainerRecord {
    /// A container that has not been started yet.
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            image_id: None,
            container_id: None,
            state: ContainerState::Waiting { reason: "ContainerCreating".into(), message: None },
            last_state: None,
            restart_count: 0,
            ready: false,
            started: false,
            sidecar: false,
        }
    }

    /// A container waiting for the pod's init containers.
    pub fn initializing(name: &str, image: &str) -> Self {
        Self {
            state: ContainerState::Waiting { reason: "PodInitializing".into(), message: None },
            ..Self::new(name, image)
        }
    }

    /// Whether it ended with exit code 0 and will not run again.
    pub fn succeeded(&self) -> bool {
        self.terminated().is_some_and(|t| t.exit_code == 0)
    }

    /// Whether it is running now.
    pub fn is_running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }

    /// The termination that decides the pod's fate, if it is terminated.
    pub fn terminated(&self) -> Option<&Terminated> {
        match &self.state {
            ContainerState::Terminated(t) => Some(t),
            _ => None,
        }
    }
}

/// A pod-level end decided by the agent rather than by the containers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodVerdict {
    /// `Failed` or `Succeeded`.
    pub phase: String,
    /// `DeadlineExceeded`, `OutOfmemory`, ...
    pub reason: Option<String>,
    /// Human-readable message.
    pub message: Option<String>,
}

/// The pod as the agent knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodRecord {
    /// When the agent first acknowledged the pod.
    pub start_time: Option<Timestamp>,
    /// Per-pod environment ready (directories, volumes, address): PodReadyToStartContainers.
    pub sandbox_ready: bool,
    /// The pod's own IP, once it has one (kept across agent restarts).
    #[serde(default)]
    pub pod_ip: Option<String>,
    /// Init containers (and native sidecars) in spec order.
    #[serde(default)]
    pub init_containers: Vec<ContainerRecord>,
    /// Containers in spec order.
    pub containers: Vec<ContainerRecord>,
    /// Set once every init container succeeded and every sidecar started.
    #[serde(default)]
    pub init_done: bool,
    /// Set once the pod is being torn down: containers will not restart.
    pub terminating: bool,
    /// Set when the agent ended the pod itself (rejection, deadline).
    pub verdict: Option<PodVerdict>,
    /// Why the agent is stopping the pod, when it disrupts it (eviction): the
    /// `DisruptionTarget` condition's message (reason `TerminationByKubelet`).
    #[serde(default)]
    pub disruption: Option<String>,
}

impl PodRecord {
    /// The record of container `name`.
    /// (Names are unique across init and regular containers.)
    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.all().find(|c| c.name == name)
    }

    /// Mutable record of container `name`.
    pub fn container_mut(&mut self, name: &str) -> Option<&mut ContainerRecord> {
        self.init_containers.iter_mut().chain(self.containers.iter_mut()).find(|c| c.name == name)
    }

    /// Init containers, then regular ones.
    pub fn all(&self) -> impl Iterator<Item = &ContainerRecord> {
        self.init_containers.iter().chain(self.containers.iter())
    }

    /// Whether initialization is over (every init container succeeded, every
    /// sidecar started). Once true it stays true, as upstream.
    pub fn initialized(&self) -> bool {
        self.init_done || self.init_containers.is_empty()
    }
}
