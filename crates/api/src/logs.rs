//! `GET /containerLogs/{namespace}/{pod}/{container}`: a container's log,
//! streamed as chunked `text/plain` as lines arrive.
//!
//! Names are checked ([`crate::names`]) and the query decoded
//! ([`crate::query`]) before the provider is asked. A log file that does
//! not exist (yet) reads as empty; with `follow`, the response waits for it.
//! A follow ends when the attempt ends or the server shuts down. Concurrent
//! log responses are limited ([`Config::max_log_streams`]); past the limit
//! the answer is 429.
//!
//! [`Config::max_log_streams`]: crate::router::Config::max_log_streams

use std::io;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tracing::warn;

use crate::error::ApiError;
use crate::names::{self, Rule};
use crate::provider::LookupError;
use crate::query::LogQuery;
use crate::router::AppState;

pub(crate) async fn container_logs(
    State(state): State<AppState>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    names::check("namespace", &namespace, Rule::Label).map_err(ApiError::BadRequest)?;
    names::check("pod name", &pod, Rule::Subdomain).map_err(ApiError::BadRequest)?;
    names::check("container name", &container, Rule::Label).map_err(ApiError::BadRequest)?;
    let query = LogQuery::parse(&pairs, SystemTime::now()).map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let source = state
        .provider
        .container_log(&namespace, &pod, &container, query.previous)
        .map_err(|error| lookup_error(error, &namespace, &pod, &container))?;
    let permit = state
        .log_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyRequests("too many concurrent log streams"))?;

    let follow = query.options.follow;
    let shutdown = state.shutdown.clone();
    let attempt = source.finished;
    let finished = async move {
        tokio::select! {
            () = attempt => {}
            () = shutdown.cancelled() => {}
        }
    };
    let mut stream = Box::pin(wasmlet_logs::read(source.path, query.options, finished));
    // Without follow, errors opening the file come first: answer them with
    // a status rather than a broken body.
    let first = if follow {
        None
    } else {
        match stream.next().await {
            None => return Ok(text(Body::empty())),
            Some(Ok(bytes)) => Some(Ok(bytes)),
            Some(Err(error)) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(text(Body::empty()));
            }
            Some(Err(error)) => {
                warn!(%error, "cannot read container log");
                return Err(ApiError::Internal);
            }
        }
    };
    let body = futures::stream::iter(first).chain(stream).map(move |item| {
        // The permit is held for as long as the body is.
        let _held = &permit;
        if let Err(error) = &item {
            warn!(%error, "reading container log failed; aborting the response");
        }
        item
    });
    Ok(text(Body::from_stream(body)))
}

fn text(body: Body) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The upstream kubelet's status and message for each lookup failure.
fn lookup_error(error: LookupError, namespace: &str, pod: &str, container: &str) -> ApiError {
    match error {
        LookupError::PodNotFound => ApiError::NotFound(format!("pod {pod:?} in namespace {namespace:?} not found")),
        LookupError::ContainerNotFound => {
            ApiError::NotFound(format!("container {container:?} in pod {pod:?} not found"))
        }
        LookupError::NoPreviousAttempt => {
            ApiError::BadRequest(format!("previous terminated container {container:?} in pod {pod:?} not found"))
        }
        LookupError::NotStarted { reason } => {
            ApiError::BadRequest(format!("container {container:?} in pod {pod:?} is waiting to start: {reason}"))
        }
    }
}
