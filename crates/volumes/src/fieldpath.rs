//! What the downward API exposes of a pod: `fieldRef` paths on its metadata
//! and `resourceFieldRef` values of its containers, shared by env variables
//! ([`env`](crate::env)) and `downwardAPI` volumes.
//!
//! Formats follow upstream (`pkg/fieldpath`, `pkg/api/v1/resource`):
//! a whole label or annotation map is rendered as sorted `key="value"`
//! lines, values quoted as Go's `%q` does; resource values are divided by the
//! `divisor` and rounded up.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use crate::quantity::{InvalidQuantity, Quantity, ceil_div};

/// A `fieldRef` or `resourceFieldRef` that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The field path is not one the downward API offers here.
    #[error("unsupported fieldPath: {0}")]
    UnsupportedField(String),
    /// `fieldRef.apiVersion` is not `v1`.
    #[error("unsupported pod version: {0}")]
    UnsupportedVersion(String),
    /// The resource is not one the downward API offers.
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    /// `resourceFieldRef.containerName` names no container of the pod.
    #[error("container {0} not found")]
    NoSuchContainer(String),
    /// A quantity (a limit, request or divisor) does not parse.
    #[error("invalid quantity in resourceFieldRef {resource}")]
    Quantity {
        /// The resource, e.g. `limits.memory`.
        resource: String,
        /// The parse error.
        #[source]
        source: InvalidQuantity,
    },
    /// The divisor rounds to zero for this resource (e.g. `1m` for memory).
    #[error("invalid divisor {divisor} for {resource}")]
    Divisor {
        /// The resource.
        resource: String,
        /// The divisor as written.
        divisor: String,
    },
}

/// Checks `fieldRef.apiVersion` (empty or `v1`).
pub(crate) fn check_version(selector: &ObjectFieldSelector) -> Result<(), FieldError> {
    match selector.api_version.as_deref() {
        None | Some("" | "v1") => Ok(()),
        Some(other) => Err(FieldError::UnsupportedVersion(other.to_owned())),
    }
}

/// The value of a metadata field path: `metadata.name`, `.namespace`,
/// `.uid`, `.labels`, `.annotations`, `.labels['k']`, `.annotations['k']`
/// (a missing key is the empty string).
///
/// # Errors
///
/// [`FieldError::UnsupportedField`] for any other path.
pub fn metadata_field(pod: &Pod, path: &str) -> Result<String, FieldError> {
    let m = &pod.metadata;
    let unsupported = || FieldError::UnsupportedField(path.to_owned());
    let empty = BTreeMap::new();
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(m.labels.as_ref().unwrap_or(&empty)),
        "metadata.annotations" => format_map(m.annotations.as_ref().unwrap_or(&empty)),
        _ => {
            let (map, rest) = if let Some(rest) = path.strip_prefix("metadata.labels[") {
                (m.labels.as_ref(), rest)
            } else if let Some(rest) = path.strip_prefix("metadata.annotations[") {
                (m.annotations.as_ref(), rest)
            } else {
                return Err(unsupported());
            };
            let key = rest.strip_suffix(']').ok_or_else(unsupported)?;
            let key = key
                .strip_prefix('\'')
                .and_then(|k| k.strip_suffix('\''))
                .or_else(|| key.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
                .ok_or_else(unsupported)?;
            map.and_then(|m| m.get(key)).cloned().unwrap_or_default()
        }
    })
}

/// A label or annotation map as the downward API renders it: one
/// `key="value"` line per entry, sorted by key, no trailing newline.
pub fn format_map(map: &BTreeMap<String, String>) -> String {
    let lines: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect();
    lines.join("\n")
}

/// A string quoted the way Go's `%q` (strconv.Quote) does.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The container named by a volume's `resourceFieldRef.containerName`
/// (regular or init container).
pub(crate) fn container<'a>(pod: &'a Pod, name: &str) -> Result<&'a Container, FieldError> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .find(|c| c.name == name)
        .ok_or_else(|| FieldError::NoSuchContainer(name.to_owned()))
}

/// The value of `selector` for `container`: `limits.*` / `requests.*` of
/// `cpu`, `memory` and `ephemeral-storage`, divided by the divisor (by
/// default one) and rounded up. An unset limit is the node's `allocatable`, as
/// upstream's `defaultPodLimitsForDownwardAPI`; an unset request is 0.
///
/// # Errors
///
/// An unsupported resource, or a quantity or divisor that does not parse.
pub fn resource_value(
    selector: &ResourceFieldSelector,
    container: &Container,
    allocatable: &BTreeMap<String, ApiQuantity>,
) -> Result<String, FieldError> {
    let resource = selector.resource.as_str();
    let (kind, name) = resource.split_once('.').ok_or_else(|| FieldError::UnsupportedResource(resource.to_owned()))?;
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") || !matches!(kind, "limits" | "requests") {
        return Err(FieldError::UnsupportedResource(resource.to_owned()));
    }
    let resources = container.resources.as_ref();
    let set = match kind {
        "limits" => {
            resources.and_then(|r| r.limits.as_ref()).and_then(|l| l.get(name)).or_else(|| allocatable.get(name))
        }
        _ => resources.and_then(|r| r.requests.as_ref()).and_then(|l| l.get(name)),
    };
    let parse =
        |q: &str| Quantity::parse(q).map_err(|source| FieldError::Quantity { resource: resource.to_owned(), source });
    let value = set.map(|q| parse(&q.0)).transpose()?.unwrap_or(
        Quantity::parse("0").map_err(|source| FieldError::Quantity { resource: resource.to_owned(), source })?,
    );
    let divisor_text = selector.divisor.as_ref().map(|d| d.0.as_str()).unwrap_or("1");
    let mut divisor = parse(divisor_text)?;
    if divisor.milli_value() == 0 {
        divisor = parse("1")?;
    }
    let (numerator, denominator) =
        if name == "cpu" { (value.milli_value(), divisor.milli_value()) } else { (value.value(), divisor.value()) };
    let bad_divisor = || FieldError::Divisor { resource: resource.to_owned(), divisor: divisor_text.to_owned() };
    let result = ceil_div(i128::from(numerator), i128::from(denominator)).ok_or_else(bad_divisor)?;
    Ok(result.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1",
                "labels": {"app": "web", "tier": "a\"b\nc"}, "annotations": {"x/y": "z"}},
            "spec": {"containers": [{"name": "main", "resources": {
                "limits": {"cpu": "500m", "memory": "64Mi"},
                "requests": {"cpu": "250m", "memory": "32Mi"}}}],
                "initContainers": [{"name": "init"}]}
        }))
        .unwrap()
    }

    fn sel(resource: &str, divisor: Option<&str>) -> ResourceFieldSelector {
        ResourceFieldSelector {
            resource: resource.into(),
            divisor: divisor.map(|d| ApiQuantity(d.into())),
            container_name: None,
        }
    }

    #[test]
    fn metadata_fields() {
        let pod = pod();
        assert_eq!(metadata_field(&pod, "metadata.name").unwrap(), "p");
        assert_eq!(metadata_field(&pod, "metadata.uid").unwrap(), "u-1");
        assert_eq!(metadata_field(&pod, "metadata.labels['app']").unwrap(), "web");
        assert_eq!(metadata_field(&pod, "metadata.labels['none']").unwrap(), "");
        assert_eq!(metadata_field(&pod, "metadata.annotations['x/y']").unwrap(), "z");
        assert_eq!(metadata_field(&pod, "metadata.labels").unwrap(), "app=\"web\"\ntier=\"a\\\"b\\nc\"");
        assert_eq!(
            metadata_field(&pod, "spec.nodeName").unwrap_err().to_string(),
            "unsupported fieldPath: spec.nodeName"
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("plain ünï"), "\"plain ünï\"");
        assert_eq!(go_quote("\t\\\u{1}\u{7f}"), "\"\\t\\\\\\x01\\x7f\"");
    }

    #[test]
    fn resource_values_with_divisors() {
        let pod = pod();
        let c = container(&pod, "main").unwrap();
        let none = BTreeMap::new();
        let v = |r, d| resource_value(&sel(r, d), c, &none).unwrap();
        assert_eq!(v("limits.cpu", None), "1"); // 500m rounds up to 1 core
        assert_eq!(v("limits.cpu", Some("1m")), "500");
        assert_eq!(v("requests.cpu", Some("1m")), "250");
        assert_eq!(v("requests.cpu", Some("100m")), "3"); // ⌈250/100⌉
        assert_eq!(v("limits.memory", None), (64u64 << 20).to_string());
        assert_eq!(v("limits.memory", Some("1Mi")), "64");
        assert_eq!(v("limits.memory", Some("1M")), "68"); // ⌈67108864/1e6⌉
        assert_eq!(v("requests.memory", Some("1Ki")), "32768");
        assert_eq!(v("requests.ephemeral-storage", None), "0");
        assert_eq!(v("limits.cpu", Some("0")), "1");
    }

    #[test]
    fn unset_limits_default_to_allocatable() {
        let pod = pod();
        let c = container(&pod, "init").unwrap();
        let alloc = BTreeMap::from([
            ("cpu".to_owned(), ApiQuantity("2".into())),
            ("memory".to_owned(), ApiQuantity("4Gi".into())),
            ("ephemeral-storage".to_owned(), ApiQuantity("10G".into())),
        ]);
        let v = |r, d| resource_value(&sel(r, d), c, &alloc).unwrap();
        assert_eq!(v("limits.cpu", Some("1m")), "2000");
        assert_eq!(v("limits.memory", Some("1Gi")), "4");
        assert_eq!(v("limits.ephemeral-storage", Some("1G")), "10");
        assert_eq!(v("requests.memory", None), "0");
    }

    #[test]
    fn unsupported_resources_and_bad_divisors() {
        let pod = pod();
        let c = container(&pod, "main").unwrap();
        let none = BTreeMap::new();
        let err = resource_value(&sel("limits.gpu", None), c, &none).unwrap_err();
        assert_eq!(err.to_string(), "unsupported container resource : limits.gpu");
        // Upstream divides Value()s, and Value() of 1m is 1 (rounded up).
        assert_eq!(resource_value(&sel("limits.memory", Some("1m")), c, &none).unwrap(), (64u64 << 20).to_string());
        assert!(matches!(container(&pod, "nope"), Err(FieldError::NoSuchContainer(_))));
    }
}
