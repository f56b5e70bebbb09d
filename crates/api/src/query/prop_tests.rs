//! Property tests of what the kubelet API reads from a request line: the
//! log query and the path's names. Nothing panics; what a client encodes
//! decodes to the same options; accepted names cannot escape a directory.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use wasmlet_logs::Streams;

use super::LogQuery;
use crate::names::{self, Rule};

const NAMES: [&str; 10] =
    ["tail", "tailLines", "sinceSeconds", "sinceTime", "stream", "previous", "follow", "timestamps", "limitBytes", "x"];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,30}",
        any::<i64>().prop_map(|n| n.to_string()),
        "[0-9]{15,25}",
        proptest::sample::select(vec!["true", "FALSE", "1", "0", "All", "Stdout", "Stderr", "all"])
            .prop_map(str::to_owned),
        "[0-9]{1,5}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
    ]
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn log_queries_never_panic(
        pairs in proptest::collection::vec((proptest::sample::select(NAMES.to_vec()).prop_map(str::to_owned), value()), 0..8),
    ) {
        if let Ok(q) = LogQuery::parse(&pairs, now()) {
            prop_assert!(q.options.limit_bytes.is_none_or(|n| n >= 1));
        }
    }

    #[test]
    fn encoded_queries_decode_to_the_same_options(
        tail in proptest::option::of(0u64..=i64::MAX as u64),
        limit in proptest::option::of(1u64..=i64::MAX as u64),
        since in proptest::option::of(1u64..=1_000_000),
        stream in 0usize..3,
        (previous, follow, timestamps) in (any::<bool>(), any::<bool>(), any::<bool>()),
    ) {
        let mut pairs = vec![
            ("previous".to_owned(), previous.to_string()),
            ("follow".to_owned(), follow.to_string()),
            ("timestamps".to_owned(), timestamps.to_string()),
            ("stream".to_owned(), ["All", "Stdout", "Stderr"][stream].to_owned()),
        ];
        pairs.extend(tail.map(|n| ("tailLines".to_owned(), n.to_string())));
        pairs.extend(limit.map(|n| ("limitBytes".to_owned(), n.to_string())));
        pairs.extend(since.map(|n| ("sinceSeconds".to_owned(), n.to_string())));
        let q = LogQuery::parse(&pairs, now()).unwrap();
        prop_assert_eq!(q.previous, previous);
        prop_assert_eq!((q.options.follow, q.options.timestamps), (follow, timestamps));
        prop_assert_eq!(q.options.tail_lines, tail);
        prop_assert_eq!(q.options.limit_bytes, limit);
        prop_assert_eq!(q.options.since, since.map(|s| now() - Duration::from_secs(s)));
        prop_assert_eq!(q.options.streams, [Streams::All, Streams::Stdout, Streams::Stderr][stream]);
    }

    #[test]
    fn accepted_names_are_plain_path_segments(
        s in prop_oneof!["\\PC{0,70}", "[a-z0-9.-]{0,70}", "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"],
    ) {
        for rule in [Rule::Label, Rule::Subdomain] {
            if names::check("name", &s, rule).is_ok() {
                prop_assert!(!s.is_empty() && s.len() <= 253);
                prop_assert!(s != "." && s != ".." && !s.contains('/') && !s.contains(".."), "{}", s);
            }
        }
    }
}
