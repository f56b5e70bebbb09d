//! A namespace per test, deleted when the test ends.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Namespace as NamespaceObject, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use rand::Rng;

use crate::wait;

/// A fresh namespace; dropping it deletes it (without waiting).
pub struct Namespace {
    name: String,
    client: kube::Client,
    kubeconfig: PathBuf,
}

impl Namespace {
    /// Creates `<prefix>-<random>` and waits until pods can be created in it
    /// (its `default` ServiceAccount exists).
    pub async fn create(client: &kube::Client, prefix: &str) -> Self {
        let suffix: String = rand::rng().sample_iter(rand::distr::Alphanumeric).take(6).map(char::from).collect();
        let name = format!("{prefix}-{}", suffix.to_lowercase());
        let api: Api<NamespaceObject> = Api::all(client.clone());
        let ns = NamespaceObject {
            metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
            ..Default::default()
        };
        if let Err(e) = api.create(&PostParams::default(), &ns).await {
            panic!("creating namespace {name}: {e}");
        }
        let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        wait::for_object(&sa, "default", wait::DEFAULT_TIMEOUT, |o| o.is_some()).await;
        let kubeconfig = crate::testbed().await.admin_kubeconfig();
        Self { name, client: client.clone(), kubeconfig }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A namespaced API in it.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        let kubeconfig = self.kubeconfig.clone();
        // Drop cannot await, and the test's runtime is blocked here, so the
        // test's client (whose I/O tasks live on that runtime) cannot be used:
        // delete from a helper thread with its own runtime and client, and wait
        // for the request (not for the namespace to disappear).
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = wasmlet_testbed::client_from_kubeconfig(&kubeconfig).await {
                    let api: Api<NamespaceObject> = Api::all(client);
                    let _ = api.delete(&name, &DeleteParams::background()).await;
                }
            });
        })
        .join();
    }
}
