//! metrics-server in the test bed, behind the apiserver's aggregation layer,
//! so that `kubectl top node` and `kubectl top pod` work as in a real
//! cluster. The binary comes from `tools/metrics-server/build.sh`.
//!
//! metrics-server listens on the host's address (an Endpoints address may
//! not be loopback) at [`Ports::metrics_server`](crate::config::Ports); a
//! selector-less Service `kube-system/metrics-server` with those Endpoints
//! and the APIService `v1beta1.metrics.k8s.io` point the apiserver at it
//! (the apiserver runs with `--enable-aggregator-routing`, so it dials the
//! endpoint, not a ClusterIP nothing routes). It scrapes each node's
//! `/metrics/resource` on the port the Node reports
//! (`--kubelet-use-node-status-port`), verifying the kubelet's certificate
//! against the cluster CA, every 10 s (each scrape may take 5 s).

use std::path::Path;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;

use crate::process::{self, Component};
use crate::{Error, Result, Testbed};

/// The component's name (pid and log files).
pub const COMPONENT: &str = "metrics-server";
/// How long metrics-server may take to serve.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Field manager of the objects applied here.
const MANAGER: &str = "wasmlet-testbed";

impl Testbed {
    /// Starts metrics-server unless it runs, and registers it with the
    /// aggregation layer. `bin_dir` holds the `metrics-server` binary.
    ///
    /// # Errors
    ///
    /// It could not start or did not listen in time, or an API call failed.
    pub async fn ensure_metrics_server(&self, bin_dir: &Path) -> Result<()> {
        let dir = self.dir();
        let port = self.ports().metrics_server;
        let ip = crate::host_ip();
        if !process::recorded_pid(dir, COMPONENT).is_some_and(process::is_alive) {
            let component = Component {
                name: COMPONENT.into(),
                program: bin_dir.join("metrics-server"),
                args: args(self, &ip.to_string(), port),
            };
            let pid = component.spawn(dir)?;
            let deadline = Instant::now() + READY_TIMEOUT;
            while std::net::TcpStream::connect((ip, port)).is_err() {
                let log_tail = process::log_tail(dir, COMPONENT, 20);
                if !process::is_alive(pid) {
                    return Err(Error::Exited { component: COMPONENT.into(), log_tail });
                }
                if Instant::now() > deadline {
                    return Err(Error::NotReady {
                        component: COMPONENT.into(),
                        secs: READY_TIMEOUT.as_secs(),
                        log_tail,
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.register_metrics_api(&ip.to_string(), port).await
    }

    async fn register_metrics_api(&self, ip: &str, port: u16) -> Result<()> {
        let client = self.admin_client().await?;
        let params = PatchParams::apply(MANAGER).force();
        let objects = [
            (
                ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&()),
                "kube-system",
                serde_json::json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": "metrics-server", "namespace": "kube-system"},
                    "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}
                }),
            ),
            (
                ApiResource::erase::<k8s_openapi::api::core::v1::Endpoints>(&()),
                "kube-system",
                serde_json::json!({
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": "metrics-server", "namespace": "kube-system"},
                    "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port}]}]
                }),
            ),
            (
                ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService")),
                "",
                serde_json::json!({
                    "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                    "metadata": {"name": "v1beta1.metrics.k8s.io"},
                    "spec": {
                        "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
                        "group": "metrics.k8s.io", "version": "v1beta1",
                        // metrics-server serves a self-signed certificate of its own.
                        "insecureSkipTLSVerify": true,
                        "groupPriorityMinimum": 100, "versionPriority": 100
                    }
                }),
            ),
        ];
        for (resource, namespace, object) in objects {
            let api: Api<DynamicObject> = if namespace.is_empty() {
                Api::all_with(client.clone(), &resource)
            } else {
                Api::namespaced_with(client.clone(), namespace, &resource)
            };
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            api.patch(&name, &params, &Patch::Apply(&object)).await.map_err(Error::Kube)?;
        }
        Ok(())
    }
}

fn args(tb: &Testbed, ip: &str, port: u16) -> Vec<String> {
    let kubeconfig = tb.admin_kubeconfig().display().to_string();
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        format!("--bind-address={ip}"),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", tb.dir().join("metrics-server-certs").display()),
        "--kubelet-preferred-address-types=InternalIP".into(),
        "--kubelet-use-node-status-port".into(),
        format!("--kubelet-certificate-authority={}", tb.ca_cert().display()),
        "--metric-resolution=10s".into(),
        "--kubelet-request-timeout=5s".into(),
    ]
}
