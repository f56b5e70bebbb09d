//! `GET /containerLogs/…` over real log files.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use wasmlet_api::router;
use wasmlet_logs::{LogFile, LogLimits, Stream, format_timestamp};

use crate::support::{Fake, WAIT, app, get, send, write_log};

const LOGS: &str = "/containerLogs/default/web/app";

#[tokio::test]
async fn serves_the_log_as_text() {
    let mut fake = Fake::new();
    let (current, _, _) = fake.add("default", "web", "app", false);
    let _file = write_log(&current, "one\ntwo\nthree\n").await;
    let (app, _) = app(fake);
    let (status, content_type, body) = send(&app, "GET", LOGS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; charset=utf-8");
    assert_eq!(body, "one\ntwo\nthree\n");
}

#[tokio::test]
async fn query_options_apply() {
    let mut fake = Fake::new();
    let (current, _, _) = fake.add("default", "web", "app", false);
    let file = write_log(&current, "one\ntwo\n").await;
    let between = SystemTime::now();
    let mut err = file.writer(Stream::Stderr);
    err.write_all(b"three\nfour\n").await.unwrap();
    file.flush().await;
    let (app, _) = app(fake);

    let since = format_timestamp(between);
    let cases = [
        ("tailLines=2", "three\nfour\n"),
        ("tail=1", "four\n"),
        ("tailLines=1&tail=all", "one\ntwo\nthree\nfour\n"),
        ("tailLines=0", ""),
        ("limitBytes=6", "one\ntw"),
        ("stream=Stderr", "three\nfour\n"),
        ("stream=Stdout&tailLines=1", "two\n"),
        (&format!("sinceTime={since}"), "three\nfour\n"),
        ("sinceSeconds=3600", "one\ntwo\nthree\nfour\n"),
    ];
    for (query, want) in cases {
        let (status, body) = get(&app, &format!("{LOGS}?{query}")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, want), "{query}");
    }

    let (_, body) = get(&app, &format!("{LOGS}?timestamps=true&tailLines=1")).await;
    let (time, line) = body.split_once(' ').unwrap();
    assert_eq!(line, "four\n");
    assert_eq!(time.len(), 30, "{time}");
    let time = chrono::DateTime::parse_from_rfc3339(time).unwrap();
    assert!(SystemTime::from(time) >= between);
}

#[tokio::test]
async fn since_seconds_drops_old_lines() {
    let mut fake = Fake::new();
    let (current, _, _) = fake.add("default", "web", "app", false);
    let old = format_timestamp(SystemTime::now() - Duration::from_secs(7200));
    let new = format_timestamp(SystemTime::now());
    std::fs::create_dir_all(current.parent().unwrap()).unwrap();
    std::fs::write(&current, format!("{old} stdout F old\n{new} stdout F new\n")).unwrap();
    let (app, _) = app(fake);
    assert_eq!(get(&app, &format!("{LOGS}?sinceSeconds=60")).await.1, "new\n");
}

#[tokio::test]
async fn previous_attempt() {
    let mut fake = Fake::new();
    let (current, previous, _) = fake.add("default", "web", "app", true);
    fake.add("default", "db", "pg", false);
    let _old = write_log(&previous, "crashed\n").await;
    let _new = write_log(&current, "restarted\n").await;
    let (app, _) = app(fake);
    assert_eq!(get(&app, &format!("{LOGS}?previous=true")).await.1, "crashed\n");
    // A previous attempt has ended: follow just reads it.
    let (_, body) = get(&app, &format!("{LOGS}?previous=1&follow=true")).await;
    assert_eq!(body, "crashed\n");
    assert_eq!(
        get(&app, "/containerLogs/default/db/pg?previous=true").await,
        (StatusCode::BAD_REQUEST, "previous terminated container \"pg\" in pod \"db\" not found\n".into())
    );
}

#[tokio::test]
async fn lookup_failures_use_upstream_messages() {
    let mut fake = Fake::new();
    fake.add("default", "web", "app", false);
    fake.add("default", "new", "app", false);
    fake.set_waiting("default", "new", "app", "ContainerCreating");
    let (app, _) = app(fake);
    let cases = [
        ("/containerLogs/default/nope/app", StatusCode::NOT_FOUND, "pod \"nope\" in namespace \"default\" not found"),
        ("/containerLogs/other/web/app", StatusCode::NOT_FOUND, "pod \"web\" in namespace \"other\" not found"),
        ("/containerLogs/default/web/sidecar", StatusCode::NOT_FOUND, "container \"sidecar\" in pod \"web\" not found"),
        (
            "/containerLogs/default/new/app",
            StatusCode::BAD_REQUEST,
            "container \"app\" in pod \"new\" is waiting to start: ContainerCreating",
        ),
    ];
    for (uri, status, message) in cases {
        assert_eq!(get(&app, uri).await, (status, format!("{message}\n")), "{uri}");
    }
}

#[tokio::test]
async fn invalid_queries_are_400() {
    let mut fake = Fake::new();
    fake.add("default", "web", "app", false);
    let (app, fake) = app(fake);
    for query in [
        "follow=yes",
        "tailLines=-1",
        "tail=x",
        "sinceSeconds=0",
        "sinceTime=now",
        "sinceSeconds=1&sinceTime=2026-01-01T00:00:00Z",
        "limitBytes=0",
        "stream=both",
        "timestamps=2",
    ] {
        let (status, body) = get(&app, &format!("{LOGS}?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    assert_eq!(*fake.calls.borrow(), 0, "bad queries are rejected before the lookup");
}

#[tokio::test]
async fn a_missing_log_file_reads_as_empty() {
    let mut fake = Fake::new();
    fake.add("default", "web", "app", false);
    let (app, _) = app(fake);
    assert_eq!(get(&app, LOGS).await, (StatusCode::OK, String::new()));
}

async fn open_follow(app: &axum::Router, uri: &str) -> axum::body::BodyDataStream {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = tokio::time::timeout(WAIT, app.clone().oneshot(request)).await.expect("response head").unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().into_data_stream()
}

async fn next_chunk(body: &mut axum::body::BodyDataStream) -> Option<String> {
    let chunk = tokio::time::timeout(WAIT, body.next()).await.expect("a chunk or the end")?;
    Some(String::from_utf8(chunk.unwrap().to_vec()).unwrap())
}

#[tokio::test(start_paused = true)]
async fn follow_streams_new_lines_until_the_attempt_ends() {
    let mut fake = Fake::new();
    let (current, _, finished) = fake.add("default", "web", "app", false);
    let file = write_log(&current, "started\n").await;
    let (app, _) = app(fake);
    let mut body = open_follow(&app, &format!("{LOGS}?follow=true")).await;
    assert_eq!(next_chunk(&mut body).await.as_deref(), Some("started\n"));

    let mut out = file.writer(Stream::Stdout);
    out.write_all(b"working\n").await.unwrap();
    file.flush().await;
    assert_eq!(next_chunk(&mut body).await.as_deref(), Some("working\n"));

    out.write_all(b"exiting\n").await.unwrap();
    file.flush().await;
    finished.cancel();
    let mut rest = String::new();
    while let Some(chunk) = next_chunk(&mut body).await {
        rest.push_str(&chunk);
    }
    assert_eq!(rest, "exiting\n");
}

#[tokio::test(start_paused = true)]
async fn follow_ends_at_shutdown_and_streams_are_limited() {
    let mut fake = Fake::new();
    let (current, _, _finished) = fake.add("default", "web", "app", false);
    let _file = write_log(&current, "running\n").await;
    let shutdown = CancellationToken::new();
    let config = router::Config { max_log_streams: 1, shutdown: shutdown.clone(), ..Default::default() };
    let app = router::with_config(Arc::new(fake), config);
    let mut body = open_follow(&app, &format!("{LOGS}?follow=true")).await;
    assert_eq!(next_chunk(&mut body).await.as_deref(), Some("running\n"));

    let (status, message) = get(&app, LOGS).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{message}");

    shutdown.cancel();
    assert_eq!(next_chunk(&mut body).await, None);
    drop(body);
    // The stream's slot is free again.
    assert_eq!(get(&app, LOGS).await, (StatusCode::OK, "running\n".into()));
}

#[tokio::test(start_paused = true)]
async fn follow_waits_for_the_log_file() {
    let mut fake = Fake::new();
    let (current, _, finished) = fake.add("default", "web", "app", false);
    let (app, _) = app(fake);
    let mut body = open_follow(&app, &format!("{LOGS}?follow=true&timestamps=true")).await;
    let file = LogFile::create(&current, LogLimits::default()).await.unwrap();
    let mut out = file.writer(Stream::Stderr);
    out.write_all(b"late\n").await.unwrap();
    file.flush().await;
    let line = next_chunk(&mut body).await.unwrap();
    assert!(line.ends_with("Z late\n"), "{line}");
    finished.cancel();
    assert_eq!(next_chunk(&mut body).await, None);
}
