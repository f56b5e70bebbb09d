//! [`TlsPolicy`]: upstream's `tlsMinVersion` and `tlsCipherSuites` for the
//! kubelet API, with Go's names for versions and suites.
//!
//! rustls speaks TLS 1.2 and 1.3 only, with AEAD suites only. So:
//! - `VersionTLS10` and `VersionTLS11` are accepted and mean TLS 1.2, the
//!   oldest rustls offers ([`TlsPolicy::notes`] says so);
//! - a Go suite name rustls does not implement (CBC, RC4, 3DES, RSA key
//!   exchange) is accepted and left out, with a note; a name Go does not
//!   know is an error, as upstream refuses to start with one;
//! - as in Go, the list selects TLS 1.2 suites; TLS 1.3 suites are always
//!   offered (Go does not let them be configured either).

use std::sync::Arc;

use rustls::SupportedCipherSuite;
use rustls::crypto::aws_lc_rs::cipher_suite as suite;

/// Go names of TLS 1.2 suites rustls implements, with the suite.
const TLS12: [(&str, SupportedCipherSuite); 8] = [
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
];

/// TLS 1.3 suites: always offered.
const TLS13: [(&str, SupportedCipherSuite); 3] = [
    ("TLS_AES_128_GCM_SHA256", suite::TLS13_AES_128_GCM_SHA256),
    ("TLS_AES_256_GCM_SHA384", suite::TLS13_AES_256_GCM_SHA384),
    ("TLS_CHACHA20_POLY1305_SHA256", suite::TLS13_CHACHA20_POLY1305_SHA256),
];

/// Suites Go knows and rustls does not implement.
const GO_ONLY: [&str; 16] = [
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// An invalid `tlsMinVersion` or `tlsCipherSuites`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// Not one of Go's version names.
    #[error("TLS version {0:?} is not one of VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13")]
    Version(String),
    /// Not one of Go's cipher suite names.
    #[error("cipher suite {0:?} is not supported or does not exist")]
    Suite(String),
}

/// Which protocol versions and TLS 1.2 suites the kubelet API offers.
#[derive(Debug, Clone, Default)]
pub struct TlsPolicy {
    /// Only TLS 1.3 (`VersionTLS13`).
    tls13_only: bool,
    /// The TLS 1.2 suites, in the order given; `None`: rustls's defaults.
    tls12_suites: Option<Vec<SupportedCipherSuite>>,
    notes: Vec<String>,
}

impl TlsPolicy {
    /// Parses upstream's `tlsMinVersion` (Go name, empty = default) and
    /// `tlsCipherSuites` (Go names, empty = defaults).
    ///
    /// # Errors
    ///
    /// [`PolicyError`] for a name Go does not know.
    pub fn parse(min_version: Option<&str>, cipher_suites: &[String]) -> Result<TlsPolicy, PolicyError> {
        let mut policy = TlsPolicy::default();
        match min_version.unwrap_or("") {
            "" | "VersionTLS12" => {}
            "VersionTLS13" => policy.tls13_only = true,
            old @ ("VersionTLS10" | "VersionTLS11") => {
                policy.notes.push(format!("tlsMinVersion {old}: TLS 1.2 is the oldest version wasmlet speaks"));
            }
            other => return Err(PolicyError::Version(other.to_owned())),
        }
        if cipher_suites.is_empty() {
            return Ok(policy);
        }
        let mut chosen = Vec::new();
        for name in cipher_suites {
            let name = name.trim();
            if let Some((_, s)) = TLS12.iter().find(|(n, _)| *n == name) {
                if !chosen.contains(s) {
                    chosen.push(*s);
                }
            } else if TLS13.iter().any(|(n, _)| *n == name) {
                // Always offered, as in Go.
            } else if GO_ONLY.contains(&name) {
                policy.notes.push(format!("cipher suite {name} is not offered: rustls implements only AEAD suites"));
            } else {
                return Err(PolicyError::Suite(name.to_owned()));
            }
        }
        if chosen.is_empty() && !policy.tls13_only {
            policy.notes.push("no usable TLS 1.2 cipher suite is listed: only TLS 1.3 clients can connect".into());
        }
        policy.tls12_suites = Some(chosen);
        Ok(policy)
    }

    /// What was accepted but differs from what was asked, one line each.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The crypto provider with the allowed suites.
    pub(crate) fn provider(&self) -> Arc<rustls::crypto::CryptoProvider> {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        if let Some(tls12) = &self.tls12_suites {
            provider.cipher_suites = TLS13.iter().map(|(_, s)| *s).chain(tls12.iter().copied()).collect();
        }
        Arc::new(provider)
    }

    /// The protocol versions to offer.
    pub(crate) fn versions(&self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        if self.tls13_only { &TLS13_ONLY } else { rustls::DEFAULT_VERSIONS }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &TlsPolicy) -> Vec<String> {
        p.provider().cipher_suites.iter().map(|s| format!("{:?}", s.suite())).collect()
    }

    #[test]
    fn defaults_offer_both_versions_and_rustls_suites() {
        let p = TlsPolicy::parse(None, &[]).unwrap();
        assert_eq!(p.versions().len(), 2);
        assert_eq!(p.provider().cipher_suites.len(), rustls::crypto::aws_lc_rs::default_provider().cipher_suites.len());
        assert!(p.notes().is_empty());
    }

    #[test]
    fn tls13_minimum_offers_only_tls13() {
        let p = TlsPolicy::parse(Some("VersionTLS13"), &[]).unwrap();
        assert_eq!(p.versions(), &[&rustls::version::TLS13]);
    }

    #[test]
    fn old_minimums_are_noted_not_fatal() {
        let p = TlsPolicy::parse(Some("VersionTLS10"), &[]).unwrap();
        assert_eq!(p.versions().len(), 2);
        assert!(p.notes()[0].contains("TLS 1.2 is the oldest"), "{:?}", p.notes());
    }

    #[test]
    fn listed_suites_select_tls12_and_keep_tls13() {
        let list = ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_owned(), "TLS_RSA_WITH_AES_128_CBC_SHA".to_owned()];
        let p = TlsPolicy::parse(Some("VersionTLS12"), &list).unwrap();
        assert_eq!(
            names(&p),
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(p.notes().len(), 1, "{:?}", p.notes());
        assert!(p.notes()[0].contains("TLS_RSA_WITH_AES_128_CBC_SHA"));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(TlsPolicy::parse(Some("TLS1.2"), &[]).unwrap_err(), PolicyError::Version("TLS1.2".into()));
        let err = TlsPolicy::parse(None, &["TLS_FANCY".to_owned()]).unwrap_err();
        assert_eq!(err.to_string(), "cipher suite \"TLS_FANCY\" is not supported or does not exist");
    }
}
