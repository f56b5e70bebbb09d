//! `--tls-min-version` and `--tls-cipher-suites` on the real server: what
//! a client that offers only what the policy leaves out gets.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use rcgen::KeyPair;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_util::sync::CancellationToken;
use wasmlet_api::{Server, ServerConfig, TlsPolicy};

use crate::support::{Fake, WAIT};
use crate::tls::pki;

/// Completes a handshake offering only `versions` and `suites` (all of the
/// provider's when empty); the negotiated version and suite, or the error.
fn handshake(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    suites: &[rustls::SupportedCipherSuite],
) -> Result<(rustls::ProtocolVersion, rustls::CipherSuite), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if !suites.is_empty() {
        provider.cipher_suites = suites.to_vec();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let mut socket = TcpStream::connect(addr).unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut socket).map_err(|e| e.to_string())?;
    }
    Ok((conn.protocol_version().unwrap(), conn.negotiated_cipher_suite().unwrap().suite()))
}

async fn serve(policy: TlsPolicy) -> (SocketAddr, CertificateDer<'static>, CancellationToken, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path(), "policy", KeyPair::generate().unwrap());
    let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), &pki.cert, &pki.key);
    config.tls_policy = policy;
    let server = Server::bind(config, Arc::new(Fake::new())).await.unwrap();
    let addr = server.local_addr();
    let cancel = CancellationToken::new();
    tokio::spawn(server.run(cancel.clone()));
    (addr, pki.ca, cancel, dir)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test]
async fn tls13_minimum_refuses_tls12_clients() {
    let (addr, ca, cancel, _dir) = serve(TlsPolicy::parse(Some("VersionTLS13"), &[]).unwrap()).await;
    let ca2 = ca.clone();
    let old = blocking(move || handshake(addr, &ca2, &[&rustls::version::TLS12], &[])).await;
    assert!(old.is_err(), "a TLS 1.2 client got in: {old:?}");
    let new = blocking(move || handshake(addr, &ca, &[&rustls::version::TLS13], &[])).await.unwrap();
    assert_eq!(new.0, rustls::ProtocolVersion::TLSv1_3);
    cancel.cancel();
}

#[tokio::test]
async fn listed_cipher_suites_are_the_only_tls12_ones() {
    use rustls::crypto::aws_lc_rs::cipher_suite as s;
    let policy = TlsPolicy::parse(None, &["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".to_owned()]).unwrap();
    let (addr, ca, cancel, _dir) = serve(policy).await;
    let ca2 = ca.clone();
    let other = blocking(move || {
        handshake(addr, &ca2, &[&rustls::version::TLS12], &[s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256])
    })
    .await;
    assert!(other.is_err(), "a suite left out was negotiated: {other:?}");
    let listed = blocking(move || {
        handshake(addr, &ca, &[&rustls::version::TLS12], &[s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384])
    })
    .await
    .unwrap();
    assert_eq!(
        listed,
        (rustls::ProtocolVersion::TLSv1_2, rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
    );
    cancel.cancel();
}
