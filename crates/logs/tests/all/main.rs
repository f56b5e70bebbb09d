//! Integration tests: files written with `LogFile` and read back with
//! `read`.

mod follow;
mod read;
mod write;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use wasmlet_logs::{ReadOptions, read};

/// Upper bound for any wait on a condition.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Reads the whole log (not following) into a string.
pub(crate) async fn read_all(path: &Path, options: ReadOptions) -> String {
    let stream = read(path, options, std::future::pending());
    collect(stream).await
}

pub(crate) async fn collect(stream: impl Stream<Item = std::io::Result<Bytes>>) -> String {
    let chunks: Vec<Bytes> =
        tokio::time::timeout(WAIT, stream.map(|c| c.unwrap()).collect()).await.expect("the stream ends");
    String::from_utf8(chunks.concat()).unwrap()
}

/// A log line at `secs` after the epoch.
pub(crate) fn entry(secs: u64, stream: &str, tag: &str, content: &str) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(secs);
    format!("{} {stream} {tag} {content}\n", wasmlet_logs::format_timestamp(time))
}
