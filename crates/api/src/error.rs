//! [`ApiError`]: every failed request's status and message, mapped in one
//! place.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A request that cannot be served. Messages are for the client and carry
/// no internal detail; internal errors are logged where they happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 400, with the reason.
    BadRequest(String),
    /// 404, with what is missing.
    NotFound(String),
    /// 429: a limit on concurrent work is reached.
    TooManyRequests(&'static str),
    /// 500.
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, message),
            ApiError::TooManyRequests(message) => (StatusCode::TOO_MANY_REQUESTS, message.to_owned()),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_owned()),
        };
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
    }
}

pub(crate) use wasmlet_retry::Chain;
