//! Admission under pressure (upstream's eviction manager `Admit`): with
//! only `MemoryPressure`, BestEffort pods are refused unless they tolerate
//! the memory-pressure taint; with any other pressure condition every pod is
//! refused. Critical pods are always admitted.

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;

use crate::message::{REASON, node_condition};
use crate::pod::{self, Qos, TAINT_MEMORY_PRESSURE};
use crate::signal::{Condition, Conditions};

/// Why a pod is refused: reason `Evicted` and `The node had condition: [...]. `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Upstream's reason, `Evicted`.
    pub reason: &'static str,
    /// Upstream's message.
    pub message: String,
}

/// Admission against the eviction manager's current conditions; cheap to clone.
#[derive(Debug, Clone)]
pub struct Admission {
    conditions: watch::Receiver<Conditions>,
}

impl Admission {
    /// Admission that follows `conditions` (see [`Manager::admission`](crate::Manager::admission)).
    pub fn new(conditions: watch::Receiver<Conditions>) -> Self {
        Self { conditions }
    }

    /// The pressure conditions now.
    pub fn conditions(&self) -> Conditions {
        *self.conditions.borrow()
    }

    /// Whether `pod` may be admitted now.
    ///
    /// # Errors
    ///
    /// The [`Rejection`] to report when it may not.
    pub fn admit(&self, pod: &Pod) -> Result<(), Rejection> {
        decide(&self.conditions(), pod)
    }
}

/// The decision for `pod` under `conditions`.
///
/// # Errors
///
/// The [`Rejection`] when `pod` may not be admitted.
pub fn decide(conditions: &Conditions, pod: &Pod) -> Result<(), Rejection> {
    let active = conditions.active();
    if active.is_empty() || pod::is_critical(pod) {
        return Ok(());
    }
    if active == [Condition::MemoryPressure]
        && (pod::qos(pod) != Qos::BestEffort || pod::tolerates(pod, TAINT_MEMORY_PRESSURE))
    {
        return Ok(());
    }
    Err(Rejection { reason: REASON, message: node_condition(&active) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn best_effort_pods_wait_out_memory_pressure_and_every_pod_disk_pressure() {
        let best_effort = pod(serde_json::json!({"spec": {"containers": [{"name": "a"}]}}));
        let burstable = pod(
            serde_json::json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"memory": "1Mi"}}}]}}),
        );
        let tolerant = pod(serde_json::json!({"spec": {"containers": [{"name": "a"}], "tolerations": [
            {"key": TAINT_MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"}
        ]}}));
        let critical = pod(serde_json::json!({"spec": {"containers": [{"name": "a"}], "priority": 2_000_000_000}}));
        let none = Conditions::default();
        let memory = Conditions { memory_pressure: true, ..Conditions::default() };
        let disk = Conditions { disk_pressure: true, ..Conditions::default() };
        let both = Conditions { memory_pressure: true, disk_pressure: true, ..Conditions::default() };

        assert_eq!(decide(&none, &best_effort), Ok(()));
        let refused = decide(&memory, &best_effort).unwrap_err();
        assert_eq!(
            (refused.reason, refused.message.as_str()),
            ("Evicted", "The node had condition: [MemoryPressure]. ")
        );
        assert_eq!(decide(&memory, &burstable), Ok(()));
        assert_eq!(decide(&memory, &tolerant), Ok(()));
        assert_eq!(decide(&disk, &burstable).unwrap_err().message, "The node had condition: [DiskPressure]. ");
        assert!(decide(&both, &tolerant).is_err(), "tolerating memory pressure is not enough with disk pressure");
        assert!(decide(&both, &burstable).is_err());
        assert_eq!(decide(&both, &critical), Ok(()));
    }
}
