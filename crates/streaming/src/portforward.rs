//! Port forwarding (`portforward.k8s.io`) over a SPDY session.
//!
//! The client opens two streams per forwarded connection, both with
//! headers `port` and `requestID`: `streamType: error` (which it finishes
//! at once: only we write on it) and `streamType: data`. A stream with a
//! missing or invalid header is reset, as upstream does. Once a pair is
//! complete, we connect to the pod's port and copy both ways: the client's
//! FIN becomes a TCP half-close towards the pod, the pod's EOF our FIN. A
//! failure (connect refused, the pod resetting) is written on the error
//! stream; either way the error stream is finished last. A pair whose
//! second stream does not come within the stream creation timeout gets
//! `timed out waiting for streams` on its error stream.
//!
//! Clients without `requestID` (before Kubernetes 1.6) are paired by
//! stream id, as upstream does: the error stream's id, the data stream's
//! id minus 2.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, debug_span, warn};

use crate::config::Config;
use crate::provider::StreamingProvider;
use crate::spdy::{Incoming, RecvStream, RstStatus, SendStream, Stream, StreamError};

/// Bytes read from the pod per DATA frame.
const COPY_BUFFER: usize = 32 * 1024;

/// The pod a port-forward session is for.
pub(crate) struct PortForward {
    pub(crate) provider: Arc<dyn StreamingProvider>,
    pub(crate) config: Config,
    pub(crate) namespace: String,
    pub(crate) pod: String,
    pub(crate) uid: Option<String>,
}

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
    port: u16,
    deadline: Option<Instant>,
}

/// Serves the session's streams until it ends.
pub(crate) async fn serve(forward: PortForward, mut incoming: Incoming) {
    let forward = Arc::new(forward);
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut copies = JoinSet::new();
    loop {
        let next_deadline = pending.values().filter_map(|pair| pair.deadline).min();
        tokio::select! {
            stream = incoming.accept() => match stream {
                Some(stream) => {
                    if let Some((id, pair)) = add(&mut pending, stream, &forward.config).await {
                        copies.spawn(run_pair(forward.clone(), id, pair).in_current_span());
                    }
                }
                None => break,
            },
            Some(joined) = copies.join_next() => {
                if let Err(error) = joined {
                    warn!(%error, "a port-forward copy failed");
                }
            }
            () = sleep_until(next_deadline), if next_deadline.is_some() => {
                let now = Instant::now();
                let expired: Vec<String> =
                    pending.iter().filter(|(_, p)| p.deadline.is_some_and(|d| d <= now)).map(|(k, _)| k.clone()).collect();
                for id in expired {
                    if let Some(pair) = pending.remove(&id) {
                        debug!(request.id = %id, "timed out waiting for the stream pair");
                        fail_pair(pair, &format!("(request={id}) timed out waiting for streams")).await;
                    }
                }
            }
        }
    }
    // The session is over: what is still copying has lost its client.
    copies.shutdown().await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Checks a new stream and files it into its pair; returns the pair once
/// complete.
async fn add(pending: &mut HashMap<String, Pair>, stream: Stream, config: &Config) -> Option<(String, Pair)> {
    let (port, kind) = match check(&stream) {
        Ok(checked) => checked,
        Err(reason) => {
            debug!(stream.id = stream.id(), reason, "refusing a port-forward stream");
            stream.reset(RstStatus::Cancel).await;
            return None;
        }
    };
    let request = match stream.headers().get("requestid") {
        Some(id) if !id.is_empty() => id.to_owned(),
        // Old clients: consecutive odd ids, error first.
        _ if kind == "error" => stream.id().to_string(),
        _ => stream.id().saturating_sub(2).to_string(),
    };
    if stream.reply().await.is_err() {
        return None;
    }
    let pair = pending.entry(request.clone()).or_default();
    pair.deadline.get_or_insert_with(|| Instant::now() + config.stream_creation_timeout);
    pair.port = port;
    let slot = if kind == "error" { &mut pair.error } else { &mut pair.data };
    if slot.is_some() {
        let message = format!("error processing stream for request {request}: {kind} stream already assigned");
        warn!(request.id = %request, "{message}");
        if let Some(error) = &pair.error {
            let _ = error.write(Bytes::from(message)).await;
        }
        stream.reset(RstStatus::ProtocolError).await;
        return None;
    }
    *slot = Some(stream);
    if pair.error.is_some() && pair.data.is_some() {
        return pending.remove(&request).map(|pair| (request, pair));
    }
    None
}

/// The stream's port and type, or why it is refused (upstream's messages).
fn check(stream: &Stream) -> Result<(u16, &'static str), String> {
    let headers = stream.headers();
    let port = headers.get("port").filter(|p| !p.is_empty()).ok_or("\"port\" header is required")?;
    let port: u16 = port.parse().map_err(|error| format!("unable to parse {port:?} as a port: {error}"))?;
    if port == 0 {
        return Err("port \"0\" must be > 0".to_owned());
    }
    match headers.get("streamtype") {
        Some("error") => Ok((port, "error")),
        Some("data") => Ok((port, "data")),
        None | Some("") => Err("\"streamType\" header is required".to_owned()),
        Some(other) => Err(format!("invalid stream type {other:?}")),
    }
}

async fn fail_pair(pair: Pair, message: &str) {
    if let Some(error) = pair.error {
        let _ = error.write(Bytes::from(message.to_owned())).await;
        let _ = error.finish().await;
    }
    if let Some(data) = pair.data {
        data.reset(RstStatus::Cancel).await;
    }
}

/// Forwards one connection, then finishes the error stream.
async fn run_pair(forward: Arc<PortForward>, request: String, pair: Pair) {
    let (Some(error), Some(data)) = (pair.error, pair.data) else { return };
    let port = pair.port;
    let span = debug_span!("forward", request.id = %request, pod.port = port);
    async move {
        if let Err(failure) = connect_and_copy(&forward, port, data).await {
            let message = format!(
                "error forwarding port {port} to pod {}_{}, uid {}: {failure}",
                forward.pod,
                forward.namespace,
                forward.uid.as_deref().unwrap_or_default()
            );
            warn!(%message, "port-forward failed");
            let _ = error.write(Bytes::from(message)).await;
        }
        let _ = error.finish().await;
        debug!("forward ended");
    }
    .instrument(span)
    .await;
}

/// Connects and copies; the error is for the error stream (a client that
/// went away is not an error: there is nobody to tell).
async fn connect_and_copy(forward: &PortForward, port: u16, data: Stream) -> Result<(), String> {
    let uid = forward.uid.as_deref();
    let addr = forward
        .provider
        .port_forward_target(&forward.namespace, &forward.pod, uid, port)
        .map_err(|error| error.to_string())?;
    let connect = tokio::time::timeout(forward.config.connect_timeout, TcpStream::connect(addr));
    let tcp = match connect.await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(error)) => return Err(format!("dial tcp {addr}: {error}")),
        Err(_) => return Err(format!("dial tcp {addr}: i/o timeout")),
    };
    let (recv, send) = data.split();
    let (pod_read, pod_write) = tcp.into_split();
    match tokio::try_join!(client_to_pod(recv, pod_write), pod_to_client(pod_read, send)) {
        Ok(_) => Ok(()),
        Err(Failure::Client(error)) => {
            debug!(%error, "the client ended the data stream");
            Ok(())
        }
        Err(Failure::Pod(error)) => Err(error.to_string()),
    }
}

enum Failure {
    Client(StreamError),
    Pod(io::Error),
}

async fn client_to_pod(mut recv: RecvStream, mut pod: tokio::net::tcp::OwnedWriteHalf) -> Result<(), Failure> {
    while let Some(chunk) = recv.read().await.map_err(Failure::Client)? {
        pod.write_all(&chunk).await.map_err(Failure::Pod)?;
    }
    // The client finished: half-close towards the pod.
    pod.shutdown().await.map_err(Failure::Pod)
}

async fn pod_to_client(mut pod: tokio::net::tcp::OwnedReadHalf, send: SendStream) -> Result<(), Failure> {
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = pod.read(&mut buf).await.map_err(Failure::Pod)?;
        if n == 0 {
            return send.finish().await.map_err(Failure::Client);
        }
        send.write(Bytes::copy_from_slice(&buf[..n])).await.map_err(Failure::Client)?;
    }
}
