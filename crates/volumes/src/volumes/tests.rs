use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ConfigMap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::sources::{Object, Snapshot};
use crate::token::{Token, TokenError, TokenSpec};

/// Issues `token-<n>` with the given TTL, or fails when `ttl` is zero.
struct FakeTokens {
    issued: AtomicUsize,
    ttl: Duration,
}

impl TokenIssuer for FakeTokens {
    fn issue<'a>(&'a self, spec: &'a TokenSpec) -> BoxFuture<'a, Result<Token, TokenError>> {
        Box::pin(async move {
            if self.ttl.is_zero() {
                return Err(TokenError::NoExpiration);
            }
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("token-{n}-{}-{}", spec.pod_name, spec.audiences.join(","));
            Ok(Token { token, expiration: SystemTime::now() + self.ttl, ttl: self.ttl })
        })
    }
}

fn config_map(version: &str, data: serde_json::Value) -> Snapshot {
    let cm: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "cfg", "resourceVersion": version}, "data": data}),
    )
    .unwrap();
    Snapshot::Present(Object::ConfigMap(Arc::new(cm)))
}

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"v": "1"}},
        "spec": {"containers": [{"name": "c"}], "volumes": volumes}
    }))
    .unwrap()
}

fn volumes(sources: Sources, ttl: Duration, config: Config) -> (Volumes, Arc<FakeTokens>) {
    let tokens = Arc::new(FakeTokens { issued: AtomicUsize::new(0), ttl });
    (Volumes::with_token_issuer(sources, config, tokens.clone()), tokens)
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_default()
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn config_map_volumes_follow_their_object() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = Sources::offline();
    sources.publish(Kind::ConfigMap, "ns", "cfg", config_map("1", serde_json::json!({"k": "v1"})));
    let pod = pod(serde_json::json!([
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "opt", "configMap": {"name": "missing", "optional": true}},
        {"name": "labels", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
    ]));
    sources.publish(Kind::ConfigMap, "ns", "missing", Snapshot::Absent);
    let (volumes, _) = volumes(sources.clone(), Duration::from_secs(600), Config::default());
    let prepared = volumes.prepare(&pod, tmp.path()).await.unwrap();
    let dir = prepared.host_path("cfg").unwrap().to_owned();
    assert_eq!(read(&dir, "k"), "v1");
    assert_eq!(mode(&dir), 0o750);
    let opt = prepared.host_path("opt").unwrap();
    let visible =
        fs::read_dir(opt).unwrap().filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".."));
    assert_eq!(visible.count(), 0, "optional and missing: nothing but the atomic writer's ..data");
    let labels = prepared.host_path("labels").unwrap().to_owned();
    assert_eq!(read(&labels, "labels"), "v=\"1\"");

    let (pod_tx, pod_rx) = watch::channel(Arc::new(pod.clone()));
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let prepared = prepared.clone();
        let cancel = cancel.clone();
        async move { prepared.run(pod_rx, cancel).await }
    });
    sources.publish(Kind::ConfigMap, "ns", "cfg", config_map("2", serde_json::json!({"k": "v2", "new": "n"})));
    eventually("the update", || read(&dir, "k") == "v2" && read(&dir, "new") == "n").await;
    sources.publish(Kind::ConfigMap, "ns", "missing", config_map("3", serde_json::json!({"late": "yes"})));
    eventually("the optional object", || read(prepared.host_path("opt").unwrap(), "late") == "yes").await;
    let mut relabelled = pod.clone();
    relabelled.metadata.labels = Some([("v".to_owned(), "2".to_owned())].into());
    pod_tx.send(Arc::new(relabelled)).unwrap();
    eventually("the new labels", || read(&labels, "labels") == "v=\"2\"").await;
    // A mandatory object deleted: the content stays.
    sources.publish(Kind::ConfigMap, "ns", "cfg", Snapshot::Absent);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(read(&dir, "k"), "v2");
    cancel.cancel();
    task.await.unwrap();
    prepared.cleanup().unwrap();
    assert!(!tmp.path().join(VOLUMES_DIR).exists());
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn failures_carry_upstreams_text() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = Sources::offline();
    sources.publish(Kind::ConfigMap, "ns", "gone", Snapshot::Absent);
    let (volumes, _) = volumes(sources, Duration::ZERO, Config::default());
    let fails = |v: serde_json::Value| {
        let volumes = volumes.clone();
        let dir = tmp.path().to_owned();
        async move { volumes.prepare(&pod(v), &dir).await.unwrap_err().to_string() }
    };
    assert_eq!(
        fails(serde_json::json!([{"name": "cfg", "configMap": {"name": "gone"}}])).await,
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"gone\" not found"
    );
    assert_eq!(
        fails(serde_json::json!([{"name": "s", "secret": {"secretName": "never-synced"}}])).await,
        "MountVolume.SetUp failed for volume \"s\" : failed to sync secret cache: timed out waiting for the condition"
    );
    assert_eq!(
        fails(serde_json::json!([{"name": "claim", "persistentVolumeClaim": {"claimName": "c"}}])).await,
        "MountVolume.SetUp failed for volume \"claim\" : unsupported volume type persistentVolumeClaim: wasmlet \
         provides configMap, secret, downwardAPI, projected, emptyDir and hostPath volumes"
    );
    assert_eq!(
        fails(serde_json::json!([{"name": "h", "hostPath": {"path": "/nonexistent-wasmlet", "type": "Directory"}}]))
            .await,
        "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: /nonexistent-wasmlet is not a directory"
    );
    assert_eq!(
        fails(
            serde_json::json!([{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}])
        )
        .await,
        "MountVolume.SetUp failed for volume \"t\" : failed to fetch token: the TokenRequest response has no expiration"
    );
}

#[tokio::test]
async fn empty_dirs_on_disk_and_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let pod = pod(serde_json::json!([
        {"name": "disk", "emptyDir": {"sizeLimit": "1Mi"}},
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "2Mi"}}
    ]));
    let (vols, _) = volumes(Sources::offline(), Duration::ZERO, Config::default());
    let prepared = vols.prepare(&pod, tmp.path()).await.unwrap();
    let again = vols.prepare(&pod, tmp.path()).await.unwrap();
    let mem = prepared.host_path("mem").unwrap().to_owned();
    let root = std::os::unix::fs::MetadataExt::uid(&fs::metadata(tmp.path()).unwrap()) == 0;
    let mounted = empty_dir::mount_points_under(&mem);
    if root {
        assert!(prepared.memory_fallbacks().is_empty(), "{:?}", prepared.memory_fallbacks());
        assert_eq!(mounted, std::slice::from_ref(&mem), "one tmpfs, not mounted twice");
        assert!(again.memory_fallbacks().is_empty());
        let stat = nix::sys::statvfs::statvfs(&mem).unwrap();
        assert_eq!(stat.blocks() * stat.fragment_size(), 2 << 20, "sized by sizeLimit");
    } else {
        assert_eq!(prepared.memory_fallbacks().len(), 1);
    }
    fs::write(prepared.host_path("disk").unwrap().join("blob"), vec![7u8; 1_500_000]).unwrap();
    let usage = prepared.usage();
    let disk = usage.iter().find(|u| u.volume == "disk").unwrap();
    assert!(disk.bytes >= 1_500_000 && disk.limit == Some(1 << 20), "{disk:?}");
    drop(again);
    prepared.cleanup().unwrap();
    assert!(empty_dir::mount_points_under(&mem).is_empty());
    assert!(!tmp.path().join(VOLUMES_DIR).exists());

    let no_tmpfs = Config { memory_medium: false, ..Config::default() };
    let (vols, _) = volumes(Sources::offline(), Duration::ZERO, no_tmpfs);
    let prepared = vols.prepare(&pod, tmp.path()).await.unwrap();
    assert_eq!(prepared.memory_fallbacks()[0].0, "mem");
    Volumes::cleanup(tmp.path()).unwrap();
}

/// Tokens are renewed at 80 % of their TTL (minus up to 10 s of jitter),
/// in virtual time.
#[tokio::test(start_paused = true)]
async fn tokens_are_renewed_before_they_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let sources = Sources::offline();
    sources.publish(Kind::ConfigMap, "ns", "kube-root-ca.crt", config_map("1", serde_json::json!({"ca.crt": "CA"})));
    let pod = pod(serde_json::json!([{"name": "kube-api-access-x", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 600, "audience": "vault"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
    ]}}]));
    let (vols, tokens) = volumes(sources, Duration::from_secs(600), Config::default());
    let prepared = vols.prepare(&pod, tmp.path()).await.unwrap();
    let dir = prepared.host_path("kube-api-access-x").unwrap().to_owned();
    assert_eq!(read(&dir, "token"), "token-1-p-vault");
    assert_eq!(mode(&dir.join("token")), 0o640);
    assert_eq!(read(&dir, "ca.crt"), "CA");
    assert_eq!(read(&dir, "namespace"), "ns");

    let (_pod_tx, pod_rx) = watch::channel(Arc::new(pod.clone()));
    let cancel = CancellationToken::new();
    let task = tokio::spawn({
        let (prepared, cancel) = (prepared.clone(), cancel.clone());
        async move { prepared.run(pod_rx, cancel).await }
    });
    tokio::time::sleep(Duration::from_secs(469)).await;
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 1, "not renewed before 80 % - jitter");
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 2, "renewed by 80 % of 600 s");
    assert_eq!(read(&dir, "token"), "token-2-p-vault");
    tokio::time::sleep(Duration::from_secs(481)).await;
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 3, "and again for the new token");
    cancel.cancel();
    task.await.unwrap();
    prepared.cleanup().unwrap();
}
