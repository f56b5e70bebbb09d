use std::io::{Cursor, Read, Seek, SeekFrom};

use super::*;
use crate::output::Output;
use crate::read::ReadOptions;

const LOG: &str = "\
t stdout F one
t stderr F err
t stdout P tw
t stdout F o
t stdout F three
";

/// What the reader outputs for the last `lines` lines.
fn tail(log: &str, lines: u64, streams: Streams) -> String {
    let mut file = Cursor::new(log.as_bytes());
    let start = tail_start(&mut file, log.len() as u64, lines, streams).unwrap();
    let mut out = Output::new(&ReadOptions { streams, ..ReadOptions::default() });
    out.skip_lines(start.skip);
    let rest = &log[start.offset as usize..];
    // Only complete entries, as the reader does.
    let complete = &rest[..rest.rfind('\n').map_or(0, |i| i + 1)];
    for line in complete.lines() {
        out.push(line.as_bytes());
    }
    out.finish();
    String::from_utf8(out.take().unwrap_or_default().to_vec()).unwrap()
}

#[test]
fn counts_joined_lines_of_the_selected_streams() {
    assert_eq!(tail(LOG, 1, Streams::All), "three\n");
    assert_eq!(tail(LOG, 2, Streams::All), "two\nthree\n");
    assert_eq!(tail(LOG, 3, Streams::All), "err\ntwo\nthree\n");
    assert_eq!(tail(LOG, 2, Streams::Stdout), "two\nthree\n");
    assert_eq!(tail(LOG, 1, Streams::Stderr), "err\n");
    assert_eq!(tail(LOG, 0, Streams::Stderr), "");
    assert_eq!(tail(LOG, 99, Streams::All), "one\nerr\ntwo\nthree\n");
    assert_eq!(tail(LOG, 0, Streams::All), "");
}

#[test]
fn the_cut_does_not_split_a_line_of_the_other_stream() {
    let log = "\
t stdout F zero
t stderr P ha
t stdout F one
t stderr P lf
t stdout F two
t stderr F  done
t stdout F three
";
    assert_eq!(tail(log, 1, Streams::All), "three\n");
    assert_eq!(tail(log, 2, Streams::All), "half done\nthree\n");
    assert_eq!(tail(log, 3, Streams::All), "two\nhalf done\nthree\n");
    assert_eq!(tail(log, 4, Streams::All), "one\ntwo\nhalf done\nthree\n");
    assert_eq!(tail(log, 2, Streams::Stdout), "two\nthree\n");
    assert_eq!(tail(log, 1, Streams::Stderr), "half done\n");
}

#[test]
fn unterminated_lines_come_last_and_count() {
    let log = format!("{LOG}t stderr P unterminated\nt stdout F incompl");
    assert_eq!(tail(&log, 1, Streams::All), "unterminated\n");
    assert_eq!(tail(&log, 2, Streams::All), "three\nunterminated\n");
    assert_eq!(tail(&log, 1, Streams::Stdout), "three\n");
    assert_eq!(tail(&log, 0, Streams::All), "");
    assert_eq!(tail("", 5, Streams::All), "");
    assert_eq!(tail("t stdout F no newline", 5, Streams::All), "");
    assert_eq!(tail("t stdout P a\nt stdout P b\n", 1, Streams::All), "ab\n");
}

#[test]
fn lines_spanning_blocks() {
    let long = "x".repeat(BLOCK as usize + 10);
    let log = format!("t stdout F a\nt stdout F {long}\nt stdout F b\n");
    assert_eq!(tail(&log, 1, Streams::All), "b\n");
    assert_eq!(tail(&log, 2, Streams::All), format!("{long}\nb\n"));
    assert_eq!(tail(&log, 3, Streams::All), format!("a\n{long}\nb\n"));
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn reads_only_the_end_of_a_large_file() {
    let line = "2026-11-26T05:00:00.000000000Z stdout F some line of text\n";
    let log = line.repeat(200_000);
    let mut file = Counting { inner: Cursor::new(log.as_bytes()), read: 0 };
    let start = tail_start(&mut file, log.len() as u64, 10, Streams::Stdout).unwrap();
    assert_eq!(start.skip, 0);
    assert_eq!(start.offset, (log.len() - 10 * line.len()) as u64);
    assert!(file.read <= 2 * BLOCK, "read {} of {} bytes", file.read, log.len());
    // With both streams, it also looks a little further back for a line of
    // the other stream that may run across the cut.
    file.read = 0;
    let start = tail_start(&mut file, log.len() as u64, 10, Streams::All).unwrap();
    assert_eq!(start.offset, (log.len() - 10 * line.len()) as u64);
    let bound = SPLIT_SEARCH_BYTES + 3 * BLOCK;
    assert!(file.read <= bound, "read {} of {} bytes", file.read, log.len());
}
