//! The kubelet's streaming endpoints: `kubectl exec`, `attach` and
//! `port-forward`, as the API server sends them to a node in Kubernetes
//! 1.36: upgraded to SPDY/3.1, with the `channel.k8s.io` (v1-v4) and
//! `portforward.k8s.io` sub-protocols. (The API server translates
//! kubectl's WebSockets to SPDY for nodes that do not declare
//! `ExtendWebSocketsToKubelet`; wasmlet nodes do not.)
//!
//! Where to start:
//!
//! - [`StreamingProvider`] is what the agent implements: whether a pod
//!   is here, where its ports are, and how to run a command in it.
//! - [`Streaming`] accepts a request ([`Streaming::accept`]: checks,
//!   protocol negotiation, the session limit) and runs its session
//!   ([`Accepted::serve`]) as a tracked task; `wasmlet-api` mounts it
//!   on `/portForward`, `/exec` and `/attach`.
//! - [`spdy`] is the protocol: frames, zlib header compression with the
//!   SPDY/3 dictionary, sessions with flow control. No maintained SPDY
//!   crate exists for Rust, so it is implemented here, server and client.
//!
//! Limits are in [`Config`]; errors map to upstream's statuses and
//! messages ([`StreamError::status`], [`Rejection`]).

mod config;
mod exec;
mod handshake;
mod portforward;
mod provider;
mod service;
pub mod spdy;
mod status;

pub use config::{
    Config, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SESSIONS, DEFAULT_OUTPUT_DRAIN_TIMEOUT,
    DEFAULT_STREAM_CREATION_TIMEOUT,
};
pub use exec::{PIPE_CAPACITY, RESIZE_QUEUE};
pub use handshake::{
    ACCEPTED_PROTOCOLS_HEADER, EXEC_PROTOCOLS, ExecOptions, PORT_FORWARD_PROTOCOL, PROTOCOL_HEADER, Rejection, SPDY_31,
};
pub use provider::{
    ExecOutcome, ExecRequest, Kind, Output, Stdin, StreamError, StreamingProvider, Target, TerminalSize,
};
pub use service::{Accepted, Request, Streaming};
pub use status::ExecStatus;
