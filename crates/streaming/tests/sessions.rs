//! Port-forward and exec sessions end to end in-process: `Streaming`
//! accepts a request, serves it over a pipe, and a SPDY client plays
//! kubectl's part (stream headers and order as client-go sends them).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use wasmlet_streaming::spdy::{self, Headers, Session, Stream};
use wasmlet_streaming::{
    Config, ExecOutcome, ExecRequest, Kind, Request, StreamError, Streaming, StreamingProvider, Target,
};

struct Fake {
    echo: SocketAddr,
    closed: SocketAddr,
}

impl StreamingProvider for Fake {
    fn lookup(&self, target: &Target<'_>) -> Result<(), StreamError> {
        match (target.pod, target.container) {
            ("web", None | Some("main")) => Ok(()),
            ("web", Some(other)) => Err(StreamError::ContainerNotFound(other.to_owned())),
            _ => Err(StreamError::PodNotFound),
        }
    }

    fn port_forward_target(&self, _: &str, _: &str, _: Option<&str>, port: u16) -> Result<SocketAddr, StreamError> {
        Ok(if port == 80 { self.echo } else { self.closed })
    }

    fn exec(&self, request: ExecRequest) -> Result<BoxFuture<'static, Result<ExecOutcome, StreamError>>, StreamError> {
        Ok(async move {
            let ExecRequest { command, stdin, stdout, stderr, .. } = request;
            let mut stdout = stdout.unwrap();
            match command[0].as_str() {
                "cat" => {
                    tokio::io::copy(&mut stdin.unwrap(), &mut stdout).await.unwrap();
                    Ok(ExecOutcome { exit_code: 0 })
                }
                "args" => {
                    stdout.write_all(command[1..].join(" ").as_bytes()).await.unwrap();
                    stderr.unwrap().write_all(b"to stderr").await.unwrap();
                    Ok(ExecOutcome { exit_code: 3 })
                }
                _ => Err(StreamError::Failed("no such command".into())),
            }
        }
        .boxed())
    }
}

async fn fake() -> Arc<Fake> {
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    Arc::new(Fake { echo: addr, closed })
}

fn upgrade(protocols: &[&'static str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("connection", HeaderValue::from_static("Upgrade"));
    headers.insert("upgrade", HeaderValue::from_static("SPDY/3.1"));
    for protocol in protocols {
        headers.append("x-stream-protocol-version", HeaderValue::from_static(protocol));
    }
    headers
}

fn request(kind: Kind, pod: &str, query: &[(&str, &str)]) -> Request {
    Request {
        kind,
        namespace: "ns".into(),
        pod: pod.into(),
        uid: None,
        container: (kind != Kind::PortForward).then(|| "main".to_owned()),
        query: query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }
}

/// Accepts `request` and connects a client session to it.
fn connect(streaming: &Streaming, request: Request, protocols: &[&'static str]) -> Session {
    let accepted = streaming.accept(request, &upgrade(protocols)).unwrap();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    accepted.serve_io(async move { Ok::<_, std::io::Error>(server_io) }, CancellationToken::new());
    let (session, _incoming, connection) = spdy::client(client_io, spdy::Config::default());
    tokio::spawn(connection.run());
    session
}

async fn open(session: &Session, pairs: &[(&str, &str)]) -> Stream {
    let mut headers = Headers::new();
    for (name, value) in pairs {
        headers.append(name, value);
    }
    session.open(headers).await.unwrap()
}

#[tokio::test]
async fn port_forward_pairs_streams_and_copies_both_ways() {
    let streaming = Streaming::new(fake().await, Config::default());
    let session = connect(&streaming, request(Kind::PortForward, "web", &[]), &["portforward.k8s.io"]);
    for request_id in ["0", "1"] {
        let error = open(&session, &[("streamType", "error"), ("port", "80"), ("requestID", request_id)]).await;
        error.finish().await.unwrap();
        let data = open(&session, &[("streamType", "data"), ("port", "80"), ("requestID", request_id)]).await;
        let payload = Bytes::from(vec![request_id.as_bytes()[0]; 300 * 1024]);
        let (mut recv, send) = data.split();
        let writer = async {
            send.write(payload.clone()).await.unwrap();
            send.finish().await.unwrap();
        };
        let (echoed, ()) = tokio::join!(recv.read_to_end(usize::MAX), writer);
        assert_eq!(echoed.unwrap(), payload);
        let (mut error_recv, _) = error.split();
        assert_eq!(error_recv.read_to_end(4096).await.unwrap(), b"");
    }
    assert_eq!(streaming.active_sessions(), 1);
}

#[tokio::test]
async fn port_forward_reports_a_refused_connection_and_refuses_bad_streams() {
    let streaming = Streaming::new(fake().await, Config::default());
    let session = connect(&streaming, request(Kind::PortForward, "web", &[]), &["portforward.k8s.io"]);
    let mut bad = Headers::new().with("streamType", "data");
    assert!(matches!(session.open(bad.clone()).await, Err(spdy::StreamError::Reset(_))), "no port");
    bad.append("port", "x");
    assert!(matches!(session.open(bad).await, Err(spdy::StreamError::Reset(_))), "bad port");

    let error = open(&session, &[("streamType", "error"), ("port", "81"), ("requestID", "0")]).await;
    let _data = open(&session, &[("streamType", "data"), ("port", "81"), ("requestID", "0")]).await;
    let (mut recv, _) = error.split();
    let message = String::from_utf8(recv.read_to_end(4096).await.unwrap()).unwrap();
    assert!(message.starts_with("error forwarding port 81 to pod web_ns, uid : dial tcp 127.0.0.1:"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_lone_stream_times_out() {
    let streaming = Streaming::new(fake().await, Config::default());
    let session = connect(&streaming, request(Kind::PortForward, "web", &[]), &["portforward.k8s.io"]);
    let error = open(&session, &[("streamType", "error"), ("port", "80"), ("requestID", "7")]).await;
    let (mut recv, _) = error.split();
    let message = String::from_utf8(recv.read_to_end(4096).await.unwrap()).unwrap();
    assert_eq!(message, "(request=7) timed out waiting for streams");
}

/// Runs an exec the way client-go does: error stream first, then stdio.
async fn exec(protocol: &'static str, query: &[(&str, &str)], stdin: Option<&[u8]>) -> (Vec<u8>, Vec<u8>, String) {
    let streaming = Streaming::new(fake().await, Config::default());
    let session = connect(&streaming, request(Kind::Exec, "web", query), &[protocol]);
    let error = open(&session, &[("streamType", "error")]).await;
    let input = match stdin {
        Some(_) => Some(open(&session, &[("streamType", "stdin")]).await),
        None => None,
    };
    let stdout = open(&session, &[("streamType", "stdout")]).await;
    let stderr = open(&session, &[("streamType", "stderr")]).await;
    if let (Some(input), Some(bytes)) = (&input, stdin) {
        input.write(Bytes::copy_from_slice(bytes)).await.unwrap();
        input.finish().await.unwrap();
    }
    let (mut out, _o) = stdout.split();
    let (mut err, _e) = stderr.split();
    let (mut status, _s) = error.split();
    let (out, err) = tokio::join!(out.read_to_end(usize::MAX), err.read_to_end(usize::MAX));
    let status = String::from_utf8(status.read_to_end(4096).await.unwrap()).unwrap();
    (out.unwrap(), err.unwrap(), status)
}

const IO: [(&str, &str); 2] = [("output", "1"), ("error", "1")];

#[tokio::test]
async fn exec_v4_reports_the_exit_code() {
    let query = [IO[0], IO[1], ("command", "args"), ("command", "a"), ("command", "b")];
    let (out, err, status) = exec("v4.channel.k8s.io", &query, None).await;
    assert_eq!(out, b"a b");
    assert_eq!(err, b"to stderr");
    assert_eq!(
        status,
        r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [args a b], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
    );
}

#[tokio::test]
async fn exec_copies_stdin_and_reports_success() {
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let query = [IO[0], IO[1], ("input", "1"), ("command", "cat")];
    let (out, err, status) = exec("v4.channel.k8s.io", &query, Some(&input)).await;
    assert_eq!(out, input);
    assert_eq!(err, b"");
    assert_eq!(status, r#"{"metadata":{},"status":"Success"}"#);
}

#[tokio::test]
async fn older_protocols_write_only_failures_as_text() {
    let (_, _, status) = exec("v3.channel.k8s.io", &[IO[0], IO[1], ("command", "args")], None).await;
    assert_eq!(status, "command terminated with non-zero exit code: error executing command [args], exit code 3");
    let (_, _, status) = exec("v2.channel.k8s.io", &[IO[0], IO[1], ("command", "nope")], None).await;
    assert_eq!(status, "Internal error occurred: error executing command in container: no such command");
    let (_, _, status) = exec("channel.k8s.io", &[IO[0], IO[1], ("input", "1"), ("command", "cat")], Some(b"")).await;
    assert_eq!(status, "");
}

#[tokio::test]
async fn attach_is_refused_on_the_error_stream_by_default() {
    let streaming = Streaming::new(fake().await, Config::default());
    let session = connect(&streaming, request(Kind::Attach, "web", &[("output", "1")]), &["v4.channel.k8s.io"]);
    let error = open(&session, &[("streamType", "error")]).await;
    let _stdout = open(&session, &[("streamType", "stdout")]).await;
    let (mut recv, _) = error.split();
    let status = String::from_utf8(recv.read_to_end(4096).await.unwrap()).unwrap();
    assert!(status.contains(r#""reason":"InternalError""#), "{status}");
    assert!(status.contains("attach is not supported for wasm containers on this node"), "{status}");
}

#[tokio::test]
async fn requests_are_refused_before_the_upgrade() {
    let streaming = Streaming::new(fake().await, Config { max_sessions: 1, ..Config::default() });
    let v4 = upgrade(&["v4.channel.k8s.io"]);
    let refuse = |request: Request, headers: &HeaderMap| streaming.accept(request, headers).unwrap_err();

    let missing = refuse(request(Kind::Exec, "nope", &[("output", "1"), ("command", "x")]), &v4);
    assert_eq!((missing.status, missing.message.as_str()), (StatusCode::NOT_FOUND, "pod does not exist"));
    let mut other = request(Kind::Exec, "web", &[("output", "1"), ("command", "x")]);
    other.container = Some("sidecar".into());
    let container = refuse(other, &v4);
    assert_eq!(
        (container.status, container.message.as_str()),
        (StatusCode::NOT_FOUND, r#"container not found ("sidecar")"#)
    );
    let plain = refuse(request(Kind::PortForward, "web", &[]), &HeaderMap::new());
    assert_eq!(plain.status, StatusCode::BAD_REQUEST);
    let wrong = refuse(request(Kind::PortForward, "web", &[]), &v4);
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);

    let _held = streaming.accept(request(Kind::PortForward, "web", &[]), &upgrade(&["portforward.k8s.io"])).unwrap();
    let busy = refuse(request(Kind::PortForward, "web", &[]), &upgrade(&["portforward.k8s.io"]));
    assert_eq!(
        (busy.status, busy.message.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "too many concurrent streaming sessions")
    );
}

#[tokio::test]
async fn shutdown_ends_sessions_and_wait_sees_them_end() {
    let streaming = Streaming::new(fake().await, Config::default());
    let accepted = streaming.accept(request(Kind::PortForward, "web", &[]), &upgrade(&["portforward.k8s.io"])).unwrap();
    let (server_io, client_io) = tokio::io::duplex(4096);
    let shutdown = CancellationToken::new();
    accepted.serve_io(async move { Ok::<_, std::io::Error>(server_io) }, shutdown.clone());
    let (_session, _incoming, connection) = spdy::client(client_io, spdy::Config::default());
    let client = tokio::spawn(connection.run());
    shutdown.cancel();
    assert!(streaming.wait(Duration::from_secs(10)).await);
    assert_eq!(streaming.active_sessions(), 0);
    client.await.unwrap().unwrap();
}
