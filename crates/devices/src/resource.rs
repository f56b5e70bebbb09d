//! Extended resource names and what a pod asks for (device plugin
//! resources are asked for as integer `limits`; the API server makes
//! `requests` equal them).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// Whether `name` is an extended resource name a device plugin may
/// advertise (upstream `IsExtendedResourceName`): it has a domain prefix
/// outside `kubernetes.io`, does not start with `requests.`, and
/// `requests.<name>` is a qualified name.
pub fn is_extended_resource_name(name: &str) -> bool {
    if !name.contains('/') || name.contains("kubernetes.io/") || name.starts_with("requests.") {
        return false;
    }
    let Some((prefix, rest)) = format!("requests.{name}").split_once('/').map(|(p, r)| (p.to_owned(), r.to_owned()))
    else {
        return false;
    };
    dns_subdomain(&prefix) && qualified_name_part(&rest)
}

fn dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The integer `limits` of `container` (unparsable or fractional values
/// count as 0: the API server refuses them for extended resources).
pub fn limits(container: &Container) -> BTreeMap<String, i64> {
    container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| wasmlet_quantity::units(&q.0).ok().map(|v| (k.clone(), v)))
        .collect()
}

/// What the pod as a whole requests of `resource`, as the scheduler counts
/// it: the larger of the sum over regular containers (and sidecars) and
/// the largest init container.
pub fn pod_request(spec: &PodSpec, resource: &str) -> i64 {
    let get = |c: &Container| limits(c).get(resource).copied().unwrap_or(0);
    let sum: i64 = spec.containers.iter().map(get).sum();
    let init = spec.init_containers.iter().flatten().map(get).max().unwrap_or(0);
    sum.max(init)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_resource_names_as_upstream() {
        for ok in ["wasmlet.test/null", "example.com/resource", "nvidia.com/gpu", "a.b/c_d.e-f"] {
            assert!(is_extended_resource_name(ok), "{ok}");
        }
        for bad in [
            "cpu",
            "memory",
            "kubernetes.io/x",
            "sub.kubernetes.io/x",
            "requests.a.io/x",
            "A.io/x",
            "a.io/",
            "a.io/-x",
            "/x",
            "a.io/x/y",
        ] {
            assert!(!is_extended_resource_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_pods_request_is_the_larger_of_containers_and_init_containers() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "initContainers": [{"name": "i", "resources": {"limits": {"x.io/d": "3"}}}],
            "containers": [
                {"name": "a", "resources": {"limits": {"x.io/d": "1", "cpu": "500m"}}},
                {"name": "b", "resources": {"limits": {"x.io/d": "1"}}}
            ]
        }))
        .unwrap();
        assert_eq!(pod_request(&spec, "x.io/d"), 3);
        assert_eq!(pod_request(&spec, "y.io/d"), 0);
        assert_eq!(limits(&spec.containers[0]).get("x.io/d"), Some(&1));
    }
}
