//! Fault injection for tests, compiled into debug builds only (release
//! builds have no trace of it).
//!
//! Nothing a guest does can panic the agent, so the handling of a panicked
//! container task (see `spawn::run`) can only be tested by making the
//! agent panic on purpose. With [`PANIC_ENV`] set to a container name in
//! the agent's environment (the node administrator's, never a pod's), the
//! agent's task for every container of that name panics
//! [`PANIC_AFTER`] into the container's first run (restart count 0), while
//! its guest runs; later runs are left alone, so a test sees the panic
//! recorded as an `Error` termination and the restart that follows.

use std::time::Duration;

use futures::future::BoxFuture;
use wasmlet_runtime::{Exit, StartError};

/// The environment variable naming the container whose first run panics.
pub(crate) const PANIC_ENV: &str = "WASMLET_DEBUG_PANIC_CONTAINER";
/// How long into the first run the panic comes.
pub(crate) const PANIC_AFTER: Duration = Duration::from_secs(2);

/// `run`, or — for the container [`PANIC_ENV`] names, on its first run —
/// `run` raced against a panic [`PANIC_AFTER`] from now.
pub(crate) fn inject<'a>(
    run: BoxFuture<'a, Result<Exit, StartError>>,
    container: &str,
    restart_count: i32,
) -> BoxFuture<'a, Result<Exit, StartError>> {
    let armed = std::env::var(PANIC_ENV).is_ok_and(|name| name == container) && restart_count == 0;
    if !armed {
        return run;
    }
    let container = container.to_owned();
    Box::pin(async move {
        let mut run = run;
        tokio::select! {
            outcome = &mut run => outcome,
            () = tokio::time::sleep(PANIC_AFTER) => {
                panic!("injected fault ({PANIC_ENV}): container {container} panics during its first run")
            }
        }
    })
}
