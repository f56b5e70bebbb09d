//! Allocation at admission (upstream `Allocate` / `devicesToAllocate`) and
//! what a starting container gets (`GetDeviceRunContainerOptions`).
//!
//! For each container (init containers first) and each device plugin
//! resource in its limits: devices it already holds are kept; otherwise
//! devices freed by finished init containers are reused, then healthy free
//! devices are picked — those the plugin prefers first when it offers
//! `GetPreferredAllocation` — and the plugin's `Allocate` answers for them.
//! A failure refuses the pod with upstream's reason and message.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};
use wasmlet_plugins_proto::deviceplugin::v1beta1 as api;

use crate::endpoint::Endpoint;
use crate::options::{self, ContainerDevices};
use crate::pod_devices::Allocation;
use crate::resource::{limits, pod_request};
use crate::{DeviceManager, Inner, rpc_error};

/// Why a pod is refused (upstream's admission result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `UnexpectedAdmissionError`, or `OutOf<resource>`.
    pub reason: String,
    /// The message after `Pod was rejected: `.
    pub message: String,
}

/// Why a container cannot get its devices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// Allocating (again, after a restart) failed.
    #[error("{0}")]
    Allocate(String),
    /// The plugin's `PreStartContainer` failed.
    #[error("device plugin PreStartContainer rpc failed with err: {0}")]
    PreStart(String),
}

/// Reused devices by resource (from init containers that ran to completion).
type Reuse = BTreeMap<String, BTreeSet<String>>;

impl DeviceManager {
    /// Allocates devices for every container of `pod` that asks for a
    /// device plugin resource. Devices of pods no longer running must have
    /// been released first ([`DeviceManager::release`]).
    ///
    /// # Errors
    ///
    /// `UnexpectedAdmissionError` (`Allocate failed due to …, which is
    /// unexpected`) when devices are missing, unhealthy or the plugin fails;
    /// `OutOf<resource>` for a resource whose plugin is gone for good.
    pub async fn admit(&self, pod: &Pod) -> Result<(), Rejection> {
        let (Some(spec), Some(uid)) = (pod.spec.as_ref(), pod.metadata.uid.as_deref()) else { return Ok(()) };
        let inner = &self.inner;
        let guard = inner.allocating.lock().await;
        let mut reuse = Reuse::new();
        let mut changed = false;
        let unexpected = |e: String| Rejection {
            reason: "UnexpectedAdmissionError".into(),
            message: format!("Allocate failed due to {e}, which is unexpected"),
        };
        for init in spec.init_containers.iter().flatten() {
            let outcome = inner.allocate_container(uid, init, &mut reuse).await;
            changed |= outcome.as_ref().is_ok_and(|c| *c);
            if let Err(e) = outcome {
                drop(guard);
                if changed {
                    inner.save();
                }
                return Err(unexpected(e));
            }
            let sidecar = init.restart_policy.as_deref() == Some("Always");
            inner.mark_reusable(uid, init, &mut reuse, !sidecar);
        }
        for c in &spec.containers {
            let outcome = inner.allocate_container(uid, c, &mut reuse).await;
            changed |= outcome.as_ref().is_ok_and(|c| *c);
            if let Err(e) = outcome {
                drop(guard);
                if changed {
                    inner.save();
                }
                return Err(unexpected(e));
            }
            inner.mark_reusable(uid, c, &mut reuse, false);
        }
        drop(guard);
        if changed {
            inner.save();
        }
        self.fits(pod)
    }

    /// Upstream's resource fit for device plugin resources that no plugin
    /// serves any more (capacity 0 in the Node): `OutOf<resource>`.
    fn fits(&self, pod: &Pod) -> Result<(), Rejection> {
        let Some(spec) = pod.spec.as_ref() else { return Ok(()) };
        let state = self.inner.lock();
        let asked: BTreeSet<String> =
            spec.init_containers.iter().flatten().chain(&spec.containers).flat_map(|c| limits(c).into_keys()).collect();
        for resource in asked.iter().filter(|r| state.removed.contains(*r) && !state.is_plugin_resource(r)) {
            let requested = pod_request(spec, resource);
            if requested > 0 {
                return Err(Rejection {
                    reason: format!("OutOf{resource}"),
                    message: format!(
                        "Node didn't have enough resource: {resource}, requested: {requested}, used: 0, capacity: 0"
                    ),
                });
            }
        }
        Ok(())
    }

    /// What the device plugins gave `container` of `pod`: allocates first
    /// if it holds nothing yet (a pod that was running when the agent
    /// restarted before its devices were checkpointed), then calls
    /// `PreStartContainer` where the plugin asked for it.
    ///
    /// # Errors
    ///
    /// Allocation or `PreStartContainer` failed.
    pub async fn container_devices(&self, pod: &Pod, container: &Container) -> Result<ContainerDevices, DeviceError> {
        let Some(uid) = pod.metadata.uid.as_deref() else { return Ok(ContainerDevices::default()) };
        let inner = &self.inner;
        let wanted: Vec<String> = limits(container).into_iter().filter(|(_, n)| *n > 0).map(|(r, _)| r).collect();
        let missing = {
            let state = inner.lock();
            wanted.iter().any(|r| state.is_plugin_resource(r) && state.pods.get(uid, &container.name, r).is_none())
        };
        if missing {
            let guard = inner.allocating.lock().await;
            let outcome = inner.allocate_container(uid, container, &mut Reuse::new()).await;
            drop(guard);
            inner.save();
            outcome.map_err(DeviceError::Allocate)?;
        }
        let pre_starts: Vec<(String, Option<Arc<Endpoint>>, Vec<String>)> = {
            let state = inner.lock();
            wanted
                .iter()
                .filter_map(|r| {
                    let res = state.resources.get(r)?;
                    let required = res.options.as_ref().is_some_and(|o| o.pre_start_required);
                    let held = state.pods.get(uid, &container.name, r)?;
                    required.then(|| (r.clone(), res.endpoint.clone(), held.devices.iter().cloned().collect()))
                })
                .collect()
        };
        for (resource, endpoint, devices) in pre_starts {
            let Some(ep) = endpoint else {
                return Err(DeviceError::PreStart(format!("endpoint {resource} has been stopped")));
            };
            let mut client = ep.client.clone();
            let call = client.pre_start_container(api::PreStartContainerRequest { devices_ids: devices });
            match tokio::time::timeout(api::PRE_START_CONTAINER_TIMEOUT, call).await {
                Ok(Ok(_)) => {}
                Ok(Err(status)) => return Err(DeviceError::PreStart(rpc_error(&status))),
                Err(_) => {
                    return Err(DeviceError::PreStart(
                        "rpc error: code = DeadlineExceeded desc = context deadline exceeded".into(),
                    ));
                }
            }
        }
        let state = inner.lock();
        Ok(state
            .pods
            .container(uid, &container.name)
            .map(|held| options::merge(held.iter().map(|(r, a)| (r, &a.response))))
            .unwrap_or_default())
    }
}

/// The devices picked for one resource, before `Allocate`.
struct Plan {
    resource: String,
    needed: usize,
    picked: BTreeSet<String>,
    available: BTreeSet<String>,
    endpoint: Arc<Endpoint>,
}

impl Inner {
    /// Allocates what `container` needs; returns whether anything new was
    /// allocated. The caller holds `allocating`.
    pub(crate) async fn allocate_container(
        &self,
        uid: &str,
        container: &Container,
        reuse: &mut Reuse,
    ) -> Result<bool, String> {
        let mut changed = false;
        for (resource, needed) in limits(container) {
            let Some(mut plan) = self.plan(uid, &container.name, &resource, needed, reuse)? else { continue };
            if plan.picked.len() < plan.needed {
                self.prefer(&mut plan).await?;
                let rest: Vec<String> =
                    plan.available.difference(&plan.picked).take(plan.needed - plan.picked.len()).cloned().collect();
                plan.picked.extend(rest);
            }
            if plan.picked.len() != plan.needed {
                return Err(format!(
                    "unexpectedly allocated less resources than required. Requested: {}, Got: {}",
                    plan.needed,
                    plan.picked.len()
                ));
            }
            let response = self.call_allocate(&plan).await?;
            let mut state = self.lock();
            let allocation = Allocation { devices: plan.picked.clone(), response };
            state.pods.insert(uid, &container.name, &resource, allocation);
            changed = true;
            tracing::info!(%resource, devices = ?plan.picked, container = %container.name, "devices allocated");
        }
        Ok(changed)
    }

    /// Picks what can be picked without asking the plugin; `None` when the
    /// resource is not a device plugin's or the container holds it already.
    fn plan(
        &self,
        uid: &str,
        container: &str,
        resource: &str,
        needed: i64,
        reuse: &mut Reuse,
    ) -> Result<Option<Plan>, String> {
        let state = self.lock();
        if needed <= 0 || !state.is_plugin_resource(resource) {
            return Ok(None);
        }
        let needed = usize::try_from(needed).unwrap_or(usize::MAX);
        if let Some(held) = state.pods.get(uid, container, resource) {
            if held.devices.len() != needed {
                return Err(format!(
                    "pod {uid:?} container {container:?} changed request for resource {resource:?} from {} to {needed}",
                    held.devices.len()
                ));
            }
            return Ok(None);
        }
        let Some(r) = state.resources.get(resource) else {
            return Err(format!("cannot allocate unregistered device {resource}"));
        };
        let healthy = r.healthy();
        if healthy.is_empty() {
            return Err(format!("no healthy devices present; cannot allocate unhealthy devices {resource}"));
        }
        let picked: BTreeSet<String> = reuse.get(resource).into_iter().flatten().take(needed).cloned().collect();
        let in_use: BTreeSet<&String> = state.pods.in_use(resource).collect();
        let available: BTreeSet<String> =
            healthy.into_iter().filter(|d| !in_use.contains(d) && !picked.contains(d)).collect();
        let remaining = needed - picked.len();
        if available.len() < remaining {
            return Err(format!(
                "requested number of devices unavailable for {resource}. Requested: {remaining}, Available: {}",
                available.len()
            ));
        }
        let Some(endpoint) = r.endpoint.clone() else {
            return Err(format!("endpoint not found in cache for a registered resource: {resource}"));
        };
        Ok(Some(Plan { resource: resource.to_owned(), needed, picked, available, endpoint }))
    }

    /// Adds the devices the plugin prefers (when it offers to say), among
    /// the available ones, to the plan.
    async fn prefer(&self, plan: &mut Plan) -> Result<(), String> {
        if !plan.endpoint.options.get_preferred_allocation_available
            || plan.available.len() <= plan.needed - plan.picked.len()
        {
            return Ok(());
        }
        let request = api::PreferredAllocationRequest {
            container_requests: vec![api::ContainerPreferredAllocationRequest {
                available_device_i_ds: plan.available.union(&plan.picked).cloned().collect(),
                must_include_device_i_ds: plan.picked.iter().cloned().collect(),
                allocation_size: i32::try_from(plan.needed).unwrap_or(i32::MAX),
            }],
        };
        let mut client = plan.endpoint.client.clone();
        let answer = match tokio::time::timeout(self.config.call_timeout, client.get_preferred_allocation(request))
            .await
        {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => {
                return Err(format!(
                    "device plugin GetPreferredAllocation rpc failed with err: {}",
                    rpc_error(&status)
                ));
            }
            Err(_) => return Err("device plugin GetPreferredAllocation rpc failed with err: no answer in time".into()),
        };
        let preferred = answer.container_responses.into_iter().next().map(|r| r.device_i_ds).unwrap_or_default();
        for id in preferred {
            if plan.picked.len() == plan.needed {
                break;
            }
            if plan.available.contains(&id) {
                plan.picked.insert(id);
            }
        }
        Ok(())
    }

    /// The plugin's `Allocate` for the plan's devices.
    async fn call_allocate(&self, plan: &Plan) -> Result<api::ContainerAllocateResponse, String> {
        let request = api::AllocateRequest {
            container_requests: vec![api::ContainerAllocateRequest {
                devices_ids: plan.picked.iter().cloned().collect(),
            }],
        };
        let mut client = plan.endpoint.client.clone();
        let answer = match tokio::time::timeout(self.config.call_timeout, client.allocate(request)).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => return Err(rpc_error(&status)),
            Err(_) => {
                return Err(format!(
                    "rpc error: code = DeadlineExceeded desc = {} did not answer Allocate in time",
                    plan.resource
                ));
            }
        };
        answer
            .container_responses
            .into_iter()
            .next()
            .ok_or_else(|| "no containers return in allocation response".to_string())
    }

    /// After `container` was allocated: its devices become reusable by later
    /// containers (`reusable`: an init container that runs to completion),
    /// or are taken from the reusable set (it keeps them).
    fn mark_reusable(&self, uid: &str, container: &Container, reuse: &mut Reuse, reusable: bool) {
        let state = self.lock();
        let Some(held) = state.pods.container(uid, &container.name) else { return };
        for (resource, a) in held {
            let set = reuse.entry(resource.clone()).or_default();
            if reusable {
                set.extend(a.devices.iter().cloned());
            } else {
                set.retain(|d| !a.devices.contains(d));
            }
        }
    }
}
