//! Control-plane faults on a running test bed: stop (SIGTERM or SIGKILL),
//! pause (SIGSTOP) and resume (SIGCONT), and start again a component by
//! name, with exactly the command line and ports it was started with.
//!
//! Used by the fault integration tests and `cargo xtask chaos`. Faults are
//! for a test bed of one's own: stopping the shared bed's apiserver breaks
//! every other test that runs against it.
//!
//! Start reading at [`Fault`] and [`Testbed::inject`].

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::cluster::{self, Files};
use crate::process::{self, Component};
use crate::testbed::{COMPONENT_READY_TIMEOUT, wait_apiserver, wait_port};
use crate::{COMPONENTS, Error, Result, Testbed};

/// The control-plane components, in start order.
pub const CONTROL_PLANE: [&str; 4] = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];

/// How long a component gets to exit after its last signal before the fault fails.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// What to do to a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGTERM, and wait for the exit; SIGKILL after
    /// [`process::STOP_GRACE`], as a service manager's stop does (an
    /// apiserver with open watches can take minutes to drain).
    Stop,
    /// SIGKILL (`kill -9`), and wait for the exit.
    Kill,
    /// SIGSTOP: the process keeps its sockets but answers nothing.
    Pause,
    /// SIGCONT after [`Fault::Pause`].
    Resume,
}

impl Fault {
    fn signal(self) -> Signal {
        match self {
            Fault::Stop => Signal::SIGTERM,
            Fault::Kill => Signal::SIGKILL,
            Fault::Pause => Signal::SIGSTOP,
            Fault::Resume => Signal::SIGCONT,
        }
    }
}

impl Testbed {
    /// Injects `fault` into component `name` (one of [`COMPONENTS`]). For
    /// [`Fault::Stop`] and [`Fault::Kill`], returns once the process has
    /// exited; the component stays down until [`Testbed::start_component`].
    /// Returns the pid it acted on.
    pub fn inject(&self, name: &str, fault: Fault) -> Result<u32> {
        known(name)?;
        let dir = self.dir();
        let signal = fault.signal();
        let pid = process::signal(dir, name, signal)?;
        if matches!(fault, Fault::Stop | Fault::Kill) {
            let mut signal = signal;
            if matches!(fault, Fault::Stop) {
                // A stopped (paused) process never handles SIGTERM.
                let _ = process::signal(dir, name, Signal::SIGCONT);
                if !process::wait_exit(pid, process::STOP_GRACE) {
                    // As a service manager does at the end of its stop timeout.
                    tracing::warn!(component = name, pid, "no exit within the stop grace; SIGKILL");
                    signal = Signal::SIGKILL;
                    let _ = process::signal(dir, name, signal);
                }
            }
            if !process::wait_exit(pid, EXIT_TIMEOUT) {
                return Err(Error::StillRunning {
                    component: name.to_owned(),
                    pid,
                    signal: signal.as_str(),
                    log_tail: process::log_tail(dir, name, 20),
                });
            }
        }
        tracing::info!(component = name, pid, ?fault, "fault injected");
        Ok(pid)
    }

    /// The pid of component `name`, while it runs.
    pub fn component_pid(&self, name: &str) -> Option<u32> {
        process::recorded_pid(self.dir(), name).filter(|p| process::is_alive(*p))
    }

    /// The command line component `name` was started with: as recorded when
    /// it was spawned, else (a test bed from before the record existed)
    /// rebuilt from the test bed's settings.
    pub fn component(&self, name: &str) -> Result<Component> {
        known(name)?;
        if let Some(recorded) = Component::recorded(self.dir(), name) {
            return Ok(recorded);
        }
        let (config, files) = (self.config(), Files::new(self.dir()));
        match name {
            "etcd" => Ok(cluster::etcd(config, &files)),
            "kube-apiserver" => Ok(cluster::apiserver(config, &files)),
            "kube-controller-manager" => Ok(cluster::controller_manager(config, &files)),
            "kube-scheduler" => Ok(cluster::scheduler(config, &files)),
            _ => Err(Error::NotAlive { component: name.to_owned() }),
        }
    }

    /// Starts component `name` again with the same command line (and so the
    /// same ports and data), and waits until it serves: etcd and the
    /// registries accept connections, the apiserver answers `/readyz`, the
    /// controller manager and scheduler listen. A component that still runs
    /// is left alone. Returns how long it took to serve.
    pub async fn start_component(&self, name: &str) -> Result<Duration> {
        let component = self.component(name)?;
        let started = Instant::now();
        if self.component_pid(name).is_none() {
            let pid = component.spawn(self.dir())?;
            tracing::info!(component = name, pid, "restarted");
        }
        self.wait_serving(name).await?;
        Ok(started.elapsed())
    }

    /// Stops (`fault` [`Fault::Stop`] or [`Fault::Kill`]) and starts component
    /// `name` again; how long it took to serve after the start.
    pub async fn restart_component(&self, name: &str, fault: Fault) -> Result<Duration> {
        self.inject(name, fault)?;
        self.start_component(name).await
    }

    /// Waits until component `name` serves (as [`Testbed::start_component`]
    /// does): e.g. the apiserver again after etcd came back.
    pub async fn wait_serving(&self, name: &str) -> Result<()> {
        let (dir, ports) = (self.dir(), self.ports());
        match name {
            "kube-apiserver" => wait_apiserver(dir, &self.admin_kubeconfig()).await.map(|_| ()),
            other => {
                let port = match other {
                    "etcd" => ports.etcd_client,
                    "kube-controller-manager" => ports.controller_manager,
                    "kube-scheduler" => ports.scheduler,
                    "registry" => ports.registry,
                    _ => ports.registry_tls,
                };
                wait_port(dir, name, port, COMPONENT_READY_TIMEOUT).await
            }
        }
    }
}

fn known(name: &str) -> Result<()> {
    if COMPONENTS.contains(&name) { Ok(()) } else { Err(Error::UnknownComponent { name: name.to_owned() }) }
}
