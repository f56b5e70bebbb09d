//! Property tests of the parsers that read what a registry (or a pod spec)
//! sends: image references, digests, manifests, indexes, image configs, tar
//! layers and wasm headers. None may panic; what they accept round-trips.

use oci_client::Reference;
use oci_client::manifest::{OciImageIndex, OciImageManifest, OciManifest};
use proptest::prelude::*;
use serde_json::json;

use crate::digest::Digest;
use crate::layer::{self, Wanted, normalize};
use crate::media_type as mt;
use crate::select;
use crate::wasm::{ComponentInterfaces, WasmKind};

const MEDIA_TYPES: [&str; 12] = [
    mt::WASM_CONFIG_V0,
    mt::WASM_LAYER,
    mt::WASM_TO_OCI_CONFIG,
    mt::WASM_TO_OCI_LAYER,
    mt::OCI_MANIFEST,
    mt::OCI_INDEX,
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.empty.v1+json",
    "text/plain",
];

fn media_type() -> impl Strategy<Value = String> {
    prop_oneof![proptest::sample::select(MEDIA_TYPES.to_vec()).prop_map(str::to_owned), "\\PC{0,20}"]
}

fn digest() -> impl Strategy<Value = String> {
    prop_oneof!["sha256:[0-9a-f]{64}", "sha512:[0-9a-f]{128}", "\\PC{0,20}"]
}

fn descriptor() -> impl Strategy<Value = serde_json::Value> {
    (media_type(), digest(), any::<i64>()).prop_map(|(m, d, size)| json!({"mediaType": m, "digest": d, "size": size}))
}

fn manifest() -> impl Strategy<Value = serde_json::Value> {
    (descriptor(), proptest::collection::vec(descriptor(), 0..5)).prop_map(|(config, layers)| {
        json!({"schemaVersion": 2, "mediaType": mt::OCI_MANIFEST, "config": config, "layers": layers})
    })
}

fn index() -> impl Strategy<Value = serde_json::Value> {
    let platform =
        ("\\PC{0,8}", prop_oneof!["wasm", "amd64", "\\PC{0,6}"], prop_oneof!["wasip1", "wasip2", "wasi", "linux"]);
    let entry = (descriptor(), proptest::option::of(platform)).prop_map(|(mut d, p)| {
        if let Some((variant, arch, os)) = p {
            d["platform"] = json!({"architecture": arch, "os": os, "variant": variant});
        }
        d
    });
    proptest::collection::vec(entry, 0..5)
        .prop_map(|m| json!({"schemaVersion": 2, "mediaType": mt::OCI_INDEX, "manifests": m}))
}

fn config() -> impl Strategy<Value = serde_json::Value> {
    let path = "[a-z./#]{0,12}";
    (
        proptest::option::of(proptest::collection::vec(path, 0..3)),
        proptest::option::of(proptest::collection::vec(path, 0..3)),
        proptest::option::of(path),
    )
        .prop_map(|(e, c, w)| json!({"config": {"Entrypoint": e, "Cmd": c, "WorkingDir": w}}))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn references_never_panic_and_round_trip(
        s in prop_oneof![
            "\\PC{0,60}",
            "([a-z0-9.-]{1,10}(:[0-9]{1,5})?/)?[a-z0-9._/-]{1,20}(:[A-Za-z0-9._-]{1,10})?(@sha256:[0-9a-f]{64})?",
        ]
    ) {
        if let Ok(r) = s.parse::<Reference>() {
            let whole = r.whole();
            let again: Reference = whole.parse().expect("a normalized reference parses");
            prop_assert_eq!(again.whole(), whole);
            prop_assert_eq!(again.digest(), r.digest());
        }
    }

    #[test]
    fn digests_never_panic_and_round_trip(s in prop_oneof!["\\PC{0,80}", "sha256:[0-9a-fA-F]{60,68}"]) {
        if let Ok(d) = s.parse::<Digest>() {
            prop_assert_eq!(d.to_string(), s.clone());
            prop_assert_eq!(d.hex().len(), 64);
        }
    }

    #[test]
    fn manifests_never_panic_and_round_trip(m in manifest(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = serde_json::from_slice::<OciManifest>(&bytes);
        if let Ok(parsed) = serde_json::from_value::<OciImageManifest>(m) {
            let _ = select::plan(&parsed);
            let _ = select::needs_config(&parsed);
            let json = serde_json::to_value(&parsed).unwrap();
            let again: OciImageManifest = serde_json::from_value(json.clone()).unwrap();
            prop_assert_eq!(serde_json::to_value(&again).unwrap(), json);
        }
    }

    #[test]
    fn indexes_never_panic_and_pick_a_listed_entry(i in index()) {
        if let Ok(parsed) = serde_json::from_value::<OciImageIndex>(i)
            && let Some(entry) = select::index_entry(&parsed)
        {
            prop_assert!(parsed.manifests.iter().any(|m| m.digest == entry.digest));
        }
    }

    #[test]
    fn configs_never_panic_and_name_normalized_paths(
        c in config(),
        bytes in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let _ = select::wanted(&bytes);
        if let Ok(Wanted::Path(p)) = select::wanted(&serde_json::to_vec(&c).unwrap()) {
            prop_assert_eq!(normalize(&p), Some(p.clone()));
            prop_assert!(!p.starts_with('/') && !p.split('/').any(|part| part == ".." || part == "."));
        }
    }

    #[test]
    fn layers_of_garbage_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), gzip: bool) {
        let mut out = Vec::new();
        let _ = layer::extract(bytes.as_slice(), gzip, &Wanted::AnyWasm, &mut out);
        let _ = layer::extract(bytes.as_slice(), gzip, &Wanted::Path("app.wasm".into()), &mut out);
    }

    #[test]
    fn wasm_headers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let with_magic = [b"\0asm".as_slice(), &bytes].concat();
        for b in [&bytes, &with_magic] {
            let _ = WasmKind::detect(b);
            let _ = ComponentInterfaces::read(b);
        }
    }
}
