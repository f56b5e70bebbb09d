//! A real Kubernetes control plane, OCI registries and wasm fixtures on one
//! machine: the test bed every wasmlet integration test, the demo and CI use.
//!
//! [`Testbed::up`] generates a throwaway PKI, starts etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and two `docker-registry` instances
//! on loopback, waits until they serve, and records everything in
//! `<dir>/testbed.json` so that later commands (and other processes) find the
//! same test bed with [`Testbed::open`]. [`Testbed::down`] stops it all and
//! removes the directory.
//!
//! Start reading at [`Testbed`]; the flags live in `cluster.rs`.

mod bootstrap;
mod cluster;
pub mod config;
pub mod csi;
pub mod devices;
pub mod faults;
pub mod fixtures;

mod kubeconfig;
pub mod metrics_server;
mod nodes;
pub mod pki;
pub mod process;
pub mod registry;
pub mod registry_proxy;
mod testbed;
mod tokens;

use std::path::PathBuf;

pub use config::{Config, Ports};
pub use kubeconfig::client as client_from_kubeconfig;
pub use nodes::{NodeCredentials, host_ip};
pub use registry::PrivateRegistry;
pub use testbed::{COMPONENTS, Testbed};
pub use tokens::BootstrapToken;

/// Errors of the test bed, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A control-plane or registry binary is missing.
    #[error("{} is missing: build the control plane with tools/k8s/build.sh or install docker-registry", path.display())]
    MissingBinary {
        /// The expected path.
        path: PathBuf,
    },
    /// A component could not be started.
    #[error("starting {component}: {source}")]
    Spawn {
        /// Which one.
        component: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A component did not become ready in time.
    #[error("{component} was not ready after {secs}s; last log lines:\n{log_tail}")]
    NotReady {
        /// Which one.
        component: String,
        /// How long we waited.
        secs: u64,
        /// The end of its log.
        log_tail: String,
    },
    /// A component exited during start-up.
    #[error("{component} exited during start-up; last log lines:\n{log_tail}")]
    Exited {
        /// Which one.
        component: String,
        /// The end of its log.
        log_tail: String,
    },
    /// Generating a certificate or key failed.
    #[error("generating PKI: {0}")]
    Pki(#[source] rcgen::Error),
    /// Hashing the registry password failed.
    #[error("writing htpasswd: {0}")]
    Htpasswd(#[source] bcrypt::BcryptError),
    /// A kubeconfig could not be loaded.
    #[error("loading kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// Pushing or listing a fixture failed.
    #[error("fixture {name}: {source}")]
    Push {
        /// The fixture.
        name: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// `testbed.json` is missing or unreadable: no test bed runs in this directory.
    #[error("no test bed in {}: {reason}", dir.display())]
    NotRunning {
        /// The directory.
        dir: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A fault was asked for on a component the test bed does not know.
    #[error("unknown component {name}: one of {}", crate::COMPONENTS.join(", "))]
    UnknownComponent {
        /// The name asked for.
        name: String,
    },
    /// The component does not run (no pid recorded, or it exited).
    #[error("{component} is not running")]
    NotAlive {
        /// Which one.
        component: String,
    },
    /// Signalling a component failed.
    #[error("sending {signal} to {component}: {source}")]
    Signal {
        /// Which one.
        component: String,
        /// The signal.
        signal: &'static str,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// A component did not exit after being told to.
    #[error("{component} (pid {pid}) did not exit after {signal}; last log lines:\n{log_tail}")]
    StillRunning {
        /// Which one.
        component: String,
        /// Its pid.
        pid: u32,
        /// The last signal sent.
        signal: &'static str,
        /// The end of its log.
        log_tail: String,
    },
    /// The fixture manifest is invalid.
    #[error("fixture manifest {}: {reason}", path.display())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// Result with the test bed's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
