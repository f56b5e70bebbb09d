//! Configuration and volumes from the API: env from ConfigMaps and Secrets,
//! configMap volumes that change under a running guest, read-only mounts,
//! subPath escapes, and a projected service-account token that rotates.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use wasmlet_testkit::pods::{self, POD_TIMEOUT, phase};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image};

async fn create_config(ns: &Namespace) {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "settings" },
        "data": { "greeting": "hello", "colour": "blue" }
    }))
    .unwrap();
    ns.api::<ConfigMap>().create(&PostParams::default(), &cm).await.unwrap();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "credentials" },
        "stringData": { "token": "s3cret-value" }
    }))
    .unwrap();
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
}

/// Waits until the pod's log contains `needle`.
async fn wait_log(api: &Api<Pod>, name: &str, needle: &str, node: &WasmletNode) -> String {
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            poll.tick().await;
            if let Ok(logs) = api.logs(name, &Default::default()).await
                && logs.contains(needle)
            {
                return logs;
            }
        }
    })
    .await;
    match found {
        Ok(logs) => logs,
        Err(_) => {
            let logs = api.logs(name, &Default::default()).await;
            let pod = api.get(name).await.ok().and_then(|p| p.status);
            panic!("{name} never logged {needle:?}; its log: {logs:?}\nstatus: {pod:#?}\n{}", node.log_tail(60))
        }
    }
}

#[tokio::test]
async fn env_from_config_maps_secrets_and_the_downward_api() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "env").await;
    let ns = Namespace::create(&admin_client().await, "env").await;
    create_config(&ns).await;
    let api = ns.api::<Pod>();
    let mut pod = pods::bare("env", &node.name, &fixture_image("args-env").await, &[], "Never");
    pod["spec"]["containers"][0]["env"] = serde_json::json!([
        { "name": "GREETING", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "greeting" } } },
        { "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "credentials", "key": "token" } } },
        { "name": "MAYBE", "valueFrom": { "configMapKeyRef": { "name": "absent", "key": "k", "optional": true } } },
        { "name": "MEMORY", "valueFrom": { "resourceFieldRef": { "resource": "limits.memory", "divisor": "1Mi" } } },
        { "name": "POD_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } }
    ]);
    pod["spec"]["containers"][0]["envFrom"] =
        serde_json::json!([{ "prefix": "CM_", "configMapRef": { "name": "settings" } }]);
    pod["spec"]["containers"][0]["resources"] = serde_json::json!({ "limits": { "memory": "64Mi" } });
    pods::create(&ns, pod).await;
    let done = pods::wait_for(&api, "env", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Succeeded").await;
    let logs = api.logs("env", &Default::default()).await.unwrap();
    for want in [
        "env GREETING=hello",
        "env TOKEN=s3cret-value",
        "env CM_colour=blue",
        "env CM_greeting=hello",
        "env MEMORY=64",
        "env KUBERNETES_SERVICE_HOST=",
    ] {
        assert!(logs.contains(want), "missing {want:?} in\n{logs}");
    }
    let pod_ip = done.status.unwrap().pod_ip.unwrap();
    assert!(logs.contains(&format!("env POD_IP={pod_ip}")), "{logs}");

    // A mandatory key that does not exist: CreateContainerConfigError, as upstream.
    let mut bad = pods::bare("bad", &node.name, &fixture_image("args-env").await, &[], "Never");
    bad["spec"]["containers"][0]["env"] = serde_json::json!([
        { "name": "X", "valueFrom": { "configMapKeyRef": { "name": "settings", "key": "nope" } } }
    ]);
    pods::create(&ns, bad).await;
    let waiting = pods::wait_for(
        &api,
        "bad",
        POD_TIMEOUT,
        || node.log_tail(60),
        |p| pods::waiting_reason(p, "main") == Some("CreateContainerConfigError"),
    )
    .await;
    let message = pods::container(&waiting, "main").unwrap().state.clone().unwrap().waiting.unwrap().message;
    assert!(message.unwrap_or_default().contains("couldn't find key nope"), "upstream's message");
}

#[tokio::test]
async fn volumes_update_atomically_and_mounts_are_confined() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "vols").await;
    let ns = Namespace::create(&admin_client().await, "vols").await;
    create_config(&ns).await;
    let api = ns.api::<Pod>();

    // A running guest re-reads a configMap file; the ConfigMap changes under it.
    let mut watcher = pods::bare("watcher", &node.name, &fixture_image("read-file").await, &[], "Always");
    watcher["spec"]["volumes"] = serde_json::json!([{ "name": "config", "configMap": { "name": "settings" } }]);
    watcher["spec"]["containers"][0]["volumeMounts"] =
        serde_json::json!([{ "name": "config", "mountPath": "/config" }]);
    watcher["spec"]["containers"][0]["env"] = serde_json::json!([
        { "name": "FIXTURE_FILE", "value": "/config/greeting" }, { "name": "WATCH_MS", "value": "200" }
    ]);
    pods::create(&ns, watcher).await;
    wait_log(&api, "watcher", "content: hello", &node).await;
    let patch = serde_json::json!({ "data": { "greeting": "goodbye" } });
    ns.api::<ConfigMap>().patch("settings", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let logs = wait_log(&api, "watcher", "content: goodbye", &node).await;
    assert!(!logs.contains("content: <"), "the guest never saw a missing file during the swap:\n{logs}");

    // One hostPath volume at two paths: writable at /rw, read-only at /ro.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("file.txt"), "on the host\n").unwrap();
    let mut writer =
        pods::bare("writer", &node.name, &fixture_image("read-file").await, &["/ro/file.txt", "write"], "Never");
    writer["spec"]["volumes"] =
        serde_json::json!([{ "name": "shared", "hostPath": { "path": host.path(), "type": "Directory" } }]);
    writer["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([
        { "name": "shared", "mountPath": "/ro", "readOnly": true },
        { "name": "shared", "mountPath": "/rw" }
    ]);
    pods::create(&ns, writer).await;
    pods::wait_for(&api, "writer", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Succeeded").await;
    let logs = api.logs("writer", &Default::default()).await.unwrap();
    assert!(logs.contains("on the host") && logs.contains("write failed"), "{logs}");
    assert_eq!(std::fs::read_to_string(host.path().join("file.txt")).unwrap(), "on the host\n", "unchanged");
    let mut writable =
        pods::bare("writable", &node.name, &fixture_image("read-file").await, &["/rw/file.txt", "write"], "Never");
    writable["spec"]["volumes"] = serde_json::json!([{ "name": "shared", "hostPath": { "path": host.path() } }]);
    writable["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([{ "name": "shared", "mountPath": "/rw" }]);
    pods::create(&ns, writable).await;
    pods::wait_for(&api, "writable", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Succeeded").await;
    assert!(api.logs("writable", &Default::default()).await.unwrap().contains("write ok"));
    assert!(std::fs::read_to_string(host.path().join("file.txt")).unwrap().contains("written by read-file"));

    // subPath escapes: through `..`, and through a symlink pointing outside.
    std::os::unix::fs::symlink("/etc", host.path().join("out")).unwrap();
    for (name, sub) in [("dotdot", "../.."), ("symlink", "out")] {
        let mut escape = pods::bare(name, &node.name, &fixture_image("read-file").await, &["/x/passwd"], "Never");
        escape["spec"]["volumes"] = serde_json::json!([{ "name": "shared", "hostPath": { "path": host.path() } }]);
        escape["spec"]["containers"][0]["volumeMounts"] =
            serde_json::json!([{ "name": "shared", "mountPath": "/x", "subPath": sub }]);
        let created = ns.api::<Pod>().create(&PostParams::default(), &serde_json::from_value(escape).unwrap()).await;
        match created {
            // The apiserver itself refuses `..` in subPath.
            Err(kube::Error::Api(e)) if name == "dotdot" => assert_eq!(e.code, 422),
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => {
                let refused = pods::wait_for(
                    &api,
                    name,
                    POD_TIMEOUT,
                    || node.log_tail(60),
                    |p| pods::waiting_reason(p, "main") == Some("CreateContainerConfigError"),
                )
                .await;
                let message =
                    pods::container(&refused, "main").unwrap().state.clone().unwrap().waiting.unwrap().message;
                assert!(message.unwrap_or_default().contains("not within volume"), "{name}: the escape is named");
                assert!(!api.logs(name, &Default::default()).await.unwrap_or_default().contains("root:"));
            }
        }
    }
}

#[tokio::test]
async fn service_account_tokens_are_projected_and_rotated() {
    // Renew at 1 % of the lifetime: a 600 s token rotates after about 6 s.
    let node =
        WasmletNode::start_with(env!("CARGO_BIN_EXE_wasmlet"), "token", &["--token-refresh-fraction=0.01"]).await;
    let ns = Namespace::create(&admin_client().await, "token").await;
    let api = ns.api::<Pod>();
    let mut pod = pods::bare("reader", &node.name, &fixture_image("read-file").await, &[], "Always");
    pod["spec"]["containers"][0]["env"] = serde_json::json!([
        { "name": "FIXTURE_FILE", "value": "/var/run/secrets/kubernetes.io/serviceaccount/token" },
        { "name": "WATCH_MS", "value": "500" }
    ]);
    pods::create(&ns, pod).await;
    // The ServiceAccount admission plugin injected kube-api-access-*: a token,
    // ca.crt and the namespace, under /var/run/secrets/kubernetes.io/serviceaccount.
    let first = wait_log(&api, "reader", "content: ey", &node).await;
    // The last "content: <token>" the guest printed.
    let token = |logs: &str| {
        let last = logs.rsplit("content: ").next()?;
        Some(last.lines().next()?.to_owned()).filter(|t| t.starts_with("ey"))
    };
    let before = token(&first).unwrap();
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let rotated = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            poll.tick().await;
            let logs = api.logs("reader", &Default::default()).await.unwrap_or_default();
            if token(&logs).is_some_and(|t| t != before) {
                return;
            }
        }
    })
    .await;
    assert!(rotated.is_ok(), "the token was never rotated\n{}", node.log_tail(60));
    let pod = api.get("reader").await.unwrap();
    assert_eq!(pods::container(&pod, "main").unwrap().restart_count, 0, "rotated under a running guest");
}

#[tokio::test]
async fn empty_dir_size_limits_are_enforced() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "scratch").await;
    let ns = Namespace::create(&admin_client().await, "scratch").await;
    let api = ns.api::<Pod>();
    let flood = |name: &str, medium: Option<&str>| {
        let mut pod = pods::bare(name, &node.name, "", &[], "Never");
        pod["spec"]["volumes"] = serde_json::json!([{
            "name": "scratch", "emptyDir": { "medium": medium.unwrap_or(""), "sizeLimit": "1Mi" }
        }]);
        pod["spec"]["containers"][0]["volumeMounts"] =
            serde_json::json!([{ "name": "scratch", "mountPath": "/scratch" }]);
        pod["spec"]["containers"][0]["env"] = serde_json::json!([
            { "name": "FLOOD_FILE", "value": "/scratch/fill" }, { "name": "LINES", "value": "40000" },
            { "name": "HOLD", "value": "1" }
        ]);
        pod
    };
    let image = fixture_image("flood").await;

    // Memory-backed: a tmpfs of the limit's size; writes past it fail.
    let mut memory = flood("memory", Some("Memory"));
    memory["spec"]["containers"][0]["image"] = image.clone().into();
    pods::create(&ns, memory).await;
    pods::wait_for(&api, "memory", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Failed").await;
    let logs = api.logs("memory", &Default::default()).await.unwrap();
    assert!(logs.contains("write failed after") && logs.contains("No space left"), "{logs}");

    // On disk: the pod goes over its limit and is evicted, as upstream.
    let mut disk = flood("disk", None);
    disk["spec"]["containers"][0]["image"] = image.into();
    pods::create(&ns, disk).await;
    let evicted = pods::wait_for(&api, "disk", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Failed").await;
    let status = evicted.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("Evicted"));
    assert!(status.message.unwrap_or_default().contains("exceeds the limit"));
}

#[tokio::test]
async fn downward_api_secret_items_and_optional_sources() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "downward").await;
    let ns = Namespace::create(&admin_client().await, "downward").await;
    create_config(&ns).await;
    let api = ns.api::<Pod>();
    let mut pod = pods::bare("files", &node.name, &fixture_image("forever").await, &[], "Always");
    pod["metadata"]["labels"] = serde_json::json!({ "app": "files", "tier": "wasm" });
    pod["spec"]["volumes"] = serde_json::json!([
        { "name": "info", "downwardAPI": { "items": [
            { "path": "labels", "fieldRef": { "fieldPath": "metadata.labels" } },
            { "path": "name", "fieldRef": { "fieldPath": "metadata.name" } }
        ] } },
        { "name": "creds", "secret": { "secretName": "credentials", "defaultMode": 420,
            "items": [{ "key": "token", "path": "nested/api-token" }] } },
        { "name": "maybe", "configMap": { "name": "does-not-exist", "optional": true } }
    ]);
    pod["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([
        { "name": "info", "mountPath": "/info" },
        { "name": "creds", "mountPath": "/creds" },
        { "name": "maybe", "mountPath": "/maybe" }
    ]);
    pods::create(&ns, pod).await;
    let running = pods::wait_for(&api, "files", POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main")).await;
    let n = ns.name();
    let cat = |path: &'static str| async move {
        wasmlet_testkit::pods::kubectl_ok(&["exec", "-n", n, "files", "--", "forever", "cat", path]).await
    };
    let labels = cat("/info/labels").await;
    assert!(labels.contains("app=\"files\"") && labels.contains("tier=\"wasm\""), "{labels}");
    assert_eq!(cat("/info/name").await, "files");
    assert_eq!(cat("/creds/nested/api-token").await, "s3cret-value");
    // An optional source that does not exist is an empty volume.
    let absent = wasmlet_testkit::pods::kubectl(&["exec", "-n", n, "files", "--", "forever", "cat", "/maybe/x"]).await;
    assert_eq!(absent.status.code(), Some(2));

    // On the host, secret files are never world-readable, whatever defaultMode says.
    let uid = running.metadata.uid.unwrap();
    let secret_dir = node.root.join("pods").join(&uid).join("volumes").join("creds");
    let file = walk(&secret_dir).into_iter().find(|p| p.ends_with("api-token")).expect("the secret file on the host");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "world bits of {} are {mode:o}", file.display());
}

/// Every regular file under `dir` (following no symlinks).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}
