//! [`LogWriter`]: the `AsyncWrite` a guest's stdout or stderr goes to.
//!
//! Bytes are split at `\n` into `F` entries. An unterminated line is
//! buffered (at most `max_line` bytes) until its newline arrives, the writer
//! is flushed or shut down, or it reaches `max_line`; then it is written as a
//! `P` chunk. Each write call is stamped with the system clock once.
//!
//! # Guarantees
//!
//! Writes never fail: if the file's task is gone the data is dropped and
//! counted. A write waits only while the file's queue is full.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use bytes::BytesMut;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::disk::Shared;
use crate::entry::{Stream, Tag, format_timestamp, write_entry};
use crate::file::{MESSAGE_BYTES, Msg};

/// Writes one stream of a container into its [`LogFile`](crate::LogFile).
///
/// Dropping a writer with an unterminated line queues that line as a `P`
/// chunk if the queue has room, and drops it otherwise; shut the writer
/// down to be sure.
#[derive(Debug)]
pub struct LogWriter {
    tx: PollSender<Msg>,
    shared: Arc<Shared>,
    stream: Stream,
    max_line: usize,
    /// The unterminated line, always shorter than `max_line`.
    pending: Vec<u8>,
}

impl LogWriter {
    pub(crate) fn new(tx: mpsc::Sender<Msg>, shared: Arc<Shared>, stream: Stream, max_line: usize) -> Self {
        LogWriter { tx: PollSender::new(tx), shared, stream, max_line, pending: Vec::new() }
    }

    /// Consumes a prefix of `buf` into entries in `out`, stopping once
    /// `out` holds [`MESSAGE_BYTES`]. Returns how much was consumed.
    fn split(&mut self, buf: &[u8], timestamp: &str, out: &mut BytesMut) -> usize {
        let mut consumed = 0;
        while consumed < buf.len() && out.len() < MESSAGE_BYTES {
            let rest = &buf[consumed..];
            let room = self.max_line - self.pending.len();
            // A newline right after `room` bytes still makes a full line.
            let window = &rest[..rest.len().min(room + 1)];
            if let Some(at) = window.iter().position(|&b| b == b'\n') {
                write_entry(out, timestamp, self.stream, Tag::Full, &[&self.pending, &rest[..at]]);
                self.pending.clear();
                consumed += at + 1;
            } else if rest.len() >= room {
                write_entry(out, timestamp, self.stream, Tag::Partial, &[&self.pending, &rest[..room]]);
                self.pending.clear();
                consumed += room;
            } else {
                self.pending.extend_from_slice(rest);
                consumed = buf.len();
            }
        }
        consumed
    }

    /// The buffered line as a `P` entry, if there is one.
    fn take_pending(&mut self) -> Option<BytesMut> {
        if self.pending.is_empty() {
            return None;
        }
        let mut out = BytesMut::new();
        let timestamp = format_timestamp(SystemTime::now());
        write_entry(&mut out, &timestamp, self.stream, Tag::Partial, &[&self.pending]);
        self.pending.clear();
        Some(out)
    }

    /// Waits for queue room, then queues `out` (or drops and counts it if
    /// the file's task is gone).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        match ready!(self.tx.poll_reserve(cx)) {
            Ok(()) => Poll::Ready(true),
            Err(_) => Poll::Ready(false),
        }
    }

    fn send(&mut self, out: BytesMut) {
        let len = out.len() as u64;
        if self.tx.send_item(Msg::Data(out.freeze())).is_err() {
            self.closed(len);
        }
    }

    fn closed(&self, dropped: u64) {
        self.shared.failed("queue", &"the log file's writer task has stopped", dropped);
    }

    fn poll_emit_pending(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.pending.is_empty() {
            return Poll::Ready(());
        }
        let ready = ready!(self.poll_send(cx));
        if let Some(out) = self.take_pending() {
            if ready {
                self.send(out);
            } else {
                self.closed(out.len() as u64);
            }
        }
        Poll::Ready(())
    }
}

impl AsyncWrite for LogWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Nothing to emit: just buffer the bytes.
        if this.pending.len() + buf.len() < this.max_line && !buf.contains(&b'\n') {
            this.pending.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        let ready = ready!(this.poll_send(cx));
        let timestamp = format_timestamp(SystemTime::now());
        let mut out = BytesMut::new();
        let consumed = this.split(buf, &timestamp, &mut out);
        if ready {
            this.send(out);
        } else {
            this.closed(out.len() as u64);
        }
        Poll::Ready(Ok(consumed))
    }

    /// Writes the unterminated line, if any, as a `P` chunk. It does not wait
    /// for the disk; see [`LogFile::flush`](crate::LogFile::flush).
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.get_mut().poll_emit_pending(cx));
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let Some(out) = self.take_pending() else {
            return;
        };
        let len = out.len() as u64;
        let sent = self.tx.get_ref().is_some_and(|tx| tx.try_send(Msg::Data(out.freeze())).is_ok());
        if !sent {
            self.shared.dropped(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(max_line: usize) -> (LogWriter, mpsc::Receiver<Msg>) {
        let (tx, rx) = mpsc::channel(4);
        let shared = Arc::new(Shared::new("unused".into()));
        (LogWriter::new(tx, shared, Stream::Stdout, max_line), rx)
    }

    fn split(w: &mut LogWriter, buf: &[u8]) -> (usize, String) {
        let mut out = BytesMut::new();
        let n = w.split(buf, "T", &mut out);
        (n, String::from_utf8(out.to_vec()).unwrap())
    }

    #[test]
    fn splits_lines_and_buffers_the_rest() {
        let (mut w, _rx) = writer(8);
        assert_eq!(split(&mut w, b"a\nbc\nde"), (7, "T stdout F a\nT stdout F bc\n".into()));
        assert_eq!(w.pending, b"de");
        assert_eq!(split(&mut w, b"f\n\n"), (3, "T stdout F def\nT stdout F \n".into()));
        assert!(w.pending.is_empty());
    }

    #[test]
    fn long_lines_become_partial_chunks() {
        let (mut w, _rx) = writer(4);
        let (_, out) = split(&mut w, b"abcdefghij\n");
        assert_eq!(out, "T stdout P abcd\nT stdout P efgh\nT stdout F ij\n");
        // Exactly max_line before the newline is still one full entry.
        let (_, out) = split(&mut w, b"abcd\n");
        assert_eq!(out, "T stdout F abcd\n");
        // Pending bytes count towards the limit.
        split(&mut w, b"ab");
        let (_, out) = split(&mut w, b"cdef");
        assert_eq!(out, "T stdout P abcd\n");
        assert_eq!(w.pending, b"ef");
    }

    #[tokio::test]
    async fn a_full_queue_makes_the_guest_wait() {
        use futures::FutureExt;
        use tokio::io::AsyncWriteExt;
        // Nobody drains the queue (capacity 4), as with a stuck disk.
        let (mut w, mut rx) = writer(16);
        let lines = "z\n".repeat(100_000);
        let mut written = 0;
        while let Some(n) = w.write(&lines.as_bytes()[written..]).now_or_never() {
            written += n.unwrap();
        }
        assert!(written > 0 && written < lines.len());
        assert!(written <= 4 * MESSAGE_BYTES, "{written}");
        // Room in the queue lets the guest go on.
        rx.recv().await.unwrap();
        let more = w.write(&lines.as_bytes()[written..]).now_or_never();
        assert!(matches!(more, Some(Ok(n)) if n > 0));
    }

    #[test]
    fn one_call_queues_a_bounded_message() {
        let (mut w, _rx) = writer(16);
        let newlines = vec![b'\n'; 100_000];
        let mut out = BytesMut::new();
        let n = w.split(&newlines, "2026-11-26T05:00:00.000000000Z", &mut out);
        assert!(n < newlines.len());
        assert!(out.len() < MESSAGE_BYTES + 64, "{}", out.len());
    }
}
