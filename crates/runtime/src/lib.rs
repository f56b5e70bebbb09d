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
//! 3. [`Runtime::run`] per container attempt, on the caller's task, with a
//!    [`GuestSpec`] and a stop token: `Ok(Exit)` once the guest ran, or a
//!    [`StartError`] if it could not start.
//!
//! Module map: [`config`] (knobs and defaults), [`cache`] (single-flight
//! compile cache), [`wasi`] (how a spec maps onto WASI, working directory
//! included), [`exit`] (exit codes), [`stats`] (live CPU and memory of a
//! guest: [`GuestStats`]), [`throttle`] (CPU limits).
//!
//! [`Engine`]: wasmtime::Engine

pub mod cache;
mod compile;
mod compiled;
pub mod config;
mod epoch;
pub mod exit;
mod limiter;
mod meter;
mod run;
mod runtime;
mod spec;
pub mod stats;
pub mod throttle;
mod timed;
pub mod wasi;

pub use cache::CompileStats;
pub use compile::{CompileError, LoadError};
pub use compiled::{Compiled, Kind};
pub use config::Config;
pub use exit::{Exit, ExitReason};
pub use run::StartError;
pub use runtime::{Error, Runtime};
pub use spec::{GuestSpec, Limits, Mount, Output};
pub use stats::GuestStats;
