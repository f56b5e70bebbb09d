use std::path::Path;

use proptest::prelude::*;

use super::*;

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

/// What upstream's DRA test driver writes for a claim.
const TEST_DRIVER_SPEC: &str = r#"{"cdiVersion":"0.3.0","kind":"test-driver.cdi.k8s.io/test","devices":[{"name":"claim-42-req","containerEdits":{"env":["claim_c_req=true","user_a=b"]}}]}"#;

#[test]
fn resolves_a_test_driver_spec_to_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "test-driver.cdi.k8s.io-42-req.json", TEST_DRIVER_SPEC);
    let registry = Registry::new(vec![dir.path().join("missing"), dir.path().to_owned()]);
    let edits = registry.resolve(&["test-driver.cdi.k8s.io/test=claim-42-req".into()]).unwrap();
    assert_eq!(edits.env, vec![("claim_c_req".into(), "true".into()), ("user_a".into(), "b".into())]);
    assert!(edits.mounts.is_empty() && edits.device_nodes.is_empty() && edits.unsupported.is_empty());
    assert_eq!(registry.resolve(&[]).unwrap(), Edits::default());
}

#[test]
fn spec_edits_apply_once_then_each_device_and_unusable_edits_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "v.yaml",
        "cdiVersion: 0.6.0\nkind: vendor.com/gpu\ncontainerEdits:\n  env: [SHARED=1, WHO=spec]\n  mounts:\n  - {hostPath: /opt/lib, containerPath: /lib/gpu, options: [ro, bind]}\ndevices:\n- name: a\n  containerEdits:\n    env: [WHO=a]\n    deviceNodes: [{path: /dev/gpu0}]\n- name: b\n  containerEdits:\n    env: [B=1]\n    mounts: [{hostPath: /data, containerPath: /data}]\n    hooks: [{hookName: createContainer, path: /bin/hook}]\n",
    );
    let edits = Registry::new(vec![dir.path().to_owned()])
        .resolve(&["vendor.com/gpu=a".into(), "vendor.com/gpu=b".into(), "vendor.com/gpu=a".into()])
        .unwrap();
    let env: Vec<(&str, &str)> = edits.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(env, [("SHARED", "1"), ("WHO", "a"), ("B", "1")]);
    assert_eq!(edits.mounts.len(), 2, "the spec's mount once, b's once: {:?}", edits.mounts);
    assert_eq!(edits.mounts[0], Mount { host: "/opt/lib".into(), guest: "/lib/gpu".into(), read_only: true });
    assert!(!edits.mounts[1].read_only);
    assert_eq!(edits.device_nodes, vec![("/dev/gpu0".to_string(), "vendor.com/gpu=a".to_string())]);
    assert_eq!(edits.unsupported, vec![("hook createContainer /bin/hook".to_string(), "vendor.com/gpu=b".to_string())]);
}

#[test]
fn later_directories_win_and_same_directory_duplicates_are_unusable() {
    let (low, high) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = |who: &str| {
        format!(r#"{{"kind":"v.io/c","devices":[{{"name":"d","containerEdits":{{"env":["WHO={who}"]}}}}]}}"#)
    };
    write(low.path(), "one.json", &spec("low"));
    write(high.path(), "one.json", &spec("high"));
    let registry = Registry::new(vec![low.path().to_owned(), high.path().to_owned()]);
    assert_eq!(registry.resolve(&["v.io/c=d".into()]).unwrap().env, vec![("WHO".into(), "high".into())]);

    write(high.path(), "two.json", &spec("again"));
    let err = registry.resolve(&["v.io/c=d".into()]).unwrap_err();
    assert_eq!(err.to_string(), "unresolvable CDI devices v.io/c=d");
}

#[test]
fn bad_files_are_skipped_and_bad_names_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "broken.json", "{not json");
    write(
        dir.path(),
        "invalid.json",
        r#"{"kind":"v.io/c","devices":[{"name":"x","containerEdits":{"env":["NOEQUALS"]}}]}"#,
    );
    write(dir.path(), "ignored.txt", TEST_DRIVER_SPEC);
    write(dir.path(), "good.json", r#"{"kind":"v.io/c","devices":[{"name":"y","containerEdits":{"env":["OK=1"]}}]}"#);
    let registry = Registry::new(vec![dir.path().to_owned()]);
    assert_eq!(registry.resolve(&["v.io/c=y".into()]).unwrap().env, vec![("OK".into(), "1".into())]);
    let err = registry.resolve(&["v.io/c=x".into(), "test-driver.cdi.k8s.io/test=claim-42-req".into()]).unwrap_err();
    assert_eq!(err.to_string(), "unresolvable CDI devices v.io/c=x, test-driver.cdi.k8s.io/test=claim-42-req");
    assert!(matches!(registry.resolve(&["not-qualified".into()]), Err(ResolveError::Name(_))));
}

#[test]
fn validation_names_the_rule() {
    let check = |text: &str| Spec::parse(text, false, Path::new("s.json")).unwrap_err().to_string();
    assert!(check(r#"{"kind":"nokind","devices":[{"name":"a"}]}"#).contains("missing vendor or class"));
    assert!(check(r#"{"kind":"v.io/c","devices":[]}"#).contains("no devices"));
    assert!(check(r#"{"kind":"v.io/c","devices":[{"name":"a"},{"name":"a"}]}"#).contains("defined twice"));
    assert!(check(r#"{"kind":"v.io/c","devices":[{"name":"a","containerEdits":{"mounts":[{"hostPath":"","containerPath":"/x"}]}}]}"#).contains("both paths"));
    assert!(check(r#"{"kind":"v.io/c","devices":[{"name":"-a"}]}"#).contains("start with a letter or digit"));
}

fn env_entry() -> impl Strategy<Value = String> {
    ("[A-Z]{1,3}", "[a-z0-9=]{0,4}").prop_map(|(k, v)| format!("{k}={v}"))
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,200}", yaml in any::<bool>()) {
        let _ = Spec::parse(&text, yaml, Path::new("fuzz"));
    }

    #[test]
    fn parsing_arbitrary_json_specs_never_panics(
        kind in "[a-z./=-]{0,12}",
        names in proptest::collection::vec("[a-z0-9:._-]{0,6}", 0..4),
        env in proptest::collection::vec("\\PC{0,8}", 0..4),
    ) {
        let devices: Vec<serde_json::Value> =
            names.iter().map(|n| serde_json::json!({"name": n, "containerEdits": {"env": env}})).collect();
        let text = serde_json::json!({"cdiVersion": "0.6.0", "kind": kind, "devices": devices}).to_string();
        if let Ok(spec) = Spec::parse(&text, false, Path::new("fuzz")) {
            prop_assert!(spec.validate().is_ok());
            prop_assert!(!spec.devices.is_empty());
        }
    }

    #[test]
    fn env_keys_stay_unique_and_the_last_value_wins(
        batches in proptest::collection::vec(proptest::collection::vec(env_entry(), 0..5), 0..4),
    ) {
        let mut edits = Edits::default();
        for batch in &batches {
            edits.apply(&spec::ContainerEdits { env: batch.clone(), ..Default::default() }, "v.io/c=d");
        }
        let mut keys: Vec<&String> = edits.env.iter().map(|(k, _)| k).collect();
        let before = keys.len();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), before);
        for (k, v) in &edits.env {
            let last = batches.iter().flatten().filter_map(|e| e.split_once('=')).rfind(|(ek, _)| ek == k);
            prop_assert_eq!(last.map(|(_, lv)| lv), Some(v.as_str()));
        }
    }
}
