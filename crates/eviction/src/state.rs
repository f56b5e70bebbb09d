//! The manager's memory between passes, and one pass's decision: which
//! thresholds are met, which node conditions to report, and whether (and
//! for which threshold) to reclaim — upstream's `synchronize` up to the
//! choice of a victim. Pure: the caller passes the observations and the time.
//!
//! - A threshold is *met* when its signal's available amount is below its
//!   level; one met before stays met until the signal is back above the
//!   level plus its minimum reclaim.
//! - A node condition is reported while a threshold for it is met, and for
//!   the pressure transition period after the last time one was.
//! - Pods are evicted only for thresholds met for their whole grace period
//!   (zero for hard thresholds); memory signals are reclaimed first.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::observe::Observations;
use crate::signal::{Condition, Conditions};
use crate::threshold::Threshold;

/// What the manager remembers between passes.
#[derive(Debug, Default)]
pub struct State {
    /// When each met threshold (index into the configured list) was first seen met.
    first_observed: HashMap<usize, Instant>,
    /// When each condition was last seen.
    conditions_last_observed: HashMap<Condition, Instant>,
    /// Thresholds met for their grace period and not yet resolved.
    met: Vec<usize>,
}

/// The outcome of one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Pass {
    /// The node conditions to report.
    pub conditions: Conditions,
    /// The thresholds met for their grace period, memory first; the first
    /// one's resource is what to reclaim now. Empty: nothing to do.
    pub met: Vec<Threshold>,
}

impl State {
    /// Updates the state with `observations` taken at `now`.
    pub fn pass(
        &mut self,
        thresholds: &[Threshold],
        observations: &Observations,
        transition_period: Duration,
        now: Instant,
    ) -> Pass {
        let mut met = meeting(thresholds, 0..thresholds.len(), observations, false);
        for i in meeting(thresholds, self.met.iter().copied(), observations, true) {
            if !met.contains(&i) {
                met.push(i);
            }
        }
        self.first_observed = met.iter().map(|i| (*i, self.first_observed.get(i).copied().unwrap_or(now))).collect();
        for i in &met {
            self.conditions_last_observed.insert(thresholds[*i].signal.condition(), now);
        }
        let mut conditions = Conditions::default();
        for (condition, at) in &self.conditions_last_observed {
            if now.saturating_duration_since(*at) < transition_period {
                conditions.set(*condition);
            }
        }
        let mut ready: Vec<usize> = met
            .iter()
            .copied()
            .filter(|i| now.saturating_duration_since(self.first_observed[i]) >= thresholds[*i].grace_period)
            .collect();
        // Memory before the rest (upstream `byEvictionPriority`), otherwise in configured order.
        ready.sort_by_key(|i| !thresholds[*i].signal.is_memory());
        self.met = ready.clone();
        Pass { conditions, met: ready.into_iter().map(|i| thresholds[i].clone()).collect() }
    }

    /// Whether node-level reclaim resolved everything: no configured threshold
    /// is met against `observations`, minimum reclaim included (upstream's
    /// check after image garbage collection).
    pub fn resolved(thresholds: &[Threshold], observations: &Observations) -> bool {
        meeting(thresholds, 0..thresholds.len(), observations, true).is_empty()
    }
}

/// The indices in `candidates` whose thresholds `observations` meet;
/// signals not observed never meet a threshold.
fn meeting(
    thresholds: &[Threshold],
    candidates: impl Iterator<Item = usize>,
    observations: &Observations,
    enforce_min_reclaim: bool,
) -> Vec<usize> {
    candidates
        .filter(|i| {
            let t = &thresholds[*i];
            observations.get(t.signal).is_some_and(|o| t.is_met(o.available.value, o.capacity, enforce_min_reclaim))
        })
        .collect()
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
