//! The files of `configMap`, `secret`, `downwardAPI` and `projected`
//! volumes, computed from the pod, the watched objects and the issued tokens
//! (upstream `MakePayload` of each volume plugin), ready for the
//! [atomic writer](crate::atomic).
//!
//! # Modes
//!
//! A file's mode is its item's `mode`, else the volume's `defaultMode`, else
//! 0644. Secret files and service-account tokens never keep the "other"
//! bits, nor group write or any execute bit: their mode is masked with
//! [`SECRET_MODE_MASK`] (0640), so a secret is never world-readable on the
//! node whatever the pod asks for. (Modes only matter to host users: a WASI
//! guest cannot see them.)

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod, Volume, VolumeProjection};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::atomic::{AtomicError, FileProjection, Payload, clean_path};
use crate::fieldpath::{self, FieldError};
use crate::sources::{Kind, Object, SourceError};
use crate::token::{Token, TokenError, TokenSpec};

/// The mode of files whose volume sets none.
pub const DEFAULT_MODE: u32 = 0o644;
/// The most a secret or token file may allow.
pub const SECRET_MODE_MASK: u32 = 0o640;

/// Why a volume's files cannot be computed (upstream's wording).
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// A referenced object is missing or unreadable.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An `items` key is not in the ConfigMap or Secret.
    #[error("{}", missing_key_message(*.kind, key))]
    MissingKey {
        /// ConfigMap or Secret.
        kind: Kind,
        /// The key.
        key: String,
    },
    /// A downward API item cannot be resolved.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// An item path is not acceptable.
    #[error(transparent)]
    Path(#[from] AtomicError),
    /// A service-account token could not be issued.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A projection this node cannot provide.
    #[error("{0} projections are not supported by wasmlet")]
    Unsupported(&'static str),
}

fn missing_key_message(kind: Kind, key: &str) -> String {
    match kind {
        Kind::ConfigMap => format!("configmap references non-existent config key: {key}"),
        Kind::Secret => format!("references non-existent secret key: {key}"),
    }
}

/// Reads a watched object: `Ok(None)` when it does not exist.
pub(crate) type ObjectLookup<'a> = dyn Fn(Kind, &str) -> Result<Option<Object>, SourceError> + 'a;

/// What a payload is computed from.
pub(crate) struct Inputs<'a> {
    pub(crate) pod: &'a Pod,
    pub(crate) allocatable: &'a BTreeMap<String, Quantity>,
    pub(crate) objects: &'a ObjectLookup<'a>,
    pub(crate) tokens: &'a HashMap<TokenSpec, Token>,
}

/// The payload of an atomic-writer volume (`None` for other volume types).
pub(crate) fn volume(volume: &Volume, inputs: &Inputs<'_>) -> Option<Result<Payload, PayloadError>> {
    let mut payload = Payload::new();
    let result = if let Some(cm) = &volume.config_map {
        let mode = mode_or_default(cm.default_mode);
        object(&mut payload, inputs, Kind::ConfigMap, &cm.name, cm.items.as_deref(), mode, cm.optional)
    } else if let Some(secret) = &volume.secret {
        let name = secret.secret_name.as_deref().unwrap_or_default();
        let mode = mode_or_default(secret.default_mode);
        object(&mut payload, inputs, Kind::Secret, name, secret.items.as_deref(), mode, secret.optional)
    } else if let Some(downward) = &volume.downward_api {
        let mode = mode_or_default(downward.default_mode);
        downward_api(&mut payload, inputs, downward.items.as_deref().unwrap_or_default(), mode)
    } else if let Some(projected) = &volume.projected {
        let mode = mode_or_default(projected.default_mode);
        projected.sources.iter().flatten().try_for_each(|source| projection(&mut payload, inputs, source, mode))
    } else {
        return None;
    };
    Some(result.map(|()| payload))
}

fn mode_or_default(mode: Option<i32>) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok()).map_or(DEFAULT_MODE, |m| m & 0o777)
}

fn insert(payload: &mut Payload, path: &str, data: Vec<u8>, mode: u32) -> Result<(), PayloadError> {
    payload.insert(clean_path(path)?, FileProjection { data, mode });
    Ok(())
}

/// The files of a ConfigMap or Secret: all keys (`data` and, for
/// ConfigMaps, `binaryData`) or the listed `items`.
fn object(
    payload: &mut Payload,
    inputs: &Inputs<'_>,
    kind: Kind,
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: Option<bool>,
) -> Result<(), PayloadError> {
    let optional = optional.unwrap_or(false);
    let data: BTreeMap<String, Vec<u8>> = match (inputs.objects)(kind, name)? {
        Some(Object::ConfigMap(cm)) => {
            let text = cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.clone().into_bytes()));
            text.chain(cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone()))).collect()
        }
        Some(Object::Secret(s)) => s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
        None if optional => BTreeMap::new(),
        None => {
            let namespace = inputs.pod.metadata.namespace.clone().unwrap_or_default();
            return Err(SourceError::NotFound { kind, namespace, name: name.to_owned() }.into());
        }
    };
    let mask = if kind == Kind::Secret { SECRET_MODE_MASK } else { 0o777 };
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, value) in data {
                insert(payload, &key, value, default_mode & mask)?;
            }
        }
        Some(items) => {
            for item in items {
                let Some(value) = data.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(PayloadError::MissingKey { kind, key: item.key.clone() });
                };
                let mode = item.mode.map_or(default_mode, |m| mode_or_default(Some(m)));
                insert(payload, &item.path, value.clone(), mode & mask)?;
            }
        }
    }
    Ok(())
}

/// The files of downward API items (metadata fields and container
/// resources).
fn downward_api(
    payload: &mut Payload,
    inputs: &Inputs<'_>,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
) -> Result<(), PayloadError> {
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            fieldpath::check_version(field)?;
            fieldpath::metadata_field(inputs.pod, &field.field_path)?
        } else if let Some(resource) = &item.resource_field_ref {
            let container_name = resource.container_name.as_deref().unwrap_or_default();
            let container = fieldpath::container(inputs.pod, container_name)?;
            fieldpath::resource_value(resource, container, inputs.allocatable)?
        } else {
            String::new()
        };
        let mode = item.mode.map_or(default_mode, |m| mode_or_default(Some(m)));
        insert(payload, &item.path, value.into_bytes(), mode)?;
    }
    Ok(())
}

fn projection(
    payload: &mut Payload,
    inputs: &Inputs<'_>,
    source: &VolumeProjection,
    default_mode: u32,
) -> Result<(), PayloadError> {
    if let Some(cm) = &source.config_map {
        object(payload, inputs, Kind::ConfigMap, &cm.name, cm.items.as_deref(), default_mode, cm.optional)
    } else if let Some(secret) = &source.secret {
        object(payload, inputs, Kind::Secret, &secret.name, secret.items.as_deref(), default_mode, secret.optional)
    } else if let Some(downward) = &source.downward_api {
        downward_api(payload, inputs, downward.items.as_deref().unwrap_or_default(), default_mode)
    } else if let Some(projection) = &source.service_account_token {
        let spec = token_spec(inputs.pod, projection);
        let token = inputs.tokens.get(&spec).ok_or(TokenError::NoExpiration)?;
        insert(payload, &projection.path, token.token.clone().into_bytes(), default_mode & SECRET_MODE_MASK)
    } else if source.cluster_trust_bundle.is_some() {
        Err(PayloadError::Unsupported("clusterTrustBundle"))
    } else if source.pod_certificate.is_some() {
        Err(PayloadError::Unsupported("podCertificate"))
    } else {
        Ok(())
    }
}

/// The token a `serviceAccountToken` projection of `pod` asks for.
pub(crate) fn token_spec(
    pod: &Pod,
    projection: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection,
) -> TokenSpec {
    let spec = pod.spec.as_ref();
    let service_account = spec
        .and_then(|s| s.service_account_name.clone().or_else(|| s.service_account.clone()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    TokenSpec {
        namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_owned()),
        service_account,
        audiences: projection.audience.iter().filter(|a| !a.is_empty()).cloned().collect(),
        expiration_seconds: projection.expiration_seconds,
        pod_name: pod.metadata.name.clone().unwrap_or_default(),
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Every token a projected volume of `pod` needs.
pub(crate) fn token_specs(pod: &Pod, volume: &Volume) -> Vec<TokenSpec> {
    let projections = volume.projected.iter().flat_map(|p| p.sources.iter().flatten());
    let mut specs: Vec<TokenSpec> =
        projections.filter_map(|s| s.service_account_token.as_ref()).map(|p| token_spec(pod, p)).collect();
    let mut seen = std::collections::HashSet::new();
    specs.retain(|s| seen.insert(s.clone()));
    specs
}

#[cfg(test)]
mod tests;
