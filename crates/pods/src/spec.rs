//! From a container spec to what the guest sees: argv, environment, working
//! directory — with Kubernetes' `$(VAR)` expansion.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};

/// A container whose configuration cannot be built (upstream:
/// `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The guest's argv: `command` + `args` when `command` is set; otherwise
/// argv[0] is the image reference as written in the pod spec (a wasm image has
/// no entrypoint program name), followed by `args`. `$(VAR)` references are
/// expanded with the container's environment.
pub fn argv(container: &Container, env: &[(String, String)]) -> Vec<String> {
    let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let args = container.args.iter().flatten();
    match container.command.as_ref().filter(|c| !c.is_empty()) {
        Some(command) => command.iter().chain(args).map(|s| expand(s, &vars)).collect(),
        None => {
            std::iter::once(container.image.clone().unwrap_or_default()).chain(args.map(|s| expand(s, &vars))).collect()
        }
    }
}

/// The container's environment, in order, each value expanded against the
/// variables defined before it. `valueFrom` sources read from the pod itself
/// (`fieldRef`) are resolved; the ones that need other API objects are not
/// supported yet and fail with a [`ConfigError`].
pub fn env(
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_value(pod, &field.field_path, pod_ip, host_ip).ok_or_else(|| {
                        ConfigError(format!("unsupported fieldRef {:?} in env {}", field.field_path, var.name))
                    })?
                } else {
                    return Err(ConfigError(format!(
                        "env {}: valueFrom other than fieldRef (configMapKeyRef, secretKeyRef, resourceFieldRef) is not supported yet",
                        var.name
                    )));
                }
            }
            (Some(v), None) => {
                let vars: HashMap<&str, &str> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                expand(v, &vars)
            }
            (None, None) => String::new(),
        };
        // A later definition of the same name wins, as in a container runtime.
        out.retain(|(k, _)| *k != var.name);
        out.push((var.name.clone(), value));
    }
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(ConfigError("envFrom is not supported yet".into()));
    }
    Ok(out)
}

fn field_value(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => m.name.clone()?,
        "metadata.namespace" => m.namespace.clone()?,
        "metadata.uid" => m.uid.clone()?,
        "spec.nodeName" => spec?.node_name.clone()?,
        "spec.serviceAccountName" => spec?.service_account_name.clone().unwrap_or_default(),
        "status.podIP" | "status.podIPs" => pod_ip.to_owned(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_owned(),
        _ => {
            let key = path.strip_prefix("metadata.labels['").or_else(|| path.strip_prefix("metadata.annotations['"))?;
            let key = key.strip_suffix("']")?;
            let map = if path.starts_with("metadata.labels") { m.labels.as_ref() } else { m.annotations.as_ref() };
            map.and_then(|l| l.get(key)).cloned().unwrap_or_default()
        }
    })
}

/// Kubernetes variable expansion: `$(NAME)` becomes the value of NAME when
/// defined and stays as written otherwise; `$$` is a literal `$`.
pub fn expand(input: &str, vars: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = HashMap::from([("A", "1"), ("B", "two")]);
        assert_eq!(expand("x$(A)y$(B)", &vars), "x1ytwo");
        assert_eq!(expand("$(MISSING)", &vars), "$(MISSING)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("cost $5 $(A", &vars), "cost $5 $(A");
    }

    #[test]
    fn argv_from_command_or_image() {
        let env = vec![("N".to_owned(), "7".to_owned())];
        let c = container(serde_json::json!({"name": "a", "image": "reg/exit-code:v1", "args": ["$(N)"]}));
        assert_eq!(argv(&c, &env), ["reg/exit-code:v1", "7"]);
        let c = container(serde_json::json!({"name": "a", "image": "i", "command": ["prog", "-x"], "args": ["y"]}));
        assert_eq!(argv(&c, &env), ["prog", "-x", "y"]);
    }

    #[test]
    fn env_values_and_field_refs() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": []}
        }))
        .unwrap();
        let c = container(serde_json::json!({"name": "a", "env": [
            {"name": "A", "value": "x"},
            {"name": "B", "value": "$(A)-y"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "A", "value": "z"}
        ]}));
        let env = env(&pod, &c, "10.1.0.5", "10.0.0.1").unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("B"), Some("x-y"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("IP"), Some("10.1.0.5"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("A"), Some("z"));
        assert_eq!(env.iter().filter(|(n, _)| n == "A").count(), 1);
    }

    #[test]
    fn unsupported_sources_are_config_errors() {
        let pod = Pod::default();
        let c = container(serde_json::json!({"name": "a", "env": [
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
        ]}));
        assert!(env(&pod, &c, "", "").unwrap_err().0.contains("not supported yet"));
    }
}
