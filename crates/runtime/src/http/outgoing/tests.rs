//! The outgoing-request path (`Outgoing::send_request`: resolve, check,
//! connect, HTTP) against real listeners on loopback, with a resolver stub
//! where the test needs a name to answer differently from one call to the
//! next (DNS rebinding). 127.0.0.2 stands for an allowed outside address: the
//! node of these tests lists it as an allowed node-local exception, while
//! 127.0.0.1 (the node's loopback, where etcd would listen) stays refused.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::*;
use crate::http::state::Outgoing;
use crate::sockets::{NodeNetwork, NodePolicy, SocketPolicy};

const ALLOWED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Answers `first` to the first question and `later` to every other one.
struct Rebinding {
    first: Vec<IpAddr>,
    later: Vec<IpAddr>,
    calls: AtomicUsize,
}

impl Rebinding {
    fn new(first: &[IpAddr], later: &[IpAddr]) -> Arc<Self> {
        Arc::new(Self { first: first.to_vec(), later: later.to_vec(), calls: AtomicUsize::new(0) })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Resolve for Rebinding {
    fn resolve(&self, _host: &str) -> Resolving {
        let first = self.calls.fetch_add(1, Ordering::SeqCst) == 0;
        let ips = if first { self.first.clone() } else { self.later.clone() };
        Box::pin(async move { Ok(ips) })
    }
}

/// A resolver that never answers.
struct Silent;

impl Resolve for Silent {
    fn resolve(&self, _host: &str) -> Resolving {
        Box::pin(std::future::pending())
    }
}

/// A listener answering every request with `body`; counts connections.
struct Server {
    connections: Arc<AtomicUsize>,
}

impl Server {
    fn start(listener: TcpListener, body: &'static str) -> Self {
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0_u8; 1024];
                    // Until the end of the request head, or at once if it is not
                    // HTTP (a TLS ClientHello gets this answer as garbage).
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.first().is_none_or(u8::is_ascii_uppercase)
                    {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response =
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                    let _ = conn.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The "secret" on the node's loopback and the allowed server on 127.0.0.2,
/// on one port (as a rebinding name keeps the port), and that port.
async fn servers() -> (Server, Server, u16) {
    for _ in 0..20 {
        let secret = TcpListener::bind((LOOPBACK, 0)).await.unwrap();
        let port = secret.local_addr().unwrap().port();
        if let Ok(allowed) = TcpListener::bind((ALLOWED, port)).await {
            return (Server::start(secret, "secret"), Server::start(allowed, "allowed"), port);
        }
    }
    panic!("no port free on both 127.0.0.1 and 127.0.0.2");
}

fn hooks(resolver: Arc<dyn Resolve>) -> Outgoing {
    let policy = NodePolicy { allowed_node_local: vec![ipnet::IpNet::from(ALLOWED)], ..NodePolicy::default() };
    let node = NodeNetwork::with_addresses(policy, []);
    Outgoing { policy: Arc::new(Guard { pod: SocketPolicy::default(), node }), resolver }
}

/// Sends `GET uri` through the hooks; the status and body, or the error.
async fn get(hooks: &mut Outgoing, uri: &str, options: Option<RequestOptions>) -> Result<(u16, String), Error> {
    let body: WasiBody = Empty::new().map_err(|never: Infallible| match never {}).boxed_unsync();
    let request = http::Request::get(uri).body(body).unwrap();
    let sent = hooks.send_request(request, options, Box::new(async { Ok(()) }));
    let (response, io) = Pin::from(sent).await?;
    tokio::spawn(Pin::from(io));
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// The proof for DNS rebinding: the name is resolved once, and the request
/// reaches the address that was checked, not what the name says later.
#[tokio::test]
async fn a_rebinding_name_is_resolved_once_and_reached_where_checked() {
    let (secret, allowed, port) = servers().await;
    let resolver = Rebinding::new(&[ALLOWED], &[LOOPBACK]);
    let mut hooks = hooks(resolver.clone());
    let uri = format!("http://rebind.test:{port}/");

    let (status, body) = get(&mut hooks, &uri, None).await.expect("the allowed answer is served");
    assert_eq!((status, body.as_str()), (200, "allowed"));
    assert_eq!(resolver.calls(), 1, "the name was resolved more than once");
    assert_eq!((allowed.connections(), secret.connections()), (1, 0));

    // The same name now answers loopback: refused, and still nothing reached.
    let again = get(&mut hooks, &uri, None).await;
    assert!(matches!(again, Err(Error::DestinationIpProhibited)), "{again:?}");
    assert_eq!(resolver.calls(), 2);
    assert_eq!((allowed.connections(), secret.connections()), (1, 0));
}

#[tokio::test]
async fn one_refused_address_refuses_the_name_before_any_connection() {
    let (secret, allowed, port) = servers().await;
    let resolver = Rebinding::new(&[ALLOWED, LOOPBACK], &[ALLOWED]);
    let refused = get(&mut hooks(resolver.clone()), &format!("http://mixed.test:{port}/"), None).await;
    assert!(matches!(refused, Err(Error::DestinationIpProhibited)), "{refused:?}");
    assert_eq!(resolver.calls(), 1);
    assert_eq!((allowed.connections(), secret.connections()), (0, 0));
}

#[tokio::test]
async fn localhost_through_the_node_resolver_is_refused() {
    let (secret, _allowed, port) = servers().await;
    let mut hooks = hooks(Arc::new(SystemResolver));
    for uri in [
        format!("http://localhost:{port}/"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ] {
        let refused = get(&mut hooks, &uri, None).await;
        assert!(matches!(refused, Err(Error::DestinationIpProhibited)), "{uri}: {refused:?}");
    }
    assert_eq!(secret.connections(), 0);
    // An IP literal that is allowed goes through the same resolver.
    let (status, body) = get(&mut hooks, &format!("http://{ALLOWED}:{port}/"), None).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "allowed"));
}

#[tokio::test]
async fn resolver_failures_map_to_dns_errors() {
    let refused = get(&mut hooks(Rebinding::new(&[], &[])), "http://nothing.test/", None).await;
    assert!(
        matches!(&refused, Err(Error::DnsError { rcode: Some(r), .. }) if r == "address not available"),
        "{refused:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_resolver_times_out_with_the_connect_timeout() {
    let options = RequestOptions { connect_timeout: Some(Duration::from_secs(3)), ..RequestOptions::default() };
    let timed_out = get(&mut hooks(Arc::new(Silent)), "http://silent.test/", Some(options)).await;
    assert!(matches!(timed_out, Err(Error::DnsTimeout)), "{timed_out:?}");
}

#[tokio::test]
async fn https_speaks_tls_to_the_checked_address() {
    // A plain-HTTP server where the guest asked for https: the TLS handshake
    // fails (its "allowed" answer is no ServerHello), nothing is served.
    let (_secret, allowed, port) = servers().await;
    let failed =
        get(&mut hooks(Rebinding::new(&[ALLOWED], &[LOOPBACK])), &format!("https://tls.test:{port}/"), None).await;
    assert!(matches!(failed, Err(Error::Tls(_))), "{failed:?}");
    assert_eq!(allowed.connections(), 1);
}

#[tokio::test]
async fn a_pod_that_may_connect_nowhere_is_denied_outright() {
    let mut hooks = hooks(Rebinding::new(&[ALLOWED], &[ALLOWED]));
    let denied = Guard { pod: SocketPolicy::deny_all(), node: hooks.policy.node.clone() };
    hooks.policy = Arc::new(denied);
    let refused = get(&mut hooks, "http://any.test/", None).await;
    assert!(matches!(refused, Err(Error::HttpRequestDenied)), "{refused:?}");
}
