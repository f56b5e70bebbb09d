//! [`serving_certificate`]: the kubelet API's serving certificate from the
//! `kubernetes.io/kubelet-serving` signer (upstream `serverTLSBootstrap`).
//!
//! # Until it is approved
//!
//! Nothing auto-approves serving CSRs (an admin or a controller runs
//! `kubectl certificate approve`). Until one is approved the node does not
//! serve its API at all: [`serving_certificate`] returns only with an
//! issued certificate, and the agent binds the port after that. Upstream
//! listens but fails every handshake ("no serving certificate available");
//! a self-signed stand-in would be no better, since the API server
//! verifies kubelet certificates against the cluster CA
//! (`--kubelet-certificate-authority`), so either way clients get nothing,
//! and not listening says so soonest. Pods run meanwhile; `kubectl logs`
//! and `exec` fail until the certificate is approved.

use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::{self, CERTIFICATES};
use crate::csr::Template;
use crate::issue::{Ask, issue};
use crate::store::Store;
use crate::{Certificate, Config, Result};

/// The serving certificate to start with: the stored one (`<cert-dir>/kubelet-server-current.pem`)
/// if it is valid now and names everything `template` asks for, else a new
/// one, requested through `client` (the node's identity) and waited for.
///
/// Each CSR waits up to [`Config::approval_timeout`]; after that, or after
/// an API failure, a new one is made (capped jittered backoff), until one is
/// issued or `cancel` fires.
///
/// # Errors
///
/// [`crate::Error::Denied`] (an admin refused it), [`crate::Error::Cancelled`],
/// file errors and permanent API errors (e.g. 403: the client is not a node).
pub async fn serving_certificate(
    client: &kube::Client,
    config: &Config,
    template: &Template,
    cancel: &CancellationToken,
) -> Result<Arc<Certificate>> {
    let store = Store::serving(&config.cert_dir);
    match store.current().await {
        Ok(Some(stored)) if stored.is_valid_at(SystemTime::now()) && template.is_satisfied_by(&stored) => {
            info!(serial = stored.serial(), path = %store.current_path().display(), "reusing the serving certificate");
            return Ok(Arc::new(stored));
        }
        Ok(Some(stored)) => info!(serial = stored.serial(), "the stored serving certificate is expired or outdated"),
        Ok(None) => {}
        Err(error) => warn!(error = %backoff::Chain(&error), "ignoring the stored serving certificate"),
    }
    let ask = Ask {
        template,
        fixed_name: false,
        approval_timeout: config.approval_timeout,
        lifetime: config.requested_lifetime,
    };
    info!(dns = ?template.dns_names, ips = ?template.ip_addresses, "requesting a serving certificate; it needs approval");
    let certificate = backoff::retry("requesting the serving certificate", CERTIFICATES, false, cancel, || async {
        let key = crate::csr::generate_key()?;
        issue(client, &store, &key, &ask, cancel).await
    })
    .await?;
    Ok(Arc::new(certificate))
}
