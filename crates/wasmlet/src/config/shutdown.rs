//! Graceful node shutdown: `--shutdown-grace-period` and
//! `--shutdown-grace-period-critical-pods` (both default 0 = off, as upstream).

use std::time::Duration;

use super::{Invalid, invalid};

/// The validated shutdown settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Shutdown {
    /// How long a node shutdown is delayed for pods in all.
    pub(crate) grace: Duration,
    /// The part of it kept for critical pods, which stop last.
    pub(crate) critical: Duration,
}

impl Shutdown {
    /// The priority bands the shutdown manager uses (none when off).
    pub(crate) fn periods(&self) -> Vec<wasmlet_shutdown::PriorityPeriod> {
        wasmlet_shutdown::plan::migrate(self.grace, self.critical)
    }
}

/// Parses both (Go durations) and checks, as upstream's validation, that
/// the critical part is not longer than the whole.
pub(crate) fn settings(grace: Option<&str>, critical: Option<&str>) -> Result<Shutdown, Invalid> {
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
    Ok(Shutdown { grace, critical })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_default_to_off_and_critical_may_not_exceed_the_whole() {
        let off = settings(None, None).unwrap();
        assert_eq!(off, Shutdown::default());
        assert!(off.periods().is_empty(), "0 = disabled, as upstream");
        let s = settings(Some("20s"), Some("10s")).unwrap();
        assert_eq!((s.grace, s.critical), (Duration::from_secs(20), Duration::from_secs(10)));
        assert_eq!(s.periods().len(), 2);
        let e = settings(Some("10s"), Some("20s")).unwrap_err().to_string();
        assert!(e.contains("must not exceed"), "{e}");
        let e = settings(Some("ten"), None).unwrap_err().to_string();
        assert!(e.contains("--shutdown-grace-period:"), "{e}");
        let e = settings(Some("1m"), Some("-1s")).unwrap_err().to_string();
        assert!(e.contains("--shutdown-grace-period-critical-pods"), "{e}");
    }
}
