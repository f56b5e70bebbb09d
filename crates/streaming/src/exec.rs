//! Exec and attach (`channel.k8s.io` v1 to v4) over a SPDY session.
//!
//! The client opens one stream per channel, told apart by `streamType`:
//! `error`, then `stdin`, `stdout`, `stderr` as asked in the query, and
//! `resize` with a terminal (v3 and later). Once all are there (within
//! the stream creation timeout) the provider runs the command with pipes
//! for its stdio: the client's stdin is copied in (its FIN is the
//! command's EOF), stdout and stderr out (their end is our FIN). When the
//! command has ended and its output is flushed, its status goes on the
//! error stream ([`ExecStatus`]), and the session is closed.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::Config;
use crate::handshake::ExecOptions;
use crate::provider::{ExecRequest, Kind, StreamingProvider, TerminalSize};
use crate::spdy::{Incoming, RecvStream, RstStatus, SendStream, Stream};
use crate::status::ExecStatus;

/// Bytes buffered between a stream and the command, each way.
pub const PIPE_CAPACITY: usize = 64 * 1024;
/// Terminal sizes not yet taken by the command (older ones are dropped).
pub const RESIZE_QUEUE: usize = 4;

/// One exec or attach.
pub(crate) struct Exec {
    pub(crate) kind: Kind,
    /// The negotiated protocol version, 1 to 4.
    pub(crate) version: u8,
    pub(crate) options: ExecOptions,
    pub(crate) namespace: String,
    pub(crate) pod: String,
    pub(crate) uid: Option<String>,
    pub(crate) container: String,
}

#[derive(Default)]
struct Streams {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

/// Runs the exec or attach on the session's streams.
pub(crate) async fn serve(exec: Exec, provider: Arc<dyn StreamingProvider>, config: Config, mut incoming: Incoming) {
    let Some(streams) = collect(&exec, &mut incoming, &config).await else { return };
    let Streams { error, stdin, stdout, stderr, resize } = streams;

    let (stdin_recv, stdin_send) = stdin.map(Stream::split).unzip();
    let (stdin_pipe, guest_stdin) = pipe(stdin_recv.is_some());
    let (stdout_pipe, guest_stdout) = pipe(stdout.is_some());
    let (stderr_pipe, guest_stderr) = pipe(stderr.is_some());
    let (resize_tx, resize_rx) =
        if resize.is_some() { Some(mpsc::channel(RESIZE_QUEUE)).unzip() } else { (None, None) };
    let request = ExecRequest {
        namespace: exec.namespace,
        pod: exec.pod,
        uid: exec.uid,
        container: exec.container,
        command: exec.options.command.clone(),
        tty: exec.options.tty,
        stdin: guest_stdin.map(|p| Box::new(p) as _),
        stdout: guest_stdout.map(|p| Box::new(p) as _),
        stderr: guest_stderr.map(|p| Box::new(p) as _),
        resize: resize_rx,
    };
    let started = match exec.kind {
        Kind::Attach => provider.attach(request),
        _ => provider.exec(request),
    };
    let status = match started {
        Err(error) => ExecStatus::Internal { message: error.to_string() },
        Ok(command) => {
            let inputs = async {
                tokio::join!(copy_in(stdin_recv, stdin_pipe), read_resizes(resize, resize_tx));
            };
            let outputs = async {
                tokio::join!(copy_out(stdout_pipe, stdout), copy_out(stderr_pipe, stderr));
            };
            let outcome = supervise(command, inputs, outputs, &mut incoming, &config).await;
            match outcome {
                Ok(outcome) if outcome.exit_code == 0 => ExecStatus::Success,
                Ok(outcome) => ExecStatus::ExitCode { code: outcome.exit_code, command: exec.options.command },
                Err(error) => ExecStatus::Internal { message: error.to_string() },
            }
        }
    };
    debug!(?status, "the command ended");
    if let Some(stdin) = stdin_send {
        let _ = stdin.finish().await;
    }
    if let Some(error) = error {
        let payload = if exec.version >= 4 { Some(status.to_json()) } else { status.message().map(String::into_bytes) };
        if let Some(payload) = payload {
            let _ = error.write(Bytes::from(payload)).await;
        }
        let _ = error.finish().await;
    }
}

/// Waits for the command and its output, feeding its input meanwhile and
/// refusing streams that come late.
async fn supervise<C, I, O>(command: C, inputs: I, outputs: O, incoming: &mut Incoming, config: &Config) -> C::Output
where
    C: Future,
    I: Future<Output = ()>,
    O: Future<Output = ()>,
{
    let (mut command, mut inputs, mut outputs) =
        (std::pin::pin!(command), std::pin::pin!(inputs), std::pin::pin!(outputs));
    let drain = tokio::time::sleep_until(Instant::now() + config.idle_timeout);
    let mut drain = std::pin::pin!(drain);
    let (mut outcome, mut inputs_done, mut outputs_done) = (None, false, false);
    loop {
        tokio::select! {
            result = &mut command, if outcome.is_none() => {
                outcome = Some(result);
                drain.as_mut().reset(Instant::now() + config.output_drain_timeout);
            }
            () = &mut outputs, if !outputs_done => outputs_done = true,
            () = &mut inputs, if !inputs_done => inputs_done = true,
            Some(late) = incoming.accept() => {
                debug!(stream.id = late.id(), "refusing a stream after setup");
                late.reset(RstStatus::RefusedStream).await;
            }
            () = &mut drain, if outcome.is_some() => {
                warn!("the command ended but its output stayed open; closing it");
                break;
            }
        }
        if outputs_done && let Some(outcome) = outcome.take() {
            return outcome;
        }
    }
    // Only reached from the drain branch, which requires an outcome.
    match outcome {
        Some(outcome) => outcome,
        None => command.await,
    }
}

/// Waits for the streams the options ask for.
async fn collect(exec: &Exec, incoming: &mut Incoming, config: &Config) -> Option<Streams> {
    let options = &exec.options;
    let resize = options.tty && exec.version >= 3;
    let expected = 1
        + usize::from(options.stdin)
        + usize::from(options.stdout)
        + usize::from(options.stderr)
        + usize::from(resize);
    let deadline = Instant::now() + config.stream_creation_timeout;
    let mut streams = Streams::default();
    let mut received = 0;
    while received < expected {
        let stream = tokio::select! {
            stream = incoming.accept() => stream?,
            () = tokio::time::sleep_until(deadline) => {
                warn!(received, expected, "timed out waiting for client to create streams");
                return None;
            }
        };
        stream.reply().await.ok()?;
        let slot = match stream.headers().get("streamtype") {
            Some("error") => &mut streams.error,
            Some("stdin") => &mut streams.stdin,
            Some("stdout") => &mut streams.stdout,
            Some("stderr") => &mut streams.stderr,
            Some("resize") if exec.version >= 3 => &mut streams.resize,
            other => {
                warn!(stream.type = ?other, "unexpected stream type");
                continue;
            }
        };
        if slot.is_some() {
            warn!(stream.id = stream.id(), "a second stream of the same type");
            stream.reset(RstStatus::StreamInUse).await;
            continue;
        }
        *slot = Some(stream);
        received += 1;
    }
    Some(streams)
}

/// A pipe between a pump and the command, if wanted.
fn pipe(wanted: bool) -> (Option<DuplexStream>, Option<DuplexStream>) {
    if !wanted {
        return (None, None);
    }
    let (ours, theirs) = tokio::io::duplex(PIPE_CAPACITY);
    (Some(ours), Some(theirs))
}

/// The client's stdin into the command, closing it at the client's FIN.
async fn copy_in(recv: Option<RecvStream>, pipe: Option<DuplexStream>) {
    let (Some(mut recv), Some(mut pipe)) = (recv, pipe) else { return };
    loop {
        match recv.read().await {
            Ok(Some(chunk)) => {
                if pipe.write_all(&chunk).await.is_err() {
                    // The command closed its stdin: what comes is dropped.
                    return;
                }
            }
            Ok(None) | Err(_) => {
                let _ = pipe.shutdown().await;
                return;
            }
        }
    }
}

/// The command's output to the client, finishing the stream at its end.
async fn copy_out(pipe: Option<DuplexStream>, stream: Option<Stream>) {
    let (Some(mut pipe), Some(stream)) = (pipe, stream) else { return };
    let (_recv, send): (RecvStream, SendStream) = stream.split();
    let mut buf = vec![0u8; PIPE_CAPACITY / 2];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = send.finish().await;
                return;
            }
            Ok(n) => {
                if send.write(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    // The client is gone; the command's writes now fail.
                    return;
                }
            }
        }
    }
}

/// Terminal sizes (a sequence of JSON objects) from the resize stream.
async fn read_resizes(stream: Option<Stream>, sizes: Option<mpsc::Sender<TerminalSize>>) {
    let (Some(stream), Some(sizes)) = (stream, sizes) else { return };
    let (mut recv, _send) = stream.split();
    let mut pending = Vec::new();
    while let Ok(Some(chunk)) = recv.read().await {
        pending.extend_from_slice(&chunk);
        let mut values = serde_json::Deserializer::from_slice(&pending).into_iter::<TerminalSize>();
        let mut used = 0;
        while let Some(Ok(size)) = values.next() {
            used = values.byte_offset();
            // A full queue means the command is not reading sizes: drop.
            let _ = sizes.try_send(size);
        }
        pending.drain(..used);
        if pending.len() > PIPE_CAPACITY {
            warn!("undecodable terminal sizes; ignoring the resize stream");
            return;
        }
    }
}
