//! Classifying `oci-client` errors into what the node acts on.

use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};

/// The cause of a failed registry call, as far as callers care.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Class {
    NotFound,
    /// 401 or 403 (as far as the error tells).
    Unauthorized(u16),
    DigestMismatch {
        expected: String,
        actual: String,
    },
    /// Any other HTTP status the registry answered with (e.g. 503).
    Status(u16),
    Other,
}

pub(crate) fn classify(err: &OciDistributionError) -> Class {
    use OciDistributionError as E;
    match err {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => Class::Unauthorized(401),
        E::ImageManifestNotFoundError(_) => Class::NotFound,
        E::ServerError { code: code @ (401 | 403), .. } => Class::Unauthorized(*code),
        E::ServerError { code: 404, .. } => Class::NotFound,
        E::ServerError { code, .. } => Class::Status(*code),
        E::RequestError(e) => match e.status().map(|s| s.as_u16()) {
            Some(code @ (401 | 403)) => Class::Unauthorized(code),
            Some(404) => Class::NotFound,
            Some(code) => Class::Status(code),
            None => Class::Other,
        },
        E::DigestError(DigestError::VerificationError { expected, actual }) => {
            Class::DigestMismatch { expected: expected.clone(), actual: actual.clone() }
        }
        E::RegistryError { envelope, .. } => {
            let codes = || envelope.errors.iter().map(|e| &e.code);
            if codes().any(|c| matches!(c, OciErrorCode::Unauthorized)) {
                Class::Unauthorized(401)
            } else if codes().any(|c| matches!(c, OciErrorCode::Denied)) {
                Class::Unauthorized(403)
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
        assert_eq!(classify(&e), Class::Unauthorized(403));
        let e = envelope(r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#);
        assert_eq!(classify(&e), Class::Other);
        let e = OciDistributionError::ServerError { code: 404, url: String::new(), message: String::new() };
        assert_eq!(classify(&e), Class::NotFound);
        let e = OciDistributionError::UnauthorizedError { url: String::new() };
        assert_eq!(classify(&e), Class::Unauthorized(401));
        let e = OciDistributionError::ServerError { code: 503, url: String::new(), message: String::new() };
        assert_eq!(classify(&e), Class::Status(503));
        let e = OciDistributionError::DigestError(DigestError::VerificationError {
            expected: "a".into(),
            actual: "b".into(),
        });
        assert!(matches!(classify(&e), Class::DigestMismatch { .. }));
    }
}
