//! Graceful node shutdown: `--shutdown-grace-period` and
//! `--shutdown-grace-period-critical-pods` (both default 0 = off, as
//! upstream), or the config file's `shutdownGracePeriodByPodPriority`.

use std::time::Duration;

use super::{Invalid, invalid};

/// One entry of `shutdownGracePeriodByPodPriority` (upstream's shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ByPriority {
    /// The lowest priority of the band.
    pub(crate) priority: i32,
    /// How long its pods get.
    pub(crate) shutdown_grace_period_seconds: i64,
}

/// The validated shutdown settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Shutdown {
    /// How long a node shutdown is delayed for pods in all.
    pub(crate) grace: Duration,
    /// The part of it kept for critical pods, which stop last.
    pub(crate) critical: Duration,
    /// Explicit bands (`shutdownGracePeriodByPodPriority`), when given.
    pub(crate) by_priority: Vec<wasmlet_shutdown::PriorityPeriod>,
}

impl Shutdown {
    /// The priority bands the shutdown manager uses (none when off).
    pub(crate) fn periods(&self) -> Vec<wasmlet_shutdown::PriorityPeriod> {
        if !self.by_priority.is_empty() {
            return self.by_priority.clone();
        }
        wasmlet_shutdown::plan::migrate(self.grace, self.critical)
    }
}

/// Parses both (Go durations) and checks, as upstream's validation, that
/// the critical part is not longer than the whole, and that explicit bands
/// are not combined with them and have no negative period.
pub(crate) fn settings(
    grace: Option<&str>,
    critical: Option<&str>,
    by_priority: Option<&[ByPriority]>,
) -> Result<Shutdown, Invalid> {
    let parse = |flag: &str, v: Option<&str>| match v {
        Some(v) => wasmlet_eviction::duration::parse(v).map_err(|e| invalid(format!("--{flag}: {e}"))),
        None => Ok(Duration::ZERO),
    };
    let grace = parse("shutdown-grace-period", grace)?;
    let critical = parse("shutdown-grace-period-critical-pods", critical)?;
    if critical > grace {
        return Err(invalid(format!(
            "--shutdown-grace-period-critical-pods ({critical:?}) must not exceed --shutdown-grace-period ({grace:?})"
        )));
    }
    let by_priority = by_priority.unwrap_or_default();
    let flags_set = !grace.is_zero() || !critical.is_zero();
    if !by_priority.is_empty() && flags_set {
        return Err(invalid(
            "shutdownGracePeriodByPodPriority cannot be combined with --shutdown-grace-period(-critical-pods)",
        ));
    }
    let mut bands = Vec::with_capacity(by_priority.len());
    for b in by_priority {
        let secs = u64::try_from(b.shutdown_grace_period_seconds).map_err(|_| {
            invalid(format!("shutdownGracePeriodByPodPriority: priority {}: a negative period", b.priority))
        })?;
        bands.push(wasmlet_shutdown::PriorityPeriod { priority: b.priority, grace: Duration::from_secs(secs) });
    }
    Ok(Shutdown { grace, critical, by_priority: bands })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_default_to_off_and_critical_may_not_exceed_the_whole() {
        let off = settings(None, None, None).unwrap();
        assert_eq!(off, Shutdown::default());
        assert!(off.periods().is_empty(), "0 = disabled, as upstream");
        let s = settings(Some("20s"), Some("10s"), None).unwrap();
        assert_eq!((s.grace, s.critical), (Duration::from_secs(20), Duration::from_secs(10)));
        assert_eq!(s.periods().len(), 2);
        let e = settings(Some("10s"), Some("20s"), None).unwrap_err().to_string();
        assert!(e.contains("must not exceed"), "{e}");
        let e = settings(Some("ten"), None, None).unwrap_err().to_string();
        assert!(e.contains("--shutdown-grace-period:"), "{e}");
        let e = settings(Some("1m"), Some("-1s"), None).unwrap_err().to_string();
        assert!(e.contains("--shutdown-grace-period-critical-pods"), "{e}");
    }

    #[test]
    fn bands_by_priority_come_from_the_config_file_alone() {
        let yaml = "shutdownGracePeriodByPodPriority:\n- {priority: 0, shutdownGracePeriodSeconds: 30}\n\
                    - {priority: 100000, shutdownGracePeriodSeconds: 5}\n";
        let args: crate::config::Args = serde_yaml::from_str(yaml).unwrap();
        let bands = args.shutdown_grace_period_by_pod_priority.unwrap();
        let s = settings(None, None, Some(&bands)).unwrap();
        let periods = s.periods();
        assert_eq!(periods.len(), 2);
        assert_eq!((periods[1].priority, periods[1].grace), (100_000, Duration::from_secs(5)));
        let e = settings(Some("10s"), None, Some(&bands)).unwrap_err().to_string();
        assert!(e.contains("cannot be combined"), "{e}");
        let negative = [ByPriority { priority: 7, shutdown_grace_period_seconds: -1 }];
        let e = settings(None, None, Some(&negative)).unwrap_err().to_string();
        assert!(e.contains("priority 7"), "{e}");
    }
}
