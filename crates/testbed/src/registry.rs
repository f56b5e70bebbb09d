//! Debian's `docker-registry` (distribution 2.8) on loopback: one plain-HTTP
//! instance and one with TLS and htpasswd authentication.

use std::path::{Path, PathBuf};

use crate::pki::{Ca, Usage, loopback_sans};
use crate::process::{Component, write_file};
use crate::{Error, Result};

/// Where Debian installs the registry.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// User name of the private registry.
pub const PRIVATE_USER: &str = "wasmlet";

/// How to reach the private (TLS + basic auth) registry.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PrivateRegistry {
    /// `127.0.0.1:PORT`, served over HTTPS with a certificate from the cluster CA.
    pub addr: String,
    /// Basic-auth user.
    pub username: String,
    /// Basic-auth password (random per test bed).
    pub password: String,
    /// CA certificate that signed the registry's serving certificate.
    pub ca: PathBuf,
}

/// The plain registry component, with its config written under `dir/registry`.
pub(crate) fn plain(dir: &Path, port: u16) -> Result<Component> {
    let root = dir.join("registry");
    let config = format!(
        "version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
",
        data = root.join("data").display()
    );
    component("registry", &root, &config)
}

/// The private registry component: TLS with a certificate from `ca`, and an
/// htpasswd file holding [`PRIVATE_USER`] with `password`.
pub(crate) fn private(dir: &Path, port: u16, ca: &Ca, password: &str) -> Result<Component> {
    let root = dir.join("registry-tls");
    let (dns, ips) = loopback_sans();
    let tls = ca.mint(&root, "tls", &Usage::Server { cn: "wasmlet-testbed-registry".into(), dns, ips })?;
    let hash = bcrypt::hash(password, 6).map_err(Error::Htpasswd)?;
    let htpasswd = root.join("htpasswd");
    write_file(&htpasswd, format!("{PRIVATE_USER}:{hash}\n").as_bytes())?;
    let config = format!(
        "version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
auth:
  htpasswd:
    realm: wasmlet-testbed
    path: {htpasswd}
http:
  addr: 127.0.0.1:{port}
  tls:
    certificate: {cert}
    key: {key}
",
        data = root.join("data").display(),
        htpasswd = htpasswd.display(),
        cert = tls.cert.display(),
        key = tls.key.display(),
    );
    component("registry-tls", &root, &config)
}

fn component(name: &str, root: &Path, config: &str) -> Result<Component> {
    let config_path = root.join("config.yml");
    write_file(&config_path, config.as_bytes())?;
    Ok(Component {
        name: name.into(),
        program: PathBuf::from(REGISTRY_BIN),
        args: vec!["serve".into(), config_path.display().to_string()],
    })
}
