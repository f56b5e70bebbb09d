//! Service-link environment variables (`<NAME>_SERVICE_HOST` and the
//! Docker-link `<NAME>_PORT_*` family), as the kubelet computes them
//! (upstream `getServiceEnvVarMap` and `pkg/kubelet/envvars`).
//!
//! - The `kubernetes` Service of the `default` namespace is always included
//!   (it gives `KUBERNETES_SERVICE_HOST`/`_PORT`), even with
//!   `enableServiceLinks: false`; a Service of the same name in the pod's own
//!   namespace takes its place.
//! - With service links enabled, every Service of the pod's namespace that
//!   has a cluster IP (not empty, not `None`) is included.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

/// The namespace of the master Services.
const DEFAULT_NAMESPACE: &str = "default";
/// The Services whose variables every pod gets.
const MASTER_SERVICES: [&str; 1] = ["kubernetes"];

/// The variables for a pod in `namespace`, computed from `services` (all the
/// node knows of, any namespace).
pub fn service_env<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    namespace: &str,
    enable_service_links: bool,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in services {
        if cluster_ip(service).is_none() {
            continue;
        }
        let Some(name) = service.metadata.name.as_deref() else { continue };
        let service_ns = service.metadata.namespace.as_deref().unwrap_or_default();
        if service_ns == DEFAULT_NAMESPACE && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(service);
        } else if service_ns == namespace && enable_service_links {
            chosen.insert(name, service);
        }
    }
    let mut env = BTreeMap::new();
    for (name, service) in chosen {
        add_service(&mut env, name, service);
    }
    env
}

/// The cluster IP of a Service that has one.
fn cluster_ip(service: &Service) -> Option<&str> {
    let ip = service.spec.as_ref()?.cluster_ip.as_deref()?;
    (!ip.is_empty() && ip != "None").then_some(ip)
}

/// `my-svc` → `MY_SVC`.
fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

fn add_service(env: &mut BTreeMap<String, String>, name: &str, service: &Service) {
    let (Some(ip), Some(spec)) = (cluster_ip(service), service.spec.as_ref()) else { return };
    let ports = spec.ports.as_deref().unwrap_or_default();
    let Some(first) = ports.first() else { return };
    let prefix = env_name(name);
    env.insert(format!("{prefix}_SERVICE_HOST"), ip.to_owned());
    env.insert(format!("{prefix}_SERVICE_PORT"), first.port.to_string());
    for port in ports {
        if let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            env.insert(format!("{prefix}_SERVICE_PORT_{}", env_name(port_name)), port.port.to_string());
        }
    }
    // Docker-link variables.
    let host = if ip.contains(':') { format!("[{ip}]") } else { ip.to_owned() };
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP");
        let url = format!("{}://{host}:{}", protocol.to_lowercase(), port.port);
        if i == 0 {
            env.insert(format!("{prefix}_PORT"), url.clone());
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
        env.insert(format!("{port_prefix}_PROTO"), protocol.to_lowercase());
        env.insert(format!("{port_prefix}_PORT"), port.port.to_string());
        env.insert(format!("{port_prefix}_ADDR"), ip.to_owned());
        env.insert(port_prefix, url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}
        }))
        .unwrap()
    }

    fn services() -> Vec<Service> {
        vec![
            svc("default", "kubernetes", "10.96.0.1", serde_json::json!([{"name": "https", "port": 443}])),
            svc(
                "app",
                "my-db",
                "10.96.0.7",
                serde_json::json!([
                    {"port": 5432},
                    {"name": "metrics-port", "port": 9187, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"}
                ]),
            ),
            svc("app", "headless", "None", serde_json::json!([{"port": 80}])),
            svc("other", "elsewhere", "10.96.0.9", serde_json::json!([{"port": 80}])),
            svc("app", "v6", "fd00::1", serde_json::json!([{"port": 80}])),
        ]
    }

    #[test]
    fn variables_of_a_service() {
        let env = service_env(&services(), "app", true);
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("MY_DB_SERVICE_HOST"), Some("10.96.0.7"));
        assert_eq!(get("MY_DB_SERVICE_PORT"), Some("5432"));
        assert_eq!(get("MY_DB_SERVICE_PORT_METRICS_PORT"), Some("9187"));
        assert_eq!(get("MY_DB_SERVICE_PORT_DNS"), Some("53"));
        assert_eq!(get("MY_DB_PORT"), Some("tcp://10.96.0.7:5432"));
        assert_eq!(get("MY_DB_PORT_5432_TCP"), Some("tcp://10.96.0.7:5432"));
        assert_eq!(get("MY_DB_PORT_5432_TCP_PROTO"), Some("tcp"));
        assert_eq!(get("MY_DB_PORT_5432_TCP_PORT"), Some("5432"));
        assert_eq!(get("MY_DB_PORT_5432_TCP_ADDR"), Some("10.96.0.7"));
        assert_eq!(get("MY_DB_PORT_53_UDP"), Some("udp://10.96.0.7:53"));
        assert_eq!(get("V6_PORT"), Some("tcp://[fd00::1]:80"));
        assert_eq!(get("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(get("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        assert!(env.keys().all(|k| !k.starts_with("HEADLESS") && !k.starts_with("ELSEWHERE")));
    }

    #[test]
    fn links_disabled_keep_the_master_service() {
        let env = service_env(&services(), "app", false);
        assert!(env.contains_key("KUBERNETES_SERVICE_HOST"));
        assert!(env.keys().all(|k| k.starts_with("KUBERNETES_")), "{env:?}");
    }

    #[test]
    fn a_local_kubernetes_service_replaces_the_master_one() {
        let mut all = services();
        all.push(svc("app", "kubernetes", "10.96.0.99", serde_json::json!([{"port": 8443}])));
        let env = service_env(&all, "app", true);
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.99");
        let env = service_env(&all, "app", false);
        assert_eq!(env["KUBERNETES_SERVICE_HOST"], "10.96.0.1");
    }
}
