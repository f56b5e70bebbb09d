//! Starting the kubelet API: who may call it (x509 client certificates,
//! TokenReview, SubjectAccessReview; see `wasmlet_api::auth`) and what it
//! serves with — a static or self-signed certificate, or, with
//! `--rotate-server-certificates`, one from the `kubernetes.io/kubelet-serving`
//! signer that is renewed and reloaded in place (open connections keep
//! their session; new ones get the new certificate).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmlet_api::auth::KubeReviews;
use wasmlet_api::{Auth, Provider, Server, ServerConfig, Telemetry};
use wasmlet_certs::{HookError, Rotator, Template};

use crate::config::{AuthorizationMode, Settings};
use crate::identity::{self, Identity};
use crate::tls;

/// What the API serves.
pub(crate) struct Routes {
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) telemetry: Telemetry,
}

/// Binds and spawns the API. With a static certificate a bind failure is
/// an error here; with a requested one the API starts once the CSR is
/// approved (pods run meanwhile), and a failure then ends the agent
/// through `shutdown`.
pub(crate) async fn start(
    settings: &Settings,
    identity: &Identity,
    routes: Routes,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
    late: CancellationToken,
) -> anyhow::Result<()> {
    let mut config = ServerConfig::new((settings.node_ip, settings.port).into(), "", "");
    config.client_ca = identity::client_ca(settings, &identity.certs).await?;
    config.auth = Some(Arc::new(auth(settings, &identity.client)));
    if !settings.security.rotate_server_certificates {
        let (cert, key) =
            tls::serving_files(settings.tls.clone(), &settings.root_dir, &settings.node_name, settings.node_ip)?;
        (config.cert, config.key) = (cert, key);
        let server = bind(config, routes).await?;
        tracker.spawn(run(server, late));
        return Ok(());
    }
    let client = identity.client.clone();
    let certs = identity.certs.clone();
    let template =
        Template::serving(&settings.node_name, std::slice::from_ref(&settings.node_name), &[settings.node_ip]);
    tracker.spawn(async move {
        let result = rotating(config, routes, client, certs, template, late.clone()).await;
        if let Err(e) = result {
            tracing::error!(error = format!("{e:#}"), "the kubelet API failed to start");
            shutdown.cancel();
        }
    });
    Ok(())
}

/// Waits for an approved serving certificate, serves with it, and renews it.
async fn rotating(
    mut config: ServerConfig,
    routes: Routes,
    client: kube::Client,
    certs: wasmlet_certs::Config,
    template: Template,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let certificate = match wasmlet_certs::serving_certificate(&client, &certs, &template, &cancel).await {
        Ok(certificate) => certificate,
        Err(wasmlet_certs::Error::Cancelled) => return Ok(()),
        Err(e) => return Err(e).context("getting the serving certificate"),
    };
    let path = certificate.path().context("the serving certificate is not stored")?.to_owned();
    (config.cert, config.key) = (path.clone(), path);
    let server = bind(config, routes).await?;
    let tls = server.tls();
    let rotator = Rotator::serving(client, certificate, template, &certs).on_rotate(move |cert| {
        let tls = tls.clone();
        async move {
            let path: &Path = cert.path().ok_or("the new serving certificate is not stored")?;
            tls.reload(path, path).await.map_err(HookError::from)?;
            tracing::info!(serial = cert.serial(), "the kubelet API serves the new certificate");
            Ok(())
        }
    });
    let rotation = tokio::spawn(rotator.run(cancel.clone()));
    run(server, cancel).await;
    let _ = rotation.await;
    Ok(())
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

async fn bind(config: ServerConfig, routes: Routes) -> anyhow::Result<Server> {
    Ok(Server::bind(config, routes.provider).await.context("starting the kubelet API")?.telemetry(routes.telemetry))
}

async fn run(server: Server, cancel: CancellationToken) {
    if let Err(e) = server.run(cancel).await {
        tracing::error!(error = %e, "the kubelet API failed");
    }
}
