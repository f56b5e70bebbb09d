//! Kubeconfig files: reading one (and the client certificate it names),
//! and writing the node's, which points at the store's `-current.pem` so
//! that rotations never need to rewrite it (as upstream's bootstrap does).

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::store::{blocking, create_dir, write_private};
use crate::{Certificate, Error, Result};

/// Loads the cluster settings and credentials of a kubeconfig.
pub(crate) async fn load(path: &Path) -> Result<kube::Config> {
    let kubeconfig_error = |source| Error::Kubeconfig { path: path.to_owned(), source };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(kubeconfig_error)?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(kubeconfig_error)
}

/// The client certificate and key a loaded kubeconfig authenticates with.
pub(crate) async fn identity(config: &kube::Config, path: &Path) -> Result<Certificate> {
    let auth = &config.auth_info;
    let cert = read(auth.client_certificate_data.as_deref(), auth.client_certificate.as_deref(), path).await?;
    let key_data = auth.client_key_data.as_ref().map(|k| {
        use kube::config::AuthInfo;
        // `client-key-data` is a secret string; go through serde to read it
        // without a direct dependency on its crate.
        let json = serde_json::to_value(AuthInfo { client_key_data: Some(k.clone()), ..AuthInfo::default() });
        json.ok().and_then(|v| v.get("client-key-data").and_then(|d| d.as_str()).map(str::to_owned))
    });
    let key = read(key_data.flatten().as_deref(), auth.client_key.as_deref(), path).await?;
    match (cert, key) {
        (Some(cert), Some(key)) => Certificate::from_pem(&cert, &key, &path.display().to_string()),
        _ => Err(Error::NoClientCertificate { path: path.to_owned() }),
    }
}

async fn read(data: Option<&str>, file: Option<&str>, kubeconfig: &Path) -> Result<Option<String>> {
    if let Some(data) = data {
        let bytes = base64::engine::general_purpose::STANDARD.decode(data.trim()).map_err(|e| {
            Error::InvalidCertificate { what: kubeconfig.display().to_string(), reason: format!("base64: {e}") }
        })?;
        return Ok(Some(String::from_utf8_lossy(&bytes).into_owned()));
    }
    let Some(file) = file else { return Ok(None) };
    let mut path = PathBuf::from(file);
    if path.is_relative()
        && let Some(dir) = kubeconfig.parent()
    {
        path = dir.join(path);
    }
    tokio::fs::read_to_string(&path).await.map(Some).map_err(|source| Error::Read { path, source })
}

/// Writes the node kubeconfig (mode 0600): the cluster of `cluster` (URL,
/// CA, TLS server name) and `pem` as both client certificate and key.
pub(crate) async fn write(path: &Path, cluster: &kube::Config, pem: &Path) -> Result<()> {
    let mut text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: default-cluster\n  cluster:\n    server: {}\n",
        quote(&cluster.cluster_url.to_string())
    );
    if let Some(ca) = crate::client::ca_pem(cluster) {
        let data = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
        text.push_str(&format!("    certificate-authority-data: {data}\n"));
    }
    if let Some(name) = &cluster.tls_server_name {
        text.push_str(&format!("    tls-server-name: {}\n", quote(name)));
    }
    if cluster.accept_invalid_certs {
        text.push_str("    insecure-skip-tls-verify: true\n");
    }
    let pem = quote(&pem.display().to_string());
    text.push_str(&format!(
        "users:\n- name: default-auth\n  user:\n    client-certificate: {pem}\n    client-key: {pem}\n\
         contexts:\n- name: default-context\n  context:\n    cluster: default-cluster\n    user: default-auth\n\
         current-context: default-context\npreferences: {{}}\n"
    ));
    let path = path.to_owned();
    blocking(move || {
        if let Some(dir) = path.parent() {
            create_dir(dir)?;
        }
        write_private(&path, text.as_bytes())
    })
    .await
}

/// A YAML double-quoted scalar.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}
