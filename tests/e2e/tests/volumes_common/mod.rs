//! Shared by the `volumes_*` tests: a node identity (`system:node:<name>`
//! credentials from the test bed), a namespace, pods bound to that node by
//! `spec.nodeName` (nothing runs them: the Node authorizer only needs the
//! binding to let the node read what they reference), and the node's
//! [`Sources`] and [`Volumes`].

#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use tokio_util::sync::CancellationToken;
use wasmlet_testkit::{Namespace, admin_client, testbed};
use wasmlet_volumes::sources::{self, Sources};
use wasmlet_volumes::{PodVolumes, VolumeError, Volumes, volumes};

/// One test's node, namespace and sources.
pub(crate) struct TestNode {
    pub(crate) name: String,
    /// Authenticated as the node.
    pub(crate) client: kube::Client,
    pub(crate) admin: kube::Client,
    pub(crate) ns: Namespace,
    pub(crate) sources: Sources,
    pub(crate) cancel: CancellationToken,
    pub(crate) dir: tempfile::TempDir,
}

impl TestNode {
    pub(crate) async fn new(prefix: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("{prefix}-{:x}{nanos:x}", std::process::id());
        let creds = testbed().await.node_credentials(&name, &[]).unwrap();
        let client = wasmlet_testbed::client_from_kubeconfig(&creds.kubeconfig).await.unwrap();
        let admin = admin_client().await;
        let ns = Namespace::create(&admin, prefix).await;
        let cancel = CancellationToken::new();
        let sources = Sources::new(client.clone(), sources::Config::default(), cancel.clone());
        Self { name, client, admin, ns, sources, cancel, dir: tempfile::tempdir().unwrap() }
    }

    pub(crate) fn volumes(&self) -> Volumes {
        Volumes::new(self.sources.clone(), volumes::Config::default())
    }

    /// Creates a pod bound to this node from `spec` (a PodSpec as JSON; a
    /// container is added when there is none).
    pub(crate) async fn pod(&self, name: &str, mut spec: serde_json::Value) -> Pod {
        spec["nodeName"] = self.name.clone().into();
        if spec.get("containers").is_none() {
            spec["containers"] = serde_json::json!([{"name": "main", "image": "example.invalid/none:v1"}]);
        }
        let pod: Pod = serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        self.ns.api::<Pod>().create(&PostParams::default(), &pod).await.unwrap()
    }

    /// A fresh pod directory.
    pub(crate) fn pod_dir(&self, pod: &Pod) -> std::path::PathBuf {
        let dir = self.dir.path().join("pods").join(pod.metadata.uid.as_deref().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Prepares the pod's volumes, retrying for up to 30 s as a pod worker
    /// would (the namespace's `kube-root-ca.crt` may not be published yet).
    pub(crate) async fn prepare(&self, volumes: &Volumes, pod: &Pod, dir: &Path) -> PodVolumes {
        let mut last = None;
        for _ in 0..30 {
            match volumes.prepare(pod, dir).await {
                Ok(v) => return v,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("volumes not prepared: {:?}", last.map(|e: VolumeError| e.to_string()));
    }

    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.sources.wait()).await.expect("all source tasks end");
    }
}

/// Polls `f` every 20 ms for up to `timeout`; the elapsed time once it holds.
pub(crate) async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = tokio::time::Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}
