//! Small helpers for tests that create pods and read their status.

use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Api;
use kube::api::PostParams;

use crate::{Namespace, testbed, wait};

/// The default wait for something a node does (pull, start, report).
pub const POD_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates a pod from JSON in the namespace.
pub async fn create(ns: &Namespace, pod: serde_json::Value) -> Pod {
    let pod: Pod = serde_json::from_value(pod).unwrap_or_else(|e| panic!("pod JSON: {e}"));
    match ns.api::<Pod>().create(&PostParams::default(), &pod).await {
        Ok(p) => p,
        Err(e) => panic!("creating pod {:?}: {e}", pod.metadata.name),
    }
}

/// A pod bound to `node` running `image` with `args` and restart policy `restart`.
pub fn bare(name: &str, node: &str, image: &str, args: &[&str], restart: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "nodeName": node,
            "restartPolicy": restart,
            "tolerations": [{ "key": "kubernetes.io/arch", "operator": "Exists" }],
            "containers": [{ "name": "main", "image": image, "args": args }]
        }
    })
}

/// Waits until `cond` holds for pod `name`; panics with the pod and the agent's
/// log (`node_log`) on timeout.
pub async fn wait_for(
    api: &Api<Pod>,
    name: &str,
    timeout: Duration,
    node_log: impl Fn() -> String,
    cond: impl Fn(&Pod) -> bool,
) -> Pod {
    match wait::try_for_object(api, name, timeout, |p| p.is_some_and(&cond)).await {
        Ok(Some(p)) => p,
        Ok(None) => panic!("pod {name} vanished"),
        Err(last) => panic!(
            "timed out after {timeout:?} waiting for pod {name}; last seen status: {:#?}\n---- wasmlet log ----\n{}",
            last.and_then(|p| p.status),
            node_log()
        ),
    }
}

/// The pod's phase.
pub fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// The status of container `name`.
pub fn container<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == name)
}

/// The waiting reason of container `name`, if it waits.
pub fn waiting_reason<'a>(p: &'a Pod, name: &str) -> Option<&'a str> {
    container(p, name)?.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

/// The terminated state of container `name`, if it ended.
pub fn terminated<'a>(p: &'a Pod, name: &str) -> Option<&'a k8s_openapi::api::core::v1::ContainerStateTerminated> {
    container(p, name)?.state.as_ref()?.terminated.as_ref()
}

/// Whether container `name` runs.
pub fn running(p: &Pod, name: &str) -> bool {
    container(p, name).and_then(|c| c.state.as_ref()?.running.as_ref()).is_some()
}

/// Runs the test bed's kubectl as cluster admin.
pub async fn kubectl(args: &[&str]) -> Output {
    let tb = testbed().await;
    Command::new(tb.bin_dir().join("kubectl"))
        .arg(format!("--kubeconfig={}", tb.admin_kubeconfig().display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running kubectl: {e}"))
}

/// Runs kubectl and returns its stdout, panicking (with stderr) if it fails.
pub async fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args).await;
    assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Applies the repository's RuntimeClass (`deploy/runtimeclass.yaml`).
pub async fn apply_runtime_class() {
    let path = crate::repo_root().join("deploy").join("runtimeclass.yaml");
    kubectl_ok(&["apply", "--server-side", "-f", &path.display().to_string()]).await;
}
