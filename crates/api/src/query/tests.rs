use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmlet_logs::{ReadOptions, Streams};

use super::{LogQuery, QueryError};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000)
}

fn parse(query: &str) -> Result<LogQuery, QueryError> {
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    LogQuery::parse(&pairs, now())
}

fn options(query: &str) -> ReadOptions {
    parse(query).unwrap().options
}

#[test]
fn empty_query_reads_everything() {
    let q = parse("").unwrap();
    assert!(!q.previous);
    assert_eq!(q.options, ReadOptions::default());
}

#[test]
fn decodes_what_the_apiserver_sends() {
    let q = parse("follow=true&previous=1&timestamps=TRUE&tailLines=10&sinceSeconds=60&limitBytes=500&stream=Stderr")
        .unwrap();
    assert!(q.previous);
    assert_eq!(
        q.options,
        ReadOptions {
            follow: true,
            timestamps: true,
            tail_lines: Some(10),
            since: Some(now() - Duration::from_secs(60)),
            limit_bytes: Some(500),
            streams: Streams::Stderr,
            ..ReadOptions::default()
        }
    );
    assert!(!options("follow=false&timestamps=0").follow);
    assert_eq!(options("stream=Stdout").streams, Streams::Stdout);
    assert_eq!(options("stream=All").streams, Streams::All);
}

#[test]
fn since_time_is_rfc3339() {
    let since = options("sinceTime=1970-01-12T13:46:40Z").since;
    assert_eq!(since, Some(now()));
    let since = options("sinceTime=1970-01-12T14:46:40.5%2B01:00".replace("%2B", "+").as_str()).since;
    assert_eq!(since, Some(now() + Duration::from_millis(500)));
}

#[test]
fn legacy_tail_replaces_tail_lines() {
    assert_eq!(options("tail=5").tail_lines, Some(5));
    assert_eq!(options("tailLines=3&tail=5").tail_lines, Some(5));
    assert_eq!(options("tailLines=3&tail=all").tail_lines, None);
    assert_eq!(options("tailLines=3&tail=").tail_lines, Some(3));
    assert_eq!(options("tailLines=0").tail_lines, Some(0));
}

#[test]
fn first_value_wins_and_unknown_parameters_are_ignored() {
    assert_eq!(options("tailLines=1&tailLines=2").tail_lines, Some(1));
    assert_eq!(parse("container=x&insecureSkipTLSVerifyBackend=true").unwrap().options, ReadOptions::default());
}

#[test]
fn invalid_values_are_explained() {
    let cases = [
        ("follow=yes", "invalid follow \"yes\": must be true or false"),
        ("tailLines=-1", "invalid tailLines -1: must be greater than or equal to 0"),
        ("tail=ten", "invalid tailLines \"ten\": must be an integer"),
        ("sinceSeconds=0", "invalid sinceSeconds 0: must be greater than or equal to 1"),
        ("limitBytes=0", "invalid limitBytes 0: must be greater than or equal to 1"),
        ("limitBytes=99999999999999999999", "invalid limitBytes \"99999999999999999999\": must be an integer"),
        ("sinceTime=yesterday", "invalid sinceTime \"yesterday\": must be an RFC 3339 time"),
        ("sinceSeconds=5&sinceTime=1970-01-01T00:00:00Z", "at most one of sinceTime or sinceSeconds may be specified"),
        ("stream=stdout", "invalid stream \"stdout\": must be one of All, Stdout, Stderr"),
    ];
    for (query, message) in cases {
        assert_eq!(parse(query).unwrap_err().to_string(), message, "{query}");
    }
}
