//! The serving certificate: loading it from PEM files, and [`Tls`], a
//! handle that can swap it while the server runs (for certificate
//! rotation).
//!
//! The certificate file holds the chain, leaf first. The key may be
//! PKCS#8 (EC or RSA), PKCS#1 (`RSA PRIVATE KEY`) or SEC1
//! (`EC PRIVATE KEY`). The crypto provider is aws-lc-rs, chosen
//! explicitly so the choice does not depend on which rustls features other
//! crates enable. ALPN offers HTTP/2 and HTTP/1.1.
//!
//! With a client CA ([`Tls::load_with_client_ca`]) clients may present a
//! certificate, verified against it; [`Tls::reload`] keeps the client CA.
//! A reload affects new connections only: open ones keep their session.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use crate::tls_policy::TlsPolicy;

/// Result alias for this module.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors loading the certificate and key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("reading {what} {path}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid PEM of the expected kind.
    #[error("parsing {what} {path}")]
    Pem {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {0}")]
    NoCertificate(PathBuf),
    /// The client CA file holds no usable CA certificate.
    #[error("unusable client CA {path}")]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// rustls refused the pair (unsupported key type, key does not match).
    #[error("unusable certificate {cert} with key {key}")]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
}

/// The server's TLS configuration; clones share it, so [`Tls::reload`] on
/// any clone affects new connections of the running server.
#[derive(Clone)]
pub struct Tls {
    config: RustlsConfig,
    client_auth: Option<Arc<dyn ClientCertVerifier>>,
    policy: TlsPolicy,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads the certificate chain and key.
    ///
    /// # Errors
    ///
    /// See [`Error`].
    pub async fn load(cert: &Path, key: &Path) -> Result<Tls> {
        Tls::load_with_client_ca(cert, key, None).await
    }

    /// Loads the certificate chain and key, and asks clients for a
    /// certificate signed by a CA of `client_ca` (PEM). A client may send
    /// none (it can authenticate otherwise); one that sends a certificate
    /// that does not verify (another CA, expired, wrong usage) fails the
    /// handshake.
    ///
    /// # Errors
    ///
    /// See [`Error`].
    pub async fn load_with_client_ca(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Tls> {
        Tls::load_with_policy(cert, key, client_ca, TlsPolicy::default()).await
    }

    /// [`Tls::load_with_client_ca`], offering the versions and suites of
    /// `policy` (kept across [`Tls::reload`]).
    ///
    /// # Errors
    ///
    /// See [`Error`].
    pub async fn load_with_policy(cert: &Path, key: &Path, client_ca: Option<&Path>, policy: TlsPolicy) -> Result<Tls> {
        let client_auth = match client_ca {
            Some(path) => Some(client_verifier(path).await?),
            None => None,
        };
        let config = server_config(cert, key, client_auth.clone(), &policy).await?;
        Ok(Tls { config: RustlsConfig::from_config(config), client_auth, policy })
    }

    /// Loads a new certificate and key; connections accepted from now on
    /// use them. On error the current pair stays.
    ///
    /// # Errors
    ///
    /// See [`Error`].
    pub async fn reload(&self, cert: &Path, key: &Path) -> Result<()> {
        let config = server_config(cert, key, self.client_auth.clone(), &self.policy).await?;
        self.config.reload_from_config(config);
        Ok(())
    }

    pub(crate) fn rustls(&self) -> RustlsConfig {
        self.config.clone()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

async fn client_verifier(path: &Path) -> Result<Arc<dyn ClientCertVerifier>> {
    let pem = read("client CA", path).await?;
    let ca_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::ClientCa { path: path.to_owned(), source };
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(&pem) {
        roots.add(der.map_err(|e| ca_error(e.into()))?).map_err(|e| ca_error(e.into()))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no CERTIFICATE block".into()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ca_error(e.into()))
}

async fn server_config(
    cert: &Path,
    key: &Path,
    client_auth: Option<Arc<dyn ClientCertVerifier>>,
    policy: &TlsPolicy,
) -> Result<Arc<rustls::ServerConfig>> {
    let cert_pem = read("certificate", cert).await?;
    let key_pem = read("key", key).await?;
    let pem_error = |what, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Pem { what, path, source }
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pem_error("certificate", cert))?;
    if chain.is_empty() {
        return Err(Error::NoCertificate(cert.to_owned()));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(pem_error("key", key))?;
    let rustls_error = |source| Error::Rustls { cert: cert.to_owned(), key: key.to_owned(), source };
    let builder = rustls::ServerConfig::builder_with_provider(policy.provider())
        .with_protocol_versions(policy.versions())
        .map_err(rustls_error)?;
    let builder = match client_auth {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, private_key).map_err(rustls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn read(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    tokio::fs::read(path).await.map_err(|source| Error::Read { what, path: path.to_owned(), source })
}
