//! [`StartError`]: why a guest could not start.

use std::path::PathBuf;

use crate::compiled::Kind;

/// Why [`Runtime::run`](crate::Runtime::run) could not start the guest.
///
/// Messages are meant for a container status: each names what is wrong
/// (the missing import, the mount, …) and carries wasmtime's reason.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The [`Compiled`](crate::Compiled) was made by another runtime.
    #[error("the compiled code belongs to another runtime (engine)")]
    ForeignEngine,
    /// A component that does not export `wasi:cli/run`, so it is not a
    /// command (e.g. a `wasi:http/proxy` component).
    #[error(
        "unsupported component: it does not export wasi:cli/run, so it is not a \
         wasi:cli/command (its exports: {})",
        if exports.is_empty() { "none".to_owned() } else { exports.join(", ") }
    )]
    UnsupportedComponent {
        /// The names the component exports.
        exports: Vec<String>,
    },
    /// [`Runtime::serve_http`](crate::Runtime::serve_http) was given code that
    /// is not a `wasi:http/proxy` component (see [`World`](crate::World)).
    #[error(
        "cannot serve HTTP: the {kind} does not export wasi:http/incoming-handler (its exports: {})",
        if exports.is_empty() { "none".to_owned() } else { exports.join(", ") }
    )]
    NotHttpProxy {
        /// Module or component.
        kind: Kind,
        /// The names the component exports.
        exports: Vec<String>,
    },
    /// An HTTP server was given no address to listen on.
    #[error("cannot serve HTTP: no address to listen on (the container declares no port)")]
    NoListenAddress,
    /// The HTTP server's limits are unusable.
    #[error("invalid HTTP server limits: {reason}")]
    InvalidHttpLimits {
        /// What is wrong.
        reason: &'static str,
    },
    /// A listener could not be bound (e.g. the address is in use, or not an
    /// address of this node).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The code imports something the host does not provide, or with the
    /// wrong type.
    #[error("cannot link the {kind}: {reason}")]
    Link {
        /// Module or component.
        kind: Kind,
        /// wasmtime's error, flattened; it names the import.
        reason: String,
        /// wasmtime's error.
        #[source]
        source: wasmtime::Error,
    },
    /// A mount's host directory could not be opened.
    #[error("cannot mount {} at {guest}: {reason}", host.display())]
    Mount {
        /// The guest path.
        guest: String,
        /// The host directory.
        host: PathBuf,
        /// The error, flattened.
        reason: String,
        /// The error.
        #[source]
        source: wasmtime::Error,
    },
    /// Opening the directories on the blocking pool did not finish (the
    /// task panicked, or the runtime is shutting down).
    #[error("cannot open the guest's directories: {reason}")]
    Preopen {
        /// What happened to the task.
        reason: String,
    },
    /// The working directory is not acceptable.
    #[error("invalid working directory {dir}: {reason}")]
    InvalidWorkingDir {
        /// The working directory.
        dir: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The host directory of the working directory could not be opened.
    #[error("cannot open working directory {dir}: {reason}")]
    WorkingDir {
        /// The working directory.
        dir: String,
        /// The error, flattened.
        reason: String,
        /// The error.
        #[source]
        source: wasmtime::Error,
    },
    /// Instantiation failed (e.g. a start function trapped, or a limit on
    /// instances, tables or memories was hit).
    #[error("cannot instantiate the {kind}: {reason}")]
    Instantiate {
        /// Module or component.
        kind: Kind,
        /// wasmtime's error, flattened.
        reason: String,
        /// wasmtime's error.
        #[source]
        source: wasmtime::Error,
    },
    /// The core module exports no `_start` function of type `() -> ()`.
    #[error(
        "the module has no `_start` function to run (only WASI command modules \
         are supported): {reason}"
    )]
    MissingStart {
        /// wasmtime's error, flattened.
        reason: String,
        /// wasmtime's error.
        #[source]
        source: wasmtime::Error,
    },
}

impl StartError {
    /// A low-cardinality label for metrics and container status reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::ForeignEngine => "foreign_engine",
            Self::UnsupportedComponent { .. } => "unsupported_component",
            Self::Link { .. } => "link",
            Self::Mount { .. } | Self::Preopen { .. } => "mount",
            Self::InvalidWorkingDir { .. } | Self::WorkingDir { .. } => "working_dir",
            Self::Instantiate { .. } => "instantiate",
            Self::MissingStart { .. } => "missing_start",
            Self::NotHttpProxy { .. } => "not_http_proxy",
            Self::NoListenAddress => "no_listen_address",
            Self::InvalidHttpLimits { .. } => "invalid_http_limits",
            Self::Bind { .. } => "bind",
        }
    }
}

/// wasmtime's error with its chain, for the `reason` fields.
pub(crate) fn flatten(error: &wasmtime::Error) -> String {
    format!("{error:#}")
}
