//! Writing: format, partial lines, rotation, disk errors, backpressure.

use tokio::io::AsyncWriteExt;
use wasmlet_logs::{LogFile, LogLimits, LogWriter, ReadOptions, Stream, Streams};

use crate::read_all;

fn assert_writer_bounds<T: tokio::io::AsyncWrite + Send + Sync + Unpin + 'static>() {}

#[test]
fn writer_is_send_sync_unpin() {
    assert_writer_bounds::<LogWriter>();
}

#[tokio::test]
async fn writes_cri_entries_for_both_streams() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pod/c/0.log");
    let file = LogFile::create(&path, LogLimits::default()).await.unwrap();
    let mut out = file.writer(Stream::Stdout);
    let mut err = file.writer(Stream::Stderr);
    out.write_all(b"hello\nwor").await.unwrap();
    err.write_all(b"oops\n").await.unwrap();
    out.write_all(b"ld\nno newline").await.unwrap();
    out.shutdown().await.unwrap();
    file.flush().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let fields: Vec<(&str, &str, &str)> = text
        .lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let ts = f.next().unwrap();
            assert_eq!(ts.len(), 30, "{ts}");
            assert!(ts.ends_with('Z'));
            (f.next().unwrap(), f.next().unwrap(), f.next().unwrap())
        })
        .collect();
    assert_eq!(
        fields,
        [("stdout", "F", "hello"), ("stderr", "F", "oops"), ("stdout", "F", "world"), ("stdout", "P", "no newline"),]
    );
    let all = read_all(&path, ReadOptions::default()).await;
    assert_eq!(all, "hello\noops\nworld\nno newline\n");
    assert_eq!(file.stats().errors, 0);
}

#[tokio::test]
async fn long_lines_are_chunked_and_joined_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let limits = LogLimits { max_line: 10, ..LogLimits::default() };
    let file = LogFile::create(&path, limits).await.unwrap();
    let mut out = file.writer(Stream::Stdout);
    let line = "0123456789".repeat(5);
    out.write_all(format!("{line}\n").as_bytes()).await.unwrap();
    out.flush().await.unwrap();
    file.flush().await;
    let text = std::fs::read_to_string(&path).unwrap();
    // Four chunks of max_line; the last ten bytes end the line.
    assert_eq!(text.matches(" P ").count(), 4, "{text}");
    assert_eq!(read_all(&path, ReadOptions::default()).await, format!("{line}\n"));
}

#[tokio::test]
async fn rotates_by_size_keeping_max_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let limits = LogLimits { max_bytes: 1000, max_files: 3, ..LogLimits::default() };
    let file = LogFile::create(&path, limits).await.unwrap();
    let mut out = file.writer(Stream::Stdout);
    for i in 0..200 {
        out.write_all(format!("line {i}\n").as_bytes()).await.unwrap();
    }
    file.flush().await;
    let rotated = |n: u32| dir.path().join(format!("0.log.{n}"));
    assert!(rotated(1).exists() && rotated(2).exists());
    assert!(!rotated(3).exists());
    let mut all = String::new();
    for p in [rotated(2), rotated(1), path.clone()] {
        let size = std::fs::metadata(&p).unwrap().len();
        assert!(size <= 1000, "{} is {size} bytes", p.display());
        all.push_str(&read_all(&p, ReadOptions::default()).await);
    }
    // The newest lines, in order, none missing at the file boundaries.
    let numbers: Vec<u32> = all.lines().map(|l| l[5..].parse().unwrap()).collect();
    assert_eq!(numbers.last(), Some(&199));
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(numbers.len() > 40, "{}", numbers.len());
}

#[tokio::test]
async fn disk_errors_never_fail_the_writer() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let file = LogFile::create("/dev/full", LogLimits::default()).await.unwrap();
    let mut out = file.writer(Stream::Stdout);
    for _ in 0..10 {
        out.write_all(b"lost\n").await.unwrap();
    }
    out.shutdown().await.unwrap();
    file.flush().await;
    let stats = file.stats();
    assert!(stats.errors >= 1, "{stats:?}");
    assert!(stats.dropped_bytes >= 10 * 5, "{stats:?}");
}

#[tokio::test]
async fn a_removed_directory_does_not_fail_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let pod = dir.path().join("pod");
    let limits = LogLimits { max_bytes: 100, ..LogLimits::default() };
    let file = LogFile::create(pod.join("0.log"), limits).await.unwrap();
    let mut out = file.writer(Stream::Stderr);
    out.write_all(b"before\n").await.unwrap();
    file.flush().await;
    std::fs::remove_dir_all(&pod).unwrap();
    for _ in 0..50 {
        out.write_all(b"after the directory is gone\n").await.unwrap();
    }
    file.flush().await;
    assert!(file.stats().errors >= 1, "{:?}", file.stats());
    assert!(!pod.exists(), "the writer must not recreate a removed directory");
}

#[tokio::test]
async fn large_writes_are_accepted_in_parts_and_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let limits = LogLimits { queue_depth: 2, max_bytes: 1 << 30, ..LogLimits::default() };
    let file = LogFile::create(&path, limits).await.unwrap();
    let mut out = file.writer(Stream::Stdout);
    let chunk = "y\n".repeat(10_000);
    for _ in 0..20 {
        out.write_all(chunk.as_bytes()).await.unwrap();
    }
    file.flush().await;
    let read = read_all(&path, ReadOptions { streams: Streams::Stdout, ..ReadOptions::default() }).await;
    assert_eq!(read.len(), 20 * chunk.len());
}

#[tokio::test]
async fn dropping_a_writer_keeps_its_unterminated_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let file = LogFile::create(&path, LogLimits::default()).await.unwrap();
    let mut out = file.writer(Stream::Stdout);
    out.write_all(b"bye").await.unwrap();
    drop(out);
    file.flush().await;
    assert_eq!(read_all(&path, ReadOptions::default()).await, "bye\n");
}

#[tokio::test]
async fn invalid_limits_and_unwritable_paths_are_errors() {
    let zero = LogLimits { max_files: 0, ..LogLimits::default() };
    let err = LogFile::create("/tmp/x.log", zero).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid log limits: max_files must be at least 1");
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let err = LogFile::create(blocker.join("0.log"), LogLimits::default()).await.unwrap_err();
    assert!(matches!(err, wasmlet_logs::Error::Io { .. }), "{err:?}");
}
