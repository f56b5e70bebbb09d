//! Kubeconfig files that point at the test bed's apiserver.

use std::path::Path;

use crate::Result;
use crate::pki::CertFiles;
use crate::process::write_file;

/// Writes a kubeconfig for a client-certificate identity.
pub(crate) fn write(path: &Path, server: &str, ca: &Path, user: &str, creds: &CertFiles) -> Result<()> {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: wasmlet-testbed
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: wasmlet-testbed
  context:
    cluster: wasmlet-testbed
    user: {user}
current-context: wasmlet-testbed
",
        ca = ca.display(),
        cert = creds.cert.display(),
        key = creds.key.display(),
    );
    write_file(path, text.as_bytes())
}

/// Builds a `kube::Client` from a kubeconfig file.
pub async fn client(path: &Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(crate::Error::Kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(crate::Error::Kubeconfig)?;
    kube::Client::try_from(config).map_err(crate::Error::Kube)
}
