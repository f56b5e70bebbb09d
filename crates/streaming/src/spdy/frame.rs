//! SPDY/3.1 frames: [`Frame`], and their encoding to and from bytes.
//!
//! Every frame starts with 8 bytes. A control frame: the control bit, a
//! 15-bit version (3), a 16-bit type, 8 bits of flags and a 24-bit length.
//! A DATA frame: a 0 bit, the 31-bit stream id, flags and length. Header
//! blocks (SYN_STREAM, SYN_REPLY, HEADERS) are compressed with the
//! session's zlib streams ([`super::headers`]), so frames are encoded and
//! decoded in wire order by the one writer and the one reader of a session.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::headers::{self, Deflater, Headers, Inflater};

/// A stream id (31 bits; odd when the client opened the stream).
pub type StreamId = u32;

/// The protocol version in control frames.
pub const VERSION: u16 = 3;
/// The length of every frame head.
pub const HEAD_LEN: usize = 8;
/// The largest payload the 24-bit length allows.
pub const MAX_LENGTH: usize = (1 << 24) - 1;
/// FIN: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// UNIDIRECTIONAL (SYN_STREAM): the receiver may not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// SETTINGS id of the initial per-stream window.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// Errors decoding a frame. All of them end the session: the byte stream
/// or the header compression state can no longer be trusted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A control frame of another SPDY version.
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    /// A control frame shorter than its fixed fields.
    #[error("control frame type {kind} too short ({len} bytes)")]
    Short {
        /// Frame type.
        kind: u16,
        /// Payload length.
        len: usize,
    },
    /// A header block could not be decoded.
    #[error("header block of stream {stream_id}")]
    Headers {
        /// The stream.
        stream_id: StreamId,
        /// Why.
        #[source]
        source: headers::Error,
    },
    /// Stream id 0 where a stream is required.
    #[error("frame type {0} on stream 0")]
    ZeroStream(u16),
}

/// RST_STREAM status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RstStatus {
    /// 1: PROTOCOL_ERROR.
    ProtocolError,
    /// 2: INVALID_STREAM (a frame for a stream that is not open).
    InvalidStream,
    /// 3: REFUSED_STREAM (not processed; may be retried).
    RefusedStream,
    /// 5: CANCEL (no longer needed).
    Cancel,
    /// 6: INTERNAL_ERROR.
    InternalError,
    /// 7: FLOW_CONTROL_ERROR.
    FlowControlError,
    /// 8: STREAM_IN_USE (a second SYN_STREAM or SYN_REPLY).
    StreamInUse,
    /// 9: STREAM_ALREADY_CLOSED (data after FIN).
    StreamAlreadyClosed,
    /// 11: FRAME_TOO_LARGE.
    FrameTooLarge,
    /// Any other code.
    Other(u32),
}

impl RstStatus {
    /// The wire code.
    pub fn code(self) -> u32 {
        match self {
            RstStatus::ProtocolError => 1,
            RstStatus::InvalidStream => 2,
            RstStatus::RefusedStream => 3,
            RstStatus::Cancel => 5,
            RstStatus::InternalError => 6,
            RstStatus::FlowControlError => 7,
            RstStatus::StreamInUse => 8,
            RstStatus::StreamAlreadyClosed => 9,
            RstStatus::FrameTooLarge => 11,
            RstStatus::Other(code) => code,
        }
    }

    fn from_code(code: u32) -> Self {
        match code {
            1 => RstStatus::ProtocolError,
            2 => RstStatus::InvalidStream,
            3 => RstStatus::RefusedStream,
            5 => RstStatus::Cancel,
            6 => RstStatus::InternalError,
            7 => RstStatus::FlowControlError,
            8 => RstStatus::StreamInUse,
            9 => RstStatus::StreamAlreadyClosed,
            11 => RstStatus::FrameTooLarge,
            other => RstStatus::Other(other),
        }
    }
}

/// GOAWAY status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoAwayStatus {
    /// 0: a normal end.
    Ok,
    /// 1: the peer broke the protocol.
    ProtocolError,
    /// 2: an internal error.
    InternalError,
    /// Any other code.
    Other(u32),
}

impl GoAwayStatus {
    fn code(self) -> u32 {
        match self {
            GoAwayStatus::Ok => 0,
            GoAwayStatus::ProtocolError => 1,
            GoAwayStatus::InternalError => 2,
            GoAwayStatus::Other(code) => code,
        }
    }

    fn from_code(code: u32) -> Self {
        match code {
            0 => GoAwayStatus::Ok,
            1 => GoAwayStatus::ProtocolError,
            2 => GoAwayStatus::InternalError,
            other => GoAwayStatus::Other(other),
        }
    }
}

/// One SETTINGS entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// FLAG_SETTINGS_PERSIST_VALUE (1) / PERSISTED (2).
    pub flags: u8,
    /// The 24-bit id, e.g. [`SETTINGS_INITIAL_WINDOW_SIZE`].
    pub id: u32,
    /// The value.
    pub value: u32,
}

/// A frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream.
        stream_id: StreamId,
        /// The stream it belongs to (server push), usually 0.
        associated: StreamId,
        /// 0 (highest) to 7.
        priority: u8,
        /// [`FLAG_FIN`] | [`FLAG_UNIDIRECTIONAL`].
        flags: u8,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream.
        stream_id: StreamId,
        /// [`FLAG_FIN`].
        flags: u8,
        /// Reply headers.
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream {
        /// The stream.
        stream_id: StreamId,
        /// Why.
        status: RstStatus,
    },
    /// Session settings.
    Settings {
        /// FLAG_SETTINGS_CLEAR_SETTINGS (1).
        flags: u8,
        /// The entries.
        entries: Vec<Setting>,
    },
    /// A ping, answered by echoing it.
    Ping {
        /// Odd from the client, even from the server.
        id: u32,
    },
    /// The sender opens no more streams.
    GoAway {
        /// The last stream the sender accepted.
        last_good: StreamId,
        /// Why.
        status: GoAwayStatus,
    },
    /// More headers on a stream.
    Headers {
        /// The stream.
        stream_id: StreamId,
        /// [`FLAG_FIN`].
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// Grows a send window (stream 0: the session's).
    WindowUpdate {
        /// The stream, or 0.
        stream_id: StreamId,
        /// Bytes (31 bits).
        delta: u32,
    },
    /// Stream data.
    Data {
        /// The stream.
        stream_id: StreamId,
        /// [`FLAG_FIN`].
        flags: u8,
        /// The bytes.
        data: Bytes,
    },
    /// A control frame of a type this implementation ignores.
    Unknown {
        /// Its type.
        kind: u16,
    },
}

impl Frame {
    /// Appends the encoded frame to `out`, compressing header blocks with
    /// `deflater` (so frames must be encoded in wire order).
    ///
    /// # Errors
    ///
    /// Only if zlib fails.
    pub(crate) fn encode(&self, deflater: &mut Deflater, out: &mut BytesMut) -> Result<(), headers::Error> {
        let mut payload = BytesMut::new();
        let (kind, flags) = match self {
            Frame::Data { stream_id, flags, data } => {
                out.put_u32(stream_id & 0x7fff_ffff);
                put_flags_len(out, *flags, data.len());
                out.extend_from_slice(data);
                return Ok(());
            }
            Frame::SynStream { stream_id, associated, priority, flags, headers } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(associated & 0x7fff_ffff);
                payload.put_u8((priority & 0x07) << 5);
                payload.put_u8(0); // credential slot
                deflater.compress(headers, &mut payload)?;
                (SYN_STREAM, *flags)
            }
            Frame::SynReply { stream_id, flags, headers } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                deflater.compress(headers, &mut payload)?;
                (SYN_REPLY, *flags)
            }
            Frame::Headers { stream_id, flags, headers } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                deflater.compress(headers, &mut payload)?;
                (HEADERS, *flags)
            }
            Frame::RstStream { stream_id, status } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(status.code());
                (RST_STREAM, 0)
            }
            Frame::Settings { flags, entries } => {
                payload.put_u32(u32::try_from(entries.len()).unwrap_or(0));
                for entry in entries {
                    payload.put_u32(u32::from(entry.flags) << 24 | (entry.id & 0x00ff_ffff));
                    payload.put_u32(entry.value);
                }
                (SETTINGS, *flags)
            }
            Frame::Ping { id } => {
                payload.put_u32(*id);
                (PING, 0)
            }
            Frame::GoAway { last_good, status } => {
                payload.put_u32(last_good & 0x7fff_ffff);
                payload.put_u32(status.code());
                (GOAWAY, 0)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(delta & 0x7fff_ffff);
                (WINDOW_UPDATE, 0)
            }
            Frame::Unknown { kind } => (*kind, 0),
        };
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        put_flags_len(out, flags, payload.len());
        out.extend_from_slice(&payload);
        Ok(())
    }
}

fn put_flags_len(out: &mut BytesMut, flags: u8, len: usize) {
    // Callers keep payloads under MAX_LENGTH (data is chunked, header
    // blocks are small); mask rather than corrupt the flags if not.
    let len = u32::try_from(len.min(MAX_LENGTH)).unwrap_or(0);
    out.put_u32(u32::from(flags) << 24 | len);
}

/// A decoded frame head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// `Some(type)` for a control frame, with its version.
    pub(crate) control: Option<(u16, u16)>,
    /// The stream of a DATA frame.
    pub(crate) stream_id: StreamId,
    pub(crate) flags: u8,
    pub(crate) len: usize,
}

impl Head {
    pub(crate) fn parse(bytes: [u8; HEAD_LEN]) -> Head {
        let first = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let flags = bytes[4];
        let len = usize::from(bytes[5]) << 16 | usize::from(bytes[6]) << 8 | usize::from(bytes[7]);
        if first & 0x8000_0000 != 0 {
            // The masks keep both halves in 16 bits.
            let version = u16::try_from(first >> 16 & 0x7fff).unwrap_or(0);
            let kind = u16::try_from(first & 0xffff).unwrap_or(0);
            Head { control: Some((version, kind)), stream_id: 0, flags, len }
        } else {
            Head { control: None, stream_id: first, flags, len }
        }
    }
}

/// Decodes a frame from its head and whole payload, decompressing header
/// blocks with `inflater`.
pub(crate) fn decode(head: Head, mut payload: Bytes, inflater: &mut Inflater) -> Result<Frame, Error> {
    let Some((version, kind)) = head.control else {
        if head.stream_id == 0 {
            return Err(Error::ZeroStream(0));
        }
        return Ok(Frame::Data { stream_id: head.stream_id, flags: head.flags, data: payload });
    };
    if version != VERSION {
        return Err(Error::Version(version));
    }
    let need = match kind {
        SYN_STREAM => 10,
        SYN_REPLY | HEADERS | PING | SETTINGS => 4,
        RST_STREAM | GOAWAY | WINDOW_UPDATE => 8,
        _ => 0,
    };
    if payload.len() < need {
        return Err(Error::Short { kind, len: payload.len() });
    }
    let mut block = |stream_id: StreamId, payload: &Bytes| {
        inflater.decompress(payload).map_err(|source| Error::Headers { stream_id, source })
    };
    let frame = match kind {
        SYN_STREAM => {
            let stream_id = payload.get_u32() & 0x7fff_ffff;
            let associated = payload.get_u32() & 0x7fff_ffff;
            let priority = payload.get_u8() >> 5;
            payload.advance(1);
            let headers = block(stream_id, &payload)?;
            Frame::SynStream { stream_id, associated, priority, flags: head.flags, headers }
        }
        SYN_REPLY | HEADERS => {
            let stream_id = payload.get_u32() & 0x7fff_ffff;
            let headers = block(stream_id, &payload)?;
            if kind == SYN_REPLY {
                Frame::SynReply { stream_id, flags: head.flags, headers }
            } else {
                Frame::Headers { stream_id, flags: head.flags, headers }
            }
        }
        RST_STREAM => {
            let stream_id = payload.get_u32() & 0x7fff_ffff;
            Frame::RstStream { stream_id, status: RstStatus::from_code(payload.get_u32()) }
        }
        SETTINGS => {
            let count = payload.get_u32();
            let mut entries = Vec::new();
            for _ in 0..count {
                if payload.remaining() < 8 {
                    return Err(Error::Short { kind, len: head.len });
                }
                let word = payload.get_u32();
                let flags = u8::try_from(word >> 24).unwrap_or(0);
                entries.push(Setting { flags, id: word & 0x00ff_ffff, value: payload.get_u32() });
            }
            Frame::Settings { flags: head.flags, entries }
        }
        PING => Frame::Ping { id: payload.get_u32() },
        GOAWAY => {
            let last_good = payload.get_u32() & 0x7fff_ffff;
            Frame::GoAway { last_good, status: GoAwayStatus::from_code(payload.get_u32()) }
        }
        WINDOW_UPDATE => {
            let stream_id = payload.get_u32() & 0x7fff_ffff;
            Frame::WindowUpdate { stream_id, delta: payload.get_u32() & 0x7fff_ffff }
        }
        other => Frame::Unknown { kind: other },
    };
    match frame {
        Frame::SynStream { stream_id: 0, .. }
        | Frame::SynReply { stream_id: 0, .. }
        | Frame::Headers { stream_id: 0, .. }
        | Frame::RstStream { stream_id: 0, .. } => Err(Error::ZeroStream(kind)),
        frame => Ok(frame),
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
