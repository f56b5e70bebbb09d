use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::http::{dechunk, parse_response};
use super::*;

const BLOB: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A stand-in registry: blobs answer `BLOB` (chunked for `/chunked/`),
/// everything else a small JSON manifest.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let answer = if head.contains("/chunked/") {
                    let mut a = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                    a.extend_from_slice(format!("{:x}\r\n", 10).as_bytes());
                    a.extend_from_slice(&BLOB[..10]);
                    a.extend_from_slice(format!("\r\n{:x};ext=1\r\n", BLOB.len() - 10).as_bytes());
                    a.extend_from_slice(&BLOB[10..]);
                    a.extend_from_slice(b"\r\n0\r\n\r\n");
                    a
                } else if head.contains("/blobs/") {
                    let mut a = format!(
                        "HTTP/1.1 200 OK\r\nDocker-Content-Digest: sha256:x\r\nContent-Length: {}\r\n\r\n",
                        BLOB.len()
                    )
                    .into_bytes();
                    a.extend_from_slice(BLOB);
                    a
                } else {
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_vec()
                };
                let _ = conn.write_all(&answer).await;
            });
        }
    });
    addr
}

async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Vec<u8>> {
    request(addr, "GET", path, "").await
}

async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect(addr).await?;
    let req = format!("{method} {path} HTTP/1.1\r\nHost: r\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    conn.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await?;
    Ok(out)
}

fn parsed(raw: &[u8]) -> http::Response {
    parse_response(raw, false).unwrap()
}

#[test]
fn modes_parse_and_print() {
    for mode in Mode::ALL {
        assert_eq!(mode.to_string().parse::<Mode>().unwrap(), mode);
    }
    assert_eq!("5xx=502".parse::<Mode>().unwrap(), Mode::ServerError(502));
    assert_eq!(Mode::ServerError(502).to_string(), "5xx=502");
    assert_eq!(Mode::ServerError(503).label(), "5xx-503");
    assert!("5xx=404".parse::<Mode>().is_err());
    assert!("slow".parse::<Mode>().unwrap_err().to_string().contains("flap-401"));
}

#[test]
fn dechunks() {
    assert_eq!(dechunk(b"3\r\nabc\r\n1;x=y\r\nd\r\n0\r\n\r\n").unwrap(), b"abcd");
    assert!(dechunk(b"5\r\nab").is_err());
    assert!(dechunk(b"zz\r\n").is_err());
}

#[tokio::test]
async fn passes_through_and_dechunks() {
    let proxy = RegistryProxy::start(upstream().await, Mode::Pass).await.unwrap();
    let r = parsed(&get(proxy.addr(), "/v2/app/blobs/sha256:1").await.unwrap());
    assert_eq!((r.status, r.body.as_slice()), (200, BLOB));
    assert!(r.headers.iter().any(|(n, v)| n == "Docker-Content-Digest" && v == "sha256:x"));
    let r = parsed(&get(proxy.addr(), "/v2/app/chunked/1").await.unwrap());
    assert_eq!(r.body, BLOB);
    assert_eq!((proxy.faults(), proxy.passed()), (0, 2));
}

#[tokio::test]
async fn blob_faults() {
    let proxy = RegistryProxy::start(upstream().await, Mode::Truncate).await.unwrap();
    let r = parsed(&get(proxy.addr(), "/v2/app/blobs/sha256:1").await.unwrap());
    assert_eq!(r.body, &BLOB[..BLOB.len() / 2]);
    // Manifests pass.
    assert_eq!(parsed(&get(proxy.addr(), "/v2/app/manifests/v1").await.unwrap()).body, b"{}");

    proxy.set_mode(Mode::Corrupt);
    let r = parsed(&get(proxy.addr(), "/v2/app/blobs/sha256:1").await.unwrap());
    assert_eq!(r.body.len(), BLOB.len());
    assert_ne!(r.body, BLOB);
    assert_eq!(r.body.iter().zip(BLOB).filter(|(a, b)| a != b).count(), 1);

    proxy.set_mode(Mode::Reset);
    match get(proxy.addr(), "/v2/app/blobs/sha256:1").await {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        Ok(raw) => {
            // The RST may arrive after the half was read: then the body is short.
            assert!(parse_response(&raw, false).is_err(), "a reset answer must be incomplete");
        }
    }
    assert_eq!(proxy.faults(), 3);
}

#[tokio::test]
async fn trickles_one_byte_at_a_time() {
    let proxy = RegistryProxy::start(upstream().await, Mode::Trickle).await.unwrap();
    let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
    conn.write_all(b"GET /v2/app/blobs/sha256:1 HTTP/1.1\r\nHost: r\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // The head and the first byte come at once...
    while !got.windows(4).any(|w| w == b"\r\n\r\n") || got.ends_with(b"\r\n\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    // ...the rest does not come within a short time.
    let rest = tokio::time::timeout(Duration::from_millis(300), conn.read_to_end(&mut got)).await;
    assert!(rest.is_err(), "a trickled blob arrived whole: {got:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn server_errors_and_401_flaps() {
    let proxy = RegistryProxy::start(upstream().await, Mode::ServerError(503)).await.unwrap();
    let r = parsed(&get(proxy.addr(), "/v2/app/manifests/v1").await.unwrap());
    assert_eq!(r.status, 503);

    proxy.set_mode(Mode::Flap401);
    let statuses: Vec<u16> = futures_statuses(&proxy, "/v2/app/manifests/v1", 4).await;
    assert_eq!(statuses, [401, 200, 401, 200]);
    let r = parsed(&get(proxy.addr(), "/v2/app/blobs/sha256:1").await.unwrap());
    assert_eq!(r.status, 401);
    assert!(!r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("www-authenticate")));
    // The version probe is not counted.
    assert_eq!(parsed(&get(proxy.addr(), "/v2/").await.unwrap()).status, 200);

    proxy.set_mode(Mode::Pass);
    assert_eq!(parsed(&get(proxy.addr(), "/v2/app/manifests/v1").await.unwrap()).status, 200);
}

async fn futures_statuses(proxy: &RegistryProxy, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(parsed(&get(proxy.addr(), path).await.unwrap()).status);
    }
    out
}

#[tokio::test]
async fn control_endpoint_switches_modes() {
    let proxy =
        RegistryProxy::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream().await, Mode::Pass, Control::Http)
            .await
            .unwrap();
    let r = parsed(&request(proxy.addr(), "PUT", CONTROL_PATH, "trickle").await.unwrap());
    assert_eq!((r.status, r.body.as_slice()), (200, b"trickle\n".as_slice()));
    assert_eq!(proxy.mode(), Mode::Trickle);
    let r = parsed(&request(proxy.addr(), "PUT", CONTROL_PATH, "bogus").await.unwrap());
    assert_eq!(r.status, 400);
    assert_eq!(proxy.mode(), Mode::Trickle);
    let r = parsed(&get(proxy.addr(), CONTROL_PATH).await.unwrap());
    assert_eq!(r.body, b"trickle\n");

    // Without the control endpoint the path is forwarded like any other.
    let plain = RegistryProxy::start(upstream().await, Mode::Pass).await.unwrap();
    let _ = request(plain.addr(), "PUT", CONTROL_PATH, "trickle").await.unwrap();
    assert_eq!(plain.mode(), Mode::Pass);
}
