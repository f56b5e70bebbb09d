//! Streams of a session: [`Stream`], split into [`RecvStream`] and
//! [`SendStream`], over a bounded receive buffer.
//!
//! Received DATA waits in a buffer of at most [`RECV_BUFFER`] bytes (plus
//! one frame). A peer that honours our window never fills it; one that
//! does not (Go's spdystream ignores flow control) makes the session's
//! reader wait for room, which pushes back through TCP. Reading returns
//! the bytes to the peer's window ([`super::state`] sends WINDOW_UPDATE).
//!
//! Dropping both halves of a stream that was not finished resets it
//! (RST_STREAM CANCEL); dropping the receiving half discards what arrives.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::frame::{Frame, RstStatus, StreamId};
use super::headers::Headers;
use super::state::Shared;

/// Bytes buffered per stream before the session's reader waits.
pub const RECV_BUFFER: usize = super::state::INITIAL_WINDOW as usize;

/// Why a stream operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The peer reset the stream (or we did).
    #[error("stream reset ({0:?})")]
    Reset(RstStatus),
    /// The session has ended.
    #[error("the session is closed")]
    SessionClosed,
    /// Writing after [`SendStream::finish`].
    #[error("the stream is finished")]
    Finished,
}

/// How a stream's receiving side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Fin,
    Reset(RstStatus),
    Closed,
}

#[derive(Default)]
struct RecvInner {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    end: Option<End>,
    reset: Option<RstStatus>,
    abandoned: bool,
}

/// Received data of one stream, between the session's reader (one
/// producer) and the [`RecvStream`] (one consumer).
#[derive(Default)]
pub(crate) struct RecvBuffer {
    inner: Mutex<RecvInner>,
    readable: Notify,
    writable: Notify,
}

/// What became of pushed data.
pub(crate) enum Pushed {
    Queued,
    /// Dropped (nobody reads, or the stream is over): the caller returns
    /// the bytes to the session window itself.
    Discarded,
}

impl RecvBuffer {
    fn lock(&self) -> MutexGuard<'_, RecvInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `data`, waiting while the buffer is full.
    pub(crate) async fn push(&self, data: Bytes, closed: &CancellationToken) -> Pushed {
        loop {
            {
                let mut inner = self.lock();
                if inner.abandoned || inner.end.is_some() {
                    return Pushed::Discarded;
                }
                if inner.buffered < RECV_BUFFER {
                    inner.buffered += data.len();
                    inner.chunks.push_back(data);
                    drop(inner);
                    self.readable.notify_one();
                    return Pushed::Queued;
                }
            }
            tokio::select! {
                () = self.writable.notified() => {}
                () = closed.cancelled() => return Pushed::Discarded,
            }
        }
    }

    /// Ends the receiving side; the first end wins (a stream the peer
    /// finished stays complete when the session closes later). Data
    /// already buffered is still read before the end.
    pub(crate) fn end(&self, end: End) {
        let mut inner = self.lock();
        inner.end.get_or_insert(end);
        if let End::Reset(status) = end {
            inner.reset.get_or_insert(status);
        }
        drop(inner);
        self.readable.notify_one();
        self.writable.notify_one();
    }

    /// The reset status, if the stream was reset.
    pub(crate) fn reset_status(&self) -> Option<RstStatus> {
        self.lock().reset
    }

    /// The next chunk, `None` after FIN.
    async fn pop(&self) -> Result<Option<Bytes>, StreamError> {
        loop {
            {
                let mut inner = self.lock();
                if let Some(chunk) = inner.chunks.pop_front() {
                    inner.buffered -= chunk.len();
                    drop(inner);
                    self.writable.notify_one();
                    return Ok(Some(chunk));
                }
                match inner.end {
                    Some(End::Fin) => return Ok(None),
                    Some(End::Reset(status)) => return Err(StreamError::Reset(status)),
                    Some(End::Closed) => return Err(StreamError::SessionClosed),
                    None => {}
                }
            }
            self.readable.notified().await;
        }
    }

    /// Stops buffering; returns how many buffered bytes were dropped.
    fn abandon(&self) -> usize {
        let mut inner = self.lock();
        inner.abandoned = true;
        inner.chunks.clear();
        let dropped = std::mem::take(&mut inner.buffered);
        drop(inner);
        self.writable.notify_one();
        dropped
    }
}

/// What both halves of a stream share; dropping the last half resets an
/// unfinished stream.
pub(crate) struct Core {
    pub(crate) id: StreamId,
    pub(crate) buffer: Arc<RecvBuffer>,
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Core {
    fn drop(&mut self) {
        self.shared.abandon(self.id);
    }
}

/// A stream: its headers and both directions.
pub struct Stream {
    headers: Headers,
    recv: RecvStream,
    send: SendStream,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("id", &self.id()).field("headers", &self.headers).finish_non_exhaustive()
    }
}

impl Stream {
    pub(crate) fn new(core: Core, headers: Headers) -> Stream {
        let core = Arc::new(core);
        Stream { headers, recv: RecvStream { core: core.clone() }, send: SendStream { core } }
    }

    /// The stream id.
    pub fn id(&self) -> StreamId {
        self.send.core.id
    }

    /// The headers of the SYN_STREAM that opened it.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Accepts a stream the peer opened (SYN_REPLY, empty headers).
    ///
    /// # Errors
    ///
    /// [`StreamError::SessionClosed`].
    pub async fn reply(&self) -> Result<(), StreamError> {
        let reply = Frame::SynReply { stream_id: self.id(), flags: 0, headers: Headers::new() };
        self.send.core.shared.send(reply).await
    }

    /// Aborts the stream (RST_STREAM).
    pub async fn reset(self, status: RstStatus) {
        self.send.core.shared.reset(self.id(), status).await;
    }

    /// The two directions, to use from different tasks.
    pub fn split(self) -> (RecvStream, SendStream) {
        (self.recv, self.send)
    }

    /// See [`RecvStream::read`].
    ///
    /// # Errors
    ///
    /// See [`RecvStream::read`].
    pub async fn read(&mut self) -> Result<Option<Bytes>, StreamError> {
        self.recv.read().await
    }

    /// See [`SendStream::write`].
    ///
    /// # Errors
    ///
    /// See [`SendStream::write`].
    pub async fn write(&self, data: Bytes) -> Result<(), StreamError> {
        self.send.write(data).await
    }

    /// See [`SendStream::finish`].
    ///
    /// # Errors
    ///
    /// See [`SendStream::finish`].
    pub async fn finish(&self) -> Result<(), StreamError> {
        self.send.finish().await
    }
}

/// The receiving direction of a stream.
pub struct RecvStream {
    core: Arc<Core>,
}

impl RecvStream {
    /// The next chunk of data; `None` once the peer finished (FIN). Reading
    /// returns the chunk's bytes to the peer's windows.
    ///
    /// # Errors
    ///
    /// [`StreamError::Reset`] if the stream was reset,
    /// [`StreamError::SessionClosed`] if the session ended first.
    pub async fn read(&mut self) -> Result<Option<Bytes>, StreamError> {
        let chunk = self.core.buffer.pop().await?;
        if let Some(chunk) = &chunk {
            self.core.shared.consumed(self.core.id, chunk.len()).await;
        }
        Ok(chunk)
    }

    /// Reads to the end, keeping at most `limit` bytes.
    ///
    /// # Errors
    ///
    /// As [`RecvStream::read`].
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, StreamError> {
        let mut all = Vec::new();
        while let Some(chunk) = self.read().await? {
            let room = limit.saturating_sub(all.len());
            all.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(all)
    }
}

impl Drop for RecvStream {
    fn drop(&mut self) {
        let dropped = self.core.buffer.abandon();
        self.core.shared.discarded(dropped);
    }
}

/// The sending direction of a stream.
pub struct SendStream {
    core: Arc<Core>,
}

impl SendStream {
    /// Sends `data`, in DATA frames of at most
    /// [`MAX_CHUNK`](super::state::MAX_CHUNK) bytes, each once the
    /// stream's and the session's send windows allow it.
    ///
    /// # Errors
    ///
    /// [`StreamError::Reset`], [`StreamError::SessionClosed`],
    /// [`StreamError::Finished`].
    pub async fn write(&self, mut data: Bytes) -> Result<(), StreamError> {
        let id = self.core.id;
        while !data.is_empty() {
            let n = self.core.shared.acquire(id, &self.core.buffer, data.len()).await?;
            let chunk = data.split_to(n);
            self.core.shared.send(Frame::Data { stream_id: id, flags: 0, data: chunk }).await?;
        }
        Ok(())
    }

    /// Ends this direction (an empty DATA frame with FIN).
    ///
    /// # Errors
    ///
    /// [`StreamError::Finished`] if already finished; as [`SendStream::write`].
    pub async fn finish(&self) -> Result<(), StreamError> {
        self.core.shared.finish(self.core.id, &self.core.buffer).await
    }
}
