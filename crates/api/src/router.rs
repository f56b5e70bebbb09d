//! The kubelet API's routes, without TLS or a listener: [`router`] for
//! tests and [`with_config`] for the server.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz`, `GET /healthz/ping` | `ok` |
//! | `GET /pods` | the provider's pods as a `v1` `PodList` |
//! | `GET /containerLogs/{namespace}/{pod}/{container}` | the log, chunked `text/plain` |
//! | `GET`/`POST /stats/summary`, `GET /metrics/resource`, `GET /metrics/cadvisor`, `GET /metrics` | see [`stats`](crate::stats); 404 without [`Config::telemetry`] |
//! | `GET`/`POST /portForward/…`, `/exec/…`, `/attach/…` | SPDY/3.1 streaming (`wasmlet_streaming`); 404 without [`Provider::streaming`](crate::Provider::streaming) |
//! | anything else | 404 |
//!
//! # Container logs
//!
//! The query is decoded like `v1.PodLogOptions`:
//!
//! | parameter | value |
//! |---|---|
//! | `follow`, `previous`, `timestamps` | `true`/`false`/`1`/`0` (any case) |
//! | `tailLines` | integer ≥ 0 |
//! | `tail` (legacy) | integer ≥ 0 or `all`; replaces `tailLines` |
//! | `sinceSeconds` | integer > 0 |
//! | `sinceTime` | RFC 3339; not with `sinceSeconds` |
//! | `limitBytes` | integer > 0 |
//! | `stream` | `All`, `Stdout` or `Stderr` |
//!
//! A repeated parameter counts once (its first value), an empty value is as
//! if absent, unknown parameters are ignored. Statuses:
//!
//! - 400: a path segment that is not a valid namespace, pod or container
//!   name (this is what stops `..`, `/`, NUL), an invalid query, or
//!   [`LookupError::NoPreviousAttempt`] / [`LookupError::NotStarted`];
//! - 404: [`LookupError::PodNotFound`] / [`LookupError::ContainerNotFound`],
//!   with upstream's messages (`pod "x" in namespace "y" not found`);
//! - 429: more than [`Config::max_log_streams`] log responses at once;
//! - 200: the log, flushed as lines arrive. A log file that does not exist
//!   (yet) reads as empty; with `follow`, the response waits for it. A
//!   follow ends when the attempt ends or the server shuts down.
//!
//! [`LookupError::NoPreviousAttempt`]: crate::LookupError::NoPreviousAttempt
//! [`LookupError::NotStarted`]: crate::LookupError::NotStarted
//! [`LookupError::PodNotFound`]: crate::LookupError::PodNotFound
//! [`LookupError::ContainerNotFound`]: crate::LookupError::ContainerNotFound
//!
//! Every request runs in one `request` span with `http.method`,
//! `http.path` (no query), `client.addr`, `user` (once authorized), and once answered `http.status`
//! and `latency_ms` (time to the response head; a streamed body may go on).
//!
//! New routes go in [`with_config`] (the stats routes come from
//! [`stats::routes`](crate::stats), merged there). With [`Config::auth`]
//! every route, the 404 fallback included, is behind authentication and
//! authorization ([`crate::auth`]): 401 and 403 come before anything else.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, field, info_span, warn};

use crate::error::ApiError;
use crate::logs::container_logs;
use crate::provider::Provider;

/// Default [`Config::max_log_streams`].
pub const DEFAULT_MAX_LOG_STREAMS: usize = 256;

/// How the routes behave.
#[derive(Debug, Clone)]
pub struct Config {
    /// Log responses served at once; more get 429.
    pub max_log_streams: usize,
    /// Cancelled when the server shuts down: follows end.
    pub shutdown: CancellationToken,
    /// Sources of the stats and metrics routes (none by default).
    pub telemetry: crate::stats::Telemetry,
    /// Authentication and authorization; `None` answers every client (tests).
    pub auth: Option<Arc<crate::auth::Auth>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_log_streams: DEFAULT_MAX_LOG_STREAMS,
            shutdown: CancellationToken::new(),
            telemetry: crate::stats::Telemetry::default(),
            auth: None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) log_streams: Arc<Semaphore>,
}

/// The routes with the default [`Config`].
pub fn router(provider: Arc<dyn Provider>) -> Router {
    with_config(provider, Config::default())
}

/// The routes.
pub fn with_config(provider: Arc<dyn Provider>, config: Config) -> Router {
    let state =
        AppState { provider, shutdown: config.shutdown, log_streams: Arc::new(Semaphore::new(config.max_log_streams)) };
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/healthz/ping", get(healthz))
        .route("/pods", get(pods))
        .route("/containerLogs/{namespace}/{pod}/{container}", get(container_logs))
        .merge(crate::streaming::routes(state.provider.streaming(), state.shutdown.clone()))
        .merge(crate::stats::routes(config.telemetry))
        .fallback(not_found)
        .with_state(state);
    let router = match config.auth {
        Some(auth) => router.layer(middleware::from_fn_with_state(auth, crate::auth::middleware)),
        None => router,
    };
    router.layer(middleware::from_fn(trace))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn pods(State(state): State<AppState>) -> Json<List<Pod>> {
    Json(List { items: state.provider.pods(), metadata: Default::default() })
}

async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("404 page not found".to_owned())
}

async fn trace(request: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let span = info_span!(
        "request",
        http.method = %request.method(),
        http.path = %request.uri().path(),
        client.addr = field::Empty,
        user = field::Empty,
        http.status = field::Empty,
        latency_ms = field::Empty,
    );
    if let Some(ConnectInfo(addr)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        span.record("client.addr", field::display(addr));
    }
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.status", status.as_u16());
    span.record("latency_ms", u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    span.in_scope(|| {
        if status.is_server_error() {
            warn!("request failed");
        } else {
            debug!("request answered");
        }
    });
    response
}
