//! [`Timed`]: a future wrapper that meters the CPU time of its polls.
//!
//! A guest runs inside its future's `poll` (wasm code and synchronous host
//! calls); it waits on I/O and timers *between* polls. The CPU time of the
//! polls is therefore the guest's CPU time, measured on the caller's task
//! without threads of its own: see [`meter`](crate::meter) for the clock and
//! why it is the thread CPU clock.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::meter::Meter;

/// Wraps `F` and adds the CPU time spent inside its `poll` to a [`Meter`].
#[derive(Debug)]
pub(crate) struct Timed<F> {
    inner: F,
    meter: Arc<Meter>,
}

impl<F> Timed<F> {
    pub(crate) fn new(inner: F, meter: Arc<Meter>) -> Self {
        Self { inner, meter }
    }

    /// CPU time spent in `poll` so far.
    pub(crate) fn busy(&self) -> Duration {
        Duration::from_nanos(self.meter.run_nanos())
    }
}

impl<F: Future + Unpin> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.meter.poll_started();
        let poll = Pin::new(&mut self.inner).poll(cx);
        self.meter.checkpoint();
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::thread_cpu_nanos;
    use crate::stats::GuestStats;

    /// Busy polls count, time spent pending does not.
    #[tokio::test]
    async fn counts_poll_time_only() {
        let mut polls = 0;
        let spin_then_wait = std::future::poll_fn(|cx| {
            polls += 1;
            if polls == 3 {
                return Poll::Ready(());
            }
            // 20 ms of this thread's CPU time, however loaded the machine.
            let started = thread_cpu_nanos().unwrap();
            while thread_cpu_nanos().unwrap() - started < 20_000_000 {
                std::hint::spin_loop();
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        let waiting = Box::pin(async {
            spin_then_wait.await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let stats = GuestStats::new();
        let mut timed = Timed::new(waiting, Meter::new(stats.clone()));
        (&mut timed).await;
        assert!(timed.busy() >= Duration::from_millis(40), "{:?}", timed.busy());
        assert!(timed.busy() < Duration::from_millis(200), "{:?}", timed.busy());
        assert_eq!(stats.cpu(), timed.busy());
    }
}
