//! Getting one certificate issued: make the request, submit it, wait for
//! approval and signing, check what came back, store it.

use std::time::Duration;

use rcgen::{KeyPair, PublicKeyData as _};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::api::{self, Name, Submitted};
use crate::csr::{self, Template};
use crate::store::Store;
use crate::{Certificate, Error, Result};

/// How to ask.
#[derive(Debug, Clone)]
pub(crate) struct Ask<'a> {
    pub(crate) template: &'a Template,
    /// Fixed names are derived from the request (bootstrap).
    pub(crate) fixed_name: bool,
    pub(crate) approval_timeout: Duration,
    pub(crate) lifetime: Option<Duration>,
}

/// Requests a certificate for `key` and `ask.template` through `client`,
/// waits for it and makes it the store's current pair.
pub(crate) async fn issue(
    client: &kube::Client,
    store: &Store,
    key: &KeyPair,
    ask: &Ask<'_>,
    cancel: &CancellationToken,
) -> Result<Certificate> {
    let request = csr::request(ask.template, key)?;
    let name = if ask.fixed_name { Name::Fixed(api::digested_name(&request)) } else { Name::Generate("csr-") };
    let submitted: Submitted = api::submit(client, &name, &request, ask.lifetime).await?;
    let pem = api::wait_issued(client, &submitted, ask.approval_timeout, cancel).await?;
    check_key(&pem, key, &submitted.name)?;
    let cert = store.update(&pem, &request.key_pem).await?;
    if !ask.template.is_satisfied_by(&cert) {
        warn!(csr = %submitted.name, "the issued certificate does not name everything that was asked for");
    }
    info!(
        csr = %submitted.name,
        signer = request.signer.name(),
        serial = cert.serial(),
        not_after = ?cert.not_after(),
        "certificate issued"
    );
    Ok(cert)
}

/// Checks that the issued leaf certifies `key`.
fn check_key(cert_pem: &str, key: &KeyPair, csr: &str) -> Result<()> {
    let invalid = |reason: String| Error::InvalidCertificate { what: format!("issued for {csr}"), reason };
    let (certs, _) = crate::certificate::split_pem(cert_pem);
    let leaf = certs.first().ok_or_else(|| invalid("no certificate".into()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(leaf.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let (_, cert) = X509Certificate::from_der(&pem.contents).map_err(|e| invalid(e.to_string()))?;
    if cert.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
        return Err(invalid("it certifies another key".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_must_certify_our_key() {
        let key = csr::generate_key().unwrap();
        let other = csr::generate_key().unwrap();
        let params = rcgen::CertificateParams::new(vec!["n".to_owned()]).unwrap();
        let cert = params.self_signed(&key).unwrap().pem();
        assert!(check_key(&cert, &key, "c").is_ok());
        let err = check_key(&cert, &other, "c").unwrap_err();
        assert_eq!(err.to_string(), "invalid certificate issued for c: it certifies another key");
    }
}
