//! Which pods stop when, and with how much time: upstream's
//! `shutdownGracePeriodByPodPriority`, and its migration from the two
//! plain settings (`shutdownGracePeriod`, `shutdownGracePeriodCriticalPods`).

use std::time::Duration;

/// The priority of `system-cluster-critical` (`system-node-critical` is
/// 1000 more): pods at or above it stop last.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// One priority band: pods with a priority from `priority` up to the next
/// band's get `grace` to stop, all at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityPeriod {
    /// The lowest priority of the band.
    pub priority: i32,
    /// How long its pods get, in whole seconds as upstream.
    pub grace: Duration,
}

/// The bands of `--shutdown-grace-period` and
/// `--shutdown-grace-period-critical-pods`, as upstream migrates them:
/// regular pods (priority 0 and up, and any lower) get `total - critical`,
/// then critical pods get `critical`. Empty (the feature is off) when `total`
/// is 0 or `critical` exceeds it.
pub fn migrate(total: Duration, critical: Duration) -> Vec<PriorityPeriod> {
    if total.is_zero() || critical > total {
        return Vec::new();
    }
    vec![
        PriorityPeriod { priority: 0, grace: whole_seconds(total - critical) },
        PriorityPeriod { priority: SYSTEM_CRITICAL_PRIORITY, grace: whole_seconds(critical) },
    ]
}

/// What the bands ask of logind in total (`InhibitDelayMaxSec` must be at
/// least this).
pub fn requested(periods: &[PriorityPeriod]) -> Duration {
    periods.iter().map(|p| p.grace).sum()
}

/// One pod to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivePod {
    /// Its UID.
    pub uid: String,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
    /// `spec.terminationGracePeriodSeconds`, when set.
    pub termination_grace: Option<Duration>,
}

/// One band with its pods, in the order they stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The band.
    pub period: PriorityPeriod,
    /// Its pods with the grace each gets: the band's, or the pod's own
    /// termination grace period when that is shorter.
    pub pods: Vec<(ActivePod, Duration)>,
}

/// Sorts `pods` into the bands (lowest priority first), as upstream: a pod
/// joins the highest band whose priority is at most its own; one below
/// every band joins the lowest.
pub fn groups(periods: &[PriorityPeriod], pods: Vec<ActivePod>) -> Vec<Group> {
    let mut periods = periods.to_vec();
    periods.sort_by_key(|p| p.priority);
    let mut groups: Vec<Group> = periods.into_iter().map(|period| Group { period, pods: Vec::new() }).collect();
    if groups.is_empty() {
        return groups;
    }
    for pod in pods {
        let index = groups.iter().rposition(|g| g.period.priority <= pod.priority).unwrap_or(0);
        let band = groups[index].period.grace;
        let grace = pod.termination_grace.map_or(band, |own| own.min(band));
        groups[index].pods.push((pod, grace));
    }
    groups
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, priority: i32, own: Option<u64>) -> ActivePod {
        ActivePod { uid: uid.into(), priority, termination_grace: own.map(Duration::from_secs) }
    }

    #[test]
    fn the_two_settings_become_two_bands() {
        let bands = migrate(Duration::from_secs(20), Duration::from_secs(10));
        assert_eq!(
            bands,
            vec![
                PriorityPeriod { priority: 0, grace: Duration::from_secs(10) },
                PriorityPeriod { priority: SYSTEM_CRITICAL_PRIORITY, grace: Duration::from_secs(10) },
            ]
        );
        assert_eq!(requested(&bands), Duration::from_secs(20));
        assert!(migrate(Duration::ZERO, Duration::ZERO).is_empty(), "0 = off, the default");
        assert!(migrate(Duration::from_secs(5), Duration::from_secs(6)).is_empty(), "critical > total: off");
        let all_regular = migrate(Duration::from_millis(30_500), Duration::ZERO);
        assert_eq!(all_regular[0].grace, Duration::from_secs(30), "whole seconds, as upstream");
    }

    #[test]
    fn pods_fall_into_the_highest_band_at_or_below_their_priority() {
        let bands = [
            PriorityPeriod { priority: 100_000, grace: Duration::from_secs(5) },
            PriorityPeriod { priority: 0, grace: Duration::from_secs(20) },
            PriorityPeriod { priority: SYSTEM_CRITICAL_PRIORITY, grace: Duration::from_secs(10) },
        ];
        let pods = vec![
            pod("low", -5, None),
            pod("zero", 0, Some(30)),
            pod("mid", 100_000, None),
            pod("between", 1_999_999_999, Some(1)),
            pod("node-critical", SYSTEM_CRITICAL_PRIORITY + 1000, None),
        ];
        let g = groups(&bands, pods);
        let names = |i: usize| g[i].pods.iter().map(|(p, _)| p.uid.as_str()).collect::<Vec<_>>();
        assert_eq!(g.iter().map(|g| g.period.priority).collect::<Vec<_>>(), vec![0, 100_000, SYSTEM_CRITICAL_PRIORITY]);
        assert_eq!(names(0), vec!["low", "zero"], "below the lowest band: the lowest");
        assert_eq!(names(1), vec!["mid", "between"]);
        assert_eq!(names(2), vec!["node-critical"], "above the highest: the highest");
        assert_eq!(g[0].pods[1].1, Duration::from_secs(20), "own 30 s is longer than the band's 20 s");
        assert_eq!(g[1].pods[1].1, Duration::from_secs(1), "own 1 s is shorter than the band's 5 s");
        assert!(groups(&[], vec![pod("x", 0, None)]).is_empty());
    }
}
