//! Requests of a `wasi:http` server stopped at the memory limit, made
//! visible as Warning events on the pod.
//!
//! A request whose instance would pass the container's memory limit (which
//! all the server's instances share) or the node's is stopped and answered
//! `500` while the container keeps running, so its status never shows it
//! (as a process OOM-killed inside a container that survives does not show
//! upstream). Each such request is counted (`HttpStats::out_of_memory`, and
//! `container_oom_events_total` on `/metrics/cadvisor`) and gets a line on
//! the container's log; in addition the worker publishes one Warning event
//! (reason [`OOM_KILLING`](crate::events::reason::OOM_KILLING), the reason
//! node-problem-detector gives the kernel's OOM kills) per
//! [`OOM_EVENT_INTERVAL`] at most, saying how many requests were stopped
//! since the last one, so a burst of failures cannot flood the API server.

use std::time::Duration;

use tokio::time::{Interval, MissedTickBehavior};

/// The shortest time between two OOM events of one container.
pub(crate) const OOM_EVENT_INTERVAL: Duration = Duration::from_secs(10);

/// Watches a server's OOM counter.
pub(crate) struct RequestOoms {
    count: Box<dyn Fn() -> u64 + Send>,
    reported: u64,
    tick: Interval,
}

impl RequestOoms {
    /// Watches the counter `count` reads (`HttpStats::out_of_memory`), from
    /// its current value.
    pub(crate) fn new(count: impl Fn() -> u64 + Send + 'static) -> Self {
        let mut tick = tokio::time::interval(OOM_EVENT_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self { reported: count(), count: Box::new(count), tick }
    }

    /// Waits until requests were stopped since the last report (checked once
    /// per [`OOM_EVENT_INTERVAL`]); how many.
    pub(crate) async fn next(&mut self) -> u64 {
        loop {
            self.tick.tick().await;
            let now = (self.count)();
            if now > self.reported {
                let new = now - self.reported;
                self.reported = now;
                return new;
            }
        }
    }
}

/// The note of an OOM event: `count` requests stopped, under `limit`.
pub(crate) fn note(container: &str, count: u64, limit: Option<u64>) -> String {
    let why = match limit {
        Some(bytes) => format!(
            "exceeding the container's memory limit of {bytes} bytes, which all its requests in flight share, \
             or the node's memory for pods"
        ),
        None => "exceeding the memory available to them (the node's memory for pods, or the runtime's cap)".to_owned(),
    };
    format!("{count} request(s) to container {container} were stopped for {why}, and answered 500; see its log")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reports_new_ooms_at_most_once_per_interval() {
        let counter = Arc::new(AtomicU64::new(7));
        let read = Arc::clone(&counter);
        let mut ooms = RequestOoms::new(move || read.load(Ordering::Relaxed));
        // Nothing new since it started watching: no report, however long we wait.
        assert!(tokio::time::timeout(OOM_EVENT_INTERVAL * 3, ooms.next()).await.is_err());
        counter.fetch_add(5, Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        assert_eq!(ooms.next().await, 5);
        counter.fetch_add(2, Ordering::Relaxed);
        assert_eq!(ooms.next().await, 2);
        assert!(started.elapsed() >= OOM_EVENT_INTERVAL, "two reports are an interval apart");
    }

    #[test]
    fn note_names_the_count_and_the_limit() {
        let text = note("web", 3, Some(64 << 20));
        let expected =
            "3 request(s) to container web were stopped for exceeding the container's memory limit of 67108864 bytes";
        assert!(text.starts_with(expected), "{text}");
        assert!(note("web", 1, None).contains("the node's memory for pods"));
    }
}
