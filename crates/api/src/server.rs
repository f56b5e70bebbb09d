//! [`serve`]: the kubelet API over TLS until cancelled, then a graceful
//! shutdown.
//!
//! # Shutdown
//!
//! When the token is cancelled the server stops accepting, follows end
//! (they see the same token), and requests in flight get up to
//! [`ServerConfig::drain_timeout`] to finish; connections still open then
//! are closed. [`Server::run`] returns after that.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::provider::Provider;
use crate::router;
use crate::tls::{self, Tls};

/// The kubelet's default `--port`.
pub const DEFAULT_PORT: u16 = 10250;
/// Default [`ServerConfig::drain_timeout`].
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`ServerConfig::client_timeout`].
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate or key could not be loaded.
    #[error("loading the serving certificate")]
    Tls(#[source] tls::Error),
    /// The address could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving on {addr}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on, e.g. `0.0.0.0:10250`.
    pub addr: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How long requests in flight may run after shutdown begins.
    pub drain_timeout: Duration,
    /// How long a client may take for the TLS handshake, and to send each
    /// request head (HTTP/1).
    pub client_timeout: Duration,
    /// See [`router::Config::max_log_streams`].
    pub max_log_streams: usize,
    /// CA certificates (PEM) client certificates must chain to; without
    /// one, clients are not asked for certificates.
    pub client_ca: Option<PathBuf>,
    /// Authentication and authorization. `None` answers every client that
    /// completes the handshake (a warning is logged).
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// Protocol versions and cipher suites offered.
    pub tls_policy: crate::TlsPolicy,
}

impl ServerConfig {
    /// A config with default limits.
    pub fn new(addr: SocketAddr, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        ServerConfig {
            addr,
            cert: cert.into(),
            key: key.into(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
            max_log_streams: router::DEFAULT_MAX_LOG_STREAMS,
            client_ca: None,
            auth: None,
            tls_policy: crate::TlsPolicy::default(),
        }
    }
}

/// Binds, serves until `cancel`, then shuts down gracefully.
///
/// # Errors
///
/// [`Error::Tls`] and [`Error::Bind`] before anything is served;
/// [`Error::Serve`] if the listener fails.
pub async fn serve(config: ServerConfig, provider: Arc<dyn Provider>, cancel: CancellationToken) -> Result<()> {
    Server::bind(config, provider).await?.run(cancel).await
}

/// A bound server, not yet serving: [`serve`] in two steps, to learn the
/// address or keep the [`Tls`] handle.
pub struct Server {
    config: ServerConfig,
    provider: Arc<dyn Provider>,
    listener: TcpListener,
    addr: SocketAddr,
    tls: Tls,
    telemetry: crate::stats::Telemetry,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).field("config", &self.config).finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the certificate and key, then binds the address.
    ///
    /// # Errors
    ///
    /// [`Error::Tls`], [`Error::Bind`].
    pub async fn bind(config: ServerConfig, provider: Arc<dyn Provider>) -> Result<Server> {
        let tls =
            Tls::load_with_policy(&config.cert, &config.key, config.client_ca.as_deref(), config.tls_policy.clone())
                .await
                .map_err(Error::Tls)?;
        let bind_error = |source| Error::Bind { addr: config.addr, source };
        let listener = TcpListener::bind(config.addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        Ok(Server { config, provider, listener, addr, tls, telemetry: crate::stats::Telemetry::default() })
    }

    /// Serves the stats and metrics routes from `telemetry` (without it
    /// they answer 404).
    #[must_use]
    pub fn telemetry(mut self, telemetry: crate::stats::Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The bound address (with the actual port if `0` was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS handle, for reloading the certificate.
    pub fn tls(&self) -> Tls {
        self.tls.clone()
    }

    /// Serves until `cancel`, then shuts down gracefully.
    ///
    /// # Errors
    ///
    /// [`Error::Serve`] if the listener fails.
    pub async fn run(self, cancel: CancellationToken) -> Result<()> {
        let addr = self.addr;
        let serve_error = |source| Error::Serve { addr, source };
        let streaming = self.provider.streaming();
        let app = router::with_config(
            self.provider,
            router::Config {
                max_log_streams: self.config.max_log_streams,
                shutdown: cancel.clone(),
                telemetry: self.telemetry,
                auth: self.config.auth.clone(),
            },
        );
        if self.config.auth.is_none() {
            warn!(%addr, "the kubelet API authenticates nobody: every client is served");
        }
        let acceptor = RustlsAcceptor::new(self.tls.rustls()).handshake_timeout(self.config.client_timeout);
        let handle: Handle<SocketAddr> = Handle::new();
        let mut server =
            axum_server::from_tcp(self.listener).map_err(serve_error)?.acceptor(acceptor).handle(handle.clone());
        server.http_builder().http1().header_read_timeout(self.config.client_timeout);
        info!(%addr, "serving the kubelet API");
        let serving = server.serve(app.into_make_service_with_connect_info::<SocketAddr>());
        let mut serving = std::pin::pin!(serving);
        tokio::select! {
            result = &mut serving => {
                warn!(%addr, "the kubelet API stopped before shutdown");
                return result.map_err(serve_error);
            }
            () = cancel.cancelled() => {}
        }
        info!(%addr, drain = ?self.config.drain_timeout, "shutting down the kubelet API");
        handle.graceful_shutdown(Some(self.config.drain_timeout));
        serving.await.map_err(serve_error)?;
        if let Some(streaming) = streaming {
            streaming.wait(self.config.drain_timeout).await;
        }
        info!(%addr, "the kubelet API has stopped");
        Ok(())
    }
}
