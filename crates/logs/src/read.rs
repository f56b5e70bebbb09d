//! [`read`]: a container's log as `kubectl logs` shows it, as a stream of
//! byte chunks.
//!
//! # Following
//!
//! With [`ReadOptions::follow`], after the existing content the reader polls
//! the file every [`ReadOptions::poll_interval`] (100 ms by default) for new
//! entries and for rotation: when `path` names a different file than the one
//! being read, the old one is read to its end and the reader continues at
//! the start of the new one. Polling was chosen over inotify (`notify`)
//! because inotify instances are a small per-user budget (128 by default)
//! that many concurrent `kubectl logs -f` would exhaust, it does not follow
//! a rename to the new file by itself, and a reader wakes only ten times a
//! second for one `stat` and one `read`. When `finished` resolves, the
//! reader reads what is left (the writer must have flushed first, see
//! [`LogFile::flush`](crate::LogFile::flush)) and ends.
//!
//! # Missing file
//!
//! Without `follow`, a missing file makes the stream yield one
//! [`io::ErrorKind::NotFound`] error and end, before any data. With
//! `follow`, the reader waits for the file to appear.
//!
//! # Caveats
//!
//! `tail_lines` applies to the live file only, not to rotated ones (as
//! upstream). An entry longer than [`MAX_ENTRY_BYTES`] is skipped. While
//! following, a line is output once its `F` entry arrives, not chunk by
//! chunk.

use std::fs::File;
use std::future::Future;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tracing::debug;

use crate::entry::Stream;
use crate::output::Output;
use crate::tail::tail_start;

/// Default [`ReadOptions::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest entry the reader accepts; longer ones are skipped.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;
/// Bytes read from the file per step.
const BLOCK: usize = 64 * 1024;

/// Which streams to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Streams {
    /// Both, interleaved as written.
    #[default]
    All,
    /// Standard output only.
    Stdout,
    /// Standard error only.
    Stderr,
}

impl Streams {
    /// Whether entries of `stream` are selected.
    pub fn includes(self, stream: Stream) -> bool {
        match self {
            Streams::All => true,
            Streams::Stdout => stream == Stream::Stdout,
            Streams::Stderr => stream == Stream::Stderr,
        }
    }
}

/// What to read; the fields mirror `v1.PodLogOptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Keep yielding new entries until `finished` resolves.
    pub follow: bool,
    /// Only the last N lines (of the selected streams) of the live file.
    pub tail_lines: Option<u64>,
    /// Only lines whose (first chunk's) time is at or after this.
    pub since: Option<SystemTime>,
    /// Prefix each line with its RFC 3339 time (nine fractional digits,
    /// UTC) and a space.
    pub timestamps: bool,
    /// End after this many bytes of output, possibly mid-line.
    pub limit_bytes: Option<u64>,
    /// Which streams.
    pub streams: Streams,
    /// How often a follower looks for new data and rotation.
    pub poll_interval: Duration,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            follow: false,
            tail_lines: None,
            since: None,
            timestamps: false,
            limit_bytes: None,
            streams: Streams::All,
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

/// Reads the CRI log at `path`: the content of the selected entries, `P`
/// chunks joined into their line, each line ending in `\n`. Items are
/// chunks of whole lines (except where `limit_bytes` cuts).
///
/// `finished` is only awaited when following; it should resolve when the
/// container attempt has ended and its output is flushed.
///
/// # Errors
///
/// The stream yields an error and ends if the file cannot be read; see the
/// module docs for a missing file.
pub fn read(
    path: impl Into<PathBuf>,
    options: ReadOptions,
    finished: impl Future<Output = ()> + Send + 'static,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + 'static {
    let finished: Option<Finished> = options.follow.then(|| Box::pin(finished) as Finished);
    let reader = Reader {
        path: path.into(),
        output: Output::new(&options),
        options,
        finished,
        ending: false,
        started: false,
        done: false,
        file: None,
        rotated: false,
        pending: BytesMut::new(),
        skipping: false,
    };
    futures::stream::unfold(reader, |mut reader| async move {
        let item = reader.next().await?;
        Some((item, reader))
    })
}

type Finished = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The file being read, its identity and how far it has been read.
struct Current {
    file: tokio::fs::File,
    id: (u64, u64),
    pos: u64,
}

struct Reader {
    path: PathBuf,
    options: ReadOptions,
    output: Output,
    finished: Option<Finished>,
    /// `finished` resolved: read what is left, then end.
    ending: bool,
    started: bool,
    done: bool,
    file: Option<Current>,
    /// `path` names a new file; switch once the current one is read out.
    rotated: bool,
    /// Read but not yet parsed: the start of an incomplete entry.
    pending: BytesMut,
    /// Discarding an overlong entry up to its newline.
    skipping: bool,
}

impl Reader {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            if let Some(bytes) = self.output.take() {
                self.done |= self.output.exhausted();
                return Some(Ok(bytes));
            }
            if self.done || self.output.exhausted() {
                self.done = true;
                return None;
            }
            if let Err(error) = self.step().await {
                self.done = true;
                return Some(Err(error));
            }
        }
    }

    /// Makes progress: opens, reads a block, switches files, waits, or ends.
    async fn step(&mut self) -> io::Result<()> {
        if !self.started {
            self.started = true;
            return self.start().await;
        }
        if self.read_block().await? > 0 {
            return Ok(());
        }
        if self.rotated {
            // The old file is read out.
            self.rotated = false;
            return self.switch().await;
        }
        if self.options.follow && self.path_changed().await? {
            if self.file.is_some() {
                self.rotated = true;
                return Ok(());
            }
            return self.switch().await;
        }
        if !self.options.follow || self.ending {
            self.output.finish();
            self.done = true;
            return Ok(());
        }
        self.wait().await;
        Ok(())
    }

    async fn start(&mut self) -> io::Result<()> {
        let path = self.path.clone();
        let tail = self.options.tail_lines;
        let streams = self.options.streams;
        let opened =
            tokio::task::spawn_blocking(move || open_at_tail(&path, tail, streams)).await.map_err(io::Error::other)?;
        match opened {
            Ok((current, skip)) => {
                self.file = Some(current);
                self.output.skip_lines(skip);
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound && self.options.follow => {
                debug!(path = %self.path.display(), "waiting for the log file to appear");
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }

    /// Reads one block and parses the complete entries in it.
    async fn read_block(&mut self) -> io::Result<usize> {
        let Some(current) = self.file.as_mut() else {
            return Ok(0);
        };
        self.pending.reserve(BLOCK);
        let n = (&mut current.file).take(BLOCK as u64).read_buf(&mut self.pending).await?;
        current.pos += n as u64;
        let mut used = 0;
        while let Some(at) = self.pending[used..].iter().position(|&b| b == b'\n') {
            if self.skipping {
                self.skipping = false;
            } else {
                self.output.push(&self.pending[used..used + at]);
            }
            used += at + 1;
        }
        self.pending.advance(used);
        if self.pending.len() > MAX_ENTRY_BYTES {
            debug!(path = %self.path.display(), "skipping an overlong log entry");
            self.pending.clear();
            self.skipping = true;
        }
        Ok(n)
    }

    /// Whether `path` now names another file than the one being read (or
    /// exists at all, if none is). A truncated file is read from its start.
    async fn path_changed(&mut self) -> io::Result<bool> {
        let meta = match tokio::fs::metadata(&self.path).await {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(error),
        };
        let Some(current) = self.file.as_mut() else {
            return Ok(true);
        };
        if current.id != (meta.dev(), meta.ino()) {
            return Ok(true);
        }
        if meta.len() < current.pos {
            debug!(path = %self.path.display(), "log file truncated; reading from its start");
            current.file.seek(SeekFrom::Start(0)).await?;
            current.pos = 0;
            self.pending.clear();
            self.skipping = false;
        }
        Ok(false)
    }

    /// Continues with the file now at `path` (or none, if it is missing).
    async fn switch(&mut self) -> io::Result<()> {
        self.file = None;
        self.pending.clear();
        self.skipping = false;
        match tokio::fs::File::open(&self.path).await {
            Ok(file) => {
                let meta = file.metadata().await?;
                debug!(path = %self.path.display(), "following the new log file");
                self.file = Some(Current { file, id: (meta.dev(), meta.ino()), pos: 0 });
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Sleeps one poll interval, or until `finished` resolves.
    async fn wait(&mut self) {
        let tick = tokio::time::sleep(self.options.poll_interval);
        match self.finished.as_mut() {
            Some(finished) => tokio::select! {
                () = tick => {}
                () = finished.as_mut() => {
                    self.finished = None;
                    self.ending = true;
                }
            },
            None => self.ending = true,
        }
    }
}

/// Opens `path` positioned for its last `tail` lines; also returns how
/// many output lines to skip from there.
fn open_at_tail(path: &Path, tail: Option<u64>, streams: Streams) -> io::Result<(Current, u64)> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let (pos, skip) = match tail {
        Some(lines) => {
            let start = tail_start(&mut file, meta.len(), lines, streams)?;
            (start.offset, start.skip)
        }
        None => (0, 0),
    };
    file.seek(SeekFrom::Start(pos))?;
    let current = Current { file: tokio::fs::File::from_std(file), id: (meta.dev(), meta.ino()), pos };
    Ok((current, skip))
}
