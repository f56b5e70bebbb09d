//! wasmlet's wasm runtime: the process's one wasmtime [`Engine`], its epoch
//! ticker, a compile cache keyed by image digest, and running guests to their
//! [`Exit`].
//!
//! Start with [`Runtime`]:
//!
//! 1. [`Runtime::new`] once per process (a cheap-to-clone handle).
//! 2. [`Runtime::compile`] / [`Runtime::compile_with`] per image: compiled once
//!    per digest, however many pods ask; [`Runtime::retain`] forgets images
//!    that left the node.
//! 3. [`Runtime::run`] per container attempt of a module or command
//!    ([`Compiled::world`]), on the caller's task, with a [`GuestSpec`] and a
//!    stop token: `Ok(Exit)` once the guest ran, or a [`StartError`] if it
//!    could not start.
//! 4. [`Runtime::serve_http`] instead for a `wasi:http/proxy` component
//!    ([`World::HttpProxy`]): an HTTP server on the pod's ports, one fresh
//!    instance per request, drained on stop ([`HttpSpec`], see [`http`]).
//!
//! Module map: [`config`] (knobs and defaults), [`pool`] (the instance
//! allocator), [`cache`] (single-flight compile cache), [`wasi`] (how a spec
//! maps onto WASI, working directory included), [`sockets`] (the
//! `wasi:sockets` policy), [`http`] (serving `wasi:http`), [`exit`] (exit
//! codes), [`stats`] (live CPU and memory of a guest: [`GuestStats`]),
//! [`throttle`] (CPU limits).
//!
//! [`Engine`]: wasmtime::Engine

mod budget;
pub mod cache;
mod compile;
mod compiled;
pub mod config;
mod epoch;
pub mod exit;
pub mod http;
mod limiter;
mod meter;
pub mod pool;
mod run;
mod runtime;
pub mod sockets;
mod spec;
pub mod stats;
pub mod throttle;
mod timed;
pub mod wasi;

pub use budget::GuestMemory;
pub use cache::CompileStats;
pub use compile::{CompileError, LoadError};
pub use compiled::{Compiled, Kind, World};
pub use config::Config;
pub use exit::{Exit, ExitReason};
pub use http::{HttpLimits, HttpSpec, HttpStats, Listening};
pub use pool::{Allocator, Pool};
pub use run::StartError;
pub use runtime::{Error, Runtime};
pub use sockets::{NodeNetwork, NodePolicy, Outbound, Refusal, SocketPolicy};
pub use spec::{GuestSpec, Limits, Mount, Output};
pub use stats::GuestStats;
