//! A drop-in kubelet: a node started the way kubeadm starts a kubelet — the
//! KubeletConfiguration kubeadm writes, and the flags its systemd drop-in
//! and `kubeadm-flags.env` pass — joins the test bed; it serves the plain
//! healthz, honours the fields it implements and reports the others.

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use wasmlet_testkit::node::Options;
use wasmlet_testkit::{WasmletNode, admin_client, testbed};

/// A free port on loopback, for the healthz.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn kubeadm_configuration_and_upstream_flags_start_a_ready_node() {
    let tb = testbed().await;
    let dir = tempfile::tempdir().unwrap();
    let healthz_port = free_port();
    let config = dir.path().join("config.yaml");
    let template = include_str!("data/kubeadm-kubelet-config.yaml");
    let text = template
        .replace("@CLIENT_CA@", &tb.ca_cert().display().to_string())
        .replace("@HEALTHZ_PORT@", &healthz_port.to_string());
    std::fs::write(&config, text).unwrap();

    // What kubeadm's drop-in and kubeadm-flags.env add to the command line,
    // plus upstream flags an operator sets.
    let args = [
        format!("--config={}", config.display()),
        "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock".to_owned(),
        "--pod-infra-container-image=registry.k8s.io/pause:3.10".to_owned(),
        "--kube-reserved=cpu=100m,memory=100Mi".to_owned(),
        "--system-reserved=cpu=100m".to_owned(),
        "--node-status-update-frequency=5s".to_owned(),
        "--tls-min-version=VersionTLS12".to_owned(),
        "--feature-gates=KubeletFineGrainedAuthz=true".to_owned(),
    ];
    let node = WasmletNode::start_with_options(
        env!("CARGO_BIN_EXE_wasmlet"),
        "dropin",
        Options { args: args.to_vec(), ..Options::default() },
    )
    .await;

    // The plain-HTTP healthz kubeadm waits on, at the configured port.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], healthz_port));
    let healthz = wasmlet_testkit::http::get(addr, "/healthz").await.expect("GET /healthz");
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok"), "{healthz:?}");

    // --kube-reserved and --system-reserved: allocatable CPU is capacity - 200m.
    let n = Api::<Node>::all(admin_client().await).get(&node.name).await.unwrap();
    let status = n.status.unwrap();
    let millis = |q: &str| -> i64 {
        q.strip_suffix('m').map(|m| m.parse().unwrap()).unwrap_or_else(|| q.parse::<i64>().unwrap() * 1000)
    };
    let capacity = millis(&status.capacity.unwrap()["cpu"].0);
    let allocatable = millis(&status.allocatable.unwrap()["cpu"].0);
    assert_eq!(capacity - allocatable, 200, "capacity {capacity}m, allocatable {allocatable}m");

    // What has no meaning here is reported once, not fatal.
    let log = node.log();
    for notice in [
        "ignored flag --container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
        "ignored flag --pod-infra-container-image=registry.k8s.io/pause:3.10",
        "KubeletConfiguration field cgroupDriver is not implemented by wasmlet; ignored",
        "feature gate KubeletFineGrainedAuthz=true accepted",
    ] {
        assert_eq!(log.matches(notice).count(), 1, "{notice:?} not reported exactly once:\n{}", node.log_tail(60));
    }
}
