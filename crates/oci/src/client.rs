//! Building the registry [`Client`] wasmlet uses: an [`oci_client::Client`]
//! (authentication, blobs, pushes; reached through `Deref`) and, for the
//! one request `oci-client` reads whole without a bound (manifests), a
//! plain HTTP client with the same roots, timeouts and protocols, so that
//! [`crate::Store::pull`] can stop reading at
//! [`crate::PullLimits::max_manifest_bytes`].
//!
//! Both speak https with the system roots plus any extra PEM roots, and
//! plain http only to the registries named in
//! [`ClientOptions::insecure_registries`].
//!
//! # Caveats
//!
//! `oci-client` remembers the first [`crate::RegistryAuth`] it is given for a
//! registry host and ignores later, different credentials for that host
//! (`Client::store_auth_if_needed`). Clones share that memory. Build one
//! client per set of credentials.

use std::sync::Arc;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;

/// Default for [`ClientOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ClientOptions::read_timeout`].
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

const USER_AGENT: &str = concat!("wasmlet/", env!("CARGO_PKG_VERSION"));

/// Errors from [`client()`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An extra root certificate is not a PEM certificate.
    #[error("extra root certificate #{index} is not a valid PEM certificate")]
    InvalidCertificate {
        /// Position in [`ClientOptions::extra_root_pem`].
        index: usize,
    },
    /// The HTTP client could not be built (for example, a PEM root that the
    /// TLS stack rejects).
    #[error("cannot build the registry client")]
    Build(#[source] OciDistributionError),
    /// The manifest HTTP client could not be built.
    #[error("cannot build the registry client")]
    Http(#[source] reqwest::Error),
}

/// A registry client; see the module docs. Cheap to clone; clones share
/// the token cache.
#[derive(Clone)]
pub struct Client {
    oci: oci_client::Client,
    pub(crate) http: reqwest::Client,
    insecure: Arc<Vec<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("insecure_registries", &self.insecure).finish_non_exhaustive()
    }
}

impl std::ops::Deref for Client {
    type Target = oci_client::Client;

    fn deref(&self) -> &oci_client::Client {
        &self.oci
    }
}

impl Client {
    /// `http` or `https` for `registry` (`host:port` as in references).
    pub(crate) fn scheme(&self, registry: &str) -> &'static str {
        if self.insecure.iter().any(|r| r == registry) { "http" } else { "https" }
    }
}

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries served over plain http, as `host:port` exactly as they
    /// appear in image references (e.g. `127.0.0.1:5000`).
    pub insecure_registries: Vec<String>,
    /// Extra PEM-encoded root certificates trusted for https registries,
    /// on top of the system roots. One entry may hold several certificates.
    pub extra_root_pem: Vec<Vec<u8>>,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Timeout for each read from a connection (not for a whole download).
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            extra_root_pem: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

/// Builds a registry client.
///
/// Image indexes are resolved by [`crate::Store::pull`] itself, so the
/// client's platform resolver is left unset.
///
/// # Errors
///
/// A PEM root is not a certificate, or the TLS stack rejects it.
/// (`oci_client::Client::new` would silently fall back to a default
/// client; this function does not.)
pub fn client(options: ClientOptions) -> Result<Client, Error> {
    let mut extra_root_certificates = Vec::new();
    let mut http = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout);
    for (index, pem) in options.extra_root_pem.into_iter().enumerate() {
        let text = String::from_utf8_lossy(&pem);
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err(Error::InvalidCertificate { index });
        }
        let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| Error::InvalidCertificate { index })?;
        http = http.tls_certs_merge(roots);
        extra_root_certificates.push(Certificate { encoding: CertificateEncoding::Pem, data: pem });
    }
    let insecure = Arc::new(options.insecure_registries.clone());
    let protocol = if options.insecure_registries.is_empty() {
        ClientProtocol::Https
    } else {
        ClientProtocol::HttpsExcept(options.insecure_registries)
    };
    let config = ClientConfig {
        protocol,
        extra_root_certificates,
        platform_resolver: None,
        connect_timeout: Some(options.connect_timeout),
        read_timeout: Some(options.read_timeout),
        user_agent: USER_AGENT,
        ..ClientConfig::default()
    };
    let oci = oci_client::Client::try_from(config).map_err(Error::Build)?;
    Ok(Client { oci, http: http.build().map_err(Error::Http)?, insecure })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_plain_and_insecure_clients() {
        client(ClientOptions::default()).unwrap();
        client(ClientOptions { insecure_registries: vec!["127.0.0.1:5000".into()], ..ClientOptions::default() })
            .unwrap();
    }

    #[test]
    fn rejects_garbage_pem() {
        let err =
            client(ClientOptions { extra_root_pem: vec![b"not a certificate".to_vec()], ..ClientOptions::default() })
                .err()
                .unwrap();
        assert!(matches!(err, Error::InvalidCertificate { index: 0 }), "{err:?}");

        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err =
            client(ClientOptions { extra_root_pem: vec![broken.to_vec()], ..ClientOptions::default() }).err().unwrap();
        assert!(matches!(err, Error::Build(_) | Error::InvalidCertificate { .. }), "{err:?}");
    }
}
