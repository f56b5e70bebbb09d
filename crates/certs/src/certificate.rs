//! [`Certificate`]: a PEM certificate chain with its private key, and what
//! the rest of the crate reads from the leaf (validity, serial, subject,
//! SANs), parsed with x509-parser.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{Error, Result};

/// A certificate chain and its key, as issued for one CSR.
#[derive(Clone)]
pub struct Certificate {
    path: Option<PathBuf>,
    cert_pem: String,
    key_pem: String,
    serial: String,
    not_before: SystemTime,
    not_after: SystemTime,
    common_name: Option<String>,
    organizations: Vec<String>,
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("path", &self.path)
            .field("serial", &self.serial)
            .field("common_name", &self.common_name)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Parses a PEM chain (leaf first) and its PEM private key; `what`
    /// names them in errors.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCertificate`] when there is no certificate or key,
    /// or the leaf does not parse.
    pub fn from_pem(cert_pem: &str, key_pem: &str, what: &str) -> Result<Certificate> {
        let invalid = |reason: String| Error::InvalidCertificate { what: what.to_owned(), reason };
        let (certs, _) = split_pem(cert_pem);
        let (_, keys) = split_pem(key_pem);
        let leaf_pem = certs.first().ok_or_else(|| invalid("no CERTIFICATE block".into()))?;
        let key = keys.first().ok_or_else(|| invalid("no PRIVATE KEY block".into()))?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let (_, leaf) = X509Certificate::from_der(&pem.contents).map_err(|e| invalid(e.to_string()))?;
        let validity = leaf.validity();
        let time = |t: x509_parser::time::ASN1Time| {
            u64::try_from(t.timestamp())
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        let subject = leaf.subject();
        let text = |attr: Result<&str, _>| attr.ok().map(str::to_owned);
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = leaf.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => ip_addresses.extend(ip(bytes)),
                    _ => {}
                }
            }
        }
        Ok(Certificate {
            path: None,
            cert_pem: certs.concat(),
            key_pem: key.clone(),
            serial: leaf.tbs_certificate.raw_serial_as_string().replace(':', ""),
            not_before: time(validity.not_before),
            not_after: time(validity.not_after),
            common_name: subject.iter_common_name().next().and_then(|cn| text(cn.as_str())),
            organizations: subject.iter_organization().filter_map(|o| text(o.as_str())).collect(),
            dns_names,
            ip_addresses,
        })
    }

    /// Parses one PEM holding both the chain and the key (the
    /// `kubelet-*-current.pem` format).
    ///
    /// # Errors
    ///
    /// See [`Certificate::from_pem`].
    pub fn from_combined_pem(pem: &str, what: &str) -> Result<Certificate> {
        Certificate::from_pem(pem, pem, what)
    }

    /// The same certificate, recorded as stored at `path`.
    #[must_use]
    pub fn at(mut self, path: PathBuf) -> Certificate {
        self.path = Some(path);
        self
    }

    /// The file holding chain and key, for certificates read from or
    /// written to a store.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// The chain, PEM, leaf first.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Chain then key, as the store writes them.
    pub fn combined_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key_pem)
    }

    /// The leaf's serial number, lower-case hex without separators.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Start of validity.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The subject's common name.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The subject's organizations (Kubernetes groups).
    pub fn organizations(&self) -> &[String] {
        &self.organizations
    }

    /// DNS SANs.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// IP SANs.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// Whether `now` is within the validity period.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

fn ip(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Splits PEM text into its certificate blocks and its private-key blocks
/// (each block with its BEGIN/END lines and a final newline); anything else
/// is dropped.
pub(crate) fn split_pem(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut certs, mut keys) = (Vec::new(), Vec::new());
    let mut block: Option<(String, String)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
            block = Some((label.to_owned(), format!("{line}\n")));
        } else if let Some((label, mut body)) = block.take() {
            body.push_str(line);
            body.push('\n');
            if line == format!("-----END {label}-----") {
                match label.as_str() {
                    "CERTIFICATE" => certs.push(body),
                    l if l.ends_with("PRIVATE KEY") => keys.push(body),
                    _ => {}
                }
            } else {
                block = Some((label, body));
            }
        }
    }
    (certs, keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    fn self_signed(sans: Vec<SanType>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "system:node:n1");
        dn.push(DnType::OrganizationName, "system:nodes");
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(2_000_000).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn reads_subject_validity_and_sans() {
        let sans = vec![SanType::DnsName("n1".try_into().unwrap()), SanType::IpAddress([10, 0, 0, 5].into())];
        let (cert, key) = self_signed(sans);
        let parsed = Certificate::from_pem(&cert, &key, "test").unwrap();
        assert_eq!(parsed.common_name(), Some("system:node:n1"));
        assert_eq!(parsed.organizations(), ["system:nodes"]);
        assert_eq!(parsed.dns_names(), ["n1"]);
        assert_eq!(parsed.ip_addresses(), [IpAddr::from([10, 0, 0, 5])]);
        assert_eq!(parsed.not_before(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000));
        assert_eq!(parsed.not_after(), SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000));
        assert!(parsed.is_valid_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000)));
        assert!(!parsed.is_valid_at(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000)));
        assert!(!parsed.serial().is_empty() && parsed.serial().chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn combined_pem_round_trips() {
        let (cert, key) = self_signed(Vec::new());
        let parsed = Certificate::from_pem(&cert, &key, "test").unwrap();
        let again = Certificate::from_combined_pem(&parsed.combined_pem(), "combined").unwrap();
        assert_eq!(again.serial(), parsed.serial());
        assert_eq!(again.key_pem(), parsed.key_pem());
        assert_eq!(split_pem(&parsed.combined_pem()).0.len(), 1);
        assert!(!format!("{again:?}").contains("PRIVATE KEY"), "Debug shows no key");
    }

    #[test]
    fn missing_parts_are_errors() {
        let (cert, key) = self_signed(Vec::new());
        assert!(Certificate::from_pem(&cert, "", "x").is_err());
        assert!(Certificate::from_pem(&key, &key, "x").is_err());
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(Certificate::from_pem(garbage, &key, "x").is_err());
    }
}
