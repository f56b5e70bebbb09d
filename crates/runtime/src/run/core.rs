//! Running a core module as a WASI preview 1 command (its `_start`).

use wasmtime::{Engine, InstancePre};
use wasmtime_wasi::WasiCtxBuilder;

use super::Outcome;
use super::error::{StartError, flatten};
use super::store::{CoreState, new_store};
use crate::compiled::Kind;
use crate::exit::Exit;
use crate::limiter::Limiter;
use crate::throttle::Governor;

/// The entry point of a WASI command module.
const START: &str = "_start";

/// Instantiates `pre` and runs `_start` to the end.
pub(super) async fn run(
    engine: &Engine,
    pre: &InstancePre<CoreState>,
    mut wasi: WasiCtxBuilder,
    limiter: Limiter,
    governor: Governor,
) -> Outcome {
    let state = CoreState { wasi: wasi.build_p1(), limiter };
    let mut store = new_store(engine, state, governor);
    let instance = match pre.instantiate_async(&mut store).await {
        Ok(instance) => instance,
        Err(error) => return instantiate_failed(&store.data().limiter, Kind::Module, error),
    };
    let start = match instance.get_typed_func::<(), ()>(&mut store, START) {
        Ok(start) => start,
        Err(source) => {
            return Outcome::NotStarted(StartError::MissingStart { reason: flatten(&source), source });
        }
    };
    let result = start.call_async(&mut store, ()).await;
    Outcome::Ended(ended(&store.data().limiter, result.err()))
}

/// A failed instantiation: an OOM kill if the limiter refused the initial
/// memory, otherwise a start error.
pub(super) fn instantiate_failed(limiter: &Limiter, kind: Kind, source: wasmtime::Error) -> Outcome {
    if let Some(exit) = limiter.oom_exit() {
        return Outcome::Ended(exit);
    }
    Outcome::NotStarted(StartError::Instantiate { kind, reason: flatten(&source), source })
}

/// The exit of a guest whose entry point returned, with `error` if it failed.
pub(super) fn ended(limiter: &Limiter, error: Option<wasmtime::Error>) -> Exit {
    if let Some(exit) = limiter.oom_exit() {
        // The refused grow trapped (or the guest died of its aftermath):
        // report the OOM kill, not the trap.
        return exit;
    }
    match error {
        None => Exit::exited(0),
        Some(error) => Exit::from_guest_error(&error),
    }
}
