//! Reading existing files: tail, since, timestamps, limit, streams.

use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use futures::StreamExt;
use wasmlet_logs::{ReadOptions, Streams, read};

use crate::{entry, read_all};

fn write_log(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("0.log");
    std::fs::write(&path, text).unwrap();
    path
}

fn sample() -> String {
    [
        entry(10, "stdout", "F", "one"),
        entry(20, "stderr", "F", "warning"),
        entry(30, "stdout", "P", "tw"),
        entry(31, "stderr", "P", "half"),
        entry(32, "stdout", "F", "o"),
        entry(40, "stdout", "F", "three"),
        entry(50, "stderr", "F", " done"),
    ]
    .concat()
}

#[tokio::test]
async fn options_combine_like_kubectl_logs() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(&dir, &sample());
    let opts = |f: fn(&mut ReadOptions)| {
        let mut o = ReadOptions::default();
        f(&mut o);
        o
    };
    let cases: Vec<(ReadOptions, &str)> = vec![
        (opts(|_| {}), "one\nwarning\ntwo\nthree\nhalf done\n"),
        (opts(|o| o.streams = Streams::Stdout), "one\ntwo\nthree\n"),
        (opts(|o| o.streams = Streams::Stderr), "warning\nhalf done\n"),
        (opts(|o| o.tail_lines = Some(2)), "three\nhalf done\n"),
        (opts(|o| o.tail_lines = Some(0)), ""),
        (
            opts(|o| {
                o.tail_lines = Some(2);
                o.streams = Streams::Stdout;
            }),
            "two\nthree\n",
        ),
        (opts(|o| o.since = Some(UNIX_EPOCH + Duration::from_secs(31))), "three\nhalf done\n"),
        (opts(|o| o.limit_bytes = Some(10)), "one\nwarnin"),
        (
            opts(|o| {
                o.timestamps = true;
                o.tail_lines = Some(1);
            }),
            "1970-01-01T00:00:31.000000000Z half done\n",
        ),
    ];
    for (options, want) in cases {
        assert_eq!(read_all(&path, options.clone()).await, want, "{options:?}");
    }
}

#[tokio::test]
async fn a_missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut stream = Box::pin(read(dir.path().join("nope.log"), ReadOptions::default(), std::future::pending()));
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn tail_of_a_large_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.log");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let line = "x".repeat(100);
    for i in 0..100_000u64 {
        file.write_all(entry(i, "stdout", "F", &format!("{i} {line}")).as_bytes()).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    assert!(std::fs::metadata(&path).unwrap().len() > 10_000_000);

    // How much is read is checked in the unit tests (`tail::tests`).
    let options = ReadOptions { tail_lines: Some(3), ..ReadOptions::default() };
    let text = read_all(&path, options).await;
    let numbers: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(numbers, ["99997", "99998", "99999"]);
}

#[tokio::test]
async fn malformed_and_incomplete_entries_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "garbage\n{}{}2026-11-26T05:00:00Z stdout F incompl",
        entry(1, "stdout", "F", "ok"),
        entry(2, "stdin", "F", "bad stream")
    );
    let path = write_log(&dir, &text);
    assert_eq!(read_all(&path, ReadOptions::default()).await, "ok\n");
}
