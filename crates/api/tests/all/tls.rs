//! The real server: TLS with a test CA, health over HTTPS, a follow that
//! ends at shutdown, certificate reload, and startup errors.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_util::sync::CancellationToken;
use wasmlet_api::{Error, Server, ServerConfig, TlsError};

use crate::support::{Fake, WAIT, write_log};

/// A test CA and a serving certificate for `localhost` it signed, written
/// as PEM files.
pub(crate) struct Pki {
    pub(crate) ca: CertificateDer<'static>,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

pub(crate) fn pki(dir: &Path, name: &str, key: KeyPair) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let leaf = params.signed_by(&key, &ca).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    Pki { ca: ca.der().clone(), cert, key: key_path }
}

/// `GET path` over HTTPS/1.1 trusting only `ca`; returns the raw response.
fn https_get(addr: SocketAddr, ca: &CertificateDer<'static>, path: &str) -> std::io::Result<String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).map_err(std::io::Error::other)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let socket = TcpStream::connect(addr)?;
    socket.set_read_timeout(Some(WAIT))?;
    let mut tls = rustls::StreamOwned::new(conn, socket);
    write!(tls, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // The server may close without a TLS close_notify.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn get(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    path: &str,
) -> impl Future<Output = std::io::Result<String>> + Send + 'static {
    let (ca, path) = (ca.clone(), path.to_owned());
    async move { tokio::task::spawn_blocking(move || https_get(addr, &ca, &path)).await.unwrap() }
}

fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[tokio::test]
async fn serves_https_and_shuts_down_gracefully() {
    let mut fake = Fake::new();
    let (log, _, _running) = fake.add("default", "web", "app", false);
    let _file = write_log(&log, "hello from the guest\n").await;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path(), "ec", KeyPair::generate().unwrap());
    let mut calls = fake.calls.subscribe();
    let config = ServerConfig::new(localhost(), &pki.cert, &pki.key);
    let server = Server::bind(config, Arc::new(fake)).await.unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let cancel = CancellationToken::new();
    let serving = tokio::spawn(server.run(cancel.clone()));

    let response = get(addr, &pki.ca, "/healthz").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");

    // A follow is in flight when shutdown starts: it ends, with its data.
    let follow = get(addr, &pki.ca, "/containerLogs/default/web/app?follow=true");
    let follow = tokio::spawn(follow);
    tokio::time::timeout(WAIT, calls.wait_for(|n| *n == 1)).await.unwrap().unwrap();
    cancel.cancel();
    let response = tokio::time::timeout(WAIT, follow).await.unwrap().unwrap().unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("transfer-encoding: chunked"), "{response}");
    assert!(response.contains("hello from the guest\n"), "{response}");

    // Well before the 5 s drain timeout.
    let result =
        tokio::time::timeout(std::time::Duration::from_secs(4), serving).await.expect("the server stops").unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

#[tokio::test]
async fn rsa_keys_and_certificate_reload() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let first = pki(dir.path(), "rsa", rsa);
    let config = ServerConfig::new(localhost(), &first.cert, &first.key);
    let server = Server::bind(config, Arc::new(Fake::new())).await.unwrap();
    let (addr, tls) = (server.local_addr(), server.tls());
    let cancel = CancellationToken::new();
    let serving = tokio::spawn(server.run(cancel.clone()));
    assert!(get(addr, &first.ca, "/healthz").await.unwrap().ends_with("ok"));

    let second = pki(dir.path(), "second", KeyPair::generate().unwrap());
    tls.reload(&second.cert, &second.key).await.unwrap();
    assert!(get(addr, &second.ca, "/healthz").await.unwrap().ends_with("ok"));
    assert!(get(addr, &first.ca, "/healthz").await.is_err(), "the old CA no longer matches");
    // A failed reload keeps the current certificate.
    assert!(tls.reload(&second.cert, &dir.path().join("missing")).await.is_err());
    assert!(get(addr, &second.ca, "/healthz").await.unwrap().ends_with("ok"));

    cancel.cancel();
    let result = tokio::time::timeout(WAIT, serving).await.unwrap().unwrap();
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good", KeyPair::generate().unwrap());
    let bind = |cert: &Path, key: &Path, addr: SocketAddr| {
        let config = ServerConfig::new(addr, cert, key);
        Server::bind(config, Arc::new(Fake::new()))
    };

    let missing = dir.path().join("missing.crt");
    let err = bind(&missing, &good.key, localhost()).await.unwrap_err();
    assert!(matches!(err, Error::Tls(TlsError::Read { what: "certificate", .. })), "{err:?}");

    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key").unwrap();
    let err = bind(&good.cert, &garbage, localhost()).await.unwrap_err();
    assert!(matches!(err, Error::Tls(TlsError::Pem { what: "key", .. })), "{err:?}");

    let err = bind(&garbage, &good.key, localhost()).await.unwrap_err();
    assert!(matches!(err, Error::Tls(TlsError::NoCertificate(_))), "{err:?}");

    let other = pki(dir.path(), "other", KeyPair::generate().unwrap());
    let err = bind(&good.cert, &other.key, localhost()).await.unwrap_err();
    assert!(matches!(err, Error::Tls(TlsError::Rustls { .. })), "{err:?}");

    let taken = std::net::TcpListener::bind(localhost()).unwrap();
    let err = bind(&good.cert, &good.key, taken.local_addr().unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    let chain: Vec<String> =
        std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source()).map(|e| e.to_string()).collect();
    assert!(chain[0].starts_with("binding 127.0.0.1:"), "{chain:?}");
    assert_eq!(chain.len(), 2, "{chain:?}");
}
