//! The disk side of a log file: appending, rotation, and surviving disk
//! errors. Everything here is blocking; the writer task runs it on the
//! blocking pool.
//!
//! # Rotation
//!
//! Before a write that would take the file past [`LogLimits::max_bytes`],
//! `<path>.<max_files-2>` … `<path>.1` move up by one (the oldest,
//! `<path>.<max_files-1>`, is removed), `<path>` becomes `<path>.1`, and a
//! fresh `<path>` is created. Writes are whole entries, so every file ends
//! on an entry boundary.
//!
//! # Errors
//!
//! No error reaches the guest. A failed write drops that data; a failed open
//! drops data until a retry (at most every [`REOPEN_BACKOFF`]) succeeds; a
//! failed rotation truncates the file instead so the disk bound holds. Each
//! failure is counted in [`Shared`], and logged once per run of failures.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::file::LogLimits;

/// Mode of a newly created log file (before the umask): owner read/write,
/// group read, as containerd and the kubelet use.
pub(crate) const FILE_MODE: u32 = 0o640;

/// How long to wait before trying again to open a log file that could not be
/// opened; data written meanwhile is dropped.
pub const REOPEN_BACKOFF: Duration = Duration::from_secs(1);

/// Counters shared by the writers and the disk side of one log file.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) path: PathBuf,
    errors: AtomicU64,
    dropped_bytes: AtomicU64,
    failing: AtomicBool,
}

impl Shared {
    pub(crate) fn new(path: PathBuf) -> Self {
        Shared { path, errors: AtomicU64::new(0), dropped_bytes: AtomicU64::new(0), failing: AtomicBool::new(false) }
    }

    /// Records a failure; logs at `warn` only for the first of a run.
    pub(crate) fn failed(&self, op: &'static str, error: &dyn std::fmt::Display, dropped: u64) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.dropped(dropped);
        let path = self.path.display();
        if self.failing.swap(true, Ordering::Relaxed) {
            debug!(%path, op, %error, dropped, "container log still failing");
        } else {
            warn!(%path, op, %error, dropped, "container log failed; dropping output until it recovers");
        }
    }

    pub(crate) fn dropped(&self, bytes: u64) {
        self.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn recovered(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            info!(path = %self.path.display(), "container log writable again");
        }
    }

    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub(crate) fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes.load(Ordering::Relaxed)
    }
}

/// The open log file and its rotation state.
#[derive(Debug)]
pub(crate) struct Disk {
    limits: LogLimits,
    shared: Arc<Shared>,
    file: Option<File>,
    size: u64,
    retry_at: Option<Instant>,
}

impl Disk {
    /// Opens (creating or appending to) the file at `shared.path`.
    pub(crate) fn open(limits: LogLimits, shared: Arc<Shared>) -> io::Result<Self> {
        let file = open_append(&shared.path)?;
        let size = file.metadata()?.len();
        Ok(Disk { limits, shared, file: Some(file), size, retry_at: None })
    }

    /// Appends whole entries, rotating first if they would not fit.
    pub(crate) fn write(&mut self, data: &[u8]) {
        let len = data.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.limits.max_bytes {
            self.rotate();
        }
        if self.file.is_none() && !self.reopen(len) {
            return;
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        match file.write_all(data) {
            Ok(()) => {
                self.size = self.size.saturating_add(len);
                self.shared.recovered();
            }
            Err(error) => self.shared.failed("write", &error, len),
        }
    }

    /// Tries to open the file again unless a recent attempt failed. On
    /// failure the `len` bytes about to be written count as dropped.
    fn reopen(&mut self, len: u64) -> bool {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| now < at) {
            self.shared.dropped(len);
            return false;
        }
        match open_append(&self.shared.path).and_then(|f| Ok((f.metadata()?.len(), f))) {
            Ok((size, file)) => {
                self.file = Some(file);
                self.size = size;
                self.retry_at = None;
                true
            }
            Err(error) => {
                self.retry_at = Some(now + REOPEN_BACKOFF);
                self.shared.failed("open", &error, len);
                false
            }
        }
    }

    fn rotate(&mut self) {
        let path = self.shared.path.clone();
        debug!(path = %path.display(), size = self.size, "rotating container log");
        if let Err(error) = shift(&path, self.limits.max_files) {
            self.shared.failed("rotate", &error, 0);
            // Keep the disk bound: start the file over.
            if let Some(file) = self.file.as_ref()
                && let Err(error) = file.set_len(0)
            {
                self.shared.failed("truncate", &error, 0);
                self.file = None;
            } else {
                self.size = 0;
            }
            return;
        }
        self.file = None;
        self.size = 0;
        self.retry_at = None;
    }
}

/// Moves `path` to `path.1`, shifting older files up and removing the one
/// past `max_files - 1`. With `max_files <= 1`, `path` is simply removed.
fn shift(path: &Path, max_files: u32) -> io::Result<()> {
    if max_files <= 1 {
        return std::fs::remove_file(path);
    }
    let oldest = rotated(path, max_files - 1);
    ignore_missing(std::fs::remove_file(&oldest))?;
    for n in (1..max_files - 1).rev() {
        ignore_missing(std::fs::rename(rotated(path, n), rotated(path, n + 1)))?;
    }
    std::fs::rename(path, rotated(path, 1))
}

/// `<path>.<n>`.
pub(crate) fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(FILE_MODE).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: u64, max_files: u32) -> LogLimits {
        LogLimits { max_bytes, max_files, ..LogLimits::default() }
    }

    #[test]
    fn rotates_and_keeps_max_files_minus_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let shared = Arc::new(Shared::new(path.clone()));
        let mut disk = Disk::open(limits(10, 3), shared.clone()).unwrap();
        for line in ["aaaaaa\n", "bbbbbb\n", "cccccc\n", "dddddd\n"] {
            disk.write(line.as_bytes());
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(path.clone()), "dddddd\n");
        assert_eq!(read(rotated(&path, 1)), "cccccc\n");
        assert_eq!(read(rotated(&path, 2)), "bbbbbb\n");
        assert!(!rotated(&path, 3).exists());
        assert_eq!(shared.errors(), 0);
    }

    #[test]
    fn one_file_means_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let shared = Arc::new(Shared::new(path.clone()));
        let mut disk = Disk::open(limits(10, 1), shared).unwrap();
        disk.write(b"aaaaaa\n");
        disk.write(b"bbbbbb\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "bbbbbb\n");
        assert!(!rotated(&path, 1).exists());
    }

    #[test]
    fn new_files_are_0640_and_existing_ones_are_appended() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "old\n").unwrap();
        let shared = Arc::new(Shared::new(path.clone()));
        let mut disk = Disk::open(limits(100, 2), shared).unwrap();
        disk.write(b"new\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\nnew\n");
        let fresh = dir.path().join("1.log");
        Disk::open(limits(100, 2), Arc::new(Shared::new(fresh.clone()))).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "mode {mode:o}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_vanished_directory_drops_data_and_retries_later() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("pod");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("0.log");
        let shared = Arc::new(Shared::new(path.clone()));
        let mut disk = Disk::open(limits(8, 2), shared.clone()).unwrap();
        disk.write(b"aaaaaa\n");
        std::fs::remove_dir_all(&sub).unwrap();
        // Rotation fails (the directory is gone), the orphan is truncated.
        disk.write(b"bbbbbb\n");
        assert_eq!(shared.errors(), 1);
        // Force a reopen: it fails, then is not retried within the backoff.
        disk.file = None;
        disk.size = 0;
        disk.write(b"cccccc\n");
        disk.write(b"dddddd\n");
        assert_eq!(shared.errors(), 2);
        assert_eq!(shared.dropped_bytes(), 14);
        // After the backoff, with the directory back, writing resumes.
        std::fs::create_dir(&sub).unwrap();
        tokio::time::advance(REOPEN_BACKOFF).await;
        disk.write(b"eeeeee\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "eeeeee\n");
    }
}
