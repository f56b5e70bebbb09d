//! A registry on a loopback address is reached over plain http without
//! being listed in `--insecure-registries`, as Docker and containerd allow
//! (https is tried first); one that is not on loopback is not.

use k8s_openapi::api::core::v1::Pod;
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image};

#[tokio::test]
async fn a_loopback_registry_is_pulled_over_http_without_configuration() {
    // The last --insecure-registries wins: none (the test kit passes the bed's).
    let node = WasmletNode::start_with(env!("CARGO_BIN_EXE_wasmlet"), "loopreg", &["--insecure-registries="]).await;
    let ns = Namespace::create(&admin_client().await, "loopreg").await;
    let image = fixture_image("forever").await;
    assert!(image.starts_with("127.0.0.1:"), "the bed's plain registry is on loopback: {image}");
    pods::create(&ns, pods::bare("plain", &node.name, &image, &[], "Always")).await;
    pods::wait_for(&ns.api::<Pod>(), "plain", POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main")).await;

    // The same registry behind the host's own (not loopback) address, where
    // plain http would work: without --insecure-registries it is not used.
    let port = image.trim_start_matches("127.0.0.1:").split('/').next().unwrap().to_owned();
    let forward = forwarder(format!("127.0.0.1:{port}")).await;
    let elsewhere = image.replacen(&format!("127.0.0.1:{port}"), &forward.to_string(), 1);
    pods::create(&ns, pods::bare("not-loopback", &node.name, &elsewhere, &[], "Always")).await;
    let failed =
        |p: &Pod| pods::waiting_reason(p, "main").is_some_and(|r| r == "ErrImagePull" || r == "ImagePullBackOff");
    let pod = pods::wait_for(&ns.api::<Pod>(), "not-loopback", POD_TIMEOUT, || node.log_tail(40), failed).await;
    let waiting = pods::container(&pod, "main").and_then(|c| c.state.clone()).and_then(|s| s.waiting);
    assert!(waiting.is_some(), "{:?}", pod.status);
}

/// Forwards connections from the host's own address to `target`; the
/// address it listens on.
async fn forwarder(target: String) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind((wasmlet_testbed::host_ip(), 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}
