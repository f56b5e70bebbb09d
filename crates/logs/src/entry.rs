//! One line of a CRI log file: formatting (for the writer) and parsing (for
//! the reader).
//!
//! ```text
//! 2026-11-26T05:00:00.123456789Z stdout F a full line
//! 2026-11-26T05:00:00.123456790Z stderr P a partial chunk
//! ```
//!
//! The timestamp is RFC 3339 in UTC. It is written with exactly nine
//! fractional digits (so file order and text order agree) and parsed with
//! any number of them, as containerd trims trailing zeros. The tag field may
//! carry further `:`-separated tags after `F`/`P`; only the first is read,
//! as upstream does.

use std::fmt;
use std::time::SystemTime;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};

/// One of a container's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The name used in the log file.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an entry ends a line (`F`) or is a chunk of a longer one (`P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    Full,
    Partial,
}

/// A parsed entry, borrowing from the line it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    /// The timestamp text, not yet parsed (only needed for `since` and
    /// `timestamps`).
    pub(crate) timestamp: &'a [u8],
    pub(crate) stream: Stream,
    pub(crate) tag: Tag,
    /// The content, without the line's trailing newline.
    pub(crate) content: &'a [u8],
}

/// Why a line is not a CRI log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("no timestamp field")]
    NoTimestamp,
    #[error("no stream field")]
    NoStream,
    #[error("unknown stream")]
    UnknownStream,
    #[error("no tag field")]
    NoTag,
    #[error("invalid timestamp")]
    BadTimestamp,
}

impl<'a> Entry<'a> {
    /// Parses one line, given without its trailing `\n`.
    pub(crate) fn parse(line: &'a [u8]) -> Result<Self, ParseError> {
        let (timestamp, rest) = split_field(line).ok_or(ParseError::NoTimestamp)?;
        let (stream, rest) = split_field(rest).ok_or(ParseError::NoStream)?;
        let stream = match stream {
            b"stdout" => Stream::Stdout,
            b"stderr" => Stream::Stderr,
            _ => return Err(ParseError::UnknownStream),
        };
        let (tags, content) = split_field(rest).ok_or(ParseError::NoTag)?;
        let first = tags.split(|&b| b == b':').next().unwrap_or_default();
        let tag = if first == b"P" { Tag::Partial } else { Tag::Full };
        Ok(Entry { timestamp, stream, tag, content })
    }

    /// The entry's time.
    pub(crate) fn time(&self) -> Result<DateTime<Utc>, ParseError> {
        parse_timestamp(self.timestamp)
    }
}

/// Splits at the first space; `None` if there is none.
fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == b' ')?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// Parses an RFC 3339 timestamp with any number of fractional digits.
pub(crate) fn parse_timestamp(text: &[u8]) -> Result<DateTime<Utc>, ParseError> {
    let text = std::str::from_utf8(text).map_err(|_| ParseError::BadTimestamp)?;
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|_| ParseError::BadTimestamp)
}

/// Formats a time as RFC 3339 in UTC with nine fractional digits, the form
/// both the log file and the `timestamps` output use.
pub fn format_timestamp(time: SystemTime) -> String {
    format_time(DateTime::<Utc>::from(time))
}

pub(crate) fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Appends one formatted entry, newline included.
pub(crate) fn write_entry(out: &mut BytesMut, timestamp: &str, stream: Stream, tag: Tag, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(timestamp.len() + len + 12);
    out.put_slice(timestamp.as_bytes());
    out.put_u8(b' ');
    out.put_slice(stream.as_str().as_bytes());
    out.put_slice(match tag {
        Tag::Full => b" F ",
        Tag::Partial => b" P ",
    });
    for part in parts {
        out.put_slice(part);
    }
    out.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_nine_fractional_digits_in_utc() {
        let t = UNIX_EPOCH + Duration::new(1_795_000_000, 1_000);
        assert_eq!(format_timestamp(t), "2026-11-18T11:06:40.000001000Z");
        assert_eq!(format_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn writes_and_parses_an_entry() {
        let mut out = BytesMut::new();
        let ts = "2026-11-26T05:00:00.123456789Z";
        write_entry(&mut out, ts, Stream::Stderr, Tag::Partial, &[b"ab", b"c d"]);
        assert_eq!(&out[..], b"2026-11-26T05:00:00.123456789Z stderr P abc d\n");
        let e = Entry::parse(&out[..out.len() - 1]).unwrap();
        assert_eq!(e.stream, Stream::Stderr);
        assert_eq!(e.tag, Tag::Partial);
        assert_eq!(e.content, b"abc d");
        let time = e.time().unwrap();
        assert_eq!(time.timestamp_subsec_nanos(), 123_456_789);
    }

    #[test]
    fn parses_what_containerd_writes() {
        // Trimmed fraction, extra tags, empty content, content with spaces.
        let e = Entry::parse(b"2026-11-26T05:00:00.5Z stdout F:x  two  spaces").unwrap();
        assert_eq!(e.tag, Tag::Full);
        assert_eq!(e.content, b" two  spaces");
        assert_eq!(e.time().unwrap().timestamp_subsec_nanos(), 500_000_000);
        let e = Entry::parse(b"2026-11-26T05:00:00Z stdout F ").unwrap();
        assert_eq!(e.content, b"");
        // An offset is accepted and converted to UTC.
        let e = Entry::parse(b"2026-11-26T07:00:00+02:00 stdout P x").unwrap();
        assert_eq!(e.time().unwrap().to_rfc3339(), "2026-11-26T05:00:00+00:00");
    }

    #[test]
    fn rejects_malformed_lines() {
        assert_eq!(Entry::parse(b"garbage"), Err(ParseError::NoTimestamp));
        assert_eq!(Entry::parse(b"ts stdout"), Err(ParseError::NoStream));
        assert_eq!(Entry::parse(b"ts stdin F x"), Err(ParseError::UnknownStream));
        assert_eq!(Entry::parse(b"ts stdout F"), Err(ParseError::NoTag));
        let e = Entry::parse(b"yesterday stdout F x").unwrap();
        assert_eq!(e.time(), Err(ParseError::BadTimestamp));
    }
}
