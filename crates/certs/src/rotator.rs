//! [`Rotator`]: renews one certificate (the client identity or the serving
//! certificate) at a jittered 70–90 % of its lifetime, forever, without a
//! restart.
//!
//! Each round: wait for the deadline ([`crate::deadline`]; at once if the
//! certificate no longer satisfies the template), make a fresh key and CSR,
//! wait for it to be issued (up to [`Config::approval_timeout`]), store the
//! pair as `-current.pem`, run the hooks (the client identity is swapped in
//! [`NodeClient`]; a serving hook calls `wasmlet_api::Tls::reload`), then
//! publish it to [`Rotator::subscribe`]rs. Failures are retried with
//! upstream's backoff (2 s doubling to 32 s, jittered) and never end the
//! loop; only cancellation does.
//!
//! The client rotator asks with the node's current identity; if that has
//! expired (the node was off for too long) and a bootstrap kubeconfig is
//! configured, it asks with the bootstrap credentials, as upstream does.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::backoff::{self, Backoff, CERTIFICATES, Chain};
use crate::client::NodeClient;
use crate::csr::Template;
use crate::deadline::{self, MIN_INTERVAL};
use crate::issue::{Ask, issue};
use crate::store::Store;
use crate::{Certificate, Config, Error, NodeCredentials, Result, kubeconfig};

/// An error a hook returns.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;
type Hook = Arc<dyn Fn(Arc<Certificate>) -> BoxFuture<'static, Result<(), HookError>> + Send + Sync>;

/// Longest single sleep: the deadline is re-read after it (wall-clock jumps).
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// Attempts of a failing hook per rotation.
const HOOK_ATTEMPTS: usize = 5;
const HOOK_BACKOFF: Backoff = Backoff { min: Duration::from_millis(200), max: Duration::from_secs(5) };

/// Where CSRs are sent from.
#[derive(Clone)]
enum Requester {
    /// This client.
    Fixed(kube::Client),
    /// The node identity being rotated (bootstrap credentials once it has
    /// expired).
    Node { identity: NodeClient, bootstrap: Option<PathBuf> },
}

/// Rotates one certificate; see the module docs.
pub struct Rotator {
    what: &'static str,
    requester: Requester,
    store: Store,
    template: Template,
    approval_timeout: Duration,
    lifetime: Option<Duration>,
    current: watch::Sender<Arc<Certificate>>,
    hooks: Vec<Hook>,
}

impl std::fmt::Debug for Rotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotator").field("what", &self.what).field("template", &self.template).finish_non_exhaustive()
    }
}

impl Rotator {
    /// Rotates the client certificate of `credentials` (`--rotate-certificates`):
    /// each new one is installed into `credentials.client`.
    pub fn client(credentials: &NodeCredentials, config: &Config) -> Rotator {
        let identity = credentials.identity.clone();
        let installer = identity.clone();
        let rotator = Rotator::new(
            "client",
            Requester::Node { identity: identity.clone(), bootstrap: config.bootstrap_kubeconfig.clone() },
            Store::client(&config.cert_dir),
            Template::client(&config.node_name),
            identity.certificate(),
            config,
        );
        rotator.on_rotate(move |cert| {
            let result = installer.install(cert).map_err(HookError::from);
            async move { result }
        })
    }

    /// Rotates the serving certificate `current` (`--rotate-server-certificates`),
    /// asking through `client` (the node's) for what `template` names. Add
    /// a hook that reloads the server's TLS ([`Rotator::on_rotate`]).
    pub fn serving(client: kube::Client, current: Arc<Certificate>, template: Template, config: &Config) -> Rotator {
        let store = Store::serving(&config.cert_dir);
        Rotator::new("serving", Requester::Fixed(client), store, template, current, config)
    }

    fn new(
        what: &'static str,
        requester: Requester,
        store: Store,
        template: Template,
        current: Arc<Certificate>,
        config: &Config,
    ) -> Rotator {
        Rotator {
            what,
            requester,
            store,
            template,
            approval_timeout: config.approval_timeout,
            lifetime: config.requested_lifetime,
            current: watch::Sender::new(current),
            hooks: Vec::new(),
        }
    }

    /// Runs `hook` with every new certificate (after it is stored, before
    /// it is published). A failing hook is retried a few times, then the
    /// failure is logged and the rotation stands.
    #[must_use]
    pub fn on_rotate<F, Fut>(mut self, hook: F) -> Rotator
    where
        F: Fn(Arc<Certificate>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HookError>> + Send + 'static,
    {
        self.hooks.push(Arc::new(move |cert| Box::pin(hook(cert))));
        self
    }

    /// The certificate in use, updated after each rotation.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Certificate>> {
        self.current.subscribe()
    }

    /// Rotates until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let span = info_span!("rotation", certificate = self.what);
        self.rotate_forever(cancel).instrument(span).await;
    }

    async fn rotate_forever(self, cancel: CancellationToken) {
        let mut last: Option<tokio::time::Instant> = None;
        loop {
            let current = self.current.borrow().clone();
            let deadline = if self.template.is_satisfied_by(&current) {
                deadline::rotation_deadline(current.not_before(), current.not_after(), deadline::jitter())
            } else {
                info!(serial = current.serial(), "the certificate does not match what is asked for any more");
                SystemTime::now()
            };
            info!(serial = current.serial(), not_after = ?current.not_after(), ?deadline, "next rotation");
            loop {
                let floor = last.map_or(Duration::ZERO, |l| MIN_INTERVAL.saturating_sub(l.elapsed()));
                let wait = deadline::wait(SystemTime::now(), deadline, floor);
                if wait.is_zero() {
                    break;
                }
                if !backoff::sleep(wait.min(MAX_SLEEP), &cancel).await {
                    return;
                }
            }
            let rotated =
                backoff::retry("rotating the certificate", CERTIFICATES, true, &cancel, || self.rotate_once(&cancel))
                    .await;
            let certificate = match rotated {
                Ok(certificate) => Arc::new(certificate),
                Err(_) => return, // only cancellation ends `retry` with `retry_all`
            };
            last = Some(tokio::time::Instant::now());
            self.run_hooks(&certificate, &cancel).await;
            info!(old = current.serial(), new = certificate.serial(), "certificate rotated");
            self.current.send_replace(certificate);
        }
    }

    async fn rotate_once(&self, cancel: &CancellationToken) -> Result<Certificate> {
        let client = self.requester().await?;
        let key = crate::csr::generate_key()?;
        let ask = Ask {
            template: &self.template,
            fixed_name: false,
            approval_timeout: self.approval_timeout,
            lifetime: self.lifetime,
        };
        issue(&client, &self.store, &key, &ask, cancel).await
    }

    async fn requester(&self) -> Result<kube::Client> {
        match &self.requester {
            Requester::Fixed(client) => Ok(client.clone()),
            Requester::Node { identity, bootstrap } => {
                let expired = !identity.certificate().is_valid_at(SystemTime::now());
                match bootstrap {
                    Some(path) if expired => {
                        warn!("the client certificate has expired; asking with the bootstrap credentials");
                        let config = kubeconfig::load(path).await?;
                        kube::Client::try_from(config).map_err(Error::Client)
                    }
                    _ => Ok(identity.client()),
                }
            }
        }
    }

    async fn run_hooks(&self, certificate: &Arc<Certificate>, cancel: &CancellationToken) {
        for hook in &self.hooks {
            let mut delays = HOOK_BACKOFF.delays();
            for attempt in 1..=HOOK_ATTEMPTS {
                match hook(certificate.clone()).await {
                    Ok(()) => break,
                    Err(error) => {
                        warn!(error = %Chain(error.as_ref()), attempt, "installing the new certificate failed");
                        let delay = delays.next().unwrap_or(HOOK_BACKOFF.max);
                        if attempt == HOOK_ATTEMPTS || !backoff::sleep(delay, cancel).await {
                            break;
                        }
                    }
                }
            }
        }
    }
}
