//! `NodePrepareResources` before a pod's containers start and
//! `NodeUnprepareResources` after they stopped, as upstream's manager does
//! them: a validation pass that changes nothing, then the cache (and its
//! checkpoint) records the pod before any driver is called, so that a
//! crash in between still ends in an unprepare.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Pod};
use wasmlet_plugins_proto::dra::v1;

use crate::cache::{ClaimInfo, Device};
use crate::plugins::Registered;
use crate::{DraManager, claims, client};

/// A failed prepare or unprepare, in upstream's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraError {
    /// `prepare dynamic resources: …`.
    #[error("prepare dynamic resources: {0}")]
    Prepare(String),
    /// `unprepare dynamic resources: …`.
    #[error("unprepare dynamic resources: {0}")]
    Unprepare(String),
    /// The container's claims are not prepared (a bug, or a pod that was
    /// never prepared here).
    #[error("{0}")]
    Container(String),
}

impl DraManager {
    /// Prepares the claims of `pod` that are not prepared yet.
    ///
    /// # Errors
    ///
    /// A claim cannot be fetched, is not allocated, not reserved for the
    /// pod, not the pod's, or its driver is not registered or fails.
    pub async fn prepare(&self, pod: &Pod) -> Result<(), DraError> {
        let _busy = self.inner.busy.lock().await;
        self.prepare_locked(pod).await.map_err(DraError::Prepare)
    }

    async fn prepare_locked(&self, pod: &Pod) -> Result<(), String> {
        let inner = &self.inner;
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        // Validation: nothing changes until every claim checks out.
        let mut infos = Vec::new();
        for (name, must_own) in claims::names(pod)? {
            let claim =
                inner.api.get_claim(&namespace, &name).await.map_err(|e| format!("fetch ResourceClaim {name}: {e}"))?;
            if must_own {
                claims::is_for_pod(pod, &claim)?;
            }
            let claim_uid = claim.metadata.uid.clone().unwrap_or_default();
            if !claims::is_reserved_for(pod, &claim) {
                let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
                return Err(format!(
                    "pod {pod_name} ({pod_uid}) is not allowed to use ResourceClaim {name} ({claim_uid})"
                ));
            }
            let drivers = claims::drivers(&claim).map_err(|e| format!("ResourceClaim {name}: {e}"))?;
            let mut plugins = BTreeMap::new();
            for d in &drivers {
                plugins.insert(d.clone(), inner.plugins().get(d)?);
            }
            let info = ClaimInfo {
                claim_uid,
                claim_name: name,
                namespace: namespace.clone(),
                pod_uids: BTreeSet::new(),
                drivers: drivers.into_iter().map(|d| (d, Vec::new())).collect(),
                prepared: false,
            };
            infos.push((info, plugins));
        }
        // Record the pod on each claim, then batch what is not prepared by driver.
        let mut batches: BTreeMap<String, (Registered, Vec<v1::Claim>)> = BTreeMap::new();
        {
            let mut cache = inner.cache();
            for (info, plugins) in &infos {
                let entry = cache
                    .claims
                    .entry((info.namespace.clone(), info.claim_name.clone()))
                    .or_insert_with(|| info.clone());
                if entry.claim_uid != info.claim_uid {
                    return Err(format!(
                        "old ResourceClaim with same name {} and different UID {} still exists (previous pod force-deleted?!)",
                        info.claim_name, entry.claim_uid
                    ));
                }
                entry.pod_uids.insert(pod_uid.clone());
                if entry.prepared {
                    continue;
                }
                let claim = v1::Claim {
                    namespace: info.namespace.clone(),
                    uid: info.claim_uid.clone(),
                    name: info.claim_name.clone(),
                };
                for (driver, plugin) in plugins {
                    batches.entry(driver.clone()).or_insert_with(|| (plugin.clone(), Vec::new())).1.push(claim.clone());
                }
            }
        }
        inner.save()?;
        let mut done: BTreeSet<(String, String)> = infos
            .iter()
            .filter(|(_, plugins)| plugins.is_empty())
            .map(|(i, _)| (i.namespace.clone(), i.claim_name.clone()))
            .collect();
        for (driver, (plugin, claims)) in batches {
            tracing::info!(%driver, claims = ?claims.iter().map(|c| &c.name).collect::<Vec<_>>(), "NodePrepareResources");
            let answer =
                client::prepare(plugin.channel.clone(), plugin.service, claims.clone(), inner.config.call_timeout)
                    .await
                    .map_err(|e| format!("NodePrepareResources: {e}"))?;
            for (uid, result) in &answer {
                let Some(claim) = claims.iter().find(|c| &c.uid == uid) else {
                    return Err(format!("NodePrepareResources returned result for unknown claim UID {uid}"));
                };
                if !result.error.is_empty() {
                    return Err(format!(
                        "NodePrepareResources failed for ResourceClaim {}: {}",
                        claim.name, result.error
                    ));
                }
                let mut cache = inner.cache();
                let Some(info) = cache.get_mut(&claim.namespace, &claim.name) else {
                    return Err(format!(
                        "internal error: unable to get claim info for ResourceClaim {} in namespace {}",
                        claim.name, claim.namespace
                    ));
                };
                info.drivers.insert(driver.clone(), result.devices.iter().map(device).collect());
            }
            let unfinished = claims.iter().filter(|c| !answer.contains_key(&c.uid)).count();
            if unfinished != 0 {
                return Err(format!("NodePrepareResources skipped {unfinished} ResourceClaims"));
            }
            for c in &claims {
                done.insert((c.namespace.clone(), c.name.clone()));
            }
        }
        {
            let mut cache = inner.cache();
            for (ns, name) in &done {
                if let Some(info) = cache.get_mut(ns, name) {
                    info.prepared = true;
                }
            }
        }
        inner.save()
    }

    /// The CDI device IDs of `container`'s claims (`resources.claims`).
    ///
    /// # Errors
    ///
    /// A claim of the container is not prepared here.
    pub fn cdi_devices(&self, pod: &Pod, container: &Container) -> Result<Vec<String>, DraError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let wanted = container.resources.as_ref().and_then(|r| r.claims.as_ref());
        let pod_claims = pod.spec.as_ref().and_then(|s| s.resource_claims.as_ref());
        let mut out = Vec::new();
        for c in wanted.into_iter().flatten() {
            let Some(pod_claim) = pod_claims.into_iter().flatten().find(|p| p.name == c.name) else { continue };
            let Some((name, _)) = claims::name(pod, pod_claim).map_err(DraError::Container)? else { continue };
            let cache = self.inner.cache();
            let info = cache.get(namespace, &name).ok_or_else(|| {
                DraError::Container(format!(
                    "internal error: unable to get claim info for ResourceClaim {name} in namespace {namespace}"
                ))
            })?;
            out.extend(info.cdi_devices(c.request.as_deref().unwrap_or_default()));
        }
        Ok(out)
    }

    /// Unprepares the claims pod `uid` holds (those other pods still use
    /// only drop the pod). Idempotent.
    ///
    /// # Errors
    ///
    /// A driver is not registered or fails; the pod keeps its claims and the
    /// call can be repeated.
    pub async fn unprepare(&self, uid: &str) -> Result<(), DraError> {
        let _busy = self.inner.busy.lock().await;
        self.unprepare_locked(uid).await.map_err(DraError::Unprepare)
    }

    async fn unprepare_locked(&self, uid: &str) -> Result<(), String> {
        let inner = &self.inner;
        let mut batches: BTreeMap<String, Vec<v1::Claim>> = BTreeMap::new();
        let mut last_user: Vec<(String, String)> = Vec::new();
        {
            let mut cache = inner.cache();
            for info in cache.claims.values_mut().filter(|c| c.pod_uids.contains(uid)) {
                if info.pod_uids.len() > 1 {
                    info.pod_uids.remove(uid);
                    continue;
                }
                last_user.push((info.namespace.clone(), info.claim_name.clone()));
                let claim = v1::Claim {
                    namespace: info.namespace.clone(),
                    uid: info.claim_uid.clone(),
                    name: info.claim_name.clone(),
                };
                for driver in info.drivers.keys() {
                    batches.entry(driver.clone()).or_default().push(claim.clone());
                }
            }
        }
        for (driver, claims) in batches {
            let plugin = inner.plugins().get(&driver)?;
            tracing::info!(%driver, claims = ?claims.iter().map(|c| &c.name).collect::<Vec<_>>(), "NodeUnprepareResources");
            let answer =
                client::unprepare(plugin.channel.clone(), plugin.service, claims.clone(), inner.config.call_timeout)
                    .await
                    .map_err(|e| format!("NodeUnprepareResources: {e}"))?;
            for (claim_uid, error) in &answer {
                let Some(claim) = claims.iter().find(|c| &c.uid == claim_uid) else {
                    return Err(format!("NodeUnprepareResources returned result for unknown claim UID {claim_uid}"));
                };
                if !error.is_empty() {
                    return Err(format!("NodeUnprepareResources failed for ResourceClaim {}: {error}", claim.name));
                }
            }
            let unfinished = claims.iter().filter(|c| !answer.contains_key(&c.uid)).count();
            if unfinished != 0 {
                return Err(format!("NodeUnprepareResources skipped {unfinished} ResourceClaims"));
            }
        }
        {
            let mut cache = inner.cache();
            for key in &last_user {
                cache.claims.remove(key);
            }
        }
        inner.save()
    }
}

fn device(d: &v1::Device) -> Device {
    Device {
        request_names: d.request_names.clone(),
        pool_name: d.pool_name.clone(),
        device_name: d.device_name.clone(),
        cdi_device_ids: d.cdi_device_ids.clone(),
    }
}
