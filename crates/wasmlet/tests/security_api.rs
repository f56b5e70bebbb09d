//! Hostile requests against a real node's kubelet API (issue 6): no
//! certificate, a certificate from another CA, an expired one, tokens of
//! nobody and of a user without the right, path traversal in log paths,
//! oversized and malformed query values. Each is refused the way upstream
//! refuses it, and a legitimate caller (the apiserver's identity, a
//! ServiceAccount allowed `nodes/proxy`) is served.

use wasmlet_testkit::kubelet_api::{ClientIdentity, KubeletApi};
use wasmlet_testkit::pods::{self, POD_TIMEOUT, kubectl_ok};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, testbed};

#[tokio::test]
async fn hostile_requests_are_refused() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "sec-api").await;
    let tb = testbed().await;
    let ns = Namespace::create(&admin_client().await, "sec-api").await;
    let n = ns.name().to_owned();
    let pod = pods::bare("talker", &node.name, &fixture_image("args-env").await, &["hello-sec"], "Never");
    pods::create(&ns, pod).await;
    let api_pods = ns.api();
    pods::wait_for(&api_pods, "talker", POD_TIMEOUT, || node.log_tail(40), |p| pods::terminated(p, "main").is_some())
        .await;
    let logs = format!("/containerLogs/{n}/talker/main");

    let api = KubeletApi::new(node.ip, node.port, &tb.ca_cert()).unwrap();
    let pki = tb.dir().join("pki");
    let apiserver = ClientIdentity::from_files(
        &pki.join("apiserver-kubelet-client.crt"),
        &pki.join("apiserver-kubelet-client.key"),
    )
    .unwrap();
    let ok = api.get(&logs, Some(&apiserver), None).await.unwrap();
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.body.contains("argv[1]=hello-sec"), "{ok:?}");

    // No credentials at all: 401, whatever the path (no 404 leaks what exists).
    for path in ["/pods", logs.as_str(), "/stats/summary", "/metrics", "/healthz", "/nope"] {
        let r = api.get(path, None, None).await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (401, "Unauthorized\n"), "{path}");
    }
    let r = api.request("POST", &format!("/exec/{n}/talker/main?command=ls&output=1"), None, None).await.unwrap();
    assert_eq!(r.status, 401);

    // Certificates the cluster CA did not sign, or that expired: the handshake fails.
    let foreign = ClientIdentity::from_another_ca("kube-apiserver", "system:masters").unwrap();
    assert!(api.get("/pods", Some(&foreign), None).await.is_err(), "a certificate from another CA");
    let expired = ClientIdentity::signed_by(&tb.ca_cert(), &pki.join("ca.key"), "kube-apiserver", "x", true).unwrap();
    assert!(api.get("/pods", Some(&expired), None).await.is_err(), "an expired certificate");

    // Tokens: garbage is 401; a valid token of a user without rights is 403
    // with nothing but upstream's message.
    let r = api.get("/pods", None, Some("not-a-token")).await.unwrap();
    assert_eq!(r.status, 401);
    kubectl_ok(&["create", "serviceaccount", "nobody", "-n", &n]).await;
    kubectl_ok(&["create", "serviceaccount", "log-reader", "-n", &n]).await;
    let role = format!("{n}-node-proxy-get");
    kubectl_ok(&["create", "clusterrole", &role, "--verb=get", "--resource=nodes/proxy"]).await;
    let sa = format!("{n}:log-reader");
    kubectl_ok(&[
        "create",
        "clusterrolebinding",
        &role,
        &format!("--clusterrole={role}"),
        &format!("--serviceaccount={sa}"),
    ])
    .await;
    let nobody = kubectl_ok(&["create", "token", "nobody", "-n", &n, "--duration=10m"]).await.trim().to_owned();
    let reader = kubectl_ok(&["create", "token", "log-reader", "-n", &n, "--duration=10m"]).await.trim().to_owned();

    let user = format!("system:serviceaccount:{n}:nobody");
    let r = api.get(&logs, None, Some(&nobody)).await.unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(r.body, format!("Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[proxy])\n"));
    let r = api.get("/pods", None, Some(&nobody)).await.unwrap();
    assert_eq!(r.body, format!("Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"));
    let r = api.get("/stats/summary", None, Some(&nobody)).await.unwrap();
    assert_eq!(r.body, format!("Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[stats])\n"));

    // The reader may GET nodes/proxy (logs, and /pods through proxy), nothing else.
    let r = api.get(&logs, None, Some(&reader)).await.unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("hello-sec"));
    assert_eq!(api.get("/pods", None, Some(&reader)).await.unwrap().status, 200);
    let r = api.get("/metrics/resource", None, Some(&reader)).await.unwrap();
    assert_eq!(r.status, 403, "{r:?}");
    let r =
        api.request("POST", &format!("/exec/{n}/talker/main?command=ls&output=1"), None, Some(&reader)).await.unwrap();
    assert_eq!(r.status, 403);
    assert!(r.body.contains("verb=create") && r.body.contains("[proxy]"), "{r:?}");

    // Path traversal in log paths, as an authorized caller: never a file outside the logs.
    for target in [
        "/containerLogs/../../../etc/passwd".to_owned(),
        format!("/containerLogs/{n}/talker/..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("/containerLogs/{n}/..%2f..%2f..%2fetc/passwd"),
        "/containerLogs/%2e%2e/%2e%2e/%2e%2e".to_owned(),
        format!("/containerLogs/{n}/talker/main%00"),
        format!("/containerLogs/{n}/talker/main%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        "/logs/../../../../etc/passwd".to_owned(),
        "/logs/%2e%2e/%2e%2e/etc/passwd".to_owned(),
    ] {
        let r = api.get(&target, Some(&apiserver), None).await.unwrap();
        assert!([400, 404].contains(&r.status), "{target}: {r:?}");
        assert!(!r.body.contains("root:"), "{target}: {r:?}");
    }

    // Malformed and oversized query values: 400 with the reason, nothing served.
    let huge = "9".repeat(200);
    for query in [
        "tailLines=abc",
        "tailLines=-1",
        &format!("tailLines={huge}"),
        &format!("limitBytes={huge}"),
        "limitBytes=0",
        "sinceSeconds=0",
        "sinceTime=yesterday",
        "sinceSeconds=5&sinceTime=2020-01-01T00:00:00Z",
        "stream=Both",
        "follow=maybe",
        "tail=%ff%fe",
    ] {
        let r = api.get(&format!("{logs}?{query}"), Some(&apiserver), None).await.unwrap();
        assert_eq!(r.status, 400, "{query}: {r:?}");
        assert!(!r.body.contains("hello-sec"), "{query}: {r:?}");
    }
    // A request target far beyond any sane size: refused before routing
    // (or the connection is closed), and the node keeps serving.
    let giant = format!("{logs}?tailLines={}", "9".repeat(256 * 1024));
    match api.get(&giant, Some(&apiserver), None).await {
        Ok(r) => assert!((400..500).contains(&r.status), "{r:?}"),
        Err(e) => eprintln!("giant request: connection refused ({e})"),
    }
    let r = api.get("/healthz", Some(&apiserver), None).await.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    let _ = kubectl_ok(&["delete", "clusterrolebinding,clusterrole", &role]).await;
}
