//! What a node asks for: the [`Template`] of its client or serving
//! certificate, and the PKCS#10 [`Request`] (with a fresh ECDSA P-256 key)
//! that goes into a `certificates.k8s.io/v1` CertificateSigningRequest.
//!
//! Contents follow upstream (`client-go` `util/certificate`, the kubelet's
//! `certificate` package) and what the approver and signers check:
//!
//! | | client | serving |
//! |---|---|---|
//! | signer | `kubernetes.io/kube-apiserver-client-kubelet` | `kubernetes.io/kubelet-serving` |
//! | subject | `CN=system:node:<name>`, `O=system:nodes` | the same |
//! | SANs | none | the node's DNS names and IPs |
//! | usages | digital signature, client auth | digital signature, server auth |
//!
//! plus `key encipherment` for RSA keys only (ECDSA keys cannot encipher).

use std::net::IpAddr;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

use crate::{Error, Result};

/// The group every node certificate names.
pub const NODES_GROUP: &str = "system:nodes";
/// The user-name prefix of node identities.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// A certificate signer a node asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signer {
    /// Client certificates of kubelets (auto-approved for nodes).
    KubeletClient,
    /// Serving certificates of kubelets (never auto-approved).
    KubeletServing,
}

impl Signer {
    /// `spec.signerName`.
    pub fn name(self) -> &'static str {
        match self {
            Signer::KubeletClient => "kubernetes.io/kube-apiserver-client-kubelet",
            Signer::KubeletServing => "kubernetes.io/kubelet-serving",
        }
    }

    /// `spec.usages` for a key of `kind`.
    pub fn usages(self, kind: KeyKind) -> Vec<&'static str> {
        let mut usages = vec!["digital signature"];
        if kind == KeyKind::Rsa {
            usages.push("key encipherment");
        }
        usages.push(match self {
            Signer::KubeletClient => "client auth",
            Signer::KubeletServing => "server auth",
        });
        usages
    }
}

/// The kind of a private key, which decides the usages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA (what this crate generates).
    Ecdsa,
    /// RSA.
    Rsa,
    /// Ed25519 and others: no key encipherment either.
    Other,
}

impl KeyKind {
    /// The kind of `key`.
    pub fn of(key: &KeyPair) -> KeyKind {
        let alg = key.algorithm();
        if alg == &rcgen::PKCS_ECDSA_P256_SHA256 || alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
            KeyKind::Ecdsa
        } else if [&rcgen::PKCS_RSA_SHA256, &rcgen::PKCS_RSA_SHA384, &rcgen::PKCS_RSA_SHA512].contains(&alg) {
            KeyKind::Rsa
        } else {
            KeyKind::Other
        }
    }
}

/// What a certificate must say: the signer, the node and (serving only)
/// the names it is reached by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Who signs it.
    pub signer: Signer,
    /// The node name.
    pub node_name: String,
    /// DNS SANs (serving only).
    pub dns_names: Vec<String>,
    /// IP SANs (serving only).
    pub ip_addresses: Vec<IpAddr>,
}

impl Template {
    /// The client certificate of node `node_name`.
    pub fn client(node_name: &str) -> Template {
        Template {
            signer: Signer::KubeletClient,
            node_name: node_name.to_owned(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    /// The serving certificate of node `node_name`, for these names and
    /// addresses (unspecified addresses and duplicates are left out).
    pub fn serving(node_name: &str, dns_names: &[String], ip_addresses: &[IpAddr]) -> Template {
        let mut dns: Vec<String> = Vec::new();
        for name in dns_names.iter().filter(|n| !n.is_empty()) {
            if !dns.contains(name) {
                dns.push(name.clone());
            }
        }
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in ip_addresses.iter().filter(|ip| !ip.is_unspecified()) {
            if !ips.contains(ip) {
                ips.push(*ip);
            }
        }
        Template { signer: Signer::KubeletServing, node_name: node_name.to_owned(), dns_names: dns, ip_addresses: ips }
    }

    /// `system:node:<name>`.
    pub fn common_name(&self) -> String {
        format!("{NODE_USER_PREFIX}{}", self.node_name)
    }

    /// Whether `cert` still says what this template asks (upstream
    /// `certSatisfiesTemplate`: same CN, and every requested org, DNS name
    /// and IP present; extra ones do not matter).
    pub fn is_satisfied_by(&self, cert: &crate::Certificate) -> bool {
        cert.common_name() == Some(self.common_name().as_str())
            && cert.organizations().iter().any(|o| o == NODES_GROUP)
            && self.dns_names.iter().all(|d| cert.dns_names().contains(d))
            && self.ip_addresses.iter().all(|ip| cert.ip_addresses().contains(ip))
    }
}

/// A PKCS#10 request and the key it was made with.
#[derive(Clone)]
pub struct Request {
    /// Who signs it.
    pub signer: Signer,
    /// The CSR, PEM.
    pub csr_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// `spec.usages`.
    pub usages: Vec<&'static str>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request").field("signer", &self.signer).field("usages", &self.usages).finish_non_exhaustive()
    }
}

/// A fresh ECDSA P-256 key.
///
/// # Errors
///
/// [`Error::Generate`].
pub fn generate_key() -> Result<KeyPair> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(Error::Generate)
}

/// The request for `template`, signed with `key`.
///
/// # Errors
///
/// [`Error::Generate`] (e.g. a DNS name rcgen refuses).
pub fn request(template: &Template, key: &KeyPair) -> Result<Request> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(Error::Generate)?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, template.common_name());
    subject.push(DnType::OrganizationName, NODES_GROUP);
    params.distinguished_name = subject;
    for name in &template.dns_names {
        let name = name.clone().try_into().map_err(Error::Generate)?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params.subject_alt_names.extend(template.ip_addresses.iter().copied().map(SanType::IpAddress));
    let csr = params.serialize_request(key).map_err(Error::Generate)?;
    Ok(Request {
        signer: template.signer,
        csr_pem: csr.pem().map_err(Error::Generate)?,
        key_pem: key.serialize_pem(),
        usages: template.signer.usages(KeyKind::of(key)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::CertificateSigningRequestParams;

    fn parsed(request: &Request) -> CertificateSigningRequestParams {
        CertificateSigningRequestParams::from_pem(&request.csr_pem).unwrap()
    }

    fn subject(params: &CertificateSigningRequestParams) -> Vec<(String, String)> {
        params
            .params
            .distinguished_name
            .iter()
            .map(|(ty, value)| {
                let value = match value {
                    rcgen::DnValue::Utf8String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                (format!("{ty:?}"), value)
            })
            .collect()
    }

    #[test]
    fn client_request_names_the_node_and_nothing_else() {
        let key = generate_key().unwrap();
        let request = request(&Template::client("wasm-1"), &key).unwrap();
        assert_eq!(request.signer.name(), "kubernetes.io/kube-apiserver-client-kubelet");
        assert_eq!(request.usages, ["digital signature", "client auth"]);
        let csr = parsed(&request);
        let subject = subject(&csr);
        assert!(subject.contains(&("CommonName".into(), "system:node:wasm-1".into())), "{subject:?}");
        assert!(subject.contains(&("OrganizationName".into(), "system:nodes".into())), "{subject:?}");
        assert_eq!(subject.len(), 2);
        assert!(csr.params.subject_alt_names.is_empty(), "no SANs in a client CSR");
        assert!(request.key_pem.contains("PRIVATE KEY"));
        assert_eq!(KeyKind::of(&key), KeyKind::Ecdsa);
    }

    #[test]
    fn serving_request_carries_the_node_names() {
        let ips = [IpAddr::from([10, 0, 0, 5]), IpAddr::from([0, 0, 0, 0]), IpAddr::from([10, 0, 0, 5])];
        let template = Template::serving("wasm-1", &["wasm-1".into(), "wasm-1".into(), String::new()], &ips);
        assert_eq!(template.ip_addresses, [IpAddr::from([10, 0, 0, 5])]);
        let request = request(&template, &generate_key().unwrap()).unwrap();
        assert_eq!(request.signer.name(), "kubernetes.io/kubelet-serving");
        assert_eq!(request.usages, ["digital signature", "server auth"]);
        let csr = parsed(&request);
        assert!(subject(&csr).contains(&("CommonName".into(), "system:node:wasm-1".into())));
        let sans: Vec<String> = csr.params.subject_alt_names.iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(sans.len(), 2, "{sans:?}");
        assert!(sans[0].contains("wasm-1") && sans[1].contains("10.0.0.5"), "{sans:?}");
    }

    #[test]
    fn rsa_keys_add_key_encipherment() {
        assert_eq!(
            Signer::KubeletClient.usages(KeyKind::Rsa),
            ["digital signature", "key encipherment", "client auth"]
        );
        assert_eq!(
            Signer::KubeletServing.usages(KeyKind::Rsa),
            ["digital signature", "key encipherment", "server auth"]
        );
        assert_eq!(Signer::KubeletServing.usages(KeyKind::Other), ["digital signature", "server auth"]);
    }
}
