//! Real device plugins for one wasmlet node: squat's
//! `generic-device-plugin` (extended resource [`RESOURCE`], 4 devices) and
//! upstream's DRA test driver ([`DRA_DRIVER`]), with its DeviceClass
//! [`DEVICE_CLASS`]. The binaries come from `tools/devices/build.sh`.
//!
//! Each generic device holds `/dev/null` (a device node, which a WASI guest
//! cannot use) and a read-only mount of [`DevicesBed::data_dir`] at
//! [`DEVICE_MOUNT`], whose `device.txt` a guest can read. The DRA driver
//! writes its CDI specs to `<root-dir>/cdi` (a default CDI directory of
//! wasmlet) and logs every gRPC call (`-v=6`).
//!
//! Processes run as test-bed components (`pids/`, `logs/`), so `testbed
//! down` stops them; their names carry the node's name.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::resource::v1::DeviceClass;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::process::{self, Component};
use crate::testbed::wait_for;
use crate::{Error, Result, Testbed};

/// The generic device plugin's extended resource.
pub const RESOURCE: &str = "wasmlet.test/null";
/// How many devices it offers.
pub const DEVICES: usize = 4;
/// Where a guest sees [`DevicesBed::data_dir`].
pub const DEVICE_MOUNT: &str = "/device";
/// The file in the data directory.
pub const DEVICE_FILE: &str = "device.txt";
/// What that file says.
pub const DEVICE_TEXT: &str = "hello from a device plugin";
/// The DRA test driver's name.
pub const DRA_DRIVER: &str = "test-driver.cdi.k8s.io";
/// The DeviceClass of the DRA test driver (`tools/devices/dra-deviceclass.yaml`).
pub const DEVICE_CLASS: &str = "dra-test";
/// How long a plugin may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Field manager of the objects applied here.
const MANAGER: &str = "wasmlet-testbed";

/// The device plugins of one node.
#[derive(Debug, Clone)]
pub struct DevicesBed {
    /// The node's name.
    pub node: String,
    /// The node's `--root-dir`.
    pub root_dir: PathBuf,
    /// The generic device plugin.
    pub generic: Component,
    /// The DRA test driver.
    pub dra: Component,
    /// What every generic device mounts into a guest.
    pub data_dir: PathBuf,
    /// The DRA driver's CDI directory (`<root-dir>/cdi`).
    pub cdi_dir: PathBuf,
    /// The DRA driver's registration socket.
    pub dra_registration: PathBuf,
    dir: PathBuf,
    bin_dir: PathBuf,
}

impl DevicesBed {
    /// The plugins of node `node` (root directory `root_dir`), binaries in
    /// `bin_dir`, state under the test bed's `dir`, API access with
    /// `kubeconfig`.
    pub fn new(dir: &Path, bin_dir: &Path, node: &str, root_dir: &Path, kubeconfig: &Path) -> Self {
        let data_dir = dir.join("devices").join(node).join("data");
        let cdi_dir = root_dir.join("cdi");
        let device = serde_json::json!({
            "name": "null",
            "groups": [{"count": DEVICES, "paths": [
                {"path": "/dev/null"},
                {"path": data_dir, "mountPath": DEVICE_MOUNT, "type": "Mount", "readOnly": true}
            ]}]
        });
        let generic = Component {
            name: format!("devices-{node}-generic"),
            program: bin_dir.join("generic-device-plugin"),
            args: vec![
                format!("--device={device}"),
                "--domain=wasmlet.test".into(),
                format!("--plugin-directory={}/", root_dir.join("device-plugins").display()),
                // Set at start: a free loopback port (the default is :8080 on every interface).
                String::new(),
            ],
        };
        let registry = root_dir.join("plugins_registry");
        let dra = Component {
            name: format!("devices-{node}-dra"),
            program: bin_dir.join("dra-test-driver"),
            args: vec![
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--drivername={DRA_DRIVER}"),
                "-v=6".into(),
                "kubelet-plugin".into(),
                format!("--node-name={node}"),
                format!("--plugin-registration-path={}", registry.display()),
                format!("--datadir={}", root_dir.join("plugins").display()),
                format!("--cdi-dir={}", cdi_dir.display()),
                format!("--num-devices={DEVICES}"),
            ],
        };
        Self {
            node: node.to_owned(),
            root_dir: root_dir.to_owned(),
            generic,
            dra,
            data_dir,
            cdi_dir,
            dra_registration: registry.join(format!("{DRA_DRIVER}-reg.sock")),
            dir: dir.to_owned(),
            bin_dir: bin_dir.to_owned(),
        }
    }

    /// Starts both plugins and applies the DeviceClass.
    ///
    /// # Errors
    ///
    /// A binary is missing, a plugin does not come up, or the API refuses
    /// the DeviceClass.
    pub async fn start(&self, tb: &Testbed) -> Result<()> {
        self.start_generic().await?;
        self.start_dra().await?;
        self.apply_device_class(tb).await
    }

    /// Starts (again) the generic device plugin; ready once it serves
    /// `/metrics` (it registers with the node on its own, retrying every 5 s
    /// until `kubelet.sock` answers).
    ///
    /// # Errors
    ///
    /// It is missing or does not come up.
    pub async fn start_generic(&self) -> Result<()> {
        let file = self.data_dir.join(DEVICE_FILE);
        crate::process::write_file(&file, DEVICE_TEXT.as_bytes())?;
        let port = free_port()?;
        let mut generic = self.generic.clone();
        if let Some(last) = generic.args.last_mut() {
            *last = format!("--listen=127.0.0.1:{port}");
        }
        generic.spawn(&self.dir)?;
        wait_for(&self.dir, &generic.name, READY_TIMEOUT, || async move {
            std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
        })
        .await
    }

    /// Stops the generic device plugin (SIGTERM: it removes its socket).
    ///
    /// # Errors
    ///
    /// Its pid file cannot be removed.
    pub fn stop_generic(&self) -> Result<()> {
        process::stop(&self.dir, &self.generic.name)
    }

    /// Starts the DRA test driver; ready once its registration socket exists.
    ///
    /// # Errors
    ///
    /// It is missing or does not come up.
    pub async fn start_dra(&self) -> Result<()> {
        for dir in [self.root_dir.join("plugins").join(DRA_DRIVER), self.root_dir.join("plugins_registry")] {
            std::fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        }
        self.dra.spawn(&self.dir)?;
        let socket = self.dra_registration.clone();
        wait_for(&self.dir, &self.dra.name, READY_TIMEOUT, || {
            let socket = socket.clone();
            async move { socket.exists() }
        })
        .await
    }

    /// Applies `dra-deviceclass.yaml` (from the bin directory).
    ///
    /// # Errors
    ///
    /// The file is unreadable or the API refuses it.
    pub async fn apply_device_class(&self, tb: &Testbed) -> Result<()> {
        let path = self.bin_dir.join("dra-deviceclass.yaml");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        let class: DeviceClass =
            serde_yaml_from(&text).map_err(|reason| Error::Manifest { path: path.clone(), reason })?;
        let api: Api<DeviceClass> = Api::all(tb.admin_client().await?);
        let params = PatchParams::apply(MANAGER).force();
        api.patch(DEVICE_CLASS, &params, &Patch::Apply(&class)).await.map_err(Error::Kube)?;
        Ok(())
    }

    /// Stops both plugins (the DeviceClass is shared by every node and stays).
    pub fn stop(&self) {
        for name in [&self.generic.name, &self.dra.name] {
            if let Err(e) = process::stop(&self.dir, name) {
                tracing::warn!(component = %name, error = %e, "stopping a device plugin");
            }
        }
    }

    /// The DRA driver's log (every gRPC call at `-v=6`).
    pub fn dra_log(&self) -> PathBuf {
        process::log_path(&self.dir, &self.dra.name)
    }

    /// The `export` lines of `cargo xtask testbed devices`.
    pub fn exports(&self) -> String {
        format!("export WASMLET_DEVICE_RESOURCE={RESOURCE}\nexport WASMLET_DEVICE_CLASS={DEVICE_CLASS}\n")
    }
}

/// The DeviceClass manifest (YAML), through its JSON value.
fn serde_yaml_from(text: &str) -> std::result::Result<DeviceClass, String> {
    let value: serde_json::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| Error::Io { path: PathBuf::from("127.0.0.1:0"), source })
}
