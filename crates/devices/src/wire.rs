//! A minimal HTTP/2 server for unary gRPC calls, used for `kubelet.sock`.
//!
//! Why not tonic there: its HTTP/2 layer (`h2`) resets every stream whose
//! `:authority` is not a valid URI authority (RST_STREAM PROTOCOL_ERROR),
//! and grpc-go clients that dial a socket path (`grpc.Dial(path)` with a
//! unix dialer — most device plugins, squat's generic device plugin among
//! them) send that path as `:authority` (hyperium/h2#487, never merged).
//! The kubelet's Go server takes it, so this one must too.
//!
//! It decodes no request header (no HPACK decoder, no dynamic table): every
//! stream is a call of the one method the caller serves (`Registration`
//! has only `Register`). Responses are HPACK literals without indexing,
//! which need no table either. Only what a unary call needs is spoken:
//! SETTINGS and PING are answered, received DATA is credited back with
//! WINDOW_UPDATE, and GOAWAY or end of input ends the connection.

use std::collections::HashMap;
use std::future::Future;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The client connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest frame payload taken (the HTTP/2 default `SETTINGS_MAX_FRAME_SIZE`).
const MAX_FRAME: usize = 16_384;
/// Largest request message (a gRPC frame, prefix included).
const MAX_MESSAGE: usize = 64 * 1024;
/// Streams open at once on one connection; more are refused.
const MAX_STREAMS: usize = 16;
/// Longest `grpc-message` sent, in bytes before percent-encoding.
const MAX_STATUS_MESSAGE: usize = 2048;

// Frame types and flags (RFC 9113 section 6).
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
/// RST_STREAM / GOAWAY codes.
const REFUSED_STREAM: u32 = 0x7;
const FRAME_SIZE_ERROR: u32 = 0x6;

/// gRPC status codes used here.
pub(crate) const UNKNOWN: u8 = 2;
pub(crate) const INTERNAL: u8 = 13;
const UNIMPLEMENTED: u8 = 12;
const RESOURCE_EXHAUSTED: u8 = 8;

/// Why a connection ended badly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// Reading or writing failed.
    #[error("connection I/O")]
    Io(#[from] std::io::Error),
    /// The client did not speak HTTP/2.
    #[error("not an HTTP/2 connection (bad preface)")]
    Preface,
    /// A frame was larger than [`MAX_FRAME`].
    #[error("a frame of {0} bytes, more than {MAX_FRAME}")]
    FrameTooLarge(usize),
}

/// A failed call: its gRPC status code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

/// Serves unary calls on `io` until the client goes away: `call` gets each
/// request message (protobuf bytes) and returns the response message.
pub(crate) async fn serve<S, F, Fut>(mut io: S, mut call: F) -> Result<(), WireError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, Failure>>,
{
    let mut preface = [0u8; PREFACE.len()];
    io.read_exact(&mut preface).await?;
    if &preface != PREFACE {
        return Err(WireError::Preface);
    }
    io.write_all(&frame(SETTINGS, 0, 0, &[])).await?;
    io.flush().await?;
    let mut bodies: HashMap<u32, Vec<u8>> = HashMap::new();
    loop {
        let mut head = [0u8; 9];
        match io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > MAX_FRAME {
            let mut goaway = 0u32.to_be_bytes().to_vec();
            goaway.extend(FRAME_SIZE_ERROR.to_be_bytes());
            io.write_all(&frame(GOAWAY, 0, 0, &goaway)).await?;
            return Err(WireError::FrameTooLarge(len));
        }
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await?;
        let mut out = Vec::new();
        let mut done = None;
        match kind {
            SETTINGS if flags & ACK == 0 => out.extend(frame(SETTINGS, ACK, 0, &[])),
            PING if flags & ACK == 0 => out.extend(frame(PING, ACK, 0, &payload)),
            GOAWAY => return Ok(()),
            RST_STREAM => {
                bodies.remove(&stream);
            }
            HEADERS if stream != 0 => {
                if !bodies.contains_key(&stream) {
                    if bodies.len() >= MAX_STREAMS {
                        out.extend(frame(RST_STREAM, 0, stream, &REFUSED_STREAM.to_be_bytes()));
                    } else {
                        bodies.insert(stream, Vec::new());
                    }
                }
                if flags & END_STREAM != 0 {
                    done = bodies.remove(&stream).map(|b| (stream, b));
                }
            }
            DATA if stream != 0 => {
                if len > 0 {
                    // Credit it back at once: messages are small and bounded.
                    out.extend(frame(WINDOW_UPDATE, 0, 0, &(len as u32).to_be_bytes()));
                }
                let data = unpad(&payload, flags);
                if let Some(body) = bodies.get_mut(&stream) {
                    body.extend_from_slice(data);
                    if body.len() > MAX_MESSAGE {
                        bodies.remove(&stream);
                        let failure = Failure { code: RESOURCE_EXHAUSTED, message: "request too large".into() };
                        out.extend(response(stream, Err(failure)));
                    } else if flags & END_STREAM != 0 {
                        done = bodies.remove(&stream).map(|b| (stream, b));
                    } else if len > 0 {
                        out.extend(frame(WINDOW_UPDATE, 0, stream, &(len as u32).to_be_bytes()));
                    }
                }
            }
            // WINDOW_UPDATE, PRIORITY, CONTINUATION (headers are not read),
            // acknowledgements and unknown types: nothing to do.
            _ => {}
        }
        if !out.is_empty() {
            io.write_all(&out).await?;
            io.flush().await?;
        }
        if let Some((stream, body)) = done {
            let result = match message(&body) {
                Ok(request) => call(request).await,
                Err(failure) => Err(failure),
            };
            io.write_all(&response(stream, result)).await?;
            io.flush().await?;
        }
    }
}

/// The request message of a gRPC body: one uncompressed length-prefixed message.
fn message(body: &[u8]) -> Result<Vec<u8>, Failure> {
    let internal = |message: &str| Failure { code: INTERNAL, message: message.into() };
    let Some((prefix, rest)) = body.split_first_chunk::<5>() else {
        return Err(internal("the request has no message"));
    };
    if prefix[0] != 0 {
        return Err(Failure { code: UNIMPLEMENTED, message: "compressed requests are not supported".into() });
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if rest.len() != len {
        return Err(internal("the request is not exactly one message"));
    }
    Ok(rest.to_vec())
}

/// The frames answering `stream`: headers, the message and `grpc-status: 0`
/// trailers; or, for a failure, one trailers-only HEADERS frame.
fn response(stream: u32, result: Result<Vec<u8>, Failure>) -> Vec<u8> {
    let mut start = vec![0x88]; // `:status: 200`, static table index 8
    literal(&mut start, "content-type", b"application/grpc");
    let mut out = Vec::new();
    match result {
        Ok(msg) => {
            out.extend(frame(HEADERS, END_HEADERS, stream, &start));
            let mut data = vec![0];
            data.extend((msg.len() as u32).to_be_bytes());
            data.extend(msg);
            out.extend(frame(DATA, 0, stream, &data));
            let mut trailers = Vec::new();
            literal(&mut trailers, "grpc-status", b"0");
            out.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &trailers));
        }
        Err(f) => {
            literal(&mut start, "grpc-status", f.code.to_string().as_bytes());
            literal(&mut start, "grpc-message", &percent_encode(&f.message));
            out.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &start));
        }
    }
    out
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend(&len.to_be_bytes()[1..]);
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

/// A DATA payload without its padding (none left if the padding is malformed).
fn unpad(payload: &[u8], flags: u8) -> &[u8] {
    if flags & PADDED == 0 {
        return payload;
    }
    let Some((&pad, rest)) = payload.split_first() else { return &[] };
    rest.get(..rest.len().saturating_sub(usize::from(pad))).unwrap_or(&[])
}

/// An HPACK "literal header field without indexing — new name", no Huffman.
fn literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    integer(out, name.len());
    out.extend(name.as_bytes());
    integer(out, value.len());
    out.extend(value);
}

/// An HPACK integer with a 7-bit prefix (a string length, Huffman bit 0).
fn integer(out: &mut Vec<u8>, mut v: usize) {
    const MAX: usize = 127;
    if v < MAX {
        out.push(v as u8);
        return;
    }
    out.push(MAX as u8);
    v -= MAX;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// `grpc-message` encoding: printable ASCII but `%` as is, the rest `%XX`.
fn percent_encode(message: &str) -> Vec<u8> {
    let mut end = message.len().min(MAX_STATUS_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::new();
    for &b in &message.as_bytes()[..end] {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_messages_encode_as_hpack_and_grpc_want() {
        let mut out = Vec::new();
        integer(&mut out, 10);
        integer(&mut out, 127);
        integer(&mut out, 1337);
        // RFC 7541 C.1.2 with a 7-bit prefix: 1337 = 127 + 1210 = 127 + 0x3A + 9*128.
        assert_eq!(out, [10, 127, 0, 127, 0xBA, 0x09]);
        assert_eq!(percent_encode("a 100% \u{e9}\n"), b"a 100%25 %C3%A9%0A");
        assert_eq!(message(&[0, 0, 0, 0, 2, 7, 8]), Ok(vec![7, 8]));
        assert_eq!(message(&[0, 0, 0, 0, 3, 7, 8]).unwrap_err().code, INTERNAL);
        assert_eq!(message(&[1, 0, 0, 0, 0]).unwrap_err().code, UNIMPLEMENTED);
        assert_eq!(unpad(&[2, 9, 9, 0, 0], PADDED), [9, 9]);
        assert_eq!(unpad(&[9, 1], PADDED), [] as [u8; 0]);
    }

    /// The frames the server sends until `stream` ends.
    async fn read_until_end(io: &mut tokio::io::DuplexStream, stream: u32) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut frames = Vec::new();
        loop {
            let mut head = [0u8; 9];
            io.read_exact(&mut head).await.unwrap();
            let len = usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0; len];
            io.read_exact(&mut payload).await.unwrap();
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
            let end = head[3] == HEADERS && head[4] & END_STREAM != 0 && id == stream;
            frames.push((head[3], head[4], id, payload));
            if end {
                return frames;
            }
        }
    }

    #[tokio::test]
    async fn a_grpc_go_call_with_a_socket_path_as_authority_is_answered() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let served = tokio::spawn(serve(server, |request: Vec<u8>| async move {
            if request == b"fail" {
                Err(Failure { code: UNKNOWN, message: "no: 100%".into() })
            } else {
                Ok(request.into_iter().rev().collect())
            }
        }));
        client.write_all(PREFACE).await.unwrap();
        client.write_all(&frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff])).await.unwrap();
        // What grpc-go sends when it dials a path: the path as `:authority`
        // (here as HPACK literals; the server reads no header anyway).
        let mut headers = vec![0x83, 0x86]; // :method POST, :scheme http
        literal(&mut headers, ":authority", b"/var/lib/kubelet/device-plugins/kubelet.sock");
        literal(&mut headers, ":path", b"/v1beta1.Registration/Register");
        literal(&mut headers, "content-type", b"application/grpc");
        for (stream, body) in [(1u32, &b"abc"[..]), (3, b"fail")] {
            client.write_all(&frame(HEADERS, END_HEADERS, stream, &headers)).await.unwrap();
            let mut data = vec![0, 0, 0, 0, body.len() as u8];
            data.extend(body);
            // Sent padded, in two frames.
            let mut padded = vec![2];
            padded.extend(&data[..3]);
            padded.extend([0, 0]);
            client.write_all(&frame(DATA, PADDED, stream, &padded)).await.unwrap();
            client.write_all(&frame(DATA, END_STREAM, stream, &data[3..])).await.unwrap();
        }
        client.write_all(&frame(PING, 0, 0, b"12345678")).await.unwrap();

        let first = read_until_end(&mut client, 1).await;
        assert_eq!((first[0].0, first[0].1), (SETTINGS, 0), "the server's preface comes first");
        assert!(first.iter().any(|f| f.0 == SETTINGS && f.1 == ACK), "{first:?}");
        let data: Vec<_> = first.iter().filter(|f| f.0 == DATA).collect();
        assert_eq!(data, [&(DATA, 0, 1, vec![0, 0, 0, 0, 3, b'c', b'b', b'a'])]);
        let trailers = &first.last().unwrap().3;
        assert!(trailers.windows(13).any(|w| w == b"grpc-status\x01\x30"), "{trailers:?}");

        let second = read_until_end(&mut client, 3).await;
        let only = second.iter().filter(|f| f.2 == 3 && f.0 != WINDOW_UPDATE).collect::<Vec<_>>();
        assert_eq!(only.len(), 1, "a failure is one trailers-only HEADERS frame: {second:?}");
        assert!(only[0].3.windows(13).any(|w| w == b"grpc-status\x01\x32"));
        assert!(only[0].3.windows(10).any(|w| w == b"no: 100%25"));
        let pong = read_until_end_of_ping(&mut client).await;
        assert_eq!(pong, b"12345678");

        drop(client);
        served.await.unwrap().unwrap();
    }

    async fn read_until_end_of_ping(io: &mut tokio::io::DuplexStream) -> Vec<u8> {
        loop {
            let mut head = [0u8; 9];
            io.read_exact(&mut head).await.unwrap();
            let mut payload = vec![0; usize::from(head[2])];
            io.read_exact(&mut payload).await.unwrap();
            if head[3] == PING && head[4] == ACK {
                return payload;
            }
        }
    }
}
