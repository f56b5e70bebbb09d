use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use wasmlet_oci::media_type as mt;
use wasmlet_oci::pull::Error;
use wasmlet_oci::{Artifact, Client, ClientOptions, Digest, Layout, RegistryAuth, Store, WasmKind, client};

use crate::fake_registry::FakeRegistry;

const MODULE: &[u8] = b"\0asm\x01\0\0\0";
/// A core module with an empty custom section, so it differs from MODULE.
const MODULE2: &[u8] = b"\0asm\x01\0\0\0\0\x04\x03abc";
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

fn artifact(wasm: &[u8], layout: Layout) -> Artifact {
    Artifact::builder(wasm.to_vec())
        .layout(layout)
        .created(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .build()
        .unwrap()
}

fn client_for(registry: &FakeRegistry) -> Client {
    client(ClientOptions { insecure_registries: vec![registry.host()], ..ClientOptions::default() }).unwrap()
}

struct Fixture {
    registry: FakeRegistry,
    client: Client,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let registry = FakeRegistry::start().await;
    let dir = tempfile::tempdir().unwrap();
    Fixture { client: client_for(&registry), store: Store::open(dir.path()).unwrap(), registry, _dir: dir }
}

/// Files in the store, by subdirectory.
fn files(store: &Store, sub: &str) -> usize {
    std::fs::read_dir(store.root().join(sub)).unwrap().count()
}

#[tokio::test]
async fn pulls_every_layout_and_reads_back() {
    let f = fixture().await;
    for (i, layout) in Layout::ALL.into_iter().enumerate() {
        for wasm in [MODULE, COMPONENT] {
            let a = artifact(wasm, layout);
            let tag = format!("v{i}-{}", a.kind());
            let manifest_digest = f.registry.artifact("app", &tag, &a);
            let r = f.registry.reference(&format!("app:{tag}"));
            let image = f.store.pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap();
            assert_eq!(image.reference, r.whole());
            assert_eq!(image.manifest_digest, manifest_digest, "{layout}");
            assert_eq!(image.wasm_digest, Digest::of(wasm));
            assert_eq!(image.size, wasm.len() as u64);
            assert_eq!(image.kind, a.kind());
            assert_eq!(f.store.lookup(&r).unwrap(), Some(image.clone()));
            assert_eq!(f.store.read(&image.wasm_digest).await.unwrap(), wasm);
        }
    }
    assert_eq!(files(&f.store, "blobs/sha256"), 2, "blobs are deduplicated");
    assert_eq!(files(&f.store, "refs"), 6);
    assert_eq!(files(&f.store, "tmp"), 0);
}

#[tokio::test]
async fn a_present_wasm_layer_is_not_downloaded_again() {
    let f = fixture().await;
    let a = artifact(MODULE, Layout::Cncf);
    f.registry.artifact("app", "v1", &a);
    f.registry.artifact("alias", "v1", &a);
    let blob = format!("/blobs/{}", a.wasm_digest());
    let auth = RegistryAuth::Anonymous;
    f.store.pull(&f.client, &f.registry.reference("app:v1"), &auth).await.unwrap();
    f.store.pull(&f.client, &f.registry.reference("app:v1"), &auth).await.unwrap();
    f.store.pull(&f.client, &f.registry.reference("alias:v1"), &auth).await.unwrap();
    assert_eq!(f.registry.hits(&blob), 1);
}

#[tokio::test]
async fn concurrent_pulls_of_one_reference_both_succeed() {
    let f = fixture().await;
    let a = artifact(COMPONENT, Layout::Image);
    f.registry.artifact("app", "v1", &a);
    let r = f.registry.reference("app:v1");
    let auth = RegistryAuth::Anonymous;
    let pulls = (0..4).map(|_| f.store.pull(&f.client, &r, &auth));
    let images = futures::future::join_all(pulls).await;
    for image in &images {
        assert_eq!(image.as_ref().unwrap().wasm_digest, Digest::of(COMPONENT));
    }
    assert_eq!(f.store.images().unwrap().len(), 1);
    assert_eq!(files(&f.store, "tmp"), 0);
}

#[tokio::test]
async fn a_corrupted_download_leaves_nothing_behind() {
    let f = fixture().await;
    for (tag, layout) in [("cncf", Layout::Cncf), ("image", Layout::Image)] {
        let a = artifact(MODULE2, layout);
        f.registry.artifact("app", tag, &a);
        // Same size, other bytes (a longer body is cut off at its declared
        // size: see `limits::layers_are_capped_and_need_free_disk`).
        let (layer, data) = a.blobs().next().unwrap();
        let mut tampered = data.to_vec();
        *tampered.last_mut().unwrap() ^= 0xff;
        f.registry.blob(layer, tampered);
        let r = f.registry.reference(&format!("app:{tag}"));
        let err = f.store.pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains(&r.whole()), "{err}");
        assert_eq!(f.store.lookup(&r).unwrap(), None);
    }
    assert_eq!(files(&f.store, "blobs/sha256"), 0);
    assert_eq!(files(&f.store, "refs"), 0);
    assert_eq!(files(&f.store, "tmp"), 0);
}

#[tokio::test]
async fn registry_failures_are_typed() {
    let f = fixture().await;
    let auth = RegistryAuth::Anonymous;
    let missing = f.registry.reference("missing:v1");
    let err = f.store.pull(&f.client, &missing, &auth).await.unwrap_err();
    assert!(matches!(err, Error::ManifestNotFound { .. }), "{err:?}");
    assert!(err.is_not_found());
    assert_eq!(err.to_string(), format!("{}: manifest not found", missing.whole()));

    // A manifest whose layer blob is gone is not "manifest not found".
    let a = artifact(MODULE, Layout::WasmToOci);
    let manifest = a.manifest_bytes().to_vec();
    f.registry.manifest("noblob", "v1", mt::OCI_MANIFEST, manifest);
    let err = f.store.pull(&f.client, &f.registry.reference("noblob:v1"), &auth).await.unwrap_err();
    assert!(matches!(err, Error::Status { status: 404, .. }), "{err:?}");
    assert!(err.to_string().contains("registry answered 404 Not Found for the blob sha256:"), "{err}");

    let helm = json!({
        "schemaVersion": 2, "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": Digest::of(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": Digest::of(b"x"), "size": 1}],
    });
    f.registry.manifest("chart", "v1", mt::OCI_MANIFEST, serde_json::to_vec(&helm).unwrap());
    let err = f.store.pull(&f.client, &f.registry.reference("chart:v1"), &auth).await.unwrap_err();
    let Error::UnsupportedMediaType { media_type, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(media_type, "application/vnd.cncf.helm.chart.content.v1.tar+gzip");

    let dir = tempfile::tempdir().unwrap();
    let dead = format!("127.0.0.1:{}", free_port());
    let c = client(ClientOptions { insecure_registries: vec![dead.clone()], ..ClientOptions::default() }).unwrap();
    let r = format!("{dead}/app:v1").parse().unwrap();
    let err = Store::open(dir.path()).unwrap().pull(&c, &r, &auth).await.unwrap_err();
    assert!(matches!(err, Error::Registry { .. }), "{err:?}");
    assert_eq!(err.metric_label(), "registry");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn basic_auth_is_sent_and_refusal_is_unauthorized() {
    let f = fixture().await;
    f.registry.artifact("private", "v1", &artifact(MODULE, Layout::Cncf));
    f.registry.require_basic_auth("alice", "s3cret");
    let r = f.registry.reference("private:v1");

    let err = f.store.pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    // oci-client keeps the first credentials per registry: use a new client.
    let c = client_for(&f.registry);
    let auth = RegistryAuth::Basic("alice".into(), "s3cret".into());
    let image = f.store.pull(&c, &r, &auth).await.unwrap();
    assert_eq!(image.wasm_digest, Digest::of(MODULE));
}

#[tokio::test]
async fn image_index_resolves_to_the_wasm_entry() {
    let f = fixture().await;
    let a = artifact(COMPONENT, Layout::Cncf);
    let entry = f.registry.artifact("multi", "wasm", &a);
    let index = |platforms: &[(&str, &str)]| {
        let manifests: Vec<_> = platforms
            .iter()
            .map(|(arch, os)| json!({"mediaType": mt::OCI_MANIFEST, "digest": entry, "size": a.manifest_bytes().len(), "platform": {"architecture": arch, "os": os}}))
            .collect();
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": manifests})).unwrap()
    };
    let index_digest =
        f.registry.manifest("multi", "v1", mt::OCI_INDEX, index(&[("amd64", "linux"), ("wasm", "wasip2")]));
    f.registry.manifest("multi", "linux", mt::OCI_INDEX, index(&[("amd64", "linux")]));

    let image = f.store.pull(&f.client, &f.registry.reference("multi:v1"), &RegistryAuth::Anonymous).await.unwrap();
    assert_eq!(image.manifest_digest, index_digest);
    assert_eq!(image.kind, WasmKind::Component);
    let err =
        f.store.pull(&f.client, &f.registry.reference("multi:linux"), &RegistryAuth::Anonymous).await.unwrap_err();
    assert!(matches!(err, Error::NoWasmPlatform { .. }), "{err:?}");

    // Pull by digest: the reference carries the digest, the index maps it.
    let by_digest = f.registry.reference(&format!("multi@{index_digest}"));
    let image = f.store.pull(&f.client, &by_digest, &RegistryAuth::Anonymous).await.unwrap();
    assert_eq!(image.reference, by_digest.whole());
}

#[tokio::test]
async fn gc_after_pulls_keeps_what_pods_use() {
    let f = fixture().await;
    let auth = RegistryAuth::Anonymous;
    f.registry.artifact("a", "v1", &artifact(MODULE, Layout::Cncf));
    f.registry.artifact("b", "v1", &artifact(COMPONENT, Layout::Image));
    let a = f.store.pull(&f.client, &f.registry.reference("a:v1"), &auth).await.unwrap();
    let b = f.store.pull(&f.client, &f.registry.reference("b:v1"), &auth).await.unwrap();
    let report = f.store.gc(&HashSet::from([a.wasm_digest.clone()])).await.unwrap();
    assert_eq!(report.removed_blobs, vec![b.wasm_digest.clone()]);
    assert_eq!(report.removed_refs, vec![b.reference.clone()]);
    assert_eq!(report.freed_bytes, b.size);
    assert!(f.store.lookup(&f.registry.reference("b:v1")).unwrap().is_none());
    assert!(f.store.lookup(&f.registry.reference("a:v1")).unwrap().is_some());
}

#[tokio::test]
async fn a_short_or_altered_blob_is_named_and_never_stored() {
    let f = fixture().await;
    let auth = RegistryAuth::Anonymous;
    // A module with a custom section long enough to cut in half.
    let wasm = [MODULE, &[0, 66, 1, b'x'], &[7u8; 64]].concat();
    let a = artifact(&wasm, Layout::Cncf);
    f.registry.artifact("short", "v1", &a);
    let layer = Digest::of(&wasm).to_string();
    f.registry.blob(&layer, wasm[..wasm.len() / 2].to_vec());
    let err = f.store.pull(&f.client, &f.registry.reference("short:v1"), &auth).await.unwrap_err();
    assert!(matches!(err, Error::Truncated { .. }), "{err:?}");
    let expected = format!("blob {layer} is truncated (got {} of {} bytes)", wasm.len() / 2, wasm.len());
    assert!(err.to_string().contains(&expected), "{err}");

    let mut altered = wasm.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0xff;
    f.registry.blob(&layer, altered.clone());
    let err = f.store.pull(&f.client, &f.registry.reference("short:v1"), &auth).await.unwrap_err();
    let Error::DigestMismatch { expected, actual, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!((expected.as_str(), actual.as_str()), (layer.as_str(), Digest::of(&altered).as_str()));
    assert!(err.to_string().contains(&format!("digest mismatch: expected {layer}, got {actual}")), "{err}");

    // Nothing was kept: no blob, no temp file, and the check agrees.
    assert_eq!((files(&f.store, "blobs/sha256"), files(&f.store, "tmp")), (0, 0));
    assert!(f.store.check().await.unwrap().is_clean());

    f.registry.blob(&layer, wasm.clone());
    let image = f.store.pull(&f.client, &f.registry.reference("short:v1"), &auth).await.unwrap();
    assert_eq!(image.wasm_digest.as_str(), layer);
    assert_eq!(f.store.check().await.unwrap().good, [image.wasm_digest]);
}
