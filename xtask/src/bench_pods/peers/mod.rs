//! The node agents compared: what each needs built, how its nodes start
//! and stop, and what a pod's container looks like for it.

mod hollow;
mod image;
mod kubelet;
mod kwok;
mod wasmlet;

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::DeleteParams;
use wasmlet_testbed::{Testbed, process};

use super::Ctx;
use super::pods::Workload;
use super::probe::Proc;
use crate::bench::server_env;

/// A peer, as named on the command line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PeerKind {
    /// kwok v0.8.0: a fake kubelet that only writes statuses (the floor).
    Kwok,
    /// The upstream kubelet's code on a fake runtime (kubemark --morph=kubelet).
    Hollow,
    /// The upstream kubelet on containerd and runc, running a native program.
    Kubelet,
    /// wasmlet with a cached wasm image.
    Wasmlet,
}

impl PeerKind {
    /// The name in tables.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Kwok => "kwok",
            Self::Hollow => "hollow kubelet",
            Self::Kubelet => "kubelet+containerd",
            Self::Wasmlet => "wasmlet",
        }
    }

    /// Short name for node and namespace names.
    pub(crate) fn short(self) -> &'static str {
        match self {
            Self::Kwok => "kwok",
            Self::Hollow => "hollow",
            Self::Kubelet => "kubelet",
            Self::Wasmlet => "wasmlet",
        }
    }
}

/// One node a peer runs.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    pub(crate) name: String,
    /// Its position among the run's nodes (ports and interfaces derive from it).
    pub(crate) index: usize,
    pub(crate) max_pods: u32,
    /// Value of the pool label (see `pods::POOL_LABEL`).
    pub(crate) pool: String,
}

/// A peer's build products.
pub(crate) enum Built {
    Wasmlet(wasmlet::Built),
    Kwok(kwok::Built),
    Hollow(hollow::Built),
    Kubelet(kubelet::Built),
}

/// Builds (or finds cached) what `kind` needs.
pub(crate) async fn build(kind: PeerKind, ctx: &Ctx) -> anyhow::Result<Built> {
    Ok(match kind {
        PeerKind::Wasmlet => Built::Wasmlet(wasmlet::build(ctx)?),
        PeerKind::Kwok => Built::Kwok(kwok::build(ctx)?),
        PeerKind::Hollow => Built::Hollow(hollow::build()?),
        PeerKind::Kubelet => Built::Kubelet(kubelet::build(ctx)?),
    })
}

impl Built {
    pub(crate) fn kind(&self) -> PeerKind {
        match self {
            Self::Wasmlet(_) => PeerKind::Wasmlet,
            Self::Kwok(_) => PeerKind::Kwok,
            Self::Hollow(_) => PeerKind::Hollow,
            Self::Kubelet(_) => PeerKind::Kubelet,
        }
    }

    /// The container (image, command, env) of a pod for this peer.
    pub(crate) fn container(&self, ctx: &Ctx, workload: Workload) -> serde_json::Value {
        match self {
            // kwok and the hollow kubelet run nothing: they get wasmlet's spec.
            Self::Wasmlet(_) | Self::Kwok(_) | Self::Hollow(_) => wasmlet::container(ctx, workload),
            Self::Kubelet(_) => kubelet::container(workload),
        }
    }

    /// Why this peer cannot run a workload, if it cannot.
    pub(crate) fn cannot_run(&self, workload: Workload) -> Option<&'static str> {
        match (self, workload) {
            (Self::Hollow(_), Workload::Complete) => Some(hollow::NO_EXIT),
            _ => None,
        }
    }

    /// Starts `nodes`; returns once their processes run (registration is
    /// waited for by the caller).
    pub(crate) async fn start(&self, ctx: &Ctx, nodes: &[NodeSpec]) -> anyhow::Result<Agent> {
        Ok(match self {
            Self::Wasmlet(b) => Agent::Wasmlet(b.start(ctx, nodes)?),
            Self::Kwok(b) => Agent::Kwok(b.start(ctx, nodes).await?),
            Self::Hollow(b) => Agent::Hollow(b.start(ctx, nodes)?),
            Self::Kubelet(b) => Agent::Kubelet(b.start(ctx, nodes).await?),
        })
    }
}

/// Running nodes of a peer.
pub(crate) enum Agent {
    Wasmlet(wasmlet::Nodes),
    Kwok(kwok::Running),
    Hollow(hollow::Nodes),
    Kubelet(kubelet::Running),
}

impl Agent {
    /// Its processes now (the kubelet peer's shims and containers come and go).
    pub(crate) fn processes(&self) -> Vec<Proc> {
        match self {
            Self::Wasmlet(a) => a.procs.processes(),
            Self::Kwok(a) => a.procs.processes(),
            Self::Hollow(a) => a.procs.processes(),
            Self::Kubelet(a) => a.processes(),
        }
    }

    /// A check, callable from anywhere, of whether one of its long-lived
    /// processes died (and which).
    pub(crate) fn watchdog(&self) -> impl Fn() -> Option<String> + Send + Sync + 'static {
        let procs = match self {
            Self::Wasmlet(a) => &a.procs,
            Self::Kwok(a) => &a.procs,
            Self::Hollow(a) => &a.procs,
            Self::Kubelet(a) => &a.procs,
        };
        let (dir, list) = (procs.dir.clone(), procs.list.clone());
        move || dead(&dir, &list)
    }

    /// Stops every process and deletes the Node objects.
    pub(crate) async fn stop(self, ctx: &Ctx) {
        match self {
            Self::Wasmlet(a) => a.stop(ctx).await,
            Self::Kwok(a) => a.procs.stop(ctx).await,
            Self::Hollow(a) => a.procs.stop(ctx).await,
            Self::Kubelet(a) => a.stop(ctx).await,
        }
    }
}

/// Long-lived processes recorded in the test bed (so `testbed down` stops
/// them too), with the nodes they serve.
pub(crate) struct Procs {
    dir: std::path::PathBuf,
    /// (name in the test bed, pid, role).
    list: Vec<(String, u32, super::probe::Role)>,
    /// Node objects to delete when stopping.
    nodes: Vec<String>,
}

impl Procs {
    pub(crate) fn new(tb: &Testbed, nodes: &[NodeSpec]) -> Self {
        Self { dir: tb.dir().to_owned(), list: Vec::new(), nodes: nodes.iter().map(|n| n.name.clone()).collect() }
    }

    /// Starts `cmd` in its own process group with its output in the test
    /// bed's log `name`, records it, and remembers its role.
    pub(crate) fn spawn(&mut self, name: &str, role: super::probe::Role, cmd: &mut Command) -> anyhow::Result<u32> {
        use std::os::unix::process::CommandExt as _;
        process::stop(&self.dir, name)?;
        let log_path = process::log_path(&self.dir, name);
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        // The same quiet environment for every peer; a log filter set on
        // `cmd` itself (for profiling) survives.
        let filter = cmd.get_envs().find(|(k, _)| *k == "WASMLET_LOG").and_then(|(_, v)| v.map(ToOwned::to_owned));
        server_env(cmd);
        if let Some(filter) = filter {
            cmd.env("WASMLET_LOG", filter);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let pid = child.id();
        process::record_pid(&self.dir, name, pid)?;
        tracing::debug!(name, pid, log = %log_path.display(), "started");
        self.list.push((name.to_owned(), pid, role));
        Ok(pid)
    }

    pub(crate) fn processes(&self) -> Vec<Proc> {
        self.list.iter().map(|(_, pid, role)| Proc { role: *role, pid: *pid }).collect()
    }

    /// Which process died, if one did.
    pub(crate) fn dead(&self) -> Option<String> {
        dead(&self.dir, &self.list)
    }

    /// Stops the processes (last started first) and deletes the Node objects.
    pub(crate) async fn stop(&self, ctx: &Ctx) {
        for (name, _, _) in self.list.iter().rev() {
            if let Err(e) = process::stop(&self.dir, name) {
                tracing::warn!(name, error = %e, "stopping");
            }
        }
        let api: Api<Node> = Api::all(ctx.admin.clone());
        for node in &self.nodes {
            let _ = api.delete(node, &DeleteParams::default()).await;
        }
    }
}

fn dead(dir: &Path, list: &[(String, u32, super::probe::Role)]) -> Option<String> {
    list.iter()
        .find(|(_, pid, _)| !process::is_alive(*pid))
        .map(|(name, _, _)| format!("{name} exited; its log ends with:\n{}", process::log_tail(dir, name, 15)))
}

/// A free TCP port on the machine.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
