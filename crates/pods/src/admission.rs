//! Admission on the node, before anything runs (upstream `lifecycle/predicate.go`):
//! the pod must target wasm, fit the node's allocatable resources, and stay
//! within `--max-pods`. A rejected pod ends Failed with the upstream reason
//! and `Pod was rejected: <message>`, once; it is never retried.

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use crate::quantity;

/// What the node can give pods (its allocatable resources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocatable {
    /// CPU in millicores.
    pub cpu_milli: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
    /// Pods.
    pub pods: i64,
}

impl Allocatable {
    /// As Kubernetes quantities (for the downward API's `limits.*` defaults).
    pub fn quantities(
        &self,
    ) -> std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity> {
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        std::collections::BTreeMap::from([
            ("cpu".to_owned(), wasmlet_quantity::cpu(u(self.cpu_milli))),
            ("memory".to_owned(), wasmlet_quantity::bytes(u(self.memory_bytes))),
            ("pods".to_owned(), wasmlet_quantity::count(u(self.pods))),
        ])
    }
}

/// How pods opt in to wasm. DaemonSet pods that tolerate every taint land on
/// every node; unless they opt in, they are rejected rather than run.
#[derive(Debug, Clone)]
pub struct WasmPolicy {
    /// RuntimeClass names that mean "wasm" (default: `wasmlet`).
    pub runtime_classes: Vec<String>,
    /// The node's `kubernetes.io/arch` label value (`wasm32`).
    pub arch: String,
}

/// Why a pod was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Upstream-style reason: `OutOfcpu`, `OutOfmemory`, `OutOfpods`, ...
    pub reason: String,
    /// The full status message, `Pod was rejected: ...`.
    pub message: String,
}

impl Rejection {
    /// Reason `reason`, message `Pod was rejected: <detail>`.
    pub fn new(reason: &str, detail: &str) -> Self {
        Self { reason: reason.to_owned(), message: format!("Pod was rejected: {detail}") }
    }
}

/// The resources a pod requests (what the scheduler and upstream admission count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// Millicores.
    pub cpu_milli: i64,
    /// Bytes.
    pub memory_bytes: i64,
}

impl Requests {
    /// Requests of `spec`: the larger of the sum over containers and the
    /// largest init container. Unparsable quantities count as zero (the
    /// apiserver validated them).
    pub fn of(spec: &PodSpec) -> Self {
        let one = |c: &k8s_openapi::api::core::v1::Container| {
            let get = |name: &str, parse: fn(&str) -> Result<i64, quantity::InvalidQuantity>| {
                c.resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get(name))
                    .and_then(|q| parse(&q.0).ok())
                    .unwrap_or(0)
            };
            Requests { cpu_milli: get("cpu", quantity::milli), memory_bytes: get("memory", quantity::units) }
        };
        let sum = spec.containers.iter().map(one).fold(Requests::default(), |a, b| Requests {
            cpu_milli: a.cpu_milli + b.cpu_milli,
            memory_bytes: a.memory_bytes + b.memory_bytes,
        });
        let init = spec.init_containers.iter().flatten().map(one).fold(Requests::default(), |a, b| Requests {
            cpu_milli: a.cpu_milli.max(b.cpu_milli),
            memory_bytes: a.memory_bytes.max(b.memory_bytes),
        });
        Requests { cpu_milli: sum.cpu_milli.max(init.cpu_milli), memory_bytes: sum.memory_bytes.max(init.memory_bytes) }
    }
}

/// Decides whether `pod` may run, given the pods already admitted (non-terminal).
pub fn admit(pod: &Pod, admitted: &[Requests], node: &Allocatable, policy: &WasmPolicy) -> Result<(), Rejection> {
    let Some(spec) = pod.spec.as_ref() else {
        return Err(Rejection::new("UnexpectedAdmissionError", "the pod has no spec"));
    };
    if let Some(os) = spec.os.as_ref() {
        return Err(Rejection::new(
            "PodOSNotSupported",
            &format!("the pod requires OS {:?}, this node runs WebAssembly (kubernetes.io/os=wasi)", os.name),
        ));
    }
    if is_daemonset_pod(pod) && !targets_wasm(spec, policy) {
        return Err(Rejection::new(
            "UnsupportedWorkload",
            &format!(
                "wasmlet runs only WebAssembly; this DaemonSet pod does not target wasm nodes (set runtimeClassName: {}, \
                 a kubernetes.io/arch={} nodeSelector, or a toleration for the kubernetes.io/arch taint)",
                policy.runtime_classes.first().map_or("wasmlet", String::as_str),
                policy.arch
            ),
        ));
    }
    let used_pods = admitted.len() as i64;
    if used_pods + 1 > node.pods {
        return Err(out_of("pods", 1, used_pods, node.pods));
    }
    let want = Requests::of(spec);
    let used = admitted.iter().fold(Requests::default(), |a, b| Requests {
        cpu_milli: a.cpu_milli + b.cpu_milli,
        memory_bytes: a.memory_bytes + b.memory_bytes,
    });
    if want.cpu_milli > 0 && used.cpu_milli + want.cpu_milli > node.cpu_milli {
        return Err(out_of("cpu", want.cpu_milli, used.cpu_milli, node.cpu_milli));
    }
    if want.memory_bytes > 0 && used.memory_bytes + want.memory_bytes > node.memory_bytes {
        return Err(out_of("memory", want.memory_bytes, used.memory_bytes, node.memory_bytes));
    }
    Ok(())
}

/// Upstream's eviction admit handler, which runs before the others: under
/// node pressure `admission` refuses BestEffort pods (memory) or every pod
/// (disk), reason `Evicted`.
pub(crate) fn under_pressure(admission: Option<&wasmlet_eviction::Admission>, pod: &Pod) -> Result<(), Rejection> {
    match admission.map(|a| a.admit(pod)) {
        Some(Err(r)) => Err(Rejection::new(r.reason, &r.message)),
        _ => Ok(()),
    }
}

fn out_of(resource: &str, requested: i64, used: i64, capacity: i64) -> Rejection {
    Rejection::new(
        &format!("OutOf{resource}"),
        &format!(
            "Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    )
}

fn is_daemonset_pod(pod: &Pod) -> bool {
    pod.metadata.owner_references.iter().flatten().any(|o| o.kind == "DaemonSet" && o.controller == Some(true))
}

/// Whether the pod explicitly asks for a wasm node (not just "tolerate everything").
fn targets_wasm(spec: &PodSpec, policy: &WasmPolicy) -> bool {
    let by_class = spec.runtime_class_name.as_ref().is_some_and(|c| policy.runtime_classes.contains(c));
    let by_selector =
        spec.node_selector.as_ref().and_then(|s| s.get("kubernetes.io/arch")).is_some_and(|a| *a == policy.arch);
    let by_toleration = spec.tolerations.iter().flatten().any(|t| t.key.as_deref() == Some("kubernetes.io/arch"));
    by_class || by_selector || by_toleration
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn node() -> Allocatable {
        Allocatable { cpu_milli: 2000, memory_bytes: 1 << 30, pods: 3 }
    }

    fn policy() -> WasmPolicy {
        WasmPolicy { runtime_classes: vec!["wasmlet".into()], arch: "wasm32".into() }
    }

    fn with_requests(cpu: &str, mem: &str) -> Pod {
        pod(serde_json::json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": cpu, "memory": mem}}},
            {"name": "b", "resources": {"requests": {"cpu": cpu}}}
        ]}}))
    }

    #[test]
    fn fits_or_is_out_of_a_resource() {
        assert_eq!(admit(&with_requests("500m", "100Mi"), &[], &node(), &policy()), Ok(()));
        let err = admit(&with_requests("1100m", "1Mi"), &[], &node(), &policy()).unwrap_err();
        assert_eq!(err.reason, "OutOfcpu");
        assert_eq!(
            err.message,
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 2200, used: 0, capacity: 2000"
        );
        let err = admit(&with_requests("1m", "2Gi"), &[], &node(), &policy()).unwrap_err();
        assert_eq!(err.reason, "OutOfmemory");
        let used = [Requests { cpu_milli: 1900, memory_bytes: 0 }];
        assert_eq!(admit(&with_requests("100m", "1Mi"), &used, &node(), &policy()).unwrap_err().reason, "OutOfcpu");
        let full = [Requests::default(); 3];
        assert_eq!(admit(&with_requests("0", "0"), &full, &node(), &policy()).unwrap_err().reason, "OutOfpods");
    }

    #[test]
    fn init_containers_count_by_their_maximum() {
        let p = pod(serde_json::json!({"spec": {
            "initContainers": [{"name": "i", "resources": {"requests": {"memory": "512Mi"}}}],
            "containers": [{"name": "a", "resources": {"requests": {"memory": "100Mi"}}}]
        }}));
        assert_eq!(Requests::of(p.spec.as_ref().unwrap()).memory_bytes, 512 << 20);
    }

    #[test]
    fn daemonsets_must_opt_in_to_wasm() {
        let ds = |extra: serde_json::Value| {
            let mut v = serde_json::json!({
                "metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "d", "uid": "u", "controller": true}]},
                "spec": {"containers": [{"name": "a"}], "tolerations": [{"operator": "Exists"}]}
            });
            if let serde_json::Value::Object(m) = extra {
                for (k, val) in m {
                    v["spec"][k] = val;
                }
            }
            pod(v)
        };
        let err = admit(&ds(serde_json::json!({})), &[], &node(), &policy()).unwrap_err();
        assert_eq!(err.reason, "UnsupportedWorkload");
        assert!(err.message.contains("runtimeClassName: wasmlet"), "{}", err.message);
        assert_eq!(admit(&ds(serde_json::json!({"runtimeClassName": "wasmlet"})), &[], &node(), &policy()), Ok(()));
        let by_selector = ds(serde_json::json!({"nodeSelector": {"kubernetes.io/arch": "wasm32"}}));
        assert_eq!(admit(&by_selector, &[], &node(), &policy()), Ok(()));
        // A bare pod is not second-guessed.
        assert_eq!(admit(&with_requests("1m", "1Mi"), &[], &node(), &policy()), Ok(()));
    }

    #[test]
    fn pressure_refuses_best_effort_pods_with_upstreams_words() {
        let (tx, rx) = tokio::sync::watch::channel(wasmlet_eviction::Conditions::default());
        let admission = wasmlet_eviction::Admission::new(rx);
        let best_effort = pod(serde_json::json!({"spec": {"containers": [{"name": "a"}]}}));
        assert_eq!(under_pressure(Some(&admission), &best_effort), Ok(()));
        tx.send_replace(wasmlet_eviction::Conditions { memory_pressure: true, ..Default::default() });
        let r = under_pressure(Some(&admission), &best_effort).unwrap_err();
        assert_eq!(r.reason, "Evicted");
        assert_eq!(r.message, "Pod was rejected: The node had condition: [MemoryPressure]. ");
        assert_eq!(under_pressure(Some(&admission), &with_requests("1m", "1Mi")), Ok(()), "Burstable is admitted");
        assert_eq!(under_pressure(None, &best_effort), Ok(()), "no eviction manager, no pressure");
    }

    #[test]
    fn pods_asking_for_an_os_are_rejected() {
        let p = pod(serde_json::json!({"spec": {"os": {"name": "linux"}, "containers": [{"name": "a"}]}}));
        assert_eq!(admit(&p, &[], &node(), &policy()).unwrap_err().reason, "PodOSNotSupported");
    }
}
