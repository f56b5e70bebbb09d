//! What the eviction manager reads from a pod object: requests, priority,
//! QoS class, and whether it is critical (never evicted).

use k8s_openapi::api::core::v1::{Container, Pod, Toleration};

/// Upstream `scheduling.SystemCriticalPriority` (2 × the highest
/// user-definable priority): pods at or above it are critical.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;
/// Annotation naming a pod's source (`api`, `file`, `http`); a static pod's
/// is not `api`.
pub const CONFIG_SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// Annotation of a mirror pod (the API object of a static pod).
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The taint the node lifecycle controller sets for `MemoryPressure`.
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";

/// A pod's quality of service class (upstream `GetPodQOS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    /// Every container has equal CPU and memory requests and limits.
    Guaranteed,
    /// Some request or limit, not Guaranteed.
    Burstable,
    /// No CPU or memory requests or limits at all.
    BestEffort,
}

/// The pod's priority (`spec.priority`, 0 when unset).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

/// Upstream `kubetypes.IsCriticalPod`: static and mirror pods, and pods at
/// or above [`SYSTEM_CRITICAL_PRIORITY`]. They are admitted under pressure
/// and never evicted.
pub fn is_critical(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    let source = annotations.and_then(|a| a.get(CONFIG_SOURCE_ANNOTATION));
    let is_static = source.is_some_and(|s| s != "api");
    let is_mirror = annotations.is_some_and(|a| a.contains_key(CONFIG_MIRROR_ANNOTATION));
    is_static || is_mirror || priority(pod) >= SYSTEM_CRITICAL_PRIORITY
}

/// The QoS class: `status.qosClass` (set by the API server when the pod was
/// created), else computed from the spec as upstream's `ComputePodQOS`.
pub fn qos(pod: &Pod) -> Qos {
    match pod.status.as_ref().and_then(|s| s.qos_class.as_deref()) {
        Some("Guaranteed") => Qos::Guaranteed,
        Some("Burstable") => Qos::Burstable,
        Some("BestEffort") => Qos::BestEffort,
        _ => compute_qos(pod),
    }
}

fn compute_qos(pod: &Pod) -> Qos {
    let Some(spec) = pod.spec.as_ref() else { return Qos::BestEffort };
    let positive = |list: Option<&std::collections::BTreeMap<String, _>>, name: &str| -> Option<i64> {
        let q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity = list?.get(name)?;
        wasmlet_quantity::milli(&q.0).ok().filter(|v| *v > 0)
    };
    let mut requests = [0i64; 2];
    let mut limits = [0i64; 2];
    let (mut any_request, mut any_limit) = ([false; 2], [false; 2]);
    let mut guaranteed = true;
    let pod_level = spec.resources.as_ref();
    let all: Vec<Option<&k8s_openapi::api::core::v1::ResourceRequirements>> = match pod_level {
        Some(r) if r.requests.is_some() || r.limits.is_some() => vec![Some(r)],
        _ => {
            spec.containers.iter().chain(spec.init_containers.iter().flatten()).map(|c| c.resources.as_ref()).collect()
        }
    };
    for resources in all {
        let mut limits_found = [false; 2];
        for (i, name) in ["cpu", "memory"].into_iter().enumerate() {
            if let Some(v) = positive(resources.and_then(|r| r.requests.as_ref()), name) {
                requests[i] += v;
                any_request[i] = true;
            }
            if let Some(v) = positive(resources.and_then(|r| r.limits.as_ref()), name) {
                limits[i] += v;
                any_limit[i] = true;
                limits_found[i] = true;
            }
        }
        if !limits_found.iter().all(|f| *f) {
            guaranteed = false;
        }
    }
    if !any_request.iter().any(|r| *r) && !any_limit.iter().any(|l| *l) {
        return Qos::BestEffort;
    }
    let equal = (0..2).all(|i| !any_request[i] || (any_limit[i] && limits[i] == requests[i]));
    let same_count = any_request == any_limit;
    if guaranteed && equal && same_count { Qos::Guaranteed } else { Qos::Burstable }
}

/// The pod's request of `resource` (`memory`, `ephemeral-storage`) in units
/// (bytes), as upstream's `GetResourceRequestQuantity`: pod-level requests
/// when set, else the containers' sum (native sidecars included) or the
/// largest init container if that is more, plus the pod overhead when the
/// total is not zero.
pub fn request(pod: &Pod, resource: &str) -> i64 {
    let Some(spec) = pod.spec.as_ref() else { return 0 };
    let pod_level = spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get(resource));
    let mut total = match pod_level {
        Some(q) => wasmlet_quantity::units(&q.0).unwrap_or(0),
        None => aggregate(&spec.containers, spec.init_containers.as_deref().unwrap_or(&[]), resource),
    };
    if total != 0
        && let Some(o) = spec.overhead.as_ref().and_then(|o| o.get(resource))
    {
        total += wasmlet_quantity::units(&o.0).unwrap_or(0);
    }
    total
}

fn aggregate(containers: &[Container], init: &[Container], resource: &str) -> i64 {
    let mut sum: i64 = containers.iter().map(|c| container_request(c, resource)).sum();
    let (mut sidecars, mut init_max) = (0i64, 0i64);
    for c in init {
        let r = container_request(c, resource);
        if c.restart_policy.as_deref() == Some("Always") {
            sum += r;
            sidecars += r;
            init_max = init_max.max(sidecars);
        } else {
            init_max = init_max.max(r + sidecars);
        }
    }
    sum.max(init_max)
}

/// One container's request of `resource` in units (0 when unset).
pub fn container_request(c: &Container, resource: &str) -> i64 {
    container_request_text(c, resource).and_then(|q| wasmlet_quantity::units(q).ok()).unwrap_or(0)
}

/// One container's request of `resource` as written in the spec.
pub fn container_request_text<'a>(c: &'a Container, resource: &str) -> Option<&'a str> {
    c.resources.as_ref()?.requests.as_ref()?.get(resource).map(|q| q.0.trim())
}

/// Whether the pod tolerates the `NoSchedule` taint `key` (with no value),
/// as upstream's `TolerationsTolerateTaint`.
pub fn tolerates(pod: &Pod, key: &str) -> bool {
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
    tolerations.iter().any(|t| toleration_matches(t, key, "NoSchedule"))
}

fn toleration_matches(t: &Toleration, key: &str, effect: &str) -> bool {
    if t.effect.as_deref().is_some_and(|e| !e.is_empty() && e != effect) {
        return false;
    }
    let operator = t.operator.as_deref().unwrap_or("Equal");
    match t.key.as_deref().unwrap_or("") {
        "" => operator == "Exists",
        k if k != key => false,
        _ => match operator {
            "Exists" => true,
            "Equal" | "" => t.value.as_deref().unwrap_or("").is_empty(),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn with_resources(resources: serde_json::Value) -> Pod {
        pod(serde_json::json!({"spec": {"containers": [{"name": "a", "resources": resources}]}}))
    }

    #[test]
    fn qos_classes_as_upstream() {
        assert_eq!(qos(&with_resources(serde_json::json!({}))), Qos::BestEffort);
        let burstable = with_resources(serde_json::json!({"requests": {"memory": "64Mi"}}));
        assert_eq!(qos(&burstable), Qos::Burstable);
        let guaranteed = with_resources(serde_json::json!({
            "requests": {"memory": "64Mi", "cpu": "100m"}, "limits": {"memory": "64Mi", "cpu": "0.1"}
        }));
        assert_eq!(qos(&guaranteed), Qos::Guaranteed);
        let memory_only =
            with_resources(serde_json::json!({"requests": {"memory": "64Mi"}, "limits": {"memory": "64Mi"}}));
        assert_eq!(qos(&memory_only), Qos::Burstable, "a CPU limit is needed too");
        let zero = with_resources(serde_json::json!({"requests": {"memory": "0"}}));
        assert_eq!(qos(&zero), Qos::BestEffort, "zero requests do not count");
        let mut told = burstable.clone();
        told.status =
            Some(k8s_openapi::api::core::v1::PodStatus { qos_class: Some("Guaranteed".into()), ..Default::default() });
        assert_eq!(qos(&told), Qos::Guaranteed, "the API server's class wins");
    }

    #[test]
    fn requests_sum_containers_and_take_the_largest_init() {
        let p = pod(serde_json::json!({"spec": {
            "initContainers": [
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"memory": "10Mi"}}},
                {"name": "init", "resources": {"requests": {"memory": "200Mi"}}}
            ],
            "containers": [
                {"name": "a", "resources": {"requests": {"memory": "50Mi"}}},
                {"name": "b", "resources": {"requests": {"memory": "60Mi"}}}
            ],
            "overhead": {"memory": "1Mi"}
        }}));
        // max(50 + 60 + 10 (sidecar), 200 + 10 (init beside the sidecar)) + 1 overhead
        assert_eq!(request(&p, "memory"), 211 << 20);
        assert_eq!(request(&p, "ephemeral-storage"), 0, "no overhead on a zero total");
        let level = pod(serde_json::json!({"spec": {
            "resources": {"requests": {"memory": "1Gi"}},
            "containers": [{"name": "a", "resources": {"requests": {"memory": "50Mi"}}}]
        }}));
        assert_eq!(request(&level, "memory"), 1 << 30, "pod-level requests win");
    }

    #[test]
    fn critical_pods() {
        assert!(!is_critical(&pod(serde_json::json!({"spec": {"containers": []}}))));
        assert!(is_critical(&pod(serde_json::json!({"spec": {"containers": [], "priority": 2_000_001_000}}))));
        assert!(!is_critical(&pod(serde_json::json!({"spec": {"containers": [], "priority": 1_000_000_000}}))));
        let annotated = |k: &str, v: &str| pod(serde_json::json!({"metadata": {"annotations": {k: v}}}));
        assert!(is_critical(&annotated(CONFIG_SOURCE_ANNOTATION, "file")));
        assert!(!is_critical(&annotated(CONFIG_SOURCE_ANNOTATION, "api")));
        assert!(is_critical(&annotated(CONFIG_MIRROR_ANNOTATION, "abc")));
    }

    #[test]
    fn tolerations_of_the_memory_pressure_taint() {
        let with = |t: serde_json::Value| pod(serde_json::json!({"spec": {"containers": [], "tolerations": [t]}}));
        let key = TAINT_MEMORY_PRESSURE;
        assert!(tolerates(&with(serde_json::json!({"key": key, "operator": "Exists", "effect": "NoSchedule"})), key));
        assert!(tolerates(&with(serde_json::json!({"operator": "Exists"})), key));
        assert!(tolerates(&with(serde_json::json!({"key": key})), key), "Equal with an empty value");
        assert!(!tolerates(&with(serde_json::json!({"key": key, "value": "x"})), key));
        assert!(!tolerates(&with(serde_json::json!({"key": key, "operator": "Exists", "effect": "NoExecute"})), key));
        let disk = "node.kubernetes.io/disk-pressure";
        assert!(!tolerates(&with(serde_json::json!({"key": disk, "operator": "Exists"})), key));
    }
}
