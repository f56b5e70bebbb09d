//! Hostile guests against the node's network (issue 11, findings 1 and 2).
//!
//! Guests on a real node try to reach what lives on the node itself: the
//! test bed's apiserver and etcd on loopback, the node's kubelet API on its
//! IP, and a link-local address that this test puts on a dummy interface of
//! its own with a listener behind it (169.254.77.x: never a real metadata
//! endpoint; nothing leaves the machine). Each is tried through
//! `wasi:sockets` (the `http-get` command, `http-ctl`'s `/connect`) and
//! outgoing `wasi:http` (`http-ctl`'s `/fetch`), with and without a
//! `wasmlet.dev/outbound` annotation asking for it, and by host name
//! (`localhost`). Every attempt must be refused *by the policy* (the guest
//! reports access denied / `DestinationIpProhibited`, while the test process
//! itself reaches every target), and pod-to-pod traffic, across two nodes on
//! this machine, must keep working. A node whose administrator allows the
//! link-local address (`--allowed-node-local-destinations`) reaches it and
//! still nothing else.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::runtime::watcher;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, http, testbed, wait};

/// What `wasi:sockets` reports to a Rust guest for a refused address
/// (`access-denied`, errno EACCES), as opposed to "Connection refused".
const SOCKET_DENIED: &str = "Permission denied";
/// What outgoing `wasi:http` reports for a refused address.
const HTTP_DENIED: &str = "DestinationIpProhibited";
/// What `wasi:sockets` reports for an IPv4-mapped IPv6 address: wasmtime-wasi
/// rejects those itself (`invalid-argument`) before the policy is asked.
const SOCKET_INVALID: &str = "Invalid argument";

/// A local-only interface (`dummy`, or `ifb` where the kernel has no dummy
/// driver) holding one link-local address with an HTTP listener behind it;
/// the interface is deleted on drop.
struct LinkLocal {
    interface: String,
    addr: SocketAddr,
}

impl LinkLocal {
    async fn start() -> Self {
        let id = std::process::id();
        let interface = format!("wlsec{:x}", id & 0xf_ffff);
        let ip_cmd = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().expect("running ip");
            (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
        };
        // `ifb` on kernels without the dummy driver: as local-only.
        let created = ["dummy", "ifb"].iter().any(|kind| ip_cmd(&["link", "add", &interface, "type", kind]).0);
        assert!(created, "cannot create a dummy or ifb interface {interface} (the test needs CAP_NET_ADMIN)");
        let mut this = Self { interface: interface.clone(), addr: SocketAddr::from(([0, 0, 0, 0], 0)) };
        // 169.254.77.1-250: pick one no other run holds.
        let ip = (0..250)
            .map(|i| IpAddr::from([169, 254, 77, ((id as usize + i) % 250 + 1) as u8]))
            .find(|ip| ip_cmd(&["addr", "add", &format!("{ip}/32"), "dev", &interface]).0)
            .expect("a free 169.254.77.x address");
        let (ok, err) = ip_cmd(&["link", "set", &interface, "up"]);
        assert!(ok, "ip link set {interface} up: {err}");
        let listener = TcpListener::bind((ip, 0)).await.expect("listening on the link-local address");
        this.addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, "link-local stand-in\n"));
        this
    }
}

impl Drop for LinkLocal {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.interface]).output();
    }
}

/// Answers every HTTP request on `listener` with `body`.
async fn serve(listener: TcpListener, body: &'static str) {
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
            let response =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = conn.write_all(response.as_bytes()).await;
        });
    }
}

fn pod_ip(pod: &Pod) -> IpAddr {
    pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|ip| ip.parse().ok()).expect("pod has an IP")
}

/// A ready `wasi:http` server pod (`fixture`) on `node`, and its IP.
async fn server(ns: &Namespace, node: &WasmletNode, name: &str, fixture: &str, outbound: Option<&str>) -> IpAddr {
    let mut pod = pods::bare(name, &node.name, &fixture_image(fixture).await, &[], "Always");
    pod["spec"]["containers"][0]["ports"] = serde_json::json!([{ "containerPort": 8080 }]);
    pod["spec"]["containers"][0]["readinessProbe"] =
        serde_json::json!({ "httpGet": { "path": "/", "port": 8080 }, "periodSeconds": 1 });
    if let Some(outbound) = outbound {
        pod["metadata"]["annotations"] = serde_json::json!({ "wasmlet.dev/outbound": outbound });
    }
    pods::create(ns, pod).await;
    let ready = |p: &Pod| pods::container(p, "main").is_some_and(|c| c.ready);
    pod_ip(&pods::wait_for(&ns.api(), name, POD_TIMEOUT, || node.log_tail(40), ready).await)
}

/// Runs the `http-get` command against `target`; its exit code and log.
async fn http_get(
    ns: &Namespace,
    node: &WasmletNode,
    name: &str,
    target: &str,
    outbound: Option<&str>,
) -> (i32, String) {
    let mut pod = pods::bare(name, &node.name, &fixture_image("http-get").await, &[target], "Never");
    if let Some(outbound) = outbound {
        pod["metadata"]["annotations"] = serde_json::json!({ "wasmlet.dev/outbound": outbound });
    }
    pods::create(ns, pod).await;
    let done = |p: &Pod| matches!(pods::phase(p), "Succeeded" | "Failed");
    let pod = pods::wait_for(&ns.api(), name, POD_TIMEOUT, || node.log_tail(40), done).await;
    let code = pods::terminated(&pod, "main").map(|t| t.exit_code).expect("terminated");
    (code, pods::kubectl_ok(&["logs", "-n", ns.name(), name]).await)
}

/// `GET path` on an `http-ctl` pod.
async fn ctl(ip: IpAddr, path: &str) -> http::Response {
    http::get(SocketAddr::new(ip, 8080), path).await.unwrap_or_else(|e| panic!("GET {path} on {ip}: {e}"))
}

/// Asserts that the `http-ctl` pod at `ip` may not reach `target` through
/// wasi:sockets nor wasi:http, for the policy's reason.
async fn refused(ip: IpAddr, target: &str, what: &str) {
    let r = ctl(ip, &format!("/connect?addr={target}")).await;
    assert_eq!(r.status, 403, "{what}: wasi:sockets connect to {target} was not refused: {}", r.body);
    let reason = if target.starts_with("[::ffff:") { SOCKET_INVALID } else { SOCKET_DENIED };
    assert!(r.body.contains("connect failed") && r.body.contains(reason), "{what}: {target}: {}", r.body);
    let r = ctl(ip, &format!("/fetch?url={target}/")).await;
    assert_eq!(r.status, 502, "{what}: wasi:http fetch of {target} was not refused: {}", r.body);
    assert!(r.body.contains(HTTP_DENIED), "{what}: {target}: {}", r.body);
}

#[tokio::test]
async fn guests_cannot_reach_the_node_but_reach_other_pods() {
    let tb = testbed().await;
    let ports = tb.ports();
    let link_local = LinkLocal::start().await;
    let allow_flag = format!("--allowed-node-local-destinations={}", link_local.addr.ip());
    let allow = [allow_flag.as_str()];
    let (node, other) = tokio::join!(
        WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "netsec"),
        WasmletNode::start_with(env!("CARGO_BIN_EXE_wasmlet"), "netsec-allow", &allow),
    );
    let ns = Namespace::create(&admin_client().await, "netsec").await;

    let apiserver = format!("127.0.0.1:{}", ports.apiserver);
    let etcd = format!("127.0.0.1:{}", ports.etcd_client);
    let kubelet = SocketAddr::new(node.ip, node.port).to_string();
    let metadata = link_local.addr.to_string();
    let targets = [
        ("the apiserver on loopback", apiserver.clone()),
        ("etcd on loopback", etcd.clone()),
        ("the kubelet API on the node IP", kubelet.clone()),
        ("the link-local listener", metadata.clone()),
        ("etcd as localhost", format!("localhost:{}", ports.etcd_client)),
        ("etcd as IPv4-mapped IPv6", format!("[::ffff:127.0.0.1]:{}", ports.etcd_client)),
    ];
    // Every target is there: a refusal below is the policy, not an absence.
    for (what, target) in &targets[..4] {
        let reachable = tokio::net::TcpStream::connect(target.as_str()).await;
        assert!(reachable.is_ok(), "{what} ({target}) is not reachable from the test itself: {reachable:?}");
    }

    // A server on the other node, for pod-to-pod traffic across nodes.
    let web = server(&ns, &other, "web", "http-hello", None).await;
    let asks_for_everything = format!("127.0.0.0/8,::1/128,{}/32,169.254.0.0/16,{web}/32", node.ip);
    let (plain, annotated) = tokio::join!(
        server(&ns, &node, "ctl", "http-ctl", None),
        server(&ns, &node, "ctl-annotated", "http-ctl", Some(&asks_for_everything)),
    );

    for (ip, pod) in [(plain, "ctl"), (annotated, "ctl-annotated")] {
        for (what, target) in &targets {
            refused(ip, target, &format!("{pod} → {what}")).await;
        }
        // Pod-to-pod still works, to a pod of another node on this machine.
        let r = ctl(ip, &format!("/connect?addr={web}:8080")).await;
        assert_eq!((r.status, r.body.as_str()), (200, format!("connected to {web}:8080").as_str()), "{pod}");
        let r = ctl(ip, &format!("/fetch?url={web}:8080/")).await;
        assert_eq!((r.status, r.body.as_str()), (200, "hello from wasi:http\n"), "{pod}");
    }

    // The annotation was not an error, but the node says what it ignored.
    let events: Api<Event> = ns.api();
    let about_pod = watcher::Config::default().fields("involvedObject.name=ctl-annotated");
    let is_warning = |e: &Event| e.reason.as_deref() == Some("OutboundNotAllowed");
    let warned = wait::for_any(&events, about_pod, Duration::from_secs(30), is_warning)
        .await
        .expect("an OutboundNotAllowed event on the annotated pod");
    let message = warned.message.unwrap_or_default();
    assert_eq!(warned.type_.as_deref(), Some("Warning"));
    for named in ["127.0.0.0/8 (node-local (loopback))", "169.254.0.0/16 (node-local (link-local))"] {
        assert!(message.contains(named), "{message}");
    }
    assert!(message.contains(&format!("{}/32 (node-local (an address of this node))", node.ip)), "{message}");
    assert!(!message.contains(&web.to_string()), "the pod IP is allowed, not ignored: {message}");

    // The p2 command (wasi:sockets through Rust std), by address and by name.
    let cases = [
        ("get-etcd", etcd.clone(), None),
        ("get-etcd-annotated", etcd.clone(), Some("127.0.0.1/32")),
        ("get-localhost", format!("localhost:{}", ports.etcd_client), Some("127.0.0.0/8,::1/128")),
        ("get-kubelet", kubelet.clone(), Some(&*format!("{}/32", node.ip))),
        ("get-link-local", metadata.clone(), Some("169.254.77.0/24")),
    ];
    let runs = cases.iter().map(|(name, target, outbound)| http_get(&ns, &node, name, target, *outbound));
    for ((name, target, _), (code, logs)) in cases.iter().zip(futures::future::join_all(runs).await) {
        assert_eq!(code, 1, "{name} → {target}: {logs}");
        assert!(logs.contains("connect failed") && logs.contains(SOCKET_DENIED), "{name} → {target}: {logs}");
    }
    let (code, logs) = http_get(&ns, &node, "get-web", &format!("{web}:8080/"), None).await;
    assert_eq!(code, 0, "pod to pod: {logs}");
    assert!(logs.contains("hello from wasi:http"), "{logs}");

    // The other node's administrator allows the link-local address: its
    // guests reach it (so the refusals above are the node's), and nothing else.
    let allowed = server(&ns, &other, "ctl-allowed", "http-ctl", None).await;
    let r = ctl(allowed, &format!("/connect?addr={metadata}")).await;
    assert_eq!((r.status, r.body.as_str()), (200, format!("connected to {metadata}").as_str()));
    let r = ctl(allowed, &format!("/fetch?url={metadata}/")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "link-local stand-in\n"));
    for (what, target) in targets.iter().filter(|(_, t)| *t != metadata) {
        refused(allowed, target, &format!("ctl-allowed → {what}")).await;
    }
    // ... and a pod may still narrow it away.
    let narrowed = server(&ns, &other, "ctl-narrowed", "http-ctl", Some(&format!("{web}/32"))).await;
    let r = ctl(narrowed, &format!("/connect?addr={metadata}")).await;
    assert_eq!(r.status, 403, "{}", r.body);
    drop(link_local);
}
