//! Following: new entries, rotation, a file that appears later, and the
//! end when the attempt finishes. Virtual time drives the poll interval;
//! file I/O runs on the blocking pool, which holds virtual time still.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use wasmlet_logs::{LogFile, LogLimits, ReadOptions, Stream as Output, read};

use crate::{WAIT, collect};

type Logs = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

fn follow(path: &std::path::Path, options: ReadOptions) -> (Logs, oneshot::Sender<()>) {
    let (finish, finished) = oneshot::channel::<()>();
    let options = ReadOptions { follow: true, ..options };
    let stream = read(path, options, async move {
        let _ = finished.await;
    });
    (Box::pin(stream), finish)
}

async fn next_text(stream: &mut Logs) -> String {
    let chunk =
        tokio::time::timeout(WAIT, stream.next()).await.expect("a chunk arrives").expect("the stream goes on").unwrap();
    String::from_utf8(chunk.to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn follows_new_lines_across_rotations_until_finished() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let limits = LogLimits { max_bytes: 150, max_files: 2, ..LogLimits::default() };
    let file = LogFile::create(&path, limits).await.unwrap();
    let mut out = file.writer(Output::Stdout);
    out.write_all(b"before\n").await.unwrap();
    file.flush().await;

    let (mut stream, finish) = follow(&path, ReadOptions::default());
    assert_eq!(next_text(&mut stream).await, "before\n");
    for i in 0..10 {
        let line = format!("line {i} of a follow test\n");
        out.write_all(line.as_bytes()).await.unwrap();
        file.flush().await;
        assert_eq!(next_text(&mut stream).await, line);
    }
    assert!(dir.path().join("0.log.1").exists(), "the test rotated the file");

    // The attempt ends: the rest, including an unterminated line, then the end.
    out.write_all(b"last\nwords").await.unwrap();
    out.shutdown().await.unwrap();
    file.flush().await;
    finish.send(()).unwrap();
    assert_eq!(collect(stream).await, "last\nwords\n");
}

#[tokio::test(start_paused = true)]
async fn waits_for_a_file_that_does_not_exist_yet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c/0.log");
    let (stream, finish) = follow(&path, ReadOptions::default());
    let reader = collect(stream);
    let writer = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let file = LogFile::create(&path, LogLimits::default()).await.unwrap();
        let mut out = file.writer(Output::Stderr);
        out.write_all(b"hello\n").await.unwrap();
        file.flush().await;
        finish.send(()).unwrap();
    };
    let (text, ()) = tokio::join!(reader, writer);
    assert_eq!(text, "hello\n");
}

#[tokio::test(start_paused = true)]
async fn tail_zero_shows_only_new_lines_and_limit_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let file = LogFile::create(&path, LogLimits::default()).await.unwrap();
    let mut out = file.writer(Output::Stdout);
    out.write_all(b"old\n").await.unwrap();
    file.flush().await;
    let options =
        ReadOptions { tail_lines: Some(0), limit_bytes: Some(6), timestamps: false, ..ReadOptions::default() };
    let (stream, _finish) = follow(&path, options);
    let reader = collect(stream);
    let writer = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        out.write_all(b"new\nnewer\n").await.unwrap();
        file.flush().await;
    };
    // `finish` is never sent: the byte limit alone ends the stream.
    let (text, ()) = tokio::join!(reader, writer);
    assert_eq!(text, "new\nne");
}
