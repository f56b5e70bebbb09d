use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::*;

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"b": "2", "a": "1"}},
        "spec": {"serviceAccountName": "robot", "containers": [
            {"name": "main", "resources": {"limits": {"memory": "1Gi"}}}
        ], "volumes": volumes}
    }))
    .unwrap()
}

fn objects(kind: Kind, name: &str) -> Result<Option<Object>, SourceError> {
    Ok(match (kind, name) {
        (Kind::ConfigMap, "cm") => Some(Object::ConfigMap(Arc::new(
            serde_json::from_value::<ConfigMap>(serde_json::json!({
                "metadata": {"name": "cm"}, "data": {"a": "A", "b": "B"}, "binaryData": {"bin": "AAEC"}
            }))
            .unwrap(),
        ))),
        (Kind::Secret, "s") => Some(Object::Secret(Arc::new(
            serde_json::from_value::<Secret>(serde_json::json!({
                "metadata": {"name": "s"}, "data": {"user": "YWRtaW4=", "pass": "czNjcjN0"}
            }))
            .unwrap(),
        ))),
        _ => None,
    })
}

fn render(pod: &Pod, tokens: &HashMap<TokenSpec, Token>) -> Vec<Result<Payload, PayloadError>> {
    let allocatable = BTreeMap::new();
    let inputs = Inputs { pod, allocatable: &allocatable, objects: &objects, tokens };
    pod.spec.as_ref().unwrap().volumes.iter().flatten().filter_map(|v| volume(v, &inputs)).collect()
}

fn file(payload: &Payload, path: &str) -> (String, u32) {
    let f = &payload[path];
    (String::from_utf8_lossy(&f.data).into_owned(), f.mode)
}

#[test]
fn config_map_all_keys_items_and_modes() {
    let pod = pod(serde_json::json!([
        {"name": "all", "configMap": {"name": "cm"}},
        {"name": "items", "configMap": {"name": "cm", "defaultMode": 0o600, "items": [
            {"key": "a", "path": "dir/a.txt"}, {"key": "b", "path": "b", "mode": 0o444}
        ]}}
    ]));
    let [all, items] = <[_; 2]>::try_from(render(&pod, &HashMap::new())).unwrap();
    let all = all.unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b", "bin"]);
    assert_eq!(file(&all, "a"), ("A".into(), 0o644));
    assert_eq!(all["bin"].data, [0, 1, 2], "binaryData too");
    let items = items.unwrap();
    assert_eq!(items.keys().collect::<Vec<_>>(), ["b", "dir/a.txt"]);
    assert_eq!(file(&items, "dir/a.txt"), ("A".into(), 0o600));
    assert_eq!(file(&items, "b"), ("B".into(), 0o444));
}

#[test]
fn secrets_are_never_world_readable() {
    let pod = pod(serde_json::json!([
        {"name": "default", "secret": {"secretName": "s"}},
        {"name": "wide", "secret": {"secretName": "s", "defaultMode": 0o777, "items": [
            {"key": "user", "path": "u"}, {"key": "pass", "path": "p", "mode": 0o400}
        ]}}
    ]));
    let [default, wide] = <[_; 2]>::try_from(render(&pod, &HashMap::new())).unwrap();
    assert_eq!(file(&default.unwrap(), "user"), ("admin".into(), 0o640));
    let wide = wide.unwrap();
    assert_eq!(file(&wide, "u"), ("admin".into(), 0o640));
    assert_eq!(file(&wide, "p"), ("s3cr3t".into(), 0o400));
}

#[test]
fn missing_objects_and_keys() {
    let pod = pod(serde_json::json!([
        {"name": "opt", "configMap": {"name": "nope", "optional": true}},
        {"name": "req", "configMap": {"name": "nope"}},
        {"name": "sreq", "secret": {"secretName": "nope"}},
        {"name": "key", "configMap": {"name": "cm", "items": [{"key": "zz", "path": "zz"}]}},
        {"name": "skey", "secret": {"secretName": "s", "items": [{"key": "zz", "path": "zz"}]}},
        {"name": "optkey", "configMap": {"name": "cm", "optional": true, "items": [{"key": "zz", "path": "zz"}]}}
    ]));
    let out = render(&pod, &HashMap::new());
    let msg = |i: usize| out[i].as_ref().unwrap_err().to_string();
    assert!(out[0].as_ref().unwrap().is_empty(), "optional and missing: empty");
    assert_eq!(msg(1), "configmap \"nope\" not found");
    assert_eq!(msg(2), "secret \"nope\" not found");
    assert_eq!(msg(3), "configmap references non-existent config key: zz");
    assert_eq!(msg(4), "references non-existent secret key: zz");
    assert!(out[5].as_ref().unwrap().is_empty());
}

#[test]
fn downward_api_items() {
    let pod = pod(serde_json::json!([{"name": "d", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o400},
        {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory", "divisor": "1Mi"}}
    ]}}]));
    let payload = render(&pod, &HashMap::new()).remove(0).unwrap();
    assert_eq!(file(&payload, "name"), ("p".into(), 0o644));
    assert_eq!(file(&payload, "labels"), ("a=\"1\"\nb=\"2\"".into(), 0o400));
    assert_eq!(file(&payload, "mem"), ("1024".into(), 0o644));
    let bad = pod_with_bad_field();
    assert_eq!(
        render(&bad, &HashMap::new())[0].as_ref().unwrap_err().to_string(),
        "unsupported fieldPath: spec.nodeName"
    );
}

fn pod_with_bad_field() -> Pod {
    pod(serde_json::json!([{"name": "d", "downwardAPI": {"items": [
        {"path": "n", "fieldRef": {"fieldPath": "spec.nodeName"}}
    ]}}]))
}

#[test]
fn projected_service_account_volume() {
    let pod = pod(serde_json::json!([{"name": "kube-api-access-x", "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"configMap": {"name": "cm", "items": [{"key": "a", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        {"secret": {"name": "s", "items": [{"key": "user", "path": "user"}]}}
    ]}}]));
    let specs = token_specs(&pod, &pod.spec.as_ref().unwrap().volumes.as_ref().unwrap()[0]);
    assert_eq!(specs.len(), 1);
    let spec = &specs[0];
    assert_eq!((spec.service_account.as_str(), spec.pod_uid.as_str()), ("robot", "u-1"));
    assert_eq!(spec.expiration_seconds, Some(3607));
    assert!(spec.audiences.is_empty());
    let token = Token { token: "jwt".into(), expiration: SystemTime::now(), ttl: Duration::from_secs(3607) };
    let payload = render(&pod, &HashMap::from([(spec.clone(), token)])).remove(0).unwrap();
    assert_eq!(payload.keys().collect::<Vec<_>>(), ["ca.crt", "namespace", "token", "user"]);
    assert_eq!(file(&payload, "token"), ("jwt".into(), 0o640));
    assert_eq!(file(&payload, "ca.crt"), ("A".into(), 0o644));
    assert_eq!(file(&payload, "namespace"), ("ns".into(), 0o644));
    assert_eq!(file(&payload, "user"), ("admin".into(), 0o640));
}

#[test]
fn unsupported_projections() {
    let pod = pod(serde_json::json!([{"name": "ctb", "projected": {"sources": [
        {"clusterTrustBundle": {"path": "b", "signerName": "x"}}
    ]}}]));
    let err = render(&pod, &HashMap::new()).remove(0).unwrap_err();
    assert_eq!(err.to_string(), "clusterTrustBundle projections are not supported by wasmlet");
}

#[test]
fn item_paths_are_checked() {
    let pod = pod(serde_json::json!([{"name": "c", "configMap": {"name": "cm", "items": [
        {"key": "a", "path": "../../etc/passwd"}
    ]}}]));
    let err = render(&pod, &HashMap::new()).remove(0).unwrap_err();
    assert_eq!(err.to_string(), "invalid path: must not contain '..': ../../etc/passwd");
}
