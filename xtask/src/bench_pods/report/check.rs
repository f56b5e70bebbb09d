//! Correctness of a run (for the small run in `cargo xtask test`): every
//! scenario ran for every peer, every pod reached its phase, every number
//! was read. Never a timing.

use super::{Measured, Outcome, Report};
use crate::bench_pods::probe::Role;
use crate::bench_pods::scenarios::density::agent_client;

impl Report {
    /// Every problem found; empty when the run is complete.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (peer, e) in &self.build_failures {
            problems.push(format!("{}: build failed: {e}", peer.label()));
        }
        for (scenario, peers) in &self.results {
            for (peer, outcome) in peers {
                let mut bad = |what: String| problems.push(format!("{scenario:?} on {}: {what}", peer.label()));
                let m = match outcome {
                    Outcome::Done(m) => m,
                    Outcome::Skipped(why) => {
                        bad(format!("skipped: {why}"));
                        continue;
                    }
                    Outcome::Failed(e) => {
                        bad(format!("failed: {e}"));
                        continue;
                    }
                };
                match m.as_ref() {
                    Measured::Start(x) => {
                        for (name, p) in [("steady", &x.steady), ("burst", &x.burst)] {
                            let timed = p.to_ready.map_or(0, |t| t.n);
                            if p.ready != p.pods || timed != p.pods || p.to_running.is_none() || p.stopped.is_some() {
                                bad(format!(
                                    "{name}: {}/{} Ready, {timed} timed, stopped: {:?}",
                                    p.ready, p.pods, p.stopped
                                ));
                            }
                        }
                    }
                    Measured::Churn(x) => {
                        if x.succeeded != x.pods
                            || x.deleted != x.pods
                            || x.succeeded_per_sec.is_none()
                            || x.deleted_per_sec.is_none()
                        {
                            bad(format!(
                                "{}/{} Succeeded, {} deleted, stopped: {:?}",
                                x.succeeded, x.pods, x.deleted, x.stopped
                            ));
                        }
                    }
                    Measured::Density(x) => {
                        if x.levels.len() != self.config.density.len() {
                            bad(format!("{} of {} levels ran", x.levels.len(), self.config.density.len()));
                        }
                        for l in &x.levels {
                            let requests = l.requests_per_pod.get(agent_client(*peer)).copied().unwrap_or(0.0);
                            let read = l.to_ready_secs.is_some()
                                && l.steady.as_ref().is_some_and(|u| u.rss(Role::Agent) > 0.0)
                                && l.rss_per_pod_kib.is_some()
                                && l.lease_gap.as_ref().is_some_and(|g| g.renewals > 0)
                                && requests > 0.0
                                && l.idle.rss(Role::Agent) > 0.0;
                            if l.ready != l.pods || !read {
                                bad(format!("level {}: {} Ready, figures missing: {l:?}", l.pods, l.ready));
                            }
                        }
                    }
                    Measured::Footprint(x) => {
                        if x.usage.rss(Role::Agent) <= 0.0 || x.usage.window_secs <= 0.0 {
                            bad(format!("no reading: {:?}", x.usage));
                        }
                    }
                    Measured::Nodes(x) => {
                        let spread = x.per_node_max.saturating_sub(x.per_node_min) <= 1;
                        if x.ready != x.pods || !x.not_ready.is_empty() || !spread || x.usage.is_none() {
                            bad(format!(
                                "{}/{} Ready, {}–{} per node, NotReady: {:?}, stopped: {:?}",
                                x.ready, x.pods, x.per_node_min, x.per_node_max, x.not_ready, x.stopped
                            ));
                        }
                    }
                }
            }
        }
        problems
    }
}
