//! The image-pull progress deadline: a pull fails when, within
//! [`crate::PullLimits::progress_deadline`], fewer than
//! [`MIN_PROGRESS_BYTES`] arrived from the registry and no local work (hashing,
//! extracting, committing) was going on.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::limits::MIN_PROGRESS_BYTES;

/// Bytes received and local work in progress, for one pull.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    /// Local sections running now.
    busy: AtomicUsize,
    /// Local sections started so far (one that began and ended within a
    /// window is progress too).
    local: AtomicU64,
}

/// Held while a pull works locally.
pub(crate) struct Busy(Progress);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Progress {
    pub(crate) fn add(&self, bytes: u64) {
        self.0.received.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn busy(&self) -> Busy {
        self.0.busy.fetch_add(1, Ordering::Relaxed);
        self.0.local.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// `(bytes received, local sections started, whether one runs now)`.
    fn sample(&self) -> (u64, u64, bool) {
        let c = &self.0;
        (c.received.load(Ordering::Relaxed), c.local.load(Ordering::Relaxed), c.busy.load(Ordering::Relaxed) > 0)
    }

    /// Writes through to `inner`, counting the bytes.
    pub(crate) fn counting<W>(&self, inner: W) -> Counting<W> {
        Counting { inner, progress: self.clone() }
    }
}

/// Runs `work` until it ends; `Err(received)` when a window of `deadline`
/// passed with fewer than [`MIN_PROGRESS_BYTES`] received (`received` of
/// them) and no local work.
pub(crate) async fn watch<T>(
    deadline: Duration,
    progress: &Progress,
    work: impl std::future::Future<Output = T>,
) -> Result<T, u64> {
    let mut work = std::pin::pin!(work);
    let start = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval_at(start + deadline, deadline);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = progress.sample();
    loop {
        tokio::select! {
            out = &mut work => return Ok(out),
            _ = ticks.tick() => {
                let now = progress.sample();
                let received = now.0 - last.0;
                let local = now.1 > last.1 || now.2;
                if received < MIN_PROGRESS_BYTES && !local {
                    return Err(received);
                }
                last = now;
            }
        }
    }
}

/// An async writer that counts what goes through into a [`Progress`].
pub(crate) struct Counting<W> {
    inner: W,
    progress: Progress,
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counting<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.progress.add(n as u64);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<W> Counting<W> {
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Writes `chunk` bytes every second, `times` times.
    async fn feed(progress: &Progress, chunk: usize, times: usize) -> usize {
        let mut out = progress.counting(Vec::new());
        for _ in 0..times {
            out.write_all(&vec![0; chunk]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        out.into_inner().len()
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_stalls_and_a_slow_stream_does_not() {
        let deadline = Duration::from_secs(10);
        let p = Progress::default();
        let started = tokio::time::Instant::now();
        // One byte a second: 10 or 11 in the window (one lands on its edge).
        let stalled = watch(deadline, &p, feed(&p, 1, 1000)).await;
        assert!(matches!(stalled, Err(10 | 11)), "{stalled:?}");
        assert_eq!(started.elapsed(), deadline);

        let p = Progress::default();
        assert_eq!(watch(deadline, &p, feed(&p, 200, 30)).await, Ok(6000));
    }

    #[tokio::test(start_paused = true)]
    async fn local_work_counts_as_progress() {
        let deadline = Duration::from_secs(5);
        let p = Progress::default();
        let work = async {
            let _busy = p.busy();
            tokio::time::sleep(Duration::from_secs(12)).await;
            7
        };
        assert_eq!(watch(deadline, &p, work).await, Ok(7));
        // Nothing at all: stalled after one deadline.
        let p = Progress::default();
        assert_eq!(watch(deadline, &p, std::future::pending::<()>()).await, Err(0));
    }
}
