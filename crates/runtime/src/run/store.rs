//! Per-guest store state, the runtime's two WASI linkers, and the store
//! settings every guest gets (limits, epoch yielding).

use wasmtime::component::{self, Component, ResourceTable};
use wasmtime::{Engine, InstancePre, Linker, Module, Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::error::{StartError, flatten};
use crate::compiled::{Kind, World};
use crate::http::{HttpPre, HttpState};
use crate::limiter::Limiter;
use crate::throttle::Governor;

/// Store state of a core module guest (WASI preview 1).
pub(crate) struct CoreState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: Limiter,
}

/// Store state of a component guest (WASI preview 2).
pub(crate) struct ComponentState {
    pub(crate) ctx: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

/// Access to the limiter of any guest state.
pub(crate) trait HasLimiter: Send + 'static {
    fn limiter(&mut self) -> &mut Limiter;
}

impl HasLimiter for CoreState {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
}

impl HasLimiter for ComponentState {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
}

/// A store for one guest: its limiter installed, and an epoch deadline that
/// at every tick accounts the guest's CPU time and yields to the tokio
/// scheduler: with `yield_now` (rather than a bare self-wake, so tokio runs
/// its timers, I/O driver and other tasks before the guest continues), or,
/// for a guest over its CPU limit, with a sleep (see [`crate::throttle`]).
pub(crate) fn new_store<T: HasLimiter>(engine: &Engine, state: T, mut governor: Governor) -> Store<T> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| state.limiter());
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| -> wasmtime::Result<UpdateDeadline> { Ok(governor.on_tick()) });
    store
}

/// Code linked against WASI, ready to instantiate; cached per [`Compiled`].
///
/// [`Compiled`]: crate::Compiled
pub(crate) enum Linked {
    /// A WASI preview 1 command module.
    Core(InstancePre<CoreState>),
    /// A `wasi:cli/command` component.
    Command(CommandPre<ComponentState>),
}

/// The WASI linkers, built once per runtime.
pub(crate) struct Linkers {
    core: Linker<CoreState>,
    component: component::Linker<ComponentState>,
    http: component::Linker<HttpState>,
}

impl Linkers {
    pub(crate) fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut core = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut core, |state: &mut CoreState| &mut state.wasi)?;
        let mut component = component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component)?;
        let http = crate::http::linker(engine)?;
        Ok(Self { core, component, http })
    }

    /// Links a `wasi:http/proxy` component for serving.
    pub(crate) fn link_http(&self, component: &Component) -> Result<HttpPre, StartError> {
        crate::http::link(&self.http, component)
    }

    pub(crate) fn link_module(&self, module: &Module) -> Result<Linked, StartError> {
        let pre = self.core.instantiate_pre(module).map_err(|source| link_error(Kind::Module, source))?;
        Ok(Linked::Core(pre))
    }

    /// Links a component as a command; one that does not export
    /// `wasi:cli/run` is refused before linking (it may well import things a
    /// command host does not provide, like `wasi:http`).
    pub(crate) fn link_component(&self, engine: &Engine, component: &Component) -> Result<Linked, StartError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_owned()).collect();
        if World::of_exports(&exports) != World::Command {
            return Err(StartError::UnsupportedComponent { exports });
        }
        let pre = self
            .component
            .instantiate_pre(component)
            .and_then(CommandPre::new)
            .map_err(|source| link_error(Kind::Component, source))?;
        Ok(Linked::Command(pre))
    }
}

fn link_error(kind: Kind, source: wasmtime::Error) -> StartError {
    StartError::Link { kind, reason: flatten(&source), source }
}
