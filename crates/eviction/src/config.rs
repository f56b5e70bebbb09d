//! [`Config`]: what the manager enforces and how often it looks.

use std::time::Duration;

use crate::threshold::{self, Flags, ParseError, Threshold};

/// Upstream `evictionMonitoringPeriod`: how often the manager looks.
pub const DEFAULT_MONITORING_INTERVAL: Duration = Duration::from_secs(10);
/// Upstream `evictionPressureTransitionPeriod` default.
pub const DEFAULT_PRESSURE_TRANSITION_PERIOD: Duration = Duration::from_secs(5 * 60);

/// The eviction manager's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The thresholds ([`threshold::parse`]).
    pub thresholds: Vec<Threshold>,
    /// How often signals are observed (`--eviction-monitoring-period`, 10 s).
    pub monitoring_interval: Duration,
    /// How long a pressure condition stays after its last threshold was met
    /// (`--eviction-pressure-transition-period`, 5 min).
    pub pressure_transition_period: Duration,
    /// The longest grace period a soft eviction gives a pod
    /// (`--eviction-max-pod-grace-period`, 0).
    pub max_pod_grace_period: Duration,
    /// Memory reserved for the system (`--system-reserved` +
    /// `--kube-reserved`): the pods' share of memory is capacity minus this,
    /// which `allocatableMemory.available` is measured against.
    pub reserved_memory: u64,
}

impl Default for Config {
    /// Upstream's defaults: the default hard thresholds, 10 s, 5 min, 0 s,
    /// nothing reserved.
    fn default() -> Self {
        Self {
            thresholds: threshold::parse(&Flags::default()).unwrap_or_default(),
            monitoring_interval: DEFAULT_MONITORING_INTERVAL,
            pressure_transition_period: DEFAULT_PRESSURE_TRANSITION_PERIOD,
            max_pod_grace_period: Duration::ZERO,
            reserved_memory: 0,
        }
    }
}

impl Config {
    /// The defaults with the thresholds of `flags`.
    ///
    /// # Errors
    ///
    /// A bad flag, as [`threshold::parse`] reports it.
    pub fn from_flags(flags: &Flags<'_>) -> Result<Self, ParseError> {
        Ok(Self { thresholds: threshold::parse(flags)?, ..Self::default() })
    }

    /// The hard thresholds (what node allocatable keeps out).
    pub fn hard(&self) -> impl Iterator<Item = &Threshold> {
        self.thresholds.iter().filter(|t| t.is_hard())
    }
}
