//! [`GuestSpec`]: what one container attempt runs with (argv, env, mounts,
//! working directory, output, limits and socket policy).
//!
//! The pods layer translates a container spec into a `GuestSpec`; this crate
//! only maps it onto WASI (see [`Runtime::run`](crate::Runtime::run)).

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::io::AsyncWrite;

use crate::sockets::SocketPolicy;
use crate::stats::GuestStats;

/// Everything a guest runs with, apart from its code.
#[derive(Debug)]
pub struct GuestSpec {
    /// Arguments, `argv[0]` (the program name) included.
    pub argv: Vec<String>,
    /// Environment variables, in order. Duplicates are passed through as is.
    pub env: Vec<(String, String)>,
    /// Host directories visible to the guest.
    pub mounts: Vec<Mount>,
    /// The container's working directory (an absolute guest path). WASI has
    /// no current directory; see [`Runtime::run`](crate::Runtime::run) for
    /// how it is mapped.
    pub working_dir: Option<String>,
    /// Where the guest's stdout goes.
    pub stdout: Output,
    /// Where the guest's stderr goes.
    pub stderr: Output,
    /// Resource limits of this guest.
    pub limits: Limits,
    /// Where the runtime publishes the guest's live CPU time, memory and
    /// start time; keep a clone to read them. `None`: not published.
    pub stats: Option<GuestStats>,
    /// What the guest may do with `wasi:sockets` (components only; a WASI
    /// preview 1 module has no sockets). See [`sockets`](crate::sockets).
    pub sockets: SocketPolicy,
}

impl GuestSpec {
    /// A spec with these arguments, no env, no mounts, output discarded, no
    /// limits of its own and the default [`SocketPolicy`] (outbound
    /// connections, no listening); set the other fields directly.
    pub fn new(argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            mounts: Vec::new(),
            working_dir: None,
            stdout: Output::discard(),
            stderr: Output::discard(),
            limits: Limits::default(),
            stats: None,
            sockets: SocketPolicy::default(),
        }
    }
}

/// A host directory preopened for the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory on the host. It must exist.
    pub host: PathBuf,
    /// Where the guest sees it, e.g. `/data`.
    pub guest: String,
    /// When set, the guest can read but not create, write or delete anything
    /// under the mount.
    pub read_only: bool,
}

/// Per-guest resource limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory cap in bytes over all the guest's linear memories; `None` means
    /// the runtime's [`Config::max_memory_bytes`](crate::Config::max_memory_bytes).
    pub memory_bytes: Option<u64>,
    /// CPU limit in millicores (`resources.limits.cpu`): the guest gets at
    /// most `cpu_millis / 1000` CPU-seconds per second over time (see
    /// [`throttle`](crate::throttle)); `None` (or 0) means no limit.
    pub cpu_millis: Option<u64>,
}

/// The destination of a guest output stream (stdout or stderr).
///
/// One writer per stream: wasmtime-wasi serializes every guest handle onto
/// it, and a guest's write completes once the writer accepted (and flushed)
/// the bytes.
pub struct Output(Pin<Box<dyn AsyncWrite + Send + Sync>>);

impl Output {
    /// Output to `writer`.
    pub fn new(writer: impl AsyncWrite + Send + Sync + 'static) -> Self {
        Self(Box::pin(writer))
    }

    /// Output that is thrown away.
    pub fn discard() -> Self {
        Self::new(tokio::io::sink())
    }

    pub(crate) fn into_inner(self) -> Pin<Box<dyn AsyncWrite + Send + Sync>> {
        self.0
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Output(..)")
    }
}
