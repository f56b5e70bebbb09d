//! `kubectl port-forward` and `kubectl exec` for wasm pods.
//!
//! - port-forward connects to the pod's own address on the requested port
//!   (where its wasi:http listeners and wasi:sockets servers listen).
//! - exec runs the command as a NEW instance of the container's wasm guest
//!   — the same compiled module or component, environment, volumes and
//!   limits — with `argv` = the command. A wasm image is one program, so
//!   "another command" means that program with other arguments (as with a
//!   multi-call binary). Its stdout and stderr stream back and its exit code
//!   is reported; stdin is not connected (the guest reads end-of-file); tty
//!   sizes are ignored.
//! - attach is refused: a wasm guest's stdio goes to its log, not to a
//!   terminal that could be shared.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tokio::io::AsyncWrite;
use tokio_util::sync::CancellationToken;
use wasmlet_streaming::{ExecOutcome, ExecRequest, Kind, StreamError, StreamingProvider, Target};

use crate::manager::{Handle, Handles};
use crate::record::ContainerState;
use crate::worker::{PodUpdate, Shared};

pub(crate) struct PodsStreaming {
    pub(crate) shared: Arc<Shared>,
    pub(crate) handles: Handles,
}

impl PodsStreaming {
    /// Runs `f` on the live pod `namespace/pod` (matching `uid` when given).
    fn with_pod<T>(
        &self,
        namespace: &str,
        pod: &str,
        uid: Option<&str>,
        f: impl FnOnce(&Handle) -> Result<T, StreamError>,
    ) -> Result<T, StreamError> {
        let handles = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let handle = handles
            .values()
            .find(|h| match &*h.updates.borrow() {
                PodUpdate::Present(p) => {
                    p.metadata.namespace.as_deref() == Some(namespace)
                        && p.metadata.name.as_deref() == Some(pod)
                        && uid.is_none_or(|u| p.metadata.uid.as_deref() == Some(u))
                }
                PodUpdate::Gone => false,
            })
            .ok_or(StreamError::PodNotFound)?;
        f(handle)
    }
}

fn running(handle: &Handle, container: &str) -> Result<(), StreamError> {
    let record = handle.record.lock().unwrap_or_else(|p| p.into_inner());
    let c = record.container(container).ok_or_else(|| StreamError::ContainerNotFound(container.to_owned()))?;
    match c.state {
        ContainerState::Running { .. } => Ok(()),
        _ => Err(StreamError::ContainerNotRunning(container.to_owned())),
    }
}

impl StreamingProvider for PodsStreaming {
    fn lookup(&self, target: &Target<'_>) -> Result<(), StreamError> {
        self.with_pod(target.namespace, target.pod, target.uid, |h| match (target.kind, target.container) {
            (Kind::PortForward, _) => Ok(()),
            (Kind::Attach, _) => Err(StreamError::Unsupported(
                "attach is not supported for wasm containers: their output goes to the container log (use kubectl logs -f)"
                    .into(),
            )),
            (Kind::Exec, Some(c)) => running(h, c),
            (Kind::Exec, None) => Err(StreamError::ContainerNotFound(String::new())),
        })
    }

    fn port_forward_target(
        &self,
        namespace: &str,
        pod: &str,
        uid: Option<&str>,
        port: u16,
    ) -> Result<std::net::SocketAddr, StreamError> {
        self.with_pod(namespace, pod, uid, |h| {
            let ip = h.record.lock().unwrap_or_else(|p| p.into_inner()).pod_ip.clone();
            let ip: std::net::IpAddr = ip
                .and_then(|ip| ip.parse().ok())
                .ok_or_else(|| StreamError::PortUnavailable(format!("pod {namespace}/{pod} has no address yet")))?;
            Ok((ip, port).into())
        })
    }

    fn exec(&self, request: ExecRequest) -> Result<BoxFuture<'static, Result<ExecOutcome, StreamError>>, StreamError> {
        let (ns, pod, uid) = (request.namespace.clone(), request.pod.clone(), request.uid.clone());
        let container = request.container.clone();
        let guest = self.with_pod(&ns, &pod, uid.as_deref(), |h| {
            running(h, &container)?;
            h.live.get(&container).map(|r| r.guest).ok_or_else(|| StreamError::ContainerNotRunning(container.clone()))
        })?;
        if request.command.is_empty() {
            return Err(StreamError::Failed("no command given".into()));
        }
        let output =
            |w: Option<wasmlet_streaming::Output>| w.map(|w| wasmlet_runtime::Output::new(SyncWriter(w.into())));
        let spec = guest.exec_spec(request.command.clone(), output(request.stdout), output(request.stderr));
        let runtime = self.shared.runtime.clone();
        // The command line may carry secrets (`--password=...`): only its
        // shape is logged, and only at debug.
        tracing::debug!(
            pod.name = %format!("{ns}/{pod}"),
            container = %container,
            command = ?redacted(&request.command),
            "exec"
        );
        Ok(Box::pin(async move {
            // Dropping this future (the client went away) stops the guest.
            let stop = CancellationToken::new();
            let _stop_on_drop = stop.clone().drop_guard();
            match runtime.run(&guest.compiled, spec, stop).await {
                Ok(exit) => Ok(ExecOutcome { exit_code: exit.code }),
                Err(e) => Err(StreamError::Failed(format!("cannot run the command: {e}"))),
            }
        }))
    }
}

/// An exec's argv for the log: the program name (`argv[0]`, the module's
/// name as the caller wrote it, at most [`REDACTED_PROGRAM_CHARS`]
/// characters) and, for every other argument, only its length.
fn redacted(argv: &[String]) -> Vec<String> {
    argv.iter()
        .enumerate()
        .map(
            |(i, arg)| {
                if i == 0 {
                    arg.chars().take(REDACTED_PROGRAM_CHARS).collect()
                } else {
                    format!("<{} bytes>", arg.len())
                }
            },
        )
        .collect()
}

/// How much of `argv[0]` an exec log line keeps.
const REDACTED_PROGRAM_CHARS: usize = 64;

/// Makes a `Send`-only writer usable where `Send + Sync` is required (the
/// runtime's outputs): access goes through `&mut self` only.
struct SyncWriter(std::sync::Mutex<wasmlet_streaming::Output>);

impl SyncWriter {
    fn inner(self: Pin<&mut Self>) -> Pin<&mut (dyn AsyncWrite + Send + Unpin)> {
        let w = self.get_mut().0.get_mut().unwrap_or_else(|p| p.into_inner());
        Pin::new(w.as_mut())
    }
}

impl AsyncWrite for SyncWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.inner().poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.inner().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn exec_argv_is_logged_without_its_arguments() {
        let argv = ["client.wasm", "--password=hunter2", ""].map(String::from);
        let logged = redacted(&argv);
        assert_eq!(logged, ["client.wasm", "<18 bytes>", "<0 bytes>"]);
        assert!(!format!("{logged:?}").contains("hunter2"));
    }
}
