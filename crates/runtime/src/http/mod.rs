//! [`Runtime::serve_http`]: serving a `wasi:http/proxy` component, one fresh
//! instance per request, as `wasmtime serve` does.
//!
//! Start with [`HttpSpec`]. The server binds a listener on each address
//! (readiness is told on [`HttpSpec::ready`] once all are bound), accepts
//! HTTP/1.1 and HTTP/2 (prior knowledge) connections ([`conn`]) and gives
//! each request its own instance of the component ([`request`]), made from
//! a `ProxyPre` linked once per [`Compiled`] against full WASI preview 2 plus
//! `wasi:http` ([`state`]). Requests the guest sends out are resolved once,
//! checked and sent to exactly the checked addresses ([`outgoing`],
//! [`connect`]).
//!
//! # Guarantees
//!
//! - **Bounded.** At most [`HttpLimits::max_connections`] connections and
//!   [`HttpLimits::max_requests`] instances at once; each instance runs at
//!   most [`HttpLimits::request_timeout`] (then `504`), and all instances
//!   together stay within the container's memory limit (see *Memory*
//!   below) and CPU limit.
//!   Every task (connections, HTTP/2 streams, instances) lives in one
//!   `TaskTracker` that the server waits for.
//! - **Isolated requests.** A request whose instance traps, runs out of
//!   memory or never responds gets `500` (no detail in the body; a line on
//!   the guest's stderr says why) and is counted in [`HttpStats::errors`];
//!   the server keeps serving.
//! - **Memory.** The container's memory limit (else
//!   [`Config::max_memory_bytes`](crate::Config::max_memory_bytes)) bounds
//!   the *sum* of the linear memories and tables of all its live instances,
//!   as a container's cgroup `memory.max` bounds all its processes together:
//!   every instance charges one budget per server, atomically, on each grow,
//!   and gives its share back when it ends. A grow that would pass the limit
//!   stops that instance as an OOM kill: its request gets `500`, is counted
//!   in [`HttpStats::out_of_memory`] (and in [`HttpStats::errors`]) and in
//!   [`GuestStats::oom_kills`](crate::GuestStats::oom_kills), and a line on
//!   the guest's stderr names the limit; the other requests carry on. The
//!   same happens when the node's memory for pods
//!   ([`Config::node_memory_bytes`](crate::Config::node_memory_bytes)) is
//!   exhausted. [`GuestStats::memory_bytes`](crate::GuestStats::memory_bytes)
//!   is that sum, and
//!   [`GuestStats::memory_peak_bytes`](crate::GuestStats::memory_peak_bytes)
//!   its highest value, never above the limit.
//! - **Graceful stop.** When `stop` is cancelled the listeners close at once
//!   (new connections are refused), idle connections close, HTTP/2 clients
//!   get a GOAWAY, and requests in flight may finish within
//!   [`HttpSpec::drain`]; then whatever is left is dropped. The [`Exit`] is
//!   code 0 (reason `Stopped`) when everything finished in time, 137 when
//!   requests had to be dropped (see [`exit`](crate::exit)).
//!
//! # Caveats
//!
//! - The instance stopped at the limit is the one whose grow would pass it,
//!   where the kernel's OOM killer picks a victim among the cgroup's
//!   processes (usually the largest); and a request is refused memory
//!   rather than made to wait for it, so a burst of memory-hungry requests
//!   sees some fail at once (as it would on a container at its limit).
//! - Memory is charged at the size of the linear memories (touched or
//!   not) and tables, not by resident pages.
//! - A request to a server that is stopping waits for an instance slot only
//!   until the end of the drain period (then `503`).

mod conn;
mod connect;
mod outgoing;
mod output;
mod request;
mod spec;
mod state;
mod stats;

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use wasmtime::Engine;

pub use self::spec::{
    DEFAULT_BACKLOG, DEFAULT_DRAIN, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUESTS,
    DEFAULT_MAX_STREAMS_PER_CONNECTION, DEFAULT_REQUEST_TIMEOUT, HttpLimits, HttpSpec, Listening,
};
pub(crate) use self::state::{HttpPre, HttpState, link, linker};
pub use self::stats::HttpStats;

use self::output::SharedOutput;
use self::request::Server;
use crate::compiled::{Compiled, World};
use crate::exit::Exit;
use crate::run::StartError;
use crate::runtime::Runtime;
use crate::throttle::Throttle;
use crate::wasi::{Template, stdio};

impl Runtime {
    /// Serves `compiled`, a `wasi:http/proxy` component
    /// ([`World::HttpProxy`]), on the addresses of `spec` until `stop` is
    /// cancelled and the server has drained.
    ///
    /// Like [`run`](Self::run), the returned future runs the server on the
    /// caller's task (the accept loop; connections and instances are tasks
    /// of a tracker it owns and waits for) and is `Send`. Dropping it stops
    /// everything at once, without draining.
    ///
    /// # Errors
    ///
    /// A [`StartError`] before the server starts: the code is not a
    /// `wasi:http/proxy` component, does not link, a mount cannot be opened,
    /// there is no address, the limits are invalid, or an address cannot be
    /// bound (in use, not an address of this node). After that the server
    /// only ends with an [`Exit`] (see the [module docs](crate::http)).
    pub async fn serve_http(
        &self,
        compiled: &Compiled,
        spec: HttpSpec,
        stop: CancellationToken,
    ) -> Result<Exit, StartError> {
        let span = tracing::info_span!("http_server", image.digest = %compiled.digest(), http.listen = ?spec.listen);
        self.serve_inner(compiled, spec, stop).instrument(span).await
    }

    async fn serve_inner(
        &self,
        compiled: &Compiled,
        spec: HttpSpec,
        stop: CancellationToken,
    ) -> Result<Exit, StartError> {
        let inner = &self.inner;
        let config = &inner.config;
        if !Engine::same(compiled.engine(), &inner.engine) {
            return Err(StartError::ForeignEngine);
        }
        if compiled.world() != World::HttpProxy {
            return Err(StartError::NotHttpProxy { kind: compiled.kind(), exports: compiled.exports().to_vec() });
        }
        spec.limits.validate().map_err(|reason| StartError::InvalidHttpLimits { reason })?;
        if spec.listen.is_empty() {
            return Err(StartError::NoListenAddress);
        }
        let pre = self.link_http(compiled)?.clone();
        let HttpSpec { mut guest, listen, drain, limits, ready, stats: http_stats } = spec;
        let template = Template::new(&guest, &inner.node_network)?;
        // Open the mounts once, now: a missing one fails the start, and
        // every request's context shares the handles.
        let preopened = template.open().await?;
        if stop.is_cancelled() {
            return Ok(Exit::drained());
        }
        let listeners = listen
            .iter()
            .map(|&addr| conn::bind(addr, limits.backlog).map_err(|source| StartError::Bind { addr, source }))
            .collect::<Result<Vec<_>, _>>()?;
        let addrs: Vec<_> = listeners.iter().zip(&listen).map(|(l, addr)| l.local_addr().unwrap_or(*addr)).collect();

        let stats = guest.stats.take().unwrap_or_default();
        let stdout = SharedOutput::new(stdio(
            std::mem::replace(&mut guest.stdout, crate::Output::discard()),
            config.stdio_buffer_bytes,
        ));
        let stderr = SharedOutput::new(stdio(
            std::mem::replace(&mut guest.stderr, crate::Output::discard()),
            config.stdio_buffer_bytes,
        ));
        let throttle = guest
            .limits
            .cpu_millis
            .and_then(|millis| Throttle::new(millis, config.cpu_period, config.cpu_burst, stats.clone(), true));
        let tasks = TaskTracker::new();
        let kill = CancellationToken::new();
        // Dropping this future kills everything still running.
        let _kill_on_drop = kill.clone().drop_guard();
        let http_stats = http_stats.unwrap_or_default();
        let server = Arc::new(Server {
            engine: inner.engine.clone(),
            pre,
            template,
            preopened,
            stdout,
            stderr,
            budgets: self.budgets(guest.limits.memory_bytes.unwrap_or(config.max_memory_bytes)),
            counts: config.counts(),
            max_resources: config.max_resources,
            stats: stats.clone(),
            http_stats: http_stats.clone(),
            throttle,
            requests: Arc::new(Semaphore::new(limits.max_requests)),
            request_timeout: limits.request_timeout,
            tasks: tasks.clone(),
            kill: kill.clone(),
        });
        let builder = Arc::new(conn::builder(tasks.clone(), &limits));
        let connections = Arc::new(Semaphore::new(limits.max_connections));
        let draining = CancellationToken::new();

        stats.start(std::time::SystemTime::now());
        let started = std::time::Instant::now();
        let cpu_before = stats.cpu();
        tracing::info!(http.addrs = ?addrs, "serving wasi:http");
        if let Some(ready) = ready {
            // The caller may have stopped listening for readiness.
            let _ = ready.send(Listening { addrs });
        }
        let accepting = listeners
            .into_iter()
            .map(|listener| conn::accept(listener, &server, &builder, &connections, &stop, &draining));
        futures::future::join_all(accepting).await;

        // The listeners are closed: drain.
        draining.cancel();
        tasks.close();
        let in_flight = http_stats.in_flight();
        tracing::info!(http.in_flight = in_flight, drain = ?drain, "stopping: draining requests in flight");
        let drained = tokio::time::timeout(drain, tasks.wait()).await.is_ok();
        let mut exit = if drained {
            Exit::drained()
        } else {
            let left = http_stats.in_flight();
            tracing::info!(http.in_flight = left, "drain period over: dropping the requests left");
            kill.cancel();
            // Every task ends at its next await (instances at their next epoch tick).
            tasks.wait().await;
            Exit::drain_expired(drain, left)
        };
        drop(server);
        stats.stop();
        exit.wall = started.elapsed();
        exit.cpu = stats.cpu().saturating_sub(cpu_before);
        tracing::info!(exit.code = exit.code, exit.wall = ?exit.wall, exit.cpu = ?exit.cpu, requests = http_stats.requests(), "server stopped");
        Ok(exit)
    }

    /// The `wasi:http` linked form of `compiled`, made on first use and
    /// cached in it.
    fn link_http<'c>(&self, compiled: &'c Compiled) -> Result<&'c HttpPre, StartError> {
        if let Some(pre) = compiled.http().get() {
            return Ok(pre);
        }
        let Some(component) = compiled.component() else {
            return Err(StartError::NotHttpProxy { kind: compiled.kind(), exports: Vec::new() });
        };
        let pre = self.inner.linkers.link_http(component)?;
        // A concurrent first serve may have linked too; either result is fine.
        Ok(compiled.http().get_or_init(|| pre))
    }
}
