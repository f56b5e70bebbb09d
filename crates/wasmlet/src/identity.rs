//! The node's API identity: a plain client from `--kubeconfig`, or — with
//! `--bootstrap-kubeconfig` or `--rotate-certificates` — credentials from
//! [`wasmlet_certs`] (TLS bootstrapping; a client whose certificate is
//! swapped in place on rotation), and the cluster CA the kubelet API
//! trusts for client certificates by default.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmlet_certs::{NodeCredentials, Rotator};

use crate::config::Settings;

/// The node's client and what rotates it.
pub(crate) struct Identity {
    /// Authenticates as `system:node:<name>`; follows rotations.
    pub(crate) client: kube::Client,
    /// Where certificates live.
    pub(crate) certs: wasmlet_certs::Config,
    credentials: Option<NodeCredentials>,
}

/// Loads or bootstraps the node's identity. `Ok(None)`: `cancel` fired first.
pub(crate) async fn load(settings: &Settings, cancel: &CancellationToken) -> anyhow::Result<Option<Identity>> {
    let security = &settings.security;
    let mut certs = wasmlet_certs::Config::new(&settings.node_name, &settings.root_dir);
    certs.cert_dir = security.cert_dir.clone();
    certs.kubeconfig = settings.kubeconfig.clone();
    certs.bootstrap_kubeconfig = security.bootstrap_kubeconfig.clone();
    if !security.manages_client_certificate() {
        let client = kube::Client::try_from(cluster(settings).await?).context("building the API client")?;
        return Ok(Some(Identity { client, certs, credentials: None }));
    }
    tracing::info!(
        bootstrap = security.bootstrap_kubeconfig.is_some(),
        cert_dir = %certs.cert_dir.display(),
        "loading the node's client certificate"
    );
    match wasmlet_certs::bootstrap(&certs, cancel).await {
        Ok(credentials) => {
            let client = credentials.client.clone();
            Ok(Some(Identity { client, certs, credentials: Some(credentials) }))
        }
        Err(wasmlet_certs::Error::Cancelled) => Ok(None),
        Err(e) => Err(e).context("getting the node's client certificate"),
    }
}

impl Identity {
    /// When the client certificate in use expires, read now (it follows
    /// rotations); `None` without a client certificate (e.g. a token).
    pub(crate) async fn client_certificate_expiry_source(
        &self,
        settings: &Settings,
    ) -> Box<dyn Fn() -> Option<std::time::SystemTime> + Send + Sync> {
        if let Some(credentials) = &self.credentials {
            let identity = credentials.identity.clone();
            return Box::new(move || Some(identity.certificate().not_after()));
        }
        let fixed = wasmlet_certs::kubeconfig_certificate(&settings.kubeconfig).await.ok().map(|c| c.not_after());
        Box::new(move || fixed)
    }

    /// Renews the client certificate until `cancel` (`--rotate-certificates`).
    pub(crate) fn rotate(&self, settings: &Settings, tracker: &TaskTracker, cancel: CancellationToken) {
        if let (true, Some(credentials)) = (settings.security.rotate_certificates, &self.credentials) {
            tracker.spawn(Rotator::client(credentials, &self.certs).run(cancel));
        }
    }
}

/// The cluster settings of the node kubeconfig.
async fn cluster(settings: &Settings) -> anyhow::Result<kube::Config> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&settings.kubeconfig)
        .with_context(|| format!("reading {}", settings.kubeconfig.display()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.context("loading the kubeconfig")
}

/// The CA file client certificates must chain to: `--client-ca-file`, or
/// the cluster CA of the node kubeconfig written to `<cert-dir>/client-ca.crt`
/// (the CA kubeadm also gives kubelets). `None` if neither exists: then no
/// client certificate is accepted.
pub(crate) async fn client_ca(settings: &Settings, certs: &wasmlet_certs::Config) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = &settings.security.client_ca {
        return Ok(Some(path.clone()));
    }
    let roots = cluster(settings).await?.root_cert.unwrap_or_default();
    if roots.is_empty() {
        tracing::warn!("no --client-ca-file and no cluster CA in the kubeconfig: client certificates are refused");
        return Ok(None);
    }
    let mut pem = String::new();
    for der in &roots {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    let path = certs.cert_dir.join("client-ca.crt");
    std::fs::create_dir_all(&certs.cert_dir).with_context(|| format!("creating {}", certs.cert_dir.display()))?;
    std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}
