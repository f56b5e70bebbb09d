//! [`Error`]: every way obtaining or rotating a certificate fails, named
//! after the step that failed.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of bootstrapping, requesting and storing certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (or its directory created).
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A kubeconfig could not be loaded.
    #[error("loading kubeconfig {}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// A kubeconfig holds no client certificate and key.
    #[error("kubeconfig {} has no client certificate and key", path.display())]
    NoClientCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A client could not be built from a configuration.
    #[error("building an API client")]
    Client(#[source] kube::Error),
    /// Generating a key or a CSR failed.
    #[error("generating a key or certificate request")]
    Generate(#[source] rcgen::Error),
    /// A certificate or key is not usable.
    #[error("invalid certificate {what}: {reason}")]
    InvalidCertificate {
        /// Which one (a path, or the CSR it was issued for).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither valid node credentials nor a bootstrap kubeconfig.
    #[error("no usable node credentials: {0}")]
    NoCredentials(String),
    /// Creating the CSR failed.
    #[error("creating CertificateSigningRequest {name}")]
    Submit {
        /// The CSR (or its `generateName`).
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A CSR of that name exists and holds another request.
    #[error("CertificateSigningRequest {name} exists with another request")]
    Conflict {
        /// The CSR.
        name: String,
    },
    /// The CSR was denied.
    #[error("CertificateSigningRequest {name} was denied: {reason}: {message}")]
    Denied {
        /// The CSR.
        name: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// The signer failed to issue the certificate.
    #[error("CertificateSigningRequest {name} failed: {reason}: {message}")]
    Failed {
        /// The CSR.
        name: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// The CSR was not approved and signed in time.
    #[error("CertificateSigningRequest {name} was not issued within {timeout:?}")]
    Timeout {
        /// The CSR.
        name: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The CSR was deleted (or replaced by another of the same name) while
    /// we waited.
    #[error("CertificateSigningRequest {name} was deleted while waiting for it")]
    Deleted {
        /// The CSR.
        name: String,
    },
    /// The token was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// Whether trying again later may help: API and watch failures and
    /// timeouts, not a denial or a broken file.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Submit { source, .. } => crate::api::is_transient(source),
            Error::Timeout { .. } | Error::Deleted { .. } | Error::Failed { .. } => true,
            _ => false,
        }
    }
}
