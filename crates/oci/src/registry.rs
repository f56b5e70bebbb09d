//! Classifying `oci-client` errors into what the node acts on.

use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};

/// The cause of a failed registry call, as far as callers care.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Class {
    NotFound,
    Unauthorized,
    DigestMismatch { expected: String, actual: String },
    Other,
}

pub(crate) fn classify(err: &OciDistributionError) -> Class {
    use OciDistributionError as E;
    match err {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => Class::Unauthorized,
        E::ImageManifestNotFoundError(_) => Class::NotFound,
        E::ServerError { code: 401 | 403, .. } => Class::Unauthorized,
        E::ServerError { code: 404, .. } => Class::NotFound,
        E::RequestError(e) => match e.status().map(|s| s.as_u16()) {
            Some(401 | 403) => Class::Unauthorized,
            Some(404) => Class::NotFound,
            _ => Class::Other,
        },
        E::DigestError(DigestError::VerificationError { expected, actual }) => {
            Class::DigestMismatch { expected: expected.clone(), actual: actual.clone() }
        }
        E::RegistryError { envelope, .. } => {
            let codes = || envelope.errors.iter().map(|e| &e.code);
            if codes().any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                Class::Unauthorized
            } else if codes().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                Class::NotFound
            } else {
                Class::Other
            }
        }
        _ => Class::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_client::errors::OciEnvelope;

    fn envelope(json: &str) -> OciDistributionError {
        OciDistributionError::RegistryError {
            envelope: serde_json::from_str::<OciEnvelope>(json).unwrap(),
            url: "http://r/v2/x/manifests/latest".into(),
        }
    }

    #[test]
    fn classifies_registry_errors() {
        let e = envelope(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#);
        assert_eq!(classify(&e), Class::NotFound);
        let e = envelope(r#"{"errors":[{"code":"DENIED","message":"no"}]}"#);
        assert_eq!(classify(&e), Class::Unauthorized);
        let e = envelope(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#);
        assert_eq!(classify(&e), Class::Other);
        let e = OciDistributionError::ServerError { code: 404, url: String::new(), message: String::new() };
        assert_eq!(classify(&e), Class::NotFound);
        let e = OciDistributionError::UnauthorizedError { url: String::new() };
        assert_eq!(classify(&e), Class::Unauthorized);
        let e = OciDistributionError::DigestError(DigestError::VerificationError {
            expected: "a".into(),
            actual: "b".into(),
        });
        assert!(matches!(classify(&e), Class::DigestMismatch { .. }));
    }
}
