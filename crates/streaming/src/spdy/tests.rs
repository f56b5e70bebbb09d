//! Sessions against our own client and against a raw peer that writes
//! frames by hand (to act like Go's spdystream, or like a peer that does
//! flow control). Time is paused: "nothing more arrives" is checked by
//! letting virtual time run while every task is idle.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;

use super::codec::{FrameReader, FrameWriter};
use super::frame::{SETTINGS_INITIAL_WINDOW_SIZE, Setting};
use super::*;

/// A peer that reads and writes frames directly.
struct RawPeer {
    reader: FrameReader<ReadHalf<DuplexStream>>,
    writer: FrameWriter<WriteHalf<DuplexStream>>,
}

impl RawPeer {
    async fn send(&mut self, frame: Frame) {
        self.writer.write(&frame).await.unwrap();
        self.writer.flush().await.unwrap();
    }

    /// The next frame, or `None` if nothing arrives for a (virtual) second.
    async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(1), self.reader.next()).await.ok()?.unwrap()
    }

    /// DATA bytes received on `id` until nothing more arrives.
    async fn drain_data(&mut self, id: StreamId) -> usize {
        let mut total = 0;
        while let Some(frame) = self.next().await {
            if let Frame::Data { stream_id, data, .. } = frame {
                assert_eq!(stream_id, id);
                total += data.len();
            }
        }
        total
    }

    async fn open(&mut self, id: StreamId, headers: Headers) {
        self.send(Frame::SynStream { stream_id: id, associated: 0, priority: 0, flags: 0, headers }).await;
    }
}

/// A server session on one end of a pipe, a raw peer on the other.
fn server_and_raw(config: Config) -> (Session, Incoming, JoinHandle<Result<(), Error>>, RawPeer) {
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (session, incoming, connection) = server(ours, config);
    let task = tokio::spawn(connection.run());
    let (read, write) = tokio::io::split(theirs);
    let peer = RawPeer { reader: FrameReader::new(read), writer: FrameWriter::new(write).unwrap() };
    (session, incoming, task, peer)
}

fn headers(kind: &str) -> Headers {
    Headers::new().with("streamType", kind)
}

#[tokio::test(start_paused = true)]
async fn client_and_server_exchange_data_and_close_streams() {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (server, mut incoming, server_conn) = server(a, Config::default());
    let (client, _client_incoming, client_conn) = client(b, Config::default());
    let server_task = tokio::spawn(server_conn.run());
    let client_task = tokio::spawn(client_conn.run());

    let accept = tokio::spawn(async move {
        let mut stream = incoming.accept().await.unwrap();
        assert_eq!(stream.headers().get("streamtype"), Some("data"));
        stream.reply().await.unwrap();
        // Echo until the client finishes, then finish.
        while let Some(chunk) = stream.read().await.unwrap() {
            stream.write(chunk).await.unwrap();
        }
        stream.finish().await.unwrap();
    });
    let stream = client.open(headers("data")).await.unwrap();
    assert_eq!(stream.id(), 1);
    let payload = Bytes::from(vec![7u8; 300 * 1024]);
    let (mut recv, send) = stream.split();
    let writer = async {
        send.write(payload.clone()).await.unwrap();
        send.finish().await.unwrap();
        assert_eq!(send.finish().await, Err(StreamError::Finished));
    };
    let (echoed, ()) = tokio::join!(recv.read_to_end(usize::MAX), writer);
    assert_eq!(echoed.unwrap(), payload);
    accept.await.unwrap();
    drop(recv);
    assert_eq!(server.open_streams(), 0);
    assert_eq!(client.open_streams(), 0);

    client.close().await;
    client_task.await.unwrap().unwrap();
    server_task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn sends_no_more_than_the_windows_of_a_peer_that_does_flow_control() {
    let (_session, mut incoming, _task, mut peer) = server_and_raw(Config::default());
    let setting = Setting { flags: 0, id: SETTINGS_INITIAL_WINDOW_SIZE, value: INITIAL_WINDOW };
    peer.send(Frame::Settings { flags: 0, entries: vec![setting] }).await;
    peer.open(1, headers("stdout")).await;
    let stream = incoming.accept().await.unwrap();
    stream.reply().await.unwrap();
    let writer = tokio::spawn(async move {
        stream.write(Bytes::from(vec![1u8; 200 * 1024])).await.unwrap();
        stream.finish().await.unwrap();
        stream
    });
    assert!(matches!(peer.next().await, Some(Frame::SynReply { stream_id: 1, .. })));
    // Exactly one window, then nothing until the peer grants more.
    assert_eq!(peer.drain_data(1).await, 64 * 1024);
    peer.send(Frame::WindowUpdate { stream_id: 1, delta: 100 * 1024 }).await;
    assert_eq!(peer.drain_data(1).await, 0, "the session window is still empty");
    peer.send(Frame::WindowUpdate { stream_id: 0, delta: 10 * 1024 }).await;
    assert_eq!(peer.drain_data(1).await, 10 * 1024);
    peer.send(Frame::WindowUpdate { stream_id: 0, delta: 1024 * 1024 }).await;
    assert_eq!(peer.drain_data(1).await, 90 * 1024, "the stream window is the limit now");
    peer.send(Frame::WindowUpdate { stream_id: 1, delta: 1024 * 1024 }).await;
    assert_eq!(peer.drain_data(1).await, 36 * 1024);
    writer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_peer_without_flow_control_gets_everything() {
    // Go's spdystream never sends WINDOW_UPDATE.
    let (_session, mut incoming, _task, mut peer) = server_and_raw(Config::default());
    peer.open(1, headers("stdout")).await;
    let stream = incoming.accept().await.unwrap();
    stream.reply().await.unwrap();
    stream.write(Bytes::from(vec![1u8; 1024 * 1024])).await.unwrap();
    assert!(matches!(peer.next().await, Some(Frame::SynReply { .. })));
    assert_eq!(peer.drain_data(1).await, 1024 * 1024);
}

#[tokio::test(start_paused = true)]
async fn reading_gives_the_window_back() {
    let (_session, mut incoming, _task, mut peer) = server_and_raw(Config::default());
    peer.open(1, headers("stdin")).await;
    let mut stream = incoming.accept().await.unwrap();
    for _ in 0..4 {
        peer.send(Frame::Data { stream_id: 1, flags: 0, data: Bytes::from(vec![0u8; 16 * 1024]) }).await;
    }
    let mut read = 0;
    while read < 64 * 1024 {
        read += stream.read().await.unwrap().unwrap().len();
    }
    let mut granted = (0, 0);
    while let Some(frame) = peer.next().await {
        match frame {
            Frame::WindowUpdate { stream_id: 0, delta } => granted.0 += delta,
            Frame::WindowUpdate { stream_id: 1, delta } => granted.1 += delta,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(granted, (64 * 1024, 64 * 1024));
}

#[tokio::test(start_paused = true)]
async fn an_unread_stream_holds_the_peer_back() {
    let (_session, mut incoming, _task, mut peer) = server_and_raw(Config::default());
    peer.open(1, headers("stdin")).await;
    let _stream = incoming.accept().await.unwrap();
    // A peer ignoring windows: the buffer (64 KiB) plus the pipe fill up,
    // then its writes wait.
    let chunk = Bytes::from(vec![0u8; 32 * 1024]);
    let mut sent = 0;
    let flood = async {
        loop {
            peer.send(Frame::Data { stream_id: 1, flags: 0, data: chunk.clone() }).await;
            sent += chunk.len();
        }
    };
    assert!(tokio::time::timeout(Duration::from_secs(5), flood).await.is_err());
    assert!(sent < 64 * 1024 + 256 * 1024 + 2 * chunk.len(), "{sent}");
}

#[tokio::test(start_paused = true)]
async fn pings_are_echoed_and_bad_streams_refused() {
    let config = Config { max_streams: 1, ..Config::default() };
    let (_session, mut incoming, _task, mut peer) = server_and_raw(config);
    peer.send(Frame::Ping { id: 7 }).await;
    assert_eq!(peer.next().await, Some(Frame::Ping { id: 7 }));
    // Even ids are the server's.
    peer.open(2, headers("data")).await;
    assert_eq!(peer.next().await, Some(Frame::RstStream { stream_id: 2, status: RstStatus::ProtocolError }));
    peer.open(3, headers("data")).await;
    let _kept = incoming.accept().await.unwrap();
    peer.open(5, headers("data")).await;
    assert_eq!(peer.next().await, Some(Frame::RstStream { stream_id: 5, status: RstStatus::RefusedStream }));
    // Ids must grow.
    peer.open(3, headers("data")).await;
    assert_eq!(peer.next().await, Some(Frame::RstStream { stream_id: 3, status: RstStatus::ProtocolError }));
}

#[tokio::test(start_paused = true)]
async fn resets_reach_both_directions() {
    let (_session, mut incoming, _task, mut peer) = server_and_raw(Config::default());
    peer.open(1, headers("data")).await;
    let mut stream = incoming.accept().await.unwrap();
    peer.send(Frame::RstStream { stream_id: 1, status: RstStatus::Cancel }).await;
    assert_eq!(stream.read().await, Err(StreamError::Reset(RstStatus::Cancel)));
    assert_eq!(stream.write(Bytes::from_static(b"x")).await, Err(StreamError::Reset(RstStatus::Cancel)));

    // Dropping an unfinished stream resets it.
    peer.open(3, headers("data")).await;
    drop(incoming.accept().await.unwrap());
    assert_eq!(peer.next().await, Some(Frame::RstStream { stream_id: 3, status: RstStatus::Cancel }));
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_ends() {
    let config = Config { idle_timeout: Some(Duration::from_secs(30)), ..Config::default() };
    let (_session, _incoming, task, mut peer) = server_and_raw(config);
    let started = tokio::time::Instant::now();
    peer.send(Frame::Ping { id: 1 }).await;
    assert!(matches!(task.await.unwrap(), Err(Error::IdleTimeout(_))));
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn close_sends_goaway_then_ends_the_connection() {
    let (session, mut incoming, task, mut peer) = server_and_raw(Config::default());
    peer.open(1, headers("data")).await;
    let _stream = incoming.accept().await.unwrap();
    session.close().await;
    assert_eq!(peer.next().await, Some(Frame::GoAway { last_good: 1, status: GoAwayStatus::Ok }));
    assert!(peer.reader.next().await.unwrap().is_none(), "then EOF");
    drop(peer);
    task.await.unwrap().unwrap();
    session.closed().await;
}

#[tokio::test(start_paused = true)]
async fn decodes_a_syn_stream_written_by_go_spdystream() {
    // kubectl's port-forward data stream, as moby/spdystream v0.5.1 writes it.
    let wire = hex::decode(concat!(
        "800300010000003b0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc452a4a1221a572113803",
        "5818581830303070164162311394ba190d00000000ffff"
    ))
    .unwrap();
    let (ours, theirs) = tokio::io::duplex(4096);
    let (_session, mut incoming, connection) = server(ours, Config::default());
    let _task = tokio::spawn(connection.run());
    let (_read, mut write) = tokio::io::split(theirs);
    tokio::io::AsyncWriteExt::write_all(&mut write, &wire).await.unwrap();
    let stream = incoming.accept().await.unwrap();
    assert_eq!(stream.id(), 1);
    assert_eq!(stream.headers().get("streamtype"), Some("data"));
    assert_eq!(stream.headers().get("port"), Some("8080"));
    assert_eq!(stream.headers().get("requestid"), Some("0"));
}

#[tokio::test(start_paused = true)]
async fn decodes_kubectl_streams_captured_through_the_apiserver() {
    // The first two SYN_STREAMs of `kubectl port-forward` (v1.36.3, over
    // WebSockets, tunnelled by the API server), as they reached the node:
    // the second block relies on the zlib window the first one built.
    let wire = hex::decode(concat!(
        "800300010000003e",
        "0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c60616061c0c0c0c0",
        "590489c64c50f2663400000000ffff",
        "8003000100000018",
        "00000003000000000000c2aa19540e2512d60b000000ffff",
    ))
    .unwrap();
    let (ours, theirs) = tokio::io::duplex(4096);
    let (_session, mut incoming, connection) = server(ours, Config::default());
    let _task = tokio::spawn(connection.run());
    let (_read, mut write) = tokio::io::split(theirs);
    tokio::io::AsyncWriteExt::write_all(&mut write, &wire).await.unwrap();
    let expect = |kind| Headers::new().with("streamtype", kind).with("port", "8080").with("requestid", "0");
    let first = incoming.accept().await.unwrap();
    assert_eq!((first.id(), first.headers()), (1, &expect("error")));
    let second = incoming.accept().await.unwrap();
    assert_eq!((second.id(), second.headers()), (3, &expect("data")));
}
