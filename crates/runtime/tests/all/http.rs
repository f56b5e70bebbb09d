//! `Runtime::serve_http`: a `wasi:http/proxy` component served over real
//! TCP, one fresh instance per request, isolated failures, limits, the
//! socket policy and a graceful drain.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wasmlet_runtime::{
    Exit, ExitReason, GuestStats, HttpSpec, HttpStats, Mount, NodePolicy, Outbound, Runtime, SocketPolicy, StartError,
};

use crate::{Capture, WAIT, compile, runtime, spec};

/// A server of `http-ctl` on an ephemeral loopback port.
struct Served {
    addr: SocketAddr,
    stop: CancellationToken,
    stats: HttpStats,
    guest: GuestStats,
    stderr: Capture,
    task: JoinHandle<Result<Exit, StartError>>,
}

impl Served {
    async fn start(tweak: impl FnOnce(&mut HttpSpec)) -> Self {
        Self::start_on(runtime(), tweak).await
    }

    async fn start_on(runtime: Runtime, tweak: impl FnOnce(&mut HttpSpec)) -> Self {
        let compiled = compile(&runtime, "http-ctl.wasm").await;
        let (guest, _, stderr) = spec(&["http-ctl"], &[]);
        let mut spec = HttpSpec::new(guest, vec!["127.0.0.1:0".parse().unwrap()]);
        let (tx, rx) = oneshot::channel();
        spec.ready = Some(tx);
        let stats = HttpStats::new();
        spec.stats = Some(stats.clone());
        let guest = GuestStats::new();
        spec.guest.stats = Some(guest.clone());
        tweak(&mut spec);
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(runtime, compiled, spec, stop.clone()));
        let listening = tokio::time::timeout(WAIT, rx).await.expect("no readiness in time").expect("server failed");
        Self { addr: listening.addrs[0], stop, stats, guest, stderr, task }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        get(self.addr, path).await.expect("request failed")
    }

    /// Waits until a request is running in the guest.
    async fn wait_in_flight(&self) {
        let stats = self.stats.clone();
        let in_guest = async move {
            while stats.in_flight() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(WAIT, in_guest).await.expect("the request never reached the guest");
    }

    /// Waits until no request is running in the guest.
    async fn wait_idle(&self) {
        let stats = self.stats.clone();
        let idle = async move {
            while stats.in_flight() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(WAIT, idle).await.expect("requests still in flight");
    }

    async fn stop(self) -> Exit {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task).await.expect("server did not stop").unwrap().unwrap()
    }
}

async fn serve(
    runtime: Runtime,
    compiled: wasmlet_runtime::Compiled,
    spec: HttpSpec,
    stop: CancellationToken,
) -> Result<Exit, StartError> {
    runtime.serve_http(&compiled, spec, stop).await
}

/// One `GET` over a fresh HTTP/1.1 connection: status and body.
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, conn.read_to_end(&mut response)).await.expect("no response in time")?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, dechunk(&body)))
}

/// The payload of a chunked body (or the body itself when not chunked).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { return body.to_owned() };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    if out.is_empty() { body.to_owned() } else { out }
}

#[tokio::test]
async fn serves_each_request_with_a_fresh_instance() {
    let served = Served::start(|_| {}).await;
    assert_eq!(served.get("/").await, (200, "hello from http-ctl\n".into()));
    // A fresh instance per request: the guest's counter is 1 every time.
    for _ in 0..3 {
        assert_eq!(served.get("/count").await, (200, "1".into()));
    }
    assert_eq!(served.get("/nowhere").await.0, 404);
    assert_eq!(served.stats.requests(), 5);
    assert_eq!(served.stats.errors(), 0);
    let exit = served.stop().await;
    assert_eq!((exit.code, exit.reason), (0, ExitReason::Stopped), "{exit:?}");
}

#[tokio::test]
async fn a_trapping_request_gets_500_and_the_server_keeps_serving() {
    let served = Served::start(|_| {}).await;
    let (status, body) = served.get("/trap").await;
    assert_eq!(status, 500);
    assert!(!body.contains("unreachable"), "no trap detail leaks to the client: {body}");
    assert_eq!(served.get("/").await.0, 200);
    assert_eq!(served.stats.errors(), 1);
    served.stderr.wait_for("wasmlet: request").await;
    served.stop().await;
}

#[tokio::test]
async fn a_request_past_the_memory_limit_gets_500_and_is_counted() {
    let served = Served::start(|spec| spec.guest.limits.memory_bytes = Some(32 << 20)).await;
    assert_eq!(served.get("/alloc?mb=4").await, (200, "allocated 4".into()));
    assert_eq!(served.get("/alloc?mb=64").await.0, 500);
    assert_eq!(served.get("/alloc?mb=4").await.0, 200, "the server survives an instance out of memory");
    assert_eq!((served.stats.out_of_memory(), served.stats.errors(), served.guest.oom_kills()), (1, 1, 1));
    served.stderr.wait_for("wasmlet: request GET /alloc failed: memory limit of 33554432 bytes exceeded").await;
    served.stop().await;
}

/// The container's limit bounds all its instances together: 50 requests at
/// once, each holding 16 MiB for a while, under a 64 MiB limit. At most
/// three fit (each instance also has its own initial memory); the others
/// are stopped at the limit, answered 500 and counted; the total never
/// passes the limit; the server then serves as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_limit_bounds_all_instances_together() {
    const LIMIT: u64 = 64 << 20;
    const REQUESTS: usize = 50;
    let served = Served::start(|spec| spec.guest.limits.memory_bytes = Some(LIMIT)).await;
    let addr = served.addr;
    let requests: Vec<_> =
        (0..REQUESTS).map(|_| tokio::spawn(async move { get(addr, "/alloc?mb=16&ms=2000").await })).collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap().expect("request failed"));
    }
    let ok = statuses.iter().filter(|r| **r == (200, "allocated 16".to_owned())).count();
    let failed = statuses.iter().filter(|(status, _)| *status == 500).count();
    assert_eq!(ok + failed, REQUESTS, "only 200 or 500: {statuses:?}");
    assert!(ok >= 1, "some requests fit: {statuses:?}");
    assert!(failed > 0, "50 requests of 16 MiB held for 2 s cannot all fit in 64 MiB: {statuses:?}");
    let stats = &served.stats;
    assert_eq!((stats.out_of_memory(), stats.errors()), (failed as u64, failed as u64), "{stats:?}");
    let peak = served.guest.memory_peak_bytes();
    eprintln!("{ok} requests succeeded, {failed} were stopped at the limit; peak {peak} of {LIMIT} bytes");
    assert!(peak <= LIMIT, "the instances together reached {peak} bytes, over {LIMIT}");
    assert!(peak >= 3 * (16 << 20), "three instances held 16 MiB each at once: peak {peak}");
    assert_eq!(served.guest.oom_kills(), failed as u64);
    served.stderr.wait_for("failed: memory limit of 67108864 bytes exceeded").await;
    // Every instance gave its memory back; the server serves as before.
    served.wait_idle().await;
    assert_eq!(served.guest.memory_bytes(), 0);
    for _ in 0..3 {
        assert_eq!(served.get("/alloc?mb=16").await, (200, "allocated 16".into()));
    }
    assert_eq!(served.get("/").await.0, 200);
    let exit = served.stop().await;
    assert_eq!((exit.code, exit.reason), (0, ExitReason::Stopped), "{exit:?}");
}

/// The mounts are opened once, when the server starts, and shared by the
/// requests: a request makes no filesystem call before its guest runs (so
/// a host directory removed later does not fail every request).
#[tokio::test]
async fn mounts_are_opened_once_per_server() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("data");
    std::fs::create_dir(&host).unwrap();
    let mount = Mount { host: host.clone(), guest: "/data".into(), read_only: true };
    let served = Served::start(|spec| spec.guest.mounts = vec![mount]).await;
    assert_eq!(served.get("/").await.0, 200);
    std::fs::remove_dir(&host).unwrap();
    for _ in 0..3 {
        assert_eq!(served.get("/").await.0, 200, "no per-request open of the removed directory");
    }
    assert_eq!(served.stats.errors(), 0);
    served.stop().await;
}

#[tokio::test]
async fn a_request_past_its_timeout_gets_504() {
    let served = Served::start(|spec| spec.limits.request_timeout = Some(Duration::from_millis(300))).await;
    assert_eq!(served.get("/sleep?ms=5000").await.0, 504);
    assert_eq!(served.stats.timeouts(), 1);
    assert_eq!(served.get("/").await.0, 200);
    served.stop().await;
}

#[tokio::test]
async fn stop_refuses_new_connections_and_lets_requests_in_flight_finish() {
    let served = Served::start(|spec| spec.drain = Duration::from_secs(30)).await;
    let addr = served.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/sleep?ms=1500").await });
    served.wait_in_flight().await;
    served.stop.cancel();
    // The listener closes at once: a new connection is refused while the
    // request in flight is still running (it sleeps 1.5 s).
    let refused = async {
        while get(addr, "/").await.is_ok() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(1), refused).await.expect("a stopping server accepts no new connection");
    assert_eq!(in_flight.await.unwrap().unwrap(), (200, "slept 1500".into()));
    let exit = tokio::time::timeout(WAIT, served.task).await.unwrap().unwrap().unwrap();
    assert_eq!((exit.code, exit.reason), (0, ExitReason::Stopped), "{exit:?}");
}

#[tokio::test]
async fn requests_left_after_the_drain_period_are_dropped_with_137() {
    let served = Served::start(|spec| spec.drain = Duration::from_millis(300)).await;
    let addr = served.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/sleep?ms=20000").await });
    served.wait_in_flight().await;
    let exit = served.stop().await;
    assert_eq!(exit.code, 137, "{exit:?}");
    let dropped = in_flight.await.unwrap();
    assert!(!matches!(dropped, Ok((200, _))), "the dropped request did not complete: {dropped:?}");
}

#[tokio::test]
async fn sockets_follow_the_policy() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let undeclared = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let served = Served::start(|spec| {
        spec.guest.sockets = SocketPolicy {
            pod_ips: vec!["127.0.0.1".parse().unwrap()],
            tcp_ports: BTreeSet::from([free]),
            ..SocketPolicy::default()
        };
    })
    .await;
    let (status, body) = served.get(&format!("/listen?addr=127.0.0.1:{free}")).await;
    assert_eq!(status, 200, "a declared port on the pod IP: {body}");
    let (status, body) = served.get(&format!("/listen?addr=127.0.0.1:{undeclared}")).await;
    assert_eq!(status, 403, "an undeclared port: {body}");
    let (status, body) = served.get(&format!("/listen?addr=0.0.0.0:{free}")).await;
    assert_eq!(status, 403, "the unspecified address: {body}");
    // Loopback is the node's: refused by default.
    let (status, body) = served.get(&format!("/connect?addr={target_addr}")).await;
    assert_eq!(status, 403, "loopback is refused by default: {body}");
    served.stop().await;

    // A pod asking for loopback does not get it: annotations only narrow.
    let loopback = || Outbound::Only(vec!["127.0.0.0/8".parse().unwrap()]);
    let served = Served::start(|spec| spec.guest.sockets.outbound = loopback()).await;
    let (status, body) = served.get(&format!("/connect?addr={target_addr}")).await;
    assert_eq!(status, 403, "a pod's outbound list does not widen the node's: {body}");
    assert!(body.contains("connect failed"), "{body}");
    served.stop().await;

    // The node's administrator can allow it.
    let served = Served::start_on(node_allowing_loopback(), |spec| spec.guest.sockets.outbound = loopback()).await;
    let (status, body) = served.get(&format!("/connect?addr={target_addr}")).await;
    assert_eq!((status, body), (200, format!("connected to {target_addr}")));
    served.stop().await;
}

/// A runtime whose node lets guests reach loopback (an explicit exception).
fn node_allowing_loopback() -> Runtime {
    let node_policy = NodePolicy { allowed_node_local: vec!["127.0.0.0/8".parse().unwrap()], ..NodePolicy::default() };
    Runtime::new(wasmlet_runtime::Config { node_policy, ..wasmlet_runtime::Config::default() }).unwrap()
}

/// An HTTP server on loopback answering every request with `body`.
async fn http_target(body: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0_u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn outgoing_http_to_the_node_is_refused_unless_the_node_allows_it() {
    let target = http_target("from the node's loopback").await;
    let port = target.port();
    let served =
        Served::start(|spec| spec.guest.sockets.outbound = Outbound::Only(vec!["127.0.0.0/8".parse().unwrap()])).await;
    for url in [format!("127.0.0.1:{port}/"), format!("localhost:{port}/"), format!("[::ffff:127.0.0.1]:{port}/")] {
        let (status, body) = served.get(&format!("/fetch?url={url}")).await;
        assert_eq!(status, 502, "{url}: {body}");
        assert!(body.contains("DestinationIpProhibited"), "{url}: {body}");
    }
    served.stop().await;

    let served = Served::start_on(node_allowing_loopback(), |_| {}).await;
    let (status, body) = served.get(&format!("/fetch?url=127.0.0.1:{port}/")).await;
    assert_eq!((status, body.as_str()), (200, "from the node's loopback"));
    served.stop().await;
}

#[tokio::test]
async fn only_http_proxy_components_are_served() {
    let runtime = runtime();
    let compiled = compile(&runtime, "hello-p2.wasm").await;
    let (guest, _, _) = spec(&["hello"], &[]);
    let spec = HttpSpec::new(guest, vec!["127.0.0.1:0".parse().unwrap()]);
    let err = runtime.serve_http(&compiled, spec, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, StartError::NotHttpProxy { .. }), "{err:?}");
    assert!(err.to_string().contains("wasi:http/incoming-handler"), "{err}");
}

#[tokio::test]
async fn a_port_in_use_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let runtime = runtime();
    let compiled = compile(&runtime, "http-ctl.wasm").await;
    let (guest, _, _) = spec(&["http-ctl"], &[]);
    let spec = HttpSpec::new(guest, vec![taken.local_addr().unwrap()]);
    let err = runtime.serve_http(&compiled, spec, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, StartError::Bind { .. }), "{err:?}");
}

#[tokio::test]
async fn a_p2_command_listens_only_where_the_policy_allows() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let runtime = runtime();
    let compiled = compile(&runtime, "tcp-listen.wasm").await;
    let addr = format!("127.0.0.1:{port}");

    // Not declared: refused.
    let (guest, _, stderr) = spec(&["tcp-listen", &addr], &[]);
    let exit = crate::run(&runtime, &compiled, guest).await.unwrap();
    assert_eq!(exit.code, 1, "{exit:?}");
    assert!(stderr.text().contains("listen failed"), "{}", stderr.text());

    // Declared: it listens and serves one connection.
    let (mut guest, stdout, _) = spec(&["tcp-listen", &addr], &[]);
    guest.sockets = SocketPolicy {
        pod_ips: vec!["127.0.0.1".parse().unwrap()],
        tcp_ports: BTreeSet::from([port]),
        ..SocketPolicy::default()
    };
    let run = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.run(&compiled, guest, CancellationToken::new()).await }
    });
    stdout.wait_for("listening on").await;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let mut greeting = String::new();
    conn.read_to_string(&mut greeting).await.unwrap();
    assert_eq!(greeting, "hello from tcp-listen\n");
    let exit = tokio::time::timeout(WAIT, run).await.unwrap().unwrap().unwrap();
    assert_eq!(exit.code, 0, "{exit:?}");
}
