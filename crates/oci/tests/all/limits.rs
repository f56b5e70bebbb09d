//! Pull limits (`PullLimits`): oversized manifests, configs and layers,
//! and a disk without room, each fail clearly and leave nothing behind.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use wasmlet_oci::limits::{MAX_MANIFEST_BYTES, PullLimits};
use wasmlet_oci::media_type as mt;
use wasmlet_oci::pull::Error;
use wasmlet_oci::{Artifact, ClientOptions, Digest, Layout, RegistryAuth, Store, client};

use crate::fake_registry::FakeRegistry;

const MODULE: &[u8] = b"\0asm\x01\0\0\0";

struct Fixture {
    registry: FakeRegistry,
    client: wasmlet_oci::Client,
    dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let registry = FakeRegistry::start().await;
    let client =
        client(ClientOptions { insecure_registries: vec![registry.host()], ..ClientOptions::default() }).unwrap();
    Fixture { registry, client, dir: tempfile::tempdir().unwrap() }
}

impl Fixture {
    fn store(&self, limits: PullLimits) -> Store {
        Store::open(self.dir.path()).unwrap().with_limits(limits)
    }

    /// Nothing was kept: no blob, no reference, no temporary file.
    fn assert_empty(&self) {
        for sub in ["blobs/sha256", "refs", "tmp"] {
            let n = std::fs::read_dir(self.dir.path().join(sub)).unwrap().count();
            assert_eq!(n, 0, "{sub} is not empty");
        }
    }
}

fn image(layout: Layout) -> Artifact {
    Artifact::builder(MODULE.to_vec())
        .layout(layout)
        .created(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .build()
        .unwrap()
}

/// A valid manifest made `size` bytes long with an annotation.
fn padded_manifest(size: usize) -> Vec<u8> {
    let mut manifest = json!({
        "schemaVersion": 2, "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": mt::WASM_CONFIG_V0, "digest": Digest::of(b"{}"), "size": 2},
        "layers": [{"mediaType": mt::WASM_LAYER, "digest": Digest::of(MODULE), "size": MODULE.len()}],
        "annotations": {"padding": ""},
    });
    let base = serde_json::to_vec(&manifest).unwrap().len();
    manifest["annotations"]["padding"] = json!("x".repeat(size - base));
    let bytes = serde_json::to_vec(&manifest).unwrap();
    assert_eq!(bytes.len(), size);
    bytes
}

#[tokio::test]
async fn a_manifest_over_containerds_limit_is_refused() {
    let f = fixture().await;
    f.registry.blob(Digest::of(MODULE).as_str(), MODULE.to_vec());
    let limit = usize::try_from(MAX_MANIFEST_BYTES).unwrap();
    // Just under the limit: pulled.
    f.registry.manifest("big", "ok", mt::OCI_MANIFEST, padded_manifest(limit - 1));
    let store = f.store(PullLimits::default());
    store.pull(&f.client, &f.registry.reference("big:ok"), &RegistryAuth::Anonymous).await.unwrap();

    // One byte over: refused, with the limit in the message.
    let f = fixture().await;
    f.registry.manifest("big", "huge", mt::OCI_MANIFEST, padded_manifest(limit + 1));
    let r = f.registry.reference("big:huge");
    let err = f.store(PullLimits::default()).pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "manifest", .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the image manifest is {} bytes or more, over the node's limit of 4393216 bytes",
            r.whole(),
            limit + 1
        )
    );
    assert_eq!(err.metric_label(), "too_large");
    f.assert_empty();
}

#[tokio::test]
async fn an_index_over_the_limit_is_refused() {
    let f = fixture().await;
    let entry = json!({"mediaType": mt::OCI_MANIFEST, "digest": Digest::of(b"x"), "size": 1,
        "platform": {"architecture": "wasm", "os": "wasip2"}});
    let index = json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": vec![entry; 200]});
    f.registry.manifest("idx", "v1", mt::OCI_INDEX, serde_json::to_vec(&index).unwrap());
    let limits = PullLimits { max_manifest_bytes: 4096, ..PullLimits::default() };
    let r = f.registry.reference("idx:v1");
    let err = f.store(limits).pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "manifest", limit: 4096, .. }), "{err:?}");
    assert_eq!(f.registry.hits(&format!("/blobs/{}", Digest::of(b"x"))), 0);
}

#[tokio::test]
async fn a_config_over_the_limit_is_refused_declared_or_not() {
    let f = fixture().await;
    let a = image(Layout::Image);
    f.registry.artifact("cfg", "v1", &a);
    let limits = PullLimits { max_config_bytes: 16, ..PullLimits::default() };
    let r = f.registry.reference("cfg:v1");
    let err = f.store(limits).pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "config", limit: 16, .. }), "{err:?}");

    // A config that says it is small but is not: reading stops at the limit.
    let config = vec![b' '; 64];
    let manifest = json!({
        "schemaVersion": 2, "mediaType": mt::OCI_MANIFEST,
        "config": {"mediaType": mt::IMAGE_CONFIG, "digest": Digest::of(&config), "size": 8},
        "layers": [{"mediaType": mt::IMAGE_LAYER_TAR, "digest": Digest::of(b"t"), "size": 1}],
    });
    f.registry.blob(Digest::of(&config).as_str(), config);
    f.registry.manifest("cfg", "liar", mt::OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap());
    let r = f.registry.reference("cfg:liar");
    let err = f.store(limits).pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { what: "config", .. }), "{err:?}");
    f.assert_empty();
}

#[tokio::test]
async fn layers_are_capped_and_need_free_disk() {
    let f = fixture().await;
    for layout in [Layout::Cncf, Layout::Image] {
        f.registry.artifact("layer", &layout.to_string(), &image(layout));
    }
    let small = PullLimits { max_layer_bytes: 4, ..PullLimits::default() };
    for layout in [Layout::Cncf, Layout::Image] {
        let r = f.registry.reference(&format!("layer:{layout}"));
        let err = f.store(small).pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap_err();
        assert!(matches!(err, Error::TooLarge { what: "layer", limit: 4, .. }), "{layout}: {err:?}");
    }

    // More free space asked for than any disk has: refused before writing.
    let full = PullLimits { min_free_disk_bytes: u64::MAX / 2, ..PullLimits::default() };
    let r = f.registry.reference(&format!("layer:{}", Layout::Cncf));
    let err = f.store(full).pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap_err();
    let Error::NoSpace { reserve, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*reserve, u64::MAX / 2);
    assert!(err.to_string().contains("not enough disk space"), "{err}");
    f.assert_empty();

    // Within the limits, the same images pull.
    for layout in [Layout::Cncf, Layout::Image] {
        let r = f.registry.reference(&format!("layer:{layout}"));
        f.store(PullLimits::default()).pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap();
    }
}

#[tokio::test]
async fn a_layer_longer_than_declared_is_cut_off() {
    let f = fixture().await;
    let tampered = image(Layout::Cncf);
    f.registry.artifact("liar", "v1", &tampered);
    let (layer, _) = tampered.blobs().find(|(_, b)| b.starts_with(b"\0asm")).unwrap();
    f.registry.blob(layer, [MODULE, b"and more bytes than declared".as_slice()].concat());
    let r = f.registry.reference("liar:v1");
    let err = f.store(PullLimits::default()).pull(&f.client, &r, &RegistryAuth::Anonymous).await.unwrap_err();
    let Error::LayerSize { declared, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*declared, MODULE.len() as u64);
    assert!(err.to_string().ends_with(&format!("holds more than the {} bytes its manifest declares", MODULE.len())));
    f.assert_empty();
}
