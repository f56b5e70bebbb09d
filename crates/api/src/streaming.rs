//! `/portForward`, `/exec` and `/attach`: the streaming routes, mounted
//! when the provider offers a [`Streaming`] ([`Provider::streaming`]).
//!
//! | route | |
//! |---|---|
//! | `GET`/`POST /portForward/{namespace}/{pod}[/{uid}]` | `portforward.k8s.io` |
//! | `GET`/`POST /exec/{namespace}/{pod}[/{uid}]/{container}?command=…` | `channel.k8s.io` v1-v4 |
//! | `GET`/`POST /attach/{namespace}/{pod}[/{uid}]/{container}` | the same, without a command |
//!
//! Path segments are checked like `/containerLogs` ([`crate::names`]; a
//! UID as a label), then [`Streaming::accept`] checks the upgrade, the
//! query, the pod and the protocol and answers `101 Switching Protocols`
//! (SPDY/3.1), or upstream's status and message. The session runs until
//! the client closes, it idles out, or the server shuts down.
//!
//! [`Provider::streaming`]: crate::Provider::streaming

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use tokio_util::sync::CancellationToken;
use wasmlet_streaming::{Kind, Rejection, Streaming};

use crate::error::ApiError;
use crate::names::{self, Rule};

#[derive(Clone)]
struct StreamingState {
    streaming: Streaming,
    shutdown: CancellationToken,
}

/// The routes, or none without a [`Streaming`].
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(
    streaming: Option<Streaming>,
    shutdown: CancellationToken,
) -> Router<S> {
    let Some(streaming) = streaming else { return Router::new() };
    let route = |kind: Kind| -> MethodRouter<StreamingState> {
        let handler = move |state, path, query, request| handle(kind, state, path, query, request);
        get(handler).post(handler)
    };
    Router::new()
        .route("/portForward/{namespace}/{pod}", route(Kind::PortForward))
        .route("/portForward/{namespace}/{pod}/{uid}", route(Kind::PortForward))
        .route("/exec/{namespace}/{pod}/{container}", route(Kind::Exec))
        .route("/exec/{namespace}/{pod}/{uid}/{container}", route(Kind::Exec))
        .route("/attach/{namespace}/{pod}/{container}", route(Kind::Attach))
        .route("/attach/{namespace}/{pod}/{uid}/{container}", route(Kind::Attach))
        .with_state(StreamingState { streaming, shutdown })
}

async fn handle(
    kind: Kind,
    State(state): State<StreamingState>,
    Path(path): Path<HashMap<String, String>>,
    Query(query): Query<Vec<(String, String)>>,
    mut request: Request,
) -> Response {
    let segment = |name: &str| path.get(name).cloned();
    let checked = (|| {
        let namespace = segment("namespace").unwrap_or_default();
        let pod = segment("pod").unwrap_or_default();
        names::check("namespace", &namespace, Rule::Label)?;
        names::check("pod name", &pod, Rule::Subdomain)?;
        let uid = segment("uid");
        if let Some(uid) = &uid {
            names::check("pod uid", uid, Rule::Label)?;
        }
        let container = segment("container");
        if let Some(container) = &container {
            names::check("container name", container, Rule::Label)?;
        }
        Ok(wasmlet_streaming::Request { kind, namespace, pod, uid, container, query })
    })();
    let streaming_request = match checked {
        Ok(checked) => checked,
        Err(message) => return ApiError::BadRequest(message).into_response(),
    };
    match state.streaming.accept(streaming_request, request.headers()) {
        Ok(accepted) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            response.headers_mut().extend(accepted.headers().clone());
            accepted.serve(&mut request, state.shutdown.clone());
            response
        }
        Err(rejection) => rejected(rejection),
    }
}

fn rejected(rejection: Rejection) -> Response {
    let mut response = (rejection.status, format!("{}\n", rejection.message)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.extend(rejection.headers());
    response
}
