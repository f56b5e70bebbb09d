//! From a pulled image and a container spec to a running guest: compiled code
//! (cached by digest in the runtime), argv/env, limits, the attempt's log file,
//! and the mapping of how a guest ended to a container termination.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::jiff::Timestamp;
use rand::Rng;
use wasmlet_logs::{LogFile, LogLimits, Stream};
use wasmlet_runtime::{Compiled, Exit, ExitReason, GuestSpec, Limits, Output, StartError};

use crate::images::{Pulled, error_chain};
use crate::record::{ContainerState, Terminated};
use crate::worker::ContainerWorker;
use crate::{quantity, spec};

/// Why a guest could not be built (reported as a `StartError` termination).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    /// The image is not valid WebAssembly.
    #[error("{0}")]
    Compile(String),
    /// A probe cannot be used.
    #[error("{0}")]
    Probe(#[from] crate::probe::Invalid),
    /// A resource limit does not parse.
    #[error("invalid resource limit: {0}")]
    Limit(#[source] quantity::InvalidQuantity),
    /// A socket-policy annotation does not parse.
    #[error(transparent)]
    Sockets(#[from] crate::sockets::InvalidAnnotation),
}

/// A guest ready to start, possibly several times (restarts).
pub(crate) struct Prepared {
    pub(crate) compiled: Compiled,
    pub(crate) probes: Vec<crate::probe::Spec>,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    working_dir: Option<String>,
    mounts: Vec<wasmlet_runtime::Mount>,
    limits: Limits,
    sockets: wasmlet_runtime::SocketPolicy,
}

/// One run of a container.
pub(crate) struct Attempt {
    /// `wasmlet://<64 hex>`.
    pub(crate) container_id: String,
    log: Option<LogFile>,
}

impl Attempt {
    /// Writes out what the guest printed (before followers are told it ended).
    pub(crate) async fn flush(&self) {
        if let Some(log) = &self.log {
            log.flush().await;
        }
    }
}

impl Prepared {
    /// The spec for one run, writing to the attempt's log and reporting to
    /// `stats`, with the pod's address `pod_ip`.
    pub(crate) fn spec(&self, attempt: &Attempt, stats: wasmlet_runtime::GuestStats, pod_ip: IpAddr) -> GuestSpec {
        let mut spec = self.base(self.argv.clone());
        spec.stats = Some(stats);
        spec.sockets = crate::sockets::with_pod_ip(self.sockets.clone(), pod_ip);
        if let Some(log) = &attempt.log {
            spec.stdout = Output::new(log.writer(Stream::Stdout));
            spec.stderr = Output::new(log.writer(Stream::Stderr));
        }
        spec
    }

    /// The spec of an `exec`: a new instance of the container's guest with
    /// the container's environment, mounts and limits, and `argv`. It may
    /// connect out as the container may, but not listen (the container's
    /// ports are the container's).
    pub(crate) fn exec_spec(&self, argv: Vec<String>, stdout: Option<Output>, stderr: Option<Output>) -> GuestSpec {
        let mut spec = self.base(argv);
        if let Some(out) = stdout {
            spec.stdout = out;
        }
        if let Some(err) = stderr {
            spec.stderr = err;
        }
        spec
    }

    /// The container's memory limit.
    pub(crate) fn memory_limit(&self) -> Option<u64> {
        self.limits.memory_bytes
    }

    fn base(&self, argv: Vec<String>) -> GuestSpec {
        let mut spec = GuestSpec::new(argv);
        spec.env = self.env.clone();
        spec.working_dir = self.working_dir.clone();
        spec.mounts = self.mounts.clone();
        spec.limits = self.limits;
        spec.sockets = self.sockets.clone();
        spec
    }
}

/// Compiles the image (once per digest on this node) and builds the guest.
pub(crate) async fn prepare(
    w: &ContainerWorker,
    image: &Pulled,
    env: Vec<(String, String)>,
    mounts: Vec<wasmlet_runtime::Mount>,
) -> Result<Prepared, PrepareError> {
    let store = w.shared.images.store().clone();
    let digest = image.digest.clone();
    let compiled = w
        .shared
        .runtime
        .compile_with(&image.digest, || async move { store.read(&digest).await })
        .await
        .map_err(|e| PrepareError::Compile(error_chain(&e)))?;
    let limit = |name: &str, parse: fn(&str) -> Result<i64, quantity::InvalidQuantity>| {
        w.spec
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(name))
            .map(|q| parse(&q.0))
            .transpose()
            .map_err(PrepareError::Limit)
    };
    let memory = limit("memory", quantity::units)?;
    let cpu = limit("cpu", quantity::milli)?;
    let probes = crate::probe::specs(&w.spec)?;
    let sockets = crate::sockets::policy(&w.pod, &w.spec)?;
    // Entries the node refuses are ignored, not an error: said in an event.
    let not_allowed = crate::sockets::not_allowed(&sockets, w.shared.runtime.node_network());
    if !not_allowed.is_empty() {
        let note = crate::sockets::not_allowed_note(&not_allowed);
        tracing::info!(%note, "the pod asks for destinations this node refuses");
        w.shared.events.warning(&w.pod, Some(w.name()), crate::sockets::OUTBOUND_NOT_ALLOWED, note).await;
    }
    Ok(Prepared {
        compiled,
        probes,
        argv: spec::argv(&w.spec, &env),
        env,
        working_dir: w.spec.working_dir.clone(),
        mounts,
        limits: Limits { memory_bytes: memory.map(|m| m.max(0) as u64), cpu_millis: cpu.map(|c| c.max(1) as u64) },
        sockets,
    })
}

/// Starts a new attempt: counts the restart, picks a container ID, opens the log.
pub(crate) async fn begin_attempt(w: &ContainerWorker) -> Attempt {
    let container_id = format!("wasmlet://{}", hex::encode(rand::rng().random::<[u8; 32]>()));
    let mut index = 0;
    let id = container_id.clone();
    w.update(|c| {
        if c.last_state.is_some() || matches!(c.state, ContainerState::Terminated(_)) {
            if let ContainerState::Terminated(t) = &c.state {
                c.last_state = Some(t.clone());
            }
            c.restart_count += 1;
        }
        c.container_id = Some(id);
        index = c.restart_count;
    });
    let path = w.logs_dir.join(format!("{index}.log"));
    let log = match LogFile::create(&path, LogLimits::default()).await {
        Ok(log) => Some(log),
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "cannot open the container log; output is discarded");
            None
        }
    };
    w.attempts.started(w.name(), index);
    Attempt { container_id, log }
}

/// How a run ended, as a container termination.
pub(crate) fn terminated(outcome: Result<Exit, StartError>, started_at: Timestamp, container_id: String) -> Terminated {
    let now = Timestamp::now();
    let (exit_code, reason, message) = match outcome {
        Ok(exit) => {
            let reason = match exit.reason {
                ExitReason::OutOfMemory => "OOMKilled",
                _ if exit.code == 0 => "Completed",
                _ => "Error",
            };
            let message = Some(exit.message).filter(|m| !m.is_empty());
            (exit.code, reason, message)
        }
        Err(e) => (128, "StartError", Some(error_chain(&e))),
    };
    Terminated {
        exit_code,
        reason: reason.to_owned(),
        message,
        started_at: Some(started_at),
        finished_at: now,
        container_id: Some(container_id),
    }
}

/// The container's `preStop` sleep, if it has one. (Exec and HTTP hooks are
/// not run.)
pub(crate) fn pre_stop(container: &Container) -> Option<Duration> {
    let sleep = container.lifecycle.as_ref()?.pre_stop.as_ref()?.sleep.as_ref()?;
    Some(Duration::from_secs(sleep.seconds.max(0) as u64))
}
