//! A container's environment, with Kubernetes semantics
//! ([`resolve_env`]; upstream `makeEnvironmentVariables`).
//!
//! In order, later sources overriding earlier ones:
//!
//! 1. service links ([`services`](crate::services)): the `kubernetes`
//!    Service always, the pod namespace's Services unless
//!    `enableServiceLinks: false`;
//! 2. `envFrom`, in order: every key of the ConfigMap's `data` / Secret's
//!    `data`, with `prefix`; a name that is not a valid variable name is
//!    skipped with a warning; a missing object is an error unless `optional`;
//! 3. `env`, in order: `value` with `$(VAR)` expanded against everything
//!    defined so far (then the service variables), or `valueFrom`
//!    (`fieldRef`, `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef`).
//!
//! Errors carry upstream's text, which the caller shows as the
//! `CreateContainerConfigError` message: `configmap "x" not found`,
//! `couldn't find key k in ConfigMap ns/x`.
//!
//! The result lists each name once, at the place of its last definition:
//! service variables (sorted), then `envFrom` keys, then `env` entries.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::expand::expand;
use crate::fieldpath::{self, FieldError};
use crate::sources::{Kind, Object, SourceError, Sources};

/// What a container's environment needs to know about the node and the pod's
/// addresses.
#[derive(Debug, Clone, Default)]
pub struct EnvContext {
    /// The pod's IPs, primary first (`status.podIP` is the first).
    pub pod_ips: Vec<String>,
    /// The node's IPs, primary first (`status.hostIP` is the first).
    pub host_ips: Vec<String>,
    /// The node's name (`spec.nodeName` when the pod has none).
    pub node_name: String,
    /// The node's allocatable resources: the value of a `limits.*`
    /// `resourceFieldRef` the container sets no limit for.
    pub allocatable: BTreeMap<String, Quantity>,
}

/// Why a container's environment cannot be built (the pod worker reports it
/// as `CreateContainerConfigError` with this text).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A referenced ConfigMap or Secret is missing or cannot be read, or the
    /// Services are not known yet.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A key a `configMapKeyRef`/`secretKeyRef` names is missing.
    #[error("couldn't find key {key} in {} {namespace}/{name}", kind_name(*.kind))]
    MissingKey {
        /// ConfigMap or Secret.
        kind: Kind,
        /// The namespace.
        namespace: String,
        /// The object.
        name: String,
        /// The key.
        key: String,
    },
    /// A `fieldRef` or `resourceFieldRef` cannot be resolved.
    #[error(transparent)]
    Field(#[from] FieldError),
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::ConfigMap => "ConfigMap",
        Kind::Secret => "Secret",
    }
}

/// The environment of `container` in `pod` (see the [module docs](self)).
///
/// Objects are read through `sources` (from its cache when the pod is
/// registered with [`Sources::register_pod`], else fetched by a watch that
/// lasts for this call).
///
/// # Errors
///
/// See [`EnvError`].
pub async fn resolve_env(
    sources: &Sources,
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut names: Vec<(Kind, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        if let Some(from) = var.value_from.as_ref() {
            names.extend(from.config_map_key_ref.iter().map(|r| (Kind::ConfigMap, r.name.clone())));
            names.extend(from.secret_key_ref.iter().map(|r| (Kind::Secret, r.name.clone())));
        }
    }
    for from in container.env_from.iter().flatten() {
        names.extend(from.config_map_ref.iter().map(|r| (Kind::ConfigMap, r.name.clone())));
        names.extend(from.secret_ref.iter().map(|r| (Kind::Secret, r.name.clone())));
    }
    let mut objects = Objects::new();
    for (kind, name) in names {
        if objects.contains_key(&(kind, name.clone())) {
            continue;
        }
        let result = match sources.acquire(kind, namespace, &name) {
            Ok(sub) => sub.get(sources.config().sync_timeout).await,
            Err(e) => Err(e),
        };
        objects.insert((kind, name), result);
    }
    let services = sources.services().await?;
    let enable_links = pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true);
    let service_env = crate::services::service_env(services.iter().map(AsRef::as_ref), namespace, enable_links);
    compose(pod, container, ctx, &service_env, &objects)
}

/// The objects a container references, as read.
pub(crate) type Objects = HashMap<(Kind, String), Result<Option<Object>, SourceError>>;

/// The environment from already-read inputs.
pub(crate) fn compose(
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext,
    service_env: &BTreeMap<String, String>,
    objects: &Objects,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let lookup = |kind: Kind, name: &str, optional: bool| -> Result<Option<Object>, EnvError> {
        let not_found = || SourceError::NotFound { kind, namespace: namespace.to_owned(), name: name.to_owned() };
        match objects.get(&(kind, name.to_owned())) {
            Some(Ok(Some(object))) => Ok(Some(object.clone())),
            Some(Ok(None)) | Some(Err(SourceError::NotFound { .. })) if optional => Ok(None),
            Some(Ok(None)) | None => Err(not_found().into()),
            Some(Err(e)) => Err(e.clone().into()),
        }
    };
    let mut ordered: Vec<(String, String)> = Vec::new();
    let mut defined: HashMap<String, String> = HashMap::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let mut entries: Vec<(String, String)> = Vec::new();
        if let Some(r) = &from.config_map_ref {
            if let Some(Object::ConfigMap(cm)) = lookup(Kind::ConfigMap, &r.name, r.optional.unwrap_or(false))? {
                entries.extend(cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
            }
        } else if let Some(r) = &from.secret_ref
            && let Some(Object::Secret(s)) = lookup(Kind::Secret, &r.name, r.optional.unwrap_or(false))?
        {
            let data = s.data.iter().flatten();
            entries.extend(data.map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned())));
        }
        let mut invalid = Vec::new();
        for (key, value) in entries {
            let name = format!("{prefix}{key}");
            if !valid_env_name(&name) {
                invalid.push(name);
                continue;
            }
            defined.insert(name.clone(), value.clone());
            ordered.push((name, value));
        }
        if !invalid.is_empty() {
            let source = from.config_map_ref.as_ref().map(|r| &r.name).or(from.secret_ref.as_ref().map(|r| &r.name));
            tracing::warn!(?invalid, envfrom.source = ?source, "skipped keys that are not valid environment variable names");
        }
    }
    for var in container.env.iter().flatten() {
        let Some(value) = env_value(pod, container, ctx, var, &defined, service_env, &lookup)? else { continue };
        defined.insert(var.name.clone(), value.clone());
        ordered.push((var.name.clone(), value));
    }
    let services = service_env.iter().filter(|(k, _)| !defined.contains_key(*k));
    let all: Vec<(String, String)> = services.map(|(k, v)| (k.clone(), v.clone())).chain(ordered).collect();
    Ok(last_definitions(all))
}

/// The value of one `env` entry; `None` when an optional reference is missing
/// (the variable is then not set at all, as upstream).
fn env_value(
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext,
    var: &EnvVar,
    defined: &HashMap<String, String>,
    service_env: &BTreeMap<String, String>,
    lookup: &impl Fn(Kind, &str, bool) -> Result<Option<Object>, EnvError>,
) -> Result<Option<String>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(value) = var.value.as_deref().filter(|v| !v.is_empty()) {
        let get = |name: &str| defined.get(name).or_else(|| service_env.get(name)).map(String::as_str);
        return Ok(Some(expand(value, get)));
    }
    let Some(from) = var.value_from.as_ref() else { return Ok(Some(String::new())) };
    let missing_key = |kind, name: &str, key: &str| EnvError::MissingKey {
        kind,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        key: key.to_owned(),
    };
    if let Some(field) = &from.field_ref {
        fieldpath::check_version(field)?;
        let first = |ips: &[String]| ips.first().cloned().unwrap_or_default();
        let spec = pod.spec.as_ref();
        return Ok(Some(match field.field_path.as_str() {
            "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_else(|| ctx.node_name.clone()),
            "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
            "status.hostIP" => first(&ctx.host_ips),
            "status.hostIPs" => ctx.host_ips.join(","),
            "status.podIP" => first(&ctx.pod_ips),
            "status.podIPs" => ctx.pod_ips.join(","),
            path => fieldpath::metadata_field(pod, path)?,
        }));
    }
    if let Some(resource) = &from.resource_field_ref {
        let target = match resource.container_name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => fieldpath::container(pod, name)?,
            None => container,
        };
        return Ok(Some(fieldpath::resource_value(resource, target, &ctx.allocatable)?));
    }
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional.unwrap_or(false);
        let Some(Object::ConfigMap(cm)) = lookup(Kind::ConfigMap, &r.name, optional)? else { return Ok(None) };
        return match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(missing_key(Kind::ConfigMap, &r.name, &r.key)),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional.unwrap_or(false);
        let Some(Object::Secret(s)) = lookup(Kind::Secret, &r.name, optional)? else { return Ok(None) };
        return match s.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(String::from_utf8_lossy(&v.0).into_owned())),
            None if optional => Ok(None),
            None => Err(missing_key(Kind::Secret, &r.name, &r.key)),
        };
    }
    // `fileKeyRef` (alpha) and empty sources: nothing to set.
    Ok(Some(String::new()))
}

/// A valid environment variable name under the apiserver's relaxed rule
/// (`RelaxedEnvironmentVariableValidation`): not empty, printable ASCII, no
/// `=`.
pub(crate) fn valid_env_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'=')
}

/// Keeps each name once, at the place of its last definition.
fn last_definitions(all: Vec<(String, String)>) -> Vec<(String, String)> {
    let last: HashMap<&str, usize> = all.iter().enumerate().map(|(i, (k, _))| (k.as_str(), i)).collect();
    let keep: Vec<bool> = all.iter().enumerate().map(|(i, (k, _))| last.get(k.as_str()) == Some(&i)).collect();
    all.into_iter().zip(keep).filter_map(|(kv, keep)| keep.then_some(kv)).collect()
}

#[cfg(test)]
mod tests;
