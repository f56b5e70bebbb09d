//! Starting the kubelet API: who may call it (x509 client certificates,
//! TokenReview, SubjectAccessReview; see `wasmlet_api::auth`) and what it
//! serves with — a static or self-signed certificate, or, with
//! `--rotate-server-certificates`, one from the `kubernetes.io/kubelet-serving`
//! signer that is renewed and reloaded in place (open connections keep
//! their session; new ones get the new certificate).
//!
//! # Failures never stop the pods
//!
//! Only a broken configuration is fatal, and only at startup, before any
//! pod runs: an unreadable or invalid `--tls-cert-file` / key or client CA
//! (as upstream, which exits on a bad static TLS configuration). Everything
//! that can go wrong later is retried with capped, jittered backoff while
//! pods keep running and the node stays Ready: binding the port (address in
//! use, address not yet on the host), the listener failing, and a serving
//! CSR that is denied, fails or is never approved — a new CSR is made, as
//! upstream's certificate manager does. Each failure is logged at error
//! with the cause and counted in `wasmlet_server_expiration_renew_errors`
//! (upstream's `kubelet_server_expiration_renew_errors`, for serving
//! certificate requests) or `wasmlet_kubelet_api_start_errors_total{step}`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmlet_api::auth::KubeReviews;
use wasmlet_api::{Auth, Provider, Server, ServerConfig, Telemetry};
use wasmlet_certs::{HookError, Rotator, Template};
use wasmlet_metrics::Metrics;
use wasmlet_retry::{Backoff, Chain};

use crate::config::{AuthorizationMode, Settings};
use crate::identity::{self, Identity};
use crate::tls;

/// Retries of binding and serving: 1 s doubling to 30 s, jittered.
const SERVE_BACKOFF: Backoff = Backoff { min: Duration::from_secs(1), max: Duration::from_secs(30) };
/// Retries of a serving certificate request that ended without a
/// certificate (denied, failed, not approved in time): upstream's
/// certificate manager backoff, 2 s doubling to 32 s, jittered.
const CSR_BACKOFF: Backoff = Backoff { min: Duration::from_secs(2), max: Duration::from_secs(32) };

/// What the API serves.
#[derive(Clone)]
pub(crate) struct Routes {
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) telemetry: Telemetry,
}

/// Checks what is fatal (the static certificate and key, the client CA)
/// and spawns the API on `tracker`; it serves until `cancel`. See the
/// module docs for what is retried.
pub(crate) async fn start(
    settings: &Settings,
    identity: &Identity,
    routes: Routes,
    metrics: Arc<Metrics>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let address = settings.upstream.address.unwrap_or(settings.node_ip);
    let mut config = ServerConfig::new((address, settings.port).into(), "", "");
    config.tls_policy = settings.upstream.tls_policy.clone();
    config.client_ca = identity::client_ca(settings, &identity.certs).await?;
    config.auth = Some(Arc::new(auth(settings, &identity.client)));
    if !settings.security.rotate_server_certificates {
        let (cert, key) =
            tls::serving_files(settings.tls.clone(), &settings.root_dir, &settings.node_name, settings.node_ip)?;
        wasmlet_api::Tls::load_with_policy(&cert, &key, config.client_ca.as_deref(), config.tls_policy.clone())
            .await
            .context("loading the kubelet API's serving certificate")?;
        (config.cert, config.key) = (cert, key);
        tracker.spawn(serve(config, routes, metrics, None, cancel));
        return Ok(());
    }
    let client = identity.client.clone();
    let certs = identity.certs.clone();
    let template =
        Template::serving(&settings.node_name, std::slice::from_ref(&settings.node_name), &[settings.node_ip]);
    tracker.spawn(rotating(config, routes, client, certs, template, metrics, cancel));
    Ok(())
}

/// Waits for an approved serving certificate (asking again after a denial),
/// serves with it, and renews it.
async fn rotating(
    mut config: ServerConfig,
    routes: Routes,
    client: kube::Client,
    certs: wasmlet_certs::Config,
    template: Template,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let Some(certificate) = serving_certificate(&client, &certs, &template, &metrics, &cancel).await else {
        return;
    };
    let Some(path) = certificate.path().map(Path::to_owned) else {
        // A certificate from `serving_certificate` is always stored.
        tracing::error!("the serving certificate is not stored; the kubelet API cannot start; this is a bug");
        return;
    };
    (config.cert, config.key) = (path.clone(), path);
    let current: Arc<std::sync::Mutex<Option<wasmlet_api::Tls>>> = Arc::default();
    let reload = current.clone();
    let rotator = Rotator::serving(client, certificate, template, &certs).on_rotate(move |cert| {
        let tls = reload.lock().unwrap_or_else(|p| p.into_inner()).clone();
        async move {
            let path: &Path = cert.path().ok_or("the new serving certificate is not stored")?;
            if let Some(tls) = tls {
                tls.reload(path, path).await.map_err(HookError::from)?;
            }
            tracing::info!(serial = cert.serial(), "the kubelet API serves the new certificate");
            Ok(())
        }
    });
    let rotation = tokio::spawn(rotator.run(cancel.clone()));
    serve(config, routes, metrics, Some(current), cancel).await;
    let _ = rotation.await;
}

/// The serving certificate: retried (with a new CSR) until one is issued
/// or `cancel` fires (`None`).
async fn serving_certificate(
    client: &kube::Client,
    certs: &wasmlet_certs::Config,
    template: &Template,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> Option<Arc<wasmlet_certs::Certificate>> {
    let mut delays = CSR_BACKOFF.delays();
    loop {
        match wasmlet_certs::serving_certificate(client, certs, template, cancel).await {
            Ok(certificate) => return Some(certificate),
            Err(wasmlet_certs::Error::Cancelled) => return None,
            Err(e) => {
                metrics.server_certificate_renew_error();
                let delay = delays.next().unwrap_or(CSR_BACKOFF.max);
                tracing::error!(
                    error = %Chain(&e),
                    retry_in = ?delay,
                    "no serving certificate for the kubelet API; pods keep running; requesting a new one"
                );
                if !wasmlet_retry::sleep(delay, cancel).await {
                    return None;
                }
            }
        }
    }
}

/// Binds and serves until `cancel`. A failure to bind (or to load the
/// certificate) and a listener that fails are logged, counted and retried;
/// the new server's TLS handle is put in `current` (for reloads).
async fn serve(
    config: ServerConfig,
    routes: Routes,
    metrics: Arc<Metrics>,
    current: Option<Arc<std::sync::Mutex<Option<wasmlet_api::Tls>>>>,
    cancel: CancellationToken,
) {
    let mut delays = SERVE_BACKOFF.delays();
    while !cancel.is_cancelled() {
        let (step, error) = match Server::bind(config.clone(), routes.provider.clone()).await {
            Ok(server) => {
                if let Some(current) = &current {
                    *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(server.tls());
                }
                delays = SERVE_BACKOFF.delays();
                match server.telemetry(routes.telemetry.clone()).run(cancel.clone()).await {
                    Ok(()) => return,
                    Err(e) => ("serve", e),
                }
            }
            Err(e) => ("bind", e),
        };
        metrics.kubelet_api_start_error(step);
        let delay = delays.next().unwrap_or(SERVE_BACKOFF.max);
        tracing::error!(
            error = %Chain(&error),
            retry_in = ?delay,
            "the kubelet API is not serving; pods keep running; retrying"
        );
        if !wasmlet_retry::sleep(delay, &cancel).await {
            return;
        }
    }
}

fn auth(settings: &Settings, client: &kube::Client) -> Auth {
    let security = &settings.security;
    let reviews = Arc::new(KubeReviews::new(client.clone()));
    let mut auth = Auth::new(settings.node_name.clone()).anonymous(security.anonymous_auth);
    if security.token_webhook {
        auth = auth.tokens(reviews.clone());
    }
    if security.authorization == AuthorizationMode::Webhook {
        auth = auth.authorize_with(reviews);
    }
    tracing::info!(?auth, "kubelet API access control");
    auth
}
