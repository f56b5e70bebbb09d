//! Container environments from the real API with a node's credentials:
//! `envFrom` with prefixes, key references, upstream's errors for missing
//! keys and objects, and service links from the Services reflector.
//!
//! Run with: `eval "$(cargo xtask testbed up)"` then
//! `cargo test -p wasmlet-e2e --test volumes_env`.

mod volumes_common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::PostParams;
use volumes_common::TestNode;
use wasmlet_volumes::{EnvContext, resolve_env};

fn ctx(node: &TestNode) -> EnvContext {
    EnvContext {
        pod_ips: vec!["10.1.0.5".into()],
        host_ips: vec!["10.0.0.1".into()],
        node_name: node.name.clone(),
        allocatable: Default::default(),
    }
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

async fn objects(node: &TestNode) {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "settings"}, "data": {"MODE": "fast", "LEVEL": "3"}
    }))
    .unwrap();
    node.ns.api::<ConfigMap>().create(&PostParams::default(), &cm).await.unwrap();
    let s: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "creds"}, "stringData": {"TOKEN": "t0k3n", "dotted.key": "x"}
    }))
    .unwrap();
    node.ns.api::<Secret>().create(&PostParams::default(), &s).await.unwrap();
}

/// Resolves the env of the pod's first container, retrying while the Node
/// authorizer has not yet seen the pod (a fresh pod's objects may be
/// forbidden for a moment).
async fn env_of(node: &TestNode, pod: &Pod) -> Result<Vec<(String, String)>, String> {
    let container: &Container = &pod.spec.as_ref().unwrap().containers[0];
    let mut last = String::new();
    for _ in 0..20 {
        match resolve_env(&node.sources, pod, container, &ctx(node)).await {
            Ok(env) => return Ok(env),
            Err(e) => last = e.to_string(),
        }
        if !last.contains("failed to sync") {
            break;
        }
    }
    Err(last)
}

#[tokio::test]
async fn env_from_with_prefix_and_key_refs() {
    let node = TestNode::new("env-from").await;
    objects(&node).await;
    let pod = node
        .pod(
            "p",
            serde_json::json!({"containers": [{"name": "main", "image": "example.invalid/x:v1",
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}, {"secretRef": {"name": "creds"}}],
            "env": [
                {"name": "LEVEL_TWICE", "value": "$(APP_LEVEL)$(APP_LEVEL)"},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
                {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "TOKEN"}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            ]}]}),
        )
        .await;
    let env = env_of(&node, &pod).await.unwrap();
    assert_eq!(get(&env, "APP_MODE"), Some("fast"));
    assert_eq!(get(&env, "APP_LEVEL"), Some("3"));
    assert_eq!(get(&env, "TOKEN"), Some("t0k3n"));
    assert_eq!(get(&env, "dotted.key"), Some("x"), "any config key is a valid (relaxed) variable name");
    assert_eq!(get(&env, "LEVEL_TWICE"), Some("33"));
    assert_eq!(get(&env, "MODE"), Some("fast"));
    assert_eq!(get(&env, "SECRET"), Some("t0k3n"));
    assert_eq!(get(&env, "POD"), Some("p"));
    assert!(get(&env, "KUBERNETES_SERVICE_HOST").is_some(), "the master service link: {env:?}");
    assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT"), Some("443"));
    node.stop().await;
}

#[tokio::test]
async fn missing_keys_and_objects_give_upstreams_errors() {
    let node = TestNode::new("env-missing").await;
    objects(&node).await;
    let pod_with = |name: &'static str, env: serde_json::Value| {
        let spec = serde_json::json!({"containers": [{"name": "main", "image": "example.invalid/x:v1", "env": env}]});
        node.pod(name, spec)
    };
    let pod = pod_with(
        "key",
        serde_json::json!([
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "NOPE"}}}
        ]),
    )
    .await;
    let ns = node.ns.name().to_owned();
    assert_eq!(env_of(&node, &pod).await.unwrap_err(), format!("couldn't find key NOPE in ConfigMap {ns}/settings"));
    let pod = pod_with(
        "skey",
        serde_json::json!([
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "NOPE"}}}
        ]),
    )
    .await;
    assert_eq!(env_of(&node, &pod).await.unwrap_err(), format!("couldn't find key NOPE in Secret {ns}/creds"));
    let pod = pod_with(
        "obj",
        serde_json::json!([
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "K"}}},
            {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "absent-too", "key": "K", "optional": true}}}
        ]),
    )
    .await;
    assert_eq!(env_of(&node, &pod).await.unwrap_err(), "configmap \"absent\" not found");
    node.stop().await;
}

#[tokio::test]
async fn service_links() {
    let node = TestNode::new("env-svc").await;
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "my-db"},
        "spec": {"ports": [{"port": 5432, "name": "pg"}], "selector": {"app": "db"}}
    }))
    .unwrap();
    node.ns.api::<Service>().create(&PostParams::default(), &svc).await.unwrap();
    let linked = node.pod("linked", serde_json::json!({})).await;
    let unlinked = node.pod("unlinked", serde_json::json!({"enableServiceLinks": false})).await;
    let mut env = Vec::new();
    for _ in 0..100 {
        env = env_of(&node, &linked).await.unwrap();
        if get(&env, "MY_DB_SERVICE_HOST").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ip = get(&env, "MY_DB_SERVICE_HOST").expect("the service appears in the reflector");
    assert_eq!(get(&env, "MY_DB_SERVICE_PORT"), Some("5432"));
    assert_eq!(get(&env, "MY_DB_SERVICE_PORT_PG"), Some("5432"));
    assert_eq!(get(&env, "MY_DB_PORT_5432_TCP"), Some(format!("tcp://{ip}:5432").as_str()));
    let env = env_of(&node, &unlinked).await.unwrap();
    assert_eq!(get(&env, "MY_DB_SERVICE_HOST"), None);
    assert!(get(&env, "KUBERNETES_SERVICE_HOST").is_some());
    node.stop().await;
}
