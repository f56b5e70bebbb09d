//! Property tests of the CRI log line parser: a log file holds what guests
//! wrote (untrusted bytes). Parsing never panics, and what the writer
//! formats parses back to the same entry.

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use proptest::prelude::*;

use crate::entry::{Entry, Stream, Tag, format_time, parse_timestamp, write_entry};

fn time() -> impl Strategy<Value = DateTime<Utc>> {
    // Years 1970..2262, any nanosecond.
    (0i64..9_200_000_000, 0u32..1_000_000_000).prop_map(|(s, ns)| DateTime::from_timestamp(s, ns).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(entry) = Entry::parse(&line) {
            let _ = entry.time();
        }
    }

    #[test]
    fn shaped_lines_never_panic(
        ts in "[0-9T:.Z+-]{0,40}",
        stream in "(stdout|stderr|std\\PC{0,3})",
        tag in "(F|P|[A-Z:]{0,5})",
        content in "\\PC{0,40}",
    ) {
        let line = format!("{ts} {stream} {tag} {content}");
        if let Ok(entry) = Entry::parse(line.as_bytes()) {
            prop_assert_eq!(entry.content, content.as_bytes());
            let _ = entry.time();
        }
    }

    #[test]
    fn written_entries_parse_back(
        t in time(),
        stderr: bool,
        partial: bool,
        parts in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..30), 0..4),
    ) {
        let (stream, tag) = (
            if stderr { Stream::Stderr } else { Stream::Stdout },
            if partial { Tag::Partial } else { Tag::Full },
        );
        let timestamp = format_time(t);
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let mut out = BytesMut::new();
        write_entry(&mut out, &timestamp, stream, tag, &slices);
        prop_assert_eq!(out.last(), Some(&b'\n'));
        let entry = Entry::parse(&out[..out.len() - 1]).unwrap();
        prop_assert_eq!(entry.stream, stream);
        prop_assert_eq!(entry.tag, tag);
        let content = parts.concat();
        prop_assert_eq!(entry.content, content.as_slice());
        prop_assert_eq!(entry.time().unwrap(), t);
        prop_assert_eq!(parse_timestamp(timestamp.as_bytes()).unwrap(), t);
    }
}
