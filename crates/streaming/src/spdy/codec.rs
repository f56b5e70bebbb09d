//! Reading frames from a byte stream ([`FrameReader`]) and writing them
//! ([`FrameWriter`]), each with its direction's zlib context.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{self, Frame, HEAD_LEN, Head};
use super::headers::{self, Deflater, Inflater};

/// Largest control frame payload accepted (header blocks are small).
pub const MAX_CONTROL_PAYLOAD: usize = 64 * 1024;
/// Largest DATA payload accepted. Go peers send one frame per write call,
/// 32 KiB from `io.Copy`.
pub const MAX_DATA_PAYLOAD: usize = 1024 * 1024;

/// Errors reading a frame; each ends the session.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The connection failed, or ended inside a frame.
    #[error("reading a frame")]
    Io(#[source] io::Error),
    /// The frame is invalid.
    #[error("invalid frame")]
    Frame(#[source] frame::Error),
    /// The frame is over [`MAX_CONTROL_PAYLOAD`] / [`MAX_DATA_PAYLOAD`].
    #[error("frame of {len} bytes over the limit")]
    TooLarge {
        /// Its announced length.
        len: usize,
    },
}

/// The receiving half of a session's byte stream.
pub(crate) struct FrameReader<R> {
    io: R,
    inflater: Inflater,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R) -> Self {
        FrameReader { io, inflater: Inflater::new() }
    }

    /// The next frame; `None` when the peer closed between frames.
    pub(crate) async fn next(&mut self) -> Result<Option<Frame>, ReadError> {
        let mut head = [0u8; HEAD_LEN];
        let first = self.io.read(&mut head).await.map_err(ReadError::Io)?;
        if first == 0 {
            return Ok(None);
        }
        self.io.read_exact(&mut head[first..]).await.map_err(ReadError::Io)?;
        let head = Head::parse(head);
        let limit = if head.control.is_some() { MAX_CONTROL_PAYLOAD } else { MAX_DATA_PAYLOAD };
        if head.len > limit {
            return Err(ReadError::TooLarge { len: head.len });
        }
        let mut payload = BytesMut::zeroed(head.len);
        self.io.read_exact(&mut payload).await.map_err(ReadError::Io)?;
        frame::decode(head, payload.freeze(), &mut self.inflater).map(Some).map_err(ReadError::Frame)
    }
}

/// Errors writing a frame; each ends the session.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The connection failed.
    #[error("writing a frame")]
    Io(#[source] io::Error),
    /// A header block could not be compressed.
    #[error("encoding a frame")]
    Encode(#[source] headers::Error),
}

/// The sending half of a session's byte stream.
pub(crate) struct FrameWriter<W> {
    io: W,
    deflater: Deflater,
    buf: BytesMut,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(crate) fn new(io: W) -> Result<Self, WriteError> {
        Ok(FrameWriter { io, deflater: Deflater::new().map_err(WriteError::Encode)?, buf: BytesMut::new() })
    }

    /// Writes one frame (not flushed).
    pub(crate) async fn write(&mut self, frame: &Frame) -> Result<(), WriteError> {
        self.buf.clear();
        frame.encode(&mut self.deflater, &mut self.buf).map_err(WriteError::Encode)?;
        self.io.write_all(&self.buf).await.map_err(WriteError::Io)
    }

    pub(crate) async fn flush(&mut self) -> Result<(), WriteError> {
        self.io.flush().await.map_err(WriteError::Io)
    }

    /// Flushes, then closes the write direction (TLS close_notify, TCP FIN).
    pub(crate) async fn shutdown(&mut self) -> Result<(), WriteError> {
        self.io.shutdown().await.map_err(WriteError::Io)
    }
}
