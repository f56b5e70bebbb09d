//! [`NodeClient`]: the node's `kube::Client`, whose client certificate can
//! be replaced while the client is in use.
//!
//! # How a new identity reaches existing users
//!
//! The `kube::Client` handed out ([`NodeClient::client`]) is built once
//! over a small `tower` service that forwards each request to the *current*
//! inner `kube::Client`, one per identity (each with its own connection
//! pool and TLS configuration). [`NodeClient::install`] builds the inner
//! client for a new certificate and swaps it in:
//!
//! - every clone of the outer client, wherever it was passed, sends its
//!   next request with the new certificate, on a new connection;
//! - a request already under way (a watch, a log follow) keeps its
//!   connection and identity until it ends — nothing is dropped; the
//!   previous pool goes away with its last response;
//! - idle connections of the previous identity are never reused, so no
//!   request is authenticated with an old certificate after the switch
//!   (the API server checks client certificates per request, so a reused
//!   connection would start failing when the old certificate expires).
//!
//! The alternatives were rejected: re-reading the certificate on each new
//! TLS connection (a rustls `ResolvesClientCert`) leaves pooled HTTP/2 and
//! keep-alive connections on the old identity until it expires; publishing
//! new clients through a channel makes every consumer re-fetch its client,
//! and the long-lived ones (watchers) never would.

use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::{Certificate, Error, Result};

/// The node's API client with a replaceable identity; clones share it.
#[derive(Clone)]
pub struct NodeClient {
    base: Arc<kube::Config>,
    current: Arc<watch::Sender<Identity>>,
    client: kube::Client,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("cluster_url", &self.base.cluster_url)
            .field("certificate", &self.current.borrow().certificate)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Identity {
    certificate: Arc<Certificate>,
    client: kube::Client,
}

impl NodeClient {
    /// A client for the cluster of `base` (URL, CA, timeouts; its own
    /// credentials are ignored) authenticating with `certificate`.
    ///
    /// Must be called within a Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Client`] if the TLS configuration cannot be built (e.g. the
    /// key does not match).
    pub fn new(base: kube::Config, certificate: Arc<Certificate>) -> Result<NodeClient> {
        let first = Identity { client: build(&base, &certificate)?, certificate };
        let (current, receiver) = watch::channel(first);
        let client = kube::Client::new(Switch { current: receiver }, base.default_namespace.clone());
        Ok(NodeClient { base: Arc::new(base), current: Arc::new(current), client })
    }

    /// The client; its clones follow every [`NodeClient::install`].
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The certificate in use for new requests.
    pub fn certificate(&self) -> Arc<Certificate> {
        self.current.borrow().certificate.clone()
    }

    /// Authenticates new requests with `certificate` from now on.
    ///
    /// # Errors
    ///
    /// [`Error::Client`]; the current identity stays then.
    pub fn install(&self, certificate: Arc<Certificate>) -> Result<()> {
        let client = build(&self.base, &certificate)?;
        self.current.send_replace(Identity { certificate, client });
        Ok(())
    }
}

/// An inner client: `base` with only `certificate` as credentials.
fn build(base: &kube::Config, certificate: &Certificate) -> Result<kube::Client> {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes());
    let auth = serde_json::json!({
        "client-certificate-data": b64(certificate.cert_pem()),
        "client-key-data": b64(certificate.key_pem()),
    });
    let mut config = base.clone();
    config.auth_info = serde_json::from_value(auth)
        .map_err(|e| Error::InvalidCertificate { what: "client credentials".into(), reason: e.to_string() })?;
    kube::Client::try_from(config).map_err(Error::Client)
}

/// Forwards each request to the current identity's client.
struct Switch {
    current: watch::Receiver<Identity>,
}

impl tower::Service<http::Request<kube::client::Body>> for Switch {
    type Response = http::Response<kube::client::Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Self::Response, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), kube::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let client = self.current.borrow().client.clone();
        Box::pin(async move { client.send(request).await })
    }
}

/// The cluster's CA certificates of `config`, PEM.
pub(crate) fn ca_pem(config: &kube::Config) -> Option<String> {
    let roots = config.root_cert.as_ref().filter(|r| !r.is_empty())?;
    let mut pem = String::new();
    for der in roots {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    Some(pem)
}
