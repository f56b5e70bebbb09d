//! SPDY/3.1 (the framing Kubernetes streams over): frames, header
//! compression, and a session that multiplexes streams over one
//! connection, with SPDY/3.1 flow control.
//!
//! [`server`] (or [`client`], used by tests) splits a connection into
//! three parts:
//!
//! - a [`Session`] handle: open streams (client), close the session;
//! - [`Incoming`]: the streams the peer opens, to accept
//!   ([`Stream::reply`]) or refuse ([`Stream::reset`]);
//! - the [`Connection`] future, which does all reading and writing and must
//!   be polled for anything to happen; it ends when the peer closes, after
//!   [`Session::close`] (once the peer closed too, or after
//!   [`Config::close_linger`]), on a protocol error, or after
//!   [`Config::idle_timeout`] without any frame either way.
//!
//! No task is spawned: the caller polls the [`Connection`] next to its
//! own work. Queues are bounded: [`OUT_QUEUE`] frames to the writer,
//! [`ACCEPT_BACKLOG`] streams not yet accepted, [`RECV_BUFFER`] bytes per
//! stream; flow control is described in [`state`].

mod codec;
mod dictionary;
pub mod frame;
pub mod headers;
mod reader;
mod state;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

pub use codec::{MAX_CONTROL_PAYLOAD, MAX_DATA_PAYLOAD, ReadError, WriteError};
pub use frame::{Frame, GoAwayStatus, RstStatus, StreamId};
pub use headers::Headers;
pub use state::{INITIAL_WINDOW, MAX_CHUNK, Role};
pub use stream::{RECV_BUFFER, RecvStream, SendStream, Stream, StreamError};

use codec::{FrameReader, FrameWriter};
use reader::Reader;
use state::{Outgoing, Shared};

/// Frames queued for the writer.
pub const OUT_QUEUE: usize = 64;
/// Frames the reader may owe the peer (pings, resets, window updates).
pub const CONTROL_QUEUE: usize = 256;
/// Streams opened by the peer and not yet accepted.
pub const ACCEPT_BACKLOG: usize = 16;
/// Default [`Config::max_streams`].
pub const DEFAULT_MAX_STREAMS: usize = 1024;
/// Default [`Config::close_linger`].
pub const DEFAULT_CLOSE_LINGER: Duration = Duration::from_secs(5);

/// Errors that end a session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or decoding failed.
    #[error("reading from the peer")]
    Read(#[source] ReadError),
    /// Writing failed.
    #[error("writing to the peer")]
    Write(#[source] WriteError),
    /// No frame either way for [`Config::idle_timeout`].
    #[error("idle for {0:?}")]
    IdleTimeout(Duration),
    /// The peer sends control frames faster than it reads our answers.
    #[error("the peer does not read its control frames")]
    Overloaded,
}

/// Limits of one session.
#[derive(Debug, Clone)]
pub struct Config {
    /// End the session after this long without a frame either way.
    pub idle_timeout: Option<Duration>,
    /// Streams open at once; the peer's next ones are refused.
    pub max_streams: usize,
    /// After [`Session::close`], how long to wait for the peer to close.
    pub close_linger: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config { idle_timeout: None, max_streams: DEFAULT_MAX_STREAMS, close_linger: DEFAULT_CLOSE_LINGER }
    }
}

/// A handle to a session; clones share it.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("role", &self.shared.role).finish_non_exhaustive()
    }
}

/// Streams opened by the peer.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<Stream>,
}

impl Incoming {
    /// The next stream the peer opened; `None` once the session ended.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.rx.recv().await
    }
}

/// The server end of a session over `io` (after an HTTP upgrade).
pub fn server<T: AsyncRead + AsyncWrite>(io: T, config: Config) -> (Session, Incoming, Connection<T>) {
    new(io, Role::Server, config)
}

/// The client end of a session over `io`.
pub fn client<T: AsyncRead + AsyncWrite>(io: T, config: Config) -> (Session, Incoming, Connection<T>) {
    new(io, Role::Client, config)
}

fn new<T>(io: T, role: Role, config: Config) -> (Session, Incoming, Connection<T>) {
    let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
    let (ctrl_tx, ctrl_rx) = mpsc::channel(CONTROL_QUEUE);
    let (incoming_tx, incoming_rx) = mpsc::channel(ACCEPT_BACKLOG);
    let shared = Arc::new(Shared::new(role, config, out_tx, ctrl_tx));
    let connection = Connection { io, shared: shared.clone(), out_rx, ctrl_rx, incoming_tx };
    (Session { shared }, Incoming { rx: incoming_rx }, connection)
}

impl Session {
    /// Opens a stream (SYN_STREAM) and waits for the peer's SYN_REPLY.
    ///
    /// # Errors
    ///
    /// [`StreamError::Reset`] if the peer refused it,
    /// [`StreamError::SessionClosed`].
    pub async fn open(&self, headers: Headers) -> Result<Stream, StreamError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let buffer = Arc::new(stream::RecvBuffer::default());
        let id = {
            let mut state = self.shared.lock();
            if state.going_away || self.shared.closed.is_cancelled() {
                return Err(StreamError::SessionClosed);
            }
            let id = state.next_local;
            state.next_local += 2;
            let mut entry = self.shared.new_entry(&state, buffer.clone(), false);
            entry.reply = Some(reply_tx);
            state.streams.insert(id, entry);
            id
        };
        let syn = Frame::SynStream { stream_id: id, associated: 0, priority: 0, flags: 0, headers: headers.clone() };
        let stream = Stream::new(stream::Core { id, buffer: buffer.clone(), shared: self.shared.clone() }, headers);
        self.shared.send(syn).await?;
        match reply_rx.await {
            Ok(()) => Ok(stream),
            Err(_) => Err(buffer.reset_status().map_or(StreamError::SessionClosed, StreamError::Reset)),
        }
    }

    /// Sends a PING (tests; peers answer by echoing it).
    pub async fn ping(&self, id: u32) -> Result<(), StreamError> {
        self.shared.send(Frame::Ping { id }).await
    }

    /// Sends a raw frame (tests of the peer's behaviour).
    pub async fn send_frame(&self, frame: Frame) -> Result<(), StreamError> {
        self.shared.send(frame).await
    }

    /// Ends the session gracefully: GOAWAY, then everything queued before
    /// it is written and the write direction closed; the [`Connection`]
    /// then waits up to [`Config::close_linger`] for the peer to close.
    pub async fn close(&self) {
        let last_good = {
            let mut state = self.shared.lock();
            state.going_away = true;
            state.last_remote
        };
        let _ = self.shared.send(Frame::GoAway { last_good, status: GoAwayStatus::Ok }).await;
        self.shared.send_close().await;
    }

    /// Resolves once the session has ended.
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await;
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.shared.lock().streams.len()
    }
}

/// The reading and writing of a session; see the [module docs](self).
pub struct Connection<T> {
    io: T,
    shared: Arc<Shared>,
    out_rx: mpsc::Receiver<Outgoing>,
    ctrl_rx: mpsc::Receiver<Frame>,
    incoming_tx: mpsc::Sender<Stream>,
}

impl<T: AsyncRead + AsyncWrite> Connection<T> {
    /// Runs the session to its end.
    ///
    /// # Errors
    ///
    /// See [`Error`]; a peer closing the connection is `Ok`.
    pub async fn run(self) -> Result<(), Error> {
        let Connection { io, shared, out_rx, ctrl_rx, incoming_tx } = self;
        let (read_half, write_half) = tokio::io::split(io);
        let mut reader = Reader {
            frames: FrameReader::new(BufReader::new(read_half)),
            shared: shared.clone(),
            incoming: incoming_tx,
        };
        let result = async {
            let writer = FrameWriter::new(write_half).map_err(Error::Write)?;
            let reading = reader.run();
            let writing = write(writer, out_rx, ctrl_rx, &shared);
            let mut reading = std::pin::pin!(reading);
            let mut writing = std::pin::pin!(writing);
            tokio::select! {
                result = &mut reading => result,
                result = &mut writing => {
                    result?;
                    // We closed: give the peer time to read and close too.
                    let linger = shared.config.close_linger;
                    tokio::time::timeout(linger, reading).await.unwrap_or(Ok(()))
                }
                error = idle(&shared) => Err(error),
            }
        }
        .await;
        shared.terminate();
        debug!(?result, "the session ended");
        result
    }
}

async fn write<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut out: mpsc::Receiver<Outgoing>,
    mut ctrl: mpsc::Receiver<Frame>,
    shared: &Shared,
) -> Result<(), Error> {
    loop {
        let next = tokio::select! {
            biased;
            Some(frame) = ctrl.recv() => Outgoing::Frame(frame),
            next = out.recv() => next.unwrap_or(Outgoing::Close),
        };
        match next {
            Outgoing::Frame(frame) => {
                writer.write(&frame).await.map_err(Error::Write)?;
                shared.touch();
            }
            Outgoing::Close => {
                while let Ok(frame) = ctrl.try_recv() {
                    writer.write(&frame).await.map_err(Error::Write)?;
                }
                writer.flush().await.map_err(Error::Write)?;
                return writer.shutdown().await.map_err(Error::Write);
            }
        }
        if out.is_empty() && ctrl.is_empty() {
            writer.flush().await.map_err(Error::Write)?;
        }
    }
}

async fn idle(shared: &Shared) -> Error {
    let Some(timeout) = shared.config.idle_timeout else {
        return std::future::pending().await;
    };
    loop {
        let deadline = shared.last_activity() + timeout;
        if tokio::time::Instant::now() >= deadline {
            return Error::IdleTimeout(timeout);
        }
        tokio::time::sleep_until(deadline).await;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prop_tests;
