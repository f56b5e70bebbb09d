//! Talking to a node's kubelet API directly, as a hostile or a legitimate
//! client would: raw HTTP/1.1 over rustls (the request line goes out
//! exactly as given, so path-traversal attempts are not normalized away),
//! with an optional client certificate and bearer token; and certificates
//! to present: the cluster CA's, an expired one, another CA's.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

/// A client certificate and its key.
#[derive(Debug)]
pub struct ClientIdentity {
    /// DER certificate.
    pub cert: CertificateDer<'static>,
    /// Its key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity { cert: self.cert.clone(), key: self.key.clone_key() }
    }
}

impl ClientIdentity {
    /// Reads a PEM certificate and key.
    pub fn from_files(cert: &Path, key: &Path) -> anyhow::Result<ClientIdentity> {
        let cert = CertificateDer::from_pem_file(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
        Ok(ClientIdentity { cert, key })
    }

    /// A certificate for `cn` (group `org`) signed by the CA in `ca_cert`/`ca_key`;
    /// `expired` makes one whose validity ended a day ago.
    pub fn signed_by(ca_cert: &Path, ca_key: &Path, cn: &str, org: &str, expired: bool) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(&std::fs::read_to_string(ca_key)?)?;
        let issuer = Issuer::from_ca_cert_pem(&std::fs::read_to_string(ca_cert)?, key)?;
        leaf(&issuer, cn, org, expired)
    }

    /// A certificate for `cn` from a CA nobody trusts.
    pub fn from_another_ca(cn: &str, org: &str) -> anyhow::Result<ClientIdentity> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "not-the-cluster-ca");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        leaf(&issuer, cn, org, false)
    }
}

fn leaf<S: rcgen::SigningKey>(
    issuer: &Issuer<'_, S>,
    cn: &str,
    org: &str,
    expired: bool,
) -> anyhow::Result<ClientIdentity> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.distinguished_name.push(DnType::OrganizationName, org);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    if expired {
        params.not_before = now - time::Duration::days(10);
        params.not_after = now - time::Duration::days(1);
    } else {
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(1);
    }
    let cert = params.signed_by(&key, issuer)?;
    Ok(ClientIdentity {
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

/// A response: status code and body (de-chunked if needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, lossily UTF-8.
    pub body: String,
}

/// A kubelet API at `addr` whose serving certificate chains to `server_ca`.
#[derive(Debug, Clone)]
pub struct KubeletApi {
    addr: SocketAddr,
    server_ca: Vec<CertificateDer<'static>>,
}

impl KubeletApi {
    /// The API of a node at `ip:port`, verified against the PEM CA `ca`.
    pub fn new(ip: IpAddr, port: u16, ca: &Path) -> anyhow::Result<KubeletApi> {
        let server_ca = CertificateDer::pem_file_iter(ca)?.collect::<Result<Vec<_>, _>>()?;
        Ok(KubeletApi { addr: SocketAddr::new(ip, port), server_ca })
    }

    /// Sends `method target` (the raw request target) with an optional
    /// client certificate and bearer token. An error means the TLS
    /// handshake or the connection failed.
    pub async fn request(
        &self,
        method: &str,
        target: &str,
        identity: Option<&ClientIdentity>,
        token: Option<&str>,
    ) -> std::io::Result<Response> {
        let api = self.clone();
        let (method, target) = (method.to_owned(), target.to_owned());
        let identity = identity.cloned();
        let token = token.map(str::to_owned);
        tokio::task::spawn_blocking(move || api.blocking(&method, &target, identity, token.as_deref()))
            .await
            .map_err(std::io::Error::other)?
    }

    /// `GET target`.
    pub async fn get(
        &self,
        target: &str,
        identity: Option<&ClientIdentity>,
        token: Option<&str>,
    ) -> std::io::Result<Response> {
        self.request("GET", target, identity, token).await
    }

    fn blocking(
        &self,
        method: &str,
        target: &str,
        identity: Option<ClientIdentity>,
        token: Option<&str>,
    ) -> std::io::Result<Response> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in &self.server_ca {
            roots.add(ca.clone()).map_err(std::io::Error::other)?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots);
        let config = match identity {
            Some(id) => builder.with_client_auth_cert(vec![id.cert], id.key).map_err(std::io::Error::other)?,
            None => builder.with_no_client_auth(),
        };
        let name = ServerName::IpAddress(self.addr.ip().into());
        let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let socket = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        socket.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut tls = rustls::StreamOwned::new(conn, socket);
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("Content-Length: 0\r\n\r\n");
        tls.write_all(head.as_bytes())?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e),
        }
        parse(&raw)
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {:?}", String::from_utf8_lossy(&raw))))
    }
}

fn parse(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding: chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Some(Response { status, body })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}
