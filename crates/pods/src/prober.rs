//! Drives a running container's probes over time and says what changed.

use std::net::IpAddr;

use tokio::time::Instant;

use crate::probe::{self, Kind, Spec};

/// Something the container worker acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The startup probe succeeded (or there is none): liveness and readiness begin.
    Started,
    /// Readiness changed.
    Ready(bool),
    /// One probe attempt failed (an `Unhealthy` event).
    Failed { kind: Kind, message: String },
    /// One probe attempt succeeded with a warning (a `ProbeWarning` event),
    /// e.g. an HTTP redirect to another host, which is not followed.
    Warning { kind: Kind, message: String },
    /// A liveness or startup probe failed `failureThreshold` times: kill the container.
    Kill { kind: Kind, message: String },
}

struct Tracked {
    spec: Spec,
    next_at: Instant,
    successes: u32,
    failures: u32,
}

/// Told of every probe attempt: its kind and whether it succeeded (for
/// `prober_probe_total`).
pub(crate) type Recorder = Box<dyn Fn(Kind, bool) + Send + Sync>;

/// The probes of one container run.
pub(crate) struct Prober {
    pod_ip: IpAddr,
    probes: Vec<Tracked>,
    started: bool,
    ready: Option<bool>,
    pending: Vec<Event>,
    recorder: Option<Recorder>,
}

impl Prober {
    /// Probes of a run that started at `start`. With no startup probe the
    /// container counts as started at once (reported by the first `next`).
    pub(crate) fn new(specs: Vec<Spec>, pod_ip: IpAddr, start: Instant) -> Self {
        let started = !specs.iter().any(|s| s.kind == Kind::Startup);
        let probes = specs
            .into_iter()
            .map(|spec| Tracked { next_at: start + spec.initial_delay, spec, successes: 0, failures: 0 })
            .collect();
        Self { pod_ip, probes, started, ready: None, pending: Vec::new(), recorder: None }
    }

    /// Tells `recorder` of every attempt.
    pub(crate) fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Whether a readiness probe decides readiness (else: ready once started).
    pub(crate) fn has_readiness(&self) -> bool {
        self.probes.iter().any(|p| p.spec.kind == Kind::Readiness)
    }

    /// Whether the container has started (startup probe passed, or none).
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// Waits for and returns the next thing that changed. Pending forever when
    /// there is nothing left to probe.
    pub(crate) async fn next(&mut self) -> Event {
        loop {
            if let Some(e) = self.pending.pop() {
                return e;
            }
            let started = self.started;
            let Some(i) = self
                .probes
                .iter()
                .enumerate()
                .filter(|(_, p)| (p.spec.kind == Kind::Startup) != started)
                .min_by_key(|(_, p)| p.next_at)
                .map(|(i, _)| i)
            else {
                return std::future::pending().await;
            };
            tokio::time::sleep_until(self.probes[i].next_at).await;
            let (handler, timeout) = (self.probes[i].spec.handler.clone(), self.probes[i].spec.timeout);
            let result = probe::run(&handler, self.pod_ip, timeout).await;
            self.record(i, result);
        }
    }

    fn record(&mut self, i: usize, result: probe::Outcome) {
        if let Some(recorder) = &self.recorder {
            recorder(self.probes[i].spec.kind, result.is_ok());
        }
        let p = &mut self.probes[i];
        p.next_at = Instant::now() + p.spec.period;
        let kind = p.spec.kind;
        // Events are queued newest last and popped from the end: push in reverse.
        let mut events = Vec::new();
        match result {
            Ok(warning) => {
                if let Some(message) = warning {
                    events.push(Event::Warning { kind, message });
                }
                p.failures = 0;
                p.successes += 1;
                match kind {
                    Kind::Startup => {
                        self.started = true;
                        let now = Instant::now();
                        for other in self.probes.iter_mut().filter(|o| o.spec.kind != Kind::Startup) {
                            other.next_at = now + other.spec.initial_delay;
                        }
                        events.push(Event::Started);
                    }
                    Kind::Readiness if p.successes >= p.spec.success_threshold && self.ready != Some(true) => {
                        self.ready = Some(true);
                        events.push(Event::Ready(true));
                    }
                    _ => {}
                }
            }
            Err(message) => {
                p.successes = 0;
                p.failures += 1;
                events.push(Event::Failed { kind, message: message.clone() });
                if p.failures >= p.spec.failure_threshold {
                    match kind {
                        Kind::Readiness if self.ready != Some(false) => {
                            self.ready = Some(false);
                            events.push(Event::Ready(false));
                        }
                        Kind::Liveness | Kind::Startup => {
                            p.failures = 0;
                            events.push(Event::Kill { kind, message });
                        }
                        Kind::Readiness => {}
                    }
                }
            }
        }
        events.reverse();
        self.pending.extend(events);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::probe::Handler;

    fn spec(kind: Kind, failure_threshold: u32) -> Spec {
        Spec {
            kind,
            handler: Handler::Tcp { host: None, port: 1 },
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: 1,
            failure_threshold,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn thresholds_turn_into_events() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut p = Prober::new(
            vec![spec(Kind::Startup, 2), spec(Kind::Liveness, 3), spec(Kind::Readiness, 2)],
            ip,
            Instant::now(),
        );
        assert!(!p.started() && p.has_readiness());
        // Startup: one failure, then success → Started; liveness/readiness begin.
        p.record(0, Err("no".into()));
        assert!(matches!(p.pending.pop(), Some(Event::Failed { kind: Kind::Startup, .. })));
        p.record(0, Ok(None));
        assert_eq!(p.pending.pop(), Some(Event::Started));
        assert!(p.started());
        // Readiness: success → ready; two failures → unready.
        p.record(2, Ok(None));
        assert_eq!(p.pending.pop(), Some(Event::Ready(true)));
        p.record(2, Err("x".into()));
        p.record(2, Err("x".into()));
        let events: Vec<Event> = std::iter::from_fn(|| p.pending.pop()).collect();
        assert!(events.contains(&Event::Ready(false)), "{events:?}");
        // Liveness: the third consecutive failure kills.
        for _ in 0..2 {
            p.record(1, Err("dead".into()));
        }
        assert!(!p.pending.iter().any(|e| matches!(e, Event::Kill { .. })));
        p.record(1, Err("dead".into()));
        assert!(p.pending.iter().any(|e| matches!(e, Event::Kill { kind: Kind::Liveness, .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn startup_failures_kill_and_nothing_else_runs_before() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut p = Prober::new(vec![spec(Kind::Startup, 1), spec(Kind::Readiness, 1)], ip, Instant::now());
        // Nothing listens on port 1: the startup probe fails and kills.
        let first = p.next().await;
        assert!(matches!(first, Event::Failed { kind: Kind::Startup, .. }), "{first:?}");
        assert!(matches!(p.next().await, Event::Kill { kind: Kind::Startup, .. }));
    }
}
