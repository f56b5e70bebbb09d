//! Finding where the last N lines start, reading the file backwards in
//! blocks so a large file costs only the blocks that hold those lines.
//!
//! A line is what the reader outputs: the `P` chunks of one stream joined
//! with the `F` entry that ends them, output when that `F` arrives; lines
//! still unterminated at the end of the file come last. Only entries of the
//! selected streams count, and an incomplete last entry (no newline yet) is
//! not part of the file yet.
//!
//! The start is found in two passes:
//!
//! 1. Backwards: past the (N+1)-th `F` entry from the end, and further back
//!    until no selected stream has a line running across the cut (when both
//!    streams are selected, a stdout line may have begun with `P` chunks
//!    before a stderr line), looking at most [`SPLIT_SEARCH_BYTES`] back.
//! 2. Forwards, from the cut to the end: count the lines `T` there, so the
//!    reader skips the first `T - N`.
//!
//! Entries longer than [`MAX_ENTRY_BYTES`] are skipped.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

use crate::entry::{Entry, Stream, Tag};
use crate::read::{MAX_ENTRY_BYTES, Streams};

/// Bytes read per step backwards.
const BLOCK: u64 = 64 * 1024;
/// How far before the first cut candidate pass 1 looks for the start of a
/// line of the other stream that runs across it; past that, the cut stays
/// and such a line is output from the cut on.
pub(crate) const SPLIT_SEARCH_BYTES: u64 = 256 * 1024;

/// Where the reader starts for the last N lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TailStart {
    /// Offset of the first entry to read.
    pub(crate) offset: u64,
    /// Output lines to drop before the N wanted ones.
    pub(crate) skip: u64,
}

/// Where reading forward yields the last `lines` lines of the first `len`
/// bytes of `file`.
pub(crate) fn tail_start<F: Read + Seek>(
    file: &mut F,
    len: u64,
    lines: u64,
    streams: Streams,
) -> io::Result<TailStart> {
    let offset = cut(file, len, lines, streams)?;
    let total = count_lines(file, offset, len, streams)?;
    Ok(TailStart { offset, skip: total.saturating_sub(lines) })
}

/// Pass 1: a clean cut with at least `lines` `F` entries after it.
fn cut<F: Read + Seek>(file: &mut F, len: u64, lines: u64, streams: Streams) -> io::Result<u64> {
    let mut scan = Scan { lines, streams, full: 0, state: State::Counting, candidate: None };
    // The entry being assembled backwards (its end part), and the offset
    // just after its newline.
    let mut carry: Vec<u8> = Vec::new();
    let mut overlong = false;
    let mut entry_end: Option<u64> = None;
    let mut pos = len;
    let mut block = Vec::new();
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        block.resize((pos - start) as usize, 0);
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        let mut end = block.len();
        while let Some(at) = block[..end].iter().rposition(|&b| b == b'\n') {
            if let Some(after) = entry_end {
                prepend(&mut carry, &block[at + 1..end], &mut overlong);
                if !overlong && let Some(offset) = scan.entry(&carry, after) {
                    return Ok(offset);
                }
            }
            // Before the first newline from the end is an incomplete entry.
            carry.clear();
            overlong = false;
            entry_end = Some(start + at as u64 + 1);
            end = at;
        }
        if entry_end.is_some() {
            prepend(&mut carry, &block[..end], &mut overlong);
        }
        pos = start;
    }
    if let Some(after) = entry_end
        && !overlong
        && let Some(offset) = scan.entry(&carry, after)
    {
        return Ok(offset);
    }
    // The file's start is a clean cut.
    Ok(0)
}

fn prepend(carry: &mut Vec<u8>, bytes: &[u8], overlong: &mut bool) {
    if *overlong || carry.len() + bytes.len() > MAX_ENTRY_BYTES {
        *overlong = true;
        carry.clear();
        return;
    }
    carry.splice(0..0, bytes.iter().copied());
}

#[derive(Debug)]
enum State {
    /// Counting `F` entries from the end.
    Counting,
    /// At a cut candidate; waiting to see the nearest entry before it of
    /// the streams still marked.
    Checking { unchecked: [bool; 2] },
    /// A line of this stream runs across the candidate; the cut moves to
    /// just after the stream's previous `F`.
    Seeking(Stream),
}

struct Scan {
    lines: u64,
    streams: Streams,
    full: u64,
    state: State,
    /// The latest cut candidate, and how far back the search may go.
    candidate: Option<(u64, u64)>,
}

impl Scan {
    /// Looks at one entry (from the end backwards) that ends at `after`;
    /// returns the cut once it is found.
    fn entry(&mut self, line: &[u8], after: u64) -> Option<u64> {
        if let Some((candidate, limit)) = self.candidate
            && after < limit
        {
            // Searched far enough: accept a cut that may split a line.
            return Some(candidate);
        }
        let entry = Entry::parse(line).ok()?;
        if !self.streams.includes(entry.stream) {
            return None;
        }
        let stream = entry.stream;
        match (&mut self.state, entry.tag) {
            (State::Counting, Tag::Full) if self.full >= self.lines => self.check(stream, after),
            (State::Counting, Tag::Full) => self.full += 1,
            (State::Counting, Tag::Partial) => {}
            (State::Checking { unchecked }, tag) if unchecked[stream.index()] => {
                unchecked[stream.index()] = false;
                if tag == Tag::Partial {
                    self.state = State::Seeking(stream);
                }
            }
            (State::Checking { .. }, _) => {}
            (State::Seeking(seeking), Tag::Full) if *seeking == stream => {
                self.check(stream, after);
            }
            (State::Seeking(_), _) => {}
        }
        match (&self.state, self.candidate) {
            (State::Checking { unchecked: [false, false] }, Some((candidate, _))) => Some(candidate),
            _ => None,
        }
    }

    /// `after` (just after an `F` of `stream`) is a candidate: check the
    /// other selected stream.
    fn check(&mut self, stream: Stream, after: u64) {
        let mut unchecked = [false, false];
        for other in [Stream::Stdout, Stream::Stderr] {
            unchecked[other.index()] = other != stream && self.streams.includes(other);
        }
        self.state = State::Checking { unchecked };
        let limit = match self.candidate {
            Some((_, limit)) => limit,
            None => after.saturating_sub(SPLIT_SEARCH_BYTES),
        };
        self.candidate = Some((after, limit));
    }
}

/// Pass 2: the number of output lines in `[from, to)`.
fn count_lines<F: Read + Seek>(file: &mut F, from: u64, to: u64, streams: Streams) -> io::Result<u64> {
    file.seek(SeekFrom::Start(from))?;
    let mut reader = io::BufReader::new(file.take(to - from));
    let mut open = [false, false];
    let mut lines = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_ENTRY_BYTES as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let Some(entry) = line.strip_suffix(b"\n").and_then(|l| Entry::parse(l).ok()) else {
            // Incomplete or overlong: skip to the next newline.
            if !line.ends_with(b"\n") {
                reader.skip_until(b'\n')?;
            }
            continue;
        };
        if streams.includes(entry.stream) {
            let open = &mut open[entry.stream.index()];
            *open = entry.tag == Tag::Partial;
            lines += u64::from(!*open);
        }
    }
    Ok(lines + open.iter().map(|&o| u64::from(o)).sum::<u64>())
}

#[cfg(test)]
mod tests;
