//! [`PodSources`]: every ConfigMap and Secret one pod references, held for
//! the pod's lifetime.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{Kind, SourceError, Sources, Subscription};

/// Subscriptions to every object a pod references (env, envFrom, volumes,
/// projected sources), so that they stay watched, and cached, while the pod
/// lives: container restarts and volume refreshes then read from memory.
/// Dropping it releases them.
#[derive(Debug)]
pub struct PodSources {
    subscriptions: Vec<Subscription>,
}

impl PodSources {
    /// The subscriptions held.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }
}

impl Sources {
    /// Subscribes to every ConfigMap and Secret `pod` references.
    ///
    /// Call it when the pod is admitted and keep the result until the pod is
    /// gone (upstream's `RegisterPod`).
    ///
    /// # Errors
    ///
    /// See [`Sources::acquire`].
    pub fn register_pod(&self, pod: &Pod) -> Result<PodSources, SourceError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let subscriptions = references(pod)
            .into_iter()
            .map(|(kind, name)| self.acquire(kind, namespace, &name))
            .collect::<Result<_, _>>()?;
        Ok(PodSources { subscriptions })
    }
}

/// The objects `pod` references in its containers' env and envFrom (init
/// and ephemeral containers included) and in its volumes.
pub fn references(pod: &Pod) -> BTreeSet<(Kind, String)> {
    let mut out = BTreeSet::new();
    let Some(spec) = pod.spec.as_ref() else { return out };
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    for container in containers {
        container_references(container, &mut out);
    }
    for ephemeral in spec.ephemeral_containers.iter().flatten() {
        for var in ephemeral.env.iter().flatten() {
            env_var_references(var, &mut out);
        }
        for from in ephemeral.env_from.iter().flatten() {
            env_from_references(from, &mut out);
        }
    }
    out.extend(crate::volumes::references(pod));
    out
}

fn container_references(container: &Container, out: &mut BTreeSet<(Kind, String)>) {
    for var in container.env.iter().flatten() {
        env_var_references(var, out);
    }
    for from in container.env_from.iter().flatten() {
        env_from_references(from, out);
    }
}

fn env_var_references(var: &k8s_openapi::api::core::v1::EnvVar, out: &mut BTreeSet<(Kind, String)>) {
    let Some(from) = var.value_from.as_ref() else { return };
    if let Some(r) = &from.config_map_key_ref {
        out.insert((Kind::ConfigMap, r.name.clone()));
    }
    if let Some(r) = &from.secret_key_ref {
        out.insert((Kind::Secret, r.name.clone()));
    }
}

fn env_from_references(from: &k8s_openapi::api::core::v1::EnvFromSource, out: &mut BTreeSet<(Kind, String)>) {
    if let Some(r) = &from.config_map_ref {
        out.insert((Kind::ConfigMap, r.name.clone()));
    }
    if let Some(r) = &from.secret_ref {
        out.insert((Kind::Secret, r.name.clone()));
    }
}
