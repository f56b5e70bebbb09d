//! The `certificates.k8s.io/v1` API: creating a CertificateSigningRequest
//! and watching it until it is approved and issued, denied or failed.
//!
//! The bootstrap CSR has a name derived from the key and the request
//! (upstream `digestedName`), so a node restarted while waiting finds its
//! own CSR again instead of making another; rotations use `generateName`.

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{CertificateSigningRequest, CertificateSigningRequestSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::csr::Request;
use crate::{Error, Result};

/// How a new CSR is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name {
    /// This name; an existing CSR of that name with the same request is
    /// reused.
    Fixed(String),
    /// `metadata.generateName`.
    Generate(&'static str),
}

/// A created (or found) CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Submitted {
    pub(crate) name: String,
    pub(crate) uid: Option<String>,
}

/// `node-csr-<digest>`: stable for one key and request, as upstream names
/// bootstrap CSRs.
pub(crate) fn digested_name(request: &Request) -> String {
    let mut hash = Sha256::new();
    hash.update(request.key_pem.as_bytes());
    hash.update(request.csr_pem.as_bytes());
    hash.update(request.signer.name().as_bytes());
    for usage in &request.usages {
        hash.update(usage.as_bytes());
    }
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.finalize());
    format!("node-csr-{}", digest.to_ascii_lowercase().replace(['_', '-'], "x"))
}

/// Creates the CSR (asking for `lifetime` if given; the API's minimum is
/// 600 s).
pub(crate) async fn submit(
    client: &kube::Client,
    name: &Name,
    request: &Request,
    lifetime: Option<Duration>,
) -> Result<Submitted> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let metadata = match name {
        Name::Fixed(name) => ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
        Name::Generate(prefix) => ObjectMeta { generate_name: Some((*prefix).to_owned()), ..ObjectMeta::default() },
    };
    let label = match name {
        Name::Fixed(name) => name.clone(),
        Name::Generate(prefix) => format!("{prefix}*"),
    };
    let csr = CertificateSigningRequest {
        metadata,
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.csr_pem.clone().into_bytes()),
            signer_name: request.signer.name().to_owned(),
            usages: Some(request.usages.iter().map(|u| (*u).to_owned()).collect()),
            expiration_seconds: lifetime.map(|l| i32::try_from(l.as_secs().max(600)).unwrap_or(i32::MAX)),
            ..CertificateSigningRequestSpec::default()
        },
        status: None,
    };
    match api.create(&PostParams::default(), &csr).await {
        Ok(created) => {
            let submitted = Submitted { name: created.metadata.name.unwrap_or(label), uid: created.metadata.uid };
            info!(csr = %submitted.name, signer = request.signer.name(), "certificate requested");
            Ok(submitted)
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            let existing = api.get(&label).await.map_err(|source| Error::Submit { name: label.clone(), source })?;
            if existing.spec.request.0 != request.csr_pem.as_bytes() {
                return Err(Error::Conflict { name: label });
            }
            debug!(csr = %label, "reusing the certificate request made before");
            Ok(Submitted { name: label, uid: existing.metadata.uid })
        }
        Err(source) => Err(Error::Submit { name: label, source }),
    }
}

/// Watches the CSR until it is approved and has a certificate (its PEM is
/// returned), or is denied, fails, is deleted, `timeout` passes or
/// `cancel` fires.
pub(crate) async fn wait_issued(
    client: &kube::Client,
    csr: &Submitted,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<String> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("metadata.name={}", csr.name));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let watching = async {
        let mut seen = false;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                    seen = true;
                    if let Some(outcome) = outcome(&obj, csr) {
                        return outcome;
                    }
                }
                Ok(watcher::Event::Delete(_)) => return Err(Error::Deleted { name: csr.name.clone() }),
                Ok(watcher::Event::Init) => seen = false,
                Ok(watcher::Event::InitDone) if !seen => return Err(Error::Deleted { name: csr.name.clone() }),
                Ok(watcher::Event::InitDone) => {}
                Err(error) => debug!(csr = %csr.name, %error, "watching the certificate request (retrying)"),
            }
        }
        Err(Error::Timeout { name: csr.name.clone(), timeout })
    };
    tokio::select! {
        () = cancel.cancelled() => Err(Error::Cancelled),
        result = tokio::time::timeout(timeout, watching) => {
            result.unwrap_or_else(|_| Err(Error::Timeout { name: csr.name.clone(), timeout }))
        }
    }
}

/// What the CSR's status says: `None` while it is pending.
fn outcome(obj: &CertificateSigningRequest, csr: &Submitted) -> Option<Result<String>> {
    let name = || csr.name.clone();
    if csr.uid.is_some() && obj.metadata.uid != csr.uid {
        return Some(Err(Error::Deleted { name: name() }));
    }
    let status = obj.status.as_ref()?;
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let holds = |kind: &str| conditions.iter().find(|c| c.type_ == kind && c.status == "True");
    let why = |c: &k8s_openapi::api::certificates::v1::CertificateSigningRequestCondition| {
        (c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default())
    };
    if let Some(c) = holds("Denied") {
        let (reason, message) = why(c);
        return Some(Err(Error::Denied { name: name(), reason, message }));
    }
    if let Some(c) = holds("Failed") {
        let (reason, message) = why(c);
        return Some(Err(Error::Failed { name: name(), reason, message }));
    }
    let certificate = status.certificate.as_ref().filter(|c| !c.0.is_empty())?;
    holds("Approved")?;
    Some(String::from_utf8(certificate.0.clone()).map_err(|_| Error::InvalidCertificate {
        what: format!("issued for {}", csr.name),
        reason: "not UTF-8 PEM".into(),
    }))
}

/// Whether an API error may go away by itself: connection problems,
/// throttling and server errors.
pub(crate) fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{CertificateSigningRequestCondition, CertificateSigningRequestStatus};

    fn csr(uid: &str, conditions: &[(&str, &str)], certificate: &str) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: ObjectMeta { name: Some("c".into()), uid: Some(uid.into()), ..ObjectMeta::default() },
            spec: CertificateSigningRequestSpec::default(),
            status: Some(CertificateSigningRequestStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, reason)| CertificateSigningRequestCondition {
                            type_: (*t).into(),
                            status: "True".into(),
                            reason: Some((*reason).into()),
                            message: Some("because".into()),
                            ..CertificateSigningRequestCondition::default()
                        })
                        .collect(),
                ),
                certificate: Some(ByteString(certificate.as_bytes().to_vec())),
            }),
        }
    }

    #[test]
    fn status_decides_the_outcome() {
        let ours = Submitted { name: "c".into(), uid: Some("u1".into()) };
        assert!(outcome(&csr("u1", &[], ""), &ours).is_none(), "pending");
        assert!(outcome(&csr("u1", &[("Approved", "AutoApproved")], ""), &ours).is_none(), "approved, not signed");
        let issued = outcome(&csr("u1", &[("Approved", "AutoApproved")], "PEM"), &ours).unwrap().unwrap();
        assert_eq!(issued, "PEM");
        let denied = outcome(&csr("u1", &[("Denied", "NotMine")], ""), &ours).unwrap().unwrap_err();
        assert_eq!(denied.to_string(), "CertificateSigningRequest c was denied: NotMine: because");
        let failed = outcome(&csr("u1", &[("Approved", "ok"), ("Failed", "SignerError")], ""), &ours).unwrap();
        assert!(matches!(failed, Err(Error::Failed { reason, .. }) if reason == "SignerError"));
        let replaced = outcome(&csr("u2", &[("Approved", "ok")], "PEM"), &ours).unwrap();
        assert!(matches!(replaced, Err(Error::Deleted { .. })));
    }

    #[test]
    fn digested_names_are_stable_and_valid() {
        let key = crate::csr::generate_key().unwrap();
        let request = crate::csr::request(&crate::csr::Template::client("n"), &key).unwrap();
        let name = digested_name(&request);
        assert_eq!(name, digested_name(&request));
        assert!(name.starts_with("node-csr-") && name.len() < 64, "{name}");
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{name}");
    }
}
