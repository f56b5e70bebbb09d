//! [`LogFile`]: one container attempt's log file, shared by its stdout and
//! stderr [`LogWriter`]s.
//!
//! Writers format entries and hand them to one task per file through a
//! bounded queue ([`LogLimits::queue_depth`] messages of at most
//! [`MESSAGE_BYTES`] plus one line each); the task appends them on the
//! blocking pool and rotates the file (see [`crate::disk`]). A full queue
//! makes the guest's write wait, like a full pipe; a failing disk never does.
//! The task ends when the `LogFile` and all its writers are dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, debug_span, error};

use crate::disk::{Disk, Shared};
use crate::entry::Stream;
use crate::writer::LogWriter;

/// Default [`LogLimits::max_line`]: 16 KiB, as containerd.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;
/// Default [`LogLimits::max_bytes`]: 10 MiB, the kubelet's
/// `containerLogMaxSize`.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default [`LogLimits::max_files`]: 5, the kubelet's `containerLogMaxFiles`.
pub const DEFAULT_MAX_FILES: u32 = 5;
/// Default [`LogLimits::queue_depth`].
pub const DEFAULT_QUEUE_DEPTH: usize = 16;
/// How much formatted output one write call may queue (plus at most one
/// line); a larger write is accepted in parts.
pub const MESSAGE_BYTES: usize = 32 * 1024;
/// How much queued output the task writes in one blocking call.
const BATCH_BYTES: usize = 256 * 1024;

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from creating a log file. Later disk errors are not returned but
/// counted in [`LogStats`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating the directory or opening the file failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A limit is zero.
    #[error("invalid log limits: {0} must be at least 1")]
    InvalidLimits(&'static str),
    /// The blocking pool did not run the open.
    #[error("opening {path} did not complete")]
    Task {
        /// The file.
        path: PathBuf,
        /// Why the task failed.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Size limits of a log file and its writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Longest entry content; a longer line is written as `P` chunks.
    pub max_line: usize,
    /// Rotate before the file would grow past this many bytes.
    pub max_bytes: u64,
    /// Files kept, counting the live one: rotated files are
    /// `<path>.1` … `<path>.<max_files-1>`. `1` means the file starts over.
    pub max_files: u32,
    /// Messages queued between the writers and the disk.
    pub queue_depth: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_line: DEFAULT_MAX_LINE,
            max_bytes: DEFAULT_MAX_BYTES,
            max_files: DEFAULT_MAX_FILES,
            queue_depth: DEFAULT_QUEUE_DEPTH,
        }
    }
}

impl LogLimits {
    fn validate(&self) -> Result<()> {
        let zero = [
            ("max_line", self.max_line == 0),
            ("max_bytes", self.max_bytes == 0),
            ("max_files", self.max_files == 0),
            ("queue_depth", self.queue_depth == 0),
        ];
        match zero.iter().find(|(_, z)| *z) {
            Some((name, _)) => Err(Error::InvalidLimits(name)),
            None => Ok(()),
        }
    }
}

/// What went wrong since the file was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Failed disk operations (write, open, rotate).
    pub errors: u64,
    /// Bytes of formatted output that were dropped.
    pub dropped_bytes: u64,
}

#[derive(Debug)]
pub(crate) enum Msg {
    /// Whole formatted entries.
    Data(Bytes),
    /// Answered once everything queued before it was handed to the OS.
    Flush(oneshot::Sender<()>),
}

/// A container attempt's log file. Create writers with [`LogFile::writer`].
///
/// The file stays open until this value, its clones and all its writers
/// are dropped; drop them when the attempt ends.
///
/// # Caveats
///
/// Disk errors are absorbed, but a write that hangs in the kernel (a stuck
/// network file system) stalls the queue and so, once it is full, the
/// guest's writes: the same as a full pipe under containerd.
#[derive(Debug, Clone)]
pub struct LogFile {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    max_line: usize,
}

impl LogFile {
    /// Creates the parent directories and opens `path` for appending
    /// (creating it with mode 0640), then starts its writer task.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLimits`] for a zero limit, [`Error::Io`] if the
    /// directory or the file cannot be created.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the writer task is spawned on it).
    pub async fn create(path: impl Into<PathBuf>, limits: LogLimits) -> Result<LogFile> {
        let path = path.into();
        limits.validate()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|source| Error::Io {
                op: "creating directory",
                path: dir.to_owned(),
                source,
            })?;
        }
        let shared = Arc::new(Shared::new(path.clone()));
        let open = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || Disk::open(limits, shared))
        };
        let disk = match open.await {
            Ok(Ok(disk)) => disk,
            Ok(Err(source)) => {
                return Err(Error::Io { op: "opening", path, source });
            }
            Err(source) => return Err(Error::Task { path, source }),
        };
        let (tx, rx) = mpsc::channel(limits.queue_depth);
        let span = debug_span!("log_file", path = %path.display());
        tokio::spawn(run(rx, disk, shared.clone()).instrument(span));
        Ok(LogFile { tx, shared, max_line: limits.max_line })
    }

    /// A writer for one stream. Writers are independent (each buffers its
    /// own unterminated line) and all append to this file.
    pub fn writer(&self, stream: Stream) -> LogWriter {
        LogWriter::new(self.tx.clone(), self.shared.clone(), stream, self.max_line)
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Errors and dropped output so far.
    pub fn stats(&self) -> LogStats {
        LogStats { errors: self.shared.errors(), dropped_bytes: self.shared.dropped_bytes() }
    }

    /// Waits until everything the writers have queued so far has been
    /// handed to the OS (not fsynced). Text a writer still buffers (an
    /// unterminated line) is not included: flush or shut down the writer
    /// first. Call this before signalling readers that the attempt ended.
    pub async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(ack)).await.is_ok() {
            // An error means the task is gone; nothing more will be written.
            let _ = done.await;
        }
    }
}

/// The writer task: batches queued messages and writes them on the
/// blocking pool, in order.
async fn run(mut rx: mpsc::Receiver<Msg>, mut disk: Disk, shared: Arc<Shared>) {
    let mut acks = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut size = 0;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Data(data) => {
                    size += data.len();
                    batch.push(data);
                }
                Msg::Flush(ack) => acks.push(ack),
            }
            if size < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let write = tokio::task::spawn_blocking(move || {
                for data in &batch {
                    disk.write(data);
                }
                disk
            });
            match write.await {
                Ok(d) => disk = d,
                Err(error) => {
                    error!(%error, "container log writer stopped");
                    shared.failed("write", &error, size as u64);
                    return;
                }
            }
        }
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    debug!("all writers closed");
}
