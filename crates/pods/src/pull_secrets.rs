//! Registry credentials from a pod's `imagePullSecrets`
//! (`kubernetes.io/dockerconfigjson` and the older `kubernetes.io/dockercfg`).

use base64::Engine;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use wasmlet_oci::RegistryAuth;

/// Host names that all mean Docker Hub in docker configs.
const DOCKER_HUB: [&str; 4] = ["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];

/// Credentials for `registry` from the pod's pull secrets, in the secrets'
/// order, and the names of secrets that could not be read.
pub(crate) async fn credentials(client: &kube::Client, pod: &Pod, registry: &str) -> (Vec<RegistryAuth>, Vec<String>) {
    let Some(ns) = pod.metadata.namespace.as_deref() else { return (Vec::new(), Vec::new()) };
    let names: Vec<String> =
        pod.spec.iter().flat_map(|s| s.image_pull_secrets.iter().flatten()).map(|r| r.name.clone()).collect();
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match api.get(&name).await {
            Ok(secret) => found.extend(from_secret(&secret, registry)),
            Err(e) => {
                tracing::warn!(secret = %name, error = %e, "cannot read image pull secret");
                missing.push(name);
            }
        }
    }
    (found, missing)
}

/// The entries of one secret that match `registry`.
pub(crate) fn from_secret(secret: &Secret, registry: &str) -> Vec<RegistryAuth> {
    let data = secret.data.clone().unwrap_or_default();
    let (json, nested) = match (data.get(".dockerconfigjson"), data.get(".dockercfg")) {
        (Some(b), _) => (b.0.clone(), true),
        (None, Some(b)) => (b.0.clone(), false),
        _ => return Vec::new(),
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&json) else { return Vec::new() };
    let entries = if nested { value.get("auths").cloned().unwrap_or_default() } else { value };
    let Some(entries) = entries.as_object() else { return Vec::new() };
    entries
        .iter()
        .filter(|(host, _)| same_registry(&normalize(host), registry))
        .filter_map(|(_, entry)| auth(entry))
        .collect()
}

fn auth(entry: &serde_json::Value) -> Option<RegistryAuth> {
    let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
    if let (Some(user), Some(pass)) = (field("username"), field("password")) {
        return Some(RegistryAuth::Basic(user.to_owned(), pass.to_owned()));
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(field("auth")?).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some(RegistryAuth::Basic(user.to_owned(), pass.to_owned()))
}

/// `https://host:port/v1/` → `host:port`.
fn normalize(key: &str) -> String {
    let key = key.trim_start_matches("https://").trim_start_matches("http://");
    key.split('/').next().unwrap_or(key).to_ascii_lowercase()
}

fn same_registry(a: &str, b: &str) -> bool {
    let b = b.to_ascii_lowercase();
    a == b || (DOCKER_HUB.contains(&a) && DOCKER_HUB.contains(&b.as_str()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    fn secret(key: &str, json: serde_json::Value) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(key.to_owned(), ByteString(serde_json::to_vec(&json).unwrap()))])),
            ..Default::default()
        }
    }

    #[test]
    fn dockerconfigjson_with_auth_or_username_password() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let s = secret(
            ".dockerconfigjson",
            serde_json::json!({"auths": {
                "https://127.0.0.1:5000/v1/": {"auth": auth},
                "other.example:443": {"username": "bob", "password": "pw"},
                "docker.io": {"username": "hub", "password": "x"}
            }}),
        );
        assert_eq!(from_secret(&s, "127.0.0.1:5000"), vec![RegistryAuth::Basic("alice".into(), "s3cret".into())]);
        assert_eq!(from_secret(&s, "other.example:443"), vec![RegistryAuth::Basic("bob".into(), "pw".into())]);
        assert_eq!(from_secret(&s, "index.docker.io"), vec![RegistryAuth::Basic("hub".into(), "x".into())]);
        assert!(from_secret(&s, "elsewhere:1").is_empty());
    }

    #[test]
    fn legacy_dockercfg_and_garbage() {
        let s = secret(".dockercfg", serde_json::json!({"reg:1": {"username": "u", "password": "p"}}));
        assert_eq!(from_secret(&s, "reg:1"), vec![RegistryAuth::Basic("u".into(), "p".into())]);
        let broken = Secret {
            data: Some(BTreeMap::from([(".dockerconfigjson".to_owned(), ByteString(b"{not json".to_vec()))])),
            ..Default::default()
        };
        assert!(from_secret(&broken, "reg:1").is_empty());
        let bad_auth = secret(".dockerconfigjson", serde_json::json!({"auths": {"reg:1": {"auth": "%%%"}}}));
        assert!(from_secret(&bad_auth, "reg:1").is_empty());
    }
}
