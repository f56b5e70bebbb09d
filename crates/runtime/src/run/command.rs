//! Running a `wasi:cli/command` component (its `wasi:cli/run` export).

use wasmtime::Engine;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::Outcome;
use super::core::{ended, instantiate_failed};
use super::store::{ComponentState, new_store};
use crate::compiled::Kind;
use crate::exit::{Exit, RUN_ERR_EXIT_CODE};
use crate::limiter::Limiter;
use crate::throttle::Governor;

/// Instantiates `pre` and calls `wasi:cli/run#run`: `ok` is exit code 0 and
/// `err` is 1 (preview 2 has no other codes), unless the guest calls
/// `wasi:cli/exit` itself.
pub(super) async fn run(
    engine: &Engine,
    pre: &CommandPre<ComponentState>,
    mut wasi: WasiCtxBuilder,
    limiter: Limiter,
    governor: Governor,
    max_resources: usize,
) -> Outcome {
    let mut table = ResourceTable::new();
    table.set_max_capacity(max_resources);
    let state = ComponentState { ctx: wasi.build(), table, limiter };
    let mut store = new_store(engine, state, governor);
    let command = match pre.instantiate_async(&mut store).await {
        Ok(command) => command,
        Err(error) => return instantiate_failed(&store.data().limiter, Kind::Component, error),
    };
    let result = command.wasi_cli_run().call_run(&mut store).await;
    let limiter = &store.data().limiter;
    Outcome::Ended(match result {
        Ok(Ok(())) => ended(limiter, None),
        Ok(Err(())) if !limiter.exceeded() => Exit::exited(RUN_ERR_EXIT_CODE),
        Ok(Err(())) => ended(limiter, None),
        Err(error) => ended(limiter, Some(error)),
    })
}
