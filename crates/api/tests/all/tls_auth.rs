//! Client certificates over real TLS: a certificate of the client CA
//! authenticates; none gets 401; another CA's or an expired one fails the
//! handshake; a serving-certificate reload keeps the client CA and open
//! connections.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio_util::sync::CancellationToken;
use wasmlet_api::{Auth, Server, ServerConfig};

use crate::support::{Fake, WAIT};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca { issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap() }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A leaf for `cn`; `expired` makes one that ended yesterday.
    fn leaf(&self, cn: &str, sans: Vec<String>, expired: bool) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(10);
            params.not_after = now - time::Duration::days(1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
    }

    fn write_leaf(&self, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".into()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

type Identity = Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>;

/// `GET path` with an optional client certificate; the raw response.
fn https_get(
    addr: SocketAddr,
    server_ca: CertificateDer<'static>,
    identity: Identity,
    path: &str,
) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca).map_err(std::io::Error::other)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).map_err(std::io::Error::other)?,
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(WAIT))?;
    let mut tls = rustls::StreamOwned::new(conn, socket);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

async fn get(addr: SocketAddr, ca: CertificateDer<'static>, identity: Identity, path: &str) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || https_get(addr, ca, identity, &path)).await.unwrap()
}

#[tokio::test]
async fn client_certificates_are_verified_at_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, other) = (Ca::new(), Ca::new());
    let (cert, key) = cluster.write_leaf(dir.path(), "serving");
    let client_ca = dir.path().join("client-ca.crt");
    std::fs::write(&client_ca, cluster.issuer.pem()).unwrap();
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), &cert, &key);
    config.client_ca = Some(client_ca);
    config.auth = Some(Arc::new(Auth::new("node-1")));
    let server = Server::bind(config, Arc::new(Fake::new())).await.unwrap();
    let (addr, tls) = (server.local_addr(), server.tls());
    let cancel = CancellationToken::new();
    let serving = tokio::spawn(server.run(cancel.clone()));

    let ok = get(addr, cluster.der(), Some(cluster.leaf("kube-apiserver", vec![], false)), "/healthz").await.unwrap();
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("ok"), "{ok}");
    let none = get(addr, cluster.der(), None, "/healthz").await.unwrap();
    assert!(none.starts_with("HTTP/1.1 401 Unauthorized\r\n") && none.ends_with("\r\n\r\nUnauthorized\n"), "{none}");
    let foreign = get(addr, cluster.der(), Some(other.leaf("kube-apiserver", vec![], false)), "/healthz").await;
    assert!(foreign.is_err() || foreign.as_ref().is_ok_and(|r| r.is_empty()), "another CA: {foreign:?}");
    let expired = get(addr, cluster.der(), Some(cluster.leaf("kube-apiserver", vec![], true)), "/healthz").await;
    assert!(expired.is_err() || expired.as_ref().is_ok_and(|r| r.is_empty()), "expired: {expired:?}");

    // A new serving certificate: the client CA still applies.
    let (cert2, key2) = cluster.write_leaf(dir.path(), "serving2");
    tls.reload(&cert2, &key2).await.unwrap();
    let ok = get(addr, cluster.der(), Some(cluster.leaf("admin", vec![], false)), "/healthz").await.unwrap();
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    let foreign = get(addr, cluster.der(), Some(other.leaf("admin", vec![], false)), "/healthz").await;
    assert!(foreign.is_err() || foreign.as_ref().is_ok_and(|r| r.is_empty()), "another CA after reload: {foreign:?}");

    cancel.cancel();
    assert!(tokio::time::timeout(WAIT, serving).await.unwrap().unwrap().is_ok());
}

/// Reads one HTTP/1.1 response with a `content-length` body.
fn read_response(tls: &mut impl Read) -> String {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        tls.read_exact(&mut byte).unwrap();
        raw.push(byte[0]);
    }
}

#[tokio::test]
async fn a_serving_certificate_reload_keeps_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Ca::new();
    let (cert, key) = cluster.write_leaf(dir.path(), "first");
    let client_ca = dir.path().join("client-ca.crt");
    std::fs::write(&client_ca, cluster.issuer.pem()).unwrap();
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), &cert, &key);
    config.client_ca = Some(client_ca);
    config.auth = Some(Arc::new(Auth::new("node-1")));
    let server = Server::bind(config, Arc::new(Fake::new())).await.unwrap();
    let (addr, tls) = (server.local_addr(), server.tls());
    let cancel = CancellationToken::new();
    let serving = tokio::spawn(server.run(cancel.clone()));
    let (second_cert, second_key) = cluster.write_leaf(dir.path(), "second");
    let identity = cluster.leaf("kube-apiserver", vec![], false);
    let server_ca = cluster.der();

    let outcome = tokio::task::spawn_blocking(move || {
        let connect = |identity: (CertificateDer<'static>, PrivateKeyDer<'static>)| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(server_ca.clone()).unwrap();
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(vec![identity.0], identity.1)
                .unwrap();
            let conn =
                rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
            let socket = TcpStream::connect(addr).unwrap();
            socket.set_read_timeout(Some(WAIT)).unwrap();
            rustls::StreamOwned::new(conn, socket)
        };
        let get = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let mut open = connect((identity.0.clone(), identity.1.clone_key()));
        open.write_all(get.as_bytes()).unwrap();
        let before = read_response(&mut open);
        let first_leaf = open.conn.peer_certificates().unwrap()[0].clone();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(tls.reload(&second_cert, &second_key)).unwrap();
        // The open connection goes on, with its session.
        open.write_all(get.as_bytes()).unwrap();
        let after = read_response(&mut open);
        // A new connection gets the new certificate.
        let mut fresh = connect(identity);
        fresh.write_all(get.as_bytes()).unwrap();
        let new = read_response(&mut fresh);
        let second_leaf = fresh.conn.peer_certificates().unwrap()[0].clone();
        (before, after, new, first_leaf != second_leaf)
    })
    .await
    .unwrap();
    let (before, after, new, changed) = outcome;
    for response in [&before, &after, &new] {
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n") && response.ends_with("ok"), "{response}");
    }
    assert!(changed, "new connections are served with the new certificate");
    cancel.cancel();
    assert!(tokio::time::timeout(WAIT, serving).await.unwrap().unwrap().is_ok());
}
