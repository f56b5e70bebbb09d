//! `kubectl exec` runs a new instance of the container's guest, inside the
//! pod's environment and volumes; `kubectl attach` is refused clearly.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::PostParams;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, kubectl, kubectl_ok};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image};

#[tokio::test]
async fn exec_runs_commands_in_the_pods_sandbox() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "exec").await;
    let ns = Namespace::create(&admin_client().await, "exec").await;
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": "cfg" }, "data": { "motd": "hi there" } }))
            .unwrap();
    ns.api::<ConfigMap>().create(&PostParams::default(), &cm).await.unwrap();
    let api = ns.api::<Pod>();
    let mut pod = pods::bare("box", &node.name, &fixture_image("forever").await, &[], "Always");
    pod["spec"]["containers"][0]["env"] = serde_json::json!([{ "name": "COLOUR", "value": "green" }]);
    pod["spec"]["volumes"] = serde_json::json!([{ "name": "cfg", "configMap": { "name": "cfg" } }]);
    pod["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([{ "name": "cfg", "mountPath": "/etc/cfg" }]);
    pods::create(&ns, pod).await;
    pods::wait_for(&api, "box", POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main")).await;
    let n = ns.name();

    let out = kubectl_ok(&["exec", "-n", n, "box", "--", "forever", "echo", "hello", "from exec"]).await;
    assert_eq!(out, "hello from exec\n");
    assert_eq!(kubectl_ok(&["exec", "-n", n, "box", "--", "forever", "env", "COLOUR"]).await, "green\n");
    assert_eq!(kubectl_ok(&["exec", "-n", n, "box", "--", "forever", "cat", "/etc/cfg/motd"]).await, "hi there");

    // A non-zero exit code comes back through kubectl (SPDY v4 status).
    let failed = kubectl(&["exec", "-n", n, "box", "--", "forever", "exit", "3"]).await;
    assert_eq!(failed.status.code(), Some(3), "{}", String::from_utf8_lossy(&failed.stderr));
    let missing = kubectl(&["exec", "-n", n, "box", "--", "forever", "cat", "/nope"]).await;
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nope"));

    // The pod's own guest was not disturbed.
    let pod = api.get("box").await.unwrap();
    assert_eq!(pods::container(&pod, "main").unwrap().restart_count, 0);

    let attach = kubectl(&["attach", "-n", n, "box"]).await;
    assert!(!attach.status.success());
    assert!(String::from_utf8_lossy(&attach.stderr).contains("attach is not supported"), "{attach:?}");
    let wrong = kubectl(&["exec", "-n", n, "box", "-c", "nope", "--", "forever"]).await;
    assert!(!wrong.status.success());
}
