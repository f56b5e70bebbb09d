//! Turning entries into output lines: stream selection, joining `P` chunks,
//! `since`, the timestamp prefix and `limit_bytes`.
//!
//! Each stream has at most one open line. A line's time (for `since` and
//! the prefix) is that of its first chunk. A line whose chunks exceed
//! [`MAX_JOINED_LINE`] is output in pieces as it grows, so memory stays
//! bounded; its pieces are still contiguous unless the other stream
//! completes a line in between.

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use tracing::debug;

use crate::entry::{Entry, Tag, format_time};
use crate::read::{ReadOptions, Streams};

/// Longest line assembled from `P` chunks before it is output in pieces.
pub const MAX_JOINED_LINE: usize = 1024 * 1024;

#[derive(Debug)]
struct OpenLine {
    /// Whether the line passes `since`.
    keep: bool,
    /// The `<timestamp> ` prefix, until it has been output.
    prefix: Option<String>,
    content: BytesMut,
}

#[derive(Debug)]
pub(crate) struct Output {
    timestamps: bool,
    since: Option<DateTime<Utc>>,
    streams: Streams,
    /// Bytes still allowed by `limit_bytes`.
    remaining: Option<u64>,
    /// Lines still to drop before output starts (for `tail_lines`).
    skip: u64,
    open: [Option<OpenLine>; 2],
    buf: BytesMut,
}

impl Output {
    pub(crate) fn new(options: &ReadOptions) -> Self {
        Output {
            timestamps: options.timestamps,
            since: options.since.map(DateTime::<Utc>::from),
            streams: options.streams,
            remaining: options.limit_bytes,
            skip: 0,
            open: [None, None],
            buf: BytesMut::new(),
        }
    }

    /// Drops the next `lines` output lines (whole lines, before `since`).
    pub(crate) fn skip_lines(&mut self, lines: u64) {
        self.skip = lines;
    }

    /// Takes one entry, given without its newline. Malformed entries are
    /// skipped.
    pub(crate) fn push(&mut self, line: &[u8]) {
        let entry = match Entry::parse(line) {
            Ok(entry) => entry,
            Err(error) => {
                debug!(%error, "skipping malformed log entry");
                return;
            }
        };
        if !self.streams.includes(entry.stream) {
            return;
        }
        let slot = entry.stream.index();
        let mut open = match self.open[slot].take() {
            Some(open) => open,
            None => match self.start_line(&entry) {
                Some(open) => open,
                None => return,
            },
        };
        if open.keep {
            open.content.extend_from_slice(entry.content);
        }
        match entry.tag {
            Tag::Full => self.end_line(open),
            Tag::Partial if open.keep && open.content.len() >= MAX_JOINED_LINE => {
                if self.skip > 0 {
                    // Most likely a line to skip: do not hold it.
                    open.content.clear();
                    self.open[slot] = Some(open);
                    return;
                }
                let piece = OpenLine { keep: true, prefix: open.prefix.take(), content: open.content.split() };
                self.write_line(piece, false);
                self.open[slot] = Some(open);
            }
            Tag::Partial => self.open[slot] = Some(open),
        }
    }

    fn start_line(&self, entry: &Entry<'_>) -> Option<OpenLine> {
        let mut keep = true;
        let mut prefix = None;
        if self.since.is_some() || self.timestamps {
            let time = match entry.time() {
                Ok(time) => time,
                Err(error) => {
                    debug!(%error, "skipping log entry");
                    return None;
                }
            };
            keep = self.since.is_none_or(|since| time >= since);
            if self.timestamps {
                prefix = Some(format!("{} ", format_time(time)));
            }
        }
        Some(OpenLine { keep, prefix, content: BytesMut::new() })
    }

    /// Outputs lines left open by trailing `P` chunks, each with a newline.
    pub(crate) fn finish(&mut self) {
        for slot in 0..self.open.len() {
            if let Some(open) = self.open[slot].take() {
                self.end_line(open);
            }
        }
    }

    fn end_line(&mut self, line: OpenLine) {
        if self.skip > 0 {
            self.skip -= 1;
        } else if line.keep {
            self.write_line(line, true);
        }
    }

    fn write_line(&mut self, line: OpenLine, newline: bool) {
        if let Some(prefix) = &line.prefix {
            self.write(prefix.as_bytes());
        }
        self.write(&line.content);
        if newline {
            self.write(b"\n");
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let take = match self.remaining {
            None => bytes.len(),
            Some(remaining) => {
                let take = bytes.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
                self.remaining = Some(remaining - take as u64);
                take
            }
        };
        self.buf.extend_from_slice(&bytes[..take]);
    }

    /// The output so far, if any.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }

    /// Whether `limit_bytes` has been reached.
    pub(crate) fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn run(options: ReadOptions, log: &str) -> String {
        let mut out = Output::new(&options);
        for line in log.lines() {
            out.push(line.as_bytes());
        }
        out.finish();
        String::from_utf8(out.take().unwrap_or_default().to_vec()).unwrap()
    }

    const LOG: &str = "\
1970-01-01T00:00:01Z stdout P he
1970-01-01T00:00:02Z stderr F oops
1970-01-01T00:00:03Z stdout F llo
1970-01-01T00:00:04Z stdout F world
1970-01-01T00:00:05Z stderr P unterminated
";

    #[test]
    fn joins_chunks_per_stream() {
        let all = run(ReadOptions::default(), LOG);
        assert_eq!(all, "oops\nhello\nworld\nunterminated\n");
        let options = ReadOptions { streams: Streams::Stdout, ..ReadOptions::default() };
        assert_eq!(run(options, LOG), "hello\nworld\n");
    }

    #[test]
    fn timestamps_come_from_the_first_chunk() {
        let options = ReadOptions { timestamps: true, streams: Streams::Stdout, ..ReadOptions::default() };
        assert_eq!(run(options, LOG), "1970-01-01T00:00:01.000000000Z hello\n1970-01-01T00:00:04.000000000Z world\n");
    }

    #[test]
    fn since_filters_whole_lines() {
        let options = ReadOptions { since: Some(UNIX_EPOCH + Duration::from_secs(2)), ..ReadOptions::default() };
        // "hello" started at 1 s: dropped whole, though it ended at 3 s.
        assert_eq!(run(options, LOG), "oops\nworld\nunterminated\n");
    }

    #[test]
    fn limit_cuts_the_output() {
        let options = ReadOptions { limit_bytes: Some(8), ..ReadOptions::default() };
        let mut out = Output::new(&options);
        for line in LOG.lines() {
            out.push(line.as_bytes());
        }
        assert!(out.exhausted());
        assert_eq!(&out.take().unwrap()[..], b"oops\nhel");
    }

    #[test]
    fn skips_malformed_entries() {
        let log = "junk\n1970-01-01T00:00:01Z stdin F x\nbad-time stdout F y\n";
        assert_eq!(run(ReadOptions::default(), log), "y\n");
        let options = ReadOptions { timestamps: true, ..ReadOptions::default() };
        assert_eq!(run(options, log), "");
    }

    #[test]
    fn huge_joined_lines_are_output_in_pieces() {
        let chunk = "x".repeat(MAX_JOINED_LINE / 2);
        let mut out = Output::new(&ReadOptions::default());
        let line = format!("t stdout P {chunk}");
        out.push(line.as_bytes());
        assert!(out.take().is_none());
        out.push(line.as_bytes());
        assert_eq!(out.take().map(|b| b.len()), Some(MAX_JOINED_LINE));
        out.push(b"t stdout F end");
        assert_eq!(&out.take().unwrap()[..], b"end\n");
    }
}
