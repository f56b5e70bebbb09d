//! The store state of one `wasi:http` request instance, the linker that
//! gives it full WASI preview 2 plus `wasi:http`, and the hooks that hold
//! outgoing requests to the guest's socket policy
//! ([`SocketPolicy`](crate::SocketPolicy) inside the node's
//! [`NodeNetwork`](crate::NodeNetwork)).

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::compiled::Kind;
use crate::limiter::Limiter;
use crate::run::{HasLimiter, StartError, flatten};
use crate::sockets::Guard;

use super::connect::{self, Destination, IoFuture};
use super::outgoing::{self, Resolve, SystemResolver};

/// A `wasi:http/proxy` component linked and pre-instantiated.
pub(crate) type HttpPre = ProxyPre<HttpState>;

/// Store state of one request's instance.
pub(crate) struct HttpState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: Outgoing,
    pub(crate) limiter: Limiter,
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.hooks }
    }
}

impl HasLimiter for HttpState {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
}

/// The linker of `wasi:http` handlers: all of WASI preview 2 (a handler
/// built with a language's standard library imports `wasi:cli`,
/// `wasi:filesystem`, `wasi:sockets`, as `wasmtime serve -S cli` provides)
/// plus `wasi:http`.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HttpState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// Links `component` and checks that it exports `wasi:http/incoming-handler`.
pub(crate) fn link(linker: &Linker<HttpState>, component: &Component) -> Result<HttpPre, StartError> {
    linker.instantiate_pre(component).and_then(ProxyPre::new).map_err(|source| StartError::Link {
        kind: Kind::Component,
        reason: flatten(&source),
        source,
    })
}

/// Hooks of outgoing `wasi:http` requests: the host is resolved once, every
/// address must be allowed by the guest's socket check (as a `wasi:sockets`
/// connection would be), and the request goes to exactly those addresses
/// (see [`outgoing`](super::outgoing)).
pub(crate) struct Outgoing {
    pub(crate) policy: Arc<Guard>,
    pub(crate) resolver: Arc<dyn Resolve>,
}

impl Outgoing {
    /// Hooks checking against `policy`, resolving with the node's resolver.
    pub(crate) fn new(policy: Arc<Guard>) -> Self {
        Self { policy, resolver: Arc::new(SystemResolver) }
    }
}

type SendFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<(http::Response<WasiBody>, IoFuture)>> + Send>;

impl WasiHttpHooks for Outgoing {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let policy = Arc::clone(&self.policy);
        let resolver = Arc::clone(&self.resolver);
        Box::new(async move {
            let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(connect::DEFAULT_TIMEOUT);
            let deadline = tokio::time::Instant::now() + connect_timeout;
            let dest = Destination::of(request.uri())?;
            let addrs = outgoing::checked_addresses(&policy, &*resolver, &dest, deadline).await?;
            connect::send(request, options, &dest, &addrs, deadline).await
        })
    }
}
