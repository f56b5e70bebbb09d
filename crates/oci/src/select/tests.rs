use serde_json::json;

use super::*;
use crate::media_type as mt;

fn desc(media_type: &str, n: u8) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": format!("sha256:{}", format!("{n:02x}").repeat(32)), "size": 1})
}

fn manifest(config: &str, layers: &[&str]) -> OciImageManifest {
    let layers: Vec<_> = layers.iter().enumerate().map(|(i, m)| desc(m, i as u8)).collect();
    serde_json::from_value(json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_MANIFEST,
        "config": desc(config, 0xff),
        "layers": layers,
    }))
    .unwrap()
}

#[test]
fn picks_the_single_wasm_layer_of_each_layout() {
    for (config, layer) in [
        (mt::WASM_CONFIG_V0, mt::WASM_LAYER),
        (mt::WASM_TO_OCI_CONFIG, mt::WASM_TO_OCI_LAYER),
        ("application/vnd.oci.empty.v1+json", mt::WASM_LAYER),
    ] {
        let m = manifest(config, &[layer]);
        let Ok(Plan::Wasm(d)) = plan(&m) else {
            panic!("{config}: no wasm plan");
        };
        assert_eq!(d.media_type, layer);
        assert!(!needs_config(&m));
    }
}

#[test]
fn image_layers_are_searched_top_first() {
    let m = manifest(mt::IMAGE_CONFIG, &[mt::IMAGE_LAYER_TAR, mt::DOCKER_LAYER_TAR_GZIP]);
    let Ok(Plan::Tar(layers)) = plan(&m) else {
        panic!("no tar plan");
    };
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0].descriptor.media_type, mt::DOCKER_LAYER_TAR_GZIP);
    assert!(layers[0].gzip);
    assert!(!layers[1].gzip);
    assert!(needs_config(&m));
}

#[test]
fn rejects_unusable_manifests() {
    assert_eq!(plan(&manifest(mt::WASM_CONFIG_V0, &[])).unwrap_err(), PlanError::NoWasmLayer);
    assert_eq!(
        plan(&manifest(mt::WASM_CONFIG_V0, &[mt::WASM_LAYER, mt::WASM_LAYER])).unwrap_err(),
        PlanError::AmbiguousLayers(2)
    );
    let helm = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
    assert_eq!(
        plan(&manifest("application/vnd.cncf.helm.config.v1+json", &[helm])).unwrap_err(),
        PlanError::UnsupportedMediaType(helm.into())
    );
    let zstd = "application/vnd.oci.image.layer.v1.tar+zstd";
    assert_eq!(
        plan(&manifest(mt::IMAGE_CONFIG, &[mt::IMAGE_LAYER_TAR, zstd])).unwrap_err(),
        PlanError::UnsupportedMediaType(zstd.into())
    );
}

#[test]
fn wasm_layer_wins_over_other_layers() {
    let m = manifest(
        mt::WASM_TO_OCI_CONFIG,
        &["application/vnd.fermyon.spin.application.v1+config", mt::WASM_TO_OCI_LAYER],
    );
    assert!(matches!(plan(&m), Ok(Plan::Wasm(_))));
}

#[test]
fn selects_the_wasm_platform_from_an_index() {
    let index: OciImageIndex = serde_json::from_value(json!({
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": [
            {"mediaType": mt::OCI_MANIFEST, "digest": "sha256:aa", "size": 1,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": mt::OCI_MANIFEST, "digest": "sha256:bb", "size": 1},
            {"mediaType": mt::OCI_MANIFEST, "digest": "sha256:cc", "size": 1,
             "platform": {"architecture": "wasm", "os": "wasip1"}},
        ]
    }))
    .unwrap();
    assert_eq!(index_entry(&index).unwrap().digest, "sha256:cc");

    let by_os: OciImageIndex = serde_json::from_value(json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": mt::OCI_MANIFEST, "digest": "sha256:dd", "size": 1,
                       "platform": {"architecture": "amd64", "os": "wasip2"}}]
    }))
    .unwrap();
    assert_eq!(index_entry(&by_os).unwrap().digest, "sha256:dd");

    let linux_only = OciImageIndex { manifests: index.manifests[..2].to_vec(), ..index };
    assert!(index_entry(&linux_only).is_none());
}

#[test]
fn reads_the_entrypoint_from_the_image_config() {
    let cfg = |c: serde_json::Value| serde_json::to_vec(&json!({"architecture": "wasm", "config": c})).unwrap();
    assert_eq!(wanted(&cfg(json!({"Entrypoint": ["/app.wasm"]}))).unwrap(), Wanted::Path("app.wasm".into()));
    assert_eq!(
        wanted(&cfg(json!({"Entrypoint": ["srv/main.wasm#serve", "-v"], "WorkingDir": "/opt"}))).unwrap(),
        Wanted::Path("opt/srv/main.wasm".into())
    );
    assert_eq!(wanted(&cfg(json!({"Cmd": ["./x.wasm"]}))).unwrap(), Wanted::Path("x.wasm".into()));
    assert_eq!(wanted(&cfg(json!({}))).unwrap(), Wanted::AnyWasm);
    assert_eq!(wanted(br#"{"os":"wasip1"}"#).unwrap(), Wanted::AnyWasm);
    assert!(wanted(b"not json").is_err());
}
