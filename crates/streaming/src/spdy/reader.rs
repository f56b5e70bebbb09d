//! The session's reader: decodes the peer's frames and applies them to
//! the [`Shared`] state, accepting streams into the session's backlog.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tracing::{debug, trace};

use super::codec::FrameReader;
use super::frame::{FLAG_FIN, FLAG_UNIDIRECTIONAL, Frame, RstStatus, StreamId};
use super::headers::Headers;
use super::state::{Role, Shared};
use super::stream::{Core, End, Pushed, RecvBuffer, Stream};
use super::{Error, ReadError};

pub(crate) struct Reader<R> {
    pub(crate) frames: FrameReader<R>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) incoming: mpsc::Sender<Stream>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads until the peer closes (`Ok`) or breaks the protocol.
    pub(crate) async fn run(&mut self) -> Result<(), Error> {
        while let Some(frame) = self.frames.next().await.map_err(read_error)? {
            self.shared.touch();
            trace!(?frame, "received");
            self.handle(frame).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), Error> {
        match frame {
            Frame::Data { stream_id, flags, data } => self.data(stream_id, flags, data).await?,
            Frame::SynStream { stream_id, flags, headers, .. } => self.open(stream_id, flags, headers).await?,
            Frame::SynReply { stream_id, flags, .. } => {
                let reply = self.shared.lock().streams.get_mut(&stream_id).and_then(|e| e.reply.take());
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
                if flags & FLAG_FIN != 0 {
                    self.shared.remote_finished(stream_id);
                }
            }
            Frame::Headers { stream_id, flags, .. } if flags & FLAG_FIN != 0 => {
                self.shared.remote_finished(stream_id);
            }
            Frame::RstStream { stream_id, status } => {
                debug!(stream.id = stream_id, ?status, "the peer reset a stream");
                self.shared.remote_reset(stream_id, status);
            }
            Frame::Settings { entries, .. } => self.shared.settings(&entries),
            Frame::WindowUpdate { stream_id, delta } => self.shared.window_update(stream_id, delta),
            Frame::Ping { id } => {
                // Our pings have our parity; echo the peer's.
                let ours = (id % 2 == 1) == (self.shared.role == Role::Client);
                if !ours {
                    self.control(Frame::Ping { id })?;
                }
            }
            Frame::GoAway { last_good, status } => {
                debug!(last_good, ?status, "the peer is going away");
                self.shared.lock().going_away = true;
            }
            Frame::Headers { .. } => {}
            Frame::Unknown { kind } => debug!(kind, "ignoring a control frame of unknown type"),
        }
        Ok(())
    }

    fn control(&self, frame: Frame) -> Result<(), Error> {
        if self.shared.control(frame) { Ok(()) } else { Err(Error::Overloaded) }
    }

    async fn data(&mut self, id: StreamId, flags: u8, data: Bytes) -> Result<(), Error> {
        let len = data.len();
        let target = {
            let state = self.shared.lock();
            state.streams.get(&id).map(|entry| entry.buffer.clone())
        };
        let Some(buffer) = target else {
            // A stream already closed or reset: spdystream ignores these too.
            trace!(stream.id = id, len, "data for a closed stream");
            self.shared.discarded(len);
            return Ok(());
        };
        if len > 0 && matches!(buffer.push(data, &self.shared.closed).await, Pushed::Discarded) {
            self.shared.discarded(len);
        }
        if flags & FLAG_FIN != 0 {
            self.shared.remote_finished(id);
        }
        Ok(())
    }

    async fn open(&mut self, id: StreamId, flags: u8, headers: Headers) -> Result<(), Error> {
        let peer_parity = if self.shared.role == Role::Server { 1 } else { 0 };
        let accepted = {
            let mut state = self.shared.lock();
            if id % 2 != peer_parity || id <= state.last_remote {
                Err(RstStatus::ProtocolError)
            } else {
                state.last_remote = id;
                if state.going_away || state.streams.len() >= self.shared.config.max_streams {
                    Err(RstStatus::RefusedStream)
                } else {
                    let buffer = Arc::new(RecvBuffer::default());
                    let mut entry = self.shared.new_entry(&state, buffer.clone(), flags & FLAG_FIN != 0);
                    entry.local_fin = flags & FLAG_UNIDIRECTIONAL != 0;
                    if entry.remote_fin {
                        buffer.end(End::Fin);
                    }
                    state.streams.insert(id, entry);
                    Ok(buffer)
                }
            }
        };
        let buffer = match accepted {
            Ok(buffer) => buffer,
            Err(status) => {
                debug!(stream.id = id, ?status, "refusing a stream");
                return self.control(Frame::RstStream { stream_id: id, status });
            }
        };
        let stream = Stream::new(Core { id, buffer, shared: self.shared.clone() }, headers);
        // A full backlog holds the reader (and so the peer); if nobody
        // accepts streams any more, dropping this one resets it.
        let _ = self.incoming.send(stream).await;
        Ok(())
    }
}

fn read_error(error: ReadError) -> Error {
    Error::Read(error)
}
