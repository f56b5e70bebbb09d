//! [`bootstrap`]: the node's client identity, from what is on disk or
//! through TLS bootstrapping, as `kubeadm join` nodes get theirs.
//!
//! In order (upstream `LoadClientCert` and the certificate store):
//!
//! 1. `<cert-dir>/kubelet-client-current.pem` if it is valid now and names
//!    `system:node:<name>`; otherwise the credentials of `--kubeconfig` if
//!    they are valid now. Either way, with the cluster of `--kubeconfig`.
//! 2. Else, with `--bootstrap-kubeconfig` (a bootstrap token of group
//!    `system:bootstrappers`): a valid `-current.pem` is reused as is;
//!    otherwise an ECDSA P-256 key is generated (kept as
//!    `kubelet-client.key.tmp` until the certificate arrives) and a CSR
//!    named after it is created for `kubernetes.io/kube-apiserver-client-kubelet`,
//!    then watched until approved and issued. The pair is stored, and
//!    `--kubeconfig` (mode 0600) is written pointing at `-current.pem`.
//! 3. Neither: [`Error::NoCredentials`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::{self, CERTIFICATES};
use crate::client::NodeClient;
use crate::csr::Template;
use crate::issue::{Ask, issue};
use crate::store::Store;
use crate::{Certificate, Error, Result, kubeconfig};

/// Upstream's `certificateWaitTimeout`: how long one CSR may wait for
/// approval and signing before the node asks again.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Who the node is and where its credentials live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The node name: the identity is `system:node:<name>`.
    pub node_name: String,
    /// `--cert-dir`: the certificate store (upstream default
    /// `/var/lib/kubelet/pki`; here `<root>/pki`).
    pub cert_dir: PathBuf,
    /// `--kubeconfig`: read if it exists, written after bootstrapping
    /// (`<root>/kubelet.kubeconfig` by default).
    pub kubeconfig: PathBuf,
    /// `--bootstrap-kubeconfig`.
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// How long one CSR may wait to be approved and signed.
    pub approval_timeout: Duration,
    /// `spec.expirationSeconds` to ask for (the API's minimum is 600 s);
    /// `None` leaves the lifetime to the signer.
    pub requested_lifetime: Option<Duration>,
}

impl Config {
    /// The defaults for node `node_name` with state under `root_dir`.
    pub fn new(node_name: &str, root_dir: &Path) -> Config {
        Config {
            node_name: node_name.to_owned(),
            cert_dir: root_dir.join("pki"),
            kubeconfig: root_dir.join("kubelet.kubeconfig"),
            bootstrap_kubeconfig: None,
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            requested_lifetime: None,
        }
    }
}

/// The node's identity, ready to use.
#[derive(Clone)]
pub struct NodeCredentials {
    /// The API client: authenticates as the node; follows rotations.
    pub client: kube::Client,
    /// The handle behind `client`, to rotate it ([`crate::Rotator::client`]).
    pub identity: NodeClient,
    /// The node kubeconfig.
    pub kubeconfig: PathBuf,
    /// Whether a CSR was made for it (false when existing credentials were
    /// reused).
    pub bootstrapped: bool,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("identity", &self.identity)
            .field("kubeconfig", &self.kubeconfig)
            .field("bootstrapped", &self.bootstrapped)
            .finish_non_exhaustive()
    }
}

/// Loads or bootstraps the node's client identity (see the module docs).
///
/// Waits (retrying API failures with capped jittered backoff) until the
/// bootstrap CSR is issued or `cancel` fires.
///
/// # Errors
///
/// [`Error::NoCredentials`], [`Error::Denied`], [`Error::Cancelled`],
/// kubeconfig, file and permanent API errors.
pub async fn bootstrap(config: &Config, cancel: &CancellationToken) -> Result<NodeCredentials> {
    let store = Store::client(&config.cert_dir);
    let template = Template::client(&config.node_name);
    let now = SystemTime::now();
    let stored = match store.current().await {
        Ok(stored) => stored.filter(|c| c.is_valid_at(now) && template.is_satisfied_by(c)),
        Err(error) => {
            warn!(error = %backoff::Chain(&error), "ignoring the stored client certificate");
            None
        }
    };

    if config.kubeconfig.is_file() {
        match existing(config, stored.clone(), now).await {
            Ok(Some(credentials)) => return Ok(credentials),
            Ok(None) => {}
            Err(error) if config.bootstrap_kubeconfig.is_some() => {
                warn!(error = %backoff::Chain(&error), "cannot use the node kubeconfig; bootstrapping");
            }
            Err(error) => return Err(error),
        }
    }
    let Some(bootstrap_path) = &config.bootstrap_kubeconfig else {
        return Err(Error::NoCredentials(format!(
            "{} is missing or its certificate has expired, and no bootstrap kubeconfig was given",
            config.kubeconfig.display()
        )));
    };

    let cluster = kubeconfig::load(bootstrap_path).await?;
    let (certificate, bootstrapped) = match stored {
        Some(stored) => (stored, false),
        None => {
            let client = kube::Client::try_from(cluster.clone()).map_err(Error::Client)?;
            (request(&client, &store, &template, config, cancel).await?, true)
        }
    };
    kubeconfig::write(&config.kubeconfig, &cluster, &store.current_path()).await?;
    info!(
        kubeconfig = %config.kubeconfig.display(),
        serial = certificate.serial(),
        bootstrapped,
        "node credentials written"
    );
    let identity = NodeClient::new(cluster, Arc::new(certificate))?;
    Ok(NodeCredentials { client: identity.client(), identity, kubeconfig: config.kubeconfig.clone(), bootstrapped })
}

/// The credentials of an existing kubeconfig, preferring the store's pair;
/// `None` when none is valid now.
async fn existing(config: &Config, stored: Option<Certificate>, now: SystemTime) -> Result<Option<NodeCredentials>> {
    let cluster = kubeconfig::load(&config.kubeconfig).await?;
    let certificate = match stored {
        Some(stored) => stored,
        None => {
            let own = kubeconfig::identity(&cluster, &config.kubeconfig).await?;
            if !own.is_valid_at(now) {
                warn!(kubeconfig = %config.kubeconfig.display(), not_after = ?own.not_after(), "the node certificate is not valid now");
                return Ok(None);
            }
            own
        }
    };
    let expected = Template::client(&config.node_name).common_name();
    if certificate.common_name() != Some(expected.as_str()) {
        warn!(common_name = ?certificate.common_name(), %expected, "the node kubeconfig is for another identity");
    }
    info!(kubeconfig = %config.kubeconfig.display(), serial = certificate.serial(), "reusing node credentials");
    let identity = NodeClient::new(cluster, Arc::new(certificate))?;
    Ok(Some(NodeCredentials {
        client: identity.client(),
        identity,
        kubeconfig: config.kubeconfig.clone(),
        bootstrapped: false,
    }))
}

/// The bootstrap CSR: with the pending key if a previous run left one (so
/// its CSR is found again), else a new one, kept until the pair is stored.
async fn request(
    client: &kube::Client,
    store: &Store,
    template: &Template,
    config: &Config,
    cancel: &CancellationToken,
) -> Result<Certificate> {
    let key = match store.pending_key().await.and_then(|pem| rcgen::KeyPair::from_pem(&pem).ok()) {
        Some(key) => key,
        None => {
            let key = crate::csr::generate_key()?;
            store.set_pending_key(&key.serialize_pem()).await?;
            key
        }
    };
    let ask = Ask {
        template,
        fixed_name: true,
        approval_timeout: config.approval_timeout,
        lifetime: config.requested_lifetime,
    };
    let certificate = backoff::retry("bootstrapping the client certificate", CERTIFICATES, false, cancel, || {
        issue(client, store, &key, &ask, cancel)
    })
    .await?;
    store.clear_pending_key().await;
    Ok(certificate)
}
