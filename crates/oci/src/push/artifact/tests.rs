use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::layer::{Found, Wanted, extract};
use crate::wasm::tests::{MODULE, component};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn build(wasm: &[u8], layout: Layout) -> Artifact {
    Artifact::builder(wasm.to_vec()).layout(layout).title("hello.wasm").created(at(1_700_000_000)).build().unwrap()
}

fn config_json(a: &Artifact) -> Value {
    serde_json::from_slice(a.config_bytes()).unwrap()
}

#[test]
fn cncf_module() {
    let a = build(MODULE, Layout::Cncf);
    let m = a.manifest();
    assert_eq!(m.media_type.as_deref(), Some(media_type::OCI_MANIFEST));
    assert_eq!(m.config.media_type, media_type::WASM_CONFIG_V0);
    assert_eq!(m.layers.len(), 1);
    assert_eq!(m.layers[0].media_type, media_type::WASM_LAYER);
    assert_eq!(m.layers[0].digest, Digest::of(MODULE).as_str());
    let title = &m.layers[0].annotations.as_ref().unwrap()[media_type::ANNOTATION_TITLE];
    assert_eq!(title, "hello.wasm");
    let c = config_json(&a);
    assert_eq!(c["created"], "2023-11-14T22:13:20Z");
    assert_eq!(c["architecture"], "wasm");
    assert_eq!(c["os"], "wasip1");
    assert_eq!(c["layerDigests"][0], Digest::of(MODULE).as_str());
    assert!(c.get("component").is_none());
    assert_eq!(a.kind(), WasmKind::Module);
}

#[test]
fn cncf_component_lists_interfaces() {
    let a = build(&component(), Layout::Cncf);
    let c = config_json(&a);
    assert_eq!(c["os"], "wasip2");
    assert_eq!(c["component"]["imports"][0], "wasi:cli/environment@0.2.0");
    assert_eq!(c["component"]["exports"][0], "wasi:cli/run@0.2.0");
    assert_eq!(a.kind(), WasmKind::Component);
}

#[test]
fn wasm_to_oci_uses_legacy_types() {
    let a = build(MODULE, Layout::WasmToOci);
    let m = a.manifest();
    assert_eq!(m.config.media_type, media_type::WASM_TO_OCI_CONFIG);
    assert_eq!(m.layers[0].media_type, media_type::WASM_TO_OCI_LAYER);
    assert_eq!(a.config_bytes(), b"{}");
}

#[test]
fn image_layout_holds_app_wasm() {
    let wasm = component();
    let a = build(&wasm, Layout::Image);
    let m = a.manifest();
    assert_eq!(m.config.media_type, media_type::IMAGE_CONFIG);
    assert_eq!(m.layers[0].media_type, media_type::IMAGE_LAYER_TAR_GZIP);
    let c = config_json(&a);
    assert_eq!(c["architecture"], "wasm");
    assert_eq!(c["os"], "wasip2");
    assert_eq!(c["config"]["Entrypoint"][0], "/app.wasm");

    let (_, gzip) = a.blobs().next().unwrap();
    let mut out = Vec::new();
    let want = Wanted::Path("app.wasm".into());
    assert_eq!(extract(&gzip[..], true, &want, &mut out).unwrap(), Found::File("app.wasm".into()));
    assert_eq!(out, wasm);
    // The diff ID is the digest of the uncompressed tar.
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzip[..]), &mut tar).unwrap();
    assert_eq!(c["rootfs"]["diff_ids"][0], Digest::of(&tar).as_str());
}

#[test]
fn manifest_digest_matches_bytes_and_is_reproducible() {
    for layout in Layout::ALL {
        let a = build(MODULE, layout);
        let b = build(MODULE, layout);
        assert_eq!(a.manifest_digest(), &Digest::of(a.manifest_bytes()));
        assert_eq!(a.manifest_digest(), b.manifest_digest(), "{layout}");
        assert_eq!(a.wasm_digest(), &Digest::of(MODULE));
        // layers then config, digests as in the manifest
        let blobs: Vec<_> = a.blobs().collect();
        assert_eq!(blobs.len(), 2);
        for (digest, data) in blobs {
            assert_eq!(Digest::of(data).as_str(), digest);
        }
    }
}

#[test]
fn rejects_non_wasm() {
    let err = Artifact::builder(b"hello".to_vec()).build().err().unwrap();
    assert!(matches!(err, Error::NotWasm));
}
