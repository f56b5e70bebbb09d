//! Container log files in the CRI format, the one containerd writes and the
//! kubelet reads:
//!
//! ```text
//! 2026-11-26T05:00:00.123456789Z stdout F a full line
//! 2026-11-26T05:00:00.123456790Z stderr P a chunk of a longer or unterminated line
//! ```
//!
//! Where to start:
//!
//! - Writing: [`LogFile::create`] opens one file per container attempt, and
//!   [`LogFile::writer`] gives a [`LogWriter`] (`tokio::io::AsyncWrite`) for
//!   the guest's stdout and another for its stderr. Lines are split at `\n`,
//!   long ones written as `P` chunks, and the file is rotated by size
//!   ([`LogLimits`]). Disk errors never reach the guest: they are counted
//!   ([`LogFile::stats`]) and logged once.
//! - Reading: [`read()`] yields what `kubectl logs` shows, with tail, since,
//!   timestamps, byte limit, stream selection and follow ([`ReadOptions`]).
//!
//! # Memory
//!
//! Per file, at most [`LogLimits::queue_depth`] messages of about
//! [`MESSAGE_BYTES`] are queued, and each writer buffers less than
//! [`LogLimits::max_line`]; a guest that writes faster than the disk waits.
//! A reader holds one block, one entry, and at most [`MAX_JOINED_LINE`] per
//! stream of a line being joined.

mod disk;
mod entry;
mod file;
mod output;
mod read;
mod tail;
mod writer;

#[cfg(test)]
mod prop_tests;

pub use disk::REOPEN_BACKOFF;
pub use entry::{Stream, format_timestamp};
pub use file::{
    DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, DEFAULT_MAX_LINE, DEFAULT_QUEUE_DEPTH, Error, LogFile, LogLimits, LogStats,
    MESSAGE_BYTES, Result,
};
pub use output::MAX_JOINED_LINE;
pub use read::{DEFAULT_POLL_INTERVAL, MAX_ENTRY_BYTES, ReadOptions, Streams, read};
pub use writer::LogWriter;
