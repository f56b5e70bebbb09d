//! [`Timed`]: a future wrapper that adds up how long its polls take.
//!
//! A guest runs inside its future's `poll` (wasm code and synchronous host
//! calls); it waits on I/O and timers *between* polls. The sum of the poll
//! durations is therefore the guest's CPU time, give or take the scheduler's
//! own overhead, and it is measured on the caller's task without threads or
//! OS accounting. This is the hook per-container CPU accounting builds on.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Wraps `F` and counts the time spent inside its `poll`.
#[derive(Debug)]
pub(crate) struct Timed<F> {
    inner: F,
    busy: Duration,
}

impl<F> Timed<F> {
    pub(crate) fn new(inner: F) -> Self {
        Self { inner, busy: Duration::ZERO }
    }

    /// Total time spent in `poll` so far.
    pub(crate) fn busy(&self) -> Duration {
        self.busy
    }
}

impl<F: Future + Unpin> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Real time on purpose (not tokio's, which tests may pause): this
        // measures work done, not scheduled time.
        let started = Instant::now();
        let poll = Pin::new(&mut self.inner).poll(cx);
        self.busy += started.elapsed();
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Busy polls count, time spent pending does not.
    #[tokio::test]
    async fn counts_poll_time_only() {
        let mut polls = 0;
        let spin_then_wait = std::future::poll_fn(|cx| {
            polls += 1;
            if polls == 3 {
                return Poll::Ready(());
            }
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(20) {
                std::hint::spin_loop();
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        });
        let waiting = Box::pin(async {
            spin_then_wait.await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        let mut timed = Timed::new(waiting);
        (&mut timed).await;
        assert!(timed.busy() >= Duration::from_millis(40), "{:?}", timed.busy());
        assert!(timed.busy() < Duration::from_millis(200), "{:?}", timed.busy());
    }
}
