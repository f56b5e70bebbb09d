use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::*;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
        "spec": spec,
    }))
    .unwrap()
}

fn container(v: serde_json::Value) -> Container {
    serde_json::from_value(v).unwrap()
}

fn config_map(data: serde_json::Value) -> Result<Option<Object>, SourceError> {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}, "data": data})).unwrap();
    Ok(Some(Object::ConfigMap(Arc::new(cm))))
}

fn secret(data: serde_json::Value) -> Result<Option<Object>, SourceError> {
    let s: Secret = serde_json::from_value(serde_json::json!({"metadata": {"name": "s"}, "data": data})).unwrap();
    Ok(Some(Object::Secret(Arc::new(s))))
}

fn ctx() -> EnvContext {
    EnvContext {
        pod_ips: vec!["10.1.0.5".into(), "fd00::5".into()],
        host_ips: vec!["10.0.0.1".into()],
        node_name: "n1".into(),
        allocatable: BTreeMap::from([("memory".into(), Quantity("8Gi".into()))]),
    }
}

fn services() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("KUBERNETES_SERVICE_HOST".into(), "10.96.0.1".into()),
        ("DB_SERVICE_HOST".into(), "10.96.0.7".into()),
    ])
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn precedence_services_then_env_from_then_env() {
    let pod = pod(serde_json::json!({"nodeName": "n1", "containers": []}));
    let c = container(serde_json::json!({"name": "a",
    "envFrom": [
        {"configMapRef": {"name": "cm"}, "prefix": "CM_"},
        {"configMapRef": {"name": "cm2"}},
        {"secretRef": {"name": "s"}}
    ],
    "env": [
        {"name": "DB_SERVICE_HOST", "value": "overridden"},
        {"name": "SHARED", "value": "from-env"},
        {"name": "REF", "value": "$(CM_a)/$(KUBERNETES_SERVICE_HOST)/$(SHARED)/$(LATER)"},
        {"name": "LATER", "value": "x"}
    ]}));
    let objects = Objects::from([
        ((Kind::ConfigMap, "cm".into()), config_map(serde_json::json!({"a": "1", "bad=name": "z"}))),
        ((Kind::ConfigMap, "cm2".into()), config_map(serde_json::json!({"SHARED": "from-cm2", "ONLY": "cm2"}))),
        ((Kind::Secret, "s".into()), secret(serde_json::json!({"ONLY": "c2Vj"}))),
    ]);
    let env = compose(&pod, &c, &ctx(), &services(), &objects).unwrap();
    assert_eq!(get(&env, "CM_a"), Some("1"));
    assert_eq!(get(&env, "bad=name"), None, "invalid names are skipped");
    assert_eq!(get(&env, "CM_bad=name"), None);
    assert_eq!(get(&env, "ONLY"), Some("sec"), "a later envFrom source wins");
    assert_eq!(get(&env, "SHARED"), Some("from-env"), "env wins over envFrom");
    assert_eq!(get(&env, "DB_SERVICE_HOST"), Some("overridden"), "env wins over service links");
    assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
    assert_eq!(get(&env, "REF"), Some("1/10.96.0.1/from-env/$(LATER)"));
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "each name once: {names:?}");
    assert_eq!(names.last(), Some(&"LATER"), "env entries come last, in order");
}

#[test]
fn field_and_resource_refs() {
    let pod = pod(serde_json::json!({"serviceAccountName": "sa", "containers": [
        {"name": "main", "resources": {"limits": {"cpu": "1500m"}, "requests": {"memory": "100Mi"}}}
    ]}));
    let c = container(serde_json::json!({"name": "sidecar", "env": [
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
        {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels['app']"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "MAIN_CPU", "valueFrom": {"resourceFieldRef": {"containerName": "main", "resource": "limits.cpu", "divisor": "1m"}}},
        {"name": "MAIN_MEM", "valueFrom": {"resourceFieldRef": {"containerName": "main", "resource": "requests.memory", "divisor": "1Mi"}}},
        {"name": "OWN_MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Gi"}}}
    ]}));
    let env = compose(&pod, &c, &ctx(), &BTreeMap::new(), &Objects::new()).unwrap();
    assert_eq!(get(&env, "NODE"), Some("n1"), "spec.nodeName falls back to the node");
    assert_eq!(get(&env, "SA"), Some("sa"));
    assert_eq!(get(&env, "IP"), Some("10.1.0.5"));
    assert_eq!(get(&env, "IPS"), Some("10.1.0.5,fd00::5"));
    assert_eq!(get(&env, "HOST"), Some("10.0.0.1"));
    assert_eq!(get(&env, "APP"), Some("web"));
    assert_eq!(get(&env, "UID"), Some("u-1"));
    assert_eq!(get(&env, "MAIN_CPU"), Some("1500"));
    assert_eq!(get(&env, "MAIN_MEM"), Some("100"));
    assert_eq!(get(&env, "OWN_MEM"), Some("8"), "no limit: node allocatable");

    let bad = container(serde_json::json!({"name": "a", "env": [
        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.hostname"}}}]}));
    let err = compose(&pod, &bad, &ctx(), &BTreeMap::new(), &Objects::new()).unwrap_err();
    assert_eq!(err.to_string(), "unsupported fieldPath: spec.hostname");
}

#[test]
fn key_refs_mandatory_and_optional() {
    let pod = pod(serde_json::json!({"containers": []}));
    let objects = Objects::from([
        ((Kind::ConfigMap, "cm".into()), config_map(serde_json::json!({"k": "v"}))),
        ((Kind::ConfigMap, "gone".into()), Ok(None)),
        ((Kind::Secret, "s".into()), secret(serde_json::json!({"p": "cGFzcw=="}))),
    ]);
    let env_of = |env: serde_json::Value| {
        let c = container(serde_json::json!({"name": "a", "env": env}));
        compose(&pod, &c, &ctx(), &BTreeMap::new(), &objects)
    };
    let env = env_of(serde_json::json!([
        {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "p"}}},
        {"name": "OPT_KEY", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": true}}},
        {"name": "OPT_OBJ", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}}
    ]))
    .unwrap();
    assert_eq!(get(&env, "K"), Some("v"));
    assert_eq!(get(&env, "P"), Some("pass"));
    assert_eq!(get(&env, "OPT_KEY"), None, "a missing optional key sets nothing");
    assert_eq!(get(&env, "OPT_OBJ"), None);

    let err =
        env_of(serde_json::json!([{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope"}}}]));
    assert_eq!(err.unwrap_err().to_string(), "couldn't find key nope in ConfigMap ns/cm");
    let err = env_of(serde_json::json!([{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}}]));
    assert_eq!(err.unwrap_err().to_string(), "couldn't find key nope in Secret ns/s");
    let err =
        env_of(serde_json::json!([{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]));
    assert_eq!(err.unwrap_err().to_string(), "configmap \"gone\" not found");
}

#[test]
fn env_from_missing_objects() {
    let pod = pod(serde_json::json!({"containers": []}));
    let objects = Objects::from([
        ((Kind::Secret, "gone".into()), Ok(None)),
        (
            (Kind::ConfigMap, "slow".into()),
            Err(SourceError::NotSynced {
                kind: Kind::ConfigMap,
                namespace: "ns".into(),
                name: "slow".into(),
                last_error: None,
            }),
        ),
    ]);
    let env_of = |from: serde_json::Value| {
        let c = container(serde_json::json!({"name": "a", "envFrom": from}));
        compose(&pod, &c, &ctx(), &BTreeMap::new(), &objects)
    };
    assert!(env_of(serde_json::json!([{"secretRef": {"name": "gone", "optional": true}}])).unwrap().is_empty());
    let err = env_of(serde_json::json!([{"secretRef": {"name": "gone"}}])).unwrap_err();
    assert_eq!(err.to_string(), "secret \"gone\" not found");
    let err = env_of(serde_json::json!([{"configMapRef": {"name": "slow", "optional": true}}])).unwrap_err();
    assert_eq!(err.to_string(), "failed to sync configmap cache: timed out waiting for the condition");
}

#[test]
fn env_names() {
    assert!(valid_env_name("A_1"));
    assert!(valid_env_name("my.var-1"));
    assert!(valid_env_name("1abc"), "relaxed validation allows a leading digit");
    assert!(!valid_env_name(""));
    assert!(!valid_env_name("a=b"));
    assert!(!valid_env_name("tab\there"));
    assert!(!valid_env_name("ünï"));
}
