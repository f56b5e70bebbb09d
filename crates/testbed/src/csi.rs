//! Real CSI storage for one wasmlet node: upstream's e2e mock CSI driver
//! (twice: one that needs no attaching, one that does), `csi-provisioner`
//! for both and `csi-attacher` for the second, their CSIDriver objects and
//! three StorageClasses. The binaries come from `tools/csi/build.sh`.
//!
//! Everything is per node: driver names and StorageClasses carry the node's
//! name, so test nodes sharing one test bed never provision for each other
//! (upstream's mock keeps its volumes in memory, per process).
//!
//! Processes run as test-bed components (`pids/`, `logs/`), so `testbed down`
//! stops them. Each driver logs every gRPC call as a JSON line to
//! [`CsiBed::calls_log`], and keeps volume contents in
//! `<testbed>/csi/<driver>/data` (`--data-dir`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::process::{self, Component};
use crate::{Error, Result, Testbed};

/// How long a driver may take to serve its registration socket.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Field manager of the objects applied here.
const MANAGER: &str = "wasmlet-testbed";

/// One mock driver of a node.
#[derive(Debug, Clone)]
pub struct Driver {
    /// The CSI driver name.
    pub name: String,
    /// Whether it requires attaching (a VolumeAttachment and csi-attacher).
    pub attach: bool,
    /// Its process: the component name in `pids/` and `logs/`.
    pub component: String,
    /// The mock driver's command.
    pub command: Component,
    /// The CSI socket.
    pub csi_socket: PathBuf,
    /// The registration socket in the node's `plugins_registry`.
    pub registration_socket: PathBuf,
    /// Its call log (JSON lines).
    pub calls_log: PathBuf,
}

/// The CSI storage of one node.
#[derive(Debug, Clone)]
pub struct CsiBed {
    /// The driver that needs no attaching (`Immediate`, `WaitForFirstConsumer`, inline).
    pub plain: Driver,
    /// The driver that requires attaching.
    pub attach: Driver,
    /// StorageClass of `plain`, `volumeBindingMode: Immediate`.
    pub storage_class: String,
    /// StorageClass of `plain`, `volumeBindingMode: WaitForFirstConsumer`.
    pub storage_class_wffc: String,
    /// StorageClass of `attach`, `Immediate`.
    pub storage_class_attach: String,
    dir: PathBuf,
}

impl CsiBed {
    /// The names for node `node` with root directory `root_dir`, binaries in
    /// `bin_dir`, state under the test bed's `dir`.
    pub fn new(dir: &Path, bin_dir: &Path, node: &str, root_dir: &Path) -> Self {
        let driver = |kind: &str, attach: bool| {
            let name = format!("{kind}.{node}.csi.wasmlet.test");
            let csi_socket = root_dir.join("plugins").join(&name).join("csi.sock");
            let registration_socket = root_dir.join("plugins_registry").join(format!("{name}-reg.sock"));
            let state = dir.join("csi").join(&name);
            let calls_log = state.join("calls.log");
            let mut args = vec![
                format!("--driver-name={name}"),
                format!("--node-id={node}"),
                format!("--csi-address={}", csi_socket.display()),
                format!("--registration-address={}", registration_socket.display()),
                format!("--log-file={}", calls_log.display()),
                format!("--data-dir={}", state.join("data").display()),
            ];
            if !attach {
                args.push("--disable-attach".into());
            }
            let component = format!("csi-{kind}-{node}");
            let command = Component { name: component.clone(), program: bin_dir.join("csi-mock-driver"), args };
            Driver { name, attach, component, command, csi_socket, registration_socket, calls_log }
        };
        Self {
            plain: driver("mock", false),
            attach: driver("attach", true),
            storage_class: format!("wasmlet-csi-{node}"),
            storage_class_wffc: format!("wasmlet-csi-{node}-wffc"),
            storage_class_attach: format!("wasmlet-csi-{node}-attach"),
            dir: dir.to_owned(),
        }
    }

    /// Starts (or restarts) everything and applies the objects.
    ///
    /// # Errors
    ///
    /// A process could not start or a driver did not serve in time, or an
    /// API call failed.
    pub async fn start(&self, tb: &Testbed, bin_dir: &Path) -> Result<()> {
        for driver in [&self.plain, &self.attach] {
            self.start_driver(driver)?;
            let sidecar = |tool: &str| Component {
                name: format!("{tool}-{}", driver.component),
                program: bin_dir.join(tool),
                args: vec![
                    format!("--csi-address={}", driver.csi_socket.display()),
                    format!("--kubeconfig={}", tb.admin_kubeconfig().display()),
                    "--leader-election=false".into(),
                ],
            };
            let mut sidecars = vec![sidecar("csi-provisioner")];
            if driver.attach {
                sidecars.push(sidecar("csi-attacher"));
            }
            for c in sidecars {
                process::stop(&self.dir, &c.name)?;
                c.spawn(&self.dir)?;
            }
        }
        self.apply(tb).await
    }

    /// Starts a driver (stopping a previous process of it) and waits until
    /// its registration socket is there.
    ///
    /// # Errors
    ///
    /// The process could not start, or did not serve in time.
    pub fn start_driver(&self, driver: &Driver) -> Result<()> {
        process::stop(&self.dir, &driver.component)?;
        if let Some(parent) = driver.calls_log.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.to_owned(), source })?;
        }
        let pid = driver.command.spawn(&self.dir)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while !driver.registration_socket.exists() {
            if !process::is_alive(pid) {
                return Err(Error::Exited {
                    component: driver.component.clone(),
                    log_tail: process::log_tail(&self.dir, &driver.component, 20),
                });
            }
            if Instant::now() > deadline {
                return Err(Error::NotReady {
                    component: driver.component.clone(),
                    secs: READY_TIMEOUT.as_secs(),
                    log_tail: process::log_tail(&self.dir, &driver.component, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops a driver with SIGTERM: it removes its registration socket
    /// first (the node deregisters it), then its CSI socket.
    ///
    /// # Errors
    ///
    /// The pid file could not be removed.
    pub fn stop_driver(&self, driver: &Driver) -> Result<()> {
        process::stop(&self.dir, &driver.component)
    }

    /// Stops every process of this node's storage (the objects stay).
    pub fn stop(&self) {
        for d in [&self.plain, &self.attach] {
            for name in [
                d.component.clone(),
                format!("csi-provisioner-{}", d.component),
                format!("csi-attacher-{}", d.component),
            ] {
                let _ = process::stop(&self.dir, &name);
            }
        }
    }

    /// The CSIDriver objects and StorageClasses, applied server-side.
    async fn apply(&self, tb: &Testbed) -> Result<()> {
        let client = tb.admin_client().await?;
        let drivers: Api<CSIDriver> = Api::all(client.clone());
        let classes: Api<StorageClass> = Api::all(client);
        let params = PatchParams::apply(MANAGER).force();
        for d in [&self.plain, &self.attach] {
            let modes: &[&str] = if d.attach { &["Persistent"] } else { &["Persistent", "Ephemeral"] };
            let object = serde_json::json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "CSIDriver",
                "metadata": { "name": d.name },
                "spec": {
                    "attachRequired": d.attach,
                    "podInfoOnMount": true,
                    "volumeLifecycleModes": modes,
                },
            });
            drivers.patch(&d.name, &params, &Patch::Apply(&object)).await.map_err(Error::Kube)?;
        }
        for (name, driver, mode) in [
            (&self.storage_class, &self.plain, "Immediate"),
            (&self.storage_class_wffc, &self.plain, "WaitForFirstConsumer"),
            (&self.storage_class_attach, &self.attach, "Immediate"),
        ] {
            let object = serde_json::json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": { "name": name },
                "provisioner": driver.name,
                "reclaimPolicy": "Delete",
                "volumeBindingMode": mode,
            });
            classes.patch(name, &params, &Patch::Apply(&object)).await.map_err(Error::Kube)?;
        }
        Ok(())
    }

    /// The `export` lines `cargo xtask testbed csi` prints.
    pub fn exports(&self) -> String {
        format!(
            "export WASMLET_STORAGE_CLASS={}\nexport WASMLET_STORAGE_CLASS_WFFC={}\nexport WASMLET_STORAGE_CLASS_ATTACH={}\n",
            self.storage_class, self.storage_class_wffc, self.storage_class_attach
        )
    }

    /// The gRPC methods a driver logged, in order (`socket` `csi` only).
    pub fn calls(driver: &Driver) -> Vec<Call> {
        let text = std::fs::read_to_string(&driver.calls_log).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str::<Call>(l).ok()).filter(|c| c.socket == "csi").collect()
    }
}

/// One logged call of a mock driver.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Call {
    /// `csi` or `registration`.
    pub socket: String,
    /// The method (`NodeStageVolume`).
    pub method: String,
    /// The gRPC code name (`OK`).
    pub code: String,
    /// The request as protobuf JSON.
    #[serde(default)]
    pub request: serde_json::Value,
}
