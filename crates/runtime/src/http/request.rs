//! Serving one request: a fresh instance from the server's pre-instantiated
//! component, in a task of the server's tracker, and the response it sets
//! (or the error response when it sets none).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::StatusCode;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{Engine, PoolConcurrencyLimitError, Store};
use wasmtime_wasi::cli::StdoutStream as _;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView as _};

use super::output::SharedOutput;
use super::state::{HttpPre, HttpState, Outgoing};
use super::stats::HttpStats;
use crate::exit::Exit;
use crate::limiter::{Budgets, Counts, Limiter};
use crate::meter::Meter;
use crate::run::new_store;
use crate::stats::GuestStats;
use crate::throttle::{Governor, Throttle};
use crate::timed::Timed;
use crate::wasi::{Preopened, Template};

/// A response as the server sends it.
pub(crate) type Response = hyper::Response<HyperOutgoingBody>;

/// Everything requests of one server share.
pub(crate) struct Server {
    pub(crate) engine: Engine,
    pub(crate) pre: HttpPre,
    pub(crate) template: Template,
    /// The mounts, opened once when the server started.
    pub(crate) preopened: Preopened,
    pub(crate) stdout: SharedOutput,
    pub(crate) stderr: SharedOutput,
    /// The container's memory limit, shared by all its instances, and the
    /// node's.
    pub(crate) budgets: Budgets,
    pub(crate) counts: Counts,
    pub(crate) max_resources: usize,
    pub(crate) stats: GuestStats,
    pub(crate) http_stats: HttpStats,
    pub(crate) throttle: Option<Throttle>,
    /// One permit per request in flight.
    pub(crate) requests: Arc<Semaphore>,
    pub(crate) request_timeout: Option<Duration>,
    /// Connection, HTTP/2 stream and request tasks.
    pub(crate) tasks: TaskTracker,
    /// Cancelled when the drain period is over: everything still running
    /// is dropped.
    pub(crate) kill: CancellationToken,
}

/// How a request's instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The handler returned.
    Returned,
    /// It trapped, failed or passed a memory limit (the container's,
    /// shared by all its instances, or the node's).
    Failed,
    /// It ran past the request timeout.
    TimedOut,
    /// No instance could be made (the pool is exhausted).
    NoInstance,
    /// The server stopped it at the end of the drain period.
    Killed,
}

impl Server {
    /// Serves `request` with a fresh instance; never fails: errors become
    /// `5xx` responses (without internal detail) and are counted.
    pub(crate) async fn handle(self: Arc<Self>, request: hyper::Request<Incoming>) -> Response {
        let permit = tokio::select! {
            biased;
            () = self.kill.cancelled() => return self.reject(),
            permit = Arc::clone(&self.requests).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return self.reject(),
            },
        };
        if let Some(throttle) = &self.throttle {
            tokio::select! {
                biased;
                () = self.kill.cancelled() => return self.reject(),
                () = throttle.admit() => {}
            }
        }
        let what = format!("{} {}", request.method(), request.uri().path());
        let (response, ended) = match self.start(request, permit, what) {
            Ok(receivers) => receivers,
            Err(error) => {
                tracing::debug!(error = %format!("{error:#}"), "cannot set up the request's instance");
                self.http_stats.error();
                return error_response(StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        match response.await {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                tracing::debug!(error = ?code, "the handler responded with an error");
                self.http_stats.error();
                error_response(StatusCode::INTERNAL_SERVER_ERROR)
            }
            // The instance ended without responding.
            Err(_) => match ended.await {
                Ok(Ended::TimedOut) => error_response(StatusCode::GATEWAY_TIMEOUT),
                Ok(Ended::NoInstance | Ended::Killed) => error_response(StatusCode::SERVICE_UNAVAILABLE),
                Ok(Ended::Failed) | Err(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR),
                Ok(Ended::Returned) => {
                    self.http_stats.error();
                    error_response(StatusCode::INTERNAL_SERVER_ERROR)
                }
            },
        }
    }

    fn reject(&self) -> Response {
        self.http_stats.reject();
        error_response(StatusCode::SERVICE_UNAVAILABLE)
    }

    /// Makes the request's store and starts its instance in a task; returns
    /// where its response and its end are told.
    #[allow(clippy::type_complexity, reason = "two receivers, named by their use")]
    fn start(
        self: &Arc<Self>,
        request: hyper::Request<Incoming>,
        permit: OwnedSemaphorePermit,
        what: String,
    ) -> wasmtime::Result<(oneshot::Receiver<Result<Response, ErrorCode>>, oneshot::Receiver<Ended>)> {
        let ctx = self.template.context(&self.preopened, self.stdout.clone(), self.stderr.clone());
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.max_resources);
        let state = HttpState {
            ctx,
            table,
            http: WasiHttpCtx::new(),
            hooks: Outgoing::new(self.template.sockets()),
            limiter: Limiter::new(self.budgets.clone(), self.counts, self.stats.clone()),
        };
        let meter = Meter::new(self.stats.clone());
        let governor = Governor::new(Arc::clone(&meter), self.throttle.clone());
        let mut store = new_store(&self.engine, state, governor);
        let (response_tx, response_rx) = oneshot::channel();
        let request = store.data_mut().http().new_incoming_request(Scheme::Http, request)?;
        let out = store.data_mut().http().new_response_outparam(response_tx)?;
        let (ended_tx, ended_rx) = oneshot::channel();
        self.http_stats.request_started();
        let server = Arc::clone(self);
        let task = async move {
            let ended = server.run(store, request, out, meter, &what).await;
            drop(permit);
            server.http_stats.request_ended();
            let _ = ended_tx.send(ended);
        };
        self.tasks.spawn(task.in_current_span());
        Ok((response_rx, ended_rx))
    }

    /// Instantiates and calls the handler, within the request timeout and
    /// until the server kills it; counts and reports failures.
    async fn run(
        &self,
        mut store: Store<HttpState>,
        request: Resource<HostIncomingRequest>,
        out: Resource<HostResponseOutparam>,
        meter: Arc<Meter>,
        what: &str,
    ) -> Ended {
        let call = Box::pin(async {
            let proxy = self.pre.instantiate_async(&mut store).await?;
            proxy.wasi_http_incoming_handler().call_handle(&mut store, request, out).await
        });
        let call = Timed::new(call, meter);
        let timeout = async {
            match self.request_timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.ok(),
                None => Some(call.await),
            }
        };
        let result = tokio::select! {
            biased;
            () = self.kill.cancelled() => return Ended::Killed,
            result = timeout => result,
        };
        let error = match result {
            None => {
                self.http_stats.timeout();
                self.report(&format!("{what} timed out")).await;
                return Ended::TimedOut;
            }
            Some(Ok(())) if !store.data().limiter.exceeded() => return Ended::Returned,
            Some(Ok(())) => None,
            Some(Err(error)) if error.is::<PoolConcurrencyLimitError>() => {
                tracing::warn!(error = %error, "no instance for a request: the instance pool is exhausted");
                self.http_stats.reject();
                return Ended::NoInstance;
            }
            Some(Err(error)) => Some(error),
        };
        self.http_stats.error();
        let message = match store.data().limiter.oom_exit() {
            Some(oom) => {
                self.http_stats.oom_killed();
                oom.message
            }
            None => error.map(|e| Exit::from_guest_error(&e).message).unwrap_or_default(),
        };
        // Free the instance's memory before writing the report.
        drop(store);
        tracing::debug!(error = %message, "request failed");
        self.report(&format!("{what} failed: {message}")).await;
        Ended::Failed
    }

    /// Writes a line about a failed request to the guest's stderr, where
    /// the container's logs show it.
    async fn report(&self, line: &str) {
        let mut stderr = Box::into_pin(self.stderr.async_stream());
        let line = format!("wasmlet: request {line}\n");
        let _ = stderr.write_all(line.as_bytes()).await;
        let _ = stderr.flush().await;
    }
}

/// A short plain-text error response.
fn error_response(status: StatusCode) -> Response {
    let text = status.canonical_reason().unwrap_or("error");
    let body = Full::new(Bytes::from(format!("{text}\n"))).map_err(|never| match never {}).boxed_unsync();
    let mut response = hyper::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}
