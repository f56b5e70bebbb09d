//! A throwaway PKI: one cluster CA, and the certificates and keys every
//! component needs, written as PEM files under `<dir>/pki`.
//!
//! Keys are ECDSA P-256 (the apiserver, etcd-less loopback TLS and the
//! service-account signer all accept them), so no RSA key generation is needed.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::process::write_file;
use crate::{Error, Result};

/// How long the CA and every certificate minted from it stay valid.
const VALIDITY: Duration = Duration::days(365);

/// Paths of one certificate and its key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8), mode 0600.
    pub key: PathBuf,
}

/// What a certificate is for.
#[derive(Debug, Clone)]
pub enum Usage {
    /// A client certificate with this common name and organizations (groups).
    Client {
        /// Becomes the Kubernetes user name.
        cn: String,
        /// Become the Kubernetes groups.
        orgs: Vec<String>,
    },
    /// A serving certificate for these DNS names and IP addresses.
    Server {
        /// Subject common name.
        cn: String,
        /// DNS SANs.
        dns: Vec<String>,
        /// IP SANs.
        ips: Vec<IpAddr>,
    },
}

/// The cluster CA, able to sign more certificates.
pub struct Ca {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Ca {
    /// Creates a new CA in `dir` (`ca.crt`, `ca.key`), replacing any old one.
    pub fn create(dir: &Path) -> Result<Self> {
        let key = KeyPair::generate().map_err(Error::Pki)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(Error::Pki)?;
        params.distinguished_name = name("wasmlet-testbed-ca", &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut params);
        let cert = params.self_signed(&key).map_err(Error::Pki)?;
        write_file(&dir.join("ca.crt"), cert.pem().as_bytes())?;
        write_private(&dir.join("ca.key"), &key.serialize_pem())?;
        Ok(Self { dir: dir.to_owned(), issuer: Issuer::new(params, key) })
    }

    /// Loads the CA that [`Ca::create`] wrote to `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cert = read(&dir.join("ca.crt"))?;
        let key = KeyPair::from_pem(&read(&dir.join("ca.key"))?).map_err(Error::Pki)?;
        let issuer = Issuer::from_ca_cert_pem(&cert, key).map_err(Error::Pki)?;
        Ok(Self { dir: dir.to_owned(), issuer })
    }

    /// The CA certificate file.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The CA private key file.
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// Mints a certificate signed by this CA, written as `<stem>.crt` and
    /// `<stem>.key` in `out`.
    pub fn mint(&self, out: &Path, stem: &str, usage: &Usage) -> Result<CertFiles> {
        let key = KeyPair::generate().map_err(Error::Pki)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(Error::Pki)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        match usage {
            Usage::Client { cn, orgs } => {
                params.distinguished_name = name(cn, orgs);
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            Usage::Server { cn, dns, ips } => {
                params.distinguished_name = name(cn, &[]);
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                for d in dns {
                    let d = d.clone().try_into().map_err(Error::Pki)?;
                    params.subject_alt_names.push(SanType::DnsName(d));
                }
                params.subject_alt_names.extend(ips.iter().copied().map(SanType::IpAddress));
            }
        }
        validity(&mut params);
        let cert = params.signed_by(&key, &self.issuer).map_err(Error::Pki)?;
        let files = CertFiles { cert: out.join(format!("{stem}.crt")), key: out.join(format!("{stem}.key")) };
        write_file(&files.cert, cert.pem().as_bytes())?;
        write_private(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

/// Writes a fresh ECDSA key pair for service-account tokens: `sa.key` (private)
/// and `sa.pub` (public).
pub fn service_account_keys(dir: &Path) -> Result<CertFiles> {
    let key = KeyPair::generate().map_err(Error::Pki)?;
    let files = CertFiles { cert: dir.join("sa.pub"), key: dir.join("sa.key") };
    write_file(&files.cert, key.public_key_pem().as_bytes())?;
    write_private(&files.key, &key.serialize_pem())?;
    Ok(files)
}

/// The loopback SANs every serving certificate of the test bed carries.
pub fn loopback_sans() -> (Vec<String>, Vec<IpAddr>) {
    (vec!["localhost".to_owned()], vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])
}

fn name(cn: &str, orgs: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    // rcgen keeps one value per attribute type; Kubernetes identities here need
    // at most one group.
    if let Some(org) = orgs.first() {
        dn.push(DnType::OrganizationName, org.as_str());
    }
    dn
}

fn validity(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    // Back-date a little so that clocks a few seconds apart agree.
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + VALIDITY;
}

fn write_private(path: &Path, pem: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    write_file(path, pem.as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| Error::Io { path: path.to_owned(), source })
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })
}
