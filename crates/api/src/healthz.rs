//! The plain-HTTP healthz endpoint upstream serves on
//! `healthzBindAddress:healthzPort` (default `127.0.0.1:10248`), which
//! kubeadm and monitoring poll: `GET /healthz` answers `200 ok`; no TLS, no
//! authentication, nothing else served (404).
//!
//! As upstream, failing to bind is not fatal: the error is logged and the
//! bind retried with a capped, jittered back-off until it succeeds or the
//! agent stops.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use wasmlet_retry::{Backoff, Chain};

/// Upstream's default healthz port.
pub const DEFAULT_HEALTHZ_PORT: u16 = 10248;

/// Retry delays of a failed bind (upstream retries every 5 s).
const BIND_RETRY: Backoff = Backoff { min: Duration::from_secs(1), max: Duration::from_secs(10) };

/// The routes: `/healthz` only.
pub fn healthz_router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// Serves [`healthz_router`] on `addr` until `cancel`.
pub async fn serve_healthz(addr: SocketAddr, cancel: CancellationToken) {
    let mut delays = BIND_RETRY.delays();
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(e) => {
                let delay = delays.next().unwrap_or(BIND_RETRY.max);
                tracing::error!(%addr, error = %Chain(&e), retry_in = ?delay, "cannot serve healthz");
                if !wasmlet_retry::sleep(delay, &cancel).await {
                    return;
                }
            }
        }
    };
    tracing::info!(%addr, "serving plain-HTTP healthz");
    let shutdown = cancel.clone();
    if let Err(e) = axum::serve(listener, healthz_router()).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(%addr, error = %Chain(&e), "healthz server failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn answers_ok_and_nothing_else_then_stops() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve_healthz(addr, cancel.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "healthz never listened");
            tokio::task::yield_now().await;
        }
        let ok = get(addr, "/healthz").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.ends_with("ok"), "{ok}");
        let other = get(addr, "/pods").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        cancel.cancel();
        server.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_taken_port_is_retried_until_cancelled() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve_healthz(taken.local_addr().unwrap(), cancel.clone()));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!server.is_finished(), "a bind failure ended the healthz task");
        cancel.cancel();
        server.await.unwrap();
    }
}
