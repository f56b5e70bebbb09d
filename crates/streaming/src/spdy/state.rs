//! [`Shared`]: a session's state behind one lock (open streams, windows,
//! ids), the queues to its writer, and SPDY/3.1 flow control.
//!
//! # Flow control
//!
//! Every stream starts with a 64 KiB window in each direction, and so does
//! the session (SPDY/3.1). Receiving: the window we announced is given
//! back with WINDOW_UPDATE as the application reads, per stream and for
//! the session, once half of it is consumed. Sending: a DATA frame waits
//! until both the stream's and the session's send windows are positive.
//!
//! Go's spdystream, which every Kubernetes client and the API server use,
//! implements no flow control: it never sends WINDOW_UPDATE and ignores
//! ours. Waiting for its windows would stall every stream after 64 KiB,
//! so send windows are enforced only once the peer shows it does flow
//! control (a WINDOW_UPDATE, or SETTINGS with an initial window); until
//! then they are only counted and TCP pushes back instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Config;
use super::frame::{Frame, RstStatus, SETTINGS_INITIAL_WINDOW_SIZE, Setting, StreamId};
use super::stream::{End, RecvBuffer, StreamError};

/// The initial window of every stream and of the session, both ways.
pub const INITIAL_WINDOW: u32 = 64 * 1024;
/// Largest DATA frame sent.
pub const MAX_CHUNK: usize = 32 * 1024;
/// Consumed bytes announced in one WINDOW_UPDATE (half the window).
const UPDATE_THRESHOLD: u32 = INITIAL_WINDOW / 2;
/// Largest window SPDY allows.
const MAX_WINDOW: i64 = 0x7fff_ffff;

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens odd streams, sends odd pings.
    Client,
    /// Opens even streams, sends even pings.
    Server,
}

/// A frame or the end of the writer's work.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Frame(Frame),
    /// Send nothing more: flush and close the write direction.
    Close,
}

pub(crate) struct Entry {
    pub(crate) buffer: Arc<RecvBuffer>,
    send_window: i64,
    recv_pending: u32,
    pub(crate) local_fin: bool,
    pub(crate) remote_fin: bool,
    /// The local side opened it and waits for SYN_REPLY.
    pub(crate) reply: Option<oneshot::Sender<()>>,
}

pub(crate) struct State {
    pub(crate) streams: HashMap<StreamId, Entry>,
    pub(crate) next_local: StreamId,
    pub(crate) last_remote: StreamId,
    session_send_window: i64,
    initial_send_window: i64,
    session_recv_pending: u32,
    peer_flow_control: bool,
    pub(crate) going_away: bool,
}

/// What the session's handles, streams, reader and writer share.
pub(crate) struct Shared {
    pub(crate) role: Role,
    pub(crate) config: Config,
    state: Mutex<State>,
    windows: watch::Sender<u64>,
    out: mpsc::Sender<Outgoing>,
    /// Frames the reader answers with; never awaited, so reading never
    /// waits on writing.
    ctrl: mpsc::Sender<Frame>,
    pub(crate) closed: CancellationToken,
    activity: Mutex<Instant>,
}

impl Shared {
    pub(crate) fn new(role: Role, config: Config, out: mpsc::Sender<Outgoing>, ctrl: mpsc::Sender<Frame>) -> Shared {
        let state = State {
            streams: HashMap::new(),
            next_local: if role == Role::Client { 1 } else { 2 },
            last_remote: 0,
            session_send_window: i64::from(INITIAL_WINDOW),
            initial_send_window: i64::from(INITIAL_WINDOW),
            session_recv_pending: 0,
            peer_flow_control: false,
            going_away: false,
        };
        Shared {
            role,
            config,
            state: Mutex::new(state),
            windows: watch::Sender::new(0),
            out,
            ctrl,
            closed: CancellationToken::new(),
            activity: Mutex::new(Instant::now()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn new_entry(&self, state: &State, buffer: Arc<RecvBuffer>, remote_fin: bool) -> Entry {
        Entry {
            buffer,
            send_window: state.initial_send_window,
            recv_pending: 0,
            local_fin: false,
            remote_fin,
            reply: None,
        }
    }

    /// Records traffic, for the idle timeout.
    pub(crate) fn touch(&self) {
        *self.activity.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
    }

    pub(crate) fn last_activity(&self) -> Instant {
        *self.activity.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a frame for the writer, waiting for room.
    pub(crate) async fn send(&self, frame: Frame) -> Result<(), StreamError> {
        if self.closed.is_cancelled() {
            return Err(StreamError::SessionClosed);
        }
        self.out.send(Outgoing::Frame(frame)).await.map_err(|_| StreamError::SessionClosed)
    }

    pub(crate) async fn send_close(&self) {
        let _ = self.out.send(Outgoing::Close).await;
    }

    /// Queues a frame the reader owes the peer; `false` if the queue is
    /// full (the peer sends faster than it reads: the session ends).
    pub(crate) fn control(&self, frame: Frame) -> bool {
        match self.ctrl.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
        }
    }

    /// Waits until `want` bytes (at most [`MAX_CHUNK`], at least 1) may be
    /// sent on `id`, and takes them from the windows.
    pub(crate) async fn acquire(&self, id: StreamId, buffer: &RecvBuffer, want: usize) -> Result<usize, StreamError> {
        let mut changed = self.windows.subscribe();
        loop {
            changed.borrow_and_update();
            {
                let mut state = self.lock();
                let enforce = state.peer_flow_control;
                let session = state.session_send_window;
                let Some(entry) = state.streams.get_mut(&id) else {
                    return Err(self.gone(buffer));
                };
                if entry.local_fin {
                    return Err(StreamError::Finished);
                }
                let allowed = if enforce { entry.send_window.min(session) } else { i64::MAX };
                if allowed > 0 {
                    let n = want.min(MAX_CHUNK).min(usize::try_from(allowed).unwrap_or(MAX_CHUNK)).max(1);
                    let taken = i64::try_from(n).unwrap_or(MAX_WINDOW);
                    entry.send_window -= taken;
                    state.session_send_window -= taken;
                    return Ok(n);
                }
            }
            tokio::select! {
                result = changed.changed() => if result.is_err() { return Err(StreamError::SessionClosed) },
                () = self.closed.cancelled() => return Err(StreamError::SessionClosed),
            }
        }
    }

    fn gone(&self, buffer: &RecvBuffer) -> StreamError {
        match buffer.reset_status() {
            Some(status) => StreamError::Reset(status),
            None if self.closed.is_cancelled() => StreamError::SessionClosed,
            None => StreamError::Finished,
        }
    }

    /// Sends FIN on `id`.
    pub(crate) async fn finish(&self, id: StreamId, buffer: &RecvBuffer) -> Result<(), StreamError> {
        {
            let mut state = self.lock();
            let Some(entry) = state.streams.get_mut(&id) else {
                return Err(self.gone(buffer));
            };
            if entry.local_fin {
                return Err(StreamError::Finished);
            }
            entry.local_fin = true;
            if entry.remote_fin {
                state.streams.remove(&id);
            }
        }
        self.send(Frame::Data { stream_id: id, flags: super::frame::FLAG_FIN, data: Default::default() }).await
    }

    /// The peer finished `id`.
    pub(crate) fn remote_finished(&self, id: StreamId) {
        let mut state = self.lock();
        if let Some(entry) = state.streams.get_mut(&id) {
            entry.remote_fin = true;
            entry.buffer.end(End::Fin);
            if entry.local_fin {
                state.streams.remove(&id);
            }
        }
    }

    /// Resets `id` from this side.
    pub(crate) async fn reset(&self, id: StreamId, status: RstStatus) {
        let removed = self.lock().streams.remove(&id);
        if let Some(entry) = removed {
            entry.buffer.end(End::Reset(status));
            self.windows.send_modify(|v| *v += 1);
            let _ = self.send(Frame::RstStream { stream_id: id, status }).await;
        }
    }

    /// The peer reset `id`.
    pub(crate) fn remote_reset(&self, id: StreamId, status: RstStatus) {
        if let Some(entry) = self.lock().streams.remove(&id) {
            entry.buffer.end(End::Reset(status));
        }
        self.windows.send_modify(|v| *v += 1);
    }

    /// Both halves of `id` were dropped: reset it unless finished.
    pub(crate) fn abandon(&self, id: StreamId) {
        let mut state = self.lock();
        let Some(entry) = state.streams.get_mut(&id) else { return };
        if entry.local_fin {
            // Finished: wait for the peer's FIN (its data is discarded).
            return;
        }
        state.streams.remove(&id);
        drop(state);
        let rst = Frame::RstStream { stream_id: id, status: RstStatus::Cancel };
        if let Err(mpsc::error::TrySendError::Full(Outgoing::Frame(rst))) = self.out.try_send(Outgoing::Frame(rst)) {
            self.control(rst);
        }
    }

    /// `n` bytes of `id` were read: returns them to the peer's windows.
    pub(crate) async fn consumed(&self, id: StreamId, n: usize) {
        for frame in self.updates(Some(id), n) {
            let _ = self.send(frame).await;
        }
    }

    /// `n` received bytes were dropped unread: returns them to the
    /// session window (from the reader or a destructor: never waits).
    pub(crate) fn discarded(&self, n: usize) {
        for frame in self.updates(None, n) {
            self.control(frame);
        }
    }

    fn updates(&self, id: Option<StreamId>, n: usize) -> Vec<Frame> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let mut frames = Vec::new();
        let mut state = self.lock();
        state.session_recv_pending = state.session_recv_pending.saturating_add(n);
        if state.session_recv_pending >= UPDATE_THRESHOLD {
            frames.push(Frame::WindowUpdate { stream_id: 0, delta: std::mem::take(&mut state.session_recv_pending) });
        }
        if let Some((stream_id, entry)) = id.and_then(|id| Some(id).zip(state.streams.get_mut(&id))) {
            entry.recv_pending = entry.recv_pending.saturating_add(n);
            if entry.recv_pending >= UPDATE_THRESHOLD && !entry.remote_fin {
                frames.push(Frame::WindowUpdate { stream_id, delta: std::mem::take(&mut entry.recv_pending) });
            }
        }
        frames
    }

    /// WINDOW_UPDATE from the peer.
    pub(crate) fn window_update(&self, id: StreamId, delta: u32) {
        let mut state = self.lock();
        if !state.peer_flow_control {
            debug!("the peer does flow control: enforcing its windows");
        }
        state.peer_flow_control = true;
        let delta = i64::from(delta);
        if id == 0 {
            state.session_send_window = (state.session_send_window + delta).min(MAX_WINDOW);
        } else if let Some(entry) = state.streams.get_mut(&id) {
            entry.send_window = (entry.send_window + delta).min(MAX_WINDOW);
        }
        drop(state);
        self.windows.send_modify(|v| *v += 1);
    }

    /// SETTINGS from the peer: only the initial window matters here.
    pub(crate) fn settings(&self, entries: &[Setting]) {
        let Some(window) = entries.iter().rev().find(|e| e.id == SETTINGS_INITIAL_WINDOW_SIZE) else { return };
        let mut state = self.lock();
        let window = i64::from(window.value).min(MAX_WINDOW);
        let delta = window - state.initial_send_window;
        state.initial_send_window = window;
        state.peer_flow_control = true;
        for entry in state.streams.values_mut() {
            entry.send_window += delta;
        }
        drop(state);
        self.windows.send_modify(|v| *v += 1);
    }

    /// The session is over: every stream ends, every waiter wakes.
    pub(crate) fn terminate(&self) {
        self.closed.cancel();
        let entries: Vec<Entry> = self.lock().streams.drain().map(|(_, entry)| entry).collect();
        for entry in entries {
            entry.buffer.end(End::Closed);
        }
        self.windows.send_modify(|v| *v += 1);
    }
}
