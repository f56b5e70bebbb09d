//! A fault-injecting HTTP proxy in front of the test bed's plain-HTTP OCI
//! registry, for the registry fault scenarios of `docs/reliability.md`.
//!
//! [`RegistryProxy::start`] listens on `127.0.0.1:0` and forwards every
//! request to the registry, one request per connection (`Connection:
//! close`). What it answers depends on the [`Mode`], which can be switched
//! at any time with [`RegistryProxy::set_mode`], or from outside the process
//! with `PUT /chaos/mode` (body: the mode's name) when started with
//! [`Control::Http`] (what `cargo xtask chaos registry` does).
//!
//! Blob faults (`reset`, `truncate`, `corrupt`, `trickle`) apply to
//! successful `GET …/blobs/…` answers only: manifests pass, so a pull gets
//! as far as the layer. `5xx` answers every registry request itself;
//! `flap-401` answers every other manifest or blob request with a bare 401
//! (no `WWW-Authenticate` challenge) and passes the rest.
//!
//! # Caveats
//!
//! Upstream answers are read whole into memory (at most
//! [`MAX_RESPONSE_BYTES`]) before they are passed on; request bodies must
//! carry a `Content-Length` (chunked uploads are refused with 501). It is a
//! test tool for small wasm images, not a general proxy.

mod fault;
mod http;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Largest upstream answer the proxy buffers (256 MiB).
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;
/// Largest request or response head (64 KiB).
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// Largest request body (a manifest or blob being pushed; 256 MiB).
pub const MAX_REQUEST_BODY_BYTES: usize = MAX_RESPONSE_BYTES;
/// How long the `trickle` mode waits between two bytes.
pub const TRICKLE_INTERVAL: Duration = Duration::from_secs(1);
/// How long the proxy waits for a client's request head or the registry.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The path of the control endpoint ([`Control::Http`]).
pub const CONTROL_PATH: &str = "/chaos/mode";

/// What the proxy does to the registry's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Clean pass-through.
    Pass,
    /// Every registry request is answered with this 5xx status.
    ServerError(u16),
    /// A blob's connection is reset (TCP RST) after half of its bytes.
    Reset,
    /// A blob is cut to half its length, with a matching `Content-Length`.
    Truncate,
    /// One byte in the middle of a blob is flipped (same length, wrong digest).
    Corrupt,
    /// A blob's bytes are sent one per [`TRICKLE_INTERVAL`].
    Trickle,
    /// Every other manifest or blob request gets `401 Unauthorized` without a
    /// `WWW-Authenticate` challenge; the others pass.
    Flap401,
}

/// Names accepted by [`Mode`]'s `FromStr`, for help texts.
pub const MODE_NAMES: &str = "pass, 5xx (503), 5xx=<code> (500-599), reset, truncate, corrupt, trickle, flap-401";

impl Mode {
    /// Every mode, with the default 5xx status; `Pass` first.
    pub const ALL: [Mode; 7] =
        [Mode::Pass, Mode::ServerError(503), Mode::Reset, Mode::Truncate, Mode::Corrupt, Mode::Trickle, Mode::Flap401];

    /// A short name that is also a valid DNS label (`5xx-503`, `flap-401`).
    pub fn label(self) -> String {
        match self {
            Mode::ServerError(code) => format!("5xx-{code}"),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Pass => f.write_str("pass"),
            Mode::ServerError(503) => f.write_str("5xx"),
            Mode::ServerError(code) => write!(f, "5xx={code}"),
            Mode::Reset => f.write_str("reset"),
            Mode::Truncate => f.write_str("truncate"),
            Mode::Corrupt => f.write_str("corrupt"),
            Mode::Trickle => f.write_str("trickle"),
            Mode::Flap401 => f.write_str("flap-401"),
        }
    }
}

/// A mode name that is not one of [`MODE_NAMES`].
#[derive(Debug, thiserror::Error)]
#[error("unknown registry fault mode {0:?} (expected one of: {MODE_NAMES})")]
pub struct UnknownMode(String);

impl std::str::FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s {
            "pass" => Mode::Pass,
            "5xx" => Mode::ServerError(503),
            "reset" => Mode::Reset,
            "truncate" => Mode::Truncate,
            "corrupt" => Mode::Corrupt,
            "trickle" => Mode::Trickle,
            "flap-401" => Mode::Flap401,
            other => match other.strip_prefix("5xx=").and_then(|c| c.parse::<u16>().ok()) {
                Some(code) if (500..600).contains(&code) => Mode::ServerError(code),
                _ => return Err(UnknownMode(other.to_owned())),
            },
        })
    }
}

/// Whether the proxy also serves its control endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Only [`RegistryProxy::set_mode`] changes the mode.
    Api,
    /// `GET`/`PUT` [`CONTROL_PATH`] read and change the mode too.
    Http,
}

/// State shared by the connections.
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    control: Control,
    /// Manifest and blob requests seen in `flap-401` mode.
    flap: AtomicU64,
    /// Answers the proxy altered or made up.
    faults: AtomicU64,
    /// Requests forwarded to the registry unchanged.
    passed: AtomicU64,
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        self.flap.store(0, Ordering::Relaxed);
    }
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct RegistryProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RegistryProxy {
    /// Starts a proxy to `upstream` on `127.0.0.1:0` in `mode`, without the
    /// control endpoint.
    ///
    /// # Errors
    ///
    /// The listening socket cannot be bound.
    pub async fn start(upstream: SocketAddr, mode: Mode) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream, mode, Control::Api).await
    }

    /// Starts a proxy to `upstream` listening on `listen`.
    ///
    /// # Errors
    ///
    /// The listening socket cannot be bound.
    pub async fn start_on(
        listen: SocketAddr,
        upstream: SocketAddr,
        mode: Mode,
        control: Control,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(mode),
            control,
            flap: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            passed: AtomicU64::new(0),
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(accept(listener, shared.clone(), stop.clone()));
        debug!(%addr, %upstream, %mode, "registry proxy listening");
        Ok(Self { addr, shared, stop, task: Some(task) })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Switches the mode; requests already being answered keep their mode.
    pub fn set_mode(&self, mode: Mode) {
        debug!(addr = %self.addr, %mode, "registry proxy mode");
        self.shared.set_mode(mode);
    }

    /// How many answers the proxy altered or made up so far.
    pub fn faults(&self) -> u64 {
        self.shared.faults.load(Ordering::Relaxed)
    }

    /// How many requests it passed on unchanged so far.
    pub fn passed(&self) -> u64 {
        self.shared.passed.load(Ordering::Relaxed)
    }

    /// Stops accepting and ends every connection in progress.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RegistryProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let conn = tokio::select! {
            () = stop.cancelled() => break,
            conn = listener.accept() => conn,
        };
        match conn {
            Ok((conn, peer)) => {
                let (shared, stop) = (shared.clone(), stop.clone());
                tracker.spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        r = handle(conn, &shared) => {
                            if let Err(e) = r {
                                debug!(%peer, error = %e, "registry proxy connection");
                            }
                        }
                    }
                });
            }
            Err(e) => {
                debug!(error = %e, "registry proxy accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracker.close();
    tracker.wait().await;
}

async fn handle(mut conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let request = tokio::time::timeout(IO_TIMEOUT, http::Request::read(&mut conn))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "request head"))??;
    let Some(request) = request else {
        return fault::send(&mut conn, &http::Response::text(501, "chunked request bodies are not supported")).await;
    };
    if shared.control == Control::Http && request.path == CONTROL_PATH {
        return control(&mut conn, shared, &request).await;
    }
    let mode = shared.mode();
    let registry_request = request.path.starts_with("/v2/");
    let object_request = registry_request && (request.path.contains("/blobs/") || request.path.contains("/manifests/"));
    match mode {
        Mode::ServerError(code) if registry_request => {
            shared.faults.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"errors":[{"code":"UNAVAILABLE","message":"injected by the wasmlet chaos proxy"}]}"#;
            return fault::send(&mut conn, &http::Response::json(code, body)).await;
        }
        Mode::Flap401 if object_request && shared.flap.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) => {
            shared.faults.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"injected by the wasmlet chaos proxy"}]}"#;
            return fault::send(&mut conn, &http::Response::json(401, body)).await;
        }
        _ => {}
    }
    let response = tokio::time::timeout(IO_TIMEOUT, http::forward(shared.upstream, &request))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "registry"))?;
    let response = match response {
        Ok(r) => r,
        Err(e) => http::Response::text(502, &format!("chaos proxy: registry unreachable: {e}")),
    };
    let blob = request.method == "GET" && request.path.contains("/blobs/") && (200..300).contains(&response.status);
    if blob && !matches!(mode, Mode::Pass | Mode::ServerError(_) | Mode::Flap401) && !response.body.is_empty() {
        shared.faults.fetch_add(1, Ordering::Relaxed);
        return fault::blob(conn, response, mode).await;
    }
    shared.passed.fetch_add(1, Ordering::Relaxed);
    fault::send(&mut conn, &response).await
}

async fn control(conn: &mut TcpStream, shared: &Shared, request: &http::Request) -> std::io::Result<()> {
    let response = match request.method.as_str() {
        "GET" => http::Response::text(200, &format!("{}\n", shared.mode())),
        "PUT" | "POST" => match String::from_utf8_lossy(&request.body).parse::<Mode>() {
            Ok(mode) => {
                shared.set_mode(mode);
                tracing::info!(%mode, "registry proxy mode switched");
                http::Response::text(200, &format!("{mode}\n"))
            }
            Err(e) => http::Response::text(400, &format!("{e}\n")),
        },
        _ => http::Response::text(405, "GET or PUT\n"),
    };
    fault::send(conn, &response).await
}

#[cfg(test)]
mod tests;
