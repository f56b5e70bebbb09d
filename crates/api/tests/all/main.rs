//! Integration tests: the routes through `tower::ServiceExt::oneshot` with
//! a fake provider over real log files, and the server over real TLS.

mod auth;
mod logs;
mod routes;
mod stats;
mod streaming;
mod support;
mod tls;
mod tls_auth;
mod tls_policy;
