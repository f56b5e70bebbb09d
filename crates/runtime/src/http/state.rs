//! The store state of one `wasi:http` request instance, the linker that
//! gives it full WASI preview 2 plus `wasi:http`, and the hooks that hold
//! outgoing requests to the guest's [`SocketPolicy`].

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::compiled::Kind;
use crate::limiter::Limiter;
use crate::run::{HasLimiter, StartError, flatten};
use crate::sockets::SocketPolicy;

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

/// Hooks of outgoing `wasi:http` requests: the destination must be allowed
/// by the guest's socket policy (as a `wasi:sockets` connection would be).
pub(crate) struct Outgoing {
    pub(crate) policy: Arc<SocketPolicy>,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for Outgoing {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let policy = Arc::clone(&self.policy);
        Box::new(async move {
            check_destination(&policy, request.uri()).await?;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            let io: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> = Box::new(io);
            Ok((response.map(BodyExt::boxed_unsync), io))
        })
    }
}

/// Resolves the request's host and refuses it unless every address it
/// resolves to may be connected to.
async fn check_destination(policy: &SocketPolicy, uri: &http::Uri) -> Result<(), HttpError> {
    if !policy.outbound.allows_any() {
        return Err(HttpError::HttpRequestDenied);
    }
    let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) { 443 } else { 80 };
    let port = uri.port_u16().unwrap_or(default_port);
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(_) => return Err(HttpError::DestinationNotFound),
    };
    if addrs.is_empty() {
        return Err(HttpError::DestinationNotFound);
    }
    if let Some(denied) = addrs.iter().find(|addr| !policy.outbound.allows(addr.ip())) {
        tracing::debug!(http.host = %host, socket.addr = %denied, "outgoing request refused by policy");
        return Err(HttpError::DestinationIpProhibited);
    }
    Ok(())
}
