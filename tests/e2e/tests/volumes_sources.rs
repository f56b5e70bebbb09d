//! wasmlet-volumes against the real test bed, with a node's own credentials
//! (`system:node:<name>`, under the Node authorizer): configMap and secret
//! volumes, live updates, optional objects, and what the node may not read.
//!
//! Run with: `eval "$(cargo xtask testbed up)"` then
//! `cargo test -p wasmlet-e2e --test volumes_sources`.

mod volumes_common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio::sync::watch;
use volumes_common::{TestNode, eventually};
use wasmlet_volumes::sources::{Kind, SourceError};

async fn config_map(node: &TestNode, name: &str, data: serde_json::Value) {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": data})).unwrap();
    node.ns.api::<ConfigMap>().create(&PostParams::default(), &cm).await.unwrap();
}

async fn secret(node: &TestNode, name: &str, data: serde_json::Value) {
    let s: Secret =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "stringData": data})).unwrap();
    node.ns.api::<Secret>().create(&PostParams::default(), &s).await.unwrap();
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The ConfigMap is rendered, then an update appears within seconds, and a
/// reader racing the swap never sees two versions in one set.
#[tokio::test]
async fn config_map_volume_follows_updates_atomically() {
    let node = TestNode::new("vol-cm").await;
    config_map(&node, "app", serde_json::json!({"a": "v1", "b": "v1"})).await;
    let pod = node.pod("p", serde_json::json!({"volumes": [{"name": "cfg", "configMap": {"name": "app"}}]})).await;
    let volumes = node.volumes();
    let prepared = node.prepare(&volumes, &pod, &node.pod_dir(&pod)).await;
    let dir = prepared.host_path("cfg").unwrap().to_owned();
    assert_eq!((read(&dir, "a"), read(&dir, "b")), ("v1".into(), "v1".into()));
    assert_eq!(mode(&dir.join("a")), 0o644);

    let (_pod_tx, pod_rx) = watch::channel(Arc::new(pod.clone()));
    let task = tokio::spawn({
        let (prepared, cancel) = (prepared.clone(), node.cancel.clone());
        async move { prepared.run(pod_rx, cancel).await }
    });
    let done = Arc::new(AtomicBool::new(false));
    let sets = Arc::new(AtomicUsize::new(0));
    let reader = std::thread::spawn({
        let (dir, done, sets) = (dir.clone(), done.clone(), sets.clone());
        move || {
            while !done.load(Ordering::Relaxed) {
                let Ok(version) = std::fs::read_link(dir.join("..data")) else { continue };
                let base = dir.join(version);
                if let (Ok(a), Ok(b)) =
                    (std::fs::read_to_string(base.join("a")), std::fs::read_to_string(base.join("b")))
                {
                    assert_eq!(a, b, "one set, one version");
                    sets.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    let patch = serde_json::json!({"data": {"a": "v2", "b": "v2"}});
    let start = tokio::time::Instant::now();
    node.ns.api::<ConfigMap>().patch("app", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    eventually("the update", Duration::from_secs(10), || read(&dir, "a") == "v2").await;
    eprintln!("configMap update visible {:?} after the PATCH was sent", start.elapsed());
    assert_eq!(read(&dir, "b"), "v2");
    done.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(sets.load(Ordering::Relaxed) > 0);
    node.cancel.cancel();
    task.await.unwrap();
    prepared.cleanup().unwrap();
    drop(prepared);
    assert_eq!(node.sources.watched(), 0, "the watch stops with the last reference");
    node.stop().await;
}

/// Secret files are never world-readable; item modes below that are kept.
#[tokio::test]
async fn secret_volume_with_restricted_modes() {
    let node = TestNode::new("vol-secret").await;
    secret(&node, "creds", serde_json::json!({"user": "admin", "pass": "s3cr3t"})).await;
    let pod = node
        .pod(
            "p",
            serde_json::json!({"volumes": [
                {"name": "all", "secret": {"secretName": "creds"}},
                {"name": "some", "secret": {"secretName": "creds", "defaultMode": 0o777, "items": [
                    {"key": "pass", "path": "dir/password", "mode": 0o400}, {"key": "user", "path": "user"}
                ]}}
            ]}),
        )
        .await;
    let volumes = node.volumes();
    let pod_dir = node.pod_dir(&pod);
    let prepared = node.prepare(&volumes, &pod, &pod_dir).await;
    let all = prepared.host_path("all").unwrap();
    assert_eq!(read(all, "user"), "admin");
    assert_eq!(mode(&all.join("user")), 0o640, "0644 asked, other bits cleared");
    let some = prepared.host_path("some").unwrap();
    assert_eq!(read(some, "dir/password"), "s3cr3t");
    assert_eq!(mode(&some.join("dir/password")), 0o400);
    assert_eq!(mode(&some.join("user")), 0o640, "0777 asked, at most 0640");
    assert_eq!(mode(some), 0o750);
    prepared.cleanup().unwrap();
    node.stop().await;
}

/// An optional missing ConfigMap is an empty volume; a mandatory one fails
/// with upstream's FailedMount text.
#[tokio::test]
async fn missing_config_maps() {
    let node = TestNode::new("vol-missing").await;
    let pod = node
        .pod(
            "p",
            serde_json::json!({"volumes": [
                {"name": "opt", "configMap": {"name": "nowhere", "optional": true}}
            ]}),
        )
        .await;
    let volumes = node.volumes();
    let prepared = node.prepare(&volumes, &pod, &node.pod_dir(&pod)).await;
    let visible = std::fs::read_dir(prepared.host_path("opt").unwrap())
        .unwrap()
        .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".."))
        .count();
    assert_eq!(visible, 0);
    prepared.cleanup().unwrap();

    let pod = node.pod("q", serde_json::json!({"volumes": [{"name": "req", "configMap": {"name": "nowhere"}}]})).await;
    let mut last = String::new();
    for _ in 0..20 {
        match volumes.prepare(&pod, &node.pod_dir(&pod)).await {
            Ok(_) => panic!("a missing mandatory configMap must fail"),
            Err(e) => last = e.to_string(),
        }
        if last.contains("configmap") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(last, "MountVolume.SetUp failed for volume \"req\" : configmap \"nowhere\" not found");
    node.stop().await;
}

/// The Node authorizer refuses what no pod of the node references — and the
/// crate never asks for it: it only watches referenced objects, by name.
#[tokio::test]
async fn node_cannot_read_unreferenced_secrets() {
    let node = TestNode::new("vol-authz").await;
    secret(&node, "referenced", serde_json::json!({"k": "v"})).await;
    secret(&node, "unreferenced", serde_json::json!({"k": "v"})).await;
    let pod =
        node.pod("p", serde_json::json!({"volumes": [{"name": "s", "secret": {"secretName": "referenced"}}]})).await;
    let as_node: Api<Secret> = Api::namespaced(node.client.clone(), node.ns.name());
    let denied = as_node.get("unreferenced").await.unwrap_err();
    assert!(matches!(&denied, kube::Error::Api(s) if s.code == 403), "{denied:?}");
    let list = as_node.list(&Default::default()).await.unwrap_err();
    assert!(matches!(&list, kube::Error::Api(s) if s.code == 403), "listing secrets: {list:?}");

    let registered = node.sources.register_pod(&pod).unwrap();
    let watched: Vec<(Kind, &str)> = registered.subscriptions().iter().map(|s| (s.kind(), s.name())).collect();
    // The secret, and the CA of the injected kube-api-access volume.
    assert_eq!(watched, [(Kind::ConfigMap, "kube-root-ca.crt"), (Kind::Secret, "referenced")]);
    for sub in registered.subscriptions() {
        let found = sub.require(Duration::from_secs(10)).await;
        assert!(found.is_ok(), "{found:?}");
    }
    let sub = node.sources.acquire(Kind::Secret, node.ns.name(), "unreferenced").unwrap();
    match sub.get(Duration::from_secs(3)).await {
        Err(SourceError::NotSynced { last_error: Some(e), .. }) => assert!(e.contains("forbidden"), "{e}"),
        other => panic!("an unreferenced secret must stay unreadable: {other:?}"),
    }
    drop((sub, registered));
    assert_eq!(node.sources.watched(), 0);
    node.stop().await;
}
