//! [`Runtime::run`]: running a guest to its [`Exit`] on the caller's task.
//!
//! The guest is a future: wasm runs inside its `poll`, yields to the async
//! scheduler at every epoch tick (so a CPU-bound guest never starves other
//! tasks or holds a worker thread) and awaits WASI I/O like any other task.
//! Stopping is dropping that future, which wasmtime supports at any await
//! point. How each kind of code runs lives in [`core`] (WASI preview 1
//! modules) and [`command`] (`wasi:cli/command` components).

mod command;
mod core;
mod error;
mod store;

use std::pin::Pin;

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use wasmtime::Engine;

use crate::compiled::{Code, Compiled};
use crate::exit::Exit;
use crate::limiter::Limiter;
use crate::meter::Meter;
use crate::runtime::Runtime;
use crate::spec::GuestSpec;
use crate::throttle::{Governor, Throttle};
use crate::timed::Timed;

pub use self::error::StartError;
pub(crate) use self::error::flatten;
pub(crate) use self::store::{HasLimiter, Linked, Linkers, new_store};

/// How a guest future ended: before it started, or with an exit.
pub(crate) enum Outcome {
    NotStarted(StartError),
    Ended(Exit),
}

type GuestFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

impl Runtime {
    /// Runs `compiled` as a container process described by `spec` until it
    /// exits, traps, exceeds its memory limit or `stop` is cancelled.
    ///
    /// The returned future runs the guest on the caller's task (nothing is
    /// spawned, apart from the stdio writer tasks wasmtime-wasi attaches to
    /// the guest, which end with it); it is `Send`. Dropping it stops the
    /// guest just like cancelling `stop`.
    ///
    /// - A core module runs as a WASI preview 1 command: its `_start` export.
    /// - A component runs if it exports `wasi:cli/run` (a `wasi:cli/command`),
    ///   with WASI preview 2; its `run` result `ok`/`err` is exit code 0/1.
    /// - Mounts are preopened directories, read-only ones without any write
    ///   permission; `working_dir` is mapped as described in
    ///   [`wasi`](crate::wasi).
    /// - Memory is capped at `spec.limits.memory_bytes`, else
    ///   [`Config::max_memory_bytes`](crate::Config::max_memory_bytes), and
    ///   by what is left of
    ///   [`Config::node_memory_bytes`](crate::Config::node_memory_bytes);
    ///   passing either is an OOM kill (exit 137).
    /// - CPU is limited to `spec.limits.cpu_millis` (see
    ///   [`throttle`](crate::throttle)); the guest's CPU time, memory and
    ///   start are published live in `spec.stats` (see [`GuestStats`](crate::GuestStats)).
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime (wasmtime-wasi spawns the stdio
    /// writer tasks with `tokio::spawn`).
    ///
    /// # Errors
    ///
    /// A [`StartError`] when the guest cannot start: the component is not a
    /// command, an import is missing, a mount cannot be opened, the module has
    /// no `_start`, instantiation failed. Everything after the start is an
    /// [`Exit`].
    pub async fn run(&self, compiled: &Compiled, spec: GuestSpec, stop: CancellationToken) -> Result<Exit, StartError> {
        let span = tracing::debug_span!(
            "guest",
            image.digest = %compiled.digest(),
            wasm.kind = %compiled.kind(),
        );
        self.run_inner(compiled, spec, stop).instrument(span).await
    }

    async fn run_inner(
        &self,
        compiled: &Compiled,
        mut spec: GuestSpec,
        stop: CancellationToken,
    ) -> Result<Exit, StartError> {
        let inner = &self.inner;
        if !Engine::same(compiled.engine(), &inner.engine) {
            return Err(StartError::ForeignEngine);
        }
        let linked = self.link(compiled)?;
        let config = &inner.config;
        let stats = spec.stats.take().unwrap_or_default();
        let memory_limit = spec.limits.memory_bytes.unwrap_or(config.max_memory_bytes);
        let limiter = Limiter::new(self.budgets(memory_limit), config.counts(), stats.clone());
        let cpu_millis = spec.limits.cpu_millis;
        let wasi = crate::wasi::builder(spec, &inner.node_network, config.stdio_buffer_bytes).await?;
        stats.start(std::time::SystemTime::now());
        let meter = Meter::new(stats.clone());
        let throttle = cpu_millis
            .and_then(|millis| Throttle::new(millis, config.cpu_period, config.cpu_burst, stats.clone(), false));
        let governor = Governor::new(meter.clone(), throttle);
        let engine = &inner.engine;
        let guest: GuestFuture<'_> = match linked {
            Linked::Core(pre) => Box::pin(core::run(engine, pre, wasi, limiter, governor)),
            Linked::Command(pre) => Box::pin(command::run(engine, pre, wasi, limiter, governor, config.max_resources)),
        };
        // Real time (tokio's clock may be paused in tests).
        let started = std::time::Instant::now();
        let mut guest = Timed::new(guest, meter);
        let outcome = tokio::select! {
            biased;
            () = stop.cancelled() => Outcome::Ended(Exit::stopped()),
            outcome = &mut guest => outcome,
        };
        let cpu = guest.busy();
        // Stop the guest now (if it still runs) and free its store.
        drop(guest);
        stats.stop();
        let mut exit = match outcome {
            Outcome::NotStarted(error) => {
                tracing::debug!(error = %error, "guest did not start");
                return Err(error);
            }
            Outcome::Ended(exit) => exit,
        };
        exit.wall = started.elapsed();
        exit.cpu = cpu;
        tracing::debug!(
            exit.code = exit.code,
            exit.reason = %exit.reason,
            exit.wall = ?exit.wall,
            exit.cpu = ?exit.cpu,
            "guest ended"
        );
        Ok(exit)
    }

    /// The linked form of `compiled`, made on first use and cached in it.
    fn link<'c>(&self, compiled: &'c Compiled) -> Result<&'c Linked, StartError> {
        if let Some(linked) = compiled.linked().get() {
            return Ok(linked);
        }
        let linkers = &self.inner.linkers;
        let linked = match compiled.code() {
            Code::Module(module) => linkers.link_module(module)?,
            Code::Component(component) => linkers.link_component(&self.inner.engine, component)?,
        };
        // A concurrent first run may have linked too; either result is fine.
        Ok(compiled.linked().get_or_init(|| linked))
    }
}
