//! The epoch ticker: a dedicated OS thread that advances the engine's epoch.
//!
//! Every guest store yields to the async scheduler when the epoch passes its
//! deadline, so the ticker is what keeps a CPU-bound guest from holding a
//! worker thread. That is why it is a plain `std` thread and not a tokio task:
//! a tokio task would share the scheduler with the guests it must interrupt,
//! and on a `current_thread` runtime a busy guest would never let it run (the
//! guest yields only when the ticker ticks: a deadlock). The thread is owned
//! by [`EpochTicker`] (RAII): dropping it wakes the thread at once and joins it.

use std::io;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

/// Owns the ticker thread; the thread stops when this is dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    /// Dropping the sender disconnects the channel, which ends the thread.
    stop: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts a thread that calls `engine.increment_epoch()` every `tick`.
    pub(crate) fn start(engine: Engine, tick: Duration) -> io::Result<Self> {
        let (stop, stopped) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new().name("wasmlet-epoch".to_owned()).spawn(move || {
            // Times out every `tick` until the sender is dropped.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                engine.increment_epoch();
            }
            tracing::debug!("epoch ticker stopped");
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread wakes as soon as the channel disconnects, so this
            // join waits at most for one `increment_epoch` call.
            if thread.join().is_err() {
                tracing::error!("epoch ticker thread panicked; this is a bug");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Config, Instance, Module, Store, Trap};

    fn engine() -> Engine {
        let mut config = Config::new();
        config.epoch_interruption(true);
        Engine::new(&config).unwrap()
    }

    /// An infinite wasm loop with a one-tick deadline traps only if the
    /// ticker advances the epoch.
    #[test]
    fn ticks_interrupt_a_loop() {
        let engine = engine();
        let _ticker = EpochTicker::start(engine.clone(), Duration::from_millis(1)).unwrap();
        let module = Module::new(&engine, r#"(module (func (export "spin") (loop br 0)))"#).unwrap();
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || {
            let mut store = Store::new(&engine, ());
            store.set_epoch_deadline(1);
            let instance = Instance::new(&mut store, &module, &[]).unwrap();
            let spin = instance.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
            let err = spin.call(&mut store, ()).unwrap_err();
            done.send(err.downcast_ref::<Trap>().copied()).unwrap();
        });
        let trap = result.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(trap, Some(Trap::Interrupt));
    }

    /// Dropping the ticker joins its thread promptly even with a long tick.
    #[test]
    fn drop_stops_the_thread() {
        let ticker = EpochTicker::start(engine(), Duration::from_secs(3600)).unwrap();
        let (done, dropped) = mpsc::channel();
        std::thread::spawn(move || {
            drop(ticker);
            done.send(()).unwrap();
        });
        dropped.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}
